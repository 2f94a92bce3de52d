//! Contract versions and the imports a driver may have.

use semver::{Version, VersionReq};

/// The package every driver contract lives in.
pub const PACKAGE: &str = "neutrino:driver";
/// The interface a driver exports.
pub const DRIVER_INTERFACE: &str = "neutrino:driver/driver";
/// The contract versions this host runs: minor versions only add, so any 0.1.x. The union of
/// the ranges in [`ADAPTERS`], shown in errors.
pub const SUPPORTED: &str = ">=0.1.0, <0.2.0";

pub fn supported() -> VersionReq {
    VersionReq::parse(SUPPORTED).expect("valid requirement")
}

/// The adapter that runs components of one contract version: the frozen snapshot's bindings
/// and their conversions to and from the model (`plugins::v0_1`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `wit/since_v0.1.0`, for every 0.1.x component.
    V0_1,
}

/// Which adapter runs which versions. A new contract version adds a line here, a snapshot in
/// `wit/since_v*/` and a module beside `plugins::v0_1`; the lines already here never change.
pub const ADAPTERS: &[(&str, Adapter)] = &[(">=0.1.0, <0.2.0", Adapter::V0_1)];

/// The adapter for a component exporting contract `version`, if this host runs it.
pub fn adapter_for(version: &Version) -> Option<Adapter> {
    ADAPTERS.iter().find_map(|(range, adapter)| {
        VersionReq::parse(range)
            .expect("valid requirement")
            .matches(version)
            .then_some(*adapter)
    })
}

/// Interfaces a driver may import, without versions. Ours (types, log, config), and the few
/// `wasi:cli`/`wasi:io` interfaces Rust's std references for stdio even when a driver does no
/// I/O; those get sandboxed implementations (no environment, no stdin, output to the log).
/// Nothing that reaches files, sockets, clocks or randomness is on the list.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "neutrino:driver/types",
    "neutrino:driver/log",
    "neutrino:driver/config",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// Splits `ns:pkg/iface@1.2.3` into (`ns:pkg/iface`, Some(version)).
pub fn split_versioned(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((base, version)) => (base, Some(version)),
        None => (name, None),
    }
}

/// Whether an import name is on the allowed list; our own interfaces must also be of a
/// supported contract version.
pub fn import_allowed(name: &str) -> bool {
    let (base, version) = split_versioned(name);
    if !ALLOWED_IMPORTS.contains(&base) {
        return false;
    }
    if base.starts_with(PACKAGE) {
        return version
            .and_then(|v| Version::parse(v).ok())
            .is_some_and(|v| adapter_for(&v).is_some());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_checked_by_name_and_version() {
        assert!(import_allowed("neutrino:driver/log@0.1.0"));
        assert!(import_allowed("neutrino:driver/config@0.1.7"));
        assert!(!import_allowed("neutrino:driver/log@0.2.0"));
        assert!(!import_allowed("neutrino:driver/log"));
        assert!(import_allowed("wasi:cli/stderr@0.2.6"));
        assert!(!import_allowed("wasi:clocks/wall-clock@0.2.6"));
        assert!(!import_allowed("wasi:filesystem/preopens@0.2.6"));
        assert!(!import_allowed("wasi:random/insecure-seed@0.2.6"));
        assert!(!import_allowed("wasi:sockets/tcp@0.2.6"));
    }

    #[test]
    fn versions_pick_their_adapter() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(adapter_for(&v("0.1.0")), Some(Adapter::V0_1));
        assert_eq!(adapter_for(&v("0.1.9")), Some(Adapter::V0_1));
        assert_eq!(adapter_for(&v("0.2.0")), None);
        assert_eq!(adapter_for(&v("0.0.9")), None);
        assert_eq!(adapter_for(&v("1.0.0")), None);
        // SUPPORTED, shown in errors, is what the adapters cover.
        for s in [
            "0.0.1", "0.1.0", "0.1.5", "0.2.0", "0.3.1", "1.0.0", "9.0.0",
        ] {
            assert_eq!(
                supported().matches(&v(s)),
                adapter_for(&v(s)).is_some(),
                "{s}"
            );
        }
    }
}
