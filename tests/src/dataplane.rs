//! One all-in-one node for end-to-end tests: a real `neutrino serve` (its router on a real
//! socket, SQLite in a temporary directory), a real agent for the same host talking to it over
//! HTTP, and, for Open vSwitch, a private ovsdb-server/ovs-vswitchd. Every name the node makes
//! (host, bridges, VNIs) is unique, so that tests run side by side; whatever a test leaves
//! behind — it may fail half-way — is removed when the node is dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use neutrino::agent::AgentOptions;
use neutrino::agent::config::{AgentSettings, NodeConfig};
use neutrino::api::ApiConfig;
use neutrino::plugins::registry::DriversConfig;
use neutrino::server::ServeOptions;
use tokio_util::task::AbortOnDropHandle;

use crate::kernel::unique;
use crate::ovs::OvsDaemon;

/// Which bundled driver the node's agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    OvsHybrid,
    LinuxBridge,
    FlatDhcp,
}

impl Flavor {
    pub fn driver(self) -> &'static str {
        match self {
            Flavor::OvsHybrid => "ovs-hybrid",
            Flavor::LinuxBridge => "linuxbridge",
            Flavor::FlatDhcp => "flatdhcp",
        }
    }
}

pub struct Node {
    pub flavor: Flavor,
    pub host: String,
    pub url: String,
    http: reqwest::Client,
    agent_options: AgentOptions,
    agent: Option<AbortOnDropHandle<()>>,
    _server: AbortOnDropHandle<()>,
    /// Flat physical networks and their bridges (flatdhcp).
    pub physnets: BTreeMap<String, String>,
    /// The node's stand-in for the world outside, when it was started with one.
    pub outside: Option<Outside>,
    /// Devices and namespaces to remove at the end, whatever happened.
    leftovers: std::sync::Mutex<Vec<Leftover>>,
    ovs: Option<OvsDaemon>,
    _dir: tempfile::TempDir,
}

enum Leftover {
    Namespace(String),
    Link(String),
}

/// The world outside a node, on one machine: a namespace of the test's own holding the external
/// subnet's gateway address, joined by a veth to the bridge of the node's external physical
/// network, and to nothing else (never to the host's uplink).
#[derive(Debug, Clone)]
pub struct Outside {
    pub namespace: String,
    /// The physical network the external network is made on.
    pub physnet: String,
    /// The external subnet, and the outside's address on it (its gateway).
    pub cidr: String,
    pub address: String,
}

/// The external subnet of every node's outside: TEST-NET-2, routed nowhere.
const OUTSIDE_CIDR: &str = "198.51.100.0/24";
const OUTSIDE_ADDRESS: &str = "198.51.100.1";

impl Node {
    pub async fn start(flavor: Flavor) -> anyhow::Result<Node> {
        Node::start_with(flavor, false).await
    }

    /// A node with an [`Outside`]: its agent maps the physical network `physext` to the
    /// outside's veth (linuxbridge) or to a bridge holding it (ovs-hybrid, flatdhcp).
    pub async fn start_with_outside(flavor: Flavor) -> anyhow::Result<Node> {
        Node::start_with(flavor, true).await
    }

