//! The body of `POST /v2.1/servers`, checked as Nova's schema checks it (the parts that mean
//! something here), with Nova's error texts where it has them.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::error::{NovaError, NovaResult};
pub use neutrino_core::compute::network_choice::RequestedNetworks;
pub use neutrino_core::compute::nics::NicRequest;

/// The only availability zone (Nova's default `nova`).
pub const AVAILABILITY_ZONE: &str = "nova";

/// Keys of `server` that are accepted. Image, flavor, key pair, user data and config drive are
/// accepted and ignored: an instance here is a network namespace, it has none of them.
const SERVER_KEYS: &[&str] = &[
    "name",
    "networks",
    "availability_zone",
    "imageRef",
    "flavorRef",
    "key_name",
    "user_data",
    "config_drive",
    "min_count",
    "max_count",
    "security_groups",
];

/// A boot request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRequest {
    pub name: String,
    /// One NIC each, in order; or `auto` / `none`.
    pub networks: RequestedNetworks,
    /// `availability_zone: "nova:<host>"`.
    pub forced_host: Option<String>,
    /// `security_groups: [{"name": ...}]`: names or ids of the project's groups, in order
    /// (none: the project's `default`).
    pub security_groups: Vec<String>,
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> NovaError {
    NovaError::bad_request(format!(
        "Invalid input for field/attribute {field}. {reason}"
    ))
}

/// Parses `{"server": {...}}`.
pub fn parse(bytes: &[u8]) -> NovaResult<BootRequest> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|_| NovaError::bad_request("Malformed request body"))?;
    // PostgreSQL text cannot hold U+0000: refused on both backends alike.
    if crate::body::contains_nul(&body) {
        return Err(NovaError::bad_request(
            "Invalid input: the request body must not contain a NUL character (U+0000).",
        ));
    }
    let Some(Value::Object(server)) = body.get("server") else {
        return Err(invalid("server", "'server' is a required property"));
    };
    if let Some(key) = server.keys().find(|k| !SERVER_KEYS.contains(&k.as_str())) {
        return Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute server. Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    let name = match server.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => n.clone(),
        Some(other) => {
            return Err(invalid(
                "name",
                format!("Value: {other}. A name of 1 to 255 characters is required"),
            ));
        }
        None => return Err(invalid("name", "'name' is a required property")),
    };
    for count in ["min_count", "max_count"] {
        match server.get(count) {
            None => {}
            Some(v) if v.as_i64() == Some(1) || v.as_str() == Some("1") => {}
            Some(v) => {
                return Err(invalid(
                    count,
                    format!("Value: {v}. Only one server per request is supported"),
                ));
            }
        }
    }
    Ok(BootRequest {
        name,
        networks: networks(server)?,
        forced_host: forced_host(server)?,
        security_groups: security_groups(server)?,
    })
}

/// Nova's schema: a list of `{"name": <1 to 255 characters>}`.
fn security_groups(server: &Map<String, Value>) -> NovaResult<Vec<String>> {
    let items = match server.get("security_groups") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(invalid(
                "security_groups",
                format!("Value: {other}. Not a list"),
            ));
        }
    };
    items
        .iter()
        .map(|item| match item {
            Value::Object(m) if m.keys().any(|k| k != "name") => Err(invalid(
                "security_groups",
                "Additional properties are not allowed",
            )),
            Value::Object(m) => match m.get("name") {
                Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => {
                    Ok(n.trim().to_string())
                }
                other => Err(invalid(
                    "security_groups/name",
                    format!(
                        "Value: {}. A name of 1 to 255 characters is required",
                        other.cloned().unwrap_or(Value::Null)
                    ),
                )),
            },
            other => Err(invalid(
                "security_groups",
                format!("Value: {other}. Not an object"),
            )),
        })
        .collect()
}

fn networks(server: &Map<String, Value>) -> NovaResult<RequestedNetworks> {
    let items = match server.get("networks") {
        Some(Value::Array(items)) => items,
        Some(Value::String(s)) if s == "auto" => return Ok(RequestedNetworks::Auto),
        Some(Value::String(s)) if s == "none" => return Ok(RequestedNetworks::None),
        Some(other) => {
            return Err(invalid(
                "networks",
                format!("Value: {other}. A list, 'auto' or 'none' is required"),
            ));
        }
        None => return Err(invalid("networks", "'networks' is a required property")),
    };
    Ok(RequestedNetworks::Listed(
        items.iter().map(nic).collect::<NovaResult<_>>()?,
    ))
}

