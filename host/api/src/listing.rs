//! Lists answered by the database and written while they are read.
//!
//! A handler parses the query ([`ListQuery`]), asks it for a [`Plan`] on its table and hands
//! both to [`respond`] with a [`Source`] (how its rows are read and written as JSON). Rows are
//! read in keyset pages of at most [`CHUNK`] (a `limit` page in one query when SQL answers every
//! filter), filters SQL cannot answer are checked row by row, and the body is written as the
//! rows come: a list of any length holds one chunk at a time. A body that fits in the first
//! chunk is sent whole (with its length); a longer one is streamed.
//!
//! Paging follows neutron: the marker is looked up by id among the rows the caller may see
//! (unknown: the resource's 404), `page_reverse` pages are the `limit` rows before the marker
//! in the requested order, and the links are those of `get_pagination_links`
//! ([`ListQuery::page_links`]).

use neutrino_store as store;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::{StreamExt as _, stream};
use serde_json::Map;

use super::error::{ApiResult, NeutronError};
use super::query::{ListQuery, Plan};
use neutrino_store::Store;
use neutrino_store::listing::{self, Key, Request, Start, Table};
use serde_json::Value;

/// An API dict.
pub type Item = Map<String, Value>;

/// Rows read per query when a list is read through.
pub const CHUNK: usize = 1000;

/// A collection's rows: how they are read and shown.
pub trait Source: Send + Sync + 'static {
    type Row: Send + 'static;

    fn table(&self) -> &'static Table;

    /// One page of rows as `req` says, each with its key.
    fn fetch(
        &self,
        req: &Request,
    ) -> impl Future<Output = store::Result<Vec<(Self::Row, Key)>>> + Send;

    fn id(row: &Self::Row) -> &str;

    /// The row's full API dict, as the caller sees it.
    fn item(&self, row: &Self::Row) -> Item;

    /// Writes the row's API dict, only `fields` when some are given.
    fn write(&self, row: &Self::Row, fields: &[String], out: &mut Vec<u8>) {
        let mut item = self.item(row);
        if !fields.is_empty() {
            item.retain(|k, _| fields.iter().any(|f| f == k));
        }
        write_json(out, &item);
    }

    /// [`Source::write`] with the row's `tags` (read beside the rows, see [`Tagged`]).
    fn write_tagged(&self, row: &Self::Row, tags: &[String], fields: &[String], out: &mut Vec<u8>) {
        let mut item = self.item(row);
        item.insert("tags".into(), Value::from(tags.to_vec()));
        if !fields.is_empty() {
            item.retain(|k, _| fields.iter().any(|f| f == k));
        }
        write_json(out, &item);
    }
}

/// A source whose rows carry tags: each page's tags are read in one query beside its rows
/// (when the answer shows them) and shown on each row.
struct Tagged<S: Source> {
    inner: S,
    store: Store,
    kind: store::tags::Kind,
    /// Whether the answer shows tags (else they are not read).
    wanted: bool,
}

impl<S: Source> Source for Tagged<S> {
    type Row = (S::Row, Vec<String>);

    fn table(&self) -> &'static Table {
        self.inner.table()
    }

    async fn fetch(&self, req: &Request) -> store::Result<Vec<(Self::Row, Key)>> {
        let rows = self.inner.fetch(req).await?;
        let mut tags = if self.wanted && !rows.is_empty() {
            let ids: Vec<String> = rows.iter().map(|(r, _)| S::id(r).to_string()).collect();
            store::tags::of_many(&self.store, self.kind, &ids).await?
        } else {
            Default::default()
        };
        Ok(rows
            .into_iter()
            .map(|(row, key)| {
                let row_tags = tags.remove(S::id(&row)).unwrap_or_default();
                ((row, row_tags), key)
            })
            .collect())
    }

    fn id((row, _): &Self::Row) -> &str {
        S::id(row)
    }

    fn item(&self, (row, tags): &Self::Row) -> Item {
        let mut item = self.inner.item(row);
        item.insert("tags".into(), Value::from(tags.clone()));
        item
    }

    fn write(&self, (row, tags): &Self::Row, fields: &[String], out: &mut Vec<u8>) {
        self.inner.write_tagged(row, tags, fields, out)
    }
}

/// Serialises into a buffer (which cannot fail for these values).
pub fn write_json(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    if let Err(e) = serde_json::to_writer(out, value) {
        tracing::error!("cannot serialise a list item: {e}");
    }
}

/// Reads the matching rows in order, a chunk at a time.
struct Walk<S: Source> {
    source: S,
    plan: Plan,
    req: Request,
    /// Rows still wanted (None: all).
    remaining: Option<usize>,
    /// The last read was short: nothing is left.
    exhausted: bool,
}

