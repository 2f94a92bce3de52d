//! Parsing and checking of a port's structured attributes, with Neutron's error texts:
//! `fixed_ips`, `mac_address`, `allowed_address_pairs`, `extra_dhcp_opts`, `dns_name`,
//! `binding:vnic_type`, `binding:profile`, and the `dns_assignment` it shows.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::body;
use crate::error::{CoreResult, NeutronError};
use neutrino_ipam as ipam;
use neutrino_store::ports::{FixedIp, Port};

/// One item of a `fixed_ips` request: a subnet, an address, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRequest {
    pub subnet_id: Option<String>,
    pub ip: Option<IpAddr>,
}

/// Neutron's `binding:vnic_type` values.
const VNIC_TYPES: &[&str] = &[
    "normal",
    "direct",
    "macvtap",
    "baremetal",
    "direct-physical",
    "virtio-forwarder",
    "smart-nic",
    "vdpa",
    "accelerator-direct",
    "accelerator-direct-physical",
    "remote-managed",
];

/// The default `dns_domain` (Neutron's `openstacklocal.`).
const DNS_DOMAIN: &str = "openstacklocal.";

fn invalid(key: &str, why: impl std::fmt::Display) -> NeutronError {
    NeutronError::bad_request(format!("Invalid input for {key}. Reason: {why}"))
}

fn shown(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// The `fixed_ips` of a body, or None when absent.
pub fn fixed_ips(b: &Map<String, Value>) -> CoreResult<Option<Vec<IpRequest>>> {
    let Some(items) = body::list(b.get("fixed_ips"), "fixed_ips")? else {
        return Ok(None);
    };
    let mut out: Vec<IpRequest> = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(m) = item else {
            return Err(invalid(
                "fixed_ips",
                format!("'{item}' is not a dictionary"),
            ));
        };
        if let Some(k) = m.keys().find(|k| *k != "subnet_id" && *k != "ip_address") {
            return Err(invalid(
                "fixed_ips",
                format!("Unrecognized attribute '{k}'"),
            ));
        }
        let subnet_id = match m.get("subnet_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(invalid(
                    "fixed_ips",
                    format!("'{other}' is not a valid UUID"),
                ));
            }
        };
        let ip = match m.get("ip_address") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .ok_or_else(|| {
                        invalid(
                            "fixed_ips",
                            format!("'{}' is not a valid IP address.", shown(v)),
                        )
                    })?,
            ),
        };
        if subnet_id.is_none() && ip.is_none() {
            return Err(invalid(
                "fixed_ips",
                "each item needs a subnet_id or an ip_address",
            ));
        }
        if let Some(ip) = ip
            && out.iter().any(|r| r.ip == Some(ip))
        {
            return Err(invalid("fixed_ips", format!("Duplicate IP address '{ip}'")));
        }
        out.push(IpRequest { subnet_id, ip });
    }
    Ok(Some(out))
}

/// A MAC address in lowercase colon form; multicast and all-zero addresses are refused.
pub fn mac(v: &Value) -> CoreResult<(String, [u8; 6])> {
    v.as_str()
        .and_then(ipam::normalize_mac)
        .filter(|(_, b)| b[0] & 1 == 0 && b.iter().any(|x| *x != 0))
        .ok_or_else(|| {
            invalid(
                "mac_address",
                format!("'{}' is not a valid MAC address.", shown(v)),
            )
        })
}

pub fn vnic_type(b: &Map<String, Value>) -> CoreResult<Option<String>> {
    match b.get("binding:vnic_type") {
        None => Ok(None),
        Some(Value::String(s)) if VNIC_TYPES.contains(&s.as_str()) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(
            "binding:vnic_type",
            format!("{} is not in {VNIC_TYPES:?}", shown(other)),
        )),
    }
}

/// `binding:profile` as JSON text: a dict (null means `{}`).
pub fn profile(b: &Map<String, Value>) -> CoreResult<Option<String>> {
    match b.get("binding:profile") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some("{}".into())),
        Some(v @ Value::Object(_)) => Ok(Some(v.to_string())),
        Some(other) => Err(invalid(
            "binding:profile",
            format!("'{other}' is not a dictionary."),
        )),
    }
}

