-- PostgreSQL's version of 0007_lists.sql. Lists sort and compare text bytewise (COLLATE "C",
-- as SQLite does by default, whatever the database's collation), and an index only serves a
-- query of its collation, so these are built with it, the id's own included (the primary key
-- has the database's collation). The existing indexes stay: other queries compare with the
-- database's collation.
CREATE INDEX IF NOT EXISTS ports_list_id ON ports (id COLLATE "C");
CREATE INDEX IF NOT EXISTS ports_list_project ON ports (project_id COLLATE "C", id COLLATE "C");
CREATE INDEX IF NOT EXISTS ports_list_network ON ports (network_id COLLATE "C", id COLLATE "C");
CREATE INDEX IF NOT EXISTS ports_list_device ON ports (device_id COLLATE "C", id COLLATE "C");
CREATE INDEX IF NOT EXISTS networks_list_id ON networks (id COLLATE "C");
CREATE INDEX IF NOT EXISTS networks_list_project ON networks (project_id COLLATE "C", id COLLATE "C");
CREATE INDEX IF NOT EXISTS networks_list_name ON networks (name COLLATE "C", id COLLATE "C");
CREATE INDEX IF NOT EXISTS subnets_list_id ON subnets (id COLLATE "C");
CREATE INDEX IF NOT EXISTS subnets_list_project ON subnets (project_id COLLATE "C", id COLLATE "C");
CREATE INDEX IF NOT EXISTS subnets_list_network ON subnets (network_id COLLATE "C", id COLLATE "C");
CREATE INDEX IF NOT EXISTS subnets_list_name ON subnets (name COLLATE "C", id COLLATE "C");
