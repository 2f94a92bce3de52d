//! `/v2.0/ports`: create (one or bulk), list, show, update, delete, with addresses (IPAM), MACs,
//! security groups, allowed address pairs, extra DHCP options, DNS names and port binding.

use std::future::Future;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::auth::RequestContext;
use super::body;
use super::error::{ApiResult, NeutronError};
use super::openapi::ResourceDoc;
use super::query::{CollectionSpec, ListQuery};
use super::{AppState, base_url, listing, path_id, tags};
use neutrino_core::port_attributes as attrs;
use neutrino_core::ports::{ADMIN_ONLY, visible};
use neutrino_core::tags::Kind;
use neutrino_store::ports::Port;
use neutrino_store::{self as store, ports as repo};

pub const SPEC: CollectionSpec = CollectionSpec {
    collection: "ports",
    filterable: &[
        "id",
        "name",
        "network_id",
        "tenant_id",
        "project_id",
        "mac_address",
        "admin_state_up",
        "status",
        "device_id",
        "device_owner",
        "fixed_ips",
        "port_security_enabled",
        "security_groups",
        "binding:host_id",
        "binding:vnic_type",
        "binding:vif_type",
        "description",
        "dns_name",
        "revision_number",
        "tags",
    ],
    sortable: &[
        "id",
        "name",
        "network_id",
        "tenant_id",
        "project_id",
        "mac_address",
        "admin_state_up",
        "status",
        "device_id",
        "device_owner",
        "binding:host_id",
        "created_at",
        "updated_at",
        "revision_number",
        "description",
    ],
};

const CREATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "tenant_id",
    "project_id",
    "network_id",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "extra_dhcp_opts",
    "dns_name",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
];
const UPDATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "extra_dhcp_opts",
    "dns_name",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
];
const READ_ONLY: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "network_id",
    "status",
    "binding:vif_type",
    "binding:vif_details",
    "dns_assignment",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
];

pub const DOC: ResourceDoc = ResourceDoc {
    resource: "port",
    spec: &SPEC,
    create: CREATE_ATTRS,
    update: UPDATE_ATTRS,
    read_only: READ_ONLY,
    delete: true,
};

fn not_found(id: &str) -> NeutronError {
    neutrino_core::ports::not_found(id).into()
}

/// A port's API dict, borrowed from the stored port. The fields are in the order a `Map` keeps
/// its keys (sorted), so that a list serialised straight from these (see [`list`]) is byte for
/// byte the one built from [`to_json`]'s maps.
#[derive(Serialize)]
struct PortDict<'a> {
    admin_state_up: bool,
    allowed_address_pairs: Value,
    #[serde(rename = "binding:host_id", skip_serializing_if = "Option::is_none")]
    binding_host_id: Option<&'a str>,
    #[serde(rename = "binding:profile", skip_serializing_if = "Option::is_none")]
    binding_profile: Option<Value>,
    #[serde(
        rename = "binding:vif_details",
        skip_serializing_if = "Option::is_none"
    )]
    binding_vif_details: Option<Value>,
    #[serde(rename = "binding:vif_type", skip_serializing_if = "Option::is_none")]
    binding_vif_type: Option<&'a str>,
    #[serde(rename = "binding:vnic_type")]
    binding_vnic_type: &'a str,
    created_at: &'a str,
    description: &'a str,
    device_id: &'a str,
    device_owner: &'a str,
    dns_assignment: Value,
    dns_name: &'a str,
    extra_dhcp_opts: Value,
    fixed_ips: Vec<FixedIpDict<'a>>,
    id: &'a str,
    mac_address: &'a str,
    name: &'a str,
    network_id: &'a str,
    port_security_enabled: bool,
    project_id: &'a str,
    revision_number: i64,
    security_groups: Value,
    status: &'a str,
    tags: &'a [String],
    tenant_id: &'a str,
    updated_at: &'a str,
}

#[derive(Serialize)]
struct FixedIpDict<'a> {
    ip_address: &'a str,
    subnet_id: &'a str,
}

