//! Many hosts (root): 32 simulated hosts (tests/src/rig.rs) with Linux bridge and unicast VXLAN,
//! one network whose DHCP host0 serves, and one server booted on each other host in turn.
//! Measures:
//! - forwarding latency: from a port going ACTIVE on its host (as the API shows it) to every
//!   peer holding a forwarding entry towards it (its MAC, or a flood entry to its host's
//!   underlay address). The peers are the hosts already holding a port on the network; each
//!   host's VXLAN forwarding table is watched by a `bridge monitor fdb` inside it, each line
//!   timestamped as it arrives;
//! - the agents' idle CPU over 30 s, from /proc/<pid>/stat (utime + stime), after the boots.
//!
//! `cargo bench -p neutrino-tests --bench multihost` (release). NEUTRINO_BENCH_HOSTS changes the
//! number of hosts, NEUTRINO_BENCH_IDLE_SECS the idle window.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use neutrino_tests::kernel::is_root;
use neutrino_tests::rig::{Rig, RigOptions};

/// How long after a port went ACTIVE its peers' entries may take before they count as missing.
const WAIT: Duration = Duration::from_secs(5);

/// (when, MAC, destination) of each fdb entry a host's monitor saw added.
type Seen = Arc<Mutex<Vec<(Instant, String, String)>>>;

