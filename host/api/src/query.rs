//! Neutron's list query features: filtering (`?attr=value`), field selection (`fields=`),
//! sorting (`sort_key`/`sort_dir`) and pagination (`limit`/`marker`/`page_reverse`, answered
//! with `<collection>_links`).
//!
//! [`ListQuery::parse`] reads a request's query. Collections kept in the database (ports,
//! networks, subnets) are answered by it: [`ListQuery::plan`] says what SQL checks and what is
//! checked per row, and `api::listing` reads the pages and writes the answer. Collections that
//! are small and partly in memory by nature (agents, whose liveness comes from the heartbeat
//! buffer) are answered by [`ListQuery::apply`] over their full API dicts, with the same rules.
//! Error types and texts follow neutron's `api/api_common.py` and the recorded upstream
//! transcript, since tempest and the SDKs key on the `type` (and sometimes the message).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::error::NeutronError;
use neutrino_store::listing::{Condition, Kind, Param, Sort, Table, TagTest};

type Item = Map<String, Value>;

/// What a collection accepts in its query string.
pub struct CollectionSpec {
    /// The collection name, e.g. `"networks"`; also names the `<collection>_links` key.
    pub collection: &'static str,
    /// Attribute names accepted as `?attr=value` filters.
    pub filterable: &'static [&'static str],
    /// Attribute names accepted as `sort_key`.
    pub sortable: &'static [&'static str],
}

/// Query keys that steer the listing instead of filtering it (neutron's `skips`). `verbose` is a
/// neutronclient leftover some clients still send; it is accepted and ignored.
const CONTROL_KEYS: &[&str] = &[
    "fields",
    "sort_key",
    "sort_dir",
    "limit",
    "marker",
    "page_reverse",
    "verbose",
];

/// Attributes whose filter values neutron runs through `convert_to_boolean` while parsing, so a
/// bad value is a 400 even when no item would have been compared.
const BOOLEAN_ATTRIBUTES: &[&str] = &[
    "admin_state_up",
    "shared",
    "router:external",
    "port_security_enabled",
    "enable_dhcp",
    "is_default",
    "ha",
    "distributed",
    "enable_snat",
    "dns_publish_fixed_ip",
    "vlan_transparent",
    "alive",
];

/// The text of neutron's `convert_to_boolean` failure (wrapped in `InvalidInput`).
fn bad_boolean(value: &str) -> NeutronError {
    NeutronError::invalid_input(format!("'{value}' cannot be converted to boolean."))
}

/// A parsed `?...` of a list (or show) request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    collection: &'static str,
    /// The decoded pairs in request order: page links repeat them.
    pairs: Vec<(String, String)>,
    filters: Vec<Filter>,
    fields: Vec<String>,
    sorts: Vec<SortKey>,
    /// 0 means "no paging" (and then `marker` is ignored, as in neutron).
    limit: usize,
    marker: Option<String>,
    page_reverse: bool,
}

impl ListQuery {
    /// Parses the raw query string of a list request: percent-decoded pairs, repeated keys
    /// allowed. Checks run in neutron's order: filters, then sorting, then `limit`.
    pub fn parse(
        raw_query: Option<&str>,
        spec: &CollectionSpec,
    ) -> Result<ListQuery, NeutronError> {
        let pairs = decode_pairs(raw_query);
        let filters = parse_filters(&pairs, spec)?;
        let sorts = parse_sorts(&pairs, spec)?;
        let limit = parse_limit(&pairs)?;
        // Neutron only reads the marker when paging.
        let marker = last_value(&pairs, "marker")
            .filter(|m| limit > 0 && !m.is_empty())
            .map(str::to_string);
        let page_reverse =
            last_value(&pairs, "page_reverse").is_some_and(|v| v.to_lowercase() == "true");
        Ok(ListQuery {
            collection: spec.collection,
            fields: requested_fields(&pairs),
            pairs,
            filters,
            sorts,
            limit,
            marker,
            page_reverse,
        })
    }

    /// Parses only `fields=` and never fails: a show (`GET /v2.0/<collection>/<id>`) ignores
    /// every other query parameter in neutron, unknown ones included.
    pub fn parse_fields(raw_query: Option<&str>, spec: &CollectionSpec) -> ListQuery {
        let pairs = decode_pairs(raw_query);
        ListQuery {
            collection: spec.collection,
            fields: requested_fields(&pairs),
            pairs,
            filters: Vec::new(),
            sorts: Vec::new(),
            limit: 0,
            marker: None,
            page_reverse: false,
        }
    }

    /// The requested fields (empty: all), so a handler can avoid work.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Whether the response will carry `attribute` (true when no `fields=` were given).
    pub fn wants(&self, attribute: &str) -> bool {
        self.fields.is_empty() || self.fields.iter().any(|f| f == attribute)
    }

    /// Filters, sorts, paginates and projects `items`. `base_url` is the absolute collection URL
    /// (`http://host:9696/v2.0/networks`) the page links start with. Returns
    /// `{"<collection>": [...]}` plus `"<collection>_links": [...]` when paginating.
    pub fn apply(&self, items: Vec<Item>, base_url: &str) -> Value {
        let sorts = self.effective_sorts();
        // Neutron fetches the marker by id regardless of the filters and pages from its sort
        // position. An id we do not have is treated as no marker (neutron would 404).
        let marker = self
            .marker
            .as_deref()
            .and_then(|id| items.iter().find(|i| id_of(i) == Some(id)).cloned());
        let mut matching: Vec<Item> = items.into_iter().filter(|i| self.matches(i)).collect();
        matching.sort_by(|a, b| compare_items(a, b, &sorts));
        let page = self.page(matching, marker.as_ref(), &sorts);

        let mut body = Map::new();
        if self.limit > 0 {
            body.insert(
                format!("{}_links", self.collection),
                Value::Array(self.links(&page, base_url)),
            );
        }
        let projected = page
            .into_iter()
            .map(|i| Value::Object(self.project(i)))
            .collect();
        body.insert(self.collection.to_string(), Value::Array(projected));
        Value::Object(body)
    }

    /// Applies only `fields=` to one item (for a show with `?fields=`). Unknown field names are
    /// ignored; `fields=tenant_id` keeps only `tenant_id` (and likewise `project_id`).
    pub fn project(&self, item: Item) -> Item {
        if self.fields.is_empty() {
            return item;
        }
        item.into_iter().filter(|(k, _)| self.wants(k)).collect()
    }

    fn matches(&self, item: &Item) -> bool {
        self.filters.iter().all(|f| f.matches(item))
    }

    /// The requested sort keys plus `id` ascending as a tie-breaker. Neutron's native pagination
    /// helper always appends it (not only when paging), which is why plain lists come back in id
    /// order; it also makes markers unambiguous.
    fn effective_sorts(&self) -> Vec<SortKey> {
        let mut sorts = self.sorts.clone();
        if !sorts.iter().any(|s| s.key == "id") {
            sorts.push(SortKey {
                key: "id".into(),
                ascending: true,
            });
        }
        sorts
    }

    /// Cuts the page out of the sorted, filtered items.
    fn page(&self, mut sorted: Vec<Item>, marker: Option<&Item>, sorts: &[SortKey]) -> Vec<Item> {
        if self.limit == 0 {
            // Neutron flips the sort directions for page_reverse but only restores the order when
            // a limit is given, so `?page_reverse=True` alone lists in reverse.
            if self.page_reverse {
                sorted.reverse();
            }
            return sorted;
        }
        let position = |pred: fn(Ordering) -> bool| match marker {
            Some(m) => sorted.partition_point(|i| pred(compare_items(i, m, sorts))),
            None => 0,
        };
        if self.page_reverse {
            // The `limit` items just before the marker (or the last `limit` items), in order.
            let end = if marker.is_some() {
                position(Ordering::is_lt)
            } else {
                sorted.len()
            };
            let start = end.saturating_sub(self.limit);
            sorted.truncate(end);
            sorted.split_off(start)
        } else {
            let start = position(Ordering::is_le);
            sorted.into_iter().skip(start).take(self.limit).collect()
        }
    }

