-- Sending prompts and reading what comes back.
--
-- consent_requests gains what the dispatcher needs: when the request may
-- next be picked up for sending (a lease, so two dispatchers never send the
-- same prompt), the channel that carried it, and when the one clarifying
-- question was sent (a second unclear reply gets no other).
--
-- consent_request_choices keeps exactly what a prompt offered, written
-- before the prompt leaves, so a reply ("2", a chip's postback) is read
-- against what the person saw, however late it comes.
--
-- inbound_messages is the ledger of every provider message slotgate acted
-- on: its (provider, id) key is how a webhook delivered twice has one
-- effect, and its row is the evidence (digest of the payload, signature
-- result, times, outcome). It is written in the transaction of the effect.

ALTER TABLE consent_requests ADD COLUMN dispatch_after TIMESTAMPTZ;
ALTER TABLE consent_requests ADD COLUMN channel TEXT;
ALTER TABLE consent_requests ADD COLUMN clarified_at TIMESTAMPTZ;

CREATE INDEX consent_requests_dispatch ON consent_requests (state, dispatch_after);
CREATE INDEX consent_requests_number ON consent_requests (number, created_at);
CREATE INDEX consent_requests_provider_message ON consent_requests (provider_message_id);
CREATE INDEX consent_requests_expiry ON consent_requests (state, expires_at);

CREATE TABLE consent_request_choices (
    request_id    TEXT    NOT NULL REFERENCES consent_requests (id),
    position      INTEGER NOT NULL,
    label         TEXT    NOT NULL,
    postback      TEXT    NOT NULL,
    -- now | after | slot | range | decline
    kind          TEXT    NOT NULL,
    delay_seconds BIGINT,
    start_at      TIMESTAMPTZ,
    end_at        TIMESTAMPTZ,
    PRIMARY KEY (request_id, position)
);

CREATE TABLE inbound_messages (
    provider            TEXT    NOT NULL,
    provider_message_id TEXT    NOT NULL,
    request_id          TEXT,
    from_number         TEXT,
    payload_sha256      TEXT    NOT NULL,
    signature_valid     BOOLEAN NOT NULL,
    sent_at             TIMESTAMPTZ,
    received_at         TIMESTAMPTZ NOT NULL,
    -- what slotgate made of it: answered | revoked | unclear | ignored
    outcome             TEXT    NOT NULL,
    PRIMARY KEY (provider, provider_message_id)
);
