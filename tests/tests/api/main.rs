//! The API's integration tests, one binary (as wasmtime's `tests/all`): a change relinks this
//! binary once instead of one per file. Each module is one resource or concern; most tests run
//! on SQLite and on PostgreSQL (`neutrino_tests::api::both_backends!`).

mod agent_credentials;
mod agents;
mod auto_allocated_topology;
mod binding;
mod binding_after_commit;
mod bulk;
mod bulk_slices;
mod dhcp_agent_scheduler;
mod disk_full;
mod floating_ips;
mod host_feed;
mod keystone;
mod limits;
mod lists;
mod networks;
mod observability;
mod openapi;
mod outage;
mod pg_errors;
mod quotas;
mod routers;
mod security_groups;
mod servers;
mod shared_networks;
mod subnet_pools;
mod subnets_ports;
mod tags;
