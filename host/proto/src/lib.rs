//! What the server and a node agent say to each other over the internal API (outside `/v2.0`,
//! authenticated by `X-Neutrino-Agent-Token`, as `/internal/agents/report` is: the host's own
//! credential, good for that host's paths and reports only). An agent never
//! reaches the database: it sees only its own host's work, through these messages.
//!
//! - `GET /internal/hosts/{host}/changes?after=<revision>&timeout=<seconds>` -> [`HostChanges`].
//!   Waits (long poll, `timeout` default 30, at most 60 s) until the host's change feed has
//!   entries newer than `after`, then answers with the current state of every object those
//!   entries name. `after=0`, or a revision the feed no longer keeps, answers `full: true` with
//!   every object of the host. On timeout: the same revision, no objects.
//! - `POST /internal/hosts/{host}/ports/status` with [`PortStatusReport`] -> 200
//!   `{"updated": n, "ignored": m}`: ports bound to `host` take the reported status (DOWN,
//!   BUILD, ACTIVE or ERROR; anything else is a 400 for the whole report), their
//!   `revision_number`/`updated_at` bumped when it changes; ports bound elsewhere or gone are
//!   ignored and counted. A status report is no feed entry (the agent already knows).
//! - `POST /internal/hosts/{host}/instances/status` with [`InstanceStatusReport`] -> 204.
//! - `POST /internal/hosts/{host}/floatingips/status` with [`FloatingIpStatusReport`] -> 200
//!   `{"updated": n, "ignored": m}`: floating IPs of routers this host serves take the reported
//!   status (ACTIVE or ERROR; DOWN is the server's own word for a disassociated one).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use neutrino_model as model;

/// The header every internal request carries the agent's credential in (its host's token, or
/// the shared one of `serve --shared-agent-token`).
pub const TOKEN_HEADER: &str = "x-neutrino-agent-token";

/// Query of `GET /internal/hosts/{host}/changes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChangesQuery {
    #[serde(default)]
    pub after: i64,
    /// Seconds to wait for a change.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// Answer of `GET /internal/hosts/{host}/changes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostChanges {
    /// Pass this as `after` next time.
    pub revision: i64,
    /// Every object of the host is listed; what is not listed does not belong on the host.
    pub full: bool,
    /// Ports bound to this host, and ports of networks whose DHCP this host serves.
    #[serde(default)]
    pub ports: Vec<PortChange>,
    #[serde(default)]
    pub dhcp_networks: Vec<DhcpNetworkChange>,
    #[serde(default)]
    pub instances: Vec<InstanceChange>,
    /// The peers of networks this host has bound ports on (l2population): with `full`, every
    /// such network; otherwise those whose bound ports changed.
    #[serde(default)]
    pub networks: Vec<NetworkPeersChange>,
    /// The members of security groups that filtered ports here name as `remote_group_id`:
    /// with `full`, every such group; otherwise those whose members changed.
    #[serde(default)]
    pub remote_groups: Vec<RemoteGroupChange>,
    /// Routers this host's L3 agent serves: with `full`, every one; otherwise those that
    /// changed (the router, its ports, its floating IPs).
    #[serde(default)]
    pub routers: Vec<RouterChange>,
}

impl HostChanges {
    /// Whether the answer carries anything for the agent to apply (every list counts: an
    /// answer with only new members of a remote group is news).
    pub fn has_news(&self) -> bool {
        let HostChanges {
            revision: _,
            full,
            ports,
            dhcp_networks,
            instances,
            networks,
            remote_groups,
            routers,
        } = self;
        *full
            || !ports.is_empty()
            || !dhcp_networks.is_empty()
            || !instances.is_empty()
            || !networks.is_empty()
            || !remote_groups.is_empty()
            || !routers.is_empty()
    }
}

/// A security group's member addresses (its ports' fixed IPs and allowed address pairs, of
/// both IP versions), for the host's ipsets; `members: None` when no port here needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteGroupChange {
    pub id: String,
    pub members: Option<Vec<String>>,
}

/// What the host's firewall enforces for a port (its security groups' rules, flattened), as
/// Neutron's `security_group_info_for_devices` gives it. Present only for a port whose port
/// security is enabled and whose owner is not a network service (`network:*`, trusted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortFilter {
    /// False when every group of the port is stateless: no connection tracking, replies need
    /// rules of their own.
    pub stateful: bool,
    pub rules: Vec<FilterRule>,
    /// Besides its MAC and fixed IPs, what the port may send from.
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
}

/// One security group rule, as the API shows it (protocol as given: a name or a number).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FilterRule {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<u32>,
    pub port_range_max: Option<u32>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    pub mac_address: String,
    /// An address or a CIDR.
    pub ip_address: String,
}

/// A network's peers as one host must see them; `peers` empty when no other host holds a
/// bound port there (or this host no longer does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPeersChange {
    pub id: String,
    pub peers: Vec<Peer>,
}