    async fn start_with(flavor: Flavor, outside: bool) -> anyhow::Result<Node> {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn,neutrino=info")
            .try_init();
        let dir = tempfile::tempdir()?;
        // dnsmasq reads its files as nobody: every directory above them must be searchable.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let suffix = unique("");
        let host = format!("e2e-{suffix}");
        let ovs = match flavor {
            Flavor::OvsHybrid => Some(OvsDaemon::start()?),
            _ => None,
        };
        let mut drivers = DriversConfig {
            mechanism_drivers: vec![flavor.driver().into()],
            ..DriversConfig::default()
        };
        let mut agent = AgentSettings {
            report_interval: 5,
            integration_bridge: format!("br-i{suffix}"),
            tunneling_ip: Some("127.0.0.1".into()),
            ovs_db: ovs.as_ref().map(OvsDaemon::db_socket),
            ..AgentSettings::default()
        };
        let mut physnets = BTreeMap::new();
        if flavor == Flavor::FlatDhcp {
            for name in ["a", "b"] {
                physnets.insert(format!("phys-{name}{suffix}"), format!("br{name}{suffix}"));
            }
            agent.bridge_mappings = physnets.clone();
        }
        if flavor == Flavor::LinuxBridge {
            // One host: no multicast group needed between VXLAN peers.
            drivers
                .drivers
                .entry("linuxbridge".into())
                .or_default()
                .config
                .insert("vxlan_group".into(), String::new());
        }
        let mut leftovers = Vec::new();
        let outside = if outside {
            let physnet = format!("physext{suffix}");
            let namespace = format!("out-{suffix}");
            let (root_end, inner_end) = (format!("xo{suffix}"), format!("xi{suffix}"));
            leftovers.push(Leftover::Namespace(namespace.clone()));
            leftovers.push(Leftover::Link(root_end.clone()));
            let cidr_prefix = OUTSIDE_CIDR.split('/').nth(1).unwrap_or("24");
            let steps: [&[&str]; 6] = [
                &["ip", "netns", "add", &namespace],
                &[
                    "ip", "link", "add", &root_end, "type", "veth", "peer", "name", &inner_end,
                    "netns", &namespace,
                ],
                &["ip", "link", "set", &root_end, "up"],
                &["ip", "-n", &namespace, "link", "set", "lo", "up"],
                &["ip", "-n", &namespace, "link", "set", &inner_end, "up"],
                &[
                    "ip",
                    "-n",
                    &namespace,
                    "addr",
                    "add",
                    &format!("{OUTSIDE_ADDRESS}/{cidr_prefix}"),
                    "dev",
                    &inner_end,
                ],
            ];
            // With Open vSwitch's userspace datapath a partial checksum is never completed
            // (see the agent's offload module): the outside sends whole ones.
            let offload: &[&str] = &[
                "ip", "netns", "exec", &namespace, "ethtool", "-K", &inner_end, "tx", "off",
            ];
            for step in steps.into_iter().chain([offload]) {
                anyhow::ensure!(run(step), "making the outside: {step:?}");
            }
            match flavor {
                Flavor::LinuxBridge => {
                    agent.interface_mappings.insert(physnet.clone(), root_end);
                }
                Flavor::OvsHybrid => {
                    let bridge = format!("br-x{suffix}");
                    let ovs = ovs.as_ref().expect("ovs-hybrid runs its OVS");
                    ovs.vsctl(&[
                        "add-br",
                        &bridge,
                        "--",
                        "set",
                        "bridge",
                        &bridge,
                        "datapath_type=netdev",
                    ])?;
                    ovs.vsctl(&["add-port", &bridge, &root_end])?;
                    agent.bridge_mappings.insert(physnet.clone(), bridge);
                }
                Flavor::FlatDhcp => {
                    let bridge = format!("brx{suffix}");
                    anyhow::ensure!(run(&["ip", "link", "add", &bridge, "type", "bridge"]));
                    anyhow::ensure!(run(&["ip", "link", "set", &bridge, "up"]));
                    anyhow::ensure!(run(&["ip", "link", "set", &root_end, "master", &bridge]));
                    leftovers.push(Leftover::Link(bridge.clone()));
                    agent.bridge_mappings.insert(physnet.clone(), bridge);
                }
            }
            Some(Outside {
                namespace,
                physnet,
                cidr: OUTSIDE_CIDR.into(),
                address: OUTSIDE_ADDRESS.into(),
            })
        } else {
            None
        };
        let node_config = NodeConfig {
            drivers: drivers.clone(),
            agent,
        };
        // VXLAN devices are named by VNI: each node takes VNIs of its own.
        let vni_start = 1000 + i64::from(rand_u16()) * 16;
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse()?,
            database: None,
            data_dir: dir.path().join("server"),
            agent_token_file: None,
            shared_agent_token: false,
            api: ApiConfig {
                drivers,
                vni_range: (vni_start, vni_start + 15),
                boot_timeout: Duration::from_secs(30),
                ..ApiConfig::default()
            },
        };
        let (addr, server) = neutrino::server::spawn(options.clone()).await?;
        // Installed by the server's agent client too; the test's own client needs it first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = format!("http://{addr}");
        // The host's own agent credential, as `neutrino agent enroll HOST` makes it.
        let store = neutrino::store::Store::connect(&options.database_url()).await?;
        let token = neutrino::api::internal::enroll(&store, &host).await?;
        drop(store);
        let agent_options = AgentOptions {
            server: url.clone(),
            host: host.clone(),
            token,
            state_dir: dir.path().join("agent"),
            config: node_config,
        };
        let mut node = Node {
            flavor,
            host,
            url,
            http: reqwest::Client::builder().build()?,
            agent_options,
            agent: None,
            _server: server,
            physnets,
            outside,
            leftovers: std::sync::Mutex::new(leftovers),
            ovs,
            _dir: dir,
        };
        node.start_agent();
        node.wait_for_agent().await?;
        Ok(node)
    }

    fn start_agent(&mut self) {
        let options = self.agent_options.clone();
        self.agent = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            if let Err(e) = neutrino::agent::run(options).await {
                eprintln!("agent stopped: {e:#}");
            }
        })));
    }

    /// Stops the agent (its dnsmasq processes with it) and starts a new one on the same state.
    pub async fn restart_agent(&mut self) -> anyhow::Result<()> {
        self.agent = None;
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.start_agent();
        self.wait_for_agent().await
    }

    async fn wait_for_agent(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = self
                .call("GET", &format!("/v2.0/agents?host={}", self.host), None)
                .await?;
            let alive = body["agents"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["alive"] == true));
            if alive {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the agent never reported");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One API request as the default admin; the status and the JSON body (null when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        json_request(&self.http, &self.url, method, path, body).await
    }

    /// One API request as a member of `project` (noauth headers).
    pub async fn call_as(
        &self,
        project: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let headers = [
            ("x-project-id", project),
            ("x-user-id", project),
            ("x-roles", "member,reader"),
        ];
        json_request_with(&self.http, &self.url, method, path, body, &headers).await
    }

    /// A POST that must succeed; its answer.
    pub async fn create(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, answer) = self.call("POST", path, Some(body)).await?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "POST {path}: {status} {answer}"
        );
        Ok(answer)
    }

    /// A network with one DHCP-enabled IPv4 subnet; returns (network id, subnet id). On
    /// flatdhcp the network is flat on the `physnet`-th physical network (0 or 1).
    pub async fn network(
        &self,
        name: &str,
        cidr: &str,
        physnet: usize,
    ) -> anyhow::Result<(String, String)> {
        let mut network = json!({"name": name});
        if self.flavor == Flavor::FlatDhcp {
            let physnet = self.physnets.keys().nth(physnet).expect("two physnets");
            network["provider:network_type"] = json!("flat");
            network["provider:physical_network"] = json!(physnet);
        }
        let network = self
            .create("/v2.0/networks", json!({"network": network}))
            .await?;
        let network_id = network["network"]["id"].as_str().unwrap().to_string();
        let mut leftovers = vec![
            Leftover::Namespace(format!("qdhcp-{network_id}")),
            Leftover::Link(format!("brq{}", &network_id[..11])),
        ];
        // Linux bridge's VXLAN device, named by the segment.
        if network["network"]["provider:network_type"] == "vxlan" {
            let vni = &network["network"]["provider:segmentation_id"];
            leftovers.push(Leftover::Link(format!("vxlan-{vni}")));
        }
        self.leftovers.lock().unwrap().extend(leftovers);
        let subnet = self
            .create(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": network_id, "ip_version": 4, "cidr": cidr}}),
            )
            .await?;
        let subnet_id = subnet["subnet"]["id"].as_str().unwrap().to_string();
        Ok((network_id, subnet_id))
    }

    /// Boots a server on `network_id` (on this node's host) and waits until it is ACTIVE.
    pub async fn boot(&self, name: &str, network_id: &str) -> anyhow::Result<Server> {
        self.boot_in(name, network_id, &[]).await
    }

    /// Boots a server in the security groups named (none: the project's default group).
    pub async fn boot_in(
        &self,
        name: &str,
        network_id: &str,
        groups: &[&str],
    ) -> anyhow::Result<Server> {
        let mut server = json!({"name": name, "networks": [{"uuid": network_id}],
                                "availability_zone": format!("nova:{}", self.host)});
        if !groups.is_empty() {
            let named: Vec<Value> = groups.iter().map(|g| json!({"name": g})).collect();
            server["security_groups"] = Value::Array(named);
        }
        let answer = self
            .create("/v2.1/servers", json!({ "server": server }))
            .await?;
        let id = answer["server"]["id"].as_str().unwrap().to_string();
        let namespace = neutrino::agent::protocol::instance_namespace(&id);
        self.leftovers
            .lock()
            .unwrap()
            .push(Leftover::Namespace(namespace.clone()));
        let server = self
            .wait_for_status(&id, "ACTIVE", Duration::from_secs(30))
            .await?;
        let (_, ports) = self
            .call("GET", &format!("/v2.0/ports?device_id={id}"), None)
            .await?;
        let port = ports["ports"][0].clone();
        let port_id = port["id"].as_str().unwrap().to_string();
        self.leftovers.lock().unwrap().extend(
            ["tap", "qbr", "qvb", "qvo"]
                .iter()
                .map(|p| Leftover::Link(format!("{p}{}", &port_id[..11]))),
        );
        Ok(Server {
            id,
            namespace,
            port_id,
            ip: port["fixed_ips"][0]["ip_address"]
                .as_str()
                .unwrap()
                .to_string(),
            mac: port["mac_address"].as_str().unwrap().to_string(),
            detail: server,
        })
    }

    /// The default external network on the outside's physical network (flat, `router:external`,
    /// `is_default`), with its subnet (no DHCP, the outside as gateway); (network, subnet).
    pub async fn external_network(&self) -> anyhow::Result<(String, String)> {
        let outside = self
            .outside
            .as_ref()
            .expect("a node started with an outside");
        let network = self
            .create(
                "/v2.0/networks",
                json!({"network": {"name": "public", "router:external": true, "is_default": true,
                    "provider:network_type": "flat",
                    "provider:physical_network": outside.physnet}}),
            )
            .await?;
        let network_id = network["network"]["id"].as_str().unwrap().to_string();
        self.leftovers.lock().unwrap().extend([
            Leftover::Namespace(format!("qdhcp-{network_id}")),
            Leftover::Link(format!("brq{}", &network_id[..11])),
        ]);
        let subnet = self
            .create(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": network_id, "ip_version": 4,
                    "cidr": outside.cidr, "gateway_ip": outside.address, "enable_dhcp": false}}),
            )
            .await?;
        let subnet_id = subnet["subnet"]["id"].as_str().unwrap().to_string();
        Ok((network_id, subnet_id))
    }

    /// Removes the link `name` when the node is dropped, whatever the test did.
    pub fn leave_no_link(&self, name: &str) {
        self.leftovers
            .lock()
            .unwrap()
            .push(Leftover::Link(name.to_string()));
    }

    /// Removes `namespace` when the node is dropped, whatever the test did.
    pub fn leave_no(&self, namespace: &str) {
        self.leftovers
            .lock()
            .unwrap()
            .push(Leftover::Namespace(namespace.to_string()));
    }

    pub async fn wait_for_status(
        &self,
        id: &str,
        status: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, body) = self
                .call("GET", &format!("/v2.1/servers/{id}"), None)
                .await?;
            anyhow::ensure!(code == 200, "GET server {id}: {code} {body}");
            let now = body["server"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if now == status {
                return Ok(body["server"].clone());
            }
            anyhow::ensure!(
                now != "ERROR" && Instant::now() < deadline,
                "server {id} is {now}, not {status}: {}",
                body["server"]["fault"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn delete_server(&self, id: &str) -> anyhow::Result<()> {
        let (code, body) = self
            .call("DELETE", &format!("/v2.1/servers/{id}"), None)
            .await?;
        anyhow::ensure!(code == 204, "DELETE server {id}: {code} {body}");
        Ok(())
    }

    /// The node's OVS, for tests that look at its ports.
    pub fn ovs(&self) -> Option<&OvsDaemon> {
        self.ovs.as_ref()
    }

    /// A device the sweep of a restarted agent must remove: named like a port's tap.
    pub fn plant_stale_device(&self) -> String {
        let name = format!(
            "tap{:04x}{:04x}-{:02x}",
            rand_u16(),
            rand_u16(),
            rand_u16() % 256
        );
        run(&["ip", "link", "add", &name, "type", "bridge"]);
        self.leftovers
            .lock()
            .unwrap()
            .push(Leftover::Link(name.clone()));
        name
    }
}

impl Node {
    /// The agent's OVS integration bridge.
    pub fn integration_bridge(&self) -> &str {
        &self.agent_options.config.agent.integration_bridge
    }

    /// What an ovs-hybrid agent stopped before it tore a network down leaves: the network's
    /// VXLAN device, a port of the integration bridge. Its name; None on other flavors.
    pub fn plant_stale_tunnel(&self) -> Option<String> {
        let ovs = self.ovs.as_ref()?;
        // Far above the VNIs the node's networks get.
        let vni = (16_000_000 + u32::from(rand_u16())).to_string();
        let name = format!("vxlan-{vni}");
        run(&[
            "ip", "link", "add", &name, "type", "vxlan", "id", &vni, "dstport", "4789",
        ]);
        self.leftovers
            .lock()
            .unwrap()
            .push(Leftover::Link(name.clone()));
        ovs.vsctl(&["add-port", self.integration_bridge(), &name])
            .expect("the stale tunnel on the integration bridge");
        Some(name)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The agent first: its dnsmasq processes go with it.
        self.agent = None;
        // The agent ran in this process's network namespace: its firewall's chains and sets go
        // too (an agent leaves them on stop, so that its ports stay filtered).
        if let Err(e) = neutrino::agent::firewall::remove_all() {
            eprintln!("removing the agent's firewall: {e:#}");
        }
        // Hybrid plugs in this node's Open vSwitch (DHCP and router ports too, whose ids the
        // test never saw): their qbr bridge and qvb/qvo pair stay in the host's namespace
        // when the agent stops.
        if let Some(ovs) = &self.ovs {
            let ports = ovs
                .vsctl(&["list-ports", self.integration_bridge()])
                .unwrap_or_default();
            for port in ports.lines() {
                let devices = match port.strip_prefix("qvo") {
                    Some(id) => ["qvo", "qbr", "tap"].map(|d| format!("{d}{id}")).to_vec(),
                    // A network's tunnel device, whose network the agent had no time to
                    // tear down.
                    None if port.starts_with("vxlan-") => vec![port.to_string()],
                    None => Vec::new(),
                };
                for device in devices {
                    let _ = Command::new("ip").args(["link", "del", &device]).output();
                }
            }
            // The bridges' own devices go with them.
            let bridges = ovs.vsctl(&["list-br"]).unwrap_or_default();
            for bridge in bridges.lines() {
                let _ = ovs.vsctl(&["--if-exists", "del-br", bridge]);
            }
        }
        for leftover in self.leftovers.lock().unwrap().drain(..) {
            match leftover {
                Leftover::Namespace(ns) => {
                    let pids = Command::new("ip").args(["netns", "pids", &ns]).output();
                    if let Ok(out) = pids {
                        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                            let _ = Command::new("kill").args(["-9", pid]).status();
                        }
                    }
                    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
                }
                Leftover::Link(name) => {
                    let _ = Command::new("ip").args(["link", "del", &name]).output();
                }
            }
        }
        for bridge in self.physnets.values() {
            let _ = Command::new("ip").args(["link", "del", bridge]).output();
        }
    }
}

/// A booted server, as the tests look at it.
pub struct Server {
    pub id: String,
    pub namespace: String,
    pub port_id: String,
    pub ip: String,
    pub mac: String,
    pub detail: Value,
}

/// Runs a command; true when it exited 0.
pub fn run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One ping from `namespace` to `ip`.
pub fn ping(namespace: &str, ip: &str) -> bool {
    run(&[
        "ip", "netns", "exec", namespace, "ping", "-c", "1", "-W", "1", ip,
    ])
}

/// Pings until one answer comes, for up to `tries` seconds (the first packets may be lost to
/// ARP and to bridges learning).
pub fn ping_eventually(namespace: &str, ip: &str, tries: usize) -> bool {
    (0..tries).any(|_| ping(namespace, ip))
}

/// A TCP connection from `client` to a listener in `server` at `ip`: a line sent and echoed.
pub fn tcp_echo(server: &str, client: &str, ip: &str) -> bool {
    tcp_echo_on(server, client, ip, 20000 + rand_u16() % 20000)
}

/// [`tcp_echo`] on a given port; the client gives up after 2 s.
pub fn tcp_echo_on(server: &str, client: &str, ip: &str, port: u16) -> bool {
    let listener = Command::new("ip")
        .args(["netns", "exec", server, "python3", "-c"])
        .arg(format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('{ip}',{port}))\ns.listen(1)\ns.settimeout(10)\nc,_=s.accept()\n\
             c.sendall(c.recv(64))\nc.close()"
        ))
        .spawn();
    let Ok(mut listener) = listener else {
        return false;
    };
    std::thread::sleep(Duration::from_millis(300));
    let ok = run(&[
        "ip",
        "netns",
        "exec",
        client,
        "python3",
        "-c",
        &format!(
            "import socket\nc=socket.create_connection(('{ip}',{port}),timeout=2)\n\
             c.sendall(b'neutrino')\nassert c.recv(64)==b'neutrino'"
        ),
    ]);
    let _ = listener.kill();
    let _ = listener.wait();
    ok
}

