-- The routers with an interface on a subnet (a floating IP's association, a route's check):
-- found from the few router interface ports (this partial index) and each one's allocation on
-- the subnet, not by reading every allocation of the subnet (100,000 ports on one subnet:
-- 63-97 ms per association against 2 ms, SQLite).
CREATE INDEX IF NOT EXISTS ports_router_interfaces ON ports (device_owner)
    WHERE device_owner = 'network:router_interface';
-- A floating IP's external port: the port API's deletion check.
CREATE INDEX IF NOT EXISTS floatingips_floating_port ON floatingips (floating_port_id);
-- Shared networks: what Nova offers every project a boot names no network for (with the
-- project's own, found by networks_list_project), without reading every network.
CREATE INDEX IF NOT EXISTS networks_shared ON networks (shared) WHERE shared = 1;
