//! A server's ports, as Nova handles them with Neutron: created on the requested networks (the
//! API's own port creation: IPAM, MAC, security group, binding) or taken over when given, with
//! `device_id` = the server, `device_owner` = `compute:nova` and `binding:host_id` = its host;
//! released (created ones deleted, given ones cleared and unbound) when the boot fails or the
//! server is deleted. Every write happens in the caller's transaction, so a failed step leaves
//! nothing behind.

use serde_json::{Map, Value, json};

use std::net::IpAddr;

use crate::RequestContext;
use crate::Services;
use crate::error::{CoreResult, NeutronError};
use crate::{port_binding, ports};
use neutrino_store::feed::{self, FeedKind};
use neutrino_store::ports::{self as port_repo, Port};
use neutrino_store::servers::{self, Nic, Server};
use neutrino_store::{self as store, networks};

/// Nova's `compute:<availability zone>`.
pub const DEVICE_OWNER: &str = "compute:nova";

/// One NIC of a boot request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicRequest {
    /// `{"uuid": net}` or `{"uuid": net, "fixed_ip": ip}`: a port is created on the network.
    Network {
        network_id: String,
        fixed_ip: Option<IpAddr>,
    },
    /// `{"port": id}`: an existing port is used.
    Port { port_id: String },
}

/// A NIC request checked against the database before the host is chosen.
#[derive(Clone)]
pub enum PlannedNic {
    Create {
        body: Map<String, Value>,
        draft: Box<ports::Draft>,
    },
    Take {
        port_id: String,
    },
}

/// Checks every NIC request (networks visible, addresses valid, given ports visible and free)
/// and drafts the ports to create, in `security_groups` when given (ids); given ports keep
/// their own groups, as in Nova.
pub async fn plan(
    state: &Services,
    ctx: &RequestContext,
    server_id: &str,
    requests: &[NicRequest],
    security_groups: Option<&[String]>,
) -> CoreResult<Vec<PlannedNic>> {
    let mut planned = Vec::with_capacity(requests.len());
    for request in requests {
        planned.push(match request {
            NicRequest::Network {
                network_id,
                fixed_ip,
            } => {
                let mut body = json!({
                    "network_id": network_id,
                    "device_id": server_id,
                    "device_owner": DEVICE_OWNER,
                });
                if let Some(ip) = fixed_ip {
                    body["fixed_ips"] = json!([{"ip_address": ip.to_string()}]);
                }
                if let Some(groups) = security_groups {
                    body["security_groups"] = json!(groups);
                }
                let Value::Object(body) = body else {
                    unreachable!("a JSON object literal")
                };
                let draft = ports::draft(state, ctx, &body, ctx.project_id.clone()).await?;
                PlannedNic::Create {
                    body,
                    draft: Box::new(draft),
                }
            }
            NicRequest::Port { port_id } => {
                let mut conn = state.store.read_conn().await?;
                match port_repo::get(&mut conn, port_id).await? {
                    Some(p) if ctx.owns(&p.project_id) => check_free(&p)?,
                    _ => return Err(port_not_found(port_id)),
                }
                PlannedNic::Take {
                    port_id: port_id.clone(),
                }
            }
        });
    }
    Ok(planned)
}

/// A port and the NIC it became.
pub struct Attached {
    pub nic: Nic,
    pub port: Port,
}

/// Creates or takes over the planned ports for `server` (whose host is set), bound to its
/// host, in `tx`. Errors keep Neutron's type, so the caller can tell a retry from a refusal.
pub async fn attach(
    state: &Services,
    ctx: &RequestContext,
    tx: &mut store::Tx<'_>,
    server: &Server,
    planned: Vec<PlannedNic>,
) -> CoreResult<Vec<Attached>> {
    let mut attached = Vec::with_capacity(planned.len());
    for (position, nic) in planned.into_iter().enumerate() {
        let (port, created_port) = match nic {
            PlannedNic::Create { body, .. } => {
                // Drafted again in the transaction: a network deleted (or its subnets) since
                // the plan is NetworkNotFound here, not a port without addresses.
                let mut draft = ports::draft_in(tx, ctx, &body, ctx.project_id.clone()).await?;
                draft.set_binding_host(&server.host);
                // Bound after the boot's transaction commits (`boot::place`).
                draft.bind_after_commit();
                let (port, _) = ports::write_one_draft(state, ctx, &body, draft, tx).await?;
                if port.fixed_ips.is_empty() {
                    return Err(NeutronError::bad(
                        "NetworkRequiresSubnet",
                        format!(
                            "Network {} requires a subnet in order to boot instances on.",
                            port.network_id
                        ),
                    ));
                }
                (port, true)
            }
            PlannedNic::Take { port_id } => (take(state, tx, server, &port_id).await?, false),
        };
        attached.push(Attached {
            nic: Nic {
                port_id: port.id.clone(),
                interface_name: servers::interface_name(position),
                created_port,
                leased_ip: None,
            },
            port,
        });
    }
    Ok(attached)
}

