//! A multi-host rig: N simulated hosts on one machine, each with its own agent, talking over an
//! underlay that exists only inside namespaces the rig makes.
//!
//! - The underlay: a network namespace of its own (`<prefix>-u`) holding a Linux bridge (`sw`,
//!   the switch, joined to nothing else) with the server's address, [`SERVER_IP`].
//! - The server: `neutrino serve --no-agent` (the [`binary`]) inside that namespace, SQLite in
//!   the rig's temporary directory, with the rig's `--agent-down-time`.
//! - Each host: a network namespace (`<prefix>-h<i>`) with a veth (`underlay`) to the switch and
//!   the address [`Host::ip`]; its agent runs in new PID, mount and UTS namespaces under an
//!   init shell (`ip netns exec ... unshare --pid --fork --mount-proc --mount --uts sh`) with a
//!   tmpfs on `/run`, so the namespaces the agent makes (`/run/netns/qdhcp-*`, `inst-*`) and its
//!   Open vSwitch (`/run/openvswitch`) are the host's own, and everything the host runs (agent,
//!   dnsmasq, udhcpc, ovs-vswitchd) dies with its init ([`Rig::kill`]). A host restarts on the
//!   same state directory ([`Rig::start_host`]); its network namespace (devices) survives a kill,
//!   as a host's kernel would survive its agent's crash, unless [`Rig::power_off`] removes it.
//! - The test talks to the API from a thread inside the underlay namespace ([`Rig::call`]):
//!   no address of the rig is reachable from the machine's own namespaces.
//!
//! Everything (processes, namespaces) goes when the rig is dropped, also when a test panics.
//! Rigs run one at a time on the machine (a host-wide lock): they are heavy, and the DHCP
//! failover test measures times.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::fcntl::{Flock, FlockArg};
use nix::sched::{CloneFlags, setns};
use serde_json::{Value, json};

use crate::kernel::{ip, unique};

/// The server's address on the underlay (the switch's own address).
pub const SERVER_IP: &str = "10.77.0.1";
const SERVER_PORT: u16 = 9696;
const LOCK: &str = "/run/neutrino-test-rig.lock";
const OVS_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// The `neutrino` binary the rig runs: `NEUTRINO_BIN` when set, else this package's build of
/// the CLI (`neutrino-rig`, next to the test binary: target/<profile>/).
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NEUTRINO_BIN") {
        return PathBuf::from(bin);
    }
    // Tests and benches run from target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("profile dir")
    } else {
        dir
    };
    dir.join("neutrino-rig")
}

/// How a rig is set up.
#[derive(Debug, Clone)]
pub struct RigOptions {
    pub hosts: usize,
    /// `linuxbridge` or `ovs-hybrid` (each host then runs its own Open vSwitch).
    pub mechanism_driver: String,
    /// The Linux bridge driver's `vxlan_group`: empty for unicast VXLAN.
    pub vxlan_group: String,
    /// The hosts whose agents serve DHCP (`[agent] dhcp`); the others do not.
    pub dhcp_hosts: Vec<usize>,
    /// The server's `--dhcp-agents-per-network`.
    pub dhcp_agents_per_network: usize,
    /// The server's `--agent-down-time`, seconds.
    pub agent_down_time: u64,
    /// The agents' `report_interval`, seconds.
    pub report_interval: u64,
    /// The agents' `resync_interval`, seconds.
    pub resync_interval: u64,
    /// The server's `--boot-timeout`, seconds.
    pub boot_timeout: u64,
}

impl RigOptions {
    /// `hosts` Linux bridge hosts, unicast VXLAN, every host serving DHCP.
    pub fn linuxbridge(hosts: usize) -> RigOptions {
        RigOptions {
            hosts,
            mechanism_driver: "linuxbridge".into(),
            vxlan_group: String::new(),
            dhcp_hosts: (0..hosts).collect(),
            dhcp_agents_per_network: 1,
            agent_down_time: 20,
            report_interval: 2,
            resync_interval: 60,
            boot_timeout: 25,
        }
    }
}

