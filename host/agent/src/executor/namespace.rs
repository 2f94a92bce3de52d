//! Named network namespaces exactly as `ip netns` makes them: a namespace bind-mounted on
//! `/run/netns/NAME`, so `ip netns exec NAME ...` (dnsmasq, udhcpc, ethtool) works on ours and
//! we work on those it made.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use neutrino_runtime::plugins::validate;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::statfs::{NSFS_MAGIC, statfs};

/// Where `ip netns` keeps its namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// `/run/netns/<name>`, for a name that passes the plan's namespace check (one component,
/// no `/`, not `.` or `..`): never any other file, whatever a plan says.
pub fn path(name: &str) -> Result<PathBuf> {
    if !validate::namespace_name_ok(name) {
        bail!(
            "{} is not a namespace name; only {NETNS_DIR}/<name> is ever opened",
            validate::quote(name)
        );
    }
    Ok(Path::new(NETNS_DIR).join(name))
}

/// True when `/run/netns/NAME` holds a mounted namespace (not a stale, unmounted file).
pub fn exists(name: &str) -> bool {
    path(name)
        .and_then(|p| Ok(statfs(&p)?))
        .is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

/// The namespace's file, for `setns` and for moving links into it.
pub fn open(name: &str) -> Result<File> {
    let path = path(name)?;
    if !exists(name) {
        bail!("network namespace {name} does not exist");
    }
    File::open(path).with_context(|| format!("open network namespace {name}"))
}

/// Creates the namespace unless it exists (`ip netns add`, minus its failure when it exists).
pub async fn ensure(name: &str) -> Result<()> {
    path(name)?;
    if exists(name) {
        return Ok(());
    }
    let name = name.to_string();
    on_new_thread(&name.clone(), move || create(&name)).await
}

/// Deletes the namespace (`ip netns delete`); succeeds when it is already gone. Links in it go
/// when its last user (a process inside, an open file) goes.
pub fn remove(name: &str) -> Result<()> {
    let path = path(name)?;
    match umount2(&path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a stale file); ENOENT: already gone.
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).with_context(|| format!("unmount {}", path.display())),
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The names of the namespaces in `/run/netns`.
pub fn list() -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.with_context(|| format!("read {NETNS_DIR}"))?,
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if exists(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Runs `f` on a new thread that has entered namespace `name`. A thread's namespace is its
/// own: netlink sockets opened and processes spawned there belong to `name`, and the rest of
/// the process is not disturbed. The thread ends with `f`.
pub async fn run_in<T, F>(name: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let file = open(name)?;
    let ns = name.to_string();
    on_new_thread(name, move || {
        setns(&file, CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("enter network namespace {ns}"))?;
        f()
    })
    .await
}

async fn on_new_thread<T, F>(name: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("netns {name}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .context("spawn a namespace thread")?;
    rx.await.context("namespace thread died")?
}

/// `ip netns add`: a shared `/run/netns` (so mounts made later reach mount namespaces made
/// by `ip netns exec`), an empty file, and this thread's new namespace bind-mounted on it.
/// Runs on a thread of its own, which leaves with the new namespace.
fn create(name: &str) -> Result<()> {
    share_netns_dir()?;
    let path = path(name)?;
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o0)
        .open(&path)
    {
        Ok(_) => {}
        // A stale file from an interrupted create or a lazy unmount: take it over.
        Err(e) if e.kind() == ErrorKind::AlreadyExists && !exists(name) => {}
        Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
    }
    let made = unshare(CloneFlags::CLONE_NEWNET)
        .context("unshare the network namespace")
        .and_then(|()| {
            mount(
                Some("/proc/thread-self/ns/net"),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .with_context(|| format!("bind-mount the new namespace on {}", path.display()))
        });
    if made.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    made
}

fn share_netns_dir() -> Result<()> {
    std::fs::create_dir_all(NETNS_DIR).with_context(|| format!("create {NETNS_DIR}"))?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: make it one (a bind mount on itself), then share it.
        Err(Errno::EINVAL) => {
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .with_context(|| format!("bind-mount {NETNS_DIR} on itself"))?;
            shared().with_context(|| format!("make {NETNS_DIR} a shared mount"))
        }
        Err(e) => Err(e).with_context(|| format!("make {NETNS_DIR} a shared mount")),
    }
}
