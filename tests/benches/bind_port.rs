//! `cargo bench -p neutrino-tests --bench bind_port`
//!
//! bind-port per driver: a fresh instance per call (what the server does), one warm instance
//! reused, and the same driver code compiled natively; plus loading a component from the
//! precompiled cache. Prints p50/p99 per line.

use std::hint::black_box;
use std::time::{Duration, Instant};

use neutrino::conformance::{AgentFixture, fixtures};
use neutrino::plugins::{DriverSettings, Limits, Runtime, bundled};
use neutrino_model::{NetworkType, VnicType};
use neutrino_sdk::Driver as _;
use neutrino_sdk::testing as sdk;

const FRESH: usize = 3_000;
const WARM: usize = 30_000;
const NATIVE: usize = 30_000;
const LOADS: usize = 50;

struct Stats {
    p50: Duration,
    p99: Duration,
}

fn measure(n: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..n / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    Stats {
        p50: samples[n / 2],
        p99: samples[n * 99 / 100],
    }
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    // Calls are recorded as the server records them (its Prometheus recorder installed), so
    // the figures include the metrics of every call.
    neutrino::api::observe::prometheus();
    type NativeCall = fn(&sdk_ctx::Ctx);
    let cases: [(&str, &str, NetworkType, NativeCall); 3] = [
        ("flatdhcp", "Flat DHCP agent", NetworkType::Flat, |c| {
            black_box(neutrino_driver_flatdhcp::FlatDhcp::bind_port(c.clone()).unwrap());
        }),
        ("ovs-hybrid", "Open vSwitch agent", NetworkType::Vlan, |c| {
            black_box(neutrino_driver_ovs_hybrid::OvsHybrid::bind_port(c.clone()).unwrap());
        }),
        (
            "linuxbridge",
            "Linux bridge agent",
            NetworkType::Vxlan,
            |c| {
                black_box(neutrino_driver_linuxbridge::LinuxBridge::bind_port(c.clone()).unwrap());
            },
        ),
    ];
    let runtime = Runtime::new(Limits::default(), None).expect("runtime");
    let fx = AgentFixture::default();
    println!("bind-port, p50 / p99 ({FRESH} fresh, {WARM} warm, {NATIVE} native calls)");
    println!(
        "{:<12} {:>22} {:>22} {:>22} {:>12}",
        "driver", "wasm fresh instance", "wasm warm instance", "native", "warm/native"
    );
    for (name, agent_type, nt, native_call) in cases {
        let driver = runtime
            .load_bytes(name, bundled::get(name).unwrap(), DriverSettings::default())
            .expect("load");
        let ctx = fixtures::bind_context(
            fixtures::port(VnicType::Normal),
            fx.network(nt),
            fx.live(agent_type),
        );
        let fresh = measure(FRESH, || {
            black_box(driver.bind_port(&ctx).expect("bind"));
        });
        let mut session = driver.session().expect("session");
        let warm = measure(WARM, || {
            black_box(session.bind_port(&ctx).expect("bind"));
        });
        let native_ctx = sdk::bind_context(
            sdk::port(),
            sdk::network(sdk_ctx::nt(nt)),
            sdk::live_agents(agent_type),
        );
        let native = measure(NATIVE, || native_call(&native_ctx));
        println!(
            "{:<12} {:>22} {:>22} {:>22} {:>11.1}x",
            name,
            format!("{} / {}", us(fresh.p50), us(fresh.p99)),
            format!("{} / {}", us(warm.p50), us(warm.p99)),
            format!("{} / {}", us(native.p50), us(native.p99)),
            warm.p50.as_secs_f64() / native.p50.as_secs_f64()
        );
    }

    let cache = tempfile::tempdir().expect("tempdir");
    let cached =
        Runtime::new(Limits::default(), Some(cache.path().to_path_buf())).expect("runtime");
    println!();
    println!("component load (compile + checks + describe), p50 / p99 over {LOADS} loads");
    for (name, bytes) in bundled::BUNDLED {
        let t = Instant::now();
        cached
            .load_bytes(name, bytes, DriverSettings::default())
            .expect("first load");
        let first = t.elapsed();
        let again = measure(LOADS, || {
            black_box(
                cached
                    .load_bytes(name, bytes, DriverSettings::default())
                    .expect("load"),
            );
        });
        println!(
            "{:<12} first (compiles, fills cache) {:>10.1} ms   from precompiled cache {} / {}",
            name,
            first.as_secs_f64() * 1e3,
            us(again.p50),
            us(again.p99)
        );
    }
}

/// The SDK's types are the guest's; map the host's network type onto them.
mod sdk_ctx {
    use neutrino_model::NetworkType as H;
    use neutrino_sdk::types::NetworkType as G;

    pub type Ctx = neutrino_sdk::types::BindContext;

    pub fn nt(t: H) -> G {
        match t {
            H::Flat => G::Flat,
            H::Vlan => G::Vlan,
            H::Vxlan => G::Vxlan,
            H::Gre => G::Gre,
            H::Geneve => G::Geneve,
            H::Local => G::Local,
        }
    }
}
