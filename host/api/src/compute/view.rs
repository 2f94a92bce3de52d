//! What the compute API shows of a server, in Nova's shapes (API microversion 2.1).

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha224};

use super::request::AVAILABILITY_ZONE;
use neutrino_store::servers::{ACTIVE, Address, BUILD, Server};

/// `self` and `bookmark` links, as Nova gives them (without a project in the path).
pub fn links(base: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{base}/v2.1/servers/{id}")},
        {"rel": "bookmark", "href": format!("{base}/servers/{id}")},
    ])
}

/// The answer to a boot: the security groups as they were asked for (Nova echoes them).
pub fn created(s: &Server, security_groups: &[String], base: &str) -> Value {
    let groups: Vec<Value> = if security_groups.is_empty() {
        vec![json!({"name": "default"})]
    } else {
        security_groups.iter().map(|n| json!({"name": n})).collect()
    };
    json!({
        "id": s.id,
        "links": links(base, &s.id),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": groups,
    })
}

/// An entry of `GET /v2.1/servers`.
pub fn summary(s: &Server, base: &str) -> Value {
    json!({"id": s.id, "name": s.name, "links": links(base, &s.id)})
}

/// `GET /v2.1/servers/{id}` and the entries of `/detail`. The host is an admin's business
/// (Nova's `os_compute_api:os-extended-server-attributes` policy).
pub fn detail(s: &Server, addresses: &[&Address], base: &str, admin: bool) -> Value {
    let mut by_network: Map<String, Value> = Map::new();
    for a in addresses {
        let entry = json!({
            "addr": a.ip_address,
            "version": a.ip_version,
            "OS-EXT-IPS:type": "fixed",
            "OS-EXT-IPS-MAC:mac_addr": a.mac_address,
        });
        match by_network
            .entry(a.network_name.clone())
            .or_insert_with(|| json!([]))
        {
            Value::Array(list) => list.push(entry),
            _ => unreachable!("inserted as an array"),
        }
    }
    let (vm_state, task_state, power_state) = match s.status.as_str() {
        BUILD => ("building", json!("spawning"), 0),
        ACTIVE => ("active", Value::Null, 1),
        _ => ("error", Value::Null, 0),
    };
    let mut v = json!({
        "id": s.id,
        "name": s.name,
        "status": s.status,
        "tenant_id": s.project_id,
        "user_id": s.user_id,
        "created": s.created_at,
        "updated": s.updated_at,
        "hostId": host_id(&s.project_id, &s.host),
        "addresses": by_network,
        "links": links(base, &s.id),
        "metadata": {},
        "image": "",
        "flavor": {},
        "accessIPv4": "",
        "accessIPv6": "",
        "OS-EXT-AZ:availability_zone": AVAILABILITY_ZONE,
        "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:task_state": task_state,
        "OS-EXT-STS:power_state": power_state,
        "OS-DCF:diskConfig": "MANUAL",
    });
    if admin {
        v["OS-EXT-SRV-ATTR:host"] = if s.host.is_empty() {
            Value::Null
        } else {
            json!(s.host)
        };
    }
    if let Some(message) = s.fault.as_deref().filter(|_| s.status == "ERROR") {
        v["fault"] = json!({"code": 500, "created": s.updated_at, "message": message});
    }
    v
}

/// Nova's `hostId`: the host hashed with the project, so projects can tell whether two of
/// their servers share a host without learning its name.
fn host_id(project_id: &str, host: &str) -> String {
    if host.is_empty() {
        return String::new();
    }
    hex::encode(Sha224::digest(format!("{project_id}{host}").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_id_is_nova_s_sha224() {
        assert_eq!(
            host_id("p1", "compute-1"),
            // Python's hashlib.sha224(b"p1compute-1").hexdigest()
            "173383144a628d3b80a2c785f4418dcbace745f5cfb041b84d66a435"
        );
        assert_ne!(host_id("p1", "compute-1"), host_id("p2", "compute-1"));
        assert_eq!(host_id("p1", ""), "");
    }
}
