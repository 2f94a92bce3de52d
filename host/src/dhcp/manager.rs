//! `DhcpManager`: one dnsmasq per network, its files kept in step with the network, and the
//! cheapest correct way to make dnsmasq see a change (Neutron's reload vs restart, 4.3):
//!
//! - a new port file: nothing, dnsmasq reads it by inotify;
//! - a changed or removed port file, or changed subnet options: SIGHUP, since dnsmasq keeps
//!   every record it once read from its directories until it re-reads them all;
//! - a different command line (subnets, MTU, interface) or DHCP port addresses: restart, since
//!   dnsmasq reads its ranges and binds its addresses only at start.
//!
//! The manager remembers what it wrote, so a change is found without reading files back, and
//! one port change touches that port's files only.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cmdline::dnsmasq_args;
use super::entries::{self, PortFiles, ROUTER_INTERFACE_OWNERS};
use super::layout::{self, NetworkDir};
use super::network::{self, Port, Subnets};
use super::options::subnet_options;
use super::process::Dnsmasq;
use super::{DhcpError, DhcpOptions, Result, invalid, io_error};
use crate::agent::protocol::{DhcpNetwork, HostPort, dhcp_namespace};

/// What a call did to dnsmasq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpAction {
    /// Nothing changed.
    Unchanged,
    /// Only new port files were written: dnsmasq reads them by inotify, no signal was sent.
    Added,
    /// Files changed or were removed: dnsmasq was sent SIGHUP.
    Reloaded,
    /// dnsmasq was not running and was started.
    Started,
    /// dnsmasq's command line (or the DHCP port's addresses) changed: it was started anew.
    Restarted,
}

/// A call's action and its cost in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpOutcome {
    pub action: DhcpAction,
    pub files_written: usize,
    pub files_removed: usize,
}

/// What we wrote for one port, and what dnsmasq may have leased to it.
#[derive(Debug, Clone, Default, PartialEq)]
struct PortState {
    files: PortFiles,
    leases: Vec<(String, Ipv4Addr)>,
    /// (subnet id, address) when the port is a router interface.
    router_ips: Vec<(String, IpAddr)>,
}

/// Whether dnsmasq must be restarted: its command line and the DHCP port's addresses.
#[derive(Debug, Clone, PartialEq)]
struct StartKey {
    args: Vec<String>,
    dhcp_ips: Vec<String>,
}

struct NetworkState {
    dir: NetworkDir,
    namespace: String,
    interface: String,
    subnets: Subnets,
    dhcp_port_id: String,
    key: StartKey,
    opts: String,
    ports: HashMap<String, PortState>,
    process: Option<Dnsmasq>,
}

/// What applying changes to files found.
#[derive(Default)]
struct Diff {
    written: usize,
    removed: usize,
    /// An existing file was replaced or removed: dnsmasq must re-read.
    stale: bool,
    /// Leases to release: of removed ports, or addresses a port no longer has.
    releases: Vec<(String, Ipv4Addr)>,
}

impl Diff {
    fn outcome(&self, action: DhcpAction) -> DhcpOutcome {
        DhcpOutcome {
            action,
            files_written: self.written,
            files_removed: self.removed,
        }
    }
}

pub struct DhcpManager {
    state_dir: PathBuf,
    options: DhcpOptions,
    networks: BTreeMap<String, NetworkState>,
}

