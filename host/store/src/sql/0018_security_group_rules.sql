-- Security groups served through the API: a group's statefulness, its rules, and Neutron's
-- default rules for the `default` groups made before rules were kept (made on first need by
-- ports since 0002). Backfilled here, once, rather than on first read: every later reader (the
-- API, and the hosts' firewalls to come) can rely on a default group having its rules.
ALTER TABLE security_groups ADD COLUMN stateful BIGINT NOT NULL DEFAULT 1;
CREATE INDEX IF NOT EXISTS security_groups_project ON security_groups (project_id);
CREATE TABLE IF NOT EXISTS security_group_rules (
    id TEXT PRIMARY KEY,
    -- Always the group's project.
    project_id TEXT NOT NULL,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
    direction TEXT NOT NULL,
    ethertype TEXT NOT NULL,
    -- As shown: a lower-case name or a decimal number (NULL: any).
    protocol TEXT,
    port_range_min BIGINT,
    port_range_max BIGINT,
    remote_ip_prefix TEXT,
    remote_group_id TEXT REFERENCES security_groups (id) ON DELETE CASCADE,
    description TEXT,
    -- Neutron's duplicate-detection key (the rule's fields, normalised): the unique index
    -- makes SecurityGroupRuleExists safe under concurrency.
    match_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS security_group_rules_match ON security_group_rules (security_group_id, match_key);
CREATE INDEX IF NOT EXISTS security_group_rules_remote ON security_group_rules (remote_group_id);
CREATE INDEX IF NOT EXISTS security_group_rules_project ON security_group_rules (project_id);
-- Egress to anywhere (IPv4, IPv6), ingress from the group itself (IPv4, IPv6). The ids are
-- random version-4 UUIDs, as `new_id` makes them.
INSERT INTO security_group_rules (id, project_id, security_group_id, direction, ethertype, remote_group_id, match_key, created_at, updated_at, revision_number)
SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
       g.project_id, g.id, r.direction, r.ethertype,
       CASE WHEN r.direction = 'ingress' THEN g.id END,
       r.direction || '|' || r.ethertype || '|+|+|+|' || CASE WHEN r.direction = 'ingress' THEN g.id ELSE '+' END || '|+|+',
       g.created_at, g.created_at, 0
FROM default_security_groups d
JOIN security_groups g ON g.id = d.security_group_id
CROSS JOIN (SELECT 'egress' AS direction, 'IPv4' AS ethertype UNION ALL SELECT 'egress', 'IPv6'
            UNION ALL SELECT 'ingress', 'IPv4' UNION ALL SELECT 'ingress', 'IPv6') r
WHERE NOT EXISTS (SELECT 1 FROM security_group_rules x WHERE x.security_group_id = g.id)
