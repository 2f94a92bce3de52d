//! Loading drivers in the configured order from a plugin directory, with the precompiled cache.

use neutrino::plugins::registry::{DriversConfig, Registry};
use neutrino::plugins::{DriverSettings, Limits, Runtime, bundled};
use neutrino_tests::component;

#[test]
fn plugin_directory_comes_first_then_bundled_drivers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(component("macvlan"), dir.path().join("macvlan.wasm")).unwrap();
    let config: DriversConfig = toml::from_str(&format!(
        r#"
        mechanism_drivers = ["macvlan", "linuxbridge"]
        plugin_dir = "{}"
        [drivers.linuxbridge.config]
        vxlan_group = "239.1.1.1"
        "#,
        dir.path().display()
    ))
    .unwrap();
    let registry = Registry::load(&config).unwrap();
    let names: Vec<&str> = registry.drivers().iter().map(|d| d.name()).collect();
    assert_eq!(names, ["macvlan", "linuxbridge"]);
    assert!(registry.drivers()[0].source().ends_with("macvlan.wasm"));
    assert_eq!(registry.drivers()[1].source(), "bundled:linuxbridge");
}

#[test]
fn a_file_that_describes_itself_otherwise_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(component("macvlan"), dir.path().join("ovs-hybrid.wasm")).unwrap();
    let config = DriversConfig {
        mechanism_drivers: vec!["ovs-hybrid".into()],
        plugin_dir: Some(dir.path().to_path_buf()),
        ..DriversConfig::default()
    };
    let err = Registry::load(&config).err().unwrap().to_string();
    assert!(err.contains("ovs-hybrid.wasm"), "{err}");
    assert!(err.contains("describes itself as \"macvlan\""), "{err}");
}

#[test]
fn precompiled_components_are_cached_and_reused() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    let bytes = bundled::get("ovs-hybrid").unwrap();
    runtime
        .load_bytes("ovs-hybrid", bytes, DriverSettings::default())
        .unwrap();
    let cached: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].extension().unwrap(), "cwasm");
    let modified = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    let again = runtime
        .load_bytes("ovs-hybrid", bytes, DriverSettings::default())
        .unwrap();
    assert_eq!(again.name(), "ovs-hybrid");
    assert_eq!(
        std::fs::metadata(&cached[0]).unwrap().modified().unwrap(),
        modified,
        "not rewritten"
    );
}