impl DhcpManager {
    /// Files go to `<state_dir>/dhcp/<network id>/`. Fails when dnsmasq or dhcp_release is
    /// missing, or when dnsmasq could not read the state directory once unprivileged.
    pub fn new(state_dir: PathBuf, options: DhcpOptions) -> Result<DhcpManager> {
        for binary in [&options.dnsmasq, &options.dhcp_release] {
            find_program(binary)?;
        }
        let dhcp_dir = state_dir.join("dhcp");
        std::fs::create_dir_all(&dhcp_dir).map_err(io_error(&dhcp_dir))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dhcp_dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io_error(&dhcp_dir))?;
        layout::check_reachable(&dhcp_dir)?;
        Ok(DhcpManager {
            state_dir,
            options,
            networks: BTreeMap::new(),
        })
    }

    /// The networks configured here.
    pub fn networks(&self) -> Vec<String> {
        self.networks.keys().cloned().collect()
    }

    /// The pid of a network's dnsmasq, if it runs.
    pub fn pid(&self, network_id: &str) -> Option<u32> {
        self.networks
            .get(network_id)?
            .process
            .as_ref()
            .map(Dnsmasq::pid)
    }

    /// The directory of a network's files.
    pub fn network_dir(&self, network_id: &str) -> PathBuf {
        NetworkDir::new(&self.state_dir, network_id)
            .root()
            .to_path_buf()
    }

    /// Configures the whole network: every port's files written, stale ones removed, and
    /// dnsmasq started, restarted, reloaded or left alone, whichever is enough. `interface` is
    /// the DHCP port's device in `qdhcp-<network id>`.
    pub fn configure(&mut self, net: &DhcpNetwork, interface: &str) -> Result<DhcpOutcome> {
        let network_id = net.network.id.clone();
        network::check_id("network", &network_id)?;
        network::check_interface(interface)?;
        network::check_id("DHCP port", &net.dhcp_port_id)?;
        let subnets = Subnets::parse(&net.subnets)?;
        let mut ports = HashMap::with_capacity(net.ports.len());
        for port in &net.ports {
            if port.network_id != network_id {
                return Err(invalid(format!(
                    "port {} is on network {}, not {network_id}",
                    port.id, port.network_id
                )));
            }
            if let Some(state) = port_state(port, &subnets, &self.options.domain)? {
                ports.insert(port.id.clone(), state);
            }
        }
        let dir = NetworkDir::new(&self.state_dir, &network_id);
        let key = StartKey {
            args: dnsmasq_args(net.network.mtu, &subnets, interface, &dir, &self.options),
            dhcp_ips: dhcp_ips(net.ports.iter().find(|p| p.id == net.dhcp_port_id)),
        };
        let opts = subnet_options(&subnets, router_ips(&ports), &self.options.domain);

        let Some(state) = self.networks.get_mut(&network_id) else {
            // First time here (perhaps not on this disk): write everything, then start.
            dir.create()?;
            let mut diff = Diff::default();
            for (id, port) in &ports {
                write_port(&dir, id, &PortFiles::default(), &port.files, &mut diff)?;
            }
            for port_dir in dir.port_dirs() {
                for name in layout::file_names(&port_dir)? {
                    let wanted = ports
                        .get(&name)
                        .is_some_and(|p| !file_of(&dir, &p.files, &port_dir).is_empty());
                    if !wanted && layout::remove_file(&port_dir.join(&name))? {
                        diff.removed += 1;
                    }
                }
            }
            layout::write_file(&dir.opts(), &opts)?;
            layout::write_file(&dir.interface(), &format!("{interface}\n"))?;
            diff.written += 2;
            if !dir.leases().exists() {
                // Existing clients keep their address when a network moves here (timestamp 0
                // is an infinite lease); dnsmasq owns the file from now on.
                let leases: String = ports
                    .values()
                    .flat_map(|p| &p.leases)
                    .map(|(mac, ip)| format!("0 {mac} {ip} * *\n"))
                    .collect();
                layout::write_file(&dir.leases(), &leases)?;
                diff.written += 1;
            }
            let mut state = NetworkState {
                dir,
                namespace: dhcp_namespace(&network_id),
                interface: interface.to_string(),
                subnets,
                dhcp_port_id: net.dhcp_port_id.clone(),
                key,
                opts,
                ports,
                process: None,
            };
            state.start(&self.options)?;
            self.networks.insert(network_id, state);
            return Ok(diff.outcome(DhcpAction::Started));
        };

        let mut diff = Diff::default();
        let mut old_ports = std::mem::take(&mut state.ports);
        for (id, new) in &ports {
            let old = old_ports.remove(id).unwrap_or_default();
            state.sync_port(id, &old, new, &mut diff)?;
        }
        for (id, old) in old_ports {
            state.sync_port(&id, &old, &PortState::default(), &mut diff)?;
        }
        state.ports = ports;
        state.subnets = subnets;
        state.dhcp_port_id = net.dhcp_port_id.clone();
        if state.interface != interface {
            layout::write_file(&state.dir.interface(), &format!("{interface}\n"))?;
            state.interface = interface.to_string();
            diff.written += 1;
        }
        state.set_opts(opts, &mut diff)?;
        let restart = state.key != key;
        state.key = key;
        let action = if restart {
            state.stop()?;
            state.start(&self.options)?;
            DhcpAction::Restarted
        } else {
            state.notify(&diff, &self.options)?
        };
        state.release(&diff.releases, &self.options);
        Ok(diff.outcome(action))
    }

    /// Writes one port's files only (never another port's) and makes dnsmasq see them.
    pub fn upsert_port(&mut self, network_id: &str, port: &HostPort) -> Result<DhcpOutcome> {
        let options = &self.options;
        let state = self
            .networks
            .get_mut(network_id)
            .ok_or_else(|| DhcpError::UnknownNetwork(network_id.to_string()))?;
        if port.network_id != network_id {
            return Err(invalid(format!(
                "port {} is on network {}, not {network_id}",
                port.id, port.network_id
            )));
        }
        if port.id == state.dhcp_port_id {
            // Our own port: its addresses are dnsmasq's, bound at start.
            let dhcp_ips = dhcp_ips(Some(port));
            if dhcp_ips == state.key.dhcp_ips {
                return Ok(Diff::default().outcome(DhcpAction::Unchanged));
            }
            state.key.dhcp_ips = dhcp_ips;
            state.stop()?;
            state.start(options)?;
            return Ok(Diff::default().outcome(DhcpAction::Restarted));
        }
        let new = port_state(port, &state.subnets, &options.domain)?.unwrap_or_default();
        state.update_port(&port.id, new, options)
    }

    /// Removes one port's files and makes dnsmasq forget it.
    pub fn remove_port(&mut self, network_id: &str, port_id: &str) -> Result<DhcpOutcome> {
        let state = self
            .networks
            .get_mut(network_id)
            .ok_or_else(|| DhcpError::UnknownNetwork(network_id.to_string()))?;
        state.update_port(port_id, PortState::default(), &self.options)
    }

    /// Stops the network's dnsmasq and removes its directory. False when it was not here.
    pub fn disable(&mut self, network_id: &str) -> Result<bool> {
        let Some(mut state) = self.networks.remove(network_id) else {
            return Ok(false);
        };
        state.stop()?;
        state.dir.remove()?;
        Ok(true)
    }

    /// Starts again every dnsmasq that died; returns their networks. One that cannot start is
    /// logged and tried again next time.
    pub fn supervise(&mut self) -> Vec<String> {
        let mut restarted = Vec::new();
        for (id, state) in &mut self.networks {
            if state.process.as_mut().is_some_and(Dnsmasq::running) {
                continue;
            }
            tracing::warn!("dnsmasq of network {id} is not running: starting it");
            match state.start(&self.options) {
                Ok(()) => restarted.push(id.clone()),
                Err(e) => tracing::error!("dnsmasq of network {id}: {e}"),
            }
        }
        restarted
    }
}

