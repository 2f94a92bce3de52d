-- One credential per host for the agents' internal API: only the SHA-256 of the token (hex) is
-- kept. Enrolling a host again replaces its token; revoking deletes the row.
CREATE TABLE IF NOT EXISTS agent_credentials (
    host TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS agent_credentials_token ON agent_credentials (token_sha256);