    fn links(&self, page: &[Item], base_url: &str) -> Vec<Value> {
        let first = page.first().map(id_string);
        let last = page.last().map(id_string);
        self.page_links(page.len(), first, last, base_url)
    }

    /// neutron's `get_pagination_links` for a page of `len` items whose first and last ids are
    /// given: `next` is omitted only on a short forward page, `previous` only on a short
    /// reverse page.
    pub fn page_links(
        &self,
        len: usize,
        first: Option<String>,
        last: Option<String>,
        base_url: &str,
    ) -> Vec<Value> {
        let short = len < self.limit;
        let mut links = Vec::new();
        if !short || self.page_reverse {
            links.push(link("next", self.next_href(last, base_url)));
        }
        if !short || !self.page_reverse {
            links.push(link("previous", self.previous_href(first, base_url)));
        }
        links
    }

    /// Same query without `page_reverse`, `marker` = last item id. On an empty page the request's
    /// own marker stays, as in neutron.
    fn next_href(&self, last: Option<String>, base_url: &str) -> String {
        let mut params = self.pairs_without("page_reverse");
        if let Some(last) = last {
            set_param(&mut params, "marker", last);
        }
        href(base_url, &params)
    }

    /// Same query with `marker` = first item id (none on an empty page) and `page_reverse=True`.
    fn previous_href(&self, first: Option<String>, base_url: &str) -> String {
        let mut params = self.pairs_without("marker");
        if let Some(first) = first {
            set_param(&mut params, "marker", first);
        }
        set_param(&mut params, "page_reverse", "True".to_string());
        href(base_url, &params)
    }

    /// The values the query gives `key` (a filter's, e.g. `project_id`), in order.
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The collection name (`ports`).
    pub fn collection(&self) -> &'static str {
        self.collection
    }

    /// The page size; 0: no paging.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The id to page from (only when paging).
    pub fn marker(&self) -> Option<&str> {
        self.marker.as_deref()
    }

    /// `page_reverse=True`: the page before the marker (and without a limit, the whole list
    /// backwards).
    pub fn page_reverse(&self) -> bool {
        self.page_reverse
    }

    /// How the database answers this query on `table`: the filters SQL answers exactly become
    /// conditions, the others are checked on each row's API dict ([`Plan::keeps`]); the sort
    /// keys become the order. `hidden` are attributes the caller's dicts leave out (admin-only
    /// ones): as in [`ListQuery::apply`], a filter on one matches nothing and a sort key on
    /// one orders nothing (every row has it null), so it is dropped.
    pub fn plan(&self, table: &'static Table, hidden: &[&str]) -> Plan {
        let mut plan = Plan {
            conditions: Vec::new(),
            residual: Vec::new(),
            order: Vec::new(),
        };
        for filter in &self.filters {
            let Some(filter) = filter.without_nul() else {
                plan.conditions.push(Condition::In {
                    column: table.id,
                    values: Vec::new(),
                });
                continue;
            };
            let filter = &filter;
            match filter {
                Filter::Equals { key, .. } if hidden.contains(&key.as_str()) => {
                    plan.conditions.push(Condition::In {
                        column: table.id,
                        values: Vec::new(),
                    })
                }
                Filter::Equals { key, values } => match table.column(key) {
                    Some(column) if column.json_list => {
                        plan.conditions.push(Condition::ListHas {
                            column,
                            values: values.clone(),
                        });
                        plan.residual.push(filter.clone());
                    }
                    Some(column) => plan.conditions.push(Condition::In {
                        column,
                        values: sql_values(column.kind, key, values),
                    }),
                    None => plan.residual.push(filter.clone()),
                },
                Filter::FixedIps(f) if table.addresses => {
                    if !f.ip_address.is_empty() {
                        plan.conditions
                            .push(Condition::AddressIs(f.ip_address.clone()));
                    }
                    if !f.subnet_id.is_empty() {
                        plan.conditions
                            .push(Condition::AddressOnSubnet(f.subnet_id.clone()));
                    }
                    if !f.ip_address_substr.is_empty() {
                        plan.conditions
                            .push(Condition::AddressContains(f.ip_address_substr.clone()));
                    }
                }
                Filter::Tags { mode, tags } if table.tags.is_some() => {
                    plan.conditions.push(Condition::Tags {
                        test: mode.test(),
                        tags: tags.clone(),
                    })
                }
                // A table without tags shows `"tags": []` on every row, so a tag filter keeps
                // all rows or none, and rows need not be read one by one to know which.
                Filter::Tags { mode, tags } => {
                    if !mode.matches(&[], tags) {
                        plan.conditions.push(Condition::In {
                            column: table.id,
                            values: Vec::new(),
                        });
                    }
                }
                other => plan.residual.push(other.clone()),
            }
        }
        plan.order = self
            .sorts
            .iter()
            .filter(|s| !hidden.contains(&s.key.as_str()))
            .filter_map(|s| {
                let column = table.column(&s.key);
                debug_assert!(column.is_some(), "sort key {} has no column", s.key);
                Some(Sort {
                    column: column?,
                    ascending: s.ascending,
                })
            })
            .collect();
        plan
    }

    fn pairs_without(&self, key: &str) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(k, _)| k != key)
            .cloned()
            .collect()
    }
}

/// A list as the database answers it ([`ListQuery::plan`]).
#[derive(Debug, Clone)]
pub struct Plan {
    /// What SQL checks.
    pub conditions: Vec<Condition>,
    /// Filters checked on each row's API dict: those SQL cannot answer, or only narrows.
    residual: Vec<Filter>,
    /// The requested sort keys (the store appends the id).
    pub order: Vec<Sort>,
}

impl Plan {
    /// Whether rows must be checked one by one ([`Plan::keeps`]) on their API dicts.
    pub fn checks_rows(&self) -> bool {
        !self.residual.is_empty()
    }

    /// Whether a row (its full API dict) passes the filters SQL did not answer.
    pub fn keeps(&self, item: &Item) -> bool {
        self.residual.iter().all(|f| f.matches(item))
    }
}

