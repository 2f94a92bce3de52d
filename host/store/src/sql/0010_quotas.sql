-- Quota overrides: one row per (project, resource) an admin set; a resource without a row has
-- the default limit. -1 is unlimited.
CREATE TABLE IF NOT EXISTS quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
);
