//! A security group rule's attributes, converted and checked as Neutron does
//! (`neutron/extensions/securitygroup.py` converters, then
//! `_validate_base_security_group_rule_attributes` in its order), with Neutron's error types
//! and texts: clients and tempest match on them.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::error::{CoreResult, NeutronError};
use neutrino_store::security_groups::RuleFields;

/// Neutron's `IP_PROTOCOL_MAP` in its order, with the legacy `icmpv6` alias.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ip", 0),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// Protocols whose rules take a port range (DCCP, SCTP, TCP, UDP, UDPLITE).
const PORT_PROTOCOLS: &[u8] = &[33, 132, 6, 17, 136];
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
/// Protocols that exist only over IPv6 (`ipv6-encap`, `-frag`, `-icmp`, `-nonxt`, `-opts`,
/// `-route`).
const IPV6_ONLY: &[u8] = &[41, 44, 58, 59, 60, 43];

/// A rule of a create body, checked: what it says and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRequest {
    pub security_group_id: String,
    pub fields: RuleFields,
    pub remote_address_group_id: Option<String>,
    pub description: String,
}

fn required(b: &Map<String, Value>, key: &str) -> CoreResult<String> {
    match b.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Err(NeutronError::bad_request(format!(
            "Failed to parse request. Required attribute '{key}' not specified"
        ))),
        Some(other) => Err(NeutronError::bad_request(format!(
            "Invalid input for {key}. Reason: '{other}' is not a valid string."
        ))),
    }
}

/// An optional id-like string (`remote_group_id`): null as none.
fn optional_text(b: &Map<String, Value>, key: &str) -> CoreResult<Option<String>> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(NeutronError::bad_request(format!(
            "Invalid input for {key}. Reason: '{other}' is not a valid string."
        ))),
    }
}

/// Python's `str()` of a JSON value, for messages that print what was sent.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses and checks a rule create body (attributes already checked for unknown ones).
pub fn parse(b: &Map<String, Value>) -> CoreResult<RuleRequest> {
    let security_group_id = required(b, "security_group_id")?;
    let direction = required(b, "direction")?;
    if !matches!(direction.as_str(), "ingress" | "egress") {
        return Err(NeutronError::bad_request(format!(
            "Invalid input for direction. Reason: '{direction}' is not in ['ingress', 'egress']."
        )));
    }
    let ethertype = ethertype(b.get("ethertype"))?;
    let (protocol, protocol_number) = protocol(b.get("protocol"))?;
    let port_range_min = port(b.get("port_range_min"))?;
    let port_range_max = port(b.get("port_range_max"))?;
    let remote_ip_prefix = b
        .get("remote_ip_prefix")
        .map(ip_prefix)
        .transpose()?
        .flatten();
    let description = match b.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.chars().count() <= 255 => s.clone(),
        Some(other) => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for description. Reason: '{}' is not a valid string or exceeds maximum length of 255.",
                shown(other)
            )));
        }
    };
    let mut fields = RuleFields {
        direction,
        ethertype,
        protocol,
        protocol_number,
        port_range_min,
        port_range_max,
        remote_ip_prefix,
        remote_group_id: optional_text(b, "remote_group_id")?,
    };
    let remote_address_group_id = optional_text(b, "remote_address_group_id")?;
    validate(&mut fields, remote_address_group_id.is_some())?;
    Ok(RuleRequest {
        security_group_id,
        fields,
        remote_address_group_id,
        description,
    })
}

/// `IPv4` or `IPv6`, matched case-insensitively; absent or null is `IPv4`.
fn ethertype(v: Option<&Value>) -> CoreResult<String> {
    match v {
        None | Some(Value::Null) => Ok("IPv4".into()),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("ipv4") => Ok("IPv4".into()),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("ipv6") => Ok("IPv6".into()),
        Some(other) => Err(NeutronError::bad(
            "SecurityGroupRuleInvalidEtherType",
            format!(
                "Security group rule for ethertype '{}' not supported. Allowed values are ['IPv4', 'IPv6'].",
                shown(other)
            ),
        )),
    }
}