/// A filter's strings as the values of a column, matching what [`value_matches`] compares:
/// MACs in lowercase (they are stored so), booleans and numbers converted; a string that no
/// value of the column's type can equal is dropped.
fn sql_values(kind: Kind, key: &str, values: &[String]) -> Vec<Param> {
    values
        .iter()
        .filter_map(|v| match kind {
            Kind::Text if key == "mac_address" => Some(Param::Text(v.to_ascii_lowercase())),
            Kind::Text => Some(Param::Text(v.clone())),
            Kind::Bool => parse_bool(v).map(|b| Param::Int(i64::from(b))),
            Kind::Int => {
                let v = v.trim();
                v.parse::<i64>().ok().map(Param::Int).or_else(|| {
                    let f = v.parse::<f64>().ok()?;
                    // An integral float equals the integer (`3.0` matches 3).
                    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(Param::Int(f as i64))
                })
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Parsing

fn decode_pairs(raw_query: Option<&str>) -> Vec<(String, String)> {
    raw_query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// webob's `GET.get(key)`: the last value wins.
fn last_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// neutron's `list_args`: every value of `key`, empty strings dropped.
fn list_args(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect()
}

fn requested_fields(pairs: &[(String, String)]) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    for field in list_args(pairs, "fields") {
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    fields
}

/// webob's `GET.dict_of_lists()`: keys in order of first appearance, each with all its values.
fn group_by_key(pairs: &[(String, String)]) -> Vec<(&str, Vec<&str>)> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (key, value) in pairs {
        match groups.iter_mut().find(|(k, _)| k == key) {
            Some((_, values)) => values.push(value),
            None => groups.push((key, vec![value])),
        }
    }
    groups
}

/// neutron's `get_filters` with filter validation on: conversion errors surface at once, unknown
/// keys are collected and reported together.
fn parse_filters(
    pairs: &[(String, String)],
    spec: &CollectionSpec,
) -> Result<Vec<Filter>, NeutronError> {
    let mut filters = Vec::new();
    let mut unknown = Vec::new();
    for (key, values) in group_by_key(pairs) {
        if CONTROL_KEYS.contains(&key) {
            continue;
        }
        // `standard-attr-tag` adds its four filters together wherever it adds `tags`.
        let tag_filter = TagMatch::for_key(key).is_some() && spec.filterable.contains(&"tags");
        if !spec.filterable.contains(&key) && !tag_filter {
            unknown.push(key);
            continue;
        }
        filters.extend(Filter::parse(key, &values)?);
    }
    if !unknown.is_empty() {
        return Err(NeutronError::bad_request(format!(
            "{} is invalid attribute for filtering",
            py_list(&unknown)
        )));
    }
    Ok(filters)
}

/// neutron's `get_sorts`: paired lists, sortable keys, `asc`/`desc` only (case-sensitive).
fn parse_sorts(
    pairs: &[(String, String)],
    spec: &CollectionSpec,
) -> Result<Vec<SortKey>, NeutronError> {
    let keys = list_args(pairs, "sort_key");
    let dirs = list_args(pairs, "sort_dir");
    if keys.len() != dirs.len() {
        return Err(NeutronError::bad_request(
            "The number of sort_keys and sort_dirs must be same",
        ));
    }
    let absent: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| !spec.sortable.contains(k))
        .collect();
    if !absent.is_empty() {
        return Err(NeutronError::bad_request(format!(
            "{} is invalid attribute for sort_keys",
            py_list(&absent)
        )));
    }
    let invalid: Vec<&str> = dirs
        .iter()
        .map(String::as_str)
        .filter(|d| *d != "asc" && *d != "desc")
        .collect();
    if !invalid.is_empty() {
        return Err(NeutronError::bad_request(format!(
            "{} is invalid value for sort_dirs, valid value is 'asc' and 'desc'",
            py_list(&invalid)
        )));
    }
    // A key given again cannot change the order its first occurrence set; dropping repeats
    // keeps the query's sort columns bounded by the sortable attributes, however long the URL.
    let mut sorts: Vec<SortKey> = Vec::new();
    for (key, dir) in keys.into_iter().zip(dirs) {
        if !sorts.iter().any(|s| s.key == key) {
            sorts.push(SortKey {
                key,
                ascending: dir == "asc",
            });
        }
    }
    Ok(sorts)
}

/// neutron's `_get_limit_param`: an integer ≥ 0. It raises neutron-lib's `BadRequest`, whose
/// body type is `BadRequest` (not `HTTPBadRequest`) and whose text wraps the reason.
fn parse_limit(pairs: &[(String, String)]) -> Result<usize, NeutronError> {
    let Some(raw) = last_value(pairs, "limit") else {
        return Ok(0);
    };
    // Python's int() tolerates surrounding blanks and a sign, as does i128's parser after trim.
    let parsed = raw.trim().parse::<i128>().ok();
    match parsed {
        Some(n) if n >= 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => {
            let shown = parsed.map_or_else(|| raw.to_string(), |n| n.to_string());
            Err(NeutronError::bad(
                "BadRequest",
                format!(
                    "Bad limit request: Limit must be an integer 0 or greater and not '{shown}'."
                ),
            ))
        }
    }
}

/// neutron-lib's `convert_to_boolean` for strings.
fn parse_bool(value: &str) -> Option<bool> {
    match value.to_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// neutron-lib's `convert_kvp_str_to_list`: `key=value`, both trimmed, key non-empty.
fn split_kvp(text: &str) -> Result<(&str, &str), NeutronError> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim(), value.trim())),
        _ => Err(NeutronError::invalid_input(format!(
            "'{text}' is not of the form <key>=[value]."
        ))),
    }
}

/// Python's `repr()` of a list of strings, as neutron puts it in messages: `['foo', 'bar']`.
fn py_list(items: &[&str]) -> String {
    let reprs: Vec<String> = items.iter().map(|s| py_str(s)).collect();
    format!("[{}]", reprs.join(", "))
}

/// Python's `repr()` of a string: single quotes unless only double quotes avoid escaping.
fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

// ---------------------------------------------------------------------------------------------
// Filters

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    /// `?key=a&key=b`: the attribute equals one of the values (a list attribute: one element does).
    Equals { key: String, values: Vec<String> },
    /// `?fixed_ips=ip_address%3D10.0.0.5&fixed_ips=subnet_id%3D...` on ports.
    FixedIps(FixedIpsFilter),
    /// `tags`, `tags-any`, `not-tags`, `not-tags-any` (the `standard-attr-tag` extension).
    Tags { mode: TagMatch, tags: Vec<String> },
}

impl Filter {
    /// The filter without the values that hold a NUL: nothing stored can equal one (PostgreSQL
    /// text cannot hold U+0000, nor be compared with it), so they are dropped before SQL sees
    /// them; `None` when a part of the filter is left with no value (it matches nothing).
    fn without_nul(&self) -> Option<Filter> {
        let keep = |values: &[String]| -> Option<Vec<String>> {
            let kept: Vec<String> = values
                .iter()
                .filter(|v| !v.contains('\0'))
                .cloned()
                .collect();
            (kept.len() == values.len() || !kept.is_empty()).then_some(kept)
        };
        Some(match self {
            Filter::Equals { key, values } => Filter::Equals {
                key: key.clone(),
                values: keep(values)?,
            },
            Filter::FixedIps(f) => Filter::FixedIps(FixedIpsFilter {
                ip_address: keep(&f.ip_address)?,
                subnet_id: keep(&f.subnet_id)?,
                ip_address_substr: keep(&f.ip_address_substr)?,
            }),
            Filter::Tags { mode, tags } => {
                // No resource has a tag with a NUL: such a tag is one it lacks.
                let kept: Vec<String> =
                    tags.iter().filter(|t| !t.contains('\0')).cloned().collect();
                match mode {
                    _ if kept.len() == tags.len() => self.clone(),
                    TagMatch::All => return None,
                    TagMatch::Any if kept.is_empty() => return None,
                    // Lacking one of them is certain: keep every row (none of no tags).
                    TagMatch::NotAll => Filter::Tags {
                        mode: TagMatch::NotAny,
                        tags: Vec::new(),
                    },
                    TagMatch::Any | TagMatch::NotAny => Filter::Tags {
                        mode: *mode,
                        tags: kept,
                    },
                }
            }
        })
    }

    /// The filter for one (filterable) key; `None` when it constrains nothing.
    fn parse(key: &str, values: &[&str]) -> Result<Option<Filter>, NeutronError> {
        if key == "fixed_ips" {
            return FixedIpsFilter::parse(values).map(|f| Some(Filter::FixedIps(f)));
        }
        if let Some(mode) = TagMatch::for_key(key) {
            // `?tags=a,b` is the same as `?tags=a&tags=b`.
            let tags: Vec<String> = values
                .iter()
                .flat_map(|v| v.split(','))
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            return Ok((!tags.is_empty()).then_some(Filter::Tags { mode, tags }));
        }
        if BOOLEAN_ATTRIBUTES.contains(&key)
            && let Some(bad) = values.iter().find(|v| parse_bool(v).is_none())
        {
            return Err(bad_boolean(bad));
        }
        let values = values.iter().copied().map(String::from).collect();
        Ok(Some(Filter::Equals {
            key: key.to_string(),
            values,
        }))
    }

    fn matches(&self, item: &Item) -> bool {
        match self {
            Filter::Equals { key, values } => attribute(item, key)
                .is_some_and(|v| values.iter().any(|want| value_matches(key, v, want))),
            Filter::FixedIps(filter) => filter.matches(item.get("fixed_ips")),
            Filter::Tags { mode, tags } => {
                let item_tags = item
                    .get("tags")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                mode.matches(item_tags, tags)
            }
        }
    }
}

/// Whether an attribute value equals a filter string, converted to the value's type.
fn value_matches(key: &str, value: &Value, want: &str) -> bool {
    match value {
        // Neutron lower-cases MAC filters before comparing.
        Value::String(s) if key == "mac_address" => s.eq_ignore_ascii_case(want),
        Value::String(s) => s == want,
        Value::Bool(b) => parse_bool(want) == Some(*b),
        Value::Number(n) => number_equals(n, want),
        // A list attribute (subnets, security_groups, ...) matches when one of its elements does.
        Value::Array(elements) => elements
            .iter()
            .any(|e| !e.is_array() && value_matches(key, e, want)),
        // SQL's `column IN (...)` never matches NULL; objects are not filterable.
        Value::Null | Value::Object(_) => false,
    }
}

