-- Campaigns as data: what the dialler reads to place a campaign's
-- scheduled callbacks, and the outcomes of the calls it places.
--
-- A campaign belongs to an enterprise; its id is chosen by the enterprise
-- and is the campaign name the gate writes on scheduled callbacks, so the
-- dialler finds a callback's campaign by (enterprise_id, campaign).
-- settings, machine_policy, strategy and agents are JSON written by the
-- application after validation (pacing::campaign, pacing::strategy);
-- strategy NULL means the default strategy. version counts configuration
-- changes (settings, targets, policies, state, strategy) so that two
-- operators cannot silently overwrite each other; agents change with the
-- ACD's reports and do not bump it.
--
-- call_outcomes keeps one row per call the dialler ended, so that the legal
-- abandon rate (30 days in the US, 24 hours in the UK) and the campaign's
-- statistics survive restarts. Rows outlive their campaign: a campaign
-- deleted and created again under the same name keeps its abandon history.
-- attempt_id is unique when given, so a retried write is harmless.
--
-- No foreign key to enterprises: an enterprise's deletion (admin API) is
-- decided by its consent history, and a campaign row must not turn that
-- into a database error.
--
-- campaigns.state: active | paused
-- call_outcomes.outcome: answered | busy | no-answer | failed | machine |
--   abandoned | agent-unavailable | dropped

CREATE TABLE campaigns (
    enterprise_id     TEXT NOT NULL,
    id                TEXT NOT NULL,
    settings          TEXT NOT NULL,
    agent_target      TEXT,
    abandon_message   TEXT,
    machine_policy    TEXT NOT NULL,
    strategy          TEXT,
    agents            TEXT NOT NULL,
    agents_updated_at TEXT,
    state             TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    version           BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, id)
);

CREATE INDEX campaigns_state ON campaigns (state);

CREATE TABLE call_outcomes (
    id            TEXT NOT NULL PRIMARY KEY,
    enterprise_id TEXT NOT NULL,
    campaign      TEXT NOT NULL,
    attempt_id    TEXT,
    outcome       TEXT NOT NULL,
    at            TEXT NOT NULL
);

CREATE INDEX call_outcomes_campaign ON call_outcomes (enterprise_id, campaign, at);
CREATE UNIQUE INDEX call_outcomes_attempt ON call_outcomes (attempt_id)
    WHERE attempt_id IS NOT NULL;

-- The statistics count a campaign's callbacks by status and slot.
CREATE INDEX scheduled_callbacks_campaign
    ON scheduled_callbacks (enterprise_id, campaign, status, slot_start);