/// The address a listener in `server` (on every address, `port`) sees a connection from
/// `client` to `ip` come from (after NAT); None when none came within 2 s.
pub fn peer_seen(server: &str, client: &str, ip: &str, port: u16) -> Option<String> {
    let listener = Command::new("ip")
        .args(["netns", "exec", server, "python3", "-c"])
        .arg(format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('',{port}))\ns.listen(1)\ns.settimeout(5)\nc,a=s.accept()\n\
             print(a[0],flush=True)\nc.sendall(c.recv(64))\nc.close()"
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    let connected = run(&[
        "ip",
        "netns",
        "exec",
        client,
        "python3",
        "-c",
        &format!(
            "import socket\nc=socket.create_connection(('{ip}',{port}),timeout=2)\n\
             c.sendall(b'neutrino')\nassert c.recv(64)==b'neutrino'"
        ),
    ]);
    if !connected {
        let mut listener = listener;
        let _ = listener.kill();
        let _ = listener.wait();
        return None;
    }
    let out = listener.wait_with_output().ok()?;
    let seen = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!seen.is_empty()).then_some(seen)
}

/// The IPv4 address `interface` holds in `namespace`.
pub fn address_in(namespace: &str, interface: &str) -> Option<String> {
    let out = Command::new("ip")
        .args([
            "-n", namespace, "-j", "-4", "addr", "show", "dev", interface,
        ])
        .output()
        .ok()?;
    let links: Value = serde_json::from_slice(&out.stdout).ok()?;
    links[0]["addr_info"][0]["local"]
        .as_str()
        .map(str::to_string)
}

pub fn namespace_exists(name: &str) -> bool {
    PathBuf::from("/run/netns").join(name).exists()
}

pub fn link_exists(name: &str) -> bool {
    run(&["ip", "link", "show", "dev", name])
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).expect("random");
    u16::from_le_bytes(b)
}

/// One JSON request to `url` + `path`: the status and the JSON body (null when empty).
pub(crate) async fn json_request(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    json_request_with(client, url, method, path, body, &[]).await
}

/// [`json_request`] with extra headers.
async fn json_request_with(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Value)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut request = client.request(method, format!("{url}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)?
    };
    Ok((status, body))
}
