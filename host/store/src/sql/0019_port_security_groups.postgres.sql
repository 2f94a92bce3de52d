-- Which ports are in which security group, beside the ports' `security_groups` column: a
-- group's members (for remote-group rules on the hosts) and whether it is in use are found
-- by index instead of by reading every port.
CREATE TABLE IF NOT EXISTS port_security_groups (
    port_id TEXT NOT NULL,
    security_group_id TEXT NOT NULL,
    PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX IF NOT EXISTS port_security_groups_group ON port_security_groups (security_group_id, port_id);
INSERT INTO port_security_groups (port_id, security_group_id)
    SELECT p.id, j FROM ports p, jsonb_array_elements_text(p.security_groups::jsonb) j
    ON CONFLICT DO NOTHING;
