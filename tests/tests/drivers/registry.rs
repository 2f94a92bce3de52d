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

// ---- Issue 11: every configured driver loaded and checked at start ----

/// What `tracing` wrote while `f` ran.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::util::SubscriberInitExt as _;
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer(Arc::default());
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let answer = {
        let _guard = subscriber.set_default();
        f()
    };
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (answer, text)
}

#[test]
fn a_plugin_file_replacing_a_bundled_driver_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ovs-hybrid.wasm");
    std::fs::write(&file, bundled::get("ovs-hybrid").unwrap()).unwrap();
    let config = DriversConfig {
        mechanism_drivers: vec!["ovs-hybrid".into(), "linuxbridge".into()],
        plugin_dir: Some(dir.path().to_path_buf()),
        ..DriversConfig::default()
    };
    let (registry, log) = logged(|| Registry::load(&config));
    let registry = registry.unwrap();
    assert_eq!(registry.drivers()[0].source(), file.display().to_string());
    assert!(
        log.contains(&format!(
            "{} replaces the bundled driver of that name",
            file.display()
        )),
        "{log}"
    );
    assert!(!log.contains("linuxbridge"), "{log}");
}

#[test]
fn a_driver_configured_twice_is_refused() {
    let config = DriversConfig {
        mechanism_drivers: vec!["ovs-hybrid".into(), "ovs-hybrid".into()],
        ..DriversConfig::default()
    };
    let err = Registry::load(&config).err().unwrap().to_string();
    assert!(
        err.contains("the name of another configured driver"),
        "{err}"
    );
}

/// `serve` refuses to start with a refused driver, naming its file and the reason, instead of
/// starting healthy and answering 500 to every bind.
#[tokio::test]
async fn serve_refuses_to_start_with_a_refused_driver() {
    let plugins = component("wrong-version").parent().unwrap().to_path_buf();
    for (driver, reason) in [
        ("wrong-version", "contract version"),
        ("misbehaving-clock", "imports"),
        ("no-such-driver", "no no-such-driver.wasm"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let options = neutrino::server::ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: None,
            data_dir: data.path().to_path_buf(),
            agent_token_file: None,
            shared_agent_token: false,
            api: neutrino::api::ApiConfig {
                drivers: DriversConfig {
                    mechanism_drivers: vec!["ovs-hybrid".into(), driver.into()],
                    plugin_dir: Some(plugins.clone()),
                    ..DriversConfig::default()
                },
                ..Default::default()
            },
        };
        let err = match neutrino::server::bind(&options).await {
            Ok(_) => panic!("{driver}: serve started"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(reason), "{driver}: {err}");
        if driver != "no-such-driver" {
            assert!(err.contains(&format!("{driver}.wasm")), "{err}");
        }
    }
}