/// One simulated host.
pub struct Host {
    pub index: usize,
    /// Its agent's `--host`.
    pub name: String,
    /// Its network namespace (in the machine's `/run/netns`).
    pub netns: String,
    /// Its underlay address (`tunneling_ip`).
    pub ip: String,
    pub dir: PathBuf,
    /// The `ip netns exec ... unshare` process; its child is the host's init.
    process: Option<Child>,
    /// The host's init (PID 1 of its PID namespace), as the machine sees it.
    init: Option<u32>,
}

impl Host {
    /// The agent's (and its init's) log: stderr of everything the host runs.
    pub fn log(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    /// The last `lines` lines of the host's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// The host's init as the machine sees it, when the host runs.
    pub fn init_pid(&self) -> Option<u32> {
        self.init
    }

    pub fn running(&self) -> bool {
        self.init
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
    }

    /// Runs a command inside the host (its network, mount, UTS and PID namespaces): whether
    /// it succeeded, and its output.
    pub fn exec(&self, args: &[&str]) -> (bool, String) {
        let Some(pid) = self.init else {
            return (false, format!("host {} is not running", self.name));
        };
        let pid = pid.to_string();
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &pid, "-n", "-m", "-u", "-p", "--"])
            .args(args);
        output(&mut command)
    }

    /// Runs a command in the network namespace `namespace` the host's agent made (an
    /// instance's `inst-...`, a `qdhcp-...`).
    pub fn exec_in(&self, namespace: &str, args: &[&str]) -> (bool, String) {
        let mut all = vec!["ip", "netns", "exec", namespace];
        all.extend_from_slice(args);
        self.exec(&all)
    }

    /// The path of a namespace the host's agent made, as the machine can open it.
    pub fn namespace_path(&self, namespace: &str) -> Option<PathBuf> {
        self.init
            .map(|pid| PathBuf::from(format!("/proc/{pid}/root/run/netns/{namespace}")))
    }

    /// The forwarding entries of a device of the host's namespace (`bridge fdb show dev`)
    /// that have a destination (the VXLAN remote ones), learned ones included.
    pub fn vxlan_fdb(&self, device: &str) -> anyhow::Result<Vec<FdbEntry>> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                "bridge",
                "-j",
                "fdb",
                "show",
                "dev",
                device,
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "bridge fdb show dev {device} on {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let entries: Value = serde_json::from_slice(&out.stdout).unwrap_or(json!([]));
        Ok(entries
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some(FdbEntry {
                    mac: e["mac"].as_str()?.to_string(),
                    dst: e["dst"].as_str()?.to_string(),
                    // The kernel's own entries (learned from traffic, aging out) have no state;
                    // entries someone added are `permanent` or `static`.
                    learned: e["state"].as_str().unwrap_or_default().is_empty(),
                })
            })
            .collect())
    }

    /// The entries someone (the agent) installed: [`Host::vxlan_fdb`] without learned ones.
    pub fn installed_fdb(&self, device: &str) -> anyhow::Result<Vec<FdbEntry>> {
        let mut entries = self.vxlan_fdb(device)?;
        entries.retain(|e| !e.learned);
        Ok(entries)
    }

    /// The underlay addresses `device` floods to (its installed all-zeros entries).
    pub fn flood_destinations(&self, device: &str) -> anyhow::Result<Vec<String>> {
        let mut dsts: Vec<String> = self
            .installed_fdb(device)?
            .into_iter()
            .filter(|e| e.mac == "00:00:00:00:00:00")
            .map(|e| e.dst)
            .collect();
        dsts.sort();
        Ok(dsts)
    }

    /// Whether a link exists in the host's namespace.
    pub fn has_link(&self, name: &str) -> bool {
        Command::new("ip")
            .args(["-n", &self.netns, "link", "show", "dev", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The dnsmasq processes of the host serving `network_id` (their pids, as the machine
    /// sees them): processes of the host's PID namespace named dnsmasq whose command line
    /// names the network's DHCP directory.
    pub fn dnsmasq_for(&self, network_id: &str) -> Vec<u32> {
        let Some(init) = self.init else {
            return vec![];
        };
        let Ok(pidns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else {
            return vec![];
        };
        let mut found = vec![];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() != "dnsmasq" {
                continue;
            }
            if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .ok()
                .as_ref()
                != Some(&pidns)
            {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&format!("/dhcp/{network_id}/")) {
                found.push(pid);
            }
        }
        found
    }

    /// CPU time (user + system) of the host's agent so far, in clock ticks: the init's child
    /// named like the binary.
    pub fn agent_cpu_ticks(&self) -> Option<u64> {
        let pid = self.agent_pid()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command (in parentheses, which may hold spaces).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 here (state is 3).
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    }

    /// The agent's pid as the machine sees it: the init's child that is not an Open vSwitch
    /// daemon.
    pub fn agent_pid(&self) -> Option<u32> {
        let init = self.init?;
        let children =
            std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).ok()?;
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim().starts_with("neutrino"))
            })
    }
}

