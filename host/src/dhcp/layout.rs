//! The files of one network's dnsmasq, in `<state_dir>/dhcp/<network id>/`:
//!
//! - `host/<port id>`, `addn_hosts/<port id>`, `port_opts/<port id>`: one port each;
//! - `opts` (the subnets' options), `leases` (dnsmasq's, seeded at first start), `interface`
//!   (the device dnsmasq serves), `pid`, `dnsmasq.log` (its standard error).
//!
//! Files are replaced by rename, through a temporary name beginning with a dot, which dnsmasq's
//! inotify reader ignores, so it never reads half a file.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Result, invalid, io_error};

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
    pub fn hosts(&self) -> PathBuf {
        self.root.join("host")
    }
    pub fn names(&self) -> PathBuf {
        self.root.join("addn_hosts")
    }
    pub fn port_opts(&self) -> PathBuf {
        self.root.join("port_opts")
    }
    pub fn opts(&self) -> PathBuf {
        self.root.join("opts")
    }
    pub fn leases(&self) -> PathBuf {
        self.root.join("leases")
    }
    pub fn interface(&self) -> PathBuf {
        self.root.join("interface")
    }
    pub fn pid(&self) -> PathBuf {
        self.root.join("pid")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("dnsmasq.log")
    }

    /// The directories of one port file each.
    pub fn port_dirs(&self) -> [PathBuf; 3] {
        [self.hosts(), self.names(), self.port_opts()]
    }

    /// Creates the directories, readable by dnsmasq once it has dropped its privileges.
    pub fn create(&self) -> Result<()> {
        for dir in [self.root.clone()].into_iter().chain(self.port_dirs()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&dir)
                .map_err(io_error(&dir))?;
        }
        Ok(())
    }

    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io_error(&self.root)(e)),
            _ => Ok(()),
        }
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
