-- What the enterprise API keeps beside a consent request: the caller's
-- Idempotency-Key (so a retried POST finds the request it already made)
-- with a digest of the body it came with (so a reused key with another
-- body is refused rather than answered with the wrong request),
-- and the wording hints (locale, personalisation fields as a JSON object)
-- that the channels will use when they send the prompt.

CREATE TABLE api_consent_requests (
    request_id      TEXT NOT NULL PRIMARY KEY REFERENCES consent_requests (id),
    enterprise_id   TEXT NOT NULL REFERENCES enterprises (id),
    idempotency_key TEXT,
    body_digest     TEXT NOT NULL,
    locale          TEXT,
    personalisation TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

-- Several NULL keys are allowed; a key is unique within one enterprise.
CREATE UNIQUE INDEX api_consent_requests_idempotency
    ON api_consent_requests (enterprise_id, idempotency_key);
