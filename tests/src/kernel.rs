//! Helpers of the kernel tests: the root check (with the SKIP line the suite counts), unique
//! names, and guards that remove what a test made even when it fails or panics.

use std::process::Command;

use nix::sched::{CloneFlags, setns};

/// True when the test can touch the kernel (root). Otherwise prints the one line
/// `SKIP <test binary>::<test>: <reason>` that `scripts/test.sh` counts as a skip.
pub fn require_root(test: &str) -> bool {
    let root = is_root();
    if !root {
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .map(|stem| match stem.rsplit_once('-') {
                // cargo names test binaries `<name>-<hash>`.
                Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => {
                    name.to_string()
                }
                _ => stem,
            })
            .unwrap_or_else(|| "unknown".into());
        skip(
            &format!("{binary}::{test}"),
            "needs root (kernel links, namespaces, Open vSwitch)",
        );
    }
    root
}

/// Whether the tests run as root (the effective uid).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A random suffix for names: `unique` without a prefix.
pub fn suffix() -> String {
    unique("")
}

/// `prefix` and six random hex digits: unique per test, short enough for a link name when the
/// prefix has at most 9 characters (kernel names are at most 15).
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..6])
}

/// Deletes the named network namespace (`ip netns delete`) when dropped.
pub struct NetnsGuard(pub String);

impl NetnsGuard {
    pub fn new(name: impl Into<String>) -> Self {
        NetnsGuard(name.into())
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Deletes the named link of the host namespace (and a veth's peer with it) when dropped.
pub struct LinkGuard(pub String);

impl LinkGuard {
    pub fn new(name: impl Into<String>) -> Self {
        LinkGuard(name.into())
    }
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "delete", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Runs `ip netns exec <namespace> <args...>` and returns whether it succeeded, with its
/// output for assertion messages.
pub fn netns_exec(namespace: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", namespace])
        .args(args)
        .output()
        .expect("run ip netns exec");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
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
        // Quiet: a test may have deleted it already (a router's removal does).
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(std::process::Stdio::null())
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

/// Runs `f` on a new thread inside the namespace (sockets it opens live there) and returns
/// its result.
pub fn in_namespace<T: Send + 'static>(
    namespace: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let file = std::fs::File::open(format!("/run/netns/{namespace}"))
        .unwrap_or_else(|e| panic!("open namespace {namespace}: {e}"));
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// Prints `SKIP <binary>::<test>: <why>` straight to fd 2 in one write: the harness captures
/// `eprintln!` of passing tests, and scripts/test.sh counts these lines as skips.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("SKIP {test}: {why}\n").as_bytes());
}
