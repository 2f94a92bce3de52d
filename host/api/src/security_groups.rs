//! `/v2.0/security-groups`: create (one or bulk), list, show, update, delete. Each group shows
//! its rules (`security_group_rules`); listing creates the project's `default` group when it
//! has none, as Neutron does.

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
use super::security_group_rules::rule_json;
use super::{AppState, base_url, listing, path_id, tags};
use neutrino_core::security_groups as groups;
use neutrino_core::tags::Kind;
use neutrino_store::security_groups::{self as repo, Rule, SecurityGroup};
use neutrino_store::{self as store};

pub const SPEC: CollectionSpec = CollectionSpec {
    collection: "security_groups",
    filterable: &[
        "id",
        "name",
        "description",
        "tenant_id",
        "project_id",
        "stateful",
        "shared",
        "revision_number",
        "tags",
    ],
    sortable: &[
        "id",
        "name",
        "description",
        "tenant_id",
        "project_id",
        "stateful",
        "created_at",
        "updated_at",
        "revision_number",
    ],
};

const CREATE_ATTRS: &[&str] = &["name", "description", "tenant_id", "project_id", "stateful"];
const UPDATE_ATTRS: &[&str] = &["name", "description", "stateful"];
const READ_ONLY: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "shared",
    "security_group_rules",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
];

pub const DOC: ResourceDoc = ResourceDoc {
    resource: "security_group",
    spec: &SPEC,
    create: CREATE_ATTRS,
    update: UPDATE_ATTRS,
    read_only: READ_ONLY,
    delete: true,
};

pub fn not_found(id: &str) -> NeutronError {
    groups::not_found(id).into()
}

/// The API dict of a group, with its rules.
pub fn to_json(g: &SecurityGroup, rules: &[Rule]) -> Map<String, Value> {
    let rules: Vec<Value> = rules.iter().map(|r| Value::Object(rule_json(r))).collect();
    let m = json!({
        "id": g.id, "name": g.name, "description": g.description, "stateful": g.stateful,
        "tenant_id": g.project_id, "project_id": g.project_id, "shared": false,
        "security_group_rules": rules, "tags": [], "created_at": g.created_at,
        "updated_at": g.updated_at, "revision_number": g.revision_number,
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
    ctx.require_write("create_security_group")?;
    let (bodies, bulk, projects) = body::checked_create_bodies(
        bytes,
        "security_group",
        "security_groups",
        &ctx,
        check_create,
    )
    .await?;
    let created = groups::create(&state, &bodies, &projects).await?;
    let items = created
        .iter()
        .map(|(g, rules)| Value::Object(to_json(g, rules)))
        .collect();
    Ok(body::created(
        "security_group",
        "security_groups",
        bulk,
        items,
    ))
}

fn check_create(ctx: &RequestContext, b: &Map<String, Value>) -> ApiResult<String> {
    body::check_create_attributes(b, CREATE_ATTRS, READ_ONLY)?;
    Ok(ctx.project_for_create(b)?)
}

/// Groups as a list reads them, with their rules when shown.
struct GroupRows {
    store: store::Store,
    rules: bool,
}

impl listing::Source for GroupRows {
    type Row = (SecurityGroup, Vec<Rule>);

    fn table(&self) -> &'static store::listing::Table {
        &repo::TABLE
    }

    async fn fetch(
        &self,
        req: &store::listing::Request,
    ) -> store::Result<Vec<(Self::Row, store::listing::Key)>> {
        let page = repo::page(&self.store, req).await?;
        let mut rules: HashMap<String, Vec<Rule>> = HashMap::new();
        if self.rules {
            let ids: Vec<String> = page.iter().map(|(g, _)| g.id.clone()).collect();
            for rule in repo::rules_of_page(&self.store, &ids).await? {
                rules
                    .entry(rule.security_group_id.clone())
                    .or_default()
                    .push(rule);
            }
        }
        Ok(page
            .into_iter()
            .map(|(g, key)| {
                let own = rules.remove(&g.id).unwrap_or_default();
                ((g, own), key)
            })
            .collect())
    }

    fn id((g, _): &Self::Row) -> &str {
        &g.id
    }

    fn item(&self, (g, rules): &Self::Row) -> Map<String, Value> {
        to_json(g, rules)
    }
}

/// The project whose default group a list makes sure of (Neutron's
/// `_ensure_default_security_group` on list): the one the list filters by, else the caller's;
/// never another project's for a non-admin (Neutron bug 1987410).
pub fn default_group_project(ctx: &RequestContext, query: &ListQuery) -> String {
    let filtered: Vec<&str> = query
        .values("project_id")
        .into_iter()
        .chain(query.values("tenant_id"))
        .collect();
    match filtered.as_slice() {
        [one] if ctx.is_admin() && !one.is_empty() && !one.contains('\0') => one.to_string(),
        _ => ctx.project_id.clone(),
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
    let plan = query.plan(&repo::TABLE, &[]);
    let source = GroupRows {
        store: state.store.clone(),
        rules: plan.checks_rows() || query.wants("security_group_rules"),
    };
    listing::respond(
        &state.store,
        source,
        &query,
        plan,
        (!admin).then(|| ctx.project_id.clone()),
        format!("{}/v2.0/security-groups", base_url(&headers)),
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
    let (g, rules) = groups::show(&mut conn, &ctx, id).await?;
    let item = tags::with_tags(&mut conn, Kind::SecurityGroup, id, to_json(&g, &rules)).await?;
    Ok(Json(json!({"security_group": query.project(item)})))
}

pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = body::update_body(&bytes, "security_group")?;
    body::check_attributes(&b, UPDATE_ATTRS, READ_ONLY)?;
    let (g, rules) = groups::update(&state, &ctx, id, &b).await?;
    let item = tags::read_with_tags(&state, Kind::SecurityGroup, id, to_json(&g, &rules)).await?;
    Ok(Json(json!({"security_group": item})))
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, not_found)?;
    groups::delete(&state, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT` or `DELETE` on the collection: Neutron answers 404 for the group "None".
pub async fn no_collection_action() -> NeutronError {
    not_found("None")
}