impl NetworkState {
    fn start(&mut self, options: &DhcpOptions) -> Result<()> {
        self.process = None;
        self.process = Some(Dnsmasq::start(
            &self.namespace,
            &options.dnsmasq,
            &self.key.args,
            &self.dir,
            options.start_timeout,
            options.stop_timeout,
        )?);
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        match self.process.take() {
            Some(mut p) => p.stop(),
            None => Ok(()),
        }
    }

    fn update_port(
        &mut self,
        id: &str,
        new: PortState,
        options: &DhcpOptions,
    ) -> Result<DhcpOutcome> {
        let old = self.ports.remove(id).unwrap_or_default();
        let mut diff = Diff::default();
        self.sync_port(id, &old, &new, &mut diff)?;
        let router_changed = old.router_ips != new.router_ips;
        if new != PortState::default() {
            self.ports.insert(id.to_string(), new);
        }
        if router_changed {
            let opts = subnet_options(&self.subnets, router_ips(&self.ports), &options.domain);
            self.set_opts(opts, &mut diff)?;
        }
        let action = self.notify(&diff, options)?;
        self.release(&diff.releases, options);
        Ok(diff.outcome(action))
    }

    /// Brings one port's files from `old` to `new`.
    fn sync_port(&self, id: &str, old: &PortState, new: &PortState, diff: &mut Diff) -> Result<()> {
        write_port(&self.dir, id, &old.files, &new.files, diff)?;
        diff.releases.extend(
            old.leases
                .iter()
                .filter(|l| !new.leases.contains(l))
                .cloned(),
        );
        Ok(())
    }

    fn set_opts(&mut self, opts: String, diff: &mut Diff) -> Result<()> {
        if opts != self.opts {
            layout::write_file(&self.dir.opts(), &opts)?;
            self.opts = opts;
            diff.written += 1;
            diff.stale = true;
        }
        Ok(())
    }

