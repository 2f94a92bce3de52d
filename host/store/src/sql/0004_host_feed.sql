-- The change feed agents watch (GET /internal/hosts/{host}/changes). Every transaction that
-- changes something a host must act on bumps the one revision counter and upserts a row per
-- (host, kind, object) with the new revision. The counter's row lock makes revisions follow
-- commit order on PostgreSQL, so an agent reading "everything after N" never skips an entry
-- committed later with a smaller number. Only the latest entry per object is kept: the feed
-- grows with the objects a host ever had, not with the number of changes.
CREATE TABLE IF NOT EXISTS feed_revision (
    id BIGINT PRIMARY KEY,
    revision BIGINT NOT NULL
);
INSERT INTO feed_revision (id, revision) VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS host_feed (
    host TEXT NOT NULL,
    -- port | dhcp_network | instance
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (host, kind, object_id)
);
CREATE INDEX IF NOT EXISTS host_feed_revision ON host_feed (host, revision);