fn main() {
    if !is_root() {
        println!("multihost bench: SKIPPED, needs root (namespaces, devices)");
        return;
    }
    let hosts: usize = env("NEUTRINO_BENCH_HOSTS", 32);
    let idle_secs: u64 = env("NEUTRINO_BENCH_IDLE_SECS", 30);
    let started = Instant::now();
    let options = RigOptions {
        dhcp_hosts: vec![0],
        report_interval: 10,
        agent_down_time: 75,
        resync_interval: 300,
        ..RigOptions::linuxbridge(hosts)
    };
    let rig = Rig::start(options).expect("rig");
    println!(
        "multihost bench: {hosts} hosts (Linux bridge, unicast VXLAN) up in {:.1?}",
        started.elapsed()
    );
    let (network, vni) = rig
        .network("bench", "10.110.0.0/16")
        .unwrap_or_else(|e| panic!("network: {e:#}\n{}", rig.logs()));
    let device = format!("vxlan-{vni}");

    // One `bridge monitor fdb` per host, read on a thread of its own.
    let mut monitors = Vec::new();
    let seen: Vec<Seen> = (0..hosts).map(|_| Seen::default()).collect();
    for (host, seen) in rig.hosts.iter().zip(&seen) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &host.netns, "bridge", "monitor", "fdb"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bridge monitor");
        let stdout = child.stdout.take().expect("stdout");
        let seen = seen.clone();
        let device = device.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                // Only entries someone installed: learned ones (from traffic) have no state.
                let installed = line.contains(" permanent") || line.contains(" static");
                if line.starts_with("Deleted")
                    || !installed
                    || !line.contains(&format!("dev {device} "))
                {
                    continue;
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                let dst = words
                    .iter()
                    .position(|w| *w == "dst")
                    .and_then(|i| words.get(i + 1));
                if let (Some(mac), Some(dst)) = (words.first(), dst) {
                    seen.lock()
                        .unwrap()
                        .push((now, mac.to_string(), dst.to_string()));
                }
            }
        });
        monitors.push(child);
    }

    // Boots, one host after another: the DHCP host (host0) and the hosts booted before are
    // the peers of each new port.
    let mut latencies = Vec::new();
    let mut missing = Vec::new();
    let mut to_active = Vec::new();
    let mut ids = Vec::new();
    for k in 1..hosts {
        let requested = Instant::now();
        let id = match rig.boot_request(&format!("b{k}"), &network, k) {
            Ok(id) => id,
            Err(e) => panic!("boot on host{k}: {e:#}\n{}", rig.logs()),
        };
        ids.push((id.clone(), k));
        let (port_active, mac) = wait_port_active(&rig, &id, Duration::from_secs(30))
            .unwrap_or_else(|| {
                panic!(
                    "the port of b{k} on host{k} never went ACTIVE\n{}",
                    rig.logs()
                )
            });
        to_active.push(port_active - requested);
        let target = rig.hosts[k].ip.clone();
        let peers: Vec<usize> = (0..k).collect();
        let mut last = port_active;
        let mut absent = Vec::new();
        let deadline = port_active + WAIT;
        for &p in &peers {
            let found = loop {
                let hit = seen[p]
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, m, d)| *d == target || m.eq_ignore_ascii_case(&mac))
                    .map(|(t, _, _)| *t)
                    .min();
                if hit.is_some() || Instant::now() > deadline {
                    break hit;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            match found {
                Some(t) => last = last.max(t),
                None => absent.push(p),
            }
        }
        if absent.is_empty() {
            latencies.push(last.saturating_duration_since(port_active));
        } else {
            missing.push((k, absent));
        }
    }
    let booted = Instant::now();
    let deadline = booted + Duration::from_secs(rig.options.boot_timeout);
    let active = ids
        .iter()
        .filter(|(id, host)| {
            rig.wait_active(
                id,
                *host,
                deadline.saturating_duration_since(Instant::now()),
            )
            .is_ok()
        })
        .count();
    println!(
        "boots: {} on {} hosts; port ACTIVE after the request {}; {active} of {} servers \
         ACTIVE (leased from host0) {:.1?} after the last boot",
        ids.len(),
        hosts - 1,
        stats(&mut to_active),
        ids.len(),
        booted.elapsed()
    );
    println!(
        "port ACTIVE -> every peer's forwarding entry in place: {} samples, {}",
        latencies.len(),
        stats(&mut latencies)
    );
    if !missing.is_empty() {
        println!(
            "  {} ports had peers without an entry towards them within {WAIT:?}, e.g. \
             host{}'s missing on hosts {:?}",
            missing.len(),
            missing[0].0,
            missing[0].1
        );
    }

    // Idle: nothing changes for idle_secs.
    std::thread::sleep(Duration::from_secs(3));
    let before: BTreeMap<usize, u64> = (0..hosts)
        .filter_map(|i| Some((i, rig.hosts[i].agent_cpu_ticks()?)))
        .collect();
    std::thread::sleep(Duration::from_secs(idle_secs));
    // SAFETY: sysconf reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut percents: Vec<f64> = before
        .iter()
        .filter_map(|(i, t0)| {
            let t1 = rig.hosts[*i].agent_cpu_ticks()?;
            Some((t1 - t0) as f64 / ticks / idle_secs as f64 * 100.0)
        })
        .collect();
    percents.sort_by(f64::total_cmp);
    if percents.is_empty() {
        println!("idle CPU: no agent found");
    } else {
        println!(
            "idle CPU per agent over {idle_secs} s ({} agents): min {:.2} %, median {:.2} %, \
             max {:.2} % of a core; all agents {:.2} %",
            percents.len(),
            percents[0],
            percents[percents.len() / 2],
            percents[percents.len() - 1],
            percents.iter().sum::<f64>()
        );
    }
    for mut m in monitors {
        let _ = m.kill();
        let _ = m.wait();
    }
}

/// Polls the server's port until ACTIVE: when it was first seen so, and its MAC.
fn wait_port_active(rig: &Rig, server: &str, timeout: Duration) -> Option<(Instant, String)> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok((200, body)) = rig.call("GET", &format!("/v2.0/ports?device_id={server}"), None) {
            let port = &body["ports"][0];
            if port["status"] == "ACTIVE" {
                return Some((Instant::now(), port["mac_address"].as_str()?.to_string()));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn stats(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:.1?} / p99 {:.1?} / max {:.1?}",
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    )
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