/// Neutron's `convert_protocol`: null and `any` are none; a known name (any case) is kept in
/// lower case; an integer 0-255 (or its decimal string) is kept as its number. Answers the
/// shown value and the protocol's number.
fn protocol(v: Option<&Value>) -> CoreResult<(Option<String>, Option<u8>)> {
    let text = match v {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(invalid_protocol(&other.to_string())),
    };
    let lower = text.to_ascii_lowercase();
    if lower == "any" {
        return Ok((None, None));
    }
    if let Some((_, number)) = PROTOCOLS.iter().find(|(name, _)| *name == lower) {
        return Ok((Some(lower), Some(*number)));
    }
    match text.trim().parse::<i64>() {
        Ok(n) if (0..=255).contains(&n) => Ok((Some(n.to_string()), Some(n as u8))),
        _ => Err(invalid_protocol(&text)),
    }
}

fn invalid_protocol(protocol: &str) -> NeutronError {
    let names: Vec<String> = std::iter::once("None".to_string())
        .chain(PROTOCOLS.iter().map(|(name, _)| format!("'{name}'")))
        .collect();
    NeutronError::bad(
        "SecurityGroupRuleInvalidProtocol",
        format!(
            "Security group rule protocol {protocol} not supported. Only protocol values ({}) and integer representations [0 to 255] are supported.",
            names.join(", ")
        ),
    )
}

/// Neutron's `convert_validate_port_value`: null, or an integer 0-65535 (or its string).
fn port(v: Option<&Value>) -> CoreResult<Option<i64>> {
    let bad = |v: &Value| {
        NeutronError::bad(
            "SecurityGroupInvalidPortValue",
            format!("Invalid value for port {}", shown(v)),
        )
    };
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if (0..=65_535).contains(&n) => Ok(Some(n)),
        _ => Err(bad(v.unwrap_or(&Value::Null))),
    }
}

/// Neutron's `convert_ip_prefix_to_cidr`: a CIDR, host bits kept; a bare address is a /32 or
/// /128. Null is none.
fn ip_prefix(v: &Value) -> CoreResult<Option<String>> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let invalid = || {
        NeutronError::bad(
            "InvalidCIDR",
            format!("Invalid CIDR {text} given as IP prefix."),
        )
    };
    let (address, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text.as_str(), None),
    };
    let address: IpAddr = address.trim().parse().map_err(|_| invalid())?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(invalid)?,
    };
    Ok(Some(format!("{address}/{len}")))
}

/// The prefix with its host bits cleared (`normalized_cidr`).
pub fn normalized_cidr(prefix: &str) -> Option<String> {
    let (address, len) = prefix.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    let network = match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            IpAddr::from((u32::from(a) & mask).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            IpAddr::from((u128::from(a) & mask).to_be_bytes())
        }
    };
    Some(format!("{network}/{len}"))
}

/// Neutron's checks, in its order, on converted fields (which they canonicalise).
fn validate(f: &mut RuleFields, remote_address_group: bool) -> CoreResult<()> {
    // 1. Over IPv6, ICMP is ICMPv6.
    if f.ethertype == "IPv6" {
        match f.protocol.as_deref() {
            Some("icmp" | "icmpv6") => {
                f.protocol = Some("ipv6-icmp".into());
                f.protocol_number = Some(ICMPV6);
            }
            Some("1") => {
                f.protocol = Some("58".into());
                f.protocol_number = Some(ICMPV6);
            }
            _ => {}
        }
    }
    // 2. The full range is no range.
    if f.port_range_min == Some(1) && f.port_range_max == Some(65_535) {
        f.port_range_min = None;
        f.port_range_max = None;
    }
    // 3. The port range against the protocol.
    port_range(f)?;
    // 4. The prefix's version is the ethertype's.
    if let Some(prefix) = &f.remote_ip_prefix {
        let v6 = prefix.contains(':');
        if v6 != (f.ethertype == "IPv6") {
            return Err(NeutronError::bad(
                "SecurityGroupRuleParameterConflict",
                format!(
                    "Conflicting value ethertype {} for CIDR {prefix}",
                    f.ethertype
                ),
            ));
        }
    }
    // 5. IPv6-only protocols need IPv6.
    if f.ethertype == "IPv4"
        && let (Some(shown), Some(number)) = (&f.protocol, f.protocol_number)
        && IPV6_ONLY.contains(&number)
    {
        return Err(NeutronError::bad(
            "SecurityGroupEthertypeConflictWithProtocol",
            format!("Invalid ethertype IPv4 for protocol {shown}."),
        ));
    }
    // 6. One remote at most.
    let remotes = [
        f.remote_ip_prefix.is_some(),
        f.remote_group_id.is_some(),
        remote_address_group,
    ];
    if remotes.iter().filter(|r| **r).count() > 1 {
        return Err(NeutronError::bad(
            "SecurityGroupMultipleRemoteEntites",
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
        ));
    }
    Ok(())
}

