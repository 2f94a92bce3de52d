//! `neutrino plugin check` and `neutrino drivers` as a user runs them.

use std::process::Command;

use neutrino::plugins::bundled;

fn neutrino(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_neutrino"))
        .args(args)
        .output()
        .expect("run neutrino");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn plugin_check_passes_a_bundled_driver_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("linuxbridge.wasm");
    std::fs::write(&file, bundled::get("linuxbridge").unwrap()).unwrap();
    let (code, out) = neutrino(&["plugin", "check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("PASS  vxlan: live agent gives bound with vif type and details"),
        "{out}"
    );
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn plugin_check_fails_a_broken_file_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.wasm");
    std::fs::write(&file, b"not wasm at all").unwrap();
    let (code, out) = neutrino(&["plugin", "check", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  is a loadable component"), "{out}");
    assert!(out.contains("broken.wasm"), "{out}");
}

#[test]
fn plugin_check_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flatdhcp.wasm");
    std::fs::write(&file, bundled::get("flatdhcp").unwrap()).unwrap();
    let (code, out) = neutrino(&["plugin", "check", "--json", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["outcome"] != "fail")
    );
}

#[test]
fn drivers_lists_the_configured_order() {
    let (code, out) = neutrino(&["drivers"]);
    assert_eq!(code, 0, "{out}");
    let ovs = out.find("1. ovs-hybrid").expect(&out);
    let lb = out.find("2. linuxbridge").expect(&out);
    let flat = out.find("3. flatdhcp").expect(&out);
    assert!(ovs < lb && lb < flat);
}

#[test]
fn drivers_refuses_an_unknown_driver_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("drivers.toml");
    std::fs::write(
        &config,
        "[drivers]\nmechanism_drivers = [\"ovs-hybrid\", \"sriov\"]\n",
    )
    .unwrap();
    let (code, out) = neutrino(&["drivers", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cannot load driver sriov"), "{out}");
}

/// A `plugin_dir` that does not exist is a mistake, refused by `drivers` and `serve` alike
/// (not a directory without drivers, which would silently load only the bundled ones).
#[test]
fn a_plugin_dir_that_does_not_exist_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-plugins");
    let drivers = dir.path().join("drivers.toml");
    std::fs::write(
        &drivers,
        format!(
            "[drivers]\nplugin_dir = {:?}\n",
            missing.display().to_string()
        ),
    )
    .unwrap();
    let (code, out) = neutrino(&["drivers", "--config", drivers.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("plugin_dir {} does not exist", missing.display())),
        "{out}"
    );
    let node = dir.path().join("node.toml");
    std::fs::write(
        &node,
        format!(
            "[drivers]\nplugin_dir = {:?}\n",
            missing.display().to_string()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let (code, out) = neutrino(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--no-agent",
        "--config",
        node.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not exist"), "{out}");
    std::fs::create_dir(&missing).unwrap();
    let (code, out) = neutrino(&["drivers", "--config", drivers.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

/// Issue 11: `drivers --config` reads the file `serve` and `agent` take; the format it took
/// before (drivers' keys at the top level, a driver's settings in `[drivers.<name>]`) is refused
/// with where each goes, by `drivers` and `serve` alike.
#[test]
fn drivers_serve_and_agent_take_one_config_format() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let node = write(
        "node.toml",
        "[drivers]\nmechanism_drivers = [\"flatdhcp\"]\n\
         [drivers.drivers.flatdhcp.config]\n\n[agent]\ndhcp = false\n",
    );
    let (code, out) = neutrino(&["drivers", "--config", &node]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("1. flatdhcp "), "{out}");
    assert!(!out.contains("2. "), "only the configured driver: {out}");

    let old = write("old.toml", "mechanism_drivers = [\"flatdhcp\"]\n");
    let (code, out) = neutrino(&["drivers", "--config", &old]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("unknown top-level key `mechanism_drivers`: put it under [drivers]"),
        "{out}"
    );
    let settings = write(
        "settings.toml",
        "[drivers]\nmechanism_drivers = [\"flatdhcp\"]\n[drivers.flatdhcp.config]\nx = \"1\"\n",
    );
    let (code, out) = neutrino(&["drivers", "--config", &settings]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("a driver's settings go in [drivers.drivers.flatdhcp]"),
        "{out}"
    );
    let old_dir = write("old-dir.toml", "plugin_dir = \"/nowhere\"\n");
    let data = dir.path().join("data");
    let (code, out) = neutrino(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--no-agent",
        "--config",
        &old_dir,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("unknown top-level key `plugin_dir`: put it under [drivers]"),
        "{out}"
    );
    // An unknown key that is no drivers' key keeps the parser's own message.
    let typo = write("typo.toml", "[agnet]\n");
    let (code, out) = neutrino(&["drivers", "--config", &typo]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown field `agnet`"), "{out}");
}

/// The configuration files the documentation shows load as they are: examples/all-in-one.toml
/// and the README's (its relative directories made in a temporary one).
#[test]
fn the_documented_config_files_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let all_in_one = root.join("examples/all-in-one.toml");
    let (code, out) = neutrino(&["drivers", "--config", all_in_one.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("1. linuxbridge "), "{out}");

    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme
        .split("cat > neutrino.toml <<'TOML'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nTOML\n").next())
        .expect("the README's neutrino.toml");
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{}/.neutrino/", dir.path().display());
    std::fs::create_dir_all(dir.path().join(".neutrino/plugins")).unwrap();
    let config = dir.path().join("neutrino.toml");
    std::fs::write(&config, block.replace(".neutrino/", &base)).unwrap();
    let (code, out) = neutrino(&["drivers", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("1. linuxbridge "), "{out}");
    assert!(out.contains("2. ovs-hybrid "), "{out}");
    assert!(out.contains("\"physical_interfaces\":[\"eth1\"]"), "{out}");
}

/// One HTTP/1.1 request over a plain socket: (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `neutrino serve` on a free port with its data in a temporary directory: (child, address).
fn spawn_serve(dir: &std::path::Path, args: &[&str]) -> (std::process::Child, String) {
    spawn_serve_with(dir, &[&["--no-agent"], args].concat())
}

/// [`spawn_serve`], with the embedded agent unless `args` say `--no-agent`.
fn spawn_serve_with(dir: &std::path::Path, args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_neutrino"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run neutrino serve");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // What it prints later (the embedded agent's line) must not meet a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr)
}

/// SIGTERM (so the server flushes and exits cleanly), then its exit status.
fn terminate(mut child: std::process::Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap()
}

/// `neutrino agent enroll HOST --data-dir DIR`: the token it prints (stdout only).
fn enroll(dir: &std::path::Path, host: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_neutrino"))
        .args(["agent", "enroll", host, "--data-dir"])
        .arg(dir)
        .output()
        .expect("run neutrino agent enroll");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.len(), 64, "32 random bytes, hex: {token:?}");
    token
}

/// Issue 12, finding 9: by default the server takes no shared agent token; `agent enroll`
/// prints a host's token, good for that host only, replaced by enrolling again, refused once
/// `agent revoke` ran.
#[test]
fn agent_enroll_prints_a_token_the_server_accepts_for_its_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_serve(dir.path(), &[]);
    let report = |host: &str| {
        format!(
            r#"{{"agent": {{"agent_type": "DHCP agent", "host": "{host}", "binary": "neutron-dhcp-agent"}}}}"#
        )
    };
    let post = |token: &str, host: &str| {
        http(
            &addr,
            "POST",
            "/internal/agents/report",
            &[("X-Neutrino-Agent-Token", token)],
            &report(host),
        )
    };
    let shared_file = dir.path().join("agent-token").exists();
    let first = enroll(dir.path(), "node1");
    let accepted = post(&first, "node1");
    let (other_host, other_body) = post(&first, "node2");
    let feed_of_other = http(
        &addr,
        "GET",
        "/internal/hosts/node2/changes?after=0&timeout=0",
        &[("X-Neutrino-Agent-Token", first.as_str())],
        "",
    );
    let second = enroll(dir.path(), "node1");
    let (replaced, _) = post(&first, "node1");
    let (current, _) = post(&second, "node1");
    let (revoked_code, revoked_out) = neutrino(&[
        "agent",
        "revoke",
        "node1",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let (after_revoke, _) = post(&second, "node1");
    let (again_code, _) = neutrino(&[
        "agent",
        "revoke",
        "node1",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let exit = terminate(child);
    assert!(
        !shared_file,
        "no shared token file without --shared-agent-token"
    );
    assert_eq!(accepted, (200, r#"{"result":"new"}"#.to_string()));
    assert_eq!(other_host, 403, "{other_body}");
    assert!(other_body.contains("HTTPForbidden"), "{other_body}");
    assert_eq!(feed_of_other.0, 403, "{}", feed_of_other.1);
    assert_ne!(first, second);
    assert_eq!(replaced, 401, "the first token was replaced");
    assert_eq!(current, 200);
    assert_eq!(revoked_code, 0, "{revoked_out}");
    assert_eq!(after_revoke, 401);
    assert_eq!(again_code, 1, "nothing left to revoke");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn serve_with_a_shared_agent_token_creates_it_and_takes_reports() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_serve(
        dir.path(),
        &["--agent-down-time", "30", "--shared-agent-token"],
    );
    let token_file = dir.path().join("agent-token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    let report = r#"{"agent": {"agent_type": "DHCP agent", "host": "node1", "binary": "neutron-dhcp-agent"}}"#;
    let (unauthorized, _) = http(&addr, "POST", "/internal/agents/report", &[], report);
    let auth = [("X-Neutrino-Agent-Token", token.trim())];
    let first = http(&addr, "POST", "/internal/agents/report", &auth, report);
    let second = http(&addr, "POST", "/internal/agents/report", &auth, report);
    let listed = http(
        &addr,
        "GET",
        "/v2.0/agents?fields=host&fields=alive",
        &[],
        "",
    );
    let exit = terminate(child);
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(unauthorized, 401);
    assert_eq!(first, (200, r#"{"result":"new"}"#.to_string()));
    assert_eq!(second, (200, r#"{"result":"alive"}"#.to_string()));
    assert_eq!(
        listed,
        (
            200,
            r#"{"agents":[{"alive":true,"host":"node1"}]}"#.to_string()
        )
    );
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn serve_with_keystone_needs_tokens_and_a_reachable_keystone() {
    let (code, out) = neutrino(&["serve", "--auth", "keystone"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--keystone-url"), "{out}");
    // A Keystone URL where nothing listens: tokens cannot be checked.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{closed}/v3");
    let (child, addr) = spawn_serve(dir.path(), &["--auth", "keystone", "--keystone-url", &url]);
    let root = http(&addr, "GET", "/", &[], "");
    let anonymous = http(&addr, "GET", "/v2.0/networks", &[], "");
    let with_token = http(&addr, "GET", "/v2.0/networks", &[("X-Auth-Token", "t")], "");
    let spoofed = http(
        &addr,
        "GET",
        "/v2.0/networks",
        &[("X-Project-Id", "p"), ("X-Roles", "admin")],
        "",
    );
    assert!(terminate(child).success());
    assert_eq!(root.0, 200);
    assert_eq!(anonymous.0, 401, "{}", anonymous.1);
    assert!(
        anonymous.1.contains(r#""title":"Unauthorized""#),
        "{}",
        anonymous.1
    );
    assert_eq!(spoofed.0, 401);
    assert_eq!(with_token.0, 503, "{}", with_token.1);
    assert!(
        with_token.1.contains("ServiceUnavailable"),
        "{}",
        with_token.1
    );
}

#[test]
fn serve_refuses_a_zero_agent_down_time() {
    let (code, out) = neutrino(&["serve", "--agent-down-time", "0"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--agent-down-time"), "{out}");
}

/// Waits for a child at most `limit`: its exit status, or None (killed) when it ran longer.
fn wait_at_most(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// SIGTERM, then how long the server took to exit, and its status (None: still running 10 s
/// later, killed).
fn stop_timed(
    mut child: std::process::Child,
) -> (std::time::Duration, Option<std::process::ExitStatus>) {
    let started = std::time::Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_at_most(&mut child, std::time::Duration::from_secs(10));
    (started.elapsed(), status)
}

/// How long a stop of `serve` may take (issue 10, finding 6: it took 13-30 s, held by the
/// agents' 30 s long polls).
const STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// An agent's long poll open on `serve` (`timeout=30`), answered at once by the stop: SIGTERM
/// ends the process within [`STOP_BOUND`], and the poll gets its answer ("nothing new"), not a
/// cut connection.
#[test]
fn serve_stops_at_once_with_an_agent_long_poll_open() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_serve(dir.path(), &[]);
    let token = enroll(dir.path(), "node1");
    // A port bound to node1, so that node1's feed has a revision to wait after.
    let (status, body) = http(
        &addr,
        "POST",
        "/v2.0/networks",
        &[],
        r#"{"network": {"name": "n"}}"#,
    );
    assert_eq!(status, 201, "{body}");
    let network: serde_json::Value = serde_json::from_str(&body).unwrap();
    let port = serde_json::json!({"port": {
        "network_id": network["network"]["id"], "binding:host_id": "node1"}});
    let (status, body) = http(&addr, "POST", "/v2.0/ports", &[], &port.to_string());
    assert_eq!(status, 201, "{body}");
    let auth = [("X-Neutrino-Agent-Token", token.as_str())];
    let (status, body) = http(
        &addr,
        "GET",
        "/internal/hosts/node1/changes?after=0",
        &auth,
        "",
    );
    assert_eq!(status, 200, "{body}");
    let revision = serde_json::from_str::<serde_json::Value>(&body).unwrap()["revision"]
        .as_i64()
        .unwrap();
    assert!(revision >= 1, "{body}");

    let poll = {
        let (addr, token) = (addr.clone(), token.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let path = format!("/internal/hosts/node1/changes?after={revision}&timeout=30");
            let auth = [("X-Neutrino-Agent-Token", token.as_str())];
            let answer = http(&addr, "GET", &path, &auth, "");
            (answer, started.elapsed())
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!poll.is_finished(), "the long poll did not wait");
    let (took, status) = stop_timed(child);
    let ((status_of_poll, body), polled) = poll.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(took <= STOP_BOUND, "serve took {took:?} to stop");
    eprintln!("serve stopped {took:?} after SIGTERM with a long poll open");
    assert_eq!(status_of_poll, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["revision"], revision, "{body}");
    assert!(polled < std::time::Duration::from_secs(5), "{polled:?}");
}

/// The same, with the embedded agent (root: it may change the kernel), whose own long poll is
/// open once it has reported: stopped with the server, within [`STOP_BOUND`].
#[test]
fn serve_stops_at_once_with_the_embedded_agent() {
    if !nix_root() {
        eprintln!(
            "SKIP cli::serve_stops_at_once_with_the_embedded_agent: needs root (the embedded agent)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = format!("stop-test-{}", std::process::id());
    let (child, addr) = spawn_serve_with(dir.path(), &["--host", &host]);
    let started = std::time::Instant::now();
    loop {
        let (status, body) = http(&addr, "GET", "/v2.0/agents?fields=host", &[], "");
        assert_eq!(status, 200, "{body}");
        if body.contains(&host) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the embedded agent never reported"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Its first poll answers the full state; the next one waits.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let (took, status) = stop_timed(child);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(took <= STOP_BOUND, "serve took {took:?} to stop");
    eprintln!("serve with its embedded agent stopped {took:?} after SIGTERM");
}

fn nix_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// One `serve` per data directory: a second is refused at once, non-zero, saying which
/// process holds it; once the first has stopped, the directory is free again.
#[test]
fn a_second_serve_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (first, addr) = spawn_serve(dir.path(), &[]);
    let mut second = Command::new(env!("CARGO_BIN_EXE_neutrino"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-agent",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_at_most(&mut second, std::time::Duration::from_secs(10));
    let out = second.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "is in use by another `neutrino serve` (pid {})",
            first.id()
        )),
        "{text}"
    );
    assert!(!text.contains("listening"), "{text}");
    // The first goes on serving.
    assert_eq!(http(&addr, "GET", "/v2.0/networks", &[], "").0, 200);
    assert!(terminate(first).success());
    let (again, addr) = spawn_serve(dir.path(), &[]);
    assert_eq!(http(&addr, "GET", "/v2.0/networks", &[], "").0, 200);
    assert!(terminate(again).success());
}

/// Issue 12, finding 6: connections that say nothing, or half a request, do not keep the
/// server from others, and are closed after the header timeout (10 s); a kept-alive
/// connection that stays idle is closed the same way.
#[test]
fn idle_and_half_open_connections_are_cut_and_others_served() {
    use std::io::{Read as _, Write as _};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_serve(dir.path(), &[]);
    let mut idle = Vec::new();
    for i in 0..300 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /v2.0/networks HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
        }
        idle.push(s);
    }
    // A kept-alive connection that made one request and then says nothing.
    let mut kept = std::net::TcpStream::connect(&addr).unwrap();
    kept.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first[9..12], b"200");

    let asked = Instant::now();
    let (status, body) = http(&addr, "GET", "/v2.0/networks", &[], "");
    assert_eq!(status, 200, "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );

    // Past the header timeout every one of them has been closed by the server.
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in idle.iter_mut().chain(std::iter::once(&mut kept)) {
        s.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        ))
        .unwrap();
        let mut rest = Vec::new();
        // EOF (or a reset) ends the read; a timeout would be an error of kind WouldBlock.
        match s.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert!(
                e.kind() == std::io::ErrorKind::ConnectionReset,
                "a connection was still open after the header timeout: {e}"
            ),
        }
    }
    assert!(terminate(child).success());
}

/// `cargo` for a project outside this workspace: a clean environment (as host/wasm-build
/// gives its nested builds), so that this test's own cargo settings do not leak into it.
fn outside_cargo(project: &std::path::Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(project).env_clear();
    for key in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "TMPDIR",
        "USER",
    ] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd
}

/// Issue 11, the path of a platform team, from an empty directory outside this repository:
/// `plugin new`, the project's own native tests, its wasm build, `plugin inspect`, `plugin check`
/// and `plugin plan` on it, `drivers --config` with the project's neutrino.toml, and `serve` with
/// that file binding a port with it (a heartbeat standing in for the host's agent) and passing a
/// port whose host has no agent. The builds share `target/wasm-components` with the bundled
/// drivers' (host/wasm-build): only the SDK and the new crate are compiled.
#[test]
fn a_driver_made_outside_the_repository_builds_certifies_and_binds() {
    let started = std::time::Instant::now();
    let root = std::fs::canonicalize(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("mydrv");
    assert!(
        !project.starts_with(&root),
        "{} must be outside the repository",
        project.display()
    );
    let p = project.to_str().unwrap();
    let (code, out) = neutrino(&["plugin", "new", "mydrv", "--dir", p]);
    assert_eq!(code, 0, "{out}");
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!(
            "neutrino-sdk = {{ path = {:?} }}",
            root.join("sdk").display().to_string()
        )),
        "{manifest}"
    );
    // Refused: a directory that is not empty, a name that is not a driver name.
    let (code, out) = neutrino(&["plugin", "new", "mydrv", "--dir", p]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("is not empty"), "{out}");
    let elsewhere = tmp.path().join("bad");
    for bad in ["my drv", "../x", "dr\u{0b}v", ""] {
        let (code, out) = neutrino(&["plugin", "new", bad, "--dir", elsewhere.to_str().unwrap()]);
        assert_eq!(code, 2, "{bad:?}: {out}");
        assert!(out.contains("is not a driver name"), "{bad:?}: {out}");
    }
    assert!(!elsewhere.exists());

    let target_dir = root.join("target").join("wasm-components");
    let built = std::time::Instant::now();
    // Captured: its `test result:` lines must not be counted as this suite's (scripts/test.sh).
    let out = outside_cargo(&project)
        .args(["test", "--offline"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the project's native tests: {text}");
    assert!(text.contains("test result: ok. 5 passed"), "{text}");
    let tested = built.elapsed();
    let built = std::time::Instant::now();
    let out = outside_cargo(&project)
        .args([
            "build",
            "--offline",
            "--release",
            "--target",
            "wasm32-wasip2",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the wasm build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm_built = built.elapsed();
    let wasm = target_dir.join("wasm32-wasip2/release/neutrino_driver_mydrv.wasm");
    let plugins = project.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(&wasm, plugins.join("mydrv.wasm")).unwrap();
    let component = plugins.join("mydrv.wasm");
    let component = component.to_str().unwrap();

    let (code, out) = neutrino(&["plugin", "inspect", component]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("import neutrino:driver/log@0.1.0"), "{out}");
    assert!(out.contains("export neutrino:driver/driver@0.1.0"), "{out}");
    assert!(out.contains("    bind-port\n"), "{out}");
    assert!(!out.contains("FORBIDDEN"), "{out}");

    let (code, out) = neutrino(&["plugin", "check", component]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("\ndriver mydrv 0.1.0 (contract 0.1.0"),
        "{out}"
    );
    assert!(
        out.contains("PASS  vlan: plug-port plan is well-formed and inside the grant"),
        "{out}"
    );
    assert!(out.contains(" 0 failed"), "{out}");

    let (code, out) = neutrino(&[
        "plugin",
        "plan",
        component,
        "--network-type",
        "vlan",
        "--segmentation-id",
        "42",
        "--host",
        "compute-9",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("on host compute-9"), "{out}");
    assert!(
        out.contains("decision: bound segment segment-vlan with vif type macvtap"),
        "{out}"
    );
    assert!(
        out.contains("setup-network:\n  ensure-vlan eth1.42 on eth1 id=42 mtu=1500\n"),
        "{out}"
    );
    assert!(out.contains("ensure-macvlan eth0@inst-"), "{out}");
    assert!(
        out.contains("teardown-network:\n  remove-link eth1.42\n"),
        "{out}"
    );
    // A port as the API shows it; a network type the driver does not bind: a pass, exit 1.
    let port_json = tmp.path().join("port.json");
    std::fs::write(
        &port_json,
        r#"{"port": {"id": "11111111-2222-4333-8444-555555555555", "binding:host_id": "cmp-3",
            "mac_address": "fa:16:3e:00:00:07", "binding:vnic_type": "normal"}}"#,
    )
    .unwrap();
    let (code, out) = neutrino(&[
        "plugin",
        "plan",
        component,
        "--port-json",
        port_json.to_str().unwrap(),
        "--network-type",
        "vxlan",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    let plans: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plans["host"], "cmp-3");
    assert_eq!(plans["port_id"], "11111111-2222-4333-8444-555555555555");
    assert_eq!(
        plans["decision"]["Pass"],
        "segment segment-vxlan: network type vxlan not supported"
    );
    assert!(plans.get("plug_port").is_none(), "{plans}");

    // The project's neutrino.toml, its plugin_dir made absolute (the test runs elsewhere).
    let config = project.join("neutrino.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("plugin_dir = \"plugins\"\n"), "{text}");
    std::fs::write(
        &config,
        text.replace(
            "plugin_dir = \"plugins\"",
            &format!("plugin_dir = {:?}", plugins.display().to_string()),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (code, out) = neutrino(&["drivers", "--config", config]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!(
            "1. mydrv 0.1.0 from {} (contract 0.1.0)\n   agent type: mydrv agent\n",
            plugins.join("mydrv.wasm").display()
        )),
        "{out}"
    );
    assert!(out.contains("2. linuxbridge "), "{out}");

    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (child, addr) = spawn_serve(&data, &["--shared-agent-token", "--config", config]);
    let token = std::fs::read_to_string(data.join("agent-token")).unwrap();
    let heartbeat = r#"{"agent": {"agent_type": "mydrv agent", "host": "compute-7",
        "binary": "neutrino-agent",
        "configurations": {"interface_mappings": {"physnet1": "eth1"}}}}"#;
    let reported = http(
        &addr,
        "POST",
        "/internal/agents/report",
        &[("X-Neutrino-Agent-Token", token.trim())],
        heartbeat,
    );
    let json = |(status, body): (u16, String)| -> (u16, serde_json::Value) {
        (status, serde_json::from_str(&body).unwrap_or_default())
    };
    let (status, network) = json(http(
        &addr,
        "POST",
        "/v2.0/networks",
        &[],
        r#"{"network": {"name": "n1", "provider:network_type": "flat",
            "provider:physical_network": "physnet1"}}"#,
    ));
    assert_eq!(status, 201, "{network}");
    let network_id = network["network"]["id"].as_str().unwrap().to_string();
    let port_on = |host: &str| {
        json(http(
            &addr,
            "POST",
            "/v2.0/ports",
            &[],
            &serde_json::json!({"port": {"network_id": network_id, "binding:host_id": host}})
                .to_string(),
        ))
    };
    let bound = port_on("compute-7");
    let unbound = port_on("compute-8");
    let exit = terminate(child);
    assert_eq!(reported, (200, r#"{"result":"new"}"#.to_string()));
    assert_eq!(bound.0, 201, "{}", bound.1);
    let port = &bound.1["port"];
    assert_eq!(port["binding:vif_type"], "macvtap", "{port}");
    assert_eq!(
        port["binding:vif_details"]["macvtap_source"], "eth1",
        "{port}"
    );
    assert_eq!(unbound.0, 201, "{}", unbound.1);
    assert_eq!(
        unbound.1["port"]["binding:vif_type"], "binding_failed",
        "no mydrv agent on compute-8: {}",
        unbound.1
    );
    assert!(exit.success(), "{exit:?}");
    eprintln!(
        "plugin_outside: native tests {:.1} s, wasm build {:.1} s, whole test {:.1} s",
        tested.as_secs_f64(),
        wasm_built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