impl<S: Source> Walk<S> {
    fn finished(&self) -> bool {
        self.exhausted || self.remaining == Some(0)
    }

    /// The next matching rows, or None at the end.
    async fn next(&mut self) -> store::Result<Option<Vec<(S::Row, Key)>>> {
        while !self.finished() {
            let wanted = match self.remaining {
                Some(n) if !self.plan.checks_rows() => n.min(CHUNK),
                _ => CHUNK,
            };
            self.req.limit = wanted;
            let rows = self.source.fetch(&self.req).await?;
            self.exhausted = rows.len() < wanted;
            if let Some((_, key)) = rows.last() {
                self.req.start = Start::After(key.clone());
            }
            let mut kept = if self.plan.checks_rows() {
                let (source, plan) = (&self.source, &self.plan);
                rows.into_iter()
                    .filter(|(row, _)| plan.keeps(&source.item(row)))
                    .collect()
            } else {
                rows
            };
            if let Some(remaining) = &mut self.remaining {
                kept.truncate(*remaining);
                *remaining -= kept.len();
            }
            if !kept.is_empty() {
                return Ok(Some(kept));
            }
        }
        Ok(None)
    }
}

/// Writes `{"<collection>": [...], "<collection>_links": [...]}` as the rows come.
struct Writer<S: Source> {
    walk: Walk<S>,
    collection: &'static str,
    fields: Vec<String>,
    /// The query and base URL the links are made of, when paging.
    links: Option<(ListQuery, String)>,
    count: usize,
    first_id: Option<String>,
    last_id: Option<String>,
}

impl<S: Source> Writer<S> {
    fn head(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{{\"{}\":[", self.collection).as_bytes());
    }

    fn rows(&mut self, rows: &[(S::Row, Key)], out: &mut Vec<u8>) {
        for (row, _) in rows {
            if self.count == 0 {
                self.first_id = Some(S::id(row).to_string());
            } else {
                out.push(b',');
            }
            self.walk.source.write(row, &self.fields, out);
            self.count += 1;
        }
        if let Some((row, _)) = rows.last() {
            self.last_id = Some(S::id(row).to_string());
        }
    }

    fn tail(&mut self, out: &mut Vec<u8>) {
        out.push(b']');
        if let Some((query, base_url)) = &self.links {
            let links = query.page_links(
                self.count,
                self.first_id.take(),
                self.last_id.take(),
                base_url,
            );
            out.extend_from_slice(format!(",\"{}_links\":", self.collection).as_bytes());
            write_json(out, &links);
        }
        out.push(b'}');
    }
}

/// Answers a list request from the database. `visible_to`: the caller's project when it may
/// not see every row; `not_found`: the resource's 404 for an unknown marker. Rows of a table
/// with tags are shown with them.
pub async fn respond<S: Source>(
    store: &Store,
    source: S,
    query: &ListQuery,
    plan: Plan,
    visible_to: Option<String>,
    base_url: String,
    not_found: fn(&str) -> NeutronError,
) -> ApiResult<Response> {
    match source.table().tags {
        Some(kind) => {
            let tagged = Tagged {
                inner: source,
                store: store.clone(),
                kind,
                wanted: query.wants("tags") || plan.checks_rows(),
            };
            respond_rows(store, tagged, query, plan, visible_to, base_url, not_found).await
        }
        None => respond_rows(store, source, query, plan, visible_to, base_url, not_found).await,
    }
}