impl<'a> PortDict<'a> {
    /// The binding details only for admins.
    fn of(p: &'a Port, admin: bool) -> PortDict<'a> {
        let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
        PortDict {
            admin_state_up: p.admin_state_up,
            allowed_address_pairs: parse(&p.allowed_address_pairs),
            binding_host_id: admin.then_some(p.binding_host.as_str()),
            binding_profile: admin.then(|| parse(&p.binding_profile)),
            binding_vif_details: admin.then(|| parse(&p.binding_vif_details)),
            binding_vif_type: admin.then_some(p.binding_vif_type.as_str()),
            binding_vnic_type: &p.binding_vnic_type,
            created_at: &p.created_at,
            description: &p.description,
            device_id: &p.device_id,
            device_owner: &p.device_owner,
            dns_assignment: attrs::dns_assignment(&p.dns_name, &p.fixed_ips),
            dns_name: &p.dns_name,
            extra_dhcp_opts: parse(&p.extra_dhcp_opts),
            fixed_ips: p
                .fixed_ips
                .iter()
                .map(|f| FixedIpDict {
                    ip_address: &f.ip_address,
                    subnet_id: &f.subnet_id,
                })
                .collect(),
            id: &p.id,
            mac_address: &p.mac_address,
            name: &p.name,
            network_id: &p.network_id,
            port_security_enabled: p.port_security_enabled,
            project_id: &p.project_id,
            revision_number: p.revision_number,
            security_groups: parse(&p.security_groups),
            status: &p.status,
            tags: &[],
            tenant_id: &p.project_id,
            updated_at: &p.updated_at,
        }
    }
}

/// The API dict of a port; the binding details only for admins.
pub fn to_json(p: &Port, admin: bool) -> Map<String, Value> {
    match serde_json::to_value(PortDict::of(p, admin)) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("a struct of strings, numbers and JSON values is a JSON object"),
    }
}

pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    bytes: Bytes,
) -> ApiResult<Response> {
    ctx.require_write("create_port")?;
    // Checks that need no database run before the write lock is taken.
    let (bodies, bulk, requests) =
        body::checked_create_bodies(bytes, "port", "ports", &ctx, check_create).await?;
    // All or nothing: drafted and written in the port writer's transaction, group-committed
    // with other requests' (see port_writer); a big bulk in slices (see `bulk`).
    let mut attempt = 0;
    let ports = loop {
        match neutrino_core::bulk::create_ports(&state, &ctx, &bodies, &requests).await {
            Err(e) if e.kind == "RetryRequest" && attempt < 3 => attempt += 1,
            other => break other?,
        }
    };
    let admin = ctx.is_admin();
    Ok(body::off_worker(ports.len(), body::BIG_ANSWER, move || {
        let created = ports
            .iter()
            .map(|p| Value::Object(to_json(p, admin)))
            .collect();
        body::created("port", "ports", bulk, created)
    })
    .await)
}

/// Attribute and policy checks of one create body; returns the project the port is for.
fn check_create(ctx: &RequestContext, b: &Map<String, Value>) -> ApiResult<String> {
    body::check_create_attributes(b, CREATE_ATTRS, READ_ONLY)?;
    for admin_only in ADMIN_ONLY {
        if b.contains_key(*admin_only) && !ctx.is_admin() {
            return Err(NeutronError::forbidden(&format!(
                "create_port:{admin_only}"
            )));
        }
    }
    if !b.contains_key("network_id") {
        return Err(NeutronError::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        ));
    }
    Ok(ctx.project_for_create(b)?)
}

/// Attributes only admins see in a port's dict.
const ADMIN_SHOWN: &[&str] = &[
    "binding:host_id",
    "binding:profile",
    "binding:vif_details",
    "binding:vif_type",
];

/// Ports as a list reads them.
struct PortRows {
    store: store::Store,
    admin: bool,
    /// Whether their addresses are read (the answer or a filter needs them).
    addresses: bool,
}

impl listing::Source for PortRows {
    type Row = Port;

    fn table(&self) -> &'static store::listing::Table {
        &repo::TABLE
    }

    fn fetch(
        &self,
        req: &store::listing::Request,
    ) -> impl Future<Output = store::Result<Vec<(Port, store::listing::Key)>>> + Send {
        repo::page(&self.store, req, self.addresses)
    }

    fn id(p: &Port) -> &str {
        &p.id
    }

    fn item(&self, p: &Port) -> Map<String, Value> {
        to_json(p, self.admin)
    }

    fn write(&self, p: &Port, fields: &[String], out: &mut Vec<u8>) {
        write_port(p, self.admin, &[], fields, out)
    }

    fn write_tagged(&self, p: &Port, tags: &[String], fields: &[String], out: &mut Vec<u8>) {
        write_port(p, self.admin, tags, fields, out)
    }
}

