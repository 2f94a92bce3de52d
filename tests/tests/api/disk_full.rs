//! A full disk under SQLite (issue 10, finding 3): writes answer 503 `ServiceUnavailable` with
//! the reason, reads go on, and writes work again as soon as space is freed, without a restart
//! (a failed COMMIT once left the one writing connection inside a transaction for good: every
//! later write was a 500 "attempted to call begin_with at non-zero transaction depth").

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Reply, TestApi};
use neutrino_tests::kernel::require_root;
use serde_json::{Value, json};

/// A tmpfs of a few megabytes mounted on a temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "neutrino-test",
            ])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(mounted.success(), "mount a tmpfs on {:?}", dir.path());
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: the server's connections may still be closing.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes a file until the disk refuses more: its path.
fn fill(disk: &Path) -> PathBuf {
    let path = disk.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // What a page of a few bytes still fits in.
    let mut byte = [0u8; 1];
    while file.write(&byte).is_ok_and(|n| n == 1) {
        byte[0] = byte[0].wrapping_add(1);
    }
    path
}

async fn post(api: &TestApi, collection: &str, body: Value) -> Reply {
    api.call(Method::POST, &format!("/v2.0/{collection}"), Some(body))
        .await
}

fn network(name: &str) -> Value {
    // A long description, so that the disk fills in few requests.
    json!({"network": {"name": name, "description": "d".repeat(255)}})
}

/// A 503 for the full disk, with the reason: never a 500.
fn assert_full(r: &Reply, what: &str) {
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what} on a full disk: {:?}",
        r.body
    );
    assert_eq!(r.error_type(), "ServiceUnavailable", "{what}");
    assert!(
        r.error_message().contains("disk is full"),
        "{what}: the reason is missing: {:?}",
        r.error_message()
    );
}

/// Port creates at once, so that the port writer takes several in one batch.
async fn ports_at_once(api: &Arc<TestApi>, network_id: &str, n: usize) -> Vec<Reply> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let api = api.clone();
        let body = json!({"port": {"network_id": network_id}});
        set.spawn(async move { post(&api, "ports", body).await });
    }
    set.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_503_and_writes_heal_when_space_is_freed() {
    if !require_root("api::disk_full::a_full_disk_is_a_503_and_writes_heal_when_space_is_freed") {
        return;
    }
    let disk = SmallDisk::new("6m");
    let database = format!("sqlite://{}", disk.path().join("neutrino.db").display());
    let api = Arc::new(TestApi::at(database).await);
    let net = post(&api, "networks", json!({"network": {"name": "ports"}})).await;
    assert_eq!(net.status, StatusCode::CREATED, "{:?}", net.body);
    let network_id = net.body["network"]["id"].as_str().unwrap().to_string();
    let subnet = post(
        &api,
        "subnets",
        json!({"subnet": {"network_id": network_id, "cidr": "10.8.0.0/16", "ip_version": 4}}),
    )
    .await;
    assert_eq!(subnet.status, StatusCode::CREATED, "{:?}", subnet.body);

    let filler = fill(disk.path());
    // Writes until one is refused: the WAL may still have room for a few.
    let mut acknowledged = vec!["ports".to_string()];
    let mut refused = None;
    for i in 0..5000 {
        let name = format!("full-{i}");
        let r = post(&api, "networks", network(&name)).await;
        match r.status {
            StatusCode::CREATED => acknowledged.push(name),
            _ => {
                refused = Some(r);
                break;
            }
        }
    }
    let refused = refused.expect("no write was refused on a full disk");
    assert_full(&refused, "the first refused write");
    // Every path of a write, again and again: each a 503 with the reason, never a 500.
    for i in 0..3 {
        let r = post(&api, "networks", network(&format!("refused-{i}"))).await;
        assert_full(&r, "a network create");
        let r = post(&api, "ports", json!({"port": {"network_id": network_id}})).await;
        assert_full(&r, "a port create");
        for r in ports_at_once(&api, &network_id, 8).await {
            assert_full(&r, "a batch of port creates");
        }
    }
    // Reads go on.
    let listed = api.call(Method::GET, "/v2.0/networks", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);

    // Space back: the very next writes work, on every path, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let r = post(&api, "networks", network("after")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    acknowledged.push("after".into());
    let r = post(&api, "ports", json!({"port": {"network_id": network_id}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    for r in ports_at_once(&api, &network_id, 8).await {
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let r = api
        .call(
            Method::PUT,
            &format!("/v2.0/networks/{network_id}"),
            Some(json!({"network": {"name": "ports-renamed"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    acknowledged[0] = "ports-renamed".into();

    // Nothing acknowledged was lost, nothing refused was written.
    let listed = api
        .call(Method::GET, "/v2.0/networks?fields=name", None)
        .await;
    let mut names: Vec<String> = listed.body["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    acknowledged.sort();
    assert_eq!(names, acknowledged);
    let ports = api.call(Method::GET, "/v2.0/ports?fields=id", None).await;
    assert_eq!(ports.body["ports"].as_array().unwrap().len(), 9);
    drop(api);
}