/// Sets the server's device attributes and host on a given port and binds it.
async fn take(
    state: &Services,
    tx: &mut store::Tx<'_>,
    server: &Server,
    port_id: &str,
) -> CoreResult<Port> {
    // Two boots given the same port queue here on PostgreSQL; the second finds it in use.
    store::lock_named(tx, state.store.backend, &format!("port-device:{port_id}")).await?;
    let mut port = port_repo::get(tx, port_id)
        .await?
        .ok_or_else(|| port_not_found(port_id))?;
    check_free(&port)?;
    networks::get(&mut **tx, &port.network_id)
        .await?
        .ok_or_else(|| port_not_found(port_id))?;
    port.device_id.clone_from(&server.id);
    port.device_owner = DEVICE_OWNER.into();
    port.binding_host.clone_from(&server.host);
    // Bound after the boot's transaction commits (`boot::place`).
    port_binding::defer(&mut port);
    port.updated_at = store::now();
    port.revision_number += 1;
    port_repo::update(tx, &port).await?;
    Ok(port)
}

/// Nova's `PortBindingFailed`, with the reason the mechanism manager kept; None when every
/// port is bound.
pub fn binding_failure(ports: &[Port]) -> Option<String> {
    ports
        .iter()
        .find(|p| p.binding_vif_type == "binding_failed")
        .map(|p| {
            let reason = p
                .binding_result
                .as_deref()
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
                .and_then(|r| r["reason"].as_str().map(str::to_string))
                .unwrap_or_else(|| "no reason was given".into());
            format!("Binding failed for port {}: {reason}", p.id)
        })
}

/// Change-feed entries a transaction owes, written by [`FeedEntries::record`] after its other
/// writes: the feed's revision row is then the last lock taken, so a transaction that holds it
/// never waits for a subnet lock another one holds while waiting for the revision row.
#[derive(Debug, Default)]
pub struct FeedEntries(feed::FeedEntries);

impl FeedEntries {
    pub fn push(&mut self, hosts: &[&str], kind: FeedKind, id: &str) {
        self.0.add(hosts, kind, id);
    }

    /// The ports bound on `network_id` changed: its hosts hear of their peers again.
    pub fn network(&mut self, network_id: &str) {
        self.0.add_network(network_id);
    }

    /// The server and its ports, on its host.
    pub fn server(&mut self, server: &Server, port_ids: &[&str]) {
        for port_id in port_ids {
            self.push(&[&server.host], FeedKind::Port, port_id);
        }
        self.push(&[&server.host], FeedKind::Instance, &server.id);
    }

    /// Writes the entries in `tx`; returns the revision (for `FeedSignal::committed`).
    pub async fn record(mut self, tx: &mut store::Tx<'_>) -> store::Result<Option<i64>> {
        self.0.write(tx).await
    }
}

/// Gives back the server's ports in `tx`: those it created are deleted, given ones lose their
/// device attributes and binding; its NICs are forgotten. `feed` gets the server and its ports
/// for its host.
pub async fn release(
    state: &Services,
    tx: &mut store::Tx<'_>,
    server: &Server,
    feed: &mut FeedEntries,
) -> CoreResult<()> {
    let nics = servers::nics(tx, &server.id).await?;
    for nic in &nics {
        let Some(mut port) = port_repo::get(tx, &nic.port_id).await? else {
            continue;
        };
        let bound_to = std::mem::take(&mut port.binding_host);
        if nic.created_port {
            ports::remove(state, tx, &port).await?;
        } else if port.device_id == server.id {
            let network = networks::get(&mut **tx, &port.network_id)
                .await?
                .ok_or_else(|| port_not_found(&port.id))?;
            port.device_id.clear();
            port.device_owner.clear();
            port.status = "DOWN".into();
            port_binding::bind(state, &mut port, &network, tx).await?;
            port.updated_at = store::now();
            port.revision_number += 1;
            port_repo::update(tx, &port).await?;
        }
        feed.push(&[&server.host, &bound_to], FeedKind::Port, &port.id);
        if !bound_to.is_empty() {
            feed.network(&port.network_id);
        }
    }
    servers::remove_nics(tx, &server.id).await?;
    feed.push(&[&server.host], FeedKind::Instance, &server.id);
    Ok(())
}

/// Serialises the changes of one server (delete, agent reports, the timeout sweep) across
/// servers sharing PostgreSQL; the caller re-reads the server after taking it.
pub async fn lock_server(
    state: &Services,
    tx: &mut store::Tx<'_>,
    server_id: &str,
) -> store::Result<()> {
    store::lock_named(tx, state.store.backend, &format!("server:{server_id}")).await
}

fn check_free(p: &Port) -> CoreResult<()> {
    if p.device_id.is_empty() {
        Ok(())
    } else {
        Err(NeutronError::conflict(
            "PortInUse",
            format!("Port {} is still in use.", p.id),
        ))
    }
}

fn port_not_found(id: &str) -> NeutronError {
    NeutronError::not_found("PortNotFound", format!("Port id {id} could not be found."))
}