async fn respond_rows<S: Source>(
    store: &Store,
    source: S,
    query: &ListQuery,
    plan: Plan,
    visible_to: Option<String>,
    base_url: String,
    not_found: fn(&str) -> NeutronError,
) -> ApiResult<Response> {
    let limit = query.limit();
    let mut start = Start::First;
    if let Some(marker) = query.marker() {
        // No id holds a NUL (and PostgreSQL cannot compare with one): an unknown marker.
        if marker.contains('\0') {
            return Err(not_found(marker));
        }
        let table = source.table();
        match listing::key_of(store, table, &plan.order, marker, visible_to.as_deref()).await? {
            Some(key) => start = Start::After(key),
            None => return Err(not_found(marker)),
        }
    }
    let req = Request {
        conditions: plan.conditions.clone(),
        visible_to,
        order: plan.order.clone(),
        backwards: query.page_reverse(),
        start,
        limit: CHUNK,
    };
    let mut walk = Walk {
        source,
        plan,
        req,
        remaining: (limit > 0).then_some(limit),
        exhausted: false,
    };
    if limit > 0 && query.page_reverse() {
        // The page is the `limit` rows before the marker, in the requested order: read
        // backwards to find its first row (keeping only the count and that row's key), then
        // read the page forwards from it.
        let mut count = 0;
        let mut first: Option<Key> = None;
        while let Some(rows) = walk.next().await? {
            count += rows.len();
            first = rows.last().map(|(_, key)| key.clone());
        }
        walk.req.backwards = false;
        walk.remaining = Some(count);
        walk.exhausted = first.is_none();
        walk.req.start = first.map_or(Start::First, Start::At);
    }
    let mut writer = Writer {
        walk,
        collection: query.collection(),
        fields: query.fields().to_vec(),
        links: (limit > 0).then(|| (query.clone(), base_url)),
        count: 0,
        first_id: None,
        last_id: None,
    };
    let mut first = Vec::new();
    writer.head(&mut first);
    if let Some(rows) = writer.walk.next().await? {
        writer.rows(&rows, &mut first);
    }
    if writer.walk.finished() {
        writer.tail(&mut first);
        return Ok(json_response(Body::from(first)));
    }
    // Longer than a chunk: the rest is read as the client takes it.
    let rest = stream::unfold(Some(writer), |writer| async move {
        let mut writer = writer?;
        let mut out = Vec::new();
        match writer.walk.next().await {
            Ok(Some(rows)) => {
                writer.rows(&rows, &mut out);
                Some((Ok(Bytes::from(out)), Some(writer)))
            }
            Ok(None) => {
                writer.tail(&mut out);
                Some((Ok(Bytes::from(out)), None))
            }
            Err(e) => {
                tracing::warn!("list of {} cut short: {e}", writer.collection);
                Some((Err(e), None))
            }
        }
    });
    let body =
        stream::once(async move { Ok::<_, neutrino_store::Error>(Bytes::from(first)) }).chain(rest);
    Ok(json_response(Body::from_stream(body)))
}

fn json_response(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::super::query::CollectionSpec;
    use super::super::{networks, ports, security_group_rules, security_groups, subnets};
    use super::Table;
    use neutrino_store as store;

    /// Every attribute Neutron lets a list of these collections filter by (`is_filter` in
    /// neutron-lib's and neutron's attribute maps, for the attributes and extensions served
    /// here) is accepted as a filter: none answers "invalid attribute for filtering".
    #[test]
    fn every_neutron_filter_is_accepted() {
        use super::super::query::ListQuery;
        const TAGS: [&str; 4] = ["tags", "tags-any", "not-tags", "not-tags-any"];
        const STANDARD: [&str; 4] = ["id", "tenant_id", "project_id", "description"];
        let neutron: [(&CollectionSpec, &[&str]); 4] = [
            (
                &networks::SPEC,
                &[
                    "name",
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
                    "revision_number",
                ],
            ),
            (
                &subnets::SPEC,
                &[
                    "name",
                    "ip_version",
                    "network_id",
                    "subnetpool_id",
                    "cidr",
                    "gateway_ip",
                    "enable_dhcp",
                    "ipv6_ra_mode",
                    "ipv6_address_mode",
                    "shared",
                    "router:external",
                    "revision_number",
                ],
            ),
            (
                &ports::SPEC,
                &[
                    "name",
                    "network_id",
                    "admin_state_up",
                    "mac_address",
                    "fixed_ips",
                    "device_id",
                    "device_owner",
                    "status",
                    "binding:host_id",
                    "security_groups",
                    "port_security_enabled",
                    "dns_name",
                    "revision_number",
                ],
            ),
            (
                &security_groups::SPEC,
                &["name", "stateful", "shared", "revision_number"],
            ),
        ];
        for (spec, attributes) in neutron {
            for attr in attributes.iter().chain(&STANDARD).chain(&TAGS) {
                let value = if *attr == "fixed_ips" {
                    "ip_address=10.0.0.1"
                } else {
                    "1"
                };
                let raw = format!("{attr}={value}");
                assert!(
                    ListQuery::parse(Some(&raw), spec).is_ok(),
                    "{}: {attr}",
                    spec.collection
                );
            }
        }
    }

    /// A sort key without a column would be dropped from the order: every sortable attribute
    /// of a collection answered by the database has one.
    #[test]
    fn every_sort_key_has_a_column() {
        let collections: [(&CollectionSpec, &'static Table); 5] = [
            (&ports::SPEC, &store::ports::TABLE),
            (&networks::SPEC, &store::networks::TABLE),
            (&subnets::SPEC, &store::subnets::TABLE),
            (&security_groups::SPEC, &store::security_groups::TABLE),
            (
                &security_group_rules::SPEC,
                &store::security_groups::RULE_TABLE,
            ),
        ];
        for (spec, table) in collections {
            for attr in spec.sortable {
                assert!(table.column(attr).is_some(), "{}: {attr}", spec.collection);
            }
        }
    }
}