/// Neutron's `_validate_port_range`.
fn port_range(f: &RuleFields) -> CoreResult<()> {
    let (min, max) = (f.port_range_min, f.port_range_max);
    if min.is_none() && max.is_none() {
        return Ok(());
    }
    let Some(number) = f.protocol_number else {
        return Err(NeutronError::bad(
            "SecurityGroupProtocolRequiredWithPorts",
            "Must also specify protocol if port range is given.",
        ));
    };
    if PORT_PROTOCOLS.contains(&number) {
        if min == Some(0) || max == Some(0) {
            return Err(NeutronError::bad(
                "SecurityGroupInvalidPortValue",
                "Invalid value for port 0",
            ));
        }
        return match (min, max) {
            (Some(min), Some(max)) if min <= max => Ok(()),
            _ => Err(NeutronError::bad(
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            )),
        };
    }
    if number == ICMP || number == ICMPV6 {
        for (value, field, attr) in [
            (min, "type", "port_range_min"),
            (max, "code", "port_range_max"),
        ] {
            if let Some(v) = value
                && !(0..=255).contains(&v)
            {
                return Err(NeutronError::bad(
                    "SecurityGroupInvalidIcmpValue",
                    format!("Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."),
                ));
            }
        }
        if let (None, Some(code)) = (min, max) {
            return Err(NeutronError::bad(
                "SecurityGroupMissingIcmpType",
                format!(
                    "ICMP code (port-range-max) {code} is provided but ICMP type (port-range-min) is missing."
                ),
            ));
        }
        return Ok(());
    }
    Err(NeutronError::bad(
        "SecurityGroupInvalidProtocolForPort",
        format!(
            "Ports cannot be specified for protocol {number}. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE."
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(extra: Value) -> CoreResult<RuleRequest> {
        let mut b = json!({"security_group_id": "g", "direction": "ingress"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        parse(b.as_object().unwrap())
    }

    fn error(extra: Value) -> (String, String) {
        let e = rule(extra).unwrap_err();
        (e.kind, e.message)
    }

    #[test]
    fn protocols_by_name_and_number() {
        let r =
            rule(json!({"protocol": "TCP", "port_range_min": 22, "port_range_max": "22"})).unwrap();
        assert_eq!(r.fields.protocol.as_deref(), Some("tcp"));
        assert_eq!(
            (r.fields.port_range_min, r.fields.port_range_max),
            (Some(22), Some(22))
        );
        assert_eq!(
            rule(json!({"protocol": 6}))
                .unwrap()
                .fields
                .protocol
                .as_deref(),
            Some("6")
        );
        assert_eq!(
            rule(json!({"protocol": "any"})).unwrap().fields.protocol,
            None
        );
        let v6 = |p: Value| {
            rule(json!({"protocol": p, "ethertype": "ipv6"}))
                .unwrap()
                .fields
        };
        assert_eq!(v6(json!("icmp")).protocol.as_deref(), Some("ipv6-icmp"));
        assert_eq!(v6(json!("icmpv6")).protocol.as_deref(), Some("ipv6-icmp"));
        assert_eq!(v6(json!("1")).protocol.as_deref(), Some("58"));
        assert_eq!(v6(json!("1")).ethertype, "IPv6");
        let (kind, message) = error(json!({"protocol": "256"}));
        assert_eq!(kind, "SecurityGroupRuleInvalidProtocol");
        assert!(message.starts_with("Security group rule protocol 256 not supported."));
        assert_eq!(
            error(json!({"protocol": "bogus"})).0,
            "SecurityGroupRuleInvalidProtocol"
        );
    }

    #[test]
    fn tempests_port_range_cases() {
        for (min, max, needle) in [
            (json!(-16), json!(80), "Invalid value for port -16"),
            (
                json!(80),
                json!(79),
                "port_range_min must be <= port_range_max",
            ),
            (json!(80), json!(65536), "Invalid value for port 65536"),
            (
                Value::Null,
                json!(6),
                "port_range_min must be <= port_range_max",
            ),
        ] {
            let (_, m) =
                error(json!({"protocol": "tcp", "port_range_min": min, "port_range_max": max}));
            assert!(m.contains(needle), "{m}");
        }
        for (min, max, needle) in [
            (json!(1), json!(256), "Invalid value for ICMP code"),
            (json!(-1), json!(25), "Invalid value"),
            (
                Value::Null,
                json!(6),
                "ICMP type (port-range-min) is missing",
            ),
            (json!(300), json!(1), "Invalid value for ICMP type"),
        ] {
            let (_, m) =
                error(json!({"protocol": "icmp", "port_range_min": min, "port_range_max": max}));
            assert!(m.contains(needle), "{m}");
        }
        assert_eq!(
            error(json!({"port_range_min": 1, "port_range_max": 2})).0,
            "SecurityGroupProtocolRequiredWithPorts"
        );
        assert_eq!(
            error(json!({"protocol": "gre", "port_range_min": 1, "port_range_max": 2})).1,
            "Ports cannot be specified for protocol 47. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE."
        );
        // The full range is no range, for any protocol.
        let r =
            rule(json!({"protocol": "gre", "port_range_min": 1, "port_range_max": 65535})).unwrap();
        assert_eq!(
            (r.fields.port_range_min, r.fields.port_range_max),
            (None, None)
        );
        assert_eq!(
            error(json!({"protocol": "udp", "port_range_min": 0, "port_range_max": 5})).1,
            "Invalid value for port 0"
        );
    }

    #[test]
    fn remotes_and_ethertypes() {
        let r = rule(json!({"remote_ip_prefix": "10.0.0.5"})).unwrap();
        assert_eq!(r.fields.remote_ip_prefix.as_deref(), Some("10.0.0.5/32"));
        let r = rule(json!({"remote_ip_prefix": "10.0.0.5/24"})).unwrap();
        assert_eq!(r.fields.remote_ip_prefix.as_deref(), Some("10.0.0.5/24"));
        assert_eq!(
            normalized_cidr("10.0.0.5/24").as_deref(),
            Some("10.0.0.0/24")
        );
        assert_eq!(
            normalized_cidr("2001:db8::1/64").as_deref(),
            Some("2001:db8::/64")
        );
        assert_eq!(normalized_cidr("0.0.0.0/0").as_deref(), Some("0.0.0.0/0"));
        assert_eq!(
            error(json!({"remote_ip_prefix": "10.0.0.300/24"})).0,
            "InvalidCIDR"
        );
        let (kind, message) = error(json!({"remote_ip_prefix": "2001:db8::/64"}));
        assert_eq!(kind, "SecurityGroupRuleParameterConflict");
        assert_eq!(
            message,
            "Conflicting value ethertype IPv4 for CIDR 2001:db8::/64"
        );
        assert_eq!(
            error(json!({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "g2"})).0,
            "SecurityGroupMultipleRemoteEntites"
        );
        assert_eq!(
            error(json!({"protocol": "ipv6-icmp"})).1,
            "Invalid ethertype IPv4 for protocol ipv6-icmp."
        );
        assert_eq!(
            error(json!({"ethertype": "IPv5"})).0,
            "SecurityGroupRuleInvalidEtherType"
        );
        assert_eq!(
            error(json!({"direction": "sideways"})).1,
            "Invalid input for direction. Reason: 'sideways' is not in ['ingress', 'egress']."
        );
    }
}
