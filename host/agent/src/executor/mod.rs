//! The plan executor: applies a driver's plan (already validated and checked against the
//! driver's grant) to this host's kernel and Open vSwitch, one operation after another, and
//! lists what is there for the agent's reconciliation.
//!
//! Every operation is idempotent: `ensure-*` creates what is missing and corrects what
//! differs, `remove-*` succeeds when the object is already gone, so applying a plan twice is
//! the same as applying it once.

mod connections;
mod fdb;
mod ip;
mod links;
pub mod namespace;
pub(crate) mod netlink;
mod offload;
mod ovs;

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use neutrino_model::{LinkSpec, Op};
use rtnetlink::LinkUnspec;

use connections::Connections;
pub use fdb::{FLOOD_MAC, FdbChanges, FdbEntry};
use netlink::{Netlink, format_mac, parse_mac};
use neutrino_runtime::plugins::render;

#[derive(Debug, Clone, Default)]
pub struct ExecutorConfig {
    /// The ovsdb-server socket; `None`: ovs-vsctl's default (the system's Open vSwitch).
    pub ovs_db: Option<PathBuf>,
}

/// The first operation of a plan that failed; the ones before it were applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plan step {index} ({op}): {message}")]
pub struct ApplyError {
    pub index: usize,
    /// The operation as `plugins::render` shows it.
    pub op: String,
    pub message: String,
}

/// A link as the agent's reconciliation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    /// `bridge`, `veth`, `vxlan`, `macvlan`, `tun` (OVS netdev ports), ...; `None` for plain
    /// devices (loopback, physical NICs).
    pub kind: Option<String>,
    /// The bridge (or other controller) it is a port of.
    pub controller: Option<String>,
    pub mac: Option<String>,
    pub up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvsPortInfo {
    pub name: String,
    pub tag: Option<u16>,
    /// The port's Interface `external_ids` (`iface-id`, `attached-mac`, ...).
    pub external_ids: BTreeMap<String, String>,
}

/// Cheap to clone and share between tasks.
#[derive(Debug, Clone)]
pub struct Executor {
    ovs: Arc<ovs::Vsctl>,
}

impl Executor {
    pub fn new(config: ExecutorConfig) -> Executor {
        Executor {
            ovs: Arc::new(ovs::Vsctl::new(config.ovs_db)),
        }
    }

    /// Applies the plan in order, stopping at the first operation that fails. Must run inside
    /// a tokio runtime, on a thread in the host's namespace.
    pub async fn apply(&self, plan: &[Op]) -> Result<(), ApplyError> {
        let fail = |index: usize, e: anyhow::Error| ApplyError {
            index,
            op: plan.get(index).map(render::op).unwrap_or_default(),
            message: format!("{e:#}"),
        };
        let mut c = Connections::new().map_err(|e| fail(0, e))?;
        for (index, op) in plan.iter().enumerate() {
            self.apply_op(&mut c, op)
                .await
                .map_err(|e| fail(index, e))?;
        }
        Ok(())
    }

    async fn apply_op(&self, c: &mut Connections, op: &Op) -> Result<()> {
        match op {
            Op::EnsureNamespace(name) => {
                namespace::ensure(name).await?;
                c.forget(name);
                // As Neutron's ensure_namespace: loopback up, for services bound to it.
                let nl = c.get(Some(name)).await?;
                let lo = nl.existing("lo").await?;
                nl.correct(&lo, None, None, Some(true)).await
            }
            Op::RemoveNamespace(name) => {
                c.forget(name);
                namespace::remove(name)
            }
            Op::EnsureBridge(spec) => links::ensure_bridge(c, spec).await,
            Op::EnsureVeth(spec) => links::ensure_veth(c, spec).await,
            Op::AttachToBridge(spec) => links::attach(c, spec).await,
            Op::SetLink(spec) => self.set_link(c, spec).await,
            Op::EnsureVxlan(spec) => links::ensure_vxlan(c, spec).await,
            Op::EnsureVlan(spec) => links::ensure_vlan(c, spec).await,
            Op::EnsureMacvlan(spec) => links::ensure_macvlan(c, spec).await,
            Op::EnsureAddress(spec) => ip::ensure_address(c, spec).await,
            Op::EnsureRoute(spec) => ip::ensure_route(c, spec).await,
            Op::EnsureOvsBridge(spec) => self.ovs.ensure_bridge(spec).await,
            Op::EnsureOvsPort(spec) => self.ovs.ensure_port(spec).await,
            Op::RemoveOvsPort(spec) => self.ovs.remove_port(spec).await,
            Op::RemoveLink(spec) => links::remove_link(c, spec).await,
        }
    }

