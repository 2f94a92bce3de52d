-- Lists are answered by the database in keyset pages: ORDER BY the sort keys, then the id, and
-- the next page starts after the last row's keys (store::listing). One index per common order
-- or narrowing, each ending with the id, so that a page is an index seek whatever its depth.
-- On SQLite the indexes they extend are dropped (a prefix of an index serves the same
-- lookups). PostgreSQL has its own version of this file (bytewise collation).
CREATE INDEX IF NOT EXISTS ports_list_project ON ports (project_id, id);
CREATE INDEX IF NOT EXISTS ports_list_network ON ports (network_id, id);
CREATE INDEX IF NOT EXISTS ports_list_device ON ports (device_id, id);
CREATE INDEX IF NOT EXISTS ports_list_name ON ports (name, id);
CREATE INDEX IF NOT EXISTS ports_list_mac ON ports (mac_address, id);
CREATE INDEX IF NOT EXISTS ports_list_created ON ports (created_at, id);
CREATE INDEX IF NOT EXISTS ports_list_owner ON ports (device_owner, id);
CREATE INDEX IF NOT EXISTS ports_list_host ON ports (binding_host, id);
DROP INDEX IF EXISTS ports_project;
DROP INDEX IF EXISTS ports_device;
CREATE INDEX IF NOT EXISTS networks_list_project ON networks (project_id, id);
CREATE INDEX IF NOT EXISTS networks_list_name ON networks (name, id);
DROP INDEX IF EXISTS networks_project;
CREATE INDEX IF NOT EXISTS subnets_list_project ON subnets (project_id, id);
CREATE INDEX IF NOT EXISTS subnets_list_network ON subnets (network_id, id);
CREATE INDEX IF NOT EXISTS subnets_list_name ON subnets (name, id);
DROP INDEX IF EXISTS subnets_network;
