-- Tags of the resources that carry Neutron's standard attributes (`standard-attr-tag`), all in
-- one table. The primary key answers "this resource's tags" and "has this resource this tag"
-- (show, and the `not-tags` filters as NOT EXISTS probes); the second index answers "which
-- resources have this tag" (the `tags` and `tags-any` filters as semi-joins), so neither kind
-- of filter reads every tag row of every resource listed.
CREATE TABLE IF NOT EXISTS tags (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, tag)
);
CREATE INDEX IF NOT EXISTS tags_by_tag ON tags (resource_type, tag, resource_id);
