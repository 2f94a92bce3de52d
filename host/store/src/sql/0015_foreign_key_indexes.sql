-- A network's segment allocation by network id. Without it SQLite scanned every allocation
-- when a network row was written while its deferred allocation was still unmatched (each
-- network create: linear in the number of networks), and on every network delete (the cascade).
CREATE INDEX IF NOT EXISTS segment_allocations_network ON segment_allocations (network_id);
-- The same for a security group's delete, which looks for it among the projects' defaults.
CREATE INDEX IF NOT EXISTS default_security_groups_group ON default_security_groups (security_group_id);