    /// Makes a running dnsmasq see the files as they now are; starts one that is not running.
    fn notify(&mut self, diff: &Diff, options: &DhcpOptions) -> Result<DhcpAction> {
        let running = self.process.as_mut().is_some_and(Dnsmasq::running);
        let Some(process) = self.process.as_mut().filter(|_| running) else {
            self.start(options)?;
            return Ok(DhcpAction::Started);
        };
        if diff.stale {
            process.reload()?;
            Ok(DhcpAction::Reloaded)
        } else if diff.written > 0 {
            Ok(DhcpAction::Added)
        } else {
            Ok(DhcpAction::Unchanged)
        }
    }

    /// Frees leases dnsmasq holds for addresses no longer theirs, so they can go to another
    /// MAC at once (dnsmasq keeps a lease, even of a removed host, until it expires). Best
    /// effort, as in Neutron: a failure only delays the address's reuse.
    fn release(&self, releases: &[(String, Ipv4Addr)], options: &DhcpOptions) {
        for (mac, ip) in releases {
            let status = Command::new("ip")
                .args(["netns", "exec", &self.namespace])
                .arg(&options.dhcp_release)
                .args([&self.interface, &ip.to_string(), mac])
                .status();
            match status {
                Ok(s) if s.success() => {}
                Ok(s) => tracing::warn!("dhcp_release {ip} {mac} in {}: {s}", self.namespace),
                Err(e) => tracing::warn!("dhcp_release {ip} {mac} in {}: {e}", self.namespace),
            }
        }
    }
}

/// The port's state, or None when it gets no entries (Neutron skips DHCP, floating IP and HA
/// router ports).
fn port_state(port: &HostPort, subnets: &Subnets, domain: &str) -> Result<Option<PortState>> {
    let parsed = Port::parse(port, subnets)?;
    if !entries::has_entries(&port.device_owner) {
        return Ok(None);
    }
    let router_ips = if ROUTER_INTERFACE_OWNERS.contains(&port.device_owner.as_str()) {
        parsed
            .addresses
            .iter()
            .map(|a| (a.subnet.id.clone(), a.ip))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Some(PortState {
        files: entries::port_files(&parsed, domain),
        leases: entries::v4_leases(&parsed),
        router_ips,
    }))
}

fn router_ips(ports: &HashMap<String, PortState>) -> impl Iterator<Item = (&str, IpAddr)> + Clone {
    ports
        .values()
        .flat_map(|p| p.router_ips.iter().map(|(s, ip)| (s.as_str(), *ip)))
}

fn dhcp_ips(port: Option<&HostPort>) -> Vec<String> {
    let mut ips: Vec<String> = port
        .map(|p| p.fixed_ips.iter().map(|f| f.ip_address.clone()).collect())
        .unwrap_or_default();
    ips.sort();
    ips
}

/// The text of one of a port's files, by its directory.
fn file_of<'a>(dir: &NetworkDir, files: &'a PortFiles, port_dir: &Path) -> &'a str {
    if port_dir == dir.hosts() {
        &files.host
    } else if port_dir == dir.names() {
        &files.names
    } else {
        &files.opts
    }
}

/// Brings a port's three files from `old` to `new` (an empty text is no file).
fn write_port(
    dir: &NetworkDir,
    id: &str,
    old: &PortFiles,
    new: &PortFiles,
    diff: &mut Diff,
) -> Result<()> {
    for port_dir in dir.port_dirs() {
        let (old, new) = (file_of(dir, old, &port_dir), file_of(dir, new, &port_dir));
        if old == new {
            continue;
        }
        let path = port_dir.join(id);
        if new.is_empty() {
            layout::remove_file(&path)?;
            diff.removed += 1;
        } else {
            layout::write_file(&path, new)?;
            diff.written += 1;
        }
        diff.stale |= !old.is_empty();
    }
    Ok(())
}

/// A program by path, or looked up in PATH.
fn find_program(program: &Path) -> Result<PathBuf> {
    let found = if program.components().count() > 1 {
        program.is_file().then(|| program.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
    };
    found.ok_or_else(|| {
        DhcpError::Process(format!(
            "{} not found (dnsmasq-base and dnsmasq-utils provide dnsmasq and dhcp_release)",
            program.display()
        ))
    })
}
