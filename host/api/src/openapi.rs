//! `GET /openapi.json`: an OpenAPI 3.1 description built from the same tables the handlers use
//! (each resource's accepted, updatable and read-only attributes, filters and sort keys), so
//! it cannot drift from what is served. A test calls every documented operation.

use axum::Json;
use serde_json::{Map, Value, json};

use super::query::CollectionSpec;
use super::{
    agents, floating_ips, networks, ports, routers, security_group_rules, security_groups,
    subnet_pools, subnets, tags,
};

/// What the document says about one resource; each resource module exports one.
pub struct ResourceDoc {
    /// Singular name, the key of request and response bodies (`network`).
    pub resource: &'static str,
    pub spec: &'static CollectionSpec,
    /// Attributes a POST accepts (empty: the collection cannot be created through the API).
    pub create: &'static [&'static str],
    /// Attributes a PUT accepts.
    pub update: &'static [&'static str],
    /// Attributes shown but never written.
    pub read_only: &'static [&'static str],
    /// Whether items can be deleted.
    pub delete: bool,
}

fn resources() -> [&'static ResourceDoc; 9] {
    [
        &networks::DOC,
        &subnets::DOC,
        &subnet_pools::DOC,
        &ports::DOC,
        &agents::DOC,
        &security_groups::DOC,
        &security_group_rules::DOC,
        &routers::DOC,
        &floating_ips::DOC,
    ]
}

/// Every documented `(method, path)`; `{id}` and `{alias}` stand for any value.
pub fn operations() -> Vec<(&'static str, String)> {
    let doc = document();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            let method = match method.as_str() {
                "get" => "GET",
                "post" => "POST",
                "put" => "PUT",
                "delete" => "DELETE",
                _ => continue,
            };
            ops.push((method, path.clone()));
        }
    }
    ops
}

pub async fn serve() -> Json<Value> {
    Json(document())
}

/// The JSON Schema of an attribute, by name (Neutron's types).
fn attribute_schema(name: &str) -> Value {
    match name {
        "admin_state_up"
        | "shared"
        | "router:external"
        | "port_security_enabled"
        | "is_default"
        | "enable_dhcp"
        | "alive"
        | "resources_synced"
        | "stateful"
        | "belongs_to_default_sg"
        | "use_default_subnetpool" => json!({"type": "boolean"}),
        "mtu"
        | "revision_number"
        | "provider:segmentation_id"
        | "ip_version"
        | "port_range_min"
        | "port_range_max"
        | "default_quota"
        | "prefixlen" => {
            json!({"type": ["integer", "null"]})
        }
        "security_group_rules" => json!({"type": "array", "items": {"type": "object"}}),
        "subnets"
        | "availability_zone_hints"
        | "availability_zones"
        | "tags"
        | "dns_nameservers"
        | "security_groups"
        | "service_types"
        | "prefixes" => {
            json!({"type": "array", "items": {"type": "string"}})
        }
        "allocation_pools" => json!({"type": "array", "items": {"type": "object",
            "properties": {"start": {"type": "string"}, "end": {"type": "string"}}}}),
        "host_routes" => json!({"type": "array", "items": {"type": "object",
            "properties": {"destination": {"type": "string"}, "nexthop": {"type": "string"}}}}),
        "fixed_ips" => json!({"type": "array", "items": {"type": "object",
            "properties": {"subnet_id": {"type": "string"}, "ip_address": {"type": "string"}}}}),
        "allowed_address_pairs" => json!({"type": "array", "items": {"type": "object",
            "properties": {"ip_address": {"type": "string"}, "mac_address": {"type": "string"}}}}),
        "extra_dhcp_opts" => json!({"type": "array", "items": {"type": "object",
            "properties": {"opt_name": {"type": "string"}, "opt_value": {"type": ["string", "null"]},
                           "ip_version": {"type": "integer", "enum": [4, 6]}}}}),
        "dns_assignment" => json!({"type": "array", "items": {"type": "object"}}),
        "binding:profile" | "binding:vif_details" | "configurations" => json!({"type": "object"}),
        _ => json!({"type": ["string", "null"]}),
    }
}

fn object_schema(attributes: &[&str]) -> Value {
    let properties: Map<String, Value> = attributes
        .iter()
        .map(|a| (a.to_string(), attribute_schema(a)))
        .collect();
    json!({"type": "object", "properties": properties})
}

fn body(key: &str, schema: Value) -> Value {
    json!({"content": {"application/json": {"schema": {"type": "object", "properties": {key: schema}}}}})
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NeutronError"}}}})
}

