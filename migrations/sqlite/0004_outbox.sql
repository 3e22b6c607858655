-- The CRM webhook outbox. Every consent change that an enterprise's CRM
-- must hear about is written here in the same transaction as the change
-- itself, so a change is never committed without its event (nor an event
-- without its change); a deliverer then posts the rows, at least once.
--
-- seq orders the events of one person: an event is delivered only when no
-- older event for the same (enterprise, person) is still pending.
-- payload is the exact JSON body that is posted (and signed), so every
-- retry sends the same bytes.
-- state is 'pending', 'delivered' or 'dead' (gave up; an operator can
-- re-drive it).

CREATE TABLE webhook_outbox (
    seq             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    enterprise_id   TEXT    NOT NULL REFERENCES enterprises (id),
    person_id       TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT,
    last_status     INTEGER,
    delivered_at    TEXT
);

-- The deliverer's scan: pending events that are due.
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at)
    WHERE state = 'pending';

-- "Is an older event of this person still pending?"
CREATE INDEX webhook_outbox_person ON webhook_outbox (enterprise_id, person_id, seq)
    WHERE state = 'pending';

-- The admin listing by state (dead events above all).
CREATE INDEX webhook_outbox_state ON webhook_outbox (state, seq);
