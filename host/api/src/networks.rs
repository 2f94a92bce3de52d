//! `/v2.0/networks`: create (one or bulk), list, show, update, delete.

use std::collections::HashMap;

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
use neutrino_core::networks::{self, subnet_ids, visible_in};
use neutrino_core::tags::Kind;
use neutrino_store::{self as store, networks as repo, networks::Network};

pub const SPEC: CollectionSpec = CollectionSpec {
    collection: "networks",
    filterable: &[
        "id",
        "name",
        "tenant_id",
        "project_id",
        "admin_state_up",
        "status",
        "shared",
        "router:external",
        "mtu",
        "port_security_enabled",
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
        "is_default",
        "description",
        "revision_number",
        "subnets",
        "tags",
    ],
    sortable: &[
        "id",
        "name",
        "tenant_id",
        "project_id",
        "admin_state_up",
        "status",
        "shared",
        "router:external",
        "mtu",
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
    "admin_state_up",
    "shared",
    "router:external",
    "port_security_enabled",
    "mtu",
    "is_default",
    "availability_zone_hints",
    "segments",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
];
const UPDATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "port_security_enabled",
    "mtu",
    "is_default",
];
const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "subnets",
    "tenant_id",
    "project_id",
    "created_at",
    "updated_at",
    "revision_number",
    "availability_zones",
    "availability_zone_hints",
    "provider:network_type",
    "provider:physical_network",
    "ipv4_address_scope",
    "ipv6_address_scope",
    "l2_adjacency",
    "tags",
];

pub const DOC: ResourceDoc = ResourceDoc {
    resource: "network",
    spec: &SPEC,
    create: CREATE_ATTRS,
    update: UPDATE_ATTRS,
    read_only: READ_ONLY,
    delete: true,
};

pub fn not_found(id: &str) -> NeutronError {
    networks::not_found(id).into()
}

/// The API dict of a network; provider attributes only for admins.
pub fn to_json(n: &Network, subnets: Vec<String>, admin: bool) -> Map<String, Value> {
    let hints: Value =
        serde_json::from_str(&n.availability_zone_hints).unwrap_or_else(|_| json!([]));
    let mut m = json!({
        "id": n.id, "name": n.name, "tenant_id": n.project_id, "project_id": n.project_id,
        "admin_state_up": n.admin_state_up, "mtu": n.mtu, "status": n.status, "subnets": subnets,
        "shared": n.shared, "port_security_enabled": n.port_security_enabled, "router:external": n.external,
        "is_default": n.is_default, "availability_zone_hints": hints, "availability_zones": [],
        "ipv4_address_scope": null, "ipv6_address_scope": null, "l2_adjacency": true,
        "description": n.description, "tags": [], "created_at": n.created_at, "updated_at": n.updated_at,
        "revision_number": n.revision_number,
    });
    if admin {
        m["provider:network_type"] = json!(n.network_type);
        m["provider:physical_network"] = json!(n.physical_network);
        m["provider:segmentation_id"] = json!(n.segmentation_id);
    }
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
    ctx.require_write("create_network")?;
    let (bodies, bulk, projects) =
        body::checked_create_bodies(bytes, "network", "networks", &ctx, check_create).await?;
    // All or nothing; a big bulk in slices (see `bulk`).
    let networks = neutrino_core::bulk::create_networks(&state, &ctx, &bodies, &projects).await?;
    let admin = ctx.is_admin();
    Ok(body::off_worker(networks.len(), body::BIG_ANSWER, move || {
        let created = networks
            .iter()
            .map(|n| Value::Object(to_json(n, vec![], admin)))
            .collect();
        body::created("network", "networks", bulk, created)
    })
    .await)
}

/// Attribute and policy checks of one create body; returns the project the network is for.
fn check_create(ctx: &RequestContext, b: &Map<String, Value>) -> ApiResult<String> {
    body::check_create_attributes(b, CREATE_ATTRS, READ_ONLY)?;
    let project_id = ctx.project_for_create(b)?;
    for admin_only in [
        "shared",
        "router:external",
        "is_default",
        "segments",
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
    ] {
        if b.contains_key(admin_only) && !ctx.is_admin() {
            return Err(NeutronError::forbidden(&format!(
                "create_network:{admin_only}"
            )));
        }
    }
    Ok(project_id)
}

/// Attributes only admins see in a network's dict.
const ADMIN_SHOWN: &[&str] = &[
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
];

/// Networks as a list reads them, with their subnets' ids when wanted.
struct NetworkRows {
    store: store::Store,
    admin: bool,
    subnets: bool,
}

impl listing::Source for NetworkRows {
    type Row = (Network, Vec<String>);

    fn table(&self) -> &'static store::listing::Table {
        &repo::TABLE
    }

    async fn fetch(
        &self,
        req: &store::listing::Request,
    ) -> store::Result<Vec<(Self::Row, store::listing::Key)>> {
        let page = repo::page(&self.store, req).await?;
        let mut subnets: HashMap<String, Vec<String>> = HashMap::new();
        if self.subnets {
            let ids: Vec<String> = page.iter().map(|(n, _)| n.id.clone()).collect();
            for (network, subnet) in store::subnets::ids_on_networks(&self.store, &ids).await? {
                subnets.entry(network).or_default().push(subnet);
            }
        }
        Ok(page
            .into_iter()
            .map(|(n, key)| {
                let ids = subnets.remove(&n.id).unwrap_or_default();
                ((n, ids), key)
            })
            .collect())
    }

    fn id((n, _): &Self::Row) -> &str {
        &n.id
    }

    fn item(&self, (n, subnets): &Self::Row) -> Map<String, Value> {
        to_json(n, subnets.clone(), self.admin)
    }
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
    let source = NetworkRows {
        store: state.store.clone(),
        admin,
        subnets: plan.checks_rows() || query.wants("subnets"),
    };
    listing::respond(
        &state.store,
        source,
        &query,
        plan,
        (!admin).then(|| ctx.project_id.clone()),
        format!("{}/v2.0/networks", base_url(&headers)),
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
    let n = visible_in(&mut conn, &ctx, id).await?;
    let subnets = subnet_ids(&mut conn, id).await?;
    let item = tags::with_tags(
        &mut conn,
        Kind::Network,
        id,
        to_json(&n, subnets, ctx.is_admin()),
    )
    .await?;
    Ok(Json(json!({"network": query.project(item)})))
}

pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = body::update_body(&bytes, "network")?;
    if b.contains_key("provider:segmentation_id") {
        return Err(NeutronError::invalid_input(
            "updating provider:segmentation_id is not supported",
        ));
    }
    body::check_attributes(&b, UPDATE_ATTRS, READ_ONLY)?;
    let (n, subnets) = networks::update(&state, &ctx, id, &b).await?;
    let item = tags::read_with_tags(
        &state,
        Kind::Network,
        id,
        to_json(&n, subnets, ctx.is_admin()),
    )
    .await?;
    Ok(Json(json!({"network": item})))
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, not_found)?;
    networks::delete(&state, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT` or `DELETE` on the collection: Neutron answers 404 for the network "None".
pub async fn no_collection_action() -> NeutronError {
    not_found("None")
}
