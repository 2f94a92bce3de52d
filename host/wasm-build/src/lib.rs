//! Used from build scripts to build driver crates of this workspace as wasm32-wasip2
//! components, so that a plain `cargo build` / `cargo test` needs no knowledge of the second
//! target.
//!
//! Each build runs a nested `cargo build --release --target wasm32-wasip2` in its own target
//! directory (`target/wasm-components`), with a clean environment so that the outer build's
//! flags and wrappers (clippy, coverage, ...) do not leak into the guest build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";

/// One component to build: a package, optional features, and the file name to give it.
pub struct Component<'a> {
    pub package: &'a str,
    pub features: &'a [&'a str],
    pub output_name: &'a str,
}

/// The workspace root, from a build script's `CARGO_MANIFEST_DIR` and its depth below the root.
pub fn workspace_root(depth: usize) -> PathBuf {
    let mut dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    for _ in 0..depth {
        dir.pop();
    }
    dir
}

/// Builds every component and copies it to `out_dir/<output_name>.wasm`. Panics with the
/// nested cargo's output on failure, which is what a build script should do.
pub fn build(root: &Path, out_dir: &Path, components: &[Component]) -> Vec<PathBuf> {
    for dir in ["wit", "sdk"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    ensure_target_installed();
    let target_dir = root.join("target").join("wasm-components");
    components
        .iter()
        .map(|c| {
            let status = cargo(root)
                .args([
                    "build",
                    "--release",
                    "--target",
                    TARGET,
                    "--package",
                    c.package,
                ])
                .args(if c.features.is_empty() {
                    vec![]
                } else {
                    vec!["--features".to_string(), c.features.join(",")]
                })
                .arg("--target-dir")
                .arg(&target_dir)
                .status()
                .unwrap_or_else(|e| panic!("cannot run cargo for {}: {e}", c.package));
            assert!(status.success(), "building component {} failed", c.package);
            let built = target_dir
                .join(TARGET)
                .join("release")
                .join(format!("{}.wasm", c.package.replace('-', "_")));
            let dest = out_dir.join(format!("{}.wasm", c.output_name));
            std::fs::copy(&built, &dest)
                .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", built.display(), dest.display()));
            dest
        })
        .collect()
}

/// Marks a crate directory so the build script reruns when it changes.
pub fn watch(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
}

fn cargo(root: &Path) -> Command {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).env_clear();
    for key in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "TMPDIR",
        "USER",
    ] {
        if let Ok(v) = env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd
}

/// `rustup target add` when the wasm target is missing (a no-op when it is there).
fn ensure_target_installed() {
    let sysroot = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot
        .map(|s| s.join("lib/rustlib").join(TARGET).exists())
        .unwrap_or(false);
    if !installed {
        let _ = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status();
    }
}