/// A port's API dict straight from the port, without a `Map` (or with `fields`, a `Map` of only
/// those).
fn write_port(p: &Port, admin: bool, tags: &[String], fields: &[String], out: &mut Vec<u8>) {
    if fields.is_empty() {
        listing::write_json(
            out,
            &PortDict {
                tags,
                ..PortDict::of(p, admin)
            },
        );
    } else {
        let item: Map<String, Value> = fields
            .iter()
            .filter_map(|f| match f.as_str() {
                "tags" => Some((f.clone(), json!(tags))),
                _ => Some((f.clone(), field(p, admin, f)?)),
            })
            .collect();
        listing::write_json(out, &item);
    }
}

/// One attribute of a port's API dict (what [`to_json`] holds under `name`), built alone.
fn field(p: &Port, admin: bool, name: &str) -> Option<Value> {
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
    let admin_only = |v: Value| admin.then_some(v);
    Some(match name {
        "admin_state_up" => json!(p.admin_state_up),
        "allowed_address_pairs" => parse(&p.allowed_address_pairs),
        "binding:host_id" => admin_only(json!(p.binding_host))?,
        "binding:profile" => admin_only(parse(&p.binding_profile))?,
        "binding:vif_details" => admin_only(parse(&p.binding_vif_details))?,
        "binding:vif_type" => admin_only(json!(p.binding_vif_type))?,
        "binding:vnic_type" => json!(p.binding_vnic_type),
        "created_at" => json!(p.created_at),
        "description" => json!(p.description),
        "device_id" => json!(p.device_id),
        "device_owner" => json!(p.device_owner),
        "dns_assignment" => attrs::dns_assignment(&p.dns_name, &p.fixed_ips),
        "dns_name" => json!(p.dns_name),
        "extra_dhcp_opts" => parse(&p.extra_dhcp_opts),
        "fixed_ips" => json!(
            p.fixed_ips
                .iter()
                .map(|f| json!({"ip_address": f.ip_address, "subnet_id": f.subnet_id}))
                .collect::<Vec<_>>()
        ),
        "id" => json!(p.id),
        "mac_address" => json!(p.mac_address),
        "name" => json!(p.name),
        "network_id" => json!(p.network_id),
        "port_security_enabled" => json!(p.port_security_enabled),
        "project_id" => json!(p.project_id),
        "revision_number" => json!(p.revision_number),
        "security_groups" => parse(&p.security_groups),
        "status" => json!(p.status),
        "tags" => json!([]),
        "tenant_id" => json!(p.project_id),
        "updated_at" => json!(p.updated_at),
        _ => return None,
    })
}

pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let query = ListQuery::parse(q.as_deref(), &SPEC)?;
    let admin = ctx.is_admin();
    let plan = query.plan(&repo::TABLE, if admin { &[] } else { ADMIN_SHOWN });
    let source = PortRows {
        store: state.store.clone(),
        admin,
        addresses: plan.checks_rows() || query.wants("fixed_ips") || query.wants("dns_assignment"),
    };
    listing::respond(
        &state.store,
        source,
        &query,
        plan,
        (!admin).then(|| ctx.project_id.clone()),
        format!("{}/v2.0/ports", base_url(&headers)),
        not_found,
    )
    .await
}

pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let query = ListQuery::parse_fields(q.as_deref(), &SPEC);
    let mut conn = state.store.read_conn().await?;
    let p = visible(&mut conn, &ctx, id).await?;
    let item = tags::with_tags(&mut conn, Kind::Port, id, to_json(&p, ctx.is_admin())).await?;
    Ok(Json(json!({"port": query.project(item)})))
}

/// `GET /v2.0/ports/{id}/binding`: every driver's decision and reason at the last binding.
pub async fn show_binding(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let mut conn = state.store.read_conn().await?;
    let p = visible(&mut conn, &ctx, id).await?;
    if !ctx.is_admin() {
        return Err(NeutronError::forbidden("get_port:binding"));
    }
    let result = p
        .binding_result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_else(|| json!({"host": p.binding_host, "status": "unbound", "decisions": []}));
    Ok(Json(json!({"binding": neutron_network_types(result)})))
}