/// Another host with ports bound on a network: where its tunnels end, and its ports' MACs
/// there (a flood entry to `tunnel_ip` and one forwarding entry per MAC).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Peer {
    pub host: String,
    pub tunnel_ip: String,
    pub macs: Vec<String>,
}

/// A port's current state; `port: None` means it is gone (deleted, or no longer this host's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortChange {
    pub id: String,
    pub port: Option<HostPort>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPort {
    pub id: String,
    pub network_id: String,
    pub mac_address: String,
    pub fixed_ips: Vec<model::FixedIp>,
    pub device_owner: String,
    pub device_id: String,
    pub admin_state_up: bool,
    /// DOWN, BUILD, ACTIVE or ERROR, as the API shows it.
    pub status: String,
    /// The port's DNS name (`dns_assignment` hostname), for the DHCP host entry.
    pub hostname: String,
    pub extra_dhcp_opts: Vec<ExtraDhcpOpt>,
    /// Present when the port is bound (not `unbound`/`binding_failed`) to this host.
    pub binding: Option<HostBinding>,
    /// The port's `revision_number` as sent: the agent logs it with the plans it runs, and the
    /// server logs it with the request id of the binding it wrote ("port binding written").
    #[serde(default)]
    pub revision_number: i64,
    /// What the host's firewall enforces for the port; None: the port is not filtered (port
    /// security off, a network service's port, or a server that sends no filters).
    #[serde(default)]
    pub filter: Option<PortFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraDhcpOpt {
    pub opt_name: String,
    pub opt_value: String,
    pub ip_version: u8,
}

/// What plugging a bound port needs: the bottom bound level's driver and segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostBinding {
    pub host: String,
    /// The mechanism driver that bound the bottom level: its `plug-port` wires the port.
    pub driver: String,
    pub vif_type: String,
    pub vif_details: Map<String, Value>,
    pub vnic_type: String,
    pub profile: Map<String, Value>,
    pub network: model::Network,
    pub segment: model::Segment,
    /// Where the device goes: an instance's namespace or a `qdhcp-` namespace. None: nothing
    /// on this host asked for a device yet (a port bound before its instance exists).
    pub attachment: Option<model::Attachment>,
}

