-- Each membership row carries its port's binding host, so that the hosts a group has bound
-- ports on are found by stepping through an index (one probe per host) rather than by reading
-- every member port: a port joining the default group of a project with 200,000 ports cost
-- 0.26 s before.
ALTER TABLE port_security_groups ADD COLUMN host TEXT NOT NULL DEFAULT '';
UPDATE port_security_groups SET host = COALESCE((SELECT p.binding_host FROM ports p WHERE p.id = port_security_groups.port_id), '');
CREATE INDEX IF NOT EXISTS port_security_groups_host ON port_security_groups (security_group_id, host);
