//! `/v2.0/subnetpools`: create (one or bulk), list, show, update, delete (`subnet_allocation`,
//! `default-subnetpools`). Subnets are allocated from pools by `/v2.0/subnets`.

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
use neutrino_core::subnet_pools as pools;
use neutrino_core::tags::Kind;
use neutrino_store::subnet_pools::{self as repo, SubnetPool};
use neutrino_store::{self as store};

pub const SPEC: CollectionSpec = CollectionSpec {
    collection: "subnetpools",
    filterable: &[
        "id",
        "name",
        "description",
        "tenant_id",
        "project_id",
        "prefixes",
        "default_prefixlen",
        "min_prefixlen",
        "max_prefixlen",
        "default_quota",
        "ip_version",
        "shared",
        "is_default",
        "address_scope_id",
        "revision_number",
        "tags",
    ],
    sortable: &[
        "id",
        "name",
        "description",
        "tenant_id",
        "project_id",
        "default_prefixlen",
        "min_prefixlen",
        "max_prefixlen",
        "default_quota",
        "ip_version",
        "shared",
        "is_default",
        "created_at",
        "updated_at",
        "revision_number",
    ],
};

const CREATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "tenant_id",
    "project_id",
    "prefixes",
    "default_prefixlen",
    "min_prefixlen",
    "max_prefixlen",
    "default_quota",
    "shared",
    "is_default",
    "address_scope_id",
];
const UPDATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "prefixes",
    "default_prefixlen",
    "min_prefixlen",
    "max_prefixlen",
    "default_quota",
    "is_default",
    "address_scope_id",
];
const READ_ONLY: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "ip_version",
    "shared",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
];

pub const DOC: ResourceDoc = ResourceDoc {
    resource: "subnetpool",
    spec: &SPEC,
    create: CREATE_ATTRS,
    update: UPDATE_ATTRS,
    read_only: READ_ONLY,
    delete: true,
};

pub fn not_found(id: &str) -> NeutronError {
    pools::not_found(id).into()
}

/// The API dict of a pool. The prefix lengths are strings, as Neutron shows them.
pub fn to_json(p: &SubnetPool) -> Map<String, Value> {
    let prefixes: Value = serde_json::from_str(&p.prefixes).unwrap_or_else(|_| json!([]));
    let m = json!({
        "id": p.id, "name": p.name, "project_id": p.project_id,
        "default_prefixlen": p.default_prefixlen.to_string(),
        "min_prefixlen": p.min_prefixlen.to_string(),
        "max_prefixlen": p.max_prefixlen.to_string(),
        "is_default": p.is_default, "shared": p.shared, "prefixes": prefixes,
        "ip_version": p.ip_version, "default_quota": p.default_quota, "address_scope_id": null,
        "description": p.description, "tags": [], "created_at": p.created_at,
        "updated_at": p.updated_at, "revision_number": p.revision_number,
        "tenant_id": p.project_id,
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
    ctx.require_write("create_subnetpool")?;
    let (bodies, bulk, projects) =
        body::checked_create_bodies(bytes, "subnetpool", "subnetpools", &ctx, |ctx, b| {
            body::check_create_attributes(b, CREATE_ATTRS, READ_ONLY)?;
            Ok(ctx.project_for_create(b)?)
        })
        .await?;
    let created = pools::create(&state, &ctx, &bodies, &projects).await?;
    let items = created.iter().map(|p| Value::Object(to_json(p))).collect();
    Ok(body::created("subnetpool", "subnetpools", bulk, items))
}

/// Pools as a list reads them.
struct PoolRows {
    store: store::Store,
}

impl listing::Source for PoolRows {
    type Row = SubnetPool;

    fn table(&self) -> &'static store::listing::Table {
        &repo::TABLE
    }

    fn fetch(
        &self,
        req: &store::listing::Request,
    ) -> impl Future<Output = store::Result<Vec<(Self::Row, store::listing::Key)>>> + Send {
        repo::page(&self.store, req)
    }

    fn id(p: &Self::Row) -> &str {
        &p.id
    }

    fn item(&self, p: &Self::Row) -> Map<String, Value> {
        to_json(p)
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
    let source = PoolRows {
        store: state.store.clone(),
    };
    listing::respond(
        &state.store,
        source,
        &query,
        plan,
        (!ctx.is_admin()).then(|| ctx.project_id.clone()),
        format!("{}/v2.0/subnetpools", base_url(&headers)),
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
    let p = pools::visible(&mut conn, &ctx, id).await?;
    let item = tags::with_tags(&mut conn, Kind::SubnetPool, id, to_json(&p)).await?;
    Ok(Json(json!({"subnetpool": query.project(item)})))
}

pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = body::update_body(&bytes, "subnetpool")?;
    body::check_attributes(&b, UPDATE_ATTRS, READ_ONLY)?;
    let p = pools::update(&state, &ctx, id, &b).await?;
    let item = tags::read_with_tags(&state, Kind::SubnetPool, id, to_json(&p)).await?;
    Ok(Json(json!({"subnetpool": item})))
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, not_found)?;
    pools::delete(&state, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT` or `DELETE` on the collection: Neutron answers 404 for the pool "None".
pub async fn no_collection_action() -> NeutronError {
    not_found("None")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sort key without a column would be dropped from the order.
    #[test]
    fn every_sort_key_has_a_column() {
        for attr in SPEC.sortable {
            assert!(repo::TABLE.column(attr).is_some(), "{attr}");
        }
    }

    /// Every filter Neutron accepts on pools is accepted here.
    #[test]
    fn every_filter_is_accepted() {
        for attr in SPEC.filterable {
            let raw = format!("{attr}=1");
            assert!(ListQuery::parse(Some(&raw), &SPEC).is_ok(), "{attr}");
        }
    }

    #[test]
    fn prefix_lengths_are_shown_as_strings() {
        let p = SubnetPool {
            id: "i".into(),
            project_id: "p".into(),
            name: "n".into(),
            description: String::new(),
            ip_version: 4,
            prefixes: r#"["10.0.0.0/8"]"#.into(),
            default_prefixlen: 24,
            min_prefixlen: 8,
            max_prefixlen: 32,
            default_quota: None,
            shared: false,
            is_default: false,
            created_at: String::new(),
            updated_at: String::new(),
            revision_number: 0,
        };
        let m = to_json(&p);
        assert_eq!(m["default_prefixlen"], "24");
        assert_eq!(m["prefixes"], json!(["10.0.0.0/8"]));
        assert_eq!(m["default_quota"], Value::Null);
    }
}
