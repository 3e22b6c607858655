-- Caller ID: numbers set on people, pool numbers flagged by the operator,
-- and what the selection chain chose for each call.
--
-- caller_id_overrides is rule 1 of the chain: the number a person is shown
-- calls from for one enterprise. It is read with the gate's facts about
-- the callee, so it reaches the call without a read of its own.
--
-- caller_id_flags rests a pool number (reported as spam, say) until
-- flagged_until. The store is where every node learns of a flag and where
-- it survives a restart; each node's SIP loop loads the rows into its pool
-- state. An expired row flags nothing and may stay.
--
-- calls keeps the chain's answer: the number shown, the rule that chose
-- it, why the earlier rules did not apply, and the PASSporT's origid, so a
-- complaint about a call can be traced to the signature that vouched for it.
--
-- Times are RFC 3339 UTC text with six fractional digits, as in 0001.

CREATE TABLE caller_id_overrides (
    person_id     TEXT NOT NULL REFERENCES persons (id),
    enterprise_id TEXT NOT NULL REFERENCES enterprises (id),
    number        TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (person_id, enterprise_id)
);

CREATE INDEX caller_id_overrides_enterprise ON caller_id_overrides (enterprise_id);

CREATE TABLE caller_id_flags (
    number        TEXT NOT NULL PRIMARY KEY,
    flagged_until TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

ALTER TABLE calls ADD COLUMN caller_id_number TEXT;
ALTER TABLE calls ADD COLUMN caller_id_rule TEXT;
ALTER TABLE calls ADD COLUMN caller_id_why TEXT;
ALTER TABLE calls ADD COLUMN identity_origid TEXT;
