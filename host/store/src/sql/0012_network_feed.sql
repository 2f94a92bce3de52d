-- The network half of the change feed (l2population): a network whose set of bound ports
-- changed (a port bound, moved, unbound, deleted, or its MAC changed) gets the revision of
-- the transaction that changed it. Every host with a port bound on the network hears of it on
-- its next poll and is told the network's peers again (the other hosts' tunnel endpoints and
-- their ports' MACs). One row per network: the table grows with the networks, not the changes.
CREATE TABLE IF NOT EXISTS network_feed (
    network_id TEXT PRIMARY KEY,
    revision BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS network_feed_revision ON network_feed (revision);
