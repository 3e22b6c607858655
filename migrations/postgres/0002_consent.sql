-- The consent domain: enterprises and their API keys, people and their
-- identifiers, subscriptions, consents with their evidence, consent
-- requests and do-not-call lists.
--
-- Enumerations are TEXT checked by the application (src/consent), so that a
-- new value can be rolled out node by node without a blocking migration.

CREATE TABLE enterprises (
    id                 TEXT        NOT NULL PRIMARY KEY,
    name               TEXT        NOT NULL,
    display_name       TEXT        NOT NULL,
    -- One service per line.
    services           TEXT        NOT NULL,
    default_region     TEXT        NOT NULL,
    crm_webhook_url    TEXT,
    crm_webhook_secret TEXT,
    consent_policy     TEXT        NOT NULL,
    status             TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

-- Only argon2 hashes: a key is shown once, when it is created.
CREATE TABLE api_keys (
    id            TEXT        NOT NULL PRIMARY KEY,
    enterprise_id TEXT        NOT NULL REFERENCES enterprises (id),
    hash          TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);

CREATE INDEX api_keys_enterprise ON api_keys (enterprise_id);

CREATE TABLE persons (
    id         TEXT        NOT NULL PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);

-- An identifier (E.164 number, CRM id, URL, e-mail) names one person only.
CREATE TABLE person_identifiers (
    kind      TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    person_id TEXT    NOT NULL REFERENCES persons (id),
    position  INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);

CREATE INDEX person_identifiers_person ON person_identifiers (person_id);

CREATE TABLE subscriptions (
    person_id     TEXT        NOT NULL REFERENCES persons (id),
    enterprise_id TEXT        NOT NULL REFERENCES enterprises (id),
    status        TEXT        NOT NULL,
    since         TIMESTAMPTZ NOT NULL,
    until         TIMESTAMPTZ,
    PRIMARY KEY (person_id, enterprise_id)
);

CREATE TABLE consents (
    id                  TEXT        NOT NULL PRIMARY KEY,
    person_id           TEXT        NOT NULL REFERENCES persons (id),
    enterprise_id       TEXT        NOT NULL REFERENCES enterprises (id),
    number              TEXT        NOT NULL,
    scope               TEXT        NOT NULL,
    status              TEXT        NOT NULL,
    window_start        TIMESTAMPTZ,
    window_end          TIMESTAMPTZ,
    time_zone           TEXT,
    expires_at          TIMESTAMPTZ,
    channel             TEXT        NOT NULL,
    provider_message_id TEXT,
    raw_reply           TEXT,
    signature_valid     BOOLEAN,
    replied_at          TIMESTAMPTZ,
    received_at         TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    revoked_at          TIMESTAMPTZ
);

-- The gate's question: a consent covering now for (enterprise, number).
CREATE INDEX consents_lookup ON consents (enterprise_id, number, status);

-- enterprise_id is '' for the global list: a key column cannot be NULL.
CREATE TABLE do_not_call (
    enterprise_id TEXT        NOT NULL,
    number        TEXT        NOT NULL,
    source        TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (enterprise_id, number)
);

CREATE TABLE consent_requests (
    id                  TEXT        NOT NULL PRIMARY KEY,
    enterprise_id       TEXT        NOT NULL REFERENCES enterprises (id),
    person_id           TEXT        NOT NULL REFERENCES persons (id),
    number              TEXT        NOT NULL,
    scope               TEXT        NOT NULL,
    hold_id             TEXT,
    state               TEXT        NOT NULL,
    answer_kind         TEXT,
    answer_start        TIMESTAMPTZ,
    answer_end          TIMESTAMPTZ,
    failure_reason      TEXT,
    provider_message_id TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    expires_at          TIMESTAMPTZ NOT NULL,
    -- Optimistic concurrency: every write checks and increments it.
    version             BIGINT      NOT NULL
);

CREATE INDEX consent_requests_hold ON consent_requests (hold_id);

CREATE TABLE consent_request_options (
    request_id TEXT        NOT NULL REFERENCES consent_requests (id),
    position   INTEGER     NOT NULL,
    start_at   TIMESTAMPTZ NOT NULL,
    end_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (request_id, position)
);
