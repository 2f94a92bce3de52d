//! One dnsmasq, a child of ours inside its namespace (`ip netns exec` execs it in place, so the
//! child is dnsmasq itself and our signals reach it). Never detached: PID 1 reaps re-parented
//! daemons lazily, and only a child we wait for is surely gone.

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use super::layout::ProcessDir;
use super::{DhcpError, Result, io_error};

const POLL: Duration = Duration::from_millis(2);

pub struct Dnsmasq {
    child: Child,
    stop_timeout: Duration,
}

impl Dnsmasq {
    /// Starts dnsmasq and waits until it has written its pid file (it has then read its files
    /// and bound its sockets), or fails with what it printed.
    pub fn start(
        namespace: &str,
        binary: &Path,
        args: &[String],
        dir: &ProcessDir,
        start_timeout: Duration,
        stop_timeout: Duration,
    ) -> Result<Dnsmasq> {
        stop_orphan(dir, stop_timeout)?;
        super::layout::remove_file(&dir.pid())?;
        let log_path = dir.log();
        let log = fs::File::create(&log_path).map_err(io_error(&log_path))?;
        let child = super::in_namespace(namespace, binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| DhcpError::Process(format!("cannot run ip netns exec dnsmasq: {e}")))?;
        let mut dnsmasq = Dnsmasq {
            child,
            stop_timeout,
        };
        let started = Instant::now();
        let own_pid = dnsmasq.child.id().to_string();
        loop {
            if let Some(status) = dnsmasq.child.try_wait().map_err(io_error("dnsmasq"))? {
                let said = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(DhcpError::Process(format!(
                    "dnsmasq in {namespace} exited at start ({status}): {}",
                    said.trim()
                )));
            }
            if fs::read_to_string(dir.pid()).is_ok_and(|p| p.trim() == own_pid) {
                return Ok(dnsmasq);
            }
            if started.elapsed() > start_timeout {
                dnsmasq.stop()?;
                return Err(DhcpError::Process(format!(
                    "dnsmasq in {namespace} did not start within {start_timeout:?}"
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs (an exited child is reaped here).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGHUP: dnsmasq re-reads its host, names and options files and directories.
    pub fn reload(&mut self) -> Result<()> {
        self.signal(Signal::HUP)
    }

    /// SIGTERM, SIGKILL after the stop timeout; the child is reaped either way.
    pub fn stop(&mut self) -> Result<()> {
        if !self.running() {
            return Ok(());
        }
        self.signal(Signal::TERM)?;
        let deadline = Instant::now() + self.stop_timeout;
        while Instant::now() < deadline {
            if !self.running() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        self.child.wait().map_err(io_error("dnsmasq"))?;
        Ok(())
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        let pid = Pid::from_child(&self.child);
        kill_process(pid, signal).map_err(|e| {
            DhcpError::Process(format!("cannot signal dnsmasq {}: {e}", self.child.id()))
        })
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping dnsmasq {}: {e}", self.child.id());
        }
    }
}

/// A dnsmasq left running for this directory by an earlier agent (its pid file names a live
/// process whose command line has our pid file) would hold the DHCP socket of the interface:
/// it is stopped before ours starts. It is not our child, so it is polled until it is gone or
/// a zombie.
fn stop_orphan(dir: &ProcessDir, timeout: Duration) -> Result<()> {
    let Ok(text) = fs::read_to_string(dir.pid()) else {
        return Ok(());
    };
    let Some(pid) = text.trim().parse().ok().and_then(Pid::from_raw) else {
        return Ok(());
    };
    let marker = format!("--pid-file={}", dir.pid().display());
    let is_ours = |pid: Pid| {
        let raw = pid.as_raw_nonzero();
        let cmdline = fs::read(format!("/proc/{raw}/cmdline")).unwrap_or_default();
        let alive = fs::read_to_string(format!("/proc/{raw}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        });
        alive
            && cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == marker.as_bytes())
    };
    if !is_ours(pid) {
        return Ok(());
    }
    tracing::warn!(
        "stopping dnsmasq {pid:?} left running in {}",
        dir.root().display()
    );
    let _ = kill_process(pid, Signal::TERM);
    let deadline = Instant::now() + timeout;
    while is_ours(pid) {
        if Instant::now() > deadline {
            let _ = kill_process(pid, Signal::KILL);
            break;
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}
