//! Kernel fixtures of the root tests: namespaces and veth pairs with unique names, removed in
//! Drop even when a test fails or panics.

use std::process::Command;

/// Whether the tests run as root (kernel tests need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// A random suffix for names (6 hex digits: `xxxx-<suffix>` fits the 15 bytes of a link name).
pub fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_string()
}

/// Runs `ip` with these arguments; panics with its error output when it fails.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop (with the links inside it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        ip(&["netns", "add", name]);
        let ns = Netns {
            name: name.to_string(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth pair made directly inside two namespaces (no name is ever taken in the host's).
pub fn veth(a_ns: &Netns, a: &str, b_ns: &Netns, b: &str) {
    ip(&[
        "link", "add", a, "netns", &a_ns.name, "type", "veth", "peer", "name", b, "netns",
        &b_ns.name,
    ]);
    ip(&["-n", &a_ns.name, "link", "set", a, "up"]);
    ip(&["-n", &b_ns.name, "link", "set", b, "up"]);
}

/// Prints `SKIP <binary>::<test>: <why>` straight to fd 2 in one write: the harness captures
/// `eprintln!` of passing tests, and scripts/test.sh counts these lines as skips.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("SKIP {test}: {why}\n").as_bytes());
}
