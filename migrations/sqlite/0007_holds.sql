-- The gate: INVITEs held while the person is asked, and the callbacks
-- their answers schedule.
--
-- holds is one row per INVITE the gate held. Its state is the hand-off
-- between the node holding the INVITE and whoever stores the person's
-- answer (any node): while 'held', an answer "now" is the holding node's to
-- act on; once the hold has ended ('ended', or 'forwarded' by the no-reply
-- policy) the answer schedules a callback instead, so a late reply is never
-- lost and a dead INVITE is never forwarded. Every writer of a hold's fate
-- locks its row first, so the two sides cannot both miss it.
--
-- scheduled_callbacks holds everything needed to place the call later
-- (the pacing engine claims them): one per consent request at most, written
-- before the PBX hears the final response.
--
-- calls notes what the gate decided and the request it held the call for.
--
-- Every prompt reads the person's past prompts (ranking, cool-down, weekly
-- cap) by person and time: without an index that is a scan of every
-- request, which a burst of held INVITEs turns quadratic.

ALTER TABLE calls ADD COLUMN gate_decision TEXT;
ALTER TABLE calls ADD COLUMN consent_request_id TEXT;

ALTER TABLE consent_requests ADD COLUMN consent_id TEXT;
CREATE INDEX consent_requests_person ON consent_requests (person_id, created_at);

CREATE TABLE holds (
    id            TEXT NOT NULL PRIMARY KEY,
    request_id    TEXT NOT NULL REFERENCES consent_requests (id),
    enterprise_id TEXT NOT NULL,
    campaign      TEXT NOT NULL,
    callee        TEXT NOT NULL,
    -- The PBX's From URI, and where to reach the caller back on the PBX.
    caller        TEXT NOT NULL,
    pbx_target    TEXT NOT NULL,
    -- held | forwarded | ended
    state         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    ended_at      TEXT
);

CREATE UNIQUE INDEX holds_request ON holds (request_id);

CREATE TABLE scheduled_callbacks (
    id            TEXT NOT NULL PRIMARY KEY,
    request_id    TEXT NOT NULL REFERENCES consent_requests (id),
    hold_id       TEXT NOT NULL REFERENCES holds (id),
    enterprise_id TEXT NOT NULL,
    campaign      TEXT NOT NULL,
    callee        TEXT NOT NULL,
    caller        TEXT NOT NULL,
    pbx_target    TEXT NOT NULL,
    consent_id    TEXT,
    slot_start    TEXT NOT NULL,
    slot_end      TEXT NOT NULL,
    -- pending | claimed | dialled | done | cancelled
    status        TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE UNIQUE INDEX scheduled_callbacks_request ON scheduled_callbacks (request_id);
CREATE INDEX scheduled_callbacks_due ON scheduled_callbacks (status, slot_start);
