-- Subnets, ports, their addresses, and the free ranges IPAM allocates from. Same portable
-- types as 0001: TEXT and BIGINT only, JSON lists kept as TEXT.
CREATE TABLE IF NOT EXISTS subnets (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    ip_version BIGINT NOT NULL,
    cidr TEXT NOT NULL,
    gateway_ip TEXT,
    enable_dhcp BIGINT NOT NULL,
    ipv6_ra_mode TEXT,
    ipv6_address_mode TEXT,
    allocation_pools TEXT NOT NULL,
    dns_nameservers TEXT NOT NULL,
    host_routes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS subnets_network ON subnets (network_id);
CREATE TABLE IF NOT EXISTS ports (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    mac_address TEXT NOT NULL,
    admin_state_up BIGINT NOT NULL,
    status TEXT NOT NULL,
    device_id TEXT NOT NULL,
    device_owner TEXT NOT NULL,
    port_security_enabled BIGINT NOT NULL,
    security_groups TEXT NOT NULL,
    allowed_address_pairs TEXT NOT NULL,
    extra_dhcp_opts TEXT NOT NULL,
    dns_name TEXT NOT NULL,
    binding_host TEXT NOT NULL,
    binding_vnic_type TEXT NOT NULL,
    binding_profile TEXT NOT NULL,
    binding_vif_type TEXT NOT NULL,
    binding_vif_details TEXT NOT NULL,
    -- Every driver's decision of the last binding (GET /v2.0/ports/{id}/binding).
    binding_result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    -- MacAddressInUse, safe under concurrency.
    UNIQUE (network_id, mac_address)
);
CREATE INDEX IF NOT EXISTS ports_project ON ports (project_id);
CREATE INDEX IF NOT EXISTS ports_device ON ports (device_id);
-- One row per address held: the primary key is what makes IpAddressAlreadyAllocated safe under
-- concurrency. ip_key is the address as 32 hex digits (numeric order as text order).
CREATE TABLE IF NOT EXISTS ip_allocations (
    subnet_id TEXT NOT NULL REFERENCES subnets (id),
    ip_key TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    port_id TEXT NOT NULL REFERENCES ports (id) DEFERRABLE INITIALLY DEFERRED,
    -- Position in the port's fixed_ips, which keep the order they were given in.
    position BIGINT NOT NULL,
    PRIMARY KEY (subnet_id, ip_key)
);
CREATE INDEX IF NOT EXISTS ip_allocations_port ON ip_allocations (port_id);
CREATE INDEX IF NOT EXISTS ip_allocations_address ON ip_allocations (ip_address);
-- Free addresses of each subnet's pools as disjoint ranges: the lowest free address is the
-- first row in index order, so allocation is O(log n) however full the subnet is.
CREATE TABLE IF NOT EXISTS ip_free_ranges (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    first_ip TEXT NOT NULL,
    last_ip TEXT NOT NULL,
    PRIMARY KEY (subnet_id, first_ip)
);
CREATE INDEX IF NOT EXISTS ip_free_ranges_last ON ip_free_ranges (subnet_id, last_ip);
CREATE TABLE IF NOT EXISTS security_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
-- A project's `default` group, made on first use; the key makes that race-free.
CREATE TABLE IF NOT EXISTS default_security_groups (
    project_id TEXT PRIMARY KEY,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id)
);
