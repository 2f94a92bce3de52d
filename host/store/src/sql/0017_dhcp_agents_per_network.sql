-- Several DHCP agents may serve one network (Neutron's dhcp_agents_per_network): a hosting is
-- a (network, host) pair, each with the DHCP port that host serves the network with.
CREATE TABLE dhcp_hosting_by_host (
    network_id TEXT NOT NULL REFERENCES networks (id),
    host TEXT NOT NULL,
    port_id TEXT NOT NULL,
    PRIMARY KEY (network_id, host)
);
INSERT INTO dhcp_hosting_by_host (network_id, host, port_id)
    SELECT network_id, host, port_id FROM dhcp_hosting;
DROP TABLE dhcp_hosting;
ALTER TABLE dhcp_hosting_by_host RENAME TO dhcp_hosting;
CREATE INDEX dhcp_hosting_host ON dhcp_hosting (host);