fn list_parameters(spec: &CollectionSpec) -> Vec<Value> {
    let mut params = vec![
        json!({"name": "fields", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}, "explode": true}),
        json!({"name": "sort_key", "in": "query", "schema": {"type": "string", "enum": spec.sortable}}),
        json!({"name": "sort_dir", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}}),
        json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}}),
        json!({"name": "marker", "in": "query", "schema": {"type": "string"}}),
        json!({"name": "page_reverse", "in": "query", "schema": {"type": "boolean"}}),
    ];
    params.extend(spec.filterable.iter().map(|f| {
        json!({"name": f, "in": "query", "description": "filter: any of the values given",
               "schema": {"type": "array", "items": {"type": "string"}}, "explode": true})
    }));
    params
}

fn resource_paths(doc: &ResourceDoc, paths: &mut Map<String, Value>) {
    let (one, many) = (doc.resource, doc.spec.collection);
    // URLs spell the collection with hyphens (`security-groups`), bodies with underscores.
    let url = many.replace('_', "-");
    let mut shown: Vec<&str> = Vec::new();
    for a in doc
        .read_only
        .iter()
        .chain(doc.create)
        .chain(doc.update)
        .chain(doc.spec.filterable)
    {
        if !shown.contains(a) {
            shown.push(a);
        }
    }
    let item = object_schema(&shown);
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let mut collection = Map::new();
    collection.insert(
        "get".into(),
        json!({"summary": format!("List {many}"), "tags": [many], "parameters": list_parameters(doc.spec),
            "responses": {"200": {"description": "the visible items, filtered, sorted and paged",
                "content": {"application/json": {"schema": {"type": "object", "properties": {
                    many: {"type": "array", "items": item},
                    format!("{many}_links"): {"type": "array", "items": {"type": "object"}}}}}}},
                "400": error_response("bad filter, sort key or limit")}}),
    );
    if !doc.create.is_empty() {
        collection.insert(
            "post".into(),
            json!({"summary": format!("Create one {one} or, with `{many}`, several at once (all or nothing)"),
                "tags": [many], "requestBody": body(one, object_schema(doc.create)),
                "responses": {"201": {"description": "created", "content": body(one, item.clone())["content"]},
                    "400": error_response("bad input"), "403": error_response("not allowed by policy"),
                    "404": error_response("a referenced resource does not exist"),
                    "409": error_response("conflict (address, MAC or segment in use, pool exhausted)")}}),
        );
    }
    paths.insert(format!("/v2.0/{url}"), Value::Object(collection));
    let mut single = Map::new();
    single.insert(
        "get".into(),
        json!({"summary": format!("Show one {one}"), "tags": [many], "parameters": id,
            "responses": {"200": {"description": "the item", "content": body(one, item.clone())["content"]},
                "404": error_response("not found or not visible")}}),
    );
    // Items without updatable attributes (security group rules) cannot be updated.
    if !doc.update.is_empty() {
        single.insert(
            "put".into(),
            json!({"summary": format!("Update one {one}"), "tags": [many], "parameters": id,
                "requestBody": body(one, object_schema(doc.update)),
                "responses": {"200": {"description": "the updated item", "content": body(one, item)["content"]},
                    "400": error_response("bad input or read-only attribute"),
                    "403": error_response("not allowed by policy"), "404": error_response("not found")}}),
        );
    }
    if doc.delete {
        single.insert(
            "delete".into(),
            json!({"summary": format!("Delete one {one}"), "tags": [many], "parameters": id,
                "responses": {"204": {"description": "deleted"}, "404": error_response("not found"),
                    "409": error_response("in use")}}),
        );
    }
    paths.insert(format!("/v2.0/{url}/{{id}}"), Value::Object(single));
}

/// The tag sub-resources of every tagged collection (`standard-attr-tag`, `tag-creation`).
fn tag_paths(paths: &mut Map<String, Value>) {
    for (collection, _) in tags::TAGGED {
        let id =
            json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
        let id_tag = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
            {"name": "tag", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 255}}]);
        let tags_body = body(
            "tags",
            json!({"type": "array", "items": {"type": "string", "maxLength": 255}, "maxItems": 50}),
        );
        paths.insert(format!("/v2.0/{collection}/{{id}}/tags"), json!({
            "get": {"summary": "The item's tags", "tags": [collection], "parameters": id,
                "responses": {"200": {"description": "{\"tags\": [...]}"}, "404": error_response("no such item")}},
            "put": {"summary": "Replace the item's tags", "tags": [collection], "parameters": id, "requestBody": tags_body,
                "responses": {"200": {"description": "the body"}, "400": error_response("bad tags"), "404": error_response("no such item")}},
            "post": {"summary": "Add tags to the item", "tags": [collection], "parameters": id, "requestBody": tags_body,
                "responses": {"200": {"description": "the body"}, "400": error_response("bad tags"), "404": error_response("no such item")}},
            "delete": {"summary": "Remove every tag of the item", "tags": [collection], "parameters": id,
                "responses": {"204": {"description": "removed"}, "404": error_response("no such item")}},
        }));
        paths.insert(format!("/v2.0/{collection}/{{id}}/tags/{{tag}}"), json!({
            "get": {"summary": "Whether the item has the tag", "tags": [collection], "parameters": id_tag,
                "responses": {"204": {"description": "it has"}, "404": error_response("no such item or tag (TagNotFound)")}},
            "put": {"summary": "Add the tag", "tags": [collection], "parameters": id_tag,
                "responses": {"201": {"description": "added (or already there)"}, "400": error_response("bad tag"), "404": error_response("no such item")}},
            "delete": {"summary": "Remove the tag", "tags": [collection], "parameters": id_tag,
                "responses": {"204": {"description": "removed"}, "404": error_response("no such item or tag (TagNotFound)")}},
        }));
    }
}

