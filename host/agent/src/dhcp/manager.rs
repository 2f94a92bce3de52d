//! `DhcpManager`: the dnsmasq processes of each network, their files kept in step with the
//! network, and the cheapest correct way to make dnsmasq see a change (Neutron's reload vs
//! restart, 4.3):
//!
//! - a new port file: nothing, dnsmasq reads it by inotify;
//! - a changed or removed port file, or changed subnet options: SIGHUP to the processes that
//!   read it, since dnsmasq keeps every record it once read from its directories until it
//!   re-reads them all;
//! - a different command line (subnets, MTU, interface) or DHCP port addresses: restart, since
//!   dnsmasq reads its ranges and binds its addresses only at start.
//!
//! A network of more than `ports_per_dnsmasq` ports is served by several DHCP processes, each
//! for a share of the ports, and one for DNS (see `shards`); the split changes (every
//! process restarted, every file written again) only when the network outgrows it, or
//! shrinks to a quarter of what it holds. The manager remembers what it wrote, so a change is
//! found without reading files back, and one port change touches that port's files only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use super::cmdline::{Role, dnsmasq_args};
use super::entries::{self, PortFiles, ROUTER_INTERFACE_OWNERS};
use super::layout::{self, NetworkDir, ProcessDir};
use super::network::{self, Port, Subnets};
use super::options::subnet_options;
use super::process::{Dnsmasq, stop_orphan};
use super::{DhcpError, DhcpOptions, Result, invalid, io_error, shards};
use neutrino_proto::{DhcpNetwork, HostPort, dhcp_namespace};

/// What a call did to dnsmasq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpAction {
    /// Nothing changed.
    Unchanged,
    /// Only new port files were written: dnsmasq reads them by inotify, no signal was sent.
    Added,
    /// Files changed or were removed: the processes that read them were sent SIGHUP.
    Reloaded,
    /// dnsmasq was not running and was started.
    Started,
    /// dnsmasq's command line (or the DHCP port's addresses, or the network's split into
    /// shards) changed: it was started anew.
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

/// Whether dnsmasq must be restarted: the command line of each process and the DHCP port's
/// addresses.
#[derive(Debug, Clone, PartialEq)]
struct StartKey {
    args: Vec<Vec<String>>,
    dhcp_ips: Vec<String>,
}

/// One dnsmasq of a network.
struct Process {
    dir: ProcessDir,
    dnsmasq: Option<Dnsmasq>,
}

impl Process {
    fn running(&mut self) -> bool {
        self.dnsmasq.as_mut().is_some_and(Dnsmasq::running)
    }
}

struct NetworkState {
    dir: NetworkDir,
    namespace: String,
    interface: String,
    mtu: u32,
    subnets: Subnets,
    dhcp_port_id: String,
    /// How many DHCP processes share the ports.
    shards: usize,
    key: StartKey,
    opts: String,
    ports: HashMap<String, PortState>,
    /// The shards (index = shard), then the DNS process when there are several.
    processes: Vec<Process>,
    /// Whether this namespace's tables turn unicast DHCP into broadcast.
    broadcast_rules: bool,
}

/// What applying changes to files found.
#[derive(Default)]
struct Diff {
    written: usize,
    removed: usize,
    /// Processes that read an existing file that was replaced or removed: they must re-read.
    stale: BTreeSet<usize>,
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

/// The three files of a port: which directory holds each, and which process reads it.
#[derive(Debug, Clone, Copy)]
enum PortFile {
    Host,
    Names,
    Opts,
}

impl PortFile {
    const ALL: [PortFile; 3] = [PortFile::Host, PortFile::Names, PortFile::Opts];

    fn text(self, files: &PortFiles) -> &str {
        match self {
            PortFile::Host => &files.host,
            PortFile::Names => &files.names,
            PortFile::Opts => &files.opts,
        }
    }

    fn dir(self, net: &NetworkDir, shard: usize) -> PathBuf {
        match self {
            PortFile::Host => net.shard(shard).hosts(),
            PortFile::Names => net.names(),
            PortFile::Opts => net.shard(shard).port_opts(),
        }
    }

