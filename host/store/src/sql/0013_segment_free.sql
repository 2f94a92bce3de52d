-- The free segmentation ids of each tenant pool (network type and physical network) as
-- disjoint-or-overlapping ranges, so that the lowest free id is one indexed row, not a walk over
-- every allocated id (issue 12). segment_allocations stays the truth: a range may name an id
-- that is taken (it is skipped when met), but every free id of the pool's range is in one.
CREATE TABLE IF NOT EXISTS segment_free (
    network_type TEXT NOT NULL,
    physical_network TEXT NOT NULL,
    first_id BIGINT NOT NULL,
    last_id BIGINT NOT NULL,
    PRIMARY KEY (network_type, physical_network, first_id)
);
-- The range segment_free was built for, per pool: a server configured with another range
-- builds it again from segment_allocations.
CREATE TABLE IF NOT EXISTS segment_pools (
    network_type TEXT NOT NULL,
    physical_network TEXT NOT NULL,
    range_low BIGINT NOT NULL,
    range_high BIGINT NOT NULL,
    PRIMARY KEY (network_type, physical_network)
);