fn number_equals(n: &serde_json::Number, want: &str) -> bool {
    let want = want.trim();
    if let (Some(a), Ok(b)) = (n.as_i64(), want.parse::<i64>()) {
        return a == b;
    }
    matches!((n.as_f64(), want.parse::<f64>()), (Some(a), Ok(b)) if a == b)
}

/// An attribute of an item; `tenant_id` and `project_id` stand in for each other.
fn attribute<'a>(item: &'a Item, key: &str) -> Option<&'a Value> {
    let alias = match key {
        "tenant_id" => Some("project_id"),
        "project_id" => Some("tenant_id"),
        _ => None,
    };
    item.get(key).or_else(|| alias.and_then(|a| item.get(a)))
}

/// neutron-lib's `convert_kvp_list_to_dict` applied to `fixed_ips` values, keeping the keys the
/// port query reads. Each key is checked on its own (`Port.fixed_ips.any(...)` per key), so
/// `ip_address` and `subnet_id` may be satisfied by different entries; values of one key OR.
#[derive(Debug, Clone, Default, PartialEq)]
struct FixedIpsFilter {
    ip_address: Vec<String>,
    subnet_id: Vec<String>,
    /// `ip-substring-filtering`: the address contains one of these.
    ip_address_substr: Vec<String>,
}

impl FixedIpsFilter {
    fn parse(values: &[&str]) -> Result<FixedIpsFilter, NeutronError> {
        let mut filter = FixedIpsFilter::default();
        // `convert_kvp_list_to_dict` reads a lone `True` as a flag given without a value.
        if values == ["True"] {
            return Ok(filter);
        }
        for value in values {
            let (key, wanted) = split_kvp(value)?;
            let list = match key {
                "ip_address" => &mut filter.ip_address,
                "subnet_id" => &mut filter.subnet_id,
                "ip_address_substr" => &mut filter.ip_address_substr,
                // The port query reads no other key.
                _ => continue,
            };
            list.push(wanted.to_string());
        }
        Ok(filter)
    }

    fn matches(&self, fixed_ips: Option<&Value>) -> bool {
        let entries = fixed_ips
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        any_entry(entries, "ip_address", &self.ip_address, |have, want| {
            have == want
        }) && any_entry(entries, "subnet_id", &self.subnet_id, |have, want| {
            have == want
        }) && any_entry(
            entries,
            "ip_address",
            &self.ip_address_substr,
            |have, want| have.contains(want),
        )
    }
}

/// True when nothing is wanted, or some entry's `key` satisfies `test` against a wanted value.
fn any_entry(
    entries: &[Value],
    key: &str,
    wanted: &[String],
    test: fn(&str, &str) -> bool,
) -> bool {
    wanted.is_empty()
        || entries
            .iter()
            .filter_map(|e| e.get(key).and_then(Value::as_str))
            .any(|have| wanted.iter().any(|want| test(have, want)))
}

/// neutron's `apply_tag_filters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagMatch {
    /// `tags`: has all of them.
    All,
    /// `tags-any`: has at least one.
    Any,
    /// `not-tags`: lacks at least one.
    NotAll,
    /// `not-tags-any`: has none.
    NotAny,
}

impl TagMatch {
    fn for_key(key: &str) -> Option<TagMatch> {
        match key {
            "tags" => Some(TagMatch::All),
            "tags-any" => Some(TagMatch::Any),
            "not-tags" => Some(TagMatch::NotAll),
            "not-tags-any" => Some(TagMatch::NotAny),
            _ => None,
        }
    }

    /// The same test, as SQL answers it.
    fn test(self) -> TagTest {
        match self {
            TagMatch::All => TagTest::All,
            TagMatch::Any => TagTest::Any,
            TagMatch::NotAll => TagTest::NotAll,
            TagMatch::NotAny => TagTest::NotAny,
        }
    }

    fn matches(self, item_tags: &[Value], wanted: &[String]) -> bool {
        let has = |tag: &String| item_tags.iter().any(|t| t.as_str() == Some(tag.as_str()));
        match self {
            TagMatch::All => wanted.iter().all(has),
            TagMatch::Any => wanted.iter().any(has),
            TagMatch::NotAll => !wanted.iter().all(has),
            TagMatch::NotAny => !wanted.iter().any(has),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sorting

#[derive(Debug, Clone, PartialEq)]
struct SortKey {
    key: String,
    ascending: bool,
}

/// Orders two items by the sort keys; a missing attribute counts as null.
fn compare_items(a: &Item, b: &Item, sorts: &[SortKey]) -> Ordering {
    for sort in sorts {
        let ordering = compare_values(
            attribute(a, &sort.key).unwrap_or(&Value::Null),
            attribute(b, &sort.key).unwrap_or(&Value::Null),
        );
        let ordering = if sort.ascending {
            ordering
        } else {
            ordering.reverse()
        };
        if ordering.is_ne() {
            return ordering;
        }
    }
    Ordering::Equal
}

/// A total order on JSON values: null first (as NULL sorts in neutron's ascending queries), then
/// booleans, numbers (numerically), strings (bytewise), lists, objects.
fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(p, q)| compare_values(p, q))
            .find(|o| o.is_ne())
            .unwrap_or(x.len().cmp(&y.len())),
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a.cmp(&b);
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a.cmp(&b);
    }
    // JSON numbers are finite, so every one has an f64.
    x.as_f64()
        .unwrap_or(0.0)
        .total_cmp(&y.as_f64().unwrap_or(0.0))
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

// ---------------------------------------------------------------------------------------------
// Page links

fn id_of(item: &Item) -> Option<&str> {
    item.get("id").and_then(Value::as_str)
}

/// The item's id as neutron's `str()` would put it into a link.
fn id_string(item: &Item) -> String {
    match item.get("id") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => "None".to_string(),
        Some(other) => other.to_string(),
    }
}

/// webob's `MultiDict.__setitem__`: drop every pair of `key`, append the new one at the end.
fn set_param(params: &mut Vec<(String, String)>, key: &str, value: String) {
    params.retain(|(k, _)| k != key);
    params.push((key.to_string(), value));
}

fn link(rel: &str, href: String) -> Value {
    serde_json::json!({"rel": rel, "href": href})
}

