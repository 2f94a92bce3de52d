-- Ports waiting for their binding: written with a host but unbound, to be bound after their
-- transaction commits. A server that stops (or is killed) between the commit and the binding
-- leaves them so; the next start (and a periodic sweep) finds them through this index, which
-- holds only those ports, so it costs nothing to read and little to keep.
CREATE INDEX IF NOT EXISTS ports_binding_pending ON ports (id)
    WHERE binding_vif_type = 'unbound' AND binding_host <> '';
