//! A private Open vSwitch for one test: its own ovsdb-server and ovs-vswitchd with run, db and
//! log directories in a temporary directory, never the system's service.
//!
//! One at a time on the machine: every userspace (netdev) datapath of a kernel namespace is
//! backed by one device named `ovs-netdev`, so a second ovs-vswitchd cannot set up netdev
//! bridges while the first runs. A host-wide file lock, held while the daemon lives, makes
//! tests (of any binary) wait their turn.

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use nix::fcntl::{Flock, FlockArg};

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const LOCK: &str = "/run/neutrino-test-ovs.lock";

pub struct OvsDaemon {
    // Dropped after the daemons stop (Drop), in this order: the lock, then the directory.
    _turn: Flock<File>,
    dir: tempfile::TempDir,
}

impl OvsDaemon {
    /// Creates a database and starts both daemons (about 0.15 s). They detach; dropping the
    /// value stops them.
    /// Waits while another test's daemon runs.
    pub fn start() -> anyhow::Result<OvsDaemon> {
        let lock = File::create(LOCK).with_context(|| format!("create {LOCK}"))?;
        let turn = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("lock {LOCK}"))?;
        let dir = tempfile::Builder::new().prefix("neutrino-ovs-").tempdir()?;
        let daemon = OvsDaemon { _turn: turn, dir };
        for sub in ["run", "db", "log"] {
            std::fs::create_dir(daemon.path(sub))?;
        }
        let db = daemon.path("db/conf.db");
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(SCHEMA))?;
        run(daemon
            .command("ovsdb-server")
            .arg(&db)
            .arg(format!("--remote=punix:{}", daemon.db_socket().display()))
            .args(daemon.daemon_args("ovsdb-server")))?;
        daemon.vsctl(&["--no-wait", "init"])?;
        run(daemon
            .command("ovs-vswitchd")
            .arg(format!("unix:{}", daemon.db_socket().display()))
            .args(daemon.daemon_args("ovs-vswitchd")))?;
        Ok(daemon)
    }

    /// The ovsdb-server socket, for `ExecutorConfig::ovs_db`.
    pub fn db_socket(&self) -> PathBuf {
        self.path("run/db.sock")
    }

    /// Runs `ovs-vsctl` against this daemon; its standard output.
    pub fn vsctl(&self, args: &[&str]) -> anyhow::Result<String> {
        run(self
            .command("ovs-vsctl")
            .arg(format!("--db=unix:{}", self.db_socket().display()))
            .arg("--timeout=10")
            .args(args))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn ctl(&self, daemon: &str) -> PathBuf {
        self.path(&format!("run/{daemon}.ctl"))
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("OVS_RUNDIR", self.path("run"))
            .env("OVS_DBDIR", self.path("db"))
            .env("OVS_LOGDIR", self.path("log"));
        cmd
    }

    fn daemon_args(&self, daemon: &str) -> Vec<String> {
        let p = |rel: String| self.path(&rel).display().to_string();
        vec![
            format!("--pidfile={}", p(format!("run/{daemon}.pid"))),
            format!("--unixctl={}", self.ctl(daemon).display()),
            format!("--log-file={}", p(format!("log/{daemon}.log"))),
            "--detach".into(),
        ]
    }

    fn stop(&self, daemon: &str, args: &[&str]) {
        let _ = self
            .command("ovs-appctl")
            .arg("-t")
            .arg(self.ctl(daemon))
            .args(args)
            .output();
    }
}

impl Drop for OvsDaemon {
    fn drop(&mut self) {
        // --cleanup deletes the bridges' kernel devices (netdev datapath) on the way out.
        self.stop("ovs-vswitchd", &["exit", "--cleanup"]);
        self.stop("ovsdb-server", &["exit"]);
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