/// One remote forwarding entry of a VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: String,
    /// The underlay address frames for `mac` go to.
    pub dst: String,
    /// Learned by the kernel from traffic (ages out), not installed by anyone.
    pub learned: bool,
}

/// A booted server as the tests look at it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub host: usize,
    /// Its network namespace inside its host (`inst-...`).
    pub namespace: String,
    pub port_id: String,
    pub ip: String,
    pub mac: String,
}

pub struct Rig {
    pub options: RigOptions,
    pub prefix: String,
    /// The underlay namespace (switch and server).
    pub underlay: String,
    pub url: String,
    pub hosts: Vec<Host>,
    server: Option<Child>,
    api: Option<Api>,
    /// The rig's files (server data, hosts' state and logs); kept with NEUTRINO_RIG_KEEP set.
    dir: Option<tempfile::TempDir>,
    _turn: Flock<File>,
}

impl Rig {
    /// Makes the underlay, starts the server and every host (in parallel), and waits until
    /// every agent is alive.
    pub fn start(options: RigOptions) -> anyhow::Result<Rig> {
        let started = Instant::now();
        let lock = File::create(LOCK).with_context(|| format!("create {LOCK}"))?;
        let turn = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("lock {LOCK}"))?;
        let bin = binary();
        anyhow::ensure!(
            bin.exists(),
            "{} not built (cargo builds it with this package's tests and benches; or set \
             NEUTRINO_BIN)",
            bin.display()
        );
        let dir = tempfile::Builder::new().prefix("neutrino-rig-").tempdir()?;
        // dnsmasq reads its files as nobody: every directory above them must be searchable.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let prefix = unique("mh");
        let underlay = format!("{prefix}-u");
        let mut rig = Rig {
            url: format!("http://{SERVER_IP}:{SERVER_PORT}"),
            hosts: (0..options.hosts)
                .map(|index| Host {
                    index,
                    name: format!("host{index}"),
                    netns: format!("{prefix}-h{index}"),
                    ip: host_ip(index),
                    dir: dir.path().join(format!("host{index}")),
                    process: None,
                    init: None,
                })
                .collect(),
            options,
            prefix,
            underlay,
            server: None,
            api: None,
            dir: Some(dir),
            _turn: turn,
        };
        // From here on, Drop removes whatever was made.
        ip(&["netns", "add", &rig.underlay]);
        let u = rig.underlay.as_str();
        ip(&["-n", u, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            u,
            "link",
            "add",
            "sw",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&[
            "-n",
            u,
            "addr",
            "add",
            &format!("{SERVER_IP}/16"),
            "dev",
            "sw",
        ]);
        ip(&["-n", u, "link", "set", "sw", "up"]);
        rig.start_server()?;
        rig.api = Some(Api::start(&rig.underlay, rig.url.clone())?);
        rig.wait_for_server()?;
        let server_dir = rig.dir().join("server");
        let enrolls: Vec<_> = rig
            .hosts
            .iter()
            .map(|h| {
                Command::new(&bin)
                    .args(["agent", "enroll", &h.name, "--data-dir"])
                    .arg(&server_dir)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        for (host, enroll) in rig.hosts.iter().zip(enrolls) {
            let out = enroll.wait_with_output()?;
            anyhow::ensure!(
                out.status.success(),
                "neutrino agent enroll {}: {}",
                host.name,
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::create_dir_all(&host.dir)?;
            std::fs::write(host.dir.join("token"), out.stdout.trim_ascii())?;
        }
        for i in 0..rig.hosts.len() {
            rig.start_host_process(i)?;
        }
        rig.wait_for_agents(
            &(0..rig.hosts.len()).collect::<Vec<_>>(),
            Duration::from_secs(60),
        )?;
        eprintln!(
            "rig {}: server and {} hosts up in {:.1?}",
            rig.prefix,
            rig.hosts.len(),
            started.elapsed()
        );
        Ok(rig)
    }

    /// The rig's directory.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the rig's directory").path()
    }

    fn server_log(&self) -> PathBuf {
        self.dir().join("server.log")
    }

    fn drivers_toml(&self) -> String {
        let mut t = format!(
            "[drivers]\nmechanism_drivers = [\"{}\"]\n",
            self.options.mechanism_driver
        );
        if self.options.mechanism_driver == "linuxbridge" {
            t.push_str(&format!(
                "\n[drivers.drivers.linuxbridge.config]\nvxlan_group = \"{}\"\n",
                self.options.vxlan_group
            ));
        }
        t
    }

    fn start_server(&mut self) -> anyhow::Result<()> {
        let config = self.dir().join("server.toml");
        std::fs::write(&config, self.drivers_toml())?;
        let log = File::create(self.server_log())?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.underlay])
            .arg(binary())
            .args(["serve", "--no-agent", "--listen"])
            .arg(format!("{SERVER_IP}:{SERVER_PORT}"))
            .arg("--data-dir")
            .arg(self.dir().join("server"))
            .arg("--config")
            .arg(&config)
            .arg("--agent-down-time")
            .arg(self.options.agent_down_time.to_string())
            .arg("--boot-timeout")
            .arg(self.options.boot_timeout.to_string())
            .arg("--dhcp-agents-per-network")
            .arg(self.options.dhcp_agents_per_network.to_string())
            .env(
                "RUST_LOG",
                "warn,neutrino=info,neutrino_api=info,neutrino_core=info",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start neutrino serve")?;
        self.server = Some(child);
        Ok(())
    }

    fn wait_for_server(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = self.call("GET", "/v2.0/agents", None) {
                return Ok(());
            }
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten())
            {
                bail!(
                    "the server exited ({status}):\n{}",
                    tail(&self.server_log(), 30)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the server did not answer within 30 s:\n{}",
                    tail(&self.server_log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn agent_toml(&self, host: &Host) -> String {
        let mut t = self.drivers_toml();
        t.push_str(&format!(
            "\n[agent]\ntunneling_ip = \"{}\"\nreport_interval = {}\nresync_interval = {}\n\
             dhcp = {}\n",
            host.ip,
            self.options.report_interval,
            self.options.resync_interval,
            self.options.dhcp_hosts.contains(&host.index),
        ));
        if self.ovs() {
            t.push_str("ovs_db = \"/run/openvswitch/db.sock\"\n");
        }
        t
    }

    fn ovs(&self) -> bool {
        self.options.mechanism_driver == "ovs-hybrid"
    }

    /// Starts host `i` (its namespace and underlay link if missing) without waiting for its
    /// agent.
    fn start_host_process(&mut self, i: usize) -> anyhow::Result<()> {
        let host = &self.hosts[i];
        anyhow::ensure!(!host.running(), "host {} already runs", host.name);
        if !Path::new(&format!("/run/netns/{}", host.netns)).exists() {
            ip(&["netns", "add", &host.netns]);
            ip(&["-n", &host.netns, "link", "set", "lo", "up"]);
            let port = format!("h{i}");
            ip(&[
                "link",
                "add",
                "underlay",
                "netns",
                &host.netns,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.underlay,
            ]);
            ip(&[
                "-n",
                &self.underlay,
                "link",
                "set",
                &port,
                "master",
                "sw",
                "up",
            ]);
            ip(&[
                "-n",
                &host.netns,
                "addr",
                "add",
                &format!("{}/16", host.ip),
                "dev",
                "underlay",
            ]);
            ip(&["-n", &host.netns, "link", "set", "underlay", "up"]);
        }
        std::fs::create_dir_all(&host.dir)?;
        let config = host.dir.join("agent.toml");
        std::fs::write(&config, self.agent_toml(host))?;
        let state = host.dir.join("state");
        let mut script = String::from("set -e\nmount -t tmpfs -o mode=0755 rig-run /run\n");
        script.push_str(&format!("hostname {}\n", host.name));
        if self.ovs() {
            let db = host.dir.join("ovs");
            let db = db.display();
            let run = "/run/openvswitch";
            script.push_str(&format!(
                "mkdir -p {run} {db}\n\
                 export OVS_RUNDIR={run} OVS_DBDIR={db} OVS_LOGDIR={db}\n\
                 [ -f {db}/conf.db ] || ovsdb-tool create {db}/conf.db {OVS_SCHEMA}\n\
                 ovsdb-server {db}/conf.db --remote=punix:{run}/db.sock \
                   --pidfile={run}/ovsdb-server.pid --unixctl={run}/ovsdb-server.ctl \
                   --log-file={db}/ovsdb-server.log --detach\n\
                 ovs-vsctl --db=unix:{run}/db.sock --no-wait init\n\
                 ovs-vswitchd unix:{run}/db.sock --pidfile={run}/ovs-vswitchd.pid \
                   --unixctl={run}/ovs-vswitchd.ctl --log-file={db}/ovs-vswitchd.log --detach\n"
            ));
        }
        // The agent in the foreground, not exec'd: the shell stays the host's init, and an
        // agent that exits takes the host down with it (its status in the log).
        script.push_str(&format!(
            "set +e\n'{bin}' agent --server {url} --host {name} --token-file '{token}' \
             --state-dir '{state}' --config '{config}'\n\
             echo \"rig: the agent exited with status $?\" >&2\n",
            bin = binary().display(),
            url = self.url,
            name = host.name,
            token = host.dir.join("token").display(),
            state = state.display(),
            config = config.display(),
        ));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(host.log())?;
        writeln!(&log, "rig: starting host {}", host.name)?;
        let child = Command::new("ip")
            .args(["netns", "exec", &host.netns])
            .args([
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .env("RUST_LOG", "warn,neutrino_agent=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start a host")?;
        let pid = child.id();
        let host = &mut self.hosts[i];
        host.process = Some(child);
        // unshare forks the init: its only child.
        let deadline = Instant::now() + Duration::from_secs(5);
        let init = loop {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            if let Some(init) = children.split_whitespace().next() {
                break init.parse::<u32>()?;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "host {}: no init after 5 s:\n{}",
                host.name,
                host.log_tail(20)
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        host.init = Some(init);
        Ok(())
    }

    /// Starts (or restarts, on its state) host `i` and waits until its agent is alive.
    pub fn start_host(&mut self, i: usize) -> anyhow::Result<()> {
        self.start_host_process(i)?;
        self.wait_for_agents(&[i], Duration::from_secs(60))
    }

    /// Kills host `i`: `kill -9` of its init, which takes every process of the host with it
    /// (agent, dnsmasq, Open vSwitch), and with them its private `/run` and the namespaces
    /// there. Its network namespace (bridges, VXLAN devices) stays.
    pub fn kill(&mut self, i: usize) {
        let host = &mut self.hosts[i];
        if let Some(init) = host.init.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(init as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(mut process) = host.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Kills host `i` and removes its network namespace too (a host that lost power): its
    /// next start begins from a bare kernel, on the same state directory.
    pub fn power_off(&mut self, i: usize) {
        self.kill(i);
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.hosts[i].netns])
            .status();
        // The kernel frees the namespace (and the veth's end there) later: the switch's end
        // goes now, and the pair with it.
        let _ = Command::new("ip")
            .args(["-n", &self.underlay, "link", "delete", &format!("h{i}")])
            .stderr(Stdio::null())
            .status();
    }

    /// Waits until every host of `hosts` has an alive agent.
    pub fn wait_for_agents(&self, hosts: &[usize], timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, body) = self.call("GET", "/v2.0/agents", None)?;
            let alive = |name: &str| {
                body["agents"].as_array().is_some_and(|agents| {
                    agents
                        .iter()
                        .any(|a| a["host"] == name && a["alive"] == true)
                })
            };
            let waiting: Vec<usize> = hosts
                .iter()
                .copied()
                .filter(|&i| !alive(&self.hosts[i].name))
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let mut why = String::new();
                for &i in &waiting {
                    why.push_str(&format!(
                        "\n--- host{i} (running: {}), log tail:\n{}",
                        self.hosts[i].running(),
                        self.hosts[i].log_tail(15)
                    ));
                }
                bail!("agents of hosts {waiting:?} not alive after {timeout:?}:{why}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether host `i`'s agents all report alive in the server's eyes (false when none).
    pub fn agent_alive(&self, i: usize) -> anyhow::Result<bool> {
        let (_, body) = self.call(
            "GET",
            &format!("/v2.0/agents?host={}", self.hosts[i].name),
            None,
        )?;
        let agents = body["agents"].as_array().cloned().unwrap_or_default();
        Ok(!agents.is_empty() && agents.iter().all(|a| a["alive"] == true))
    }

    /// One API request as the default admin, from inside the underlay: status and JSON body
    /// (null when empty).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.api
            .as_ref()
            .context("no API client")?
            .call(method, path, body)
    }

    /// A POST that must succeed; its answer.
    pub fn create(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, answer) = self.call("POST", path, Some(body))?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "POST {path}: {status} {answer}"
        );
        Ok(answer)
    }

    /// A tenant network (the server's default type: VXLAN) with one DHCP-enabled IPv4
    /// subnet: (network id, its VNI).
    pub fn network(&self, name: &str, cidr: &str) -> anyhow::Result<(String, u64)> {
        let network = self.create("/v2.0/networks", json!({"network": {"name": name}}))?;
        let id = network["network"]["id"]
            .as_str()
            .context("network id")?
            .to_string();
        let vni = network["network"]["provider:segmentation_id"]
            .as_u64()
            .with_context(|| format!("network {id} has no segmentation id: {network}"))?;
        self.create(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": id, "ip_version": 4, "cidr": cidr}}),
        )?;
        Ok((id, vni))
    }

    /// The host whose agent serves the network's DHCP (its DHCP port's binding).
    pub fn dhcp_host(&self, network_id: &str) -> anyhow::Result<Option<usize>> {
        let (_, body) = self.call(
            "GET",
            &format!("/v2.0/ports?network_id={network_id}&device_owner=network:dhcp"),
            None,
        )?;
        let host = body["ports"][0]["binding:host_id"]
            .as_str()
            .unwrap_or_default();
        Ok(self.hosts.iter().position(|h| h.name == host))
    }

    /// Asks for a server on `network_id`, forced onto host `host`; its id.
    pub fn boot_request(
        &self,
        name: &str,
        network_id: &str,
        host: usize,
    ) -> anyhow::Result<String> {
        let answer = self.create(
            "/v2.1/servers",
            json!({"server": {"name": name, "networks": [{"uuid": network_id}],
                              "availability_zone": format!("nova:{}", self.hosts[host].name)}}),
        )?;
        Ok(answer["server"]["id"]
            .as_str()
            .context("server id")?
            .to_string())
    }

    /// Boots a server on host `host` and waits until it is ACTIVE (its NIC holds its lease).
    pub fn boot(&self, name: &str, network_id: &str, host: usize) -> anyhow::Result<Instance> {
        let id = self.boot_request(name, network_id, host)?;
        self.wait_active(
            &id,
            host,
            Duration::from_secs(self.options.boot_timeout + 5),
        )
    }

    /// Waits until server `id` (on host `host`) is ACTIVE; the instance.
    pub fn wait_active(
        &self,
        id: &str,
        host: usize,
        timeout: Duration,
    ) -> anyhow::Result<Instance> {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, body) = self.call("GET", &format!("/v2.1/servers/{id}"), None)?;
            anyhow::ensure!(code == 200, "GET server {id}: {code} {body}");
            let status = body["server"]["status"].as_str().unwrap_or_default();
            if status == "ACTIVE" {
                break;
            }
            if status == "ERROR" || Instant::now() > deadline {
                bail!(
                    "server {id} on host{host} is {status}, not ACTIVE, after {:?}: {}\n\
                     --- host{host} log tail:\n{}",
                    timeout.saturating_sub(deadline.saturating_duration_since(Instant::now())),
                    body["server"]["fault"],
                    self.hosts[host].log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let (_, ports) = self.call("GET", &format!("/v2.0/ports?device_id={id}"), None)?;
        let port = &ports["ports"][0];
        Ok(Instance {
            id: id.to_string(),
            host,
            namespace: neutrino::agent::protocol::instance_namespace(id),
            port_id: port["id"].as_str().context("port id")?.to_string(),
            ip: port["fixed_ips"][0]["ip_address"]
                .as_str()
                .context("port address")?
                .to_string(),
            mac: port["mac_address"]
                .as_str()
                .context("port MAC")?
                .to_string(),
        })
    }

    pub fn delete_server(&self, id: &str) -> anyhow::Result<()> {
        let (code, body) = self.call("DELETE", &format!("/v2.1/servers/{id}"), None)?;
        anyhow::ensure!(code == 204, "DELETE server {id}: {code} {body}");
        Ok(())
    }

    /// The instance's address on its NIC (`eth0`), as its host's kernel holds it.
    pub fn address_of(&self, instance: &Instance) -> Option<String> {
        let (ok, out) = self.hosts[instance.host].exec_in(
            &instance.namespace,
            &["ip", "-j", "-4", "addr", "show", "dev", "eth0"],
        );
        if !ok {
            return None;
        }
        let links: Value = serde_json::from_str(&out).ok()?;
        links[0]["addr_info"][0]["local"]
            .as_str()
            .map(str::to_string)
    }

    /// One ping from `from` to `ip` with `size` bytes of payload and Don't Fragment set:
    /// whether it was answered, and ping's output.
    pub fn ping(&self, from: &Instance, ip: &str, size: usize) -> (bool, String) {
        let size = size.to_string();
        self.hosts[from.host].exec_in(
            &from.namespace,
            &["ping", "-c", "1", "-W", "1", "-M", "do", "-s", &size, ip],
        )
    }

    /// Pings until an answer comes, for up to `tries` tries (the first may be lost to ARP and
    /// learning); the last output when none came.
    pub fn ping_eventually(&self, from: &Instance, ip: &str, tries: usize) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..tries {
            let (ok, out) = self.ping(from, ip, 56);
            if ok {
                return Ok(());
            }
            last = out;
        }
        Err(last)
    }

    /// A TCP connection from `client` to a listener in `server`'s namespace: a line sent and
    /// echoed back. Both ends are sockets of this process, made on threads inside the
    /// instances' namespaces.
    pub fn tcp_echo(&self, server: &Instance, client: &Instance) -> anyhow::Result<()> {
        use std::io::{Read, Write};
        let server_ns = self.hosts[server.host]
            .namespace_path(&server.namespace)
            .context("server's host not running")?;
        let client_ns = self.hosts[client.host]
            .namespace_path(&client.namespace)
            .context("client's host not running")?;
        let addr: std::net::SocketAddr = format!("{}:0", server.ip).parse()?;
        let listener = in_netns(&server_ns, move || std::net::TcpListener::bind(addr))??;
        let addr = listener.local_addr()?;
        let accepted = std::thread::spawn(move || -> anyhow::Result<()> {
            listener.set_nonblocking(false)?;
            let (mut stream, _) = listener.accept()?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = [0u8; 64];
            let n = stream.read(&mut buf)?;
            stream.write_all(&buf[..n])?;
            Ok(())
        });
        let echoed = in_netns(&client_ns, move || -> anyhow::Result<Vec<u8>> {
            let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .with_context(|| format!("connect to {addr}"))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"neutrino")?;
            let mut buf = [0u8; 64];
            let n = stream.read(&mut buf)?;
            Ok(buf[..n].to_vec())
        })?;
        let echoed = match echoed {
            Ok(echoed) => echoed,
            Err(e) => {
                // Unblock the accepting thread: a connection of our own from inside.
                let _ = in_netns(&server_ns, move || {
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                });
                let _ = accepted.join();
                return Err(e);
            }
        };
        accepted
            .join()
            .map_err(|_| anyhow::anyhow!("the listener panicked"))??;
        anyhow::ensure!(echoed == b"neutrino", "echoed {echoed:?}");
        Ok(())
    }

    /// What a failing test prints: the server's and every host's log tail.
    /// The port status reports of ERROR the server received so far (its log's lines).
    pub fn port_errors(&self) -> Vec<String> {
        std::fs::read_to_string(self.server_log())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ports/status") && l.contains(": ERROR: "))
            .map(str::to_string)
            .collect()
    }

    pub fn logs(&self) -> String {
        let mut out = format!(
            "=== rig {} in {}\n--- server log tail:\n{}",
            self.prefix,
            self.dir().display(),
            tail(&self.server_log(), 20)
        );
        for host in &self.hosts {
            out.push_str(&format!(
                "\n--- {} ({}, running: {}) log tail:\n{}",
                host.name,
                host.ip,
                host.running(),
                host.log_tail(20)
            ));
        }
        out
    }

    /// Unwraps `result`, or panics with `step`, the error and every log tail.
    #[track_caller]
    pub fn ok<T>(&self, step: &str, result: anyhow::Result<T>) -> T {
        match result {
            Ok(v) => v,
            Err(e) => panic!("{step}: {e:#}\n{}", self.logs()),
        }
    }

    /// Panics with `step`, `why` and every log tail unless `condition` holds.
    #[track_caller]
    pub fn check(&self, condition: bool, step: &str, why: impl std::fmt::Display) {
        if !condition {
            panic!("{step}: {why}\n{}", self.logs());
        }
    }

    /// Polls `f` every 100 ms until it holds or `timeout` passes; whether it held.
    pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if f() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for i in 0..self.hosts.len() {
            self.kill(i);
        }
        self.api = None;
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        for host in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "delete", &host.netns])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.underlay])
            .status();
        if std::env::var_os("NEUTRINO_RIG_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("rig {}: kept {}", self.prefix, dir.keep().display());
        }
    }
}

