//! `/v2.0/security-group-rules`: create (one or bulk, one group per request), list, show,
//! delete. Rules cannot be updated (every attribute is `allow_put: false` in Neutron).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::auth::RequestContext;
use super::body::{self, CreateBody};
use super::error::{ApiResult, NeutronError};
use super::openapi::ResourceDoc;
use super::query::{CollectionSpec, ListQuery};
use super::security_groups::default_group_project;
use super::{AppState, base_url, listing, path_id};
use neutrino_core::security_group_rules::normalized_cidr;
use neutrino_core::security_groups as groups;
use neutrino_store::security_groups::{self as repo, Rule};
use neutrino_store::{self as store};

pub const SPEC: CollectionSpec = CollectionSpec {
    collection: "security_group_rules",
    filterable: &[
        "id",
        "security_group_id",
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
        "remote_address_group_id",
        "normalized_cidr",
        "belongs_to_default_sg",
        "description",
        "tenant_id",
        "project_id",
        "revision_number",
    ],
    sortable: &[
        "id",
        "security_group_id",
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
        "description",
        "tenant_id",
        "project_id",
        "created_at",
        "updated_at",
        "revision_number",
    ],
};

const CREATE_ATTRS: &[&str] = &[
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "tenant_id",
    "project_id",
];
const READ_ONLY: &[&str] = &[
    "id",
    "normalized_cidr",
    "belongs_to_default_sg",
    "created_at",
    "updated_at",
    "revision_number",
];

pub const DOC: ResourceDoc = ResourceDoc {
    resource: "security_group_rule",
    spec: &SPEC,
    create: CREATE_ATTRS,
    update: &[],
    read_only: READ_ONLY,
    delete: true,
};

pub fn not_found(id: &str) -> NeutronError {
    groups::rule_not_found(id).into()
}

/// The API dict of a rule.
pub fn rule_json(r: &Rule) -> Map<String, Value> {
    let f = &r.fields;
    let m = json!({
        "id": r.id, "tenant_id": r.project_id, "project_id": r.project_id,
        "security_group_id": r.security_group_id, "direction": f.direction,
        "ethertype": f.ethertype, "protocol": f.protocol, "port_range_min": f.port_range_min,
        "port_range_max": f.port_range_max, "remote_ip_prefix": f.remote_ip_prefix,
        "normalized_cidr": f.remote_ip_prefix.as_deref().and_then(normalized_cidr),
        "remote_group_id": f.remote_group_id, "remote_address_group_id": null,
        "belongs_to_default_sg": r.in_default_group, "description": r.description,
        "created_at": r.created_at, "updated_at": r.updated_at,
        "revision_number": r.revision_number,
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
    ctx.require_write("create_security_group_rule")?;
    let (bodies, bulk) =
        match body::create_body(&bytes, "security_group_rule", "security_group_rules")? {
            CreateBody::One(b) => (vec![b], false),
            CreateBody::Bulk(v) => (v, true),
        };
    for b in &bodies {
        body::check_create_attributes(b, CREATE_ATTRS, READ_ONLY)?;
        // Only an admin names another project; the rule is its group's project's anyway.
        ctx.project_for_create(b)?;
    }
    let rules = groups::create_rules(&state, &ctx, &bodies).await?;
    let items = rules.iter().map(|r| Value::Object(rule_json(r))).collect();
    Ok(body::created(
        "security_group_rule",
        "security_group_rules",
        bulk,
        items,
    ))
}

/// Rules as a list reads them.
struct RuleRows {
    store: store::Store,
}

impl listing::Source for RuleRows {
    type Row = Rule;

    fn table(&self) -> &'static store::listing::Table {
        &repo::RULE_TABLE
    }

    async fn fetch(
        &self,
        req: &store::listing::Request,
    ) -> store::Result<Vec<(Self::Row, store::listing::Key)>> {
        repo::rules_page(&self.store, req).await
    }

    fn id(r: &Self::Row) -> &str {
        &r.id
    }

    fn item(&self, r: &Self::Row) -> Map<String, Value> {
        rule_json(r)
    }
}

pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let query = ListQuery::parse(q.as_deref(), &SPEC)?;
    groups::ensure_default(&state, &default_group_project(&ctx, &query)).await?;
    let admin = ctx.is_admin();
    let plan = query.plan(&repo::RULE_TABLE, &[]);
    listing::respond(
        &state.store,
        RuleRows {
            store: state.store.clone(),
        },
        &query,
        plan,
        (!admin).then(|| ctx.project_id.clone()),
        format!("{}/v2.0/security-group-rules", base_url(&headers)),
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
    let r = groups::visible_rule(&mut conn, &ctx, id).await?;
    Ok(Json(
        json!({"security_group_rule": query.project(rule_json(&r))}),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, not_found)?;
    groups::delete_rule(&state, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT` or `DELETE` on the collection: Neutron answers 404 for the rule "None".
pub async fn no_collection_action() -> NeutronError {
    not_found("None")
}
