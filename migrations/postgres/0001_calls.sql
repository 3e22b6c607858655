-- Call detail records: one row per call through the B2BUA, written in
-- batches off the SIP path by the call recorder.
--
-- No CHECK constraints on purpose: the recorder retries a failing batch until
-- it is written, so a row the database refuses would block every record
-- behind it. Values are validated where they are produced.
CREATE TABLE calls (
    id           TEXT        NOT NULL PRIMARY KEY,
    a_call_id    TEXT        NOT NULL,
    b_call_id    TEXT,
    source       TEXT        NOT NULL,
    from_uri     TEXT        NOT NULL,
    to_uri       TEXT        NOT NULL,
    request_uri  TEXT        NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    answered_at  TIMESTAMPTZ,
    ended_at     TIMESTAMPTZ NOT NULL,
    final_status INTEGER     NOT NULL,
    reason       TEXT        NOT NULL,
    ended_by     TEXT
);

CREATE INDEX calls_a_call_id ON calls (a_call_id);
CREATE INDEX calls_started_at ON calls (started_at);
