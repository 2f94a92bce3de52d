//! `neutrino serve` out of the box (issue 10, findings 7 and 8), as root: the embedded agent in
//! a data directory of mode 0700 serves DHCP; an agent whose Open vSwitch does not answer
//! leaves the OVS agent type out, so boots bind with the Linux bridge; the embedded agent that
//! cannot start is started again and `/healthz` shows it; and the README's "Try it", line by
//! line, from a fresh copy of the clone's scripts.
//!
//! Each test runs a real embedded agent, which sweeps devices of our naming rules: they run one
//! at a time, and skip loudly when not root.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn skip(test: &str, why: &str) {
    let line = format!("SKIP boot::{test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

fn needs(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    if !is_root() {
        skip(test, "needs root (the embedded agent changes the kernel)");
        return None;
    }
    for tool in ["dnsmasq", "udhcpc", "ip"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            skip(test, &format!("{tool} is not installed (scripts/setup.sh)"));
            return None;
        }
    }
    Some(ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One HTTP/1.1 request: (status, body as JSON, or Null).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    (status, body)
}

/// `neutrino serve` with its embedded agent, on a free port; killed (SIGTERM) on drop.
struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(dir: &Path, host: &str, config: &Path) -> Serve {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_neutrino"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--host",
                host,
                "--config",
            ])
            .arg(config)
            .arg("--data-dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run neutrino serve");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Serve { child, addr }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        http(&self.addr, "GET", path, "")
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = http(&self.addr, "POST", path, &body.to_string());
        assert!(status < 300, "POST {path}: {status} {answer}");
        answer
    }

    /// Polls `/healthz` until `done` holds for its body, for up to `within`.
    fn health_until(&self, within: Duration, done: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
        let started = Instant::now();
        loop {
            let (status, body) = self.get("/healthz");
            if done(status, &body) || started.elapsed() > within {
                return (status, body);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn network(&self, cidr: &str) -> String {
        let net = self.post(
            "/v2.0/networks",
            serde_json::json!({"network": {"name": "boot"}}),
        );
        let id = net["network"]["id"].as_str().unwrap().to_string();
        self.post(
            "/v2.0/subnets",
            serde_json::json!({"subnet": {"network_id": id, "cidr": cidr, "ip_version": 4}}),
        );
        id
    }

    /// Boots a server on `network` and waits until it leaves BUILD: the server's JSON.
    fn boot(&self, network: &str) -> Value {
        let body = serde_json::json!({"server": {"name": "vm", "networks": [{"uuid": network}]}});
        let id = self.post("/v2.1/servers", body)["server"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let started = Instant::now();
        loop {
            let (_, server) = self.get(&format!("/v2.1/servers/{id}"));
            if server["server"]["status"] != "BUILD" || started.elapsed() > Duration::from_secs(30)
            {
                return server["server"].clone();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Deletes every server and network, and waits until the instances' namespaces are gone.
    fn clean(&self) {
        let (_, servers) = self.get("/v2.1/servers");
        for server in servers["servers"].as_array().into_iter().flatten() {
            let id = server["id"].as_str().unwrap();
            http(&self.addr, "DELETE", &format!("/v2.1/servers/{id}"), "");
            let namespace = format!("inst-{}", &id[..11]);
            wait_for(Duration::from_secs(10), || !namespace_exists(&namespace));
        }
        let (_, networks) = self.get("/v2.0/networks");
        for network in networks["networks"].as_array().into_iter().flatten() {
            let id = network["id"].as_str().unwrap();
            http(&self.addr, "DELETE", &format!("/v2.0/networks/{id}"), "");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        // Its agent ran in this machine's network namespace: its firewall's chains and sets
        // go too (an agent leaves them on stop, so that its ports stay filtered).
        if is_root()
            && let Err(e) = neutrino::agent::firewall::remove_all()
        {
            eprintln!("removing the agent's firewall: {e:#}");
        }
    }
}

fn wait_for(within: Duration, done: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// The IPv4 address of `eth0` in the instance's namespace.
fn address_in_instance(server_id: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("inst-{}", &server_id[..11])])
        .args(["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let cidr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    Some(cidr.split('/').next()?.to_string())
}

fn server_ip(server: &Value) -> String {
    server["addresses"]
        .as_object()
        .and_then(|a| a.values().next())
        .and_then(|a| a[0]["addr"].as_str())
        .unwrap_or_else(|| panic!("no address in {server}"))
        .to_string()
}

fn host(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// Finding 7: a data directory of mode 0700 (tempfile's, as `mktemp -d`'s), which dnsmasq
/// cannot enter once unprivileged: the instance gets its address from DHCP all the same.
#[test]
fn a_0700_data_directory_serves_dhcp() {
    let test = "a_0700_data_directory_serves_dhcp";
    let Some(_one) = needs(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let serve = Serve::start(
        dir.path(),
        &host("mode700"),
        &repo().join("examples/all-in-one.toml"),
    );
    let (status, health) = serve.health_until(Duration::from_secs(30), |s, _| s == 200);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["embedded_agent"]["state"], "up", "{health}");
    let network = serve.network("10.93.0.0/24");
    let server = serve.boot(&network);
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let id = server["id"].as_str().unwrap();
    assert_eq!(
        address_in_instance(id),
        Some(server_ip(&server)),
        "{server}"
    );
    serve.clean();
}

/// Finding 8: an agent whose `ovs-vsctl` cannot reach its database reports no `Open vSwitch
/// agent` (and says why in its configurations), so with ovs-hybrid first a boot binds with the
/// Linux bridge and goes ACTIVE.
#[test]
fn without_open_vswitch_boots_bind_with_the_linux_bridge() {
    let test = "without_open_vswitch_boots_bind_with_the_linux_bridge";
    let Some(_one) = needs(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ovs-first.toml");
    std::fs::write(
        &config,
        format!(
            "[drivers]\nmechanism_drivers = [\"ovs-hybrid\", \"linuxbridge\"]\n\
             [drivers.drivers.linuxbridge.config]\nvxlan_group = \"\"\n\
             [agent]\ntunneling_ip = \"127.0.0.1\"\novs_db = \"{}\"\n",
            dir.path().join("no-ovsdb.sock").display()
        ),
    )
    .unwrap();
    let host = host("no-ovs");
    let serve = Serve::start(&dir.path().join("data"), &host, &config);
    let (status, health) = serve.health_until(Duration::from_secs(30), |s, _| s == 200);
    assert_eq!(status, 200, "{health}");
    let (_, agents) = serve.get(&format!("/v2.0/agents?host={host}"));
    let agents = agents["agents"].as_array().unwrap().clone();
    let types: Vec<&str> = agents
        .iter()
        .map(|a| a["agent_type"].as_str().unwrap())
        .collect();
    assert!(!types.contains(&"Open vSwitch agent"), "{types:?}");
    assert!(types.contains(&"Linux bridge agent"), "{types:?}");
    let bridge = agents
        .iter()
        .find(|a| a["agent_type"] == "Linux bridge agent")
        .unwrap();
    let why = bridge["configurations"]["unavailable_agent_types"]["Open vSwitch agent"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in {bridge}"));
    assert!(why.contains("no-ovsdb.sock"), "{why}");

    let network = serve.network("10.94.0.0/24");
    let server = serve.boot(&network);
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let id = server["id"].as_str().unwrap();
    let (_, ports) = serve.get(&format!("/v2.0/ports?device_id={id}"));
    assert_eq!(ports["ports"][0]["binding:vif_type"], "bridge", "{ports}");
    assert_eq!(
        address_in_instance(id),
        Some(server_ip(&server)),
        "{server}"
    );
    serve.clean();
}

/// Finding 7: an embedded agent that cannot start (here its state directory is a file) is
/// started again with backoff; `/healthz` answers 503 with the agent retrying and the reason,
/// then 200 with the agent up once the cause is gone, without a restart of `serve`.
#[test]
fn healthz_shows_the_embedded_agent_retrying_then_up() {
    let test = "healthz_shows_the_embedded_agent_retrying_then_up";
    let Some(_one) = needs(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("agent"), "in the way").unwrap();
    let serve = Serve::start(
        &data,
        &host("retry"),
        &repo().join("examples/all-in-one.toml"),
    );
    let (status, health) = serve.health_until(Duration::from_secs(20), |_, b| {
        b["embedded_agent"]["state"] == "retrying"
    });
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unavailable", "{health}");
    assert_eq!(health["database"]["state"], "up", "{health}");
    let error = health["embedded_agent"]["error"].as_str().unwrap();
    assert!(error.contains("agent state directory"), "{error}");
    std::fs::remove_file(data.join("agent")).unwrap();
    // Waits of 1, 2, 4 s at most before the attempt that finds the way clear.
    let (status, health) = serve.health_until(Duration::from_secs(20), |s, _| s == 200);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["embedded_agent"]["state"], "up", "{health}");
    assert!(
        health["embedded_agent"]["attempt"].as_u64().unwrap() >= 2,
        "{health}"
    );
    let (_, agents) = serve.get(&format!("/v2.0/agents?host={}", host("retry")));
    assert!(
        agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["alive"] == true),
        "{agents}"
    );
}

/// Finding 8: the README's "Try it" block, run by bash line by line (`set -e`) from a fresh
/// copy of the clone's scripts and examples, with the test's binary for `scripts/run.sh`'s
/// build (`NEUTRINO_BIN`) and a free port for 9696; then its drivers example.
#[test]
fn the_readme_try_it_runs_as_written() {
    let test = "the_readme_try_it_runs_as_written";
    let Some(_one) = needs(test) else { return };
    let venv = match std::env::var_os("NEUTRINO_CLIENTS_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => repo().join(".venv"),
    };
    if !venv.join("bin/openstack").is_file() {
        skip(
            test,
            &format!(
                "no OpenStack clients at {} (scripts/clients-venv.sh)",
                venv.display()
            ),
        );
        return;
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = |heading: &str| -> String {
        let section = &readme[readme.find(heading).unwrap()..];
        let start = section.find("```sh\n").unwrap() + 6;
        section[start..start + section[start..].find("```").unwrap()].to_string()
    };
    let clone = tempfile::tempdir().unwrap();
    for dir in ["scripts", "examples"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(repo().join(dir))
            .arg(clone.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::os::unix::fs::symlink(&venv, clone.path().join(".venv")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let try_it = block("## Try it").replace("9696", &port.to_string());
    assert!(try_it.contains("bash scripts/run.sh &"), "{try_it}");
    // The README's lines, then what a user would do after: delete what was made.
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{try_it}\n\
         curl -sf -X DELETE http://127.0.0.1:{port}/v2.1/servers/$VM1\n\
         curl -sf -X DELETE http://127.0.0.1:{port}/v2.1/servers/$VM2\n\
         for vm in $VM1 $VM2; do while ip netns list | grep -q \"inst-${{vm:0:11}}\"; do sleep 0.2; done; done\n\
         openstack network delete demo\nsleep 1\necho TRY-IT-DONE\n"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(clone.path())
        .env("NEUTRINO_BIN", env!("CARGO_BIN_EXE_neutrino"))
        .env("NEUTRINO_LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("TRY-IT-DONE"), "{text}");
    assert!(text.contains("\"status\": \"ACTIVE\""), "{text}");
    assert!(text.contains("3 received"), "{text}");
    assert!(clone.path().join(".neutrino/neutrino.db").is_file());

    // The drivers example: its plugin and cache directories are inside the clone.
    let drivers = block("## Using the pieces");
    let drivers = &drivers[drivers.find("# load drivers").unwrap()..];
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{drivers}"))
        .current_dir(clone.path())
        .env("NEUTRINO_BIN", env!("CARGO_BIN_EXE_neutrino"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1. linuxbridge"), "{text}");
    assert!(clone.path().join(".neutrino/cache").is_dir(), "{text}");
}
