//! Bulk port creates at scale, on SQLite and PostgreSQL: a generated MAC that collides is
//! regenerated for its port alone (the collisions are made certain with a seeded MAC generator
//! whose first MACs are already on the network), concurrent bulk creates log no internal error,
//! a caller's own MAC in use fails the whole bulk and writes nothing, and multi-row statements
//! are sized under each backend's limit on parameters.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use neutrino::ipam::{MacGenerator, eui64, normalize_mac};
use neutrino::store::{self, Backend};
use neutrino_tests::api::{Db, Reply, TestApi};
use neutrino_tests::for_both_databases;
use serde_json::{Value, json};
use tracing_subscriber::util::SubscriberInitExt as _;

const SEED: u64 = 20_261_201;
const SLAAC: &str = "fd00:1::/64";

/// A server whose generated MACs are [`predicted`]'s, in that order.
async fn seeded_api(db: Db) -> TestApi {
    let api = TestApi::with(db, |c| c.mac_generator = MacGenerator::seeded(SEED)).await;
    api.unlimited_quotas().await;
    api
}

/// The first `n` MACs a server of [`seeded_api`] generates.
fn predicted(n: usize) -> Vec<String> {
    let generator = MacGenerator::seeded(SEED);
    (0..n).map(|_| generator.next_mac().0).collect()
}

