-- Portable between SQLite and PostgreSQL: TEXT and BIGINT only (booleans as 0/1: sqlx's Any
-- driver cannot read SQLite booleans); JSON kept as TEXT.
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    admin_state_up BIGINT NOT NULL,
    status TEXT NOT NULL,
    shared BIGINT NOT NULL,
    external BIGINT NOT NULL,
    is_default BIGINT NOT NULL,
    port_security_enabled BIGINT NOT NULL,
    mtu BIGINT NOT NULL,
    network_type TEXT NOT NULL,
    physical_network TEXT,
    segmentation_id BIGINT,
    availability_zone_hints TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS networks_project ON networks (project_id);
-- One row per segment id in use: the primary key is what makes VlanIdInUse / TunnelIdInUse
-- safe under concurrency, on one server or many sharing PostgreSQL.
CREATE TABLE IF NOT EXISTS segment_allocations (
    network_type TEXT NOT NULL,
    physical_network TEXT NOT NULL,
    segmentation_id BIGINT NOT NULL,
    -- Deferred: the segment is claimed before the network row that uses it is written.
    network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (network_type, physical_network, segmentation_id)
);