    /// The process that reads it: the port's shard, or the one serving DNS.
    fn reader(self, shard: usize, shards: usize) -> usize {
        match self {
            PortFile::Names if shards > 1 => shards,
            PortFile::Names => 0,
            _ => shard,
        }
    }
}

pub struct DhcpManager {
    state_dir: PathBuf,
    options: DhcpOptions,
    networks: BTreeMap<String, NetworkState>,
}

impl DhcpManager {
    /// Files go to `<state_dir>/dhcp/<network id>/`, or, when dnsmasq could not enter the state
    /// directory once unprivileged, to [`layout::reachable_state_dir`]. Fails when dnsmasq,
    /// dhcp_release or iptables-restore is missing, or when dnsmasq could not read either.
    pub fn new(state_dir: PathBuf, options: DhcpOptions) -> Result<DhcpManager> {
        for binary in [
            &options.dnsmasq,
            &options.dhcp_release,
            &options.iptables_restore,
        ] {
            find_program(binary)?;
        }
        // dnsmasq reads its files after dropping root for `nobody`: a state directory that
        // others cannot enter (a data directory of mode 0700, as `mktemp -d` makes) keeps
        // them in a directory of their own under /run instead, named after the state
        // directory, so that each agent on the host has its own.
        let state_dir = match layout::check_reachable(&state_dir) {
            Ok(()) => state_dir,
            Err(why) => {
                let why = match why {
                    DhcpError::Invalid(why) => why,
                    other => other.to_string(),
                };
                let elsewhere = layout::reachable_state_dir(&state_dir);
                tracing::warn!(
                    "{why}; so the DHCP files go to {} instead",
                    elsewhere.join("dhcp").display()
                );
                elsewhere
            }
        };
        let dhcp_dir = state_dir.join("dhcp");
        std::fs::create_dir_all(&dhcp_dir).map_err(io_error(&dhcp_dir))?;
        use std::os::unix::fs::PermissionsExt;
        // Under the umask of the agent: the fallback's parent must let dnsmasq through too.
        let run_dir = std::path::Path::new(layout::RUN_DIR);
        let mut dirs = vec![dhcp_dir.as_path()];
        if state_dir.starts_with(run_dir) {
            dirs.extend([run_dir, state_dir.as_path()]);
        }
        for dir in dirs {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(io_error(dir))?;
        }
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

    /// The pid of a network's (first) dnsmasq, if it runs.
    pub fn pid(&self, network_id: &str) -> Option<u32> {
        self.pids(network_id).first().copied()
    }

    /// The pids of a network's running dnsmasq processes: its shards, then its DNS process.
    pub fn pids(&self, network_id: &str) -> Vec<u32> {
        self.networks
            .get(network_id)
            .map(|n| {
                n.processes
                    .iter()
                    .filter_map(|p| p.dnsmasq.as_ref().map(Dnsmasq::pid))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many DHCP processes share a network's ports (0: not here).
    pub fn shards(&self, network_id: &str) -> usize {
        self.networks.get(network_id).map_or(0, |n| n.shards)
    }

    /// The shard that serves a port of a network, when the port has entries there.
    pub fn shard_of(&self, network_id: &str, port_id: &str) -> Option<usize> {
        let state = self.networks.get(network_id)?;
        state
            .ports
            .contains_key(port_id)
            .then(|| state.shard_of(port_id))
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
            // One port the agent cannot serve (an option dnsmasq would misread, an address
            // off the network) is left out, never the network: on a shared network that would
            // take DHCP away from every tenant.
            match port_state(port, &subnets, &self.options.domain) {
                Ok(Some(state)) => {
                    ports.insert(port.id.clone(), state);
                }
                Ok(None) => {}
                Err(e) => tracing::error!(
                    "network {network_id}: port {} gets no DHCP entries: {e}",
                    port.id
                ),
            }
        }
        let per_shard = self.options.ports_per_dnsmasq;
        let wanted = shards::wanted(ports.len(), per_shard);
        let dhcp_ips = dhcp_ips(net.ports.iter().find(|p| p.id == net.dhcp_port_id));

        let existing = self.networks.remove(&network_id);
        let (existed, broadcast_rules) = existing
            .as_ref()
            .map_or((false, false), |s| (true, s.broadcast_rules));
        // A state dropped here stops its processes.
        let Some(mut state) = existing.filter(|s| shards::keep(s.shards, ports.len(), per_shard))
        else {
            // First time here (perhaps not on this disk), or split anew: every process
            // stopped, every file written, then every process started.
            let mut state = NetworkState {
                dir: NetworkDir::new(&self.state_dir, &network_id),
                namespace: dhcp_namespace(&network_id),
                interface: interface.to_string(),
                mtu: net.network.mtu,
                subnets,
                dhcp_port_id: net.dhcp_port_id.clone(),
                shards: wanted,
                key: StartKey {
                    args: Vec::new(),
                    dhcp_ips,
                },
                opts: String::new(),
                ports,
                processes: Vec::new(),
                broadcast_rules,
            };
            // Kept even when it failed, so that supervise and the next call can retry.
            let laid_out = state.lay_out(&self.options);
            self.networks.insert(network_id, state);
            let action = if existed {
                DhcpAction::Restarted
            } else {
                DhcpAction::Started
            };
            return laid_out.map(|diff| diff.outcome(action));
        };
        let done = state.reconfigure(net, interface, subnets, ports, dhcp_ips, &self.options);
        self.networks.insert(network_id, state);
        done
    }

    /// Writes one port's files only (never another port's) and makes dnsmasq see them; a
    /// port beyond what the split holds splits the network anew.
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
            state.restart(options)?;
            return Ok(Diff::default().outcome(DhcpAction::Restarted));
        }
        let new = port_state(port, &state.subnets, &options.domain)?.unwrap_or_default();
        let grows = !state.ports.contains_key(&port.id) && new != PortState::default();
        let (count, per_shard) = (state.ports.len() + 1, options.ports_per_dnsmasq);
        if grows && !shards::keep(state.shards, count, per_shard) {
            state.ports.insert(port.id.clone(), new);
            state.shards = shards::wanted(count, per_shard);
            let diff = state.lay_out(options)?;
            return Ok(diff.outcome(DhcpAction::Restarted));
        }
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

    /// Stops the network's dnsmasq processes and removes its directory. False when it was not
    /// here.
    pub fn disable(&mut self, network_id: &str) -> Result<bool> {
        let Some(mut state) = self.networks.remove(network_id) else {
            return Ok(false);
        };
        state.stop()?;
        state.dir.remove()?;
        Ok(true)
    }

    /// Stops and starts the network's dnsmasq processes, as after its DHCP port's device was
    /// made anew (dnsmasq binds its sockets to the device at start).
    pub fn restart(&mut self, network_id: &str) -> Result<()> {
        let state = self
            .networks
            .get_mut(network_id)
            .ok_or_else(|| DhcpError::UnknownNetwork(network_id.to_string()))?;
        state.restart(&self.options)
    }

    /// Starts again every dnsmasq that died; returns their networks. One that cannot start is
    /// logged and tried again next time.
    pub fn supervise(&mut self) -> Vec<String> {
        let mut restarted = Vec::new();
        for (id, state) in &mut self.networks {
            let mut any = false;
            for k in 0..state.processes.len() {
                if state.processes[k].running() {
                    continue;
                }
                tracing::warn!("dnsmasq {k} of network {id} is not running: starting it");
                match state.start(k, &self.options) {
                    Ok(()) => any = true,
                    Err(e) => tracing::error!("dnsmasq {k} of network {id}: {e}"),
                }
            }
            if any {
                restarted.push(id.clone());
            }
        }
        restarted
    }
}

impl NetworkState {
    /// The processes for the current split: the only one, or the shards and the DNS one.
    fn roles(&self) -> Vec<(Role, ProcessDir)> {
        if self.shards == 1 {
            return vec![(Role::All, self.dir.shard(0))];
        }
        (0..self.shards)
            .map(|k| (Role::Shard, self.dir.shard(k)))
            .chain([(Role::Dns, self.dir.dns())])
            .collect()
    }

    fn command_lines(&self, options: &DhcpOptions) -> Vec<Vec<String>> {
        self.roles()
            .iter()
            .map(|(role, dir)| {
                dnsmasq_args(
                    self.mtu,
                    &self.subnets,
                    &self.interface,
                    &self.dir,
                    (*role, dir),
                    options,
                )
            })
            .collect()
    }

    fn subnet_options(&self, options: &DhcpOptions) -> String {
        subnet_options(
            &self.subnets,
            router_ips(&self.ports),
            &options.domain,
            self.shards > 1,
        )
    }

    fn shard_of(&self, port_id: &str) -> usize {
        shards::of(port_id, self.shards)
    }

    /// Brings a running network to `net` by the cheapest correct means.
    fn reconfigure(
        &mut self,
        net: &DhcpNetwork,
        interface: &str,
        subnets: Subnets,
        ports: HashMap<String, PortState>,
        dhcp_ips: Vec<String>,
        options: &DhcpOptions,
    ) -> Result<DhcpOutcome> {
        let mut diff = Diff::default();
        let mut old_ports = std::mem::take(&mut self.ports);
        for (id, new) in &ports {
            let old = old_ports.remove(id).unwrap_or_default();
            self.sync_port(id, &old, new, &mut diff)?;
        }
        for (id, old) in old_ports {
            self.sync_port(&id, &old, &PortState::default(), &mut diff)?;
        }
        self.ports = ports;
        self.subnets = subnets;
        self.mtu = net.network.mtu;
        self.dhcp_port_id = net.dhcp_port_id.clone();
        if self.interface != interface {
            layout::write_file(&self.dir.interface(), &format!("{interface}\n"))?;
            self.interface = interface.to_string();
            diff.written += 1;
        }
        self.set_opts(self.subnet_options(options), &mut diff)?;
        let key = StartKey {
            args: self.command_lines(options),
            dhcp_ips,
        };
        let restart = self.key != key;
        self.key = key;
        let action = if restart {
            self.restart(options)?;
            DhcpAction::Restarted
        } else {
            self.notify(&diff, options)?
        };
        self.release(&diff.releases, options);
        Ok(diff.outcome(action))
    }

    /// Stops every process, writes every file for the current split (removing those of other
    /// ports or other shards), and starts every process.
    fn lay_out(&mut self, options: &DhcpOptions) -> Result<Diff> {
        self.stop()?;
        let dir = self.dir.clone();
        // A dnsmasq of a dead agent still runs on these files (any split's): it is stopped,
        // and gone, before its lease file is read and the new processes bind their sockets.
        for process in dir.process_dirs()? {
            stop_orphan(&process, options.stop_timeout)?;
        }
        // Leases dnsmasq wrote for another split are of other shards' ports: every shard's
        // leases are seeded again.
        let reseed = (0..self.shards).any(|k| !dir.shard(k).leases().exists())
            || dir.shard(self.shards).root().exists();
        dir.create(self.shards)?;
        dir.remove_unused(self.shards)?;
        let mut diff = Diff::default();
        if reseed {
            for k in 0..self.shards {
                layout::remove_file(&dir.shard(k).leases())?;
            }
        }
        for (id, port) in &self.ports {
            write_port(
                &dir,
                self.shard_of(id),
                self.shards,
                id,
                &PortFiles::default(),
                &port.files,
                &mut diff,
            )?;
        }
        // Any other file in a port directory is of a port gone, or of another shard's.
        for file in PortFile::ALL {
            let mut dirs: Vec<PathBuf> = (0..self.shards).map(|k| file.dir(&dir, k)).collect();
            dirs.dedup(); // the names' one directory
            for file_dir in dirs {
                for name in layout::file_names(&file_dir)? {
                    let wanted = self.ports.get(&name).is_some_and(|p| {
                        !file.text(&p.files).is_empty()
                            && file.dir(&dir, self.shard_of(&name)) == file_dir
                    });
                    if !wanted && layout::remove_file(&file_dir.join(&name))? {
                        diff.removed += 1;
                    }
                }
            }
        }
        self.opts = self.subnet_options(options);
        layout::write_file(&dir.opts(), &self.opts)?;
        layout::write_file(&dir.interface(), &format!("{}\n", self.interface))?;
        diff.written += 2;
        for k in 0..self.shards {
            let leases = dir.shard(k).leases();
            if leases.exists() {
                // Leases of ports that went while no agent watched (or of addresses they no
                // longer have) were never released: dnsmasq would keep each address from
                // its new port until the lease expired. They go before dnsmasq starts.
                let wanted: BTreeSet<(String, Ipv4Addr)> = self
                    .ports
                    .iter()
                    .filter(|(id, _)| self.shard_of(id) == k)
                    .flat_map(|(_, p)| &p.leases)
                    .map(|(mac, ip)| (mac.to_ascii_lowercase(), *ip))
                    .collect();
                if prune_leases(&leases, &wanted)? {
                    diff.written += 1;
                }
                continue;
            }
            // Existing clients keep their address when a network moves here (timestamp 0
            // is an infinite lease); dnsmasq owns the file from now on.
            let text: String = self
                .ports
                .iter()
                .filter(|(id, _)| self.shard_of(id) == k)
                .flat_map(|(_, p)| &p.leases)
                .map(|(mac, ip)| format!("0 {mac} {ip} * *\n"))
                .collect();
            layout::write_file(&leases, &text)?;
            diff.written += 1;
        }
        self.key.args = self.command_lines(options);
        self.start_all(options)?;
        Ok(diff)
    }

    fn start(&mut self, k: usize, options: &DhcpOptions) -> Result<()> {
        let process = &mut self.processes[k];
        process.dnsmasq = None;
        process.dnsmasq = Some(Dnsmasq::start(
            &self.namespace,
            &options.dnsmasq,
            &self.key.args[k],
            &process.dir,
            options.start_timeout,
            options.stop_timeout,
        )?);
        Ok(())
    }

    /// Starts a process for every role, and sets the namespace's broadcast rules when the
    /// network is split (clears them when it no longer is).
    fn start_all(&mut self, options: &DhcpOptions) -> Result<()> {
        self.processes = self
            .roles()
            .into_iter()
            .map(|(_, dir)| Process { dir, dnsmasq: None })
            .collect();
        for k in 0..self.processes.len() {
            self.start(k, options)?;
        }
        let split = self.shards > 1;
        if split || self.broadcast_rules {
            let ips: Vec<Ipv4Addr> = if split {
                self.key
                    .dhcp_ips
                    .iter()
                    .filter_map(|ip| ip.parse().ok())
                    .collect()
            } else {
                Vec::new()
            };
            shards::apply_tables(
                &self.namespace,
                &options.iptables_restore,
                &shards::tables(&ips),
            )?;
            self.broadcast_rules = split;
        }
        Ok(())
    }

    fn restart(&mut self, options: &DhcpOptions) -> Result<()> {
        self.stop()?;
        self.start_all(options)
    }

    fn stop(&mut self) -> Result<()> {
        for process in &mut self.processes {
            if let Some(mut p) = process.dnsmasq.take() {
                p.stop()?;
            }
        }
        Ok(())
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
            self.set_opts(self.subnet_options(options), &mut diff)?;
        }
        let action = self.notify(&diff, options)?;
        self.release(&diff.releases, options);
        Ok(diff.outcome(action))
    }

    /// Brings one port's files from `old` to `new`.
    fn sync_port(&self, id: &str, old: &PortState, new: &PortState, diff: &mut Diff) -> Result<()> {
        write_port(
            &self.dir,
            self.shard_of(id),
            self.shards,
            id,
            &old.files,
            &new.files,
            diff,
        )?;
        diff.releases.extend(
            old.leases
                .iter()
                .filter(|l| !new.leases.contains(l))
                .cloned(),
        );
        Ok(())
    }

    /// The options file is read by every DHCP process.
    fn set_opts(&mut self, opts: String, diff: &mut Diff) -> Result<()> {
        if opts != self.opts {
            layout::write_file(&self.dir.opts(), &opts)?;
            self.opts = opts;
            diff.written += 1;
            diff.stale.extend(0..self.shards);
        }
        Ok(())
    }

    /// Makes every running dnsmasq see the files as they now are; starts those not running.
    fn notify(&mut self, diff: &Diff, options: &DhcpOptions) -> Result<DhcpAction> {
        let (mut started, mut reloaded) = (false, false);
        for k in 0..self.processes.len() {
            if !self.processes[k].running() {
                self.start(k, options)?;
                started = true;
            } else if diff.stale.contains(&k)
                && let Some(dnsmasq) = self.processes[k].dnsmasq.as_mut()
            {
                dnsmasq.reload()?;
                reloaded = true;
            }
        }
        Ok(if started {
            DhcpAction::Started
        } else if reloaded {
            DhcpAction::Reloaded
        } else if diff.written > 0 {
            DhcpAction::Added
        } else {
            DhcpAction::Unchanged
        })
    }

    /// Frees leases dnsmasq holds for addresses no longer theirs, so they can go to another
    /// MAC at once (dnsmasq keeps a lease, even of a removed host, until it expires). Best
    /// effort, as in Neutron: a failure only delays the address's reuse.
    fn release(&self, releases: &[(String, Ipv4Addr)], options: &DhcpOptions) {
        for (mac, ip) in releases {
            let status = super::in_namespace(&self.namespace, &options.dhcp_release)
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

/// Drops from a dnsmasq lease file every IPv4 lease that is not one of `wanted` (MAC in lower
/// case, address); other lines (the server's DUID, IPv6 leases) stay. True when it changed.
fn prune_leases(path: &Path, wanted: &BTreeSet<(String, Ipv4Addr)>) -> Result<bool> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let mut kept = String::with_capacity(text.len());
    let mut dropped = Vec::new();
    for line in text.lines() {
        // `<expiry> <MAC> <IPv4> <host name> <client id>`
        let fields: Vec<&str> = line.split_whitespace().collect();
        let v4 = match fields.as_slice() {
            [_, mac, ip, ..] => ip
                .parse::<Ipv4Addr>()
                .ok()
                .map(|ip| (mac.to_ascii_lowercase(), ip)),
            _ => None,
        };
        match v4 {
            Some(lease) if !wanted.contains(&lease) => dropped.push(lease),
            _ => {
                kept.push_str(line);
                kept.push('\n');
            }
        }
    }
    if dropped.is_empty() {
        return Ok(false);
    }
    for (mac, ip) in &dropped {
        tracing::info!(
            "dropping the stale lease of {ip} to {mac} in {}",
            path.display()
        );
    }
    layout::write_file(path, &kept)?;
    Ok(true)
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

/// Brings a port's three files from `old` to `new` (an empty text is no file); `shard` is the
/// port's, of `shards`.
fn write_port(
    dir: &NetworkDir,
    shard: usize,
    shards: usize,
    id: &str,
    old: &PortFiles,
    new: &PortFiles,
    diff: &mut Diff,
) -> Result<()> {
    for file in PortFile::ALL {
        let (old, new) = (file.text(old), file.text(new));
        if old == new {
            continue;
        }
        let path = file.dir(dir, shard).join(id);
        if new.is_empty() {
            layout::remove_file(&path)?;
            diff.removed += 1;
        } else {
            layout::write_file(&path, new)?;
            diff.written += 1;
        }
        if !old.is_empty() {
            diff.stale.insert(file.reader(shard, shards));
        }
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