async fn created(api: &TestApi, collection: &str, resource: &str, body: Value) -> Value {
    let r = api
        .call(
            Method::POST,
            &format!("/v2.0/{collection}"),
            Some(json!({ resource: body })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body[resource].clone()
}

/// A network with a /16 IPv4 subnet (no DHCP, so no DHCP port) and a SLAAC subnet, whose
/// addresses are made from the MAC.
async fn network(api: &TestApi) -> String {
    let net = created(api, "networks", "network", json!({"name": "bulk"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    created(
        api,
        "subnets",
        "subnet",
        json!({"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/16", "enable_dhcp": false}),
    )
    .await;
    created(
        api,
        "subnets",
        "subnet",
        json!({"network_id": net, "ip_version": 6, "cidr": SLAAC, "enable_dhcp": false,
               "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}),
    )
    .await;
    net
}

/// `POST /v2.0/ports` with `{"ports": bodies}`.
async fn bulk(api: &TestApi, bodies: Vec<Value>) -> Reply {
    api.call(
        Method::POST,
        "/v2.0/ports",
        Some(json!({ "ports": bodies })),
    )
    .await
}

/// `n` bodies for ports on `net` named `{prefix}-{i}`.
fn bodies(net: &str, prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"network_id": net, "name": format!("{prefix}-{i}")}))
        .collect()
}

/// Ports on `net` holding exactly `macs`, given by the caller (which takes nothing from the
/// generator).
async fn occupy(api: &TestApi, net: &str, macs: &[String]) {
    let given = macs
        .iter()
        .enumerate()
        .map(|(i, mac)| json!({"network_id": net, "name": format!("seed-{i}"), "mac_address": mac}))
        .collect();
    let r = bulk(api, given).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

async fn ports_on(api: &TestApi, net: &str) -> Vec<Value> {
    let r = api
        .call(Method::GET, &format!("/v2.0/ports?network_id={net}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["ports"].as_array().unwrap().clone()
}

fn mac_of(port: &Value) -> String {
    port["mac_address"].as_str().unwrap().to_string()
}

fn address_of(port: &Value, v6: bool) -> IpAddr {
    port["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["ip_address"].as_str()?.parse::<IpAddr>().ok())
        .find(|ip| ip.is_ipv6() == v6)
        .unwrap_or_else(|| panic!("no address of that family: {port}"))
}

/// Every port has its own MAC and the SLAAC address made from that MAC (not from one it had
/// before a regeneration).
fn assert_distinct_macs_and_their_addresses(ports: &[Value]) {
    let macs: HashSet<String> = ports.iter().map(mac_of).collect();
    assert_eq!(macs.len(), ports.len(), "a MAC is held twice");
    for p in ports {
        let (_, bytes) = normalize_mac(&mac_of(p)).unwrap();
        assert_eq!(
            address_of(p, true),
            eui64(&SLAAC.parse().unwrap(), bytes),
            "{p}"
        );
    }
}

for_both_databases!(
    generated_macs_that_collide_are_regenerated_for_their_port_alone,
    |db| async move {
        let api = seeded_api(db).await;
        let net = network(&api).await;
        // The network already holds the first four MACs the generator will give (so the whole
        // request failed on its first port in each of its four tries), one in 25 of the rest of
        // the first thousand, and the first two that come after those.
        let sequence = predicted(1100);
        let taken: Vec<String> = (0..1002)
            .filter(|i| *i < 4 || i % 25 == 0 || *i >= 1000)
            .map(|i| sequence[i].clone())
            .collect();
        occupy(&api, &net, &taken).await;

        let r = bulk(&api, bodies(&net, "new", 1000)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let new = r.body["ports"].as_array().unwrap();
        assert_eq!(new.len(), 1000);
        let taken: HashSet<&String> = taken.iter().collect();
        let generated: HashSet<&String> = sequence.iter().collect();
        for p in new {
            let mac = mac_of(p);
            assert!(!taken.contains(&mac), "{mac} was already on the network");
            assert!(generated.contains(&mac), "{mac} is not from the generator");
        }
        let all = ports_on(&api, &net).await;
        assert_eq!(all.len(), 1000 + taken.len());
        assert_distinct_macs_and_their_addresses(&all);
    }
);

/// Log lines (WARN and above) of everything that runs on this thread while it is held: the
/// test's runtime is single-threaded, so that is the server's tasks too.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start() -> (Captured, impl Sized) {
        let logs = Captured::default();
        let writer = logs.clone();
        let guard = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
            .finish()
            .set_default();
        (logs, guard)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

for_both_databases!(
    concurrent_bulk_creates_log_no_internal_error,
    |db| async move {
        let (logs, _guard) = Captured::start();
        let api = Arc::new(seeded_api(db).await);
        let net = network(&api).await;
        // Collisions certain here too: the first 20 MACs, and one in 50 of the next 4,000.
        let sequence = predicted(4020);
        let taken: Vec<String> = (0..4020)
            .filter(|i| *i < 20 || i % 50 == 0)
            .map(|i| sequence[i].clone())
            .collect();
        occupy(&api, &net, &taken).await;

        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let (api, net) = (api.clone(), net.clone());
                tokio::spawn(async move { bulk(&api, bodies(&net, &format!("t{t}"), 1000)).await })
            })
            .collect();
        for task in tasks {
            let r = task.await.unwrap();
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            assert_eq!(r.body["ports"].as_array().unwrap().len(), 1000);
        }
        let all = ports_on(&api, &net).await;
        assert_eq!(all.len(), 4000 + taken.len());
        assert_distinct_macs_and_their_addresses(&all);
        let text = logs.text();
        assert!(
            !text.contains("ERROR") && !text.contains("internal error"),
            "the server logged errors:\n{text}"
        );
    }
);

for_both_databases!(a_given_mac_in_use_fails_the_whole_bulk, |db| async move {
    let api = Arc::new(TestApi::new(db).await);
    api.unlimited_quotas().await;
    let net = network(&api).await;
    let first = created(&api, "ports", "port", json!({"network_id": net})).await;
    let in_use = mac_of(&first);

    // A bulk whose 501st port asks for that MAC, next to a good bulk written at the same time
    // (the writer may group them in one transaction: one's refusal is not the other's).
    let mut bad = bodies(&net, "bad", 1000);
    bad[500]["mac_address"] = json!(in_use.to_uppercase());
    let good = bodies(&net, "good", 1000);
    let (bad, good) = {
        let (a, b) = (api.clone(), api.clone());
        let bad = tokio::spawn(async move { bulk(&a, bad).await });
        let good = tokio::spawn(async move { bulk(&b, good).await });
        (bad.await.unwrap(), good.await.unwrap())
    };
    assert_eq!(bad.status, StatusCode::CONFLICT, "{}", bad.body);
    assert_eq!(bad.error_type(), "MacAddressInUse");
    assert_eq!(
        bad.error_message(),
        format!(
            "Unable to complete operation for network {net}. The mac address {in_use} is in use."
        )
    );
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.body);

    // Nothing of the refused bulk was written: no port, no address held.
    let all = ports_on(&api, &net).await;
    assert_eq!(all.len(), 1001);
    assert!(
        all.iter()
            .all(|p| !p["name"].as_str().unwrap().starts_with("bad"))
    );
    // (Written in slices, the refused bulk held addresses for a while, so the good bulk's
    // are not the lowest; what it held is given back.)
    let held: HashSet<IpAddr> = all.iter().map(|p| address_of(p, false)).collect();
    assert_eq!(held.len(), 1001);
    let fixed_ips: usize = all
        .iter()
        .map(|p| p["fixed_ips"].as_array().unwrap().len())
        .sum();
    let allocations: i64 = {
        let mut conn = api.state.store.read_conn().await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM ip_allocations")
            .fetch_one(&mut *conn)
            .await
            .unwrap()
    };
    assert_eq!(
        allocations as usize, fixed_ips,
        "the refused bulk kept addresses"
    );
    let lowest_free = created(&api, "ports", "port", json!({"network_id": net})).await;
    let lowest_held = held.iter().min().unwrap();
    assert!(
        address_of(&lowest_free, false) < *held.iter().max().unwrap()
            && address_of(&lowest_free, false) > *lowest_held,
        "the refused bulk's addresses are free again: {lowest_free}"
    );

    // The same MAC twice in one bulk, both given: refused too, and nothing written.
    let mut twice = bodies(&net, "twice", 3);
    twice[0]["mac_address"] = json!("fa:16:3e:aa:bb:cc");
    twice[2]["mac_address"] = json!("fa:16:3e:aa:bb:cc");
    let r = bulk(&api, twice).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.error_type(), "MacAddressInUse");
    assert_eq!(ports_on(&api, &net).await.len(), 1002);
});

for_both_databases!(
    multi_row_statements_stay_under_the_parameter_limit,
    |db| async move {
        let api = TestApi::new(db).await;
        let store = &api.state.store;
        let mut tx = store.begin_write().await.unwrap();
        let columns = 7;
        sqlx::query(
            "CREATE TABLE bulk_limit (a TEXT, b TEXT, c TEXT, d TEXT, e TEXT, f TEXT, g BIGINT)",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        let backend = Backend::of(&tx);
        assert_eq!(backend, store.backend);
        let per_statement = backend.rows_per_statement(columns, 0);
        let rows: Vec<i64> = (0..2 * per_statement as i64 + 1).collect();
        let statement = |values: &str| format!("INSERT INTO bulk_limit VALUES {values}");
        let inserted = store::insert_rows(&mut tx, &rows, columns, statement, |q, n| {
            q.bind("a")
                .bind("b")
                .bind("c")
                .bind("d")
                .bind("e")
                .bind("f")
                .bind(*n)
        })
        .await
        .unwrap();
        assert_eq!(inserted, rows.len() as u64);
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bulk_limit")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(count, rows.len() as i64);
        // The limit is real: one statement of the rows that just pass it fails.
        let over = backend.max_parameters() / columns + 1;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement(&store::value_rows(
            over, columns,
        ))));
        for n in 0..over as i64 {
            query = query
                .bind("a")
                .bind("b")
                .bind("c")
                .bind("d")
                .bind("e")
                .bind("f")
                .bind(n);
        }
        assert!(query.execute(&mut *tx).await.is_err(), "{backend:?}");
    }
);
