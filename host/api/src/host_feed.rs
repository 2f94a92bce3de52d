//! The agents' view of their host (see `agent::protocol`): `GET /internal/hosts/{host}/changes`,
//! the long poll that answers the current state of what changed, and
//! `POST /internal/hosts/{host}/ports/status`, where agents report their ports' wiring.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use neutrino_model::{Attachment, AttachmentKind};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::AppState;
use super::error::{ApiResult, NeutronError};
use super::internal::authorize_agent;
use super::port_filters::{self, Filters};
use neutrino_core::port_attributes::dns_assignment;
use neutrino_core::port_binding::network_of;
use neutrino_core::subnets::AUTO_DELETE_OWNER;
use neutrino_proto::{
    ChangesQuery, DhcpNetwork, DhcpNetworkChange, DhcpSubnet, ExtraDhcpOpt, FloatingIpStatusReport,
    HostBinding, HostChanges, HostFloatingIp, HostRouter, InstanceChange, NetworkPeersChange, Peer,
    PortChange, PortStatusReport, RouterChange, RouterDevice, RouterGateway, dhcp_interface,
    dhcp_namespace, router_gateway_name, router_interface_name, router_namespace,
};
use neutrino_proto::{HostInstance, HostNic, HostPort, PortStatus};
use neutrino_runtime::binding::{BindingOutcome, BindingResult};
use neutrino_store::dhcp_hosting::{self, Hosting};
use neutrino_store::feed::{self, FeedKind};
use neutrino_store::networks::Network;
use neutrino_store::ports::Port;
use neutrino_store::subnets::Subnet;
use neutrino_store::{self as store, servers};
use neutrino_store::{l2_peers, l3_hosting};

/// `timeout` when the agent gives none, and the most it may ask for (protocol.rs).
const DEFAULT_TIMEOUT: u64 = 30;
const MAX_TIMEOUT: u64 = 60;
/// How often a waiting poll reads the feed even when no commit on this server woke it: what
/// another server sharing the database committed shows within this.
const REREAD_EVERY: Duration = Duration::from_secs(1);
/// The statuses an agent may report.
const PORT_STATUSES: &[&str] = &["DOWN", "BUILD", "ACTIVE", "ERROR"];
/// The statuses an L3 agent may report of a floating IP (DOWN is the server's: disassociated).
const FLOATING_IP_STATUSES: &[&str] = &["ACTIVE", "ERROR"];
/// The owners of a router's ports, plugged into its `qrouter-` namespace.
const ROUTER_INTERFACE_OWNER: &str = "network:router_interface";
const ROUTER_GATEWAY_OWNER: &str = "network:router_gateway";