/// The stored result names network types as the model's serde does (`Vlan`); the API speaks
/// Neutron's names (`vlan`), as `provider:network_type` does.
fn neutron_network_types(mut v: Value) -> Value {
    match &mut v {
        Value::Object(m) => {
            for (key, value) in m.iter_mut() {
                let named = (key == "network_type")
                    .then(|| {
                        serde_json::from_value::<neutrino_model::NetworkType>(value.clone()).ok()
                    })
                    .flatten();
                *value = match named {
                    Some(t) => Value::from(neutrino_model::network_type_name(t)),
                    None => neutron_network_types(value.take()),
                };
            }
        }
        Value::Array(items) => {
            for item in items {
                *item = neutron_network_types(item.take());
            }
        }
        _ => {}
    }
    v
}

pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = body::update_body(&bytes, "port")?;
    body::check_attributes(&b, UPDATE_ATTRS, READ_ONLY)?;
    let p = neutrino_core::ports::update(&state, &ctx, id, &b).await?;
    let item = tags::read_with_tags(&state, Kind::Port, id, to_json(&p, ctx.is_admin())).await?;
    Ok(Json(json!({"port": item})))
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, not_found)?;
    neutrino_core::ports::delete(&state, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT` or `DELETE` on the collection.
pub async fn no_collection_action() -> NeutronError {
    not_found("None")
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_store::ports::FixedIp;

    fn port(id: &str, ips: &[&str], host: &str) -> Port {
        Port {
            id: id.into(),
            project_id: "p1".into(),
            network_id: "n1".into(),
            name: format!("port {id}"),
            mac_address: "fa:16:3e:00:00:01".into(),
            admin_state_up: true,
            status: "DOWN".into(),
            security_groups: r#"["sg1"]"#.into(),
            allowed_address_pairs:
                r#"[{"ip_address":"10.0.0.9","mac_address":"fa:16:3e:00:00:01"}]"#.into(),
            extra_dhcp_opts: "[]".into(),
            binding_host: host.into(),
            binding_vnic_type: "normal".into(),
            binding_profile: r#"{"k":"v"}"#.into(),
            binding_vif_type: "ovs".into(),
            binding_vif_details: r#"{"port_filter":true}"#.into(),
            created_at: "2026-12-01T00:00:00Z".into(),
            updated_at: "2026-12-01T00:00:00Z".into(),
            revision_number: 3,
            fixed_ips: ips
                .iter()
                .map(|ip| FixedIp {
                    subnet_id: "s1".into(),
                    ip_address: (*ip).into(),
                })
                .collect(),
            ..Port::default()
        }
    }

    #[test]
    fn a_port_serialised_straight_is_its_api_dict() {
        for p in [
            port("a", &["10.0.0.2", "fd00::2"], "compute1"),
            port("b", &[], ""),
        ] {
            for admin in [true, false] {
                let mut straight = Vec::new();
                listing::write_json(&mut straight, &PortDict::of(&p, admin));
                let dict = serde_json::to_vec(&to_json(&p, admin)).unwrap();
                assert_eq!(String::from_utf8(straight), String::from_utf8(dict));
            }
        }
    }

    /// Every attribute built alone for `fields=` is the dict's, and only the dict's.
    #[test]
    fn fields_built_alone_are_the_dicts() {
        let p = port("a", &["10.0.0.2", "fd00::2"], "compute1");
        for admin in [true, false] {
            let dict = to_json(&p, admin);
            for (name, value) in &dict {
                assert_eq!(field(&p, admin, name).as_ref(), Some(value), "{name}");
            }
            for hidden in ADMIN_SHOWN.iter().chain(&["nonexistent", "fixed_ips:x"]) {
                assert_eq!(
                    field(&p, admin, hidden).is_some(),
                    dict.contains_key(*hidden)
                );
            }
            let mut out = Vec::new();
            let fields = [
                "name".to_string(),
                "binding:host_id".into(),
                "id".into(),
                "x".into(),
            ];
            write_port(&p, admin, &[], &fields, &mut out);
            let query = ListQuery::parse(
                Some("fields=name&fields=binding:host_id&fields=id&fields=x"),
                &SPEC,
            )
            .unwrap();
            assert_eq!(
                serde_json::from_slice::<Value>(&out).unwrap(),
                Value::Object(query.project(dict.clone()))
            );
        }
    }
}
