-- Agents register themselves by reporting heartbeats (POST /internal/agents/report); one row per
-- (agent_type, host), as in Neutron. Timestamps are UTC text of fixed width
-- (2026-11-22T03:59:46.123456Z), so that text order is time order on both engines.
-- "binary" is quoted everywhere: it is a reserved word in PostgreSQL.
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    agent_type TEXT NOT NULL,
    "binary" TEXT NOT NULL,
    topic TEXT NOT NULL,
    host TEXT NOT NULL,
    admin_state_up BIGINT NOT NULL,
    description TEXT,
    availability_zone TEXT,
    -- The reported dict, as JSON.
    configurations TEXT NOT NULL,
    resources_synced BIGINT,
    created_at TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    UNIQUE (agent_type, host)
);
-- Port binding asks for the agents of one host.
CREATE INDEX IF NOT EXISTS agents_host ON agents (host);
