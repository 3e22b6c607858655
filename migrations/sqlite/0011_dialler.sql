-- What the dialler needs of the durable scheduler beyond claiming.
--
-- retry_at: a callback back in 'pending' after a busy line or no answer, or
-- deferred because calling hours are closed, waits until then; its
-- slot_start stays the time the person chose. A claim takes a callback
-- only once both have passed.
--
-- settled_reason: why a callback ended without a call, or how an operator
-- resolved an 'unknown' one: 'do-not-call', 'revoked', 'no-calling-window',
-- 'strategy-done', 'operator: …'.
--
-- due_action: what to do when a pending callback is due: NULL, dial it;
-- 'prompt', send the person a prompt to pick another time (a campaign's
-- prompt pass) instead of calling.
--
-- scheduled_callbacks.status gains 'dropped' (settled without a call).

ALTER TABLE scheduled_callbacks ADD COLUMN retry_at TEXT;
ALTER TABLE scheduled_callbacks ADD COLUMN settled_reason TEXT;
ALTER TABLE scheduled_callbacks ADD COLUMN due_action TEXT;
