-- Which host's DHCP agent serves each network, and the DHCP port it serves it with. A network
-- has a row while it has a DHCP-enabled subnet and a live DHCP agent was found for it; a
-- network with a DHCP-enabled subnet and no row is waiting for an agent.
CREATE TABLE IF NOT EXISTS dhcp_hosting (
    network_id TEXT PRIMARY KEY REFERENCES networks (id),
    host TEXT NOT NULL,
    port_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dhcp_hosting_host ON dhcp_hosting (host);
-- `after=0` asks the feed for a full state: a feed that never recorded anything must not
-- answer revision 0, or an agent would be answered in full again and again. Revisions start
-- at 1.
UPDATE feed_revision SET revision = 1 WHERE id = 1 AND revision = 0;