/// A network whose DHCP this host serves; `network: None` means it no longer does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DhcpNetworkChange {
    pub id: String,
    pub network: Option<DhcpNetwork>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DhcpNetwork {
    pub network: model::Network,
    /// Every subnet of the network (DHCP-disabled ones included: their routes still matter).
    pub subnets: Vec<DhcpSubnet>,
    /// The network's DHCP port on this host (owner `network:dhcp`); its binding's attachment is
    /// `qdhcp-<network id>`. It also arrives in `ports`, where it is plugged like any port.
    pub dhcp_port_id: String,
    /// With `full` or a changed subnet set: every port of the network (the DHCP host entries).
    /// Later port changes arrive one by one in [`HostChanges::ports`].
    pub ports: Vec<HostPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpSubnet {
    pub id: String,
    pub ip_version: u8,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    pub dns_nameservers: Vec<String>,
    /// (destination CIDR, nexthop)
    pub host_routes: Vec<(String, String)>,
    pub ipv6_address_mode: Option<String>,
}

/// An instance placed on this host; `instance: None` means it is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceChange {
    pub id: String,
    pub instance: Option<HostInstance>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInstance {
    pub id: String,
    pub name: String,
    /// The instance's network namespace, [`instance_namespace`].
    pub namespace: String,
    pub nics: Vec<HostNic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNic {
    pub port_id: String,
    /// `eth0`, `eth1`, ... in the order the instance's networks were given.
    pub interface_name: String,
    pub mac_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatusReport {
    pub ports: Vec<PortStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    pub id: String,
    /// BUILD (wiring started), ACTIVE (wired), DOWN (unplugged), ERROR (wiring failed).
    pub status: String,
    /// Why wiring failed (a plan step and its error), for ERROR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatusReport {
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub id: String,
    pub nics: Vec<NicLease>,
    /// Set when the agent gave up on the instance (a plug failed, no lease in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicLease {
    pub port_id: String,
    /// The IPv4 address the NIC's DHCP client holds, if it got one.
    pub leased_ip: Option<String>,
}

/// A router this host serves; `router: None` means it no longer does (deleted, or moved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterChange {
    pub id: String,
    pub router: Option<HostRouter>,
}

/// A router as its L3 agent makes it: the namespace [`router_namespace`], whose devices are the
/// router's ports, plugged by their networks' drivers like any port (their bindings'
/// attachment kind `router`, their interfaces [`router_interface_name`] and
/// [`router_gateway_name`]); the L3 agent adds the addresses, routes and NAT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRouter {
    pub id: String,
    pub admin_state_up: bool,
    pub namespace: String,
    /// `network:router_interface` ports.
    pub interfaces: Vec<RouterDevice>,
    pub gateway: Option<RouterGateway>,
    /// Extra routes, (destination CIDR, nexthop); one destination may come with several
    /// nexthops (ECMP).
    pub routes: Vec<(String, String)>,
    /// Floating IPs associated through this router.
    pub floating_ips: Vec<HostFloatingIp>,
}

/// One of a router's ports in its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterDevice {
    pub port_id: String,
    pub network_id: String,
    /// `qr-…` or `qg-…`.
    pub interface_name: String,
    pub mac_address: String,
    /// Each fixed IP with its subnet's prefix length, `10.0.0.1/24`.
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterGateway {
    pub device: RouterDevice,
    /// The external subnets' gateway IPs: default routes (an address outside every subnet of
    /// the device gets an on-link route first, as Neutron's agent adds).
    pub gateway_ips: Vec<String>,
    /// SNAT of the internal subnets to the gateway's first IPv4 address.
    pub enable_snat: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    /// The associated port's address the floating IP is translated to.
    pub fixed_ip_address: String,
    /// The status the API shows now (the agent reports only changes).
    pub status: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIpStatusReport {
    pub floating_ips: Vec<FloatingIpStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIpStatus {
    pub id: String,
    /// ACTIVE (its address and NAT are in place) or ERROR.
    pub status: String,
}

/// A router's namespace, as in Neutron.
pub fn router_namespace(router_id: &str) -> String {
    format!("qrouter-{router_id}")
}

/// A router interface's device: `qr-` + 11 characters of the port id.
pub fn router_interface_name(port_id: &str) -> String {
    format!("qr-{}", &port_id[..port_id.len().min(11)])
}

/// A router gateway's device: `qg-` + 11 characters of the port id.
pub fn router_gateway_name(port_id: &str) -> String {
    format!("qg-{}", &port_id[..port_id.len().min(11)])
}

pub use neutrino_model::instance_namespace;

/// The longest `extra_dhcp_opts` name, as Neutron allows.
pub const DHCP_OPT_NAME_MAX: usize = 64;
/// The longest `extra_dhcp_opts` value, as Neutron allows.
pub const DHCP_OPT_VALUE_MAX: usize = 255;

/// What is wrong with an `extra_dhcp_opts` entry, if anything. The API refuses such an entry and
/// the agent skips it: an option is one line of a dnsmasq options file, so a line break or a
/// control character would start another option, and a name is a dnsmasq option name or number
/// (with `tag:`/`encap:` style prefixes).
pub fn dhcp_opt_problem(name: &str, value: &str) -> Option<String> {
    if name.is_empty() || name.len() > DHCP_OPT_NAME_MAX {
        return Some(format!(
            "opt_name must be 1 to {DHCP_OPT_NAME_MAX} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_:,.!".contains(c))
    {
        return Some(format!("'{name}' is not a DHCP option name"));
    }
    if value.chars().count() > DHCP_OPT_VALUE_MAX {
        return Some(format!(
            "the value of {name} is longer than {DHCP_OPT_VALUE_MAX} characters"
        ));
    }
    if value.chars().any(char::is_control) {
        return Some(format!("the value of {name} has a control character"));
    }
    None
}

/// The DHCP namespace of a network, as in Neutron.
pub fn dhcp_namespace(network_id: &str) -> String {
    format!("qdhcp-{network_id}")
}

/// The DHCP port's interface inside `qdhcp-<network>`: `ns-` + 11 characters of the port id
/// (Neutron's `ovs_use_veth` name; the host side is the driver's `tap`).
pub fn dhcp_interface(port_id: &str) -> String {
    format!("ns-{}", &port_id[..port_id.len().min(11)])
}

/// Neutron's DHCP port `device_id`: `dhcp` + uuid5(DNS namespace, host) + `-` + network id.
pub fn dhcp_device_id(host: &str, network_id: &str) -> String {
    let host_uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, host.as_bytes());
    format!("dhcp{host_uuid}-{network_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_neutron() {
        let port = "3f1c2a9e-7b44-4f7e-9a51-0c8d2b6f1e11";
        assert_eq!(dhcp_interface(port), "ns-3f1c2a9e-7b");
        assert_eq!(instance_namespace(port), "inst-3f1c2a9e-7b");
        assert_eq!(dhcp_namespace("n1"), "qdhcp-n1");
        assert_eq!(router_interface_name(port), "qr-3f1c2a9e-7b");
        assert_eq!(router_gateway_name(port), "qg-3f1c2a9e-7b");
        assert_eq!(router_namespace("r1"), "qrouter-r1");
        let id = dhcp_device_id("compute-1", "net");
        assert!(id.starts_with("dhcp") && id.ends_with("-net") && id.len() == 4 + 36 + 4);
    }

    // An answer with only a remote group's new members was once dropped by the agent's poll
    // loop: hosts whose filters name the group never heard of the member.
    #[test]
    fn members_alone_are_news() {
        let mut changes = HostChanges::default();
        assert!(!changes.has_news());
        changes.remote_groups.push(RemoteGroupChange {
            id: "g".into(),
            members: Some(vec!["10.0.0.5".into()]),
        });
        assert!(changes.has_news());
    }
}
