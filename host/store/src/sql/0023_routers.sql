-- Routers, their L3 agent, floating IPs and auto-allocated topologies. Portable types as 0001:
-- TEXT and BIGINT only, booleans as 0/1, JSON lists kept as TEXT. A router's interfaces and its
-- gateway are ordinary ports (device_id = the router's id, device_owner
-- network:router_interface / network:router_gateway), found through ports_device.
CREATE TABLE IF NOT EXISTS routers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    admin_state_up BIGINT NOT NULL,
    status TEXT NOT NULL,
    -- The external gateway: its network and port (both NULL without one).
    gw_network_id TEXT,
    gw_port_id TEXT,
    enable_snat BIGINT NOT NULL,
    -- Extra routes: a JSON list of {"destination", "nexthop"}.
    routes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS routers_project ON routers (project_id);
CREATE INDEX IF NOT EXISTS routers_gw_network ON routers (gw_network_id);
-- The L3 agent (by host) serving each router: legacy routers have one.
CREATE TABLE IF NOT EXISTS router_hosting (
    router_id TEXT PRIMARY KEY REFERENCES routers (id) ON DELETE CASCADE,
    host TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS router_hosting_host ON router_hosting (host);
CREATE TABLE IF NOT EXISTS floatingips (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    description TEXT NOT NULL,
    floating_network_id TEXT NOT NULL REFERENCES networks (id),
    floating_ip_address TEXT NOT NULL,
    -- The external port holding the address (device_owner network:floatingip).
    floating_port_id TEXT NOT NULL,
    -- The association: all three NULL when disassociated.
    fixed_port_id TEXT,
    fixed_ip_address TEXT,
    router_id TEXT,
    last_known_router_id TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    -- FloatingIPPortAlreadyAssociated, safe under concurrency (NULLs never collide).
    UNIQUE (floating_network_id, fixed_port_id, fixed_ip_address)
);
CREATE INDEX IF NOT EXISTS floatingips_project ON floatingips (project_id);
CREATE INDEX IF NOT EXISTS floatingips_router ON floatingips (router_id);
CREATE INDEX IF NOT EXISTS floatingips_fixed_port ON floatingips (fixed_port_id);
-- One topology per project: the primary key settles concurrent first calls.
CREATE TABLE IF NOT EXISTS auto_allocated_topologies (
    project_id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL,
    router_id TEXT
);