/// `GET /internal/hosts/{host}/changes?after=<revision>&timeout=<seconds>`.
pub async fn changes(
    State(state): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> ApiResult<Json<HostChanges>> {
    authorize_agent(&state, &headers, &host).await?;
    let Query(query) = query.map_err(|e| NeutronError::bad_request(e.body_text()))?;
    if query.after < 0 {
        return Err(NeutronError::bad_request(format!(
            "Invalid input for after. Reason: '{}' is not a revision (0 or more).",
            query.after
        )));
    }
    let timeout = Duration::from_secs(query.timeout.unwrap_or(DEFAULT_TIMEOUT).min(MAX_TIMEOUT));
    let deadline = Instant::now() + timeout;
    let mut committed = state.feed.subscribe();
    let mut after = query.after;
    loop {
        // Marked seen before reading, so a commit during the read wakes the next wait.
        committed.borrow_and_update();
        match news(&state, &host, after).await? {
            News::Changes(answer) => return Ok(Json(answer)),
            News::Nothing { examined } => after = examined,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        // A stopping server answers "nothing new" at once: the agent asks again (another
        // server, or this one restarted), and the stop is not held for the poll's timeout.
        if left.is_zero() || state.feed.is_stopping() {
            return Ok(Json(HostChanges {
                revision: after,
                ..HostChanges::default()
            }));
        }
        let wait = left.min(REREAD_EVERY);
        tokio::select! {
            changed = tokio::time::timeout(wait, committed.changed()) => {
                if changed.is_ok_and(|r| r.is_err()) {
                    // No sender any more: keep to the re-read pace.
                    tokio::time::sleep(wait).await;
                }
            }
            () = state.feed.stopped() => {}
        }
    }
}

/// What one look at the feed found for a host.
enum News {
    Changes(HostChanges),
    /// Nothing for this host up to `examined`: the next look (and the answer on timeout)
    /// starts there, so entries of other hosts' networks are not looked at again.
    Nothing {
        examined: i64,
    },
}

/// What the host must hear after `after`.
async fn news(state: &AppState, host: &str, after: i64) -> ApiResult<News> {
    let mut conn = state.store.read_conn().await?;
    if after == 0 {
        return Ok(News::Changes(
            full_state(&mut conn, &state.store, host).await?,
        ));
    }
    // Read first: revisions follow commit order, so every entry up to it is visible below.
    let newest = feed::revision(&mut conn).await?;
    if after > newest {
        // A revision this feed never reached (a database started afresh): start over.
        return Ok(News::Changes(
            full_state(&mut conn, &state.store, host).await?,
        ));
    }
    let changed = feed::changes_since(&mut conn, host, after, newest).await?;
    let peer_networks = feed::networks_since(&mut conn, host, after, newest).await?;
    if changed.is_empty() && peer_networks.is_empty() {
        return Ok(News::Nothing { examined: newest });
    }
    // Everything up to `newest` is answered with state read after it committed.
    let revision = newest;
    let ids = |kind: FeedKind| -> Vec<String> {
        changed
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| id.clone())
            .collect()
    };
    let (port_ids, network_ids, instance_ids) = (
        ids(FeedKind::Port),
        ids(FeedKind::DhcpNetwork),
        ids(FeedKind::Instance),
    );
    let mut view = HostView::new(&state.store, host);
    let found = if port_ids.is_empty() {
        Vec::new()
    } else {
        store::ports::list(&state.store, &[("p.id", port_ids.clone())], None).await?
    };
    let mut concerned = Vec::new();
    for p in found {
        if p.binding_host == host || view.serves(&mut conn, &p.network_id).await? {
            concerned.push(p);
        }
    }
    let mut built = view.ports(&mut conn, &concerned).await?;
    let ports = port_ids
        .into_iter()
        .map(|id| PortChange {
            port: built.remove(&id),
            id,
        })
        .collect();
    let mut dhcp_networks = Vec::with_capacity(network_ids.len());
    for id in network_ids {
        let network = view.dhcp_network(&mut conn, &id).await?;
        dhcp_networks.push(DhcpNetworkChange { id, network });
    }
    let instances = if instance_ids.is_empty() {
        Vec::new()
    } else {
        let mut on_host: HashMap<String, _> =
            servers::host_instances(&mut conn, host, Some(&instance_ids))
                .await?
                .into_iter()
                .map(|i| (i.id.clone(), host_instance(i)))
                .collect();
        instance_ids
            .into_iter()
            .map(|id| InstanceChange {
                instance: on_host.remove(&id),
                id,
            })
            .collect()
    };
    let networks = network_peers(&mut conn, host, &peer_networks).await?;
    // Groups whose members changed, and those the ports of this answer name.
    let mut remote = std::mem::take(&mut view.filters.remote);
    remote.extend(ids(FeedKind::SecurityGroup));
    let remote_groups = port_filters::remote_groups(&mut conn, &remote).await?;
    let mut routers = Vec::new();
    for id in ids(FeedKind::Router) {
        let router = view.router(&mut conn, &id).await?;
        routers.push(RouterChange { id, router });
    }
    Ok(News::Changes(HostChanges {
        revision,
        full: false,
        ports,
        dhcp_networks,
        instances,
        networks,
        remote_groups,
        routers,
    }))
}

/// The peers of each of `networks` as `host` must see them (l2population).
async fn network_peers(
    conn: &mut store::Conn,
    host: &str,
    networks: &[String],
) -> ApiResult<Vec<NetworkPeersChange>> {
    let mut by_network = Vec::with_capacity(networks.len());
    let mut hosts = BTreeSet::new();
    for id in networks {
        let by_host =
            l2_peers::bound_elsewhere(&mut *conn, id, host, l2_peers::MAX_PEER_MACS).await?;
        hosts.extend(by_host.keys().cloned());
        by_network.push((id, by_host));
    }
    let hosts: Vec<String> = hosts.into_iter().collect();
    let endpoints = l2_peers::tunnel_endpoints(&mut *conn, &hosts).await?;
    Ok(by_network
        .into_iter()
        .map(|(id, by_host)| NetworkPeersChange {
            id: id.clone(),
            peers: by_host
                .into_iter()
                .filter_map(|(host, macs)| {
                    let tunnel_ip = endpoints.get(&host)?.clone();
                    Some(Peer {
                        host,
                        tunnel_ip,
                        macs,
                    })
                })
                .collect(),
        })
        .collect())
}

/// Every object of the host: ports bound to it, networks whose DHCP it serves (and their
/// ports), instances placed on it.
async fn full_state(
    conn: &mut store::Conn,
    store: &neutrino_store::Store,
    host: &str,
) -> ApiResult<HostChanges> {
    // Read first: whatever commits after this has a newer revision and is answered next time.
    let revision = feed::revision(&mut *conn).await?;
    let mut view = HostView::new(store, host);
    let hostings = dhcp_hosting::on_host(&mut *conn, host).await?;
    let hosted: Vec<String> = hostings.iter().map(|h| h.network_id.clone()).collect();
    for h in hostings {
        view.dhcp.insert(h.network_id.clone(), Some(h));
    }
    let mut ports =
        store::ports::list(store, &[("p.binding_host", vec![host.into()])], None).await?;
    let bound: HashSet<String> = ports.iter().map(|p| p.id.clone()).collect();
    let networks_bound_here: Vec<String> = ports
        .iter()
        .map(|p| p.network_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    ports.extend(
        store::ports::on_networks(store, &hosted)
            .await?
            .into_iter()
            .filter(|p| !bound.contains(&p.id)),
    );
    let mut built = view.ports(conn, &ports).await?;
    let mut dhcp_networks = Vec::with_capacity(hosted.len());
    for id in hosted {
        let network = view.dhcp_network(conn, &id).await?;
        dhcp_networks.push(DhcpNetworkChange { id, network });
    }
    let ports = ports
        .iter()
        .filter_map(|p| {
            built.remove(&p.id).map(|port| PortChange {
                id: p.id.clone(),
                port: Some(port),
            })
        })
        .collect();
    let instances = servers::host_instances(conn, host, None)
        .await?
        .into_iter()
        .map(|i| InstanceChange {
            id: i.id.clone(),
            instance: Some(host_instance(i)),
        })
        .collect();
    let networks = network_peers(conn, host, &networks_bound_here).await?;
    let remote_groups = port_filters::remote_groups(conn, &view.filters.remote).await?;
    let mut routers = Vec::new();
    for id in store::routers::on_host(&mut *conn, host).await? {
        let router = view.router(conn, &id).await?;
        routers.push(RouterChange { id, router });
    }
    Ok(HostChanges {
        revision,
        full: true,
        ports,
        dhcp_networks,
        instances,
        networks,
        remote_groups,
        routers,
    })
}

/// What one answer has looked up so far, so that each network and hosting is read once.
struct HostView<'a> {
    store: &'a neutrino_store::Store,
    host: &'a str,
    networks: HashMap<String, Option<Network>>,
    /// This host's hosting of each network looked up (None: it does not serve it).
    dhcp: HashMap<String, Option<Hosting>>,
    /// The filters of the ports bound here, and the remote groups they name.
    filters: Filters,
}

impl<'a> HostView<'a> {
    fn new(store: &'a neutrino_store::Store, host: &'a str) -> Self {
        HostView {
            store,
            host,
            networks: HashMap::new(),
            dhcp: HashMap::new(),
            filters: Filters::default(),
        }
    }

    async fn network(&mut self, conn: &mut store::Conn, id: &str) -> ApiResult<Option<Network>> {
        if !self.networks.contains_key(id) {
            let n = store::networks::get(&mut *conn, id).await?;
            self.networks.insert(id.to_string(), n);
        }
        Ok(self.networks[id].clone())
    }

    /// The network's DHCP hosting when this host serves it.
    async fn hosting(
        &mut self,
        conn: &mut store::Conn,
        network_id: &str,
    ) -> ApiResult<Option<Hosting>> {
        if !self.dhcp.contains_key(network_id) {
            let mine = dhcp_hosting::of_network(&mut *conn, network_id)
                .await?
                .into_iter()
                .find(|h| h.host == self.host);
            self.dhcp.insert(network_id.to_string(), mine);
        }
        Ok(self.dhcp[network_id].clone())
    }

    async fn serves(&mut self, conn: &mut store::Conn, network_id: &str) -> ApiResult<bool> {
        Ok(self.hosting(conn, network_id).await?.is_some())
    }

    /// The ports as this host's agent sees them, by id (ports whose network is gone are left out).
    async fn ports(
        &mut self,
        conn: &mut store::Conn,
        ports: &[Port],
    ) -> ApiResult<HashMap<String, HostPort>> {
        let bound_here: Vec<String> = ports
            .iter()
            .filter(|p| p.binding_host == self.host)
            .map(|p| p.id.clone())
            .collect();
        let attachments = if bound_here.is_empty() {
            HashMap::new()
        } else {
            servers::attachments(&mut *conn, self.host, &bound_here).await?
        };
        let mut out = HashMap::with_capacity(ports.len());
        for p in ports {
            let Some(network) = self.network(conn, &p.network_id).await? else {
                continue;
            };
            let attachment = match self.hosting(conn, &p.network_id).await? {
                Some(h) if h.port_id == p.id && p.device_owner == AUTO_DELETE_OWNER => {
                    Some(Attachment {
                        kind: AttachmentKind::Dhcp,
                        namespace: dhcp_namespace(&p.network_id),
                        interface_name: dhcp_interface(&p.id),
                    })
                }
                _ => router_attachment(p, self.host).or_else(|| attachments.get(&p.id).cloned()),
            };
            let mut port = host_port(p, self.host, &network, attachment);
            if port.binding.is_some() {
                port.filter = self.filters.of_port(conn, p).await?;
            }
            out.insert(p.id.clone(), port);
        }
        Ok(out)
    }

    /// The router as its L3 agent makes it, or None when this host does not serve it.
    async fn router(
        &mut self,
        conn: &mut store::Conn,
        router_id: &str,
    ) -> ApiResult<Option<HostRouter>> {
        let Some(router) = l3_hosting::hosted_router(&mut *conn, router_id, self.host).await?
        else {
            return Ok(None);
        };
        let ports =
            store::ports::list(self.store, &[("p.device_id", vec![router_id.into()])], None)
                .await?;
        let mut subnets: HashMap<String, Subnet> = HashMap::new();
        for network_id in ports.iter().map(|p| &p.network_id).collect::<BTreeSet<_>>() {
            for s in store::subnets::on_network(&mut *conn, network_id).await? {
                subnets.insert(s.id.clone(), s);
            }
        }
        let device = |p: &Port, interface_name: String| RouterDevice {
            port_id: p.id.clone(),
            network_id: p.network_id.clone(),
            interface_name,
            mac_address: p.mac_address.clone(),
            addresses: p
                .fixed_ips
                .iter()
                .filter_map(|ip| {
                    let prefix = subnets.get(&ip.subnet_id)?.cidr.split('/').nth(1)?;
                    Some(format!("{}/{prefix}", ip.ip_address))
                })
                .collect(),
        };
        let mut interfaces = Vec::new();
        let mut gateway = None;
        for p in &ports {
            match p.device_owner.as_str() {
                ROUTER_INTERFACE_OWNER => {
                    interfaces.push(device(p, router_interface_name(&p.id)));
                }
                ROUTER_GATEWAY_OWNER if router.gw_port_id.as_deref() == Some(p.id.as_str()) => {
                    let mut gateway_ips: Vec<String> = p
                        .fixed_ips
                        .iter()
                        .filter_map(|ip| subnets.get(&ip.subnet_id)?.gateway_ip.clone())
                        .collect();
                    gateway_ips.dedup();
                    gateway = Some(RouterGateway {
                        device: device(p, router_gateway_name(&p.id)),
                        gateway_ips,
                        enable_snat: router.enable_snat,
                    });
                }
                _ => {}
            }
        }
        let routes: Vec<Value> = serde_json::from_str(&router.routes).unwrap_or_default();
        let floating_ips = l3_hosting::floating_ips_of(&mut *conn, router_id)
            .await?
            .into_iter()
            .map(|f| HostFloatingIp {
                id: f.id,
                floating_ip_address: f.floating_ip_address,
                fixed_ip_address: f.fixed_ip_address,
                status: f.status,
            })
            .collect();
        Ok(Some(HostRouter {
            namespace: router_namespace(&router.id),
            id: router.id,
            admin_state_up: router.admin_state_up,
            interfaces,
            gateway,
            routes: routes.iter().filter_map(route_pair).collect(),
            floating_ips,
        }))
    }

    /// The network's DHCP as its host needs it, or None when this host does not serve it.
    async fn dhcp_network(
        &mut self,
        conn: &mut store::Conn,
        network_id: &str,
    ) -> ApiResult<Option<DhcpNetwork>> {
        let Some(hosting) = self.hosting(conn, network_id).await? else {
            return Ok(None);
        };
        let Some(network) = self.network(conn, network_id).await? else {
            return Ok(None);
        };
        let subnets = store::subnets::on_network(&mut *conn, network_id).await?;
        let ports = store::ports::on_networks(self.store, &[network_id.to_string()]).await?;
        let mut built = self.ports(conn, &ports).await?;
        Ok(Some(DhcpNetwork {
            network: network_of(&network),
            subnets: subnets.iter().map(dhcp_subnet).collect(),
            dhcp_port_id: hosting.port_id,
            ports: ports.iter().filter_map(|p| built.remove(&p.id)).collect(),
        }))
    }
}

/// A router port bound to `host` goes into its router's namespace.
fn router_attachment(p: &Port, host: &str) -> Option<Attachment> {
    if p.binding_host != host || p.device_id.is_empty() {
        return None;
    }
    let interface_name = match p.device_owner.as_str() {
        ROUTER_INTERFACE_OWNER => router_interface_name(&p.id),
        ROUTER_GATEWAY_OWNER => router_gateway_name(&p.id),
        _ => return None,
    };
    Some(Attachment {
        kind: AttachmentKind::Router,
        namespace: router_namespace(&p.device_id),
        interface_name,
    })
}

/// A port as the agent of `host` sees it; its binding only when it is bound there.
fn host_port(p: &Port, host: &str, network: &Network, attachment: Option<Attachment>) -> HostPort {
    let object =
        |text: &str| -> Map<String, Value> { serde_json::from_str(text).unwrap_or_default() };
    let assignment = dns_assignment(&p.dns_name, &p.fixed_ips);
    let hostname = assignment
        .as_array()
        .and_then(|a| a.first())
        .and_then(|a| a["hostname"].as_str().map(str::to_string))
        .unwrap_or_else(|| p.dns_name.trim_end_matches('.').to_string());
    let binding = (p.binding_host == host)
        .then(|| {
            p.binding_result
                .as_deref()
                .and_then(BindingResult::from_stored)
        })
        .flatten()
        .and_then(|result| match result.outcome {
            BindingOutcome::Bound {
                vif_type,
                vif_details,
                levels,
                segment,
            } => Some(HostBinding {
                host: host.to_string(),
                driver: levels.last()?.driver.clone(),
                vif_type,
                vif_details,
                vnic_type: p.binding_vnic_type.clone(),
                profile: object(&p.binding_profile),
                network: network_of(network),
                segment,
                attachment,
            }),
            _ => None,
        });
    HostPort {
        id: p.id.clone(),
        network_id: p.network_id.clone(),
        mac_address: p.mac_address.clone(),
        fixed_ips: neutrino_core::port_binding::driver_fixed_ips(&p.fixed_ips),
        device_owner: p.device_owner.clone(),
        device_id: p.device_id.clone(),
        admin_state_up: p.admin_state_up,
        status: p.status.clone(),
        hostname,
        // Stored by `port_attributes::extra_dhcp_opts`, always in this shape.
        extra_dhcp_opts: serde_json::from_str::<Vec<ExtraDhcpOpt>>(&p.extra_dhcp_opts)
            .unwrap_or_default(),
        binding,
        revision_number: p.revision_number,
        filter: None,
    }
}

/// A route as the API stores it (`{"destination", "nexthop"}`), as a pair.
fn route_pair(r: &Value) -> Option<(String, String)> {
    Some((
        r["destination"].as_str()?.to_string(),
        r["nexthop"].as_str()?.to_string(),
    ))
}

fn dhcp_subnet(s: &Subnet) -> DhcpSubnet {
    let routes: Vec<Value> = serde_json::from_str(&s.host_routes).unwrap_or_default();
    DhcpSubnet {
        id: s.id.clone(),
        ip_version: if s.ip_version == 6 { 6 } else { 4 },
        cidr: s.cidr.clone(),
        gateway_ip: s.gateway_ip.clone(),
        enable_dhcp: s.enable_dhcp,
        dns_nameservers: serde_json::from_str(&s.dns_nameservers).unwrap_or_default(),
        host_routes: routes.iter().filter_map(route_pair).collect(),
        ipv6_address_mode: s.ipv6_address_mode.clone(),
    }
}

/// `POST /internal/hosts/{host}/ports/status` with a [`PortStatusReport`] -> 200
/// `{"updated": n, "ignored": m}`: ports bound to `host` take the reported status (their
/// revision bumped when it changes); ports bound elsewhere, or gone, are ignored.
pub async fn port_status(
    State(state): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    authorize_agent(&state, &headers, &host).await?;
    let report: PortStatusReport = serde_json::from_slice(&bytes)
        .map_err(|e| NeutronError::bad_request(format!("Failed to parse request. Reason: {e}")))?;
    if let Some(bad) = report
        .ports
        .iter()
        .find(|p| !PORT_STATUSES.contains(&p.status.as_str()))
    {
        return Err(NeutronError::bad_request(format!(
            "Invalid input for status. Reason: '{}' is not in {PORT_STATUSES:?}.",
            bad.status
        )));
    }
    let mut tx = state.store.begin_write().await?;
    let (mut updated, mut ignored) = (0, 0);
    let now = store::now();
    let mut activated_ports = Vec::new();
    for PortStatus { id, status, error } in &report.ports {
        match store::ports::host_and_status(&mut tx, id).await? {
            Some((bound_to, current)) if bound_to == host => {
                if let Some(why) = error {
                    tracing::warn!("port {id} on {host}: {status}: {why}");
                }
                if &current != status {
                    store::ports::set_status(&mut tx, id, status, &now).await?;
                }
                if status == "ACTIVE" {
                    activated_ports.push(id.clone());
                }
                updated += 1;
            }
            _ => ignored += 1,
        }
    }
    // A server whose NICs already hold their leases becomes ACTIVE with its last port.
    store::servers::refresh_status(&mut tx, &activated_ports).await?;
    store::commit(tx).await?;
    Ok(Json(json!({"updated": updated, "ignored": ignored})))
}

/// `POST /internal/hosts/{host}/floatingips/status` with a [`FloatingIpStatusReport`] -> 200
/// `{"updated": n, "ignored": m}`: floating IPs associated through routers `host` serves take
/// the reported status; others (gone, disassociated, moved) are ignored.
pub async fn floating_ip_status(
    State(state): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    authorize_agent(&state, &headers, &host).await?;
    let report: FloatingIpStatusReport = serde_json::from_slice(&bytes)
        .map_err(|e| NeutronError::bad_request(format!("Failed to parse request. Reason: {e}")))?;
    if let Some(bad) = report
        .floating_ips
        .iter()
        .find(|f| !FLOATING_IP_STATUSES.contains(&f.status.as_str()))
    {
        return Err(NeutronError::bad_request(format!(
            "Invalid input for status. Reason: '{}' is not in {FLOATING_IP_STATUSES:?}.",
            bad.status
        )));
    }
    let mut tx = state.store.begin_write().await?;
    let now = store::now();
    let (mut updated, mut ignored) = (0, 0);
    for f in &report.floating_ips {
        if l3_hosting::report_status(&mut tx, &host, &f.id, &f.status, &now).await? {
            updated += 1;
        } else {
            ignored += 1;
        }
    }
    store::commit(tx).await?;
    Ok(Json(json!({"updated": updated, "ignored": ignored})))
}

/// An instance as the agent is told of it.
fn host_instance(i: servers::PlacedInstance) -> HostInstance {
    HostInstance {
        namespace: neutrino_proto::instance_namespace(&i.id),
        id: i.id,
        name: i.name,
        nics: i
            .nics
            .into_iter()
            .map(|n| HostNic {
                port_id: n.port_id,
                interface_name: n.interface_name,
                mac_address: n.mac_address,
            })
            .collect(),
    }
}
