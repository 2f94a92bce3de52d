-- Dynamic segments (Neutron's allocate_dynamic_segment): segments the host issued to a network
-- for a hierarchical binding (a VLAN on a physical network under a VXLAN network), one per
-- network, type and physical network. Each also holds its segmentation id in
-- segment_allocations, so no other network (provider or dynamic) can take it.
CREATE TABLE IF NOT EXISTS dynamic_segments (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    network_type TEXT NOT NULL,
    physical_network TEXT NOT NULL,
    segmentation_id BIGINT NOT NULL,
    mtu BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS dynamic_segments_place
    ON dynamic_segments (network_id, network_type, physical_network);
-- Which ports' bindings use which dynamic segment: a segment no port uses is released.
CREATE TABLE IF NOT EXISTS port_dynamic_segments (
    -- Deferred: a port bound in the transaction that creates it is bound before its row is written.
    port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    segment_id TEXT NOT NULL REFERENCES dynamic_segments (id) ON DELETE CASCADE,
    PRIMARY KEY (port_id, segment_id)
);
CREATE INDEX IF NOT EXISTS port_dynamic_segments_segment ON port_dynamic_segments (segment_id);