/// `<base>?<urlencode(params)>` exactly as Python's `urllib.parse.urlencode` writes it.
fn href(base_url: &str, params: &[(String, String)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
        .collect();
    format!("{base_url}?{}", query.join("&"))
}

/// Python's `quote_plus`: keeps ASCII letters, digits and `_.-~`, writes space as `+`, and
/// percent-encodes every other UTF-8 byte in upper-case hex.
fn quote_plus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    const BASE: &str = "http://127.0.0.1:9696/v2.0/networks";

    #[test]
    fn a_sort_key_given_again_is_dropped() {
        // 2,000 repeats once reached SQLite as 4,000 sort columns ("too many columns", a 500).
        let raw = vec!["sort_key=name&sort_dir=asc"; 2000].join("&") + "&sort_key=id&sort_dir=desc";
        let q = ListQuery::parse(Some(&raw), &NETWORKS).unwrap();
        assert_eq!(
            q.sorts,
            [
                SortKey {
                    key: "name".into(),
                    ascending: true
                },
                SortKey {
                    key: "id".into(),
                    ascending: false
                },
            ]
        );
    }

    const NETWORKS: CollectionSpec = CollectionSpec {
        collection: "networks",
        filterable: &[
            "id",
            "name",
            "tenant_id",
            "project_id",
            "admin_state_up",
            "shared",
            "router:external",
            "mtu",
            "subnets",
            "tags",
            "tags-any",
            "not-tags",
            "not-tags-any",
            "description",
            "provider:physical_network",
        ],
        sortable: &[
            "id",
            "name",
            "mtu",
            "description",
            "provider:physical_network",
            "tenant_id",
            "project_id",
        ],
    };

    const PORTS: CollectionSpec = CollectionSpec {
        collection: "ports",
        filterable: &[
            "id",
            "fixed_ips",
            "security_groups",
            "mac_address",
            "network_id",
        ],
        sortable: &["id"],
    };

    fn parse(raw: &str) -> ListQuery {
        ListQuery::parse(Some(raw), &NETWORKS).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn parse_err(raw: &str) -> NeutronError {
        ListQuery::parse(Some(raw), &NETWORKS).expect_err(raw)
    }

    fn obj(v: Value) -> Item {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn net(id: &str, name: &str) -> Item {
        obj(json!({
            "id": id, "name": name, "tenant_id": "p1", "project_id": "p1", "admin_state_up": true,
            "shared": false, "router:external": false, "mtu": 1450, "subnets": [], "tags": [],
            "description": "", "provider:physical_network": null,
        }))
    }

    fn with(mut item: Item, key: &str, value: Value) -> Item {
        item.insert(key.to_string(), value);
        item
    }

    fn list(raw: &str, items: Vec<Item>) -> Value {
        parse(raw).apply(items, BASE)
    }

    fn column(body: &Value, key: &str) -> Vec<String> {
        body["networks"]
            .as_array()
            .expect("networks list")
            .iter()
            .map(|n| match &n[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    fn ids(body: &Value) -> Vec<String> {
        column(body, "id")
    }

    fn link_of(body: &Value, rel: &str) -> Option<String> {
        body["networks_links"]
            .as_array()?
            .iter()
            .find(|l| l["rel"] == rel)
            .map(|l| l["href"].as_str().expect("href").to_string())
    }

    /// Requests an href the way a client would: its query string against the same items.
    fn follow(href: &str, items: &[Item]) -> Value {
        let query = href
            .strip_prefix(BASE)
            .and_then(|q| q.strip_prefix('?'))
            .expect("href under BASE");
        list(query, items.to_vec())
    }

    fn abc() -> Vec<Item> {
        vec![net("id-c", "c"), net("id-a", "a"), net("id-b", "b")]
    }

    // --- filters ---------------------------------------------------------------------------

    #[test]
    fn repeated_filter_keys_are_or() {
        assert_eq!(ids(&list("id=id-a&id=id-c", abc())), ["id-a", "id-c"]);
        assert_eq!(ids(&list("name=b&name=zzz", abc())), ["id-b"]);
    }

    #[test]
    fn different_filter_keys_are_and() {
        let items = vec![
            net("1", "x"),
            with(net("2", "x"), "mtu", json!(1500)),
            net("3", "y"),
        ];
        assert_eq!(ids(&list("name=x&mtu=1500", items)), ["2"]);
    }

    #[test]
    fn boolean_filters_accept_neutron_spellings() {
        let items = vec![
            net("1", "up"),
            with(net("2", "down"), "admin_state_up", json!(false)),
        ];
        for v in ["true", "True", "TRUE", "1"] {
            assert_eq!(
                ids(&list(&format!("admin_state_up={v}"), items.clone())),
                ["1"],
                "{v}"
            );
        }
        for v in ["false", "False", "0"] {
            assert_eq!(
                ids(&list(&format!("admin_state_up={v}"), items.clone())),
                ["2"],
                "{v}"
            );
        }
        assert_eq!(
            ids(&list("router%3Aexternal=False", items.clone())),
            ["1", "2"]
        );
        assert_eq!(
            ids(&list("admin_state_up=true&admin_state_up=false", items)),
            ["1", "2"]
        );
    }

    #[test]
    fn bad_boolean_is_invalid_input() {
        let e = parse_err("shared=maybe");
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(e.kind, "InvalidInput");
        assert_eq!(
            e.message,
            "Invalid input for operation: 'maybe' cannot be converted to boolean."
        );
    }

    #[test]
    fn numbers_compare_numerically() {
        let items = vec![net("1", "a"), with(net("2", "b"), "mtu", json!(9000))];
        assert_eq!(ids(&list("mtu=9000", items.clone())), ["2"]);
        assert_eq!(ids(&list("mtu=%2B1450", items.clone())), ["1"]);
        assert!(ids(&list("mtu=abc", items)).is_empty());
    }

    #[test]
    fn empty_value_matches_empty_string_only() {
        let items = vec![
            net("1", ""),
            net("2", "named"),
            with(net("3", "x"), "name", Value::Null),
        ];
        assert_eq!(ids(&list("name=", items)), ["1"]);
    }

    #[test]
    fn null_never_matches() {
        let items = vec![
            net("1", "a"),
            with(
                net("2", "b"),
                "provider:physical_network",
                json!("physnet1"),
            ),
        ];
        assert_eq!(
            ids(&list("provider:physical_network=physnet1", items.clone())),
            ["2"]
        );
        assert!(ids(&list("provider:physical_network=None", items.clone())).is_empty());
        assert!(ids(&list("provider:physical_network=", items)).is_empty());
    }

    #[test]
    fn list_attribute_matches_any_element() {
        let items = vec![
            net("1", "a"),
            with(net("2", "b"), "subnets", json!(["s1", "s2"])),
        ];
        assert_eq!(ids(&list("subnets=s2", items.clone())), ["2"]);
        assert_eq!(ids(&list("subnets=s9&subnets=s1", items.clone())), ["2"]);
        assert!(ids(&list("subnets=s9", items)).is_empty());
    }

    #[test]
    fn tag_filters_follow_neutron() {
        let items = vec![
            with(net("1", "a"), "tags", json!(["red", "blue"])),
            with(net("2", "b"), "tags", json!(["red"])),
            net("3", "c"),
        ];
        assert_eq!(ids(&list("tags=red,blue", items.clone())), ["1"]);
        assert_eq!(ids(&list("tags=red&tags=blue", items.clone())), ["1"]);
        assert_eq!(ids(&list("tags-any=blue,green", items.clone())), ["1"]);
        assert_eq!(ids(&list("not-tags=red,blue", items.clone())), ["2", "3"]);
        assert_eq!(ids(&list("not-tags-any=red", items.clone())), ["3"]);
        assert_eq!(ids(&list("tags=", items)), ["1", "2", "3"]);
    }

    #[test]
    fn tenant_and_project_filter_each_other() {
        let other = obj(json!({"id": "2", "tenant_id": "p2", "project_id": "p2"}));
        let only_project = obj(json!({"id": "3", "project_id": "p1"}));
        let only_tenant = obj(json!({"id": "4", "tenant_id": "p1"}));
        let items = vec![net("1", "a"), other, only_project, only_tenant];
        assert_eq!(ids(&list("tenant_id=p1", items.clone())), ["1", "3", "4"]);
        assert_eq!(ids(&list("project_id=p1", items.clone())), ["1", "3", "4"]);
        assert_eq!(ids(&list("project_id=p2", items)), ["2"]);
    }

    #[test]
    fn unknown_filter_is_400_with_python_list() {
        let e = parse_err("foo=bar");
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(e.kind, "HTTPBadRequest");
        assert_eq!(e.message, "['foo'] is invalid attribute for filtering");
        let e = parse_err("foo=1&name=x&bar=2&foo=3");
        assert_eq!(
            e.message,
            "['foo', 'bar'] is invalid attribute for filtering"
        );
        let e = parse_err("it's=1");
        assert_eq!(e.message, "[\"it's\"] is invalid attribute for filtering");
    }

    #[test]
    fn control_keys_and_verbose_are_not_filters() {
        let q = parse(
            "fields=id&sort_key=name&sort_dir=asc&limit=1&marker=x&page_reverse=False&verbose=True",
        );
        assert!(q.filters.is_empty());
    }

    #[test]
    fn plan_answers_in_sql_what_sql_answers_exactly() {
        let table = &neutrino_store::ports::TABLE;
        let q = ListQuery::parse(
            Some(
                "id=a&id=b&mac_address=FA:16:3E:00:00:01&security_groups=sg1\
                 &fixed_ips=ip_address%3D10.0.0.5&fixed_ips=ip_address_substr%3D0.0&sort_key=id&sort_dir=desc",
            ),
            &PORTS,
        )
        .unwrap();
        let plan = q.plan(table, &[]);
        let text = |v: &[&str]| {
            v.iter()
                .map(|s| Param::Text(s.to_string()))
                .collect::<Vec<_>>()
        };
        match &plan.conditions[..] {
            [
                Condition::In {
                    column: id,
                    values: ids,
                },
                Condition::In {
                    column: mac,
                    values: macs,
                },
                Condition::ListHas {
                    column: groups,
                    values: wanted,
                },
                Condition::AddressIs(ips),
                Condition::AddressContains(parts),
            ] => {
                assert_eq!((id.attr, ids), ("id", &text(&["a", "b"])));
                // Stored in lowercase, compared without case.
                assert_eq!(
                    (mac.attr, macs),
                    ("mac_address", &text(&["fa:16:3e:00:00:01"]))
                );
                assert_eq!(
                    (groups.attr, wanted),
                    ("security_groups", &vec!["sg1".to_string()])
                );
                assert_eq!(ips, &["10.0.0.5"]);
                assert_eq!(parts, &["0.0"]);
            }
            other => panic!("{other:?}"),
        }
        // The list attribute is narrowed in SQL and checked exactly per row.
        assert!(plan.checks_rows());
        assert_eq!(plan.residual.len(), 1);
        assert_eq!(
            (plan.order[0].column.attr, plan.order[0].ascending),
            ("id", false)
        );
        // Hidden attributes: a filter matches nothing, a sort key orders nothing.
        let mut spec_with_host = PORTS.filterable.to_vec();
        spec_with_host.push("binding:host_id");
        let spec = CollectionSpec {
            collection: "ports",
            filterable: Box::leak(spec_with_host.into_boxed_slice()),
            sortable: &["binding:host_id", "id"],
        };
        let q = ListQuery::parse(
            Some("binding:host_id=h&sort_key=binding:host_id&sort_dir=asc"),
            &spec,
        )
        .unwrap();
        let plan = q.plan(table, &["binding:host_id"]);
        assert!(
            matches!(&plan.conditions[..], [Condition::In { values, .. }] if values.is_empty())
        );
        assert!(plan.order.is_empty());
        assert!(!plan.checks_rows());
    }

    #[test]
    fn tag_filters_on_untagged_tables_need_no_rows() {
        let spec = CollectionSpec {
            collection: "ports",
            filterable: &["tags", "tags-any", "not-tags", "not-tags-any"],
            sortable: &[],
        };
        for (raw, keeps_all) in [
            ("tags=red", false),
            ("tags-any=red,blue", false),
            ("not-tags=red", true),
            ("not-tags-any=red", true),
        ] {
            let q = ListQuery::parse(Some(raw), &spec).unwrap();
            let plan = q.plan(&neutrino_store::security_groups::RULE_TABLE, &[]);
            assert!(!plan.checks_rows(), "{raw}");
            // As apply decides on a dict with `"tags": []`.
            let kept = q
                .filters
                .iter()
                .all(|f| f.matches(&obj(json!({"tags": []}))));
            assert_eq!(kept, keeps_all, "{raw}");
            assert_eq!(plan.conditions.is_empty(), keeps_all, "{raw}");
        }
    }

    #[test]
    fn tag_filters_on_tagged_tables_are_sql() {
        let spec = CollectionSpec {
            collection: "ports",
            filterable: &["tags"],
            sortable: &[],
        };
        for (raw, test) in [
            ("tags=red,blue", TagTest::All),
            ("tags-any=red", TagTest::Any),
            ("not-tags=red", TagTest::NotAll),
            ("not-tags-any=red", TagTest::NotAny),
        ] {
            let q = ListQuery::parse(Some(raw), &spec).unwrap();
            let plan = q.plan(&neutrino_store::ports::TABLE, &[]);
            assert!(!plan.checks_rows(), "{raw}");
            assert!(
                matches!(&plan.conditions[..], [Condition::Tags { test: t, .. }] if *t == test),
                "{raw}: {:?}",
                plan.conditions
            );
        }
        // A tag with a NUL is one no row has.
        let q = ListQuery::parse(Some("not-tags=red,%00"), &spec).unwrap();
        let plan = q.plan(&neutrino_store::ports::TABLE, &[]);
        assert!(
            matches!(&plan.conditions[..], [Condition::Tags { tags, .. }] if tags.is_empty()),
            "{:?}",
            plan.conditions
        );
    }

    #[test]
    fn sql_values_convert_like_value_matches() {
        assert_eq!(
            sql_values(
                Kind::Bool,
                "admin_state_up",
                &["True".into(), "0".into(), "x".into()]
            ),
            [Param::Int(1), Param::Int(0)]
        );
        assert_eq!(
            sql_values(
                Kind::Int,
                "mtu",
                &[" 1450 ".into(), "9000.0".into(), "1.5".into(), "a".into()]
            ),
            [Param::Int(1450), Param::Int(9000)]
        );
        for (i, raw) in [" 1450 ", "9000.0", "1.5", "a"].iter().enumerate() {
            let n = json!([1450, 9000, 1, 0][i]);
            let sql = sql_values(Kind::Int, "mtu", &[raw.to_string()]);
            assert_eq!(
                value_matches("mtu", &n, raw),
                sql.iter()
                    .any(|p| Some(p) == n.as_i64().map(Param::Int).as_ref()),
                "{raw}"
            );
        }
    }

    fn port(id: &str, ips: Value) -> Item {
        obj(
            json!({"id": id, "fixed_ips": ips, "mac_address": "fa:16:3e:00:00:01", "security_groups": ["sg1"]}),
        )
    }

    fn ports() -> Vec<Item> {
        vec![
            port("p1", json!([{"subnet_id": "s1", "ip_address": "10.0.0.5"}])),
            port(
                "p2",
                json!([{"subnet_id": "s1", "ip_address": "10.0.0.50"}, {"subnet_id": "s2", "ip_address": "10.1.0.7"}]),
            ),
            port("p3", json!([])),
        ]
    }

    fn port_ids(raw: &str) -> Vec<String> {
        let body = ListQuery::parse(Some(raw), &PORTS)
            .unwrap()
            .apply(ports(), "http://h/v2.0/ports");
        body["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn fixed_ips_filter() {
        assert_eq!(port_ids("fixed_ips=ip_address%3D10.0.0.5"), ["p1"]);
        assert_eq!(port_ids("fixed_ips=ip_address%3D10.0.0.50"), ["p2"]);
        assert_eq!(port_ids("fixed_ips=subnet_id%3Ds1"), ["p1", "p2"]);
        // Same key: OR.
        assert_eq!(
            port_ids("fixed_ips=ip_address%3D10.0.0.5&fixed_ips=ip_address%3D10.1.0.7"),
            ["p1", "p2"]
        );
        // Different keys: AND, each satisfied by some entry.
        assert_eq!(
            port_ids("fixed_ips=ip_address%3D10.0.0.5&fixed_ips=subnet_id%3Ds1"),
            ["p1"]
        );
        assert_eq!(
            port_ids("fixed_ips=ip_address%3D10.1.0.7&fixed_ips=subnet_id%3Ds1"),
            ["p2"]
        );
        assert!(port_ids("fixed_ips=ip_address%3D10.0.0.5&fixed_ips=subnet_id%3Ds2").is_empty());
        assert_eq!(
            port_ids("fixed_ips=ip_address_substr%3D0.0.5"),
            ["p1", "p2"]
        );
        assert_eq!(port_ids("fixed_ips=ip_address_substr%3D.1."), ["p2"]);
        assert_eq!(port_ids("fixed_ips=True"), ["p1", "p2", "p3"]);
    }

    #[test]
    fn malformed_fixed_ips_filter_is_invalid_input() {
        let e = ListQuery::parse(Some("fixed_ips=10.0.0.5"), &PORTS).unwrap_err();
        assert_eq!(e.kind, "InvalidInput");
        assert_eq!(
            e.message,
            "Invalid input for operation: '10.0.0.5' is not of the form <key>=[value]."
        );
    }

    #[test]
    fn port_list_attributes_and_mac() {
        assert_eq!(port_ids("security_groups=sg1&id=p3"), ["p3"]);
        assert_eq!(port_ids("mac_address=FA:16:3E:00:00:01&id=p1"), ["p1"]);
    }

    // --- fields ----------------------------------------------------------------------------

    #[test]
    fn fields_keep_exactly_the_existing_requested_keys() {
        let body = list("fields=id&fields=name&fields=nonexistent&fields=id", abc());
        for n in body["networks"].as_array().unwrap() {
            let mut keys: Vec<&String> = n.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(keys, ["id", "name"]);
        }
        assert_eq!(
            parse("fields=id&fields=name&fields=id").fields(),
            ["id", "name"]
        );
    }

    #[test]
    fn tenant_and_project_fields_are_separate() {
        let q = parse("fields=tenant_id");
        assert_eq!(q.project(net("1", "a")), obj(json!({"tenant_id": "p1"})));
        let q = parse("fields=project_id");
        assert_eq!(q.project(net("1", "a")), obj(json!({"project_id": "p1"})));
    }

    #[test]
    fn fields_do_not_affect_filtering_or_sorting() {
        let body = list(
            "fields=name&sort_key=name&sort_dir=desc&name=a&name=c",
            abc(),
        );
        assert_eq!(body, json!({"networks": [{"name": "c"}, {"name": "a"}]}));
    }

    #[test]
    fn wants_and_empty_fields() {
        let q = parse("name=a");
        assert!(q.fields().is_empty());
        assert!(q.wants("anything"));
        assert_eq!(q.project(net("1", "a")), net("1", "a"));
        let q = parse("fields=status&fields=");
        assert!(q.wants("status"));
        assert!(!q.wants("id"));
    }

    #[test]
    fn show_ignores_everything_but_fields() {
        let q = ListQuery::parse_fields(Some("fields=id&foo=bar&sort_key=x&limit=-1"), &NETWORKS);
        assert_eq!(q.project(net("1", "a")), obj(json!({"id": "1"})));
    }

    // --- sorting ---------------------------------------------------------------------------

    #[test]
    fn default_order_is_id() {
        assert_eq!(ids(&list("", abc())), ["id-a", "id-b", "id-c"]);
        assert_eq!(
            ids(&ListQuery::parse(None, &NETWORKS)
                .unwrap()
                .apply(abc(), BASE)),
            ["id-a", "id-b", "id-c"]
        );
    }

    #[test]
    fn sort_both_directions_with_nulls_and_ties() {
        let items = vec![
            with(net("4", "x"), "description", json!("b")),
            with(net("2", "x"), "description", Value::Null),
            with(net("3", "x"), "description", json!("a")),
            with(net("1", "x"), "description", json!("b")),
        ];
        // Null first ascending; the id tie-breaker orders the two "b"s.
        assert_eq!(
            ids(&list("sort_key=description&sort_dir=asc", items.clone())),
            ["2", "3", "1", "4"]
        );
        // Descending reverses the key but the appended id stays ascending.
        assert_eq!(
            ids(&list("sort_key=description&sort_dir=desc", items.clone())),
            ["1", "4", "3", "2"]
        );
        assert_eq!(
            ids(&list(
                "sort_key=description&sort_dir=desc&sort_key=id&sort_dir=desc",
                items.clone()
            )),
            ["4", "1", "3", "2"]
        );
        // A missing attribute sorts like null.
        let mut missing = net("0", "x");
        missing.remove("description");
        let mut more = items;
        more.push(missing);
        assert_eq!(
            ids(&list("sort_key=description&sort_dir=asc", more)),
            ["0", "2", "3", "1", "4"]
        );
    }

    #[test]
    fn numbers_sort_numerically_and_types_group() {
        let items = vec![
            with(net("a", "x"), "mtu", json!(9000)),
            with(net("b", "x"), "mtu", json!(68)),
            with(net("c", "x"), "mtu", json!(1450.5)),
            with(net("d", "x"), "mtu", json!("text")),
            with(net("e", "x"), "mtu", Value::Null),
            with(net("f", "x"), "mtu", json!(true)),
        ];
        assert_eq!(
            ids(&list("sort_key=mtu&sort_dir=asc", items)),
            ["e", "f", "b", "c", "a", "d"]
        );
    }

    #[test]
    fn sort_key_without_dir_matches_transcript() {
        let e = parse_err("sort_key=nonexistent");
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(e.kind, "HTTPBadRequest");
        assert_eq!(
            e.message,
            "The number of sort_keys and sort_dirs must be same"
        );
        assert_eq!(
            parse_err("sort_dir=asc").message,
            "The number of sort_keys and sort_dirs must be same"
        );
        // Empty values do not count (neutron's list_args).
        assert!(ListQuery::parse(Some("sort_key=&sort_dir="), &NETWORKS).is_ok());
    }

    #[test]
    fn unknown_sort_key_and_bad_dir() {
        let e = parse_err("sort_key=nonexistent&sort_dir=asc");
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            (
                "HTTPBadRequest",
                "['nonexistent'] is invalid attribute for sort_keys"
            )
        );
        let e = parse_err("sort_key=name&sort_dir=up&sort_key=id&sort_dir=ASC");
        assert_eq!(e.kind, "HTTPBadRequest");
        assert_eq!(
            e.message,
            "['up', 'ASC'] is invalid value for sort_dirs, valid value is 'asc' and 'desc'"
        );
    }

    #[test]
    fn errors_come_in_neutron_order() {
        // Filters are checked before sorting, sorting before limit.
        assert_eq!(
            parse_err("foo=1&sort_key=name&limit=x").message,
            "['foo'] is invalid attribute for filtering"
        );
        assert_eq!(
            parse_err("sort_key=name&limit=x").message,
            "The number of sort_keys and sort_dirs must be same"
        );
    }

    // --- limit, marker, links --------------------------------------------------------------

    #[test]
    fn bad_limit_is_bad_request() {
        for (raw, shown) in [("-1", "-1"), ("abc", "abc"), ("", ""), ("1.5", "1.5")] {
            let e = parse_err(&format!("limit={raw}"));
            assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
            assert_eq!(e.kind, "BadRequest");
            assert_eq!(
                e.message,
                format!(
                    "Bad limit request: Limit must be an integer 0 or greater and not '{shown}'."
                )
            );
        }
        assert_eq!(parse("limit=%202%20").limit, 2);
    }

    #[test]
    fn limit_zero_returns_everything_without_links() {
        let body = list("limit=0&marker=id-a", abc());
        assert_eq!(ids(&body), ["id-a", "id-b", "id-c"]);
        assert!(body.get("networks_links").is_none());
    }

    #[test]
    fn page_reverse_without_limit_lists_backwards() {
        assert_eq!(
            ids(&list("page_reverse=True", abc())),
            ["id-c", "id-b", "id-a"]
        );
    }

    #[test]
    fn links_match_transcript_format() {
        let body = list("limit=2", abc());
        assert_eq!(ids(&body), ["id-a", "id-b"]);
        assert_eq!(
            body["networks_links"],
            json!([
                {"rel": "next", "href": format!("{BASE}?limit=2&marker=id-b")},
                {"rel": "previous", "href": format!("{BASE}?limit=2&marker=id-a&page_reverse=True")},
            ])
        );
    }

    #[test]
    fn links_keep_other_params_in_order_and_encode_them() {
        let body = list(
            "marker=id-c&name=a%20b&name=c&limit=1&page_reverse=false&fields=id&router%3Aexternal=False",
            {
                let mut items = abc();
                items.push(net("id-d", "a b"));
                items
            },
        );
        assert_eq!(ids(&body), ["id-d"]);
        assert_eq!(
            link_of(&body, "next").unwrap(),
            format!("{BASE}?name=a+b&name=c&limit=1&fields=id&router%3Aexternal=False&marker=id-d")
        );
        assert_eq!(
            link_of(&body, "previous").unwrap(),
            format!(
                "{BASE}?name=a+b&name=c&limit=1&fields=id&router%3Aexternal=False&marker=id-d&page_reverse=True"
            )
        );
    }

    #[test]
    fn fixed_ips_round_trip_through_links() {
        let q = ListQuery::parse(Some("fixed_ips=ip_address%3D10.0.0.5&limit=1"), &PORTS).unwrap();
        let body = q.apply(ports(), "http://h/v2.0/ports");
        let next = body["ports_links"][0]["href"].as_str().unwrap();
        assert_eq!(
            next,
            "http://h/v2.0/ports?fixed_ips=ip_address%3D10.0.0.5&limit=1&marker=p1"
        );
    }

    #[test]
    fn quote_plus_matches_python() {
        assert_eq!(
            quote_plus("a b/c=d&e~f*g_h.i-j"),
            "a+b%2Fc%3Dd%26e~f%2Ag_h.i-j"
        );
        assert_eq!(quote_plus("é"), "%C3%A9");
    }

    #[test]
    fn unknown_marker_is_ignored() {
        assert_eq!(ids(&list("limit=2&marker=nope", abc())), ["id-a", "id-b"]);
    }

    #[test]
    fn marker_filtered_out_still_positions_the_page() {
        // Neutron loads the marker by id, unfiltered, and pages from its sort position.
        let body = list("limit=5&marker=id-b&name=a&name=c", abc());
        assert_eq!(ids(&body), ["id-c"]);
    }

    #[test]
    fn empty_reverse_page_keeps_marker_in_next() {
        let body = list("limit=1&marker=id-a&page_reverse=True", abc());
        assert!(ids(&body).is_empty());
        assert_eq!(
            link_of(&body, "next").unwrap(),
            format!("{BASE}?limit=1&marker=id-a")
        );
        assert!(link_of(&body, "previous").is_none());
    }

    // --- neutron-tempest-plugin BaseSearchCriteriaTest ---------------------------------------

    /// The plugin's names; ids deliberately ordered differently from names.
    fn search_items() -> Vec<Item> {
        vec![
            net("e", "test1"),
            net("b", "abc1"),
            net("d", "test10"),
            net("a", "123test"),
            net("c", "test1"),
        ]
    }

    const SORT_ASC: &str = "sort_key=name&sort_dir=asc";

    fn sorted_names() -> Vec<String> {
        column(&list(SORT_ASC, search_items()), "name")
    }

    #[test]
    fn search_sort_both_directions() {
        assert_eq!(
            sorted_names(),
            ["123test", "abc1", "test1", "test1", "test10"]
        );
        assert_eq!(
            ids(&list(SORT_ASC, search_items())),
            ["a", "b", "c", "e", "d"]
        );
        let desc = list("sort_key=name&sort_dir=desc", search_items());
        assert_eq!(
            column(&desc, "name"),
            ["test10", "test1", "test1", "abc1", "123test"]
        );
        assert_eq!(ids(&desc), ["d", "c", "e", "b", "a"]);
    }

    #[test]
    fn search_limit_returns_n() {
        for n in 1..=5 {
            assert_eq!(ids(&list(&format!("limit={n}"), search_items())).len(), n);
        }
        assert_eq!(ids(&list("limit=9", search_items())).len(), 5);
    }

    #[test]
    fn search_marker_paging_one_by_one_equals_sorted_list() {
        let expected = ids(&list(SORT_ASC, search_items()));
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut raw = format!("limit=1&{SORT_ASC}");
            if let Some(m) = &marker {
                raw.push_str(&format!("&marker={m}"));
            }
            let page = ids(&list(&raw, search_items()));
            if page.is_empty() {
                break;
            }
            assert_eq!(page.len(), 1);
            marker = page.last().cloned();
            seen.extend(page);
            assert!(seen.len() <= expected.len(), "runaway paging");
        }
        assert_eq!(seen, expected);
    }

    /// Walks `next` links from the first page; returns the ids seen and the last (empty) page.
    fn walk_next(first: &str, items: &[Item]) -> (Vec<String>, Value) {
        let mut body = list(first, items.to_vec());
        let mut seen = ids(&body);
        while let Some(next) = link_of(&body, "next") {
            body = follow(&next, items);
            seen.extend(ids(&body));
            assert!(seen.len() <= items.len(), "runaway paging");
        }
        (seen, body)
    }

    /// Walks `previous` links from `body`; returns the pages seen, nearest first.
    fn walk_previous(mut body: Value, items: &[Item]) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        while let Some(previous) = link_of(&body, "previous") {
            body = follow(&previous, items);
            pages.push(ids(&body));
            assert!(pages.len() <= items.len() + 1, "runaway paging");
        }
        pages
    }

    #[test]
    fn search_href_walk_forward_and_back() {
        let items = search_items();
        let expected = ids(&list(SORT_ASC, items.clone()));
        for page_size in 1..=6 {
            let (seen, last) = walk_next(&format!("limit={page_size}&{SORT_ASC}"), &items);
            assert_eq!(seen, expected, "forward, page size {page_size}");
            if expected.len().is_multiple_of(page_size) {
                // A full last page leads to an empty page: no next, but a previous.
                assert!(ids(&last).is_empty());
            }
            assert!(link_of(&last, "next").is_none());
            assert!(link_of(&last, "previous").is_some());

            let last_ids = ids(&last);
            let pages = walk_previous(last, &items);
            let back: Vec<String> = pages
                .iter()
                .rev()
                .flatten()
                .chain(&last_ids)
                .cloned()
                .collect();
            assert_eq!(back, expected, "backward, page size {page_size}");
            // Every page walked back is in requested (ascending) order and at most page_size long.
            assert!(pages.iter().all(|p| p.len() <= page_size));
        }
    }

    #[test]
    fn search_empty_last_page_rule_with_limit_one() {
        let items = search_items();
        let (_, last) = walk_next(&format!("limit=1&{SORT_ASC}"), &items);
        assert!(ids(&last).is_empty());
        assert!(link_of(&last, "next").is_none());
        let previous = link_of(&last, "previous").unwrap();
        // No marker on an empty page, and reverse: the last item.
        assert_eq!(
            previous,
            format!("{BASE}?limit=1&sort_key=name&sort_dir=asc&page_reverse=True")
        );
        assert_eq!(ids(&follow(&previous, &items)), ["d"]);
    }

    #[test]
    fn search_page_reverse_with_marker() {
        let items = search_items();
        // Sorted ids: a b c e d. Two items before "e", in ascending order.
        let body = list(
            &format!("{SORT_ASC}&limit=2&marker=e&page_reverse=True"),
            items.clone(),
        );
        assert_eq!(ids(&body), ["b", "c"]);
        assert_eq!(
            link_of(&body, "next").unwrap(),
            format!("{BASE}?sort_key=name&sort_dir=asc&limit=2&marker=c")
        );
        assert_eq!(
            link_of(&body, "previous").unwrap(),
            format!("{BASE}?sort_key=name&sort_dir=asc&limit=2&marker=b&page_reverse=True")
        );
        // A short reverse page has no previous.
        let body = list(
            &format!("{SORT_ASC}&limit=2&marker=b&page_reverse=true"),
            items.clone(),
        );
        assert_eq!(ids(&body), ["a"]);
        assert!(link_of(&body, "previous").is_none());
        assert!(link_of(&body, "next").is_some());
        // Reverse without marker: the last items.
        assert_eq!(
            ids(&list(
                &format!("{SORT_ASC}&limit=3&page_reverse=True"),
                items.clone()
            )),
            ["c", "e", "d"]
        );
        // Descending order, reversed from a marker.
        let body = list(
            "sort_key=name&sort_dir=desc&limit=2&marker=b&page_reverse=True",
            items,
        );
        assert_eq!(ids(&body), ["c", "e"]);
    }

    #[test]
    fn search_limit_zero_returns_all() {
        let body = list(&format!("limit=0&{SORT_ASC}"), search_items());
        assert_eq!(ids(&body), ["a", "b", "c", "e", "d"]);
        assert!(body.get("networks_links").is_none());
    }

    #[test]
    fn python_repr_of_strings() {
        assert_eq!(py_str("foo"), "'foo'");
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(py_str("both'\""), "'both\\'\"'");
        assert_eq!(py_str("a\\b\n"), "'a\\\\b\\n'");
        assert_eq!(py_list(&[]), "[]");
    }
}