    /// Up/down, MTU and MAC of a link. A link meant to be in a namespace that is still an OVS
    /// internal port of the host is moved there first (as Neutron's DHCP agent does with
    /// its internal ports), with TX checksum offload off.
    async fn set_link(&self, c: &mut Connections, spec: &LinkSpec) -> Result<()> {
        let nl = c.get(spec.namespace.as_deref()).await?;
        let link = match (nl.link(&spec.name).await?, spec.namespace.as_deref()) {
            (Some(link), _) => link,
            (None, Some(ns)) => {
                self.move_internal_port(&c.host(), &nl, &spec.name, ns)
                    .await?
            }
            (None, None) => nl.existing(&spec.name).await?,
        };
        let mac = spec.mac.as_deref().map(parse_mac).transpose()?;
        nl.correct(&link, spec.mtu, mac.as_deref(), Some(spec.up))
            .await
    }

    async fn move_internal_port(
        &self,
        host: &Netlink,
        target: &Netlink,
        name: &str,
        ns: &str,
    ) -> Result<netlink::Link> {
        let missing = || format!("link {name} does not exist in namespace {ns}");
        let on_host = host.link(name).await?.with_context(missing)?;
        if self.ovs.interface_type(name).await?.as_deref() != Some("internal") {
            anyhow::bail!(
                "{}; the host's {name} is not an OVS internal port",
                missing()
            );
        }
        let file = namespace::open(ns)?;
        let msg = LinkUnspec::new_with_index(on_host.index).setns_by_fd(file.as_raw_fd());
        host.change(&format!("namespace of {name} to {ns}"), msg.build())
            .await?;
        offload::tx_checksum_off(ns, name).await?;
        target.existing(name).await
    }

    /// Makes the forwarding entries with a unicast destination of a tunnel device exactly
    /// `wanted` (l2population); None when the device is not there.
    pub async fn sync_forwarding(
        &self,
        device: &str,
        namespace: Option<&str>,
        wanted: &std::collections::BTreeSet<FdbEntry>,
    ) -> Result<Option<FdbChanges>> {
        let nl = match namespace {
            None => Netlink::host()?,
            Some(ns) => Netlink::in_namespace(ns).await?,
        };
        match nl.link(device).await? {
            Some(link) => Ok(Some(nl.sync_fdb(&link, wanted).await?)),
            None => Ok(None),
        }
    }

    /// The forwarding entries with a unicast destination of a tunnel device.
    pub async fn forwarding_entries(
        &self,
        device: &str,
        namespace: Option<&str>,
    ) -> Result<std::collections::BTreeSet<FdbEntry>> {
        let nl = match namespace {
            None => Netlink::host()?,
            Some(ns) => Netlink::in_namespace(ns).await?,
        };
        let link = nl.existing(device).await?;
        nl.fdb_entries(&link).await
    }

    /// The named network namespaces of the host (those in `/run/netns`).
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        namespace::list()
    }

    /// The links of the host (`None`) or of a namespace.
    pub async fn links(&self, namespace: Option<&str>) -> Result<Vec<LinkInfo>> {
        let nl = match namespace {
            None => Netlink::host()?,
            Some(ns) => Netlink::in_namespace(ns).await?,
        };
        let all = nl.links().await?;
        let name_of = |index: u32| {
            all.iter()
                .find(|l| l.index == index)
                .map(|l| l.name.clone())
        };
        Ok(all
            .iter()
            .map(|l| LinkInfo {
                name: l.name.clone(),
                kind: l.kind.clone(),
                controller: l.controller.and_then(name_of),
                mac: l.mac.as_deref().map(format_mac),
                up: l.up,
            })
            .collect())
    }

    /// The ports of an OVS bridge.
    pub async fn ovs_ports(&self, bridge: &str) -> Result<Vec<OvsPortInfo>> {
        self.ovs.ports(bridge).await
    }
}
