//! The files of one network's dnsmasq processes, in `<state_dir>/dhcp/<network id>/`:
//!
//! - `addn_hosts/<port id>`: every port's DNS names;
//! - `opts` (the subnets' options) and `interface` (the device dnsmasq serves);
//! - `shard-<k>/`, one per DHCP process ([`ProcessDir`]): `host/<port id>` and
//!   `port_opts/<port id>` of the ports it serves, `leases` (dnsmasq's, seeded at first
//!   start), `pid` and `dnsmasq.log` (its standard error);
//! - `dns/` (`pid`, `dnsmasq.log`), the DNS process of a network served by several shards.
//!
//! Files are replaced by rename, through a temporary name beginning with a dot, which dnsmasq's
//! inotify reader ignores, so it never reads half a file.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Result, invalid, io_error};

/// The prefix of the shards' directories.
const SHARD_PREFIX: &str = "shard-";

#[derive(Debug, Clone)]
pub struct NetworkDir {
    root: PathBuf,
}

impl NetworkDir {
    pub fn new(state_dir: &Path, network_id: &str) -> NetworkDir {
        NetworkDir {
            root: state_dir.join("dhcp").join(network_id),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn names(&self) -> PathBuf {
        self.root.join("addn_hosts")
    }
    pub fn opts(&self) -> PathBuf {
        self.root.join("opts")
    }
    pub fn interface(&self) -> PathBuf {
        self.root.join("interface")
    }
    pub fn shard(&self, k: usize) -> ProcessDir {
        ProcessDir(self.root.join(format!("{SHARD_PREFIX}{k}")))
    }
    pub fn dns(&self) -> ProcessDir {
        ProcessDir(self.root.join("dns"))
    }

    /// Creates the directories of a network of `shards` shards, readable by dnsmasq once it
    /// has dropped its privileges.
    pub fn create(&self, shards: usize) -> Result<()> {
        create_dirs(&[self.root.clone(), self.names()])?;
        for k in 0..shards {
            let shard = self.shard(k);
            create_dirs(&[shard.0.clone(), shard.hosts(), shard.port_opts()])?;
        }
        if shards > 1 {
            create_dirs(&[self.dns().0])?;
        }
        Ok(())
    }

    /// The directories of the processes found on disk (any split's): `shard-<k>/`, `dns/`.
    pub fn process_dirs(&self) -> Result<Vec<ProcessDir>> {
        if !self.root.exists() {
            return Ok(Vec::new());
        }
        Ok(file_names(&self.root)?
            .into_iter()
            .filter(|n| n == "dns" || n.starts_with(SHARD_PREFIX))
            .map(|n| ProcessDir(self.root.join(n)))
            .collect())
    }

    pub fn remove(&self) -> Result<()> {
        remove_dir(&self.root)
    }

    /// Removes the directories of shards `k >= shards`, and of the DNS process when there is
    /// only one shard (it then serves DNS itself).
    pub fn remove_unused(&self, shards: usize) -> Result<()> {
        for name in file_names(&self.root)? {
            let unused = match name.strip_prefix(SHARD_PREFIX) {
                Some(k) => k.parse::<usize>().is_ok_and(|k| k >= shards),
                None => name == "dns" && shards == 1,
            };
            if unused {
                remove_dir(&self.root.join(name))?;
            }
        }
        Ok(())
    }
}

/// The directory of one dnsmasq process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessDir(PathBuf);

impl ProcessDir {
    pub fn root(&self) -> &Path {
        &self.0
    }
    pub fn hosts(&self) -> PathBuf {
        self.0.join("host")
    }
    pub fn port_opts(&self) -> PathBuf {
        self.0.join("port_opts")
    }
    pub fn leases(&self) -> PathBuf {
        self.0.join("leases")
    }
    pub fn pid(&self) -> PathBuf {
        self.0.join("pid")
    }
    pub fn log(&self) -> PathBuf {
        self.0.join("dnsmasq.log")
    }
}

fn create_dirs(dirs: &[PathBuf]) -> Result<()> {
    for dir in dirs {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(io_error(dir))?;
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_error(dir)(e)),
        _ => Ok(()),
    }
}

/// Replaces `path` with `content` in one rename.
pub fn write_file(path: &Path, content: &str) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, content).map_err(io_error(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).map_err(io_error(&tmp))?;
    fs::rename(&tmp, path).map_err(io_error(path))
}

/// Removes `path`; true when there was one.
pub fn remove_file(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// The names of the files in `dir` (not our temporary ones).
pub fn file_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let name = entry.map_err(io_error(dir))?.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') {
            names.push(name.into_owned());
        }
    }
    Ok(names)
}

/// dnsmasq reads the port files after it has dropped root for `nobody`: every directory above
/// them must let others through, or new ports would silently never be read.
pub fn check_reachable(dir: &Path) -> Result<()> {
    let mut current = Some(dir);
    while let Some(d) = current {
        if let Ok(meta) = fs::metadata(d)
            && meta.permissions().mode() & 0o001 == 0
        {
            return Err(invalid(format!(
                "{} (mode {:o}) cannot be entered by dnsmasq once it has dropped its \
                 privileges: make it (and every directory above it) world-searchable",
                d.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        current = d.parent();
    }
    Ok(())
}

/// Where the DHCP files of an agent whose state directory others cannot enter go:
/// `/run/neutrino-dhcp/<hash of the state directory's absolute path>` (a tmpfs: leases do not
/// outlive a reboot, and neither do the instances and namespaces they were for).
pub fn reachable_state_dir(state_dir: &Path) -> PathBuf {
    let absolute = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    // FNV-1a: stable across builds, so a restarted agent finds its leases again.
    let hash = absolute
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    PathBuf::from(RUN_DIR).join(format!("{hash:016x}"))
}

/// The parent of [`reachable_state_dir`]s.
pub const RUN_DIR: &str = "/run/neutrino-dhcp";