/// Host `i`'s underlay address in 10.77.0.0/16: 10.77.0.2 upwards (the server is .1).
fn host_ip(i: usize) -> String {
    let n = i + 2;
    format!("10.77.{}.{}", n / 256, n % 256)
}

fn output(command: &mut Command) -> (bool, String) {
    match command.output() {
        Ok(out) => (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Err(e) => (false, format!("{command:?}: {e}")),
    }
}

/// The last `lines` lines of a file (empty when it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `f` on a new thread inside the network namespace at `path` (a `/run/netns` entry of a
/// host, through `/proc/<init>/root`); its result.
pub fn in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread in {} panicked", path.display()))
}

type Reply = anyhow::Result<(u16, Value)>;
type Request = (String, String, Option<Value>, mpsc::Sender<Reply>);

/// An HTTP client on a thread inside the underlay namespace.
struct Api {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Api {
    fn start(namespace: &str, url: String) -> anyhow::Result<Api> {
        let file = File::open(format!("/run/netns/{namespace}"))?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into the underlay");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            while let Ok((method, path, body, reply)) = rx.recv() {
                let result = runtime.block_on(request(&client, &url, &method, &path, body));
                let _ = reply.send(result);
            }
        });
        Ok(Api {
            requests: Some(tx),
            thread: Some(thread),
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let (tx, rx) = mpsc::channel();
        self.requests
            .as_ref()
            .context("API client stopped")?
            .send((method.into(), path.into(), body, tx))
            .map_err(|_| anyhow::anyhow!("API client thread gone"))?;
        rx.recv()
            .map_err(|_| anyhow::anyhow!("API client thread gone"))?
            .with_context(|| format!("{method} {path}"))
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn request(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Reply {
    crate::dataplane::json_request(client, url, method, path, body).await
}
