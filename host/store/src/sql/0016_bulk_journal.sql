-- What a bulk create written in slices (one transaction each) has made so far: forgotten when
-- the request ends; what a server killed in the middle left is deleted by the next sweep.
CREATE TABLE IF NOT EXISTS bulk_journal (
    bulk_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    item_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (bulk_id, item_id)
);
CREATE INDEX IF NOT EXISTS bulk_journal_created ON bulk_journal (created_at);
