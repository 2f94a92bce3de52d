//! `/v2.0/subnets`: create (one or bulk), list, show, update, delete; allocation pools,
//! gateway, DNS servers, host routes and overlap detection.

use std::future::Future;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::auth::RequestContext;
use super::body;
use super::error::{ApiResult, NeutronError};
use super::openapi::ResourceDoc;
use super::query::{CollectionSpec, ListQuery};
use super::{AppState, base_url, listing, path_id, tags};
use neutrino_core::subnets::{self, visible};
use neutrino_core::tags::Kind;
use neutrino_core::{dhcp_scheduling, quotas};
use neutrino_store::{self as store, subnets as repo, subnets::Subnet};

pub const SPEC: CollectionSpec = CollectionSpec {
    collection: "subnets",
    filterable: &[
        "id",
        "name",
        "network_id",
        "tenant_id",
        "project_id",
        "ip_version",
        "cidr",
        "gateway_ip",
        "enable_dhcp",
        "ipv6_ra_mode",
        "ipv6_address_mode",
        "subnetpool_id",
        "description",
        "revision_number",
        "router:external",
        "shared",
        "tags",
    ],
    sortable: &[
        "id",
        "name",
        "network_id",
        "tenant_id",
        "project_id",
        "ip_version",
        "cidr",
        "gateway_ip",
        "enable_dhcp",
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
    "ip_version",
    "cidr",
    "gateway_ip",
    "enable_dhcp",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "subnetpool_id",
    "prefixlen",
    "use_default_subnetpool",
    "service_types",
    "segment_id",
];
const UPDATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "gateway_ip",
    "enable_dhcp",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "service_types",
];
const READ_ONLY: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "network_id",
    "ip_version",
    "cidr",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "subnetpool_id",
    "router:external",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
];

/// Neutron's `max_dns_nameservers` and `max_subnet_host_routes`.
pub const DOC: ResourceDoc = ResourceDoc {
    resource: "subnet",
    spec: &SPEC,
    create: CREATE_ATTRS,
    update: UPDATE_ATTRS,
    read_only: READ_ONLY,
    delete: true,
};

fn not_found(id: &str) -> NeutronError {
    subnets::not_found(id).into()
}

pub fn to_json(s: &Subnet, external: bool) -> Map<String, Value> {
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or_else(|_| json!([]));
    let m = json!({
        "id": s.id, "name": s.name, "project_id": s.project_id, "network_id": s.network_id,
        "ip_version": s.ip_version, "subnetpool_id": s.subnetpool_id, "enable_dhcp": s.enable_dhcp,
        "ipv6_ra_mode": s.ipv6_ra_mode, "ipv6_address_mode": s.ipv6_address_mode,
        "gateway_ip": s.gateway_ip, "cidr": s.cidr, "allocation_pools": parse(&s.allocation_pools),
        "host_routes": parse(&s.host_routes), "dns_nameservers": parse(&s.dns_nameservers),
        "description": s.description, "router:external": external, "service_types": [], "tags": [],
        "created_at": s.created_at, "updated_at": s.updated_at, "revision_number": s.revision_number,
        "tenant_id": s.project_id,
    });
    match m {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    bytes: Bytes,
) -> ApiResult<Response> {
    ctx.require_write("create_subnet")?;
    let (bodies, bulk, projects) =
        body::checked_create_bodies(bytes, "subnet", "subnets", &ctx, |ctx, b| {
            body::check_create_attributes(b, CREATE_ATTRS, READ_ONLY)?;
            Ok(ctx.project_for_create(b)?)
        })
        .await?;
    // All or nothing: one transaction for the whole request, its quota checked first; run
    // again whole when it met a concurrent write (a network delete: a deadlock, or the
    // network gone under it), as Neutron's DB retry does.
    let (created, newest, networks) = neutrino_core::retry::retrying("subnet create", || {
        create_all(&state, &ctx, &bodies, &projects)
    })
    .await?;
    state.feed.committed(newest);
    // A network given a DHCP port: the port is bound now, after the commit.
    dhcp_scheduling::bind_committed(&state, &networks).await;
    Ok(body::created("subnet", "subnets", bulk, created))
}

/// One run of a subnet create: every subnet of the request in one transaction, committed; with
/// the networks whose DHCP may have been scheduled.
async fn create_all(
    state: &AppState,
    ctx: &RequestContext,
    bodies: &[Map<String, Value>],
    projects: &[String],
) -> neutrino_core::error::CoreResult<(Vec<Value>, Option<i64>, Vec<String>)> {
    let mut tx = state.store.begin_write().await?;
    let deltas: Vec<(String, i64)> = projects.iter().map(|p| (p.clone(), 1)).collect();
    quotas::Ledger::check(&mut tx, state.store.backend, "subnet", &deltas).await?;
    let mut created = Vec::with_capacity(bodies.len());
    let mut networks: Vec<String> = Vec::new();
    for (b, project_id) in bodies.iter().zip(projects) {
        let (s, external) = subnets::create_one(state, ctx, project_id.clone(), b, &mut tx).await?;
        if !networks.contains(&s.network_id) {
            networks.push(s.network_id.clone());
        }
        created.push(Value::Object(to_json(&s, external)));
    }
    let mut newest = None;
    for network_id in &networks {
        newest = newest.max(dhcp_scheduling::subnets_changed(state, &mut tx, network_id).await?);
    }
    store::commit(tx).await?;
    Ok((created, newest, networks))
}

/// Subnets as a list reads them, with whether their network is external.
struct SubnetRows {
    store: store::Store,
}

impl listing::Source for SubnetRows {
    type Row = (Subnet, bool);

    fn table(&self) -> &'static store::listing::Table {
        &repo::TABLE
    }

    fn fetch(
        &self,
        req: &store::listing::Request,
    ) -> impl Future<Output = store::Result<Vec<(Self::Row, store::listing::Key)>>> + Send {
        repo::page(&self.store, req)
    }

    fn id((s, _): &Self::Row) -> &str {
        &s.id
    }

    fn item(&self, (s, external): &Self::Row) -> Map<String, Value> {
        to_json(s, *external)
    }
}

pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let query = ListQuery::parse(q.as_deref(), &SPEC)?;
    let plan = query.plan(&repo::TABLE, &[]);
    let source = SubnetRows {
        store: state.store.clone(),
    };
    listing::respond(
        &state.store,
        source,
        &query,
        plan,
        (!ctx.is_admin()).then(|| ctx.project_id.clone()),
        format!("{}/v2.0/subnets", base_url(&headers)),
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
    let (s, network) = visible(&mut conn, &ctx, id).await?;
    let item = tags::with_tags(&mut conn, Kind::Subnet, id, to_json(&s, network.external)).await?;
    Ok(Json(json!({"subnet": query.project(item)})))
}

pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = body::update_body(&bytes, "subnet")?;
    body::check_attributes(&b, UPDATE_ATTRS, READ_ONLY)?;
    let (s, external) = subnets::update(&state, &ctx, id, &b).await?;
    let item = tags::read_with_tags(&state, Kind::Subnet, id, to_json(&s, external)).await?;
    Ok(Json(json!({"subnet": item})))
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, not_found)?;
    subnets::delete(&state, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT` or `DELETE` on the collection.
pub async fn no_collection_action() -> NeutronError {
    not_found("None")
}
