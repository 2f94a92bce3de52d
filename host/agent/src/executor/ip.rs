//! Addresses and routes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};
use ipnet::IpNet;
use neutrino_model::{AddressSpec, RouteSpec};
use rtnetlink::RouteMessageBuilder;

use super::connections::Connections;
use super::links::parse_ip;

/// The address on the link, unless it is there already.
pub async fn ensure_address(c: &mut Connections, spec: &AddressSpec) -> Result<()> {
    let net: IpNet = spec
        .cidr
        .parse()
        .with_context(|| format!("{:?} is not an address/prefix", spec.cidr))?;
    let nl = c.get(spec.namespace.as_deref()).await?;
    let link = nl.existing(&spec.link).await?;
    let wanted = (net.addr(), net.prefix_len());
    if nl.addresses(&link).await?.contains(&wanted) {
        return Ok(());
    }
    nl.add_address(&link, wanted.0, wanted.1).await
}

/// The route, replacing one to the same destination (`ip route replace`).
pub async fn ensure_route(c: &mut Connections, spec: &RouteSpec) -> Result<()> {
    let gateway = spec
        .gateway
        .as_deref()
        .map(|g| parse_ip(g, "gateway"))
        .transpose()?;
    let destination: IpNet = match spec.destination.as_str() {
        // The family of `default` follows the gateway's.
        "default" => match gateway {
            Some(IpAddr::V6(_)) => IpNet::new(Ipv6Addr::UNSPECIFIED.into(), 0)?,
            _ => IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0)?,
        },
        other => other
            .parse()
            .with_context(|| format!("{other:?} is not a destination"))?,
    };
    let nl = c.get(spec.namespace.as_deref()).await?;
    let mut route = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(destination.network(), destination.prefix_len())?;
    if let Some(gateway) = gateway {
        route = route.gateway(gateway)?;
    }
    if let Some(device) = &spec.device {
        route = route.output_interface(nl.existing(device).await?.index);
    }
    nl.replace_route(&format!("to {}", spec.destination), route.build())
        .await
}
