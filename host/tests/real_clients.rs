//! The real OpenStack clients against the real `neutrino serve` binary: the `openstack` CLI
//! (python-openstackclient) and openstacksdk, from the venv that `scripts/clients-venv.sh`
//! makes at `<repo>/.venv` (or `NEUTRINO_CLIENTS_VENV`).
//!
//! Each test starts its own server on a free port with a temporary data directory and talks to
//! it exactly as a user would: `OS_AUTH_TYPE=none OS_ENDPOINT=http://127.0.0.1:<port>`, the
//! clients' own endpoint discovery, `-f json` output parsed and asserted on.
//!
//! Skips are loud: a test that cannot run — no venv, or a server that does not serve the
//! resource yet (404 `HTTPNotFound` on its collection) — writes a `SKIP ...` line straight to
//! the process's stderr, past the harness's capture, and scripts/test.sh counts those lines.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use neutrino::bench::client::{Connection, Endpoint, ovs_agent, report_agent, serves};
use serde_json::Value;

const PROJECT: &str = "clients-project";

fn venv() -> PathBuf {
    match std::env::var_os("NEUTRINO_CLIENTS_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"),
    }
}

fn skip(test: &str, why: &str) {
    // Straight to fd 2 in one write: the harness captures `eprintln!` of passing tests, and a
    // skip must show, on a line of its own that scripts/test.sh can count.
    let line = format!("SKIP real_clients::{test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A `neutrino serve` process on 127.0.0.1:<free port>; killed on drop.
struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts a server, or returns None (after a loud SKIP) when the clients are not installed.
    fn start(test: &str) -> Option<Server> {
        if let Ok(why) = std::env::var("NEUTRINO_CLIENTS_UNAVAILABLE") {
            skip(test, &why);
            return None;
        }
        if !venv().join("bin/openstack").is_file() {
            skip(
                test,
                &format!(
                    "no OpenStack clients at {} (run scripts/clients-venv.sh)",
                    venv().display()
                ),
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_neutrino"))
            .args([
                "serve",
                "--no-agent",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .args(["--default-project", PROJECT])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start neutrino serve");
        // The server prints `neutrino: listening on http://127.0.0.1:<port> (...)` once bound.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| {
                panic!(
                    "neutrino serve did not start: {line:?}\n{}",
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
                )
            })
            .to_string();
        Some(Server {
            child,
            url,
            dir,
            _stdout: stdout,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A client process with the environment a user of `OS_AUTH_TYPE=none` would have, and
    /// nothing of ours: no other `OS_*` variable, and a home and working directory without a
    /// `clouds.yaml`.
    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("OS_AUTH_TYPE", "none")
            .env("OS_ENDPOINT", &self.url)
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    fn openstack(&self, args: &[&str]) -> Output {
        self.client(venv().join("bin/openstack").to_str().unwrap())
            .args(args)
            .output()
            .expect("run openstack")
    }

    /// `openstack <args> -f json`, which must succeed; its parsed output.
    fn os_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        let out = self.openstack(&all);
        self.check(&format!("openstack {}", all.join(" ")), &out);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "openstack {}: output is not JSON ({e}): {}",
                all.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `openstack <args>` (no output expected), which must succeed.
    fn os(&self, args: &[&str]) {
        let out = self.openstack(args);
        self.check(&format!("openstack {}", args.join(" ")), &out);
    }

    /// `openstack <args>`, which must fail; its stderr.
    fn os_fails(&self, args: &[&str]) -> String {
        let out = self.openstack(args);
        assert!(
            !out.status.success(),
            "openstack {} succeeded: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs one section of host/tests/clients/sdk_check.py; its JSON summary.
    fn sdk(&self, section: &str) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/sdk_check.py");
        let out = self
            .client(venv().join("bin/python").to_str().unwrap())
            .arg(script)
            .arg(section)
            .output()
            .expect("run python");
        self.check(&format!("sdk_check.py {section}"), &out);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "sdk_check.py {section}: output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn check(&self, what: &str, out: &Output) {
        assert!(
            out.status.success(),
            "{what} failed ({}):\nstdout: {}\nstderr: {}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Sends one request with the project's own HTTP client (for what the clients do not show).
    fn http(&self, path: &str) -> Value {
        let url = self.url.clone();
        let path = path.to_string();
        runtime().block_on(async move {
            let endpoint = Endpoint::parse(&url).await.unwrap();
            let mut conn = Connection::open(&endpoint).await.unwrap();
            conn.get(&path)
                .await
                .unwrap()
                .expect(axum::http::StatusCode::OK, &path)
                .unwrap()
        })
    }

    /// Registers an Open vSwitch agent on `host` the way a node agent does (a heartbeat to the
    /// internal API with the host's own token, from `neutrino agent enroll`).
    fn register_agent(&self, host: &str) -> String {
        let url = self.url.clone();
        let enrolled = Command::new(env!("CARGO_BIN_EXE_neutrino"))
            .args(["agent", "enroll", host, "--data-dir"])
            .arg(self.dir.path().join("data"))
            .output()
            .expect("run neutrino agent enroll");
        assert!(
            enrolled.status.success(),
            "{}",
            String::from_utf8_lossy(&enrolled.stderr)
        );
        let token = String::from_utf8(enrolled.stdout).unwrap();
        let agent = ovs_agent(host);
        runtime().block_on(async move {
            let endpoint = Endpoint::parse(&url).await.unwrap();
            let mut conn = Connection::open(&endpoint).await.unwrap();
            report_agent(&mut conn, token.trim(), &agent).await.unwrap()
        })
    }

    /// True if the server serves every collection; else a loud SKIP naming the missing one.
    fn serves_all(&self, test: &str, collections: &[&str]) -> bool {
        let url = self.url.clone();
        let collections: Vec<String> = collections.iter().map(|c| c.to_string()).collect();
        let missing = runtime().block_on(async move {
            let endpoint = Endpoint::parse(&url).await.unwrap();
            let mut conn = Connection::open(&endpoint).await.unwrap();
            for c in collections {
                if !serves(&mut conn, &c).await.unwrap() {
                    return Some(c);
                }
            }
            None
        });
        match missing {
            None => true,
            Some(c) => {
                skip(
                    test,
                    &format!("the server does not serve /v2.0/{c} yet (404 HTTPNotFound)"),
                );
                false
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[test]
fn cli_networks() {
    let Some(server) = Server::start("cli_networks") else {
        return;
    };
    let net = server.os_json(&["network", "create", "--description", "first", "cli-net"]);
    assert_eq!(net["name"], "cli-net");
    assert_eq!(net["description"], "first");
    assert_eq!(net["status"], "ACTIVE");
    assert_eq!(net["admin_state_up"], true);
    assert_eq!(net["project_id"], PROJECT);
    assert_eq!(net["mtu"], 1450);
    assert_eq!(net["provider:network_type"], "vxlan");
    assert_eq!(net["router:external"], false);
    assert_eq!(net["shared"], false);
    assert_eq!(net["subnets"], serde_json::json!([]));
    let id = s(&net["id"]).to_string();

    let vlan = server.os_json(&[
        "network",
        "create",
        "--provider-network-type",
        "vlan",
        "--provider-physical-network",
        "physnet1",
        "--provider-segment",
        "100",
        "cli-vlan",
    ]);
    assert_eq!(vlan["provider:network_type"], "vlan");
    assert_eq!(vlan["provider:physical_network"], "physnet1");
    assert_eq!(vlan["provider:segmentation_id"], 100);
    let err = server.os_fails(&[
        "network",
        "create",
        "--provider-network-type",
        "vlan",
        "--provider-physical-network",
        "physnet1",
        "--provider-segment",
        "100",
        "cli-vlan-again",
    ]);
    assert!(
        err.contains("409") && err.contains("VLAN 100"),
        "second network on VLAN 100: {err}"
    );

    let list = server.os_json(&["network", "list"]);
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| s(&n["Name"]))
        .collect();
    names.sort();
    assert_eq!(names, ["cli-net", "cli-vlan"]);
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["ID"] == id.as_str())
        .expect("cli-net listed with its id");
    assert_eq!(row["Subnets"], serde_json::json!([]));
    let filtered = server.os_json(&["network", "list", "--name", "cli-vlan"]);
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(filtered[0]["Name"], "cli-vlan");

    // Show by name and by id (the client finds by id first, then lists with ?name=).
    assert_eq!(
        server.os_json(&["network", "show", "cli-net"])["id"],
        id.as_str()
    );
    assert_eq!(server.os_json(&["network", "show", &id])["name"], "cli-net");

    server.os(&[
        "network",
        "set",
        "--name",
        "cli-net-2",
        "--description",
        "second",
        "--disable",
        "--mtu",
        "1400",
        "cli-net",
    ]);
    let shown = server.os_json(&["network", "show", &id]);
    assert_eq!(shown["name"], "cli-net-2");
    assert_eq!(shown["description"], "second");
    assert_eq!(shown["admin_state_up"], false);
    assert_eq!(shown["mtu"], 1400);
    assert_eq!(shown["revision_number"], 2);

    server.os(&["network", "delete", "cli-net-2", "cli-vlan"]);
    let err = server.os_fails(&["network", "show", &id]);
    assert!(err.contains("No Network found"), "{err}");
    assert_eq!(server.os_json(&["network", "list"]), serde_json::json!([]));
}

#[test]
fn cli_extensions() {
    let Some(server) = Server::start("cli_extensions") else {
        return;
    };
    let listed = server.os_json(&["extension", "list", "--network"]);
    let mut cli: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["Alias"]))
        .collect();
    cli.sort();
    let raw = server.http("/v2.0/extensions");
    let mut served: Vec<&str> = raw["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["alias"]))
        .collect();
    served.sort();
    assert_eq!(cli, served, "the CLI lists exactly what the server serves");
    assert!(cli.contains(&"pagination") && cli.contains(&"project-id"));
    for e in listed.as_array().unwrap() {
        assert!(!s(&e["Name"]).is_empty() && !s(&e["Description"]).is_empty());
    }
    let one = server.os_json(&["extension", "show", "pagination"]);
    assert_eq!(one["alias"], "pagination");
    assert_eq!(one["name"], "Pagination support");
}

#[test]
fn cli_subnets() {
    let Some(server) = Server::start("cli_subnets") else {
        return;
    };
    if !server.serves_all("cli_subnets", &["subnets"]) {
        return;
    }
    let net = server.os_json(&["network", "create", "cli-subnet-net"]);
    let sub = server.os_json(&[
        "subnet",
        "create",
        "--network",
        "cli-subnet-net",
        "--subnet-range",
        "10.20.0.0/24",
        "--dns-nameserver",
        "10.20.0.53",
        "cli-sub",
    ]);
    assert_eq!(sub["name"], "cli-sub");
    assert_eq!(sub["network_id"], net["id"]);
    assert_eq!(sub["cidr"], "10.20.0.0/24");
    assert_eq!(sub["ip_version"], 4);
    assert_eq!(sub["gateway_ip"], "10.20.0.1");
    assert_eq!(sub["enable_dhcp"], true);
    assert_eq!(
        sub["allocation_pools"],
        serde_json::json!([{"start": "10.20.0.2", "end": "10.20.0.254"}])
    );
    assert_eq!(sub["dns_nameservers"], serde_json::json!(["10.20.0.53"]));
    assert_eq!(sub["project_id"], PROJECT);
    let id = s(&sub["id"]).to_string();

    assert_eq!(
        server.os_json(&["subnet", "show", "cli-sub"])["id"],
        id.as_str()
    );
    let shown = server.os_json(&["subnet", "show", &id]);
    assert_eq!(shown["cidr"], "10.20.0.0/24");
    let listed = server.os_json(&["subnet", "list", "--network", "cli-subnet-net"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["ID"], id.as_str());
    assert_eq!(listed[0]["Subnet"], "10.20.0.0/24");
    let net = server.os_json(&["network", "show", "cli-subnet-net"]);
    assert_eq!(net["subnets"], serde_json::json!([id]));

    // Overlapping CIDR on the same network: 400 with the phrase tempest looks for.
    let err = server.os_fails(&[
        "subnet",
        "create",
        "--network",
        "cli-subnet-net",
        "--subnet-range",
        "10.20.0.128/25",
        "cli-sub-overlap",
    ]);
    assert!(err.contains("overlaps with another subnet"), "{err}");

    server.os(&["subnet", "delete", "cli-sub"]);
    let err = server.os_fails(&["subnet", "show", &id]);
    assert!(err.contains("No Subnet found"), "{err}");
    assert_eq!(
        server.os_json(&["network", "show", "cli-subnet-net"])["subnets"],
        serde_json::json!([])
    );
    server.os(&["network", "delete", "cli-subnet-net"]);
}

#[test]
fn cli_subnet_pools() {
    let Some(server) = Server::start("cli_subnet_pools") else {
        return;
    };
    if !server.serves_all("cli_subnet_pools", &["subnets", "subnetpools"]) {
        return;
    }
    let pool = server.os_json(&[
        "subnet",
        "pool",
        "create",
        "--pool-prefix",
        "10.30.0.0/16",
        "--default-prefix-length",
        "24",
        "cli-pool",
    ]);
    assert_eq!(pool["name"], "cli-pool");
    assert_eq!(pool["project_id"], PROJECT);
    let shown = server.os_json(&["subnet", "pool", "show", "cli-pool"]);
    assert_eq!(shown["id"], pool["id"]);
    server.os_json(&["network", "create", "cli-pool-net"]);
    let first = server.os_json(&[
        "subnet",
        "create",
        "--network",
        "cli-pool-net",
        "--subnet-pool",
        "cli-pool",
        "cli-pool-sub",
    ]);
    assert_eq!(first["cidr"], "10.30.0.0/24");
    assert_eq!(first["subnetpool_id"], pool["id"]);
    let second = server.os_json(&[
        "subnet",
        "create",
        "--network",
        "cli-pool-net",
        "--subnet-pool",
        "cli-pool",
        "--prefix-length",
        "26",
        "cli-pool-sub2",
    ]);
    assert_eq!(second["cidr"], "10.30.1.0/26");
    // In use: the pool stays.
    let err = server.os_fails(&["subnet", "pool", "delete", "cli-pool"]);
    assert!(err.contains("existing allocations"), "{err}");
    server.os(&["subnet", "delete", "cli-pool-sub", "cli-pool-sub2"]);
    server.os(&["subnet", "pool", "delete", "cli-pool"]);
    server.os(&["network", "delete", "cli-pool-net"]);
}

#[test]
fn cli_ports() {
    let Some(server) = Server::start("cli_ports") else {
        return;
    };
    if !server.serves_all("cli_ports", &["subnets", "ports"]) {
        return;
    }
    let net = server.os_json(&["network", "create", "cli-port-net"]);
    let sub = server.os_json(&[
        "subnet",
        "create",
        "--network",
        "cli-port-net",
        "--subnet-range",
        "10.30.0.0/24",
        "cli-port-sub",
    ]);
    let port = server.os_json(&["port", "create", "--network", "cli-port-net", "cli-port"]);
    assert_eq!(port["name"], "cli-port");
    assert_eq!(port["network_id"], net["id"]);
    assert_eq!(port["project_id"], PROJECT);
    assert_eq!(port["status"], "DOWN");
    assert_eq!(port["admin_state_up"], true);
    assert!(
        s(&port["mac_address"]).starts_with("fa:16:3e:"),
        "{}",
        port["mac_address"]
    );
    let fixed = port["fixed_ips"].as_array().expect("fixed_ips list");
    assert_eq!(fixed.len(), 1, "{}", port["fixed_ips"]);
    assert_eq!(fixed[0]["subnet_id"], sub["id"]);
    let ip: std::net::Ipv4Addr = s(&fixed[0]["ip_address"]).parse().unwrap();
    assert_eq!(&ip.octets()[..3], &[10, 30, 0]);
    assert!(
        (2..=254).contains(&ip.octets()[3]),
        "{ip} is in the allocation pool"
    );
    assert_eq!(port["binding_vif_type"], "unbound");
    assert_eq!(port["binding_vnic_type"], "normal");
    assert!(
        port["binding_host_id"].is_null() || port["binding_host_id"] == "",
        "{}",
        port["binding_host_id"]
    );
    let id = s(&port["id"]).to_string();

    // A host with a live Open vSwitch agent: the bundled ovs-hybrid driver binds the port.
    assert_eq!(server.register_agent("cli-compute-1"), "new");
    server.os(&["port", "set", "--host", "cli-compute-1", "cli-port"]);
    let bound = server.os_json(&["port", "show", "cli-port"]);
    assert_eq!(bound["id"], id.as_str());
    assert_eq!(bound["binding_host_id"], "cli-compute-1");
    assert_eq!(bound["binding_vif_type"], "ovs");
    assert_eq!(bound["binding_vif_details"]["ovs_hybrid_plug"], true);
    assert_eq!(bound["binding_vif_details"]["port_filter"], true);
    assert_eq!(bound["binding_vif_details"]["bridge_name"], "br-int");

    // A host with no agent on it: the port moves there and binding fails, visibly.
    server.os(&[
        "port",
        "set",
        "--host",
        "cli-host-without-agent",
        "cli-port",
    ]);
    let failed = server.os_json(&["port", "show", "cli-port"]);
    assert_eq!(failed["binding_host_id"], "cli-host-without-agent");
    assert_eq!(failed["binding_vif_type"], "binding_failed");

    // `unset --host` sends `binding:host_id: null`, which Neutron takes as "" (unbind).
    server.os(&["port", "unset", "--host", "cli-port"]);
    let unbound = server.os_json(&["port", "show", &id]);
    assert!(
        unbound["binding_host_id"].is_null() || unbound["binding_host_id"] == "",
        "{}",
        unbound["binding_host_id"]
    );
    assert_eq!(unbound["binding_vif_type"], "unbound");

    // Created bound: `port create --host`.
    let created_bound = server.os_json(&[
        "port",
        "create",
        "--network",
        "cli-port-net",
        "--host",
        "cli-compute-1",
        "cli-port-bound",
    ]);
    assert_eq!(created_bound["binding_vif_type"], "ovs");
    server.os(&["port", "delete", "cli-port-bound"]);

    let listed = server.os_json(&["port", "list", "--network", "cli-port-net"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["ID"], id.as_str());
    assert_eq!(listed[0]["MAC Address"], port["mac_address"]);

    // A port holds the network: deleting it first is a 409.
    let err = server.os_fails(&["network", "delete", "cli-port-net"]);
    assert!(err.contains("409") || err.contains("in use"), "{err}");

    server.os(&["port", "delete", "cli-port"]);
    let err = server.os_fails(&["port", "show", &id]);
    assert!(err.contains("No Port found"), "{err}");
    server.os(&["subnet", "delete", "cli-port-sub"]);
    server.os(&["network", "delete", "cli-port-net"]);
}

#[test]
fn cli_agents() {
    let Some(server) = Server::start("cli_agents") else {
        return;
    };
    if !server.serves_all("cli_agents", &["agents"]) {
        return;
    }
    assert_eq!(
        server.os_json(&["network", "agent", "list"]),
        serde_json::json!([])
    );
    assert_eq!(server.register_agent("cli-agent-host"), "new");
    let listed = server.os_json(&["network", "agent", "list"]);
    let raw = server.http("/v2.0/agents");
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let row = &listed[0];
    assert_eq!(row["ID"], raw["agents"][0]["id"]);
    assert_eq!(row["Agent Type"], "Open vSwitch agent");
    assert_eq!(row["Host"], "cli-agent-host");
    assert_eq!(row["Alive"], true);
    assert_eq!(row["State"], true);
    assert_eq!(row["Binary"], "neutron-openvswitch-agent");
    let id = s(&row["ID"]).to_string();

    let shown = server.os_json(&["network", "agent", "show", &id]);
    assert_eq!(shown["host"], "cli-agent-host");
    assert_eq!(shown["alive"], true);
    assert_eq!(
        shown["configuration"]["tunnel_types"],
        serde_json::json!(["vxlan"])
    );
    assert_eq!(
        shown["configuration"]["bridge_mappings"]["physnet1"],
        "br-phys1"
    );

    server.os(&[
        "network",
        "agent",
        "set",
        "--disable",
        "--description",
        "rack 7",
        &id,
    ]);
    let shown = server.os_json(&["network", "agent", "show", &id]);
    assert_eq!(shown["admin_state_up"], false);
    assert_eq!(shown["description"], "rack 7");
    assert_eq!(
        server.os_json(&["network", "agent", "list"])[0]["State"],
        false
    );

    // The CLI's filters: by host, and by its own names for agent types.
    let by_host = server.os_json(&["network", "agent", "list", "--host", "cli-agent-host"]);
    assert_eq!(by_host.as_array().unwrap().len(), 1);
    let none = server.os_json(&["network", "agent", "list", "--host", "no-such-host"]);
    assert_eq!(none, serde_json::json!([]));
    let ovs = server.os_json(&["network", "agent", "list", "--agent-type", "open-vswitch"]);
    assert_eq!(ovs.as_array().unwrap().len(), 1);
    let dhcp = server.os_json(&["network", "agent", "list", "--agent-type", "dhcp"]);
    assert_eq!(dhcp, serde_json::json!([]));

    server.os(&["network", "agent", "delete", &id]);
    assert_eq!(
        server.os_json(&["network", "agent", "list"]),
        serde_json::json!([])
    );
}

#[test]
fn sdk_networks() {
    let Some(server) = Server::start("sdk_networks") else {
        return;
    };
    let r = server.sdk("networks");
    assert_eq!(r["networks_left"], 0);
}

#[test]
fn sdk_pagination_networks() {
    let Some(server) = Server::start("sdk_pagination_networks") else {
        return;
    };
    let r = server.sdk("pagination");
    // 7 networks, 3 a page: pages of 3, 3 and 1, each asked for with the limit, each after the
    // first with the marker the server's `next` link carries.
    assert_eq!(r["networks"]["items"], 7);
    assert!(r["networks"]["requests"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(
        r["networks"]["markers"].as_u64().unwrap() + 1,
        r["networks"]["requests"].as_u64().unwrap(),
        "{r}"
    );
}

#[test]
fn sdk_pagination_ports() {
    let Some(server) = Server::start("sdk_pagination_ports") else {
        return;
    };
    if server.serves_all("sdk_pagination_ports", &["subnets", "ports"]) {
        let r = server.sdk("pagination_ports");
        assert_eq!(r["ports"]["items"], 5);
    }
}

#[test]
fn sdk_extensions() {
    let Some(server) = Server::start("sdk_extensions") else {
        return;
    };
    let r = server.sdk("extensions");
    let raw = server.http("/v2.0/extensions");
    let mut served: Vec<&str> = raw["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["alias"]))
        .collect();
    served.sort();
    let sdk: Vec<&str> = r["aliases"].as_array().unwrap().iter().map(s).collect();
    assert_eq!(sdk, served);
}

#[test]
fn sdk_subnets() {
    let Some(server) = Server::start("sdk_subnets") else {
        return;
    };
    if server.serves_all("sdk_subnets", &["subnets"]) {
        server.sdk("subnets");
    }
}

#[test]
fn sdk_ports() {
    let Some(server) = Server::start("sdk_ports") else {
        return;
    };
    if server.serves_all("sdk_ports", &["subnets", "ports", "agents"]) {
        assert_eq!(server.register_agent("sdk-compute-1"), "new");
        let r = server.sdk("ports");
        assert!(s(&r["mac"]).starts_with("fa:16:3e:"), "{r}");
    }
}

#[test]
fn sdk_agents() {
    let Some(server) = Server::start("sdk_agents") else {
        return;
    };
    if server.serves_all("sdk_agents", &["agents"]) {
        assert_eq!(server.register_agent("sdk-agent-host"), "new");
        let r = server.sdk("agents");
        assert_eq!(
            r["agents"],
            serde_json::json!([{"type": "Open vSwitch agent", "host": "sdk-agent-host", "alive": true}])
        );
    }
}

#[test]
fn cli_routers_floating_ips_and_auto_allocation() {
    let test = "cli_routers_floating_ips_and_auto_allocation";
    let Some(server) = Server::start(test) else {
        return;
    };
    if !server.serves_all(test, &["routers", "floatingips", "subnetpools"]) {
        return;
    }
    server.os_json(&[
        "network",
        "create",
        "--external",
        "--default",
        "--provider-network-type",
        "flat",
        "--provider-physical-network",
        "physnet1",
        "cli-public",
    ]);
    server.os_json(&[
        "subnet",
        "create",
        "--network",
        "cli-public",
        "--subnet-range",
        "172.24.4.0/24",
        "--no-dhcp",
        "cli-public-sub",
    ]);
    server.os_json(&["network", "create", "cli-private"]);
    let private = server.os_json(&[
        "subnet",
        "create",
        "--network",
        "cli-private",
        "--subnet-range",
        "10.40.0.0/24",
        "cli-private-sub",
    ]);
    let router = server.os_json(&["router", "create", "cli-router"]);
    assert_eq!(router["status"], "ACTIVE");
    server.os(&[
        "router",
        "set",
        "--external-gateway",
        "cli-public",
        "cli-router",
    ]);
    server.os(&["router", "add", "subnet", "cli-router", "cli-private-sub"]);
    let shown = server.os_json(&["router", "show", "cli-router"]);
    let gateway = &shown["external_gateway_info"];
    assert_eq!(gateway["enable_snat"], true, "{shown}");
    assert!(
        gateway["external_fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .starts_with("172.24.4."),
        "{shown}"
    );
    let port = server.os_json(&["port", "create", "--network", "cli-private", "cli-vm"]);
    let fip = server.os_json(&[
        "floating",
        "ip",
        "create",
        "--port",
        port["id"].as_str().unwrap(),
        "cli-public",
    ]);
    assert_eq!(fip["port_id"], port["id"]);
    assert_eq!(fip["router_id"], router["id"]);
    assert_eq!(fip["fixed_ip_address"], port["fixed_ips"][0]["ip_address"]);
    let fip_id = fip["id"].as_str().unwrap();
    // The router's interface is not the port API's to delete.
    let listed = server.os_json(&["port", "list", "--router", "cli-router"]);
    let interface = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["Fixed IP Addresses"]
                .to_string()
                .contains(private["id"].as_str().unwrap())
        })
        .cloned()
        .unwrap_or_else(|| panic!("no interface in {listed}"));
    let err = server.os_fails(&["port", "delete", interface["ID"].as_str().unwrap()]);
    assert!(err.contains("cannot be deleted directly"), "{err}");
    server.os(&["floating", "ip", "unset", "--port", fip_id]);
    let unset = server.os_json(&["floating", "ip", "show", fip_id]);
    assert_eq!(unset["port_id"], Value::Null, "{unset}");
    let err = server.os_fails(&["router", "delete", "cli-router"]);
    assert!(err.contains("still attached"), "{err}");
    server.os(&["floating", "ip", "delete", fip_id]);
    server.os(&["port", "delete", "cli-vm"]);
    server.os(&[
        "router",
        "remove",
        "subnet",
        "cli-router",
        "cli-private-sub",
    ]);
    server.os(&["router", "delete", "cli-router"]);

    // "Get me a network": the checks, then the topology, then its removal.
    let err = server.os_fails(&[
        "network",
        "auto",
        "allocated",
        "topology",
        "create",
        "--check-resources",
    ]);
    assert!(err.contains("No default subnetpools defined"), "{err}");
    server.os_json(&[
        "subnet",
        "pool",
        "create",
        "--share",
        "--default",
        "--pool-prefix",
        "10.50.0.0/16",
        "--default-prefix-length",
        "24",
        "cli-default-pool",
    ]);
    server.os(&[
        "network",
        "auto",
        "allocated",
        "topology",
        "create",
        "--check-resources",
    ]);
    // Without --project the client has no id to ask for (its check passes the literal None,
    // which Neutron, and this server, take as the caller's project).
    let topology = server.os_json(&[
        "network",
        "auto",
        "allocated",
        "topology",
        "create",
        "--project",
        PROJECT,
    ]);
    let network = topology["id"].as_str().unwrap().to_string();
    let shown = server.os_json(&["network", "show", &network]);
    assert_eq!(shown["name"], "auto_allocated_network");
    let again = server.os_json(&[
        "network",
        "auto",
        "allocated",
        "topology",
        "create",
        "--project",
        PROJECT,
    ]);
    assert_eq!(again["id"], network.as_str());
    server.os(&[
        "network",
        "auto",
        "allocated",
        "topology",
        "delete",
        "--project",
        PROJECT,
    ]);
    server.os_fails(&["network", "show", &network]);
}