/// `dns_name`: empty, or a host name / FQDN of valid DNS labels.
pub fn dns_name(b: &Map<String, Value>) -> CoreResult<Option<String>> {
    let Some(name) = body::string(b, "dns_name", 255)? else {
        return Ok(None);
    };
    let labels_ok = name.trim_end_matches('.').split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if name.is_empty() || labels_ok {
        Ok(Some(name.to_lowercase()))
    } else {
        Err(invalid(
            "dns_name",
            format!("'{name}' not a valid PQDN or FQDN."),
        ))
    }
}

/// `dns_assignment`: one entry per address, the host name being `dns_name` or one made from
/// the address.
pub fn dns_assignment(dns_name: &str, fixed_ips: &[FixedIp]) -> Value {
    fixed_ips
        .iter()
        .map(|f| {
            let hostname = if dns_name.is_empty() {
                neutrino_ipam::generated_hostname(&f.ip_address)
            } else {
                dns_name.trim_end_matches('.').to_string()
            };
            json!({"hostname": hostname, "ip_address": f.ip_address,
                   "fqdn": format!("{hostname}.{DNS_DOMAIN}")})
        })
        .collect()
}

pub fn pairs_need_port_security() -> NeutronError {
    NeutronError::conflict(
        "AddressPairAndPortSecurityRequired",
        "Port Security must be enabled in order to have allowed address pairs on a port.",
    )
}

/// `allowed_address_pairs` as JSON text with each pair's MAC filled in (the port's when not
/// given), or None when absent.
/// Neutron's `max_allowed_address_pair`.
pub const MAX_ALLOWED_ADDRESS_PAIRS: usize = 10;

pub fn address_pairs(v: Option<&Value>, port: &Port) -> CoreResult<Option<String>> {
    let Some(items) = body::list(v, "allowed_address_pairs")? else {
        return Ok(None);
    };
    if items.len() > MAX_ALLOWED_ADDRESS_PAIRS {
        return Err(NeutronError::bad(
            "AllowedAddressPairExhausted",
            format!(
                "The number of allowed address pair exceeds the maximum {MAX_ALLOWED_ADDRESS_PAIRS}."
            ),
        ));
    }
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(m) = item else {
            return Err(invalid(
                "allowed_address_pairs",
                format!("'{item}' is not a dictionary"),
            ));
        };
        if let Some(k) = m.keys().find(|k| *k != "ip_address" && *k != "mac_address") {
            return Err(invalid(
                "allowed_address_pairs",
                format!("Unrecognized attribute '{k}'"),
            ));
        }
        let ip = m
            .get("ip_address")
            .and_then(Value::as_str)
            .and_then(|s| {
                s.parse::<IpNet>()
                    .map(|n| n.to_string())
                    .ok()
                    .or_else(|| s.parse::<IpAddr>().ok().map(|a| a.to_string()))
            })
            .ok_or_else(|| {
                NeutronError::bad(
                    "AllowedAddressPairsMissingIP",
                    "AllowedAddressPair must contain ip_address",
                )
            })?;
        let mac = match m.get("mac_address") {
            None | Some(Value::Null) => port.mac_address.clone(),
            Some(v) => mac(v)?.0,
        };
        let pair = json!({"ip_address": ip, "mac_address": mac});
        if out.contains(&pair) {
            return Err(NeutronError::bad(
                "DuplicateAddressPairInRequest",
                format!(
                    "Request contains duplicate address pair: mac_address {mac} ip_address {ip}."
                ),
            ));
        }
        out.push(pair);
    }
    if !out.is_empty() && !port.port_security_enabled {
        return Err(pairs_need_port_security());
    }
    Ok(Some(Value::Array(out).to_string()))
}

