-- The durable scheduler: each scheduled callback is placed exactly once,
-- whichever node places it and whenever a node dies.
--
-- A node claims due callbacks ('pending', slot started) by writing its name
-- in claimed_by and a lease in lease_until, status 'claimed'. A claim whose
-- lease has run out may be taken by another node, but only when no attempt
-- had begun: a node that died before dialling lost nothing.
--
-- callback_attempts is written, state 'dialling', and committed before any
-- INVITE leaves: its id is the attempt's X-Slotgate-Attempt. So the database
-- always knows a call may have been placed. The attempt ends with the
-- call's outcome (answered, busy, no-answer, failed), which settles the
-- callback: 'done', or back to 'pending' when the outcome is worth another
-- try (busy, no-answer).
--
-- A lease that ran out with an attempt still 'dialling' means the node died
-- mid-dial: the person may have been called. The next claim marks that
-- attempt 'outcome-unknown' and the callback 'unknown' instead of dialling
-- again, and leaves it to an operator or a policy: a second call to someone
-- who already answered is worse than a missed one.
--
-- The partial unique index keeps at most one attempt dialling per callback,
-- whatever the application does.
--
-- scheduled_callbacks.status: pending | claimed | done | unknown | cancelled

ALTER TABLE scheduled_callbacks ADD COLUMN claimed_by TEXT;
ALTER TABLE scheduled_callbacks ADD COLUMN lease_until TEXT;

CREATE TABLE callback_attempts (
    id            TEXT NOT NULL PRIMARY KEY,
    callback_id   TEXT NOT NULL REFERENCES scheduled_callbacks (id),
    node          TEXT NOT NULL,
    -- dialling | answered | busy | no-answer | failed | outcome-unknown
    state         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    finished_at   TEXT
);

CREATE INDEX callback_attempts_callback ON callback_attempts (callback_id, created_at);
CREATE UNIQUE INDEX callback_attempts_one_dialling ON callback_attempts (callback_id)
    WHERE state = 'dialling';
