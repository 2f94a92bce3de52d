-- Subnet pools (`subnet_allocation`, `default-subnetpools`). Portable types as 0001: TEXT and
-- BIGINT only, booleans as 0/1, the prefixes a JSON list kept as TEXT.
CREATE TABLE IF NOT EXISTS subnetpools (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    ip_version BIGINT NOT NULL,
    -- Compacted (the fewest CIDRs covering them), in address order.
    prefixes TEXT NOT NULL,
    default_prefixlen BIGINT NOT NULL,
    min_prefixlen BIGINT NOT NULL,
    max_prefixlen BIGINT NOT NULL,
    default_quota BIGINT,
    shared BIGINT NOT NULL,
    is_default BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS subnetpools_project ON subnetpools (project_id);
-- One default pool per IP version, safe under concurrency.
CREATE UNIQUE INDEX IF NOT EXISTS subnetpools_one_default ON subnetpools (ip_version)
    WHERE is_default = 1;
-- The pool a subnet was allocated from: what keeps the pool from being deleted, and what its
-- per-project prefix quota counts.
ALTER TABLE subnets ADD COLUMN subnetpool_id TEXT;
CREATE INDEX IF NOT EXISTS subnets_subnetpool ON subnets (subnetpool_id, project_id);
-- Each pool's free space as the fewest aligned blocks (no two of them buddies), keyed as
-- ip_free_ranges are (32 hex digits: text order is numeric order). The best fit for a prefix
-- length is two index seeks on the second index (the longest free length not longer than the
-- one asked for, then its lowest block), however many subnets the pool holds; a specific CIDR
-- is one seek on the primary key (the block at or before its first address).
CREATE TABLE IF NOT EXISTS subnetpool_free_blocks (
    subnetpool_id TEXT NOT NULL REFERENCES subnetpools (id) ON DELETE CASCADE,
    first_ip TEXT NOT NULL,
    prefixlen BIGINT NOT NULL,
    PRIMARY KEY (subnetpool_id, first_ip)
);
CREATE INDEX IF NOT EXISTS subnetpool_free_blocks_fit
    ON subnetpool_free_blocks (subnetpool_id, prefixlen, first_ip);