fn nic(item: &Value) -> NovaResult<NicRequest> {
    let Value::Object(m) = item else {
        return Err(invalid("networks", format!("Value: {item}. Not an object")));
    };
    if let Some(key) = m
        .keys()
        .find(|k| !["uuid", "port", "fixed_ip", "tag"].contains(&k.as_str()))
    {
        return Err(invalid(
            "networks",
            format!("Additional properties are not allowed ('{key}' was unexpected)"),
        ));
    }
    let text = |key: &str| -> NovaResult<Option<String>> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(other) => Err(invalid(
                &format!("networks/{key}"),
                format!("Value: {other}. Not a valid value"),
            )),
        }
    };
    let fixed_ip = text("fixed_ip")?
        .map(|ip| {
            ip.parse::<IpAddr>()
                .map_err(|_| NovaError::bad_request(format!("Invalid fixed IP address ({ip})")))
        })
        .transpose()?;
    match (text("port")?, text("uuid")?) {
        (Some(_), _) if fixed_ip.is_some() => Err(NovaError::bad_request(
            "A port's addresses are its own: give fixed_ip with a network uuid, not with a port",
        )),
        (Some(port_id), _) => Ok(NicRequest::Port { port_id }),
        (None, Some(network_id)) => Ok(NicRequest::Network {
            network_id,
            fixed_ip,
        }),
        (None, None) => Err(NovaError::bad_request(
            "Bad networks format: a network uuid or a port is required",
        )),
    }
}

/// `nova`, `nova:<host>` or `nova:<host>:<node>`; any other zone does not exist.
fn forced_host(server: &Map<String, Value>) -> NovaResult<Option<String>> {
    let zone = match server.get("availability_zone") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(z)) => z.as_str(),
        Some(other) => {
            return Err(invalid(
                "availability_zone",
                format!("Value: {other}. Not a string"),
            ));
        }
    };
    let mut parts = zone.splitn(3, ':');
    let az = parts.next().unwrap_or_default();
    let host = parts.next().filter(|h| !h.is_empty());
    if !az.is_empty() && az != AVAILABILITY_ZONE {
        return Err(NovaError::bad_request(
            "The requested availability zone is not available",
        ));
    }
    Ok(host.map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(v: Value) -> NovaResult<BootRequest> {
        parse(v.to_string().as_bytes())
    }

    #[test]
    fn the_three_network_forms_and_a_forced_host() {
        let r = parse_json(json!({"server": {
            "name": "vm1", "imageRef": "", "flavorRef": "1",
            "networks": [{"uuid": "n1"}, {"port": "p1"}, {"uuid": "n2", "fixed_ip": "10.0.0.7"}],
            "availability_zone": "nova:compute-1"}}))
        .unwrap();
        assert_eq!(r.name, "vm1");
        assert_eq!(r.forced_host.as_deref(), Some("compute-1"));
        assert_eq!(
            r.networks,
            RequestedNetworks::Listed(vec![
                NicRequest::Network {
                    network_id: "n1".into(),
                    fixed_ip: None
                },
                NicRequest::Port {
                    port_id: "p1".into()
                },
                NicRequest::Network {
                    network_id: "n2".into(),
                    fixed_ip: Some("10.0.0.7".parse().unwrap())
                },
            ])
        );
        for (given, wanted) in [
            (json!("auto"), RequestedNetworks::Auto),
            (json!("none"), RequestedNetworks::None),
            (json!([]), RequestedNetworks::Listed(vec![])),
        ] {
            let r = parse_json(json!({"server": {"name": "a", "networks": given}})).unwrap();
            assert_eq!(r.networks, wanted);
        }
        let any = parse_json(json!({"server": {"name": "a", "networks": [{"uuid": "n"}],
            "availability_zone": "nova"}}))
        .unwrap();
        assert_eq!(any.forced_host, None);
    }

    #[test]
    fn bad_bodies_are_400_with_the_reason() {
        for (body, needle) in [
            (json!({}), "'server' is a required property"),
            (
                json!({"server": {"networks": [{"uuid": "n"}]}}),
                "'name' is a required",
            ),
            (json!({"server": {"name": "a"}}), "'networks' is a required"),
            (
                json!({"server": {"name": "a", "networks": "any"}}),
                "'auto' or 'none'",
            ),
            (
                json!({"server": {"name": "a", "networks": {"uuid": "n"}}}),
                "'auto' or 'none'",
            ),
            (
                json!({"server": {"name": "a", "networks": [{}]}}),
                "uuid or a port",
            ),
            (
                json!({"server": {"name": "a", "networks": [{"uuid": "n", "fixed_ip": "10.0.0.300"}]}}),
                "Invalid fixed IP address (10.0.0.300)",
            ),
            (
                json!({"server": {"name": "a", "networks": [{"uuid": "n"}], "color": "red"}}),
                "('color' was unexpected)",
            ),
            (
                json!({"server": {"name": "a", "networks": [{"uuid": "n"}], "max_count": 3}}),
                "Only one server",
            ),
            (
                json!({"server": {"name": "a", "networks": [{"uuid": "n"}], "availability_zone": "az9"}}),
                "availability zone is not available",
            ),
        ] {
            let e = parse_json(body.clone()).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
        assert!(parse(b"{not json").is_err());
    }
}
