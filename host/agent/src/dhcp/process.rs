//! One dnsmasq, a child of ours inside its namespace (`ip netns exec` execs it in place, so the
//! child is dnsmasq itself and our signals reach it). Never detached: PID 1 reaps re-parented
//! daemons lazily, and only a child we wait for is surely gone.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, Signal, kill_process, pidfd_open, pidfd_send_signal};

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
/// process whose command line has our pid file) would hold the DHCP and DNS sockets of the
/// interface: it is stopped before ours starts, and waited for until it has exited.
///
/// It is not our child (or is one a dead agent never reaped), so it is waited for through a
/// pidfd, which becomes readable once the process has exited (a zombie or gone), that is once
/// the kernel has closed its files and sockets. Polling `/proc/<pid>/cmdline` is not enough:
/// an exiting process loses its command line (its memory) before its files are closed, and a
/// dnsmasq started in that window fails with `Address already in use`.
pub(super) fn stop_orphan(dir: &ProcessDir, timeout: Duration) -> Result<()> {
    let Ok(text) = fs::read_to_string(dir.pid()) else {
        return Ok(());
    };
    let Some(pid) = text.trim().parse().ok().and_then(Pid::from_raw) else {
        return Ok(());
    };
    // Opened first, so that the process checked below is the one waited for, even if the
    // pid were reused meanwhile.
    let Ok(pidfd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return Ok(()); // no such process
    };
    let marker = format!("--pid-file={}", dir.pid().display());
    if exited(&pidfd, Duration::ZERO) || !is_dnsmasq_of(pid, &marker) {
        return Ok(());
    }
    tracing::warn!(
        "stopping dnsmasq {} left running in {}",
        pid.as_raw_nonzero(),
        dir.root().display()
    );
    let _ = pidfd_send_signal(&pidfd, Signal::TERM);
    if exited(&pidfd, timeout) {
        return Ok(());
    }
    tracing::warn!(
        "dnsmasq {} did not exit within {timeout:?} of SIGTERM: SIGKILL",
        pid.as_raw_nonzero()
    );
    let _ = pidfd_send_signal(&pidfd, Signal::KILL);
    if exited(&pidfd, timeout) {
        return Ok(());
    }
    Err(DhcpError::Process(format!(
        "dnsmasq {} left running in {} survived SIGKILL for {timeout:?}",
        pid.as_raw_nonzero(),
        dir.root().display()
    )))
}

/// Whether the process is ours: its command line names our pid file, or, when it is exiting
/// already (an exiting process has no command line left), its name is dnsmasq.
fn is_dnsmasq_of(pid: Pid, marker: &str) -> bool {
    let raw = pid.as_raw_nonzero();
    let cmdline = fs::read(format!("/proc/{raw}/cmdline")).unwrap_or_default();
    if cmdline.is_empty() {
        return fs::read_to_string(format!("/proc/{raw}/comm"))
            .is_ok_and(|c| c.trim() == "dnsmasq");
    }
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == marker.as_bytes())
}

/// Waits up to `timeout` for the process of `pidfd` to exit; true when it has.
fn exited(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&wait)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) if !left.is_zero() => continue,
            // A pidfd that cannot be polled (too old a kernel): the pid file's process is
            // taken as gone, as before pidfds.
            Err(_) => return true,
        }
    }
}