/// The DHCP agent scheduler's sub-resources (`dhcp_agent_scheduler`), admin-only.
fn dhcp_scheduler_paths(paths: &mut Map<String, Value>) {
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let network_id =
        json!({"name": "network_id", "in": "path", "required": true, "schema": {"type": "string"}});
    paths.insert("/v2.0/agents/{id}/dhcp-networks".into(), json!({
        "get": {"summary": "The networks a DHCP agent serves (admin only)", "tags": ["agents"], "parameters": [id],
            "responses": {"200": {"description": "{\"networks\": [...]}"}, "403": error_response("not an admin"),
                "404": error_response("no such agent")}},
        "post": {"summary": "Give a network to a DHCP agent (admin only)", "tags": ["agents"], "parameters": [id],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object",
                "properties": {"network_id": {"type": "string"}}, "required": ["network_id"]}}}},
            "responses": {"201": {"description": "null"}, "403": error_response("not an admin"),
                "404": error_response("no such agent or network, or not an enabled DHCP agent (InvalidDHCPAgent)"),
                "409": error_response("already hosted there (NetworkHostedByDHCPAgent)")}},
    }));
    paths.insert("/v2.0/agents/{id}/dhcp-networks/{network_id}".into(), json!({
        "delete": {"summary": "Take a network from a DHCP agent (admin only)", "tags": ["agents"],
            "parameters": [id, network_id],
            "responses": {"204": {"description": "removed"}, "403": error_response("not an admin"),
                "404": error_response("no such agent"), "409": error_response("not hosted there (NetworkNotHostedByDhcpAgent)")}},
    }));
    paths.insert("/v2.0/networks/{id}/dhcp-agents".into(), json!({
        "get": {"summary": "The DHCP agents serving a network (admin only)", "tags": ["networks"], "parameters": [id],
            "responses": {"200": {"description": "{\"agents\": [...]}"}, "403": error_response("not an admin"),
                "404": error_response("no such network")}},
    }));
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    paths.insert("/".into(), json!({"get": {"summary": "API versions", "tags": ["discovery"], "responses": {"200": {"description": "versions"}}}}));
    paths.insert("/v2.0/".into(), json!({"get": {"summary": "Resources of v2.0", "tags": ["discovery"], "responses": {"200": {"description": "resources"}}}}));
    paths.insert("/v2.0/extensions".into(), json!({"get": {"summary": "Extensions served", "tags": ["discovery"], "responses": {"200": {"description": "extensions"}}}}));
    paths.insert("/v2.0/extensions/{alias}".into(), json!({"get": {"summary": "One extension", "tags": ["discovery"],
        "parameters": [{"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the extension"}, "404": error_response("no such extension")}}}));
    for doc in resources() {
        resource_paths(doc, &mut paths);
    }
    tag_paths(&mut paths);
    dhcp_scheduler_paths(&mut paths);
    paths.insert("/v2.0/ports/{id}/binding".into(), json!({"get": {
        "summary": "Every mechanism driver's decision and reason at the port's last binding (admin only; extension neutrino-binding-decisions)",
        "tags": ["ports"], "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "host, status (unbound/bound/failed), decisions"},
            "403": error_response("not an admin"), "404": error_response("no such port")}}}));
    paths.insert("/internal/agents/report".into(), json!({"post": {
        "summary": "An agent's heartbeat (internal; needs the X-Neutrino-Agent-Token header: the report's host's own credential, or the shared token of serve --shared-agent-token)", "tags": ["internal"],
        "requestBody": body("agent", object_schema(&["agent_type", "binary", "host", "topic", "configurations", "start_flag", "availability_zone"])),
        "responses": {"200": {"description": "{\"result\": \"new\" | \"alive\" | \"revived\"}"},
            "400": error_response("bad report"), "401": error_response("bad, missing or revoked agent token"),
            "403": error_response("the credential is another host's")}}}));
    paths.insert("/openapi.json".into(), json!({"get": {"summary": "This document", "tags": ["discovery"], "responses": {"200": {"description": "OpenAPI 3.1"}}}}));
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Neutrino: OpenStack Networking API v2.0", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": {"NeutronError": {"type": "object", "properties": {"NeutronError": {
            "type": "object", "properties": {"type": {"type": "string"}, "message": {"type": "string"}, "detail": {"type": "string"}}}}}}},
    })
}
