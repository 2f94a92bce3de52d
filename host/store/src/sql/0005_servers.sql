-- Instances of the minimal compute API (/v2.1/servers): a network namespace with one NIC per
-- port, placed on one host. The agent of that host learns of them through the change feed.
CREATE TABLE IF NOT EXISTS servers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    -- '' when no host could be found for it.
    host TEXT NOT NULL,
    -- BUILD, ACTIVE or ERROR, as Nova shows it.
    status TEXT NOT NULL,
    -- Why the server is in ERROR (Nova's `fault.message`).
    fault TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- A server still in BUILD after this time (fixed-width UTC text, so text order is time
    -- order) goes to ERROR.
    build_deadline TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS servers_host ON servers (host);
CREATE INDEX IF NOT EXISTS servers_project ON servers (project_id);
-- The timeout sweep reads only the boots past their deadline.
CREATE INDEX IF NOT EXISTS servers_building ON servers (status, build_deadline);
-- The server's NICs, in the order its networks were given (eth0, eth1, ...).
CREATE TABLE IF NOT EXISTS server_nics (
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    port_id TEXT NOT NULL,
    interface_name TEXT NOT NULL,
    -- 1 when the server created the port (deleted with the server), 0 when it was given.
    created_port BIGINT NOT NULL,
    -- The address the NIC's DHCP client holds, as the agent reported it.
    leased_ip TEXT,
    PRIMARY KEY (server_id, position)
);
CREATE INDEX IF NOT EXISTS server_nics_port ON server_nics (port_id);
