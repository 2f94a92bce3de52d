//! A real `neutrino serve` as a child process of the bench (the same binary), so that its
//! memory can be read from `/proc/<pid>/status`.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// `neutrino serve --no-agent` on 127.0.0.1 (a port the kernel picks), with its data directory
/// (and SQLite database, unless `database` says otherwise) in a temporary directory. Stopped
/// (SIGTERM, then SIGKILL) when dropped.
pub struct ChildServer {
    child: Child,
    pub addr: SocketAddr,
    /// What the server said its database is.
    pub database: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChildServer {
    pub fn start(database: Option<&str>) -> anyhow::Result<ChildServer> {
        let exe = std::env::current_exe().context("the path of this program")?;
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("server.log");
        let mut cmd = Command::new(&exe);
        cmd.args([
            "serve",
            "--no-agent",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path());
        if let Some(db) = database {
            cmd.args(["--database", db]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("start {} serve", exe.display()))?;
        // The server prints `neutrino: listening on http://ADDR (database URL)` once it
        // listens; the rest of its output is read and dropped so that it never blocks on a
        // full pipe.
        let stdout = child.stdout.take().context("the server's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut line = String::new();
            let mut tx = Some(tx);
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(rest) = line.trim().strip_prefix("neutrino: listening on http://")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.to_string());
                }
                line.clear();
            }
        });
        let mut server = ChildServer {
            child,
            addr: "127.0.0.1:0".parse()?,
            database: String::new(),
            log,
            _dir: dir,
        };
        // Migrations on a fresh PostgreSQL database take a while; a minute is plenty.
        let said = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(said) => said,
            Err(_) => {
                // It may have just closed its output on the way out.
                std::thread::sleep(Duration::from_millis(200));
                let status = server.child.try_wait()?;
                bail!(
                    "the server did not start ({}); its log:\n{}",
                    match status {
                        Some(s) => format!("it exited: {s}"),
                        None => "no address after 60 s".into(),
                    },
                    server.log_tail()
                );
            }
        };
        let (addr, rest) = said.split_once(' ').unwrap_or((said.as_str(), ""));
        server.addr = addr
            .parse()
            .with_context(|| format!("the server's address in {said:?}"))?;
        server.database = rest
            .trim_start_matches("(database ")
            .trim_end_matches(')')
            .to_string();
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the server wrote to stderr.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Whether it still runs (its exit status if not).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, and up to 10 s for it to finish; then SIGKILL.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        for _ in 0..100 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("the server did not stop within 10 s of SIGTERM and was killed")
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// A process's resident memory: now (`VmRSS`) and its peak (`VmHWM`), in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub peak: u64,
}

/// Reads `/proc/<pid>/status`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_status(&status).with_context(|| format!("{path} has no VmRSS/VmHWM"))
}

fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some(Memory {
        rss: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_peak_from_proc_status() {
        let status =
            "Name:\tneutrino\nVmPeak:\t  900000 kB\nVmHWM:\t   81920 kB\nVmRSS:\t   40960 kB\n";
        let m = parse_status(status).unwrap();
        assert_eq!(m.rss, 40960 * 1024);
        assert_eq!(m.peak, 81920 * 1024);
        assert!(parse_status("Name:\tx\n").is_none());
        // This process's own figures: some memory is resident, and the peak is at least that.
        let me = memory(std::process::id()).unwrap();
        assert!(me.rss > 0 && me.peak >= me.rss, "{me:?}");
    }
}
