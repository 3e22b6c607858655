-- Call detail records: one row per call through the B2BUA, written in
-- batches off the SIP path by the call recorder.
--
-- Times are TEXT in RFC 3339 UTC with exactly six fractional digits
-- (2024-03-05T10:11:12.123456Z): fixed width makes text order equal time
-- order, so the started_at index serves "newest first", and the sqlite3 shell
-- and SQLite's date functions read the values as they are.
--
-- No CHECK constraints on purpose: the recorder retries a failing batch until
-- it is written, so a row the database refuses would block every record
-- behind it. Values are validated where they are produced.
CREATE TABLE calls (
    id           TEXT    NOT NULL PRIMARY KEY,
    a_call_id    TEXT    NOT NULL,
    b_call_id    TEXT,
    source       TEXT    NOT NULL,
    from_uri     TEXT    NOT NULL,
    to_uri       TEXT    NOT NULL,
    request_uri  TEXT    NOT NULL,
    started_at   TEXT    NOT NULL,
    answered_at  TEXT,
    ended_at     TEXT    NOT NULL,
    final_status INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    ended_by     TEXT
);

CREATE INDEX calls_a_call_id ON calls (a_call_id);
CREATE INDEX calls_started_at ON calls (started_at);