/// `extra_dhcp_opts` applied over `current` (JSON text): an option is keyed by
/// (`opt_name`, `ip_version`); a `null` value removes it.
pub fn extra_dhcp_opts(v: Option<&Value>, current: &str) -> CoreResult<String> {
    let mut opts: Vec<Value> = serde_json::from_str(current).unwrap_or_default();
    // `null` removes every option; a list changes the ones it names.
    if v.is_some_and(Value::is_null) {
        return Ok("[]".into());
    }
    let Some(items) = body::list(v, "extra_dhcp_opts")? else {
        return Ok(current.to_string());
    };
    for item in items {
        let Value::Object(m) = item else {
            return Err(invalid(
                "extra_dhcp_opts",
                format!("'{item}' is not a dictionary"),
            ));
        };
        if let Some(k) = m
            .keys()
            .find(|k| !["opt_name", "opt_value", "ip_version"].contains(&k.as_str()))
        {
            return Err(invalid(
                "extra_dhcp_opts",
                format!("Unrecognized attribute '{k}'"),
            ));
        }
        let Some(name) = m
            .get("opt_name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            return Err(invalid("extra_dhcp_opts", "opt_name is required"));
        };
        let version = match m.get("ip_version") {
            None | Some(Value::Null) => 4,
            Some(v) => match v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            {
                Some(n @ (4 | 6)) => n,
                _ => {
                    return Err(invalid(
                        "extra_dhcp_opts",
                        format!("{} is not in [4, 6]", shown(v)),
                    ));
                }
            },
        };
        opts.retain(|o| !(o["opt_name"] == name && o["ip_version"] == version));
        match m.get("opt_value") {
            None | Some(Value::Null) => {}
            Some(Value::String(value)) => {
                if let Some(problem) = neutrino_proto::dhcp_opt_problem(name, value) {
                    return Err(invalid("extra_dhcp_opts", problem));
                }
                opts.push(json!({"opt_name": name, "opt_value": value, "ip_version": version}));
            }
            Some(other) => {
                return Err(invalid(
                    "extra_dhcp_opts",
                    format!("'{other}' is not a valid string"),
                ));
            }
        }
    }
    Ok(Value::Array(opts).to_string())
}

/// A list of ids (strings).
pub fn id_list(v: &Value, key: &str) -> CoreResult<Vec<String>> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(key, format!("'{i}' is not a valid UUID")))
            })
            .collect(),
        other => Err(invalid(key, format!("'{other}' is not a list"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fixed_ips_are_parsed_with_neutrons_errors() {
        let r = fixed_ips(&map(
            json!({"fixed_ips": [{"subnet_id": "s"}, {"ip_address": "10.0.0.5"}]}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(r[0].subnet_id.as_deref(), Some("s"));
        assert_eq!(r[1].ip, Some("10.0.0.5".parse().unwrap()));
        let e = fixed_ips(&map(json!({"fixed_ips": [{"ip_address": "10.0.0.999"}]}))).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid input for fixed_ips. Reason: '10.0.0.999' is not a valid IP address."
        );
        assert!(fixed_ips(&map(json!({}))).unwrap().is_none());
    }

    #[test]
    fn macs_are_normalised_and_checked() {
        assert_eq!(
            mac(&json!("FA:16:3E:00:00:01")).unwrap().0,
            "fa:16:3e:00:00:01"
        );
        let e = mac(&json!("zz:zz")).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid input for mac_address. Reason: 'zz:zz' is not a valid MAC address."
        );
        assert!(mac(&json!("01:00:5e:00:00:01")).is_err(), "multicast");
    }

    #[test]
    fn extra_dhcp_opts_merge_and_remove() {
        let v = extra_dhcp_opts(
            Some(&json!([{"opt_name": "mtu", "opt_value": "1400"}, {"opt_name": "ntp-server", "opt_value": "1.2.3.4"}])),
            "[]",
        )
        .unwrap();
        let v =
            extra_dhcp_opts(Some(&json!([{"opt_name": "mtu", "opt_value": null}])), &v).unwrap();
        let opts: Value = serde_json::from_str(&v).unwrap();
        assert_eq!(
            opts,
            json!([{"opt_name": "ntp-server", "opt_value": "1.2.3.4", "ip_version": 4}])
        );
    }

    #[test]
    fn dns_names_and_assignments() {
        assert_eq!(
            dns_name(&map(json!({"dns_name": "VM-1"}))).unwrap(),
            Some("vm-1".into())
        );
        assert!(dns_name(&map(json!({"dns_name": "-bad"}))).is_err());
        let a = dns_assignment(
            "",
            &[FixedIp {
                subnet_id: "s".into(),
                ip_address: "10.0.0.5".into(),
            }],
        );
        assert_eq!(a[0]["hostname"], "host-10-0-0-5");
        assert_eq!(a[0]["fqdn"], "host-10-0-0-5.openstacklocal.");
    }
}
