//! Request bodies: `{"<resource>": {...}}` or, for bulk create, `{"<collection>": [...]}`,
//! checked the way Neutron checks them, with its error texts.

use serde_json::{Map, Value};

use super::error::{ApiResult, NeutronError};
use neutrino_core::RequestContext;
pub use neutrino_core::body::{boolean, integer, list, string, string_or_empty};

/// What a create body held: one resource, or a bulk list.
pub enum CreateBody {
    One(Map<String, Value>),
    Bulk(Vec<Map<String, Value>>),
}

pub fn parse(bytes: &[u8]) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|_| NeutronError::bad_request("Body contains invalid data"))?;
    refuse_nul(&value, &[])?;
    Ok(value)
}

/// PostgreSQL text cannot hold U+0000, so no attribute may contain it: on both backends a
/// body with a NUL anywhere (a key or a string value, however deep) is a 400 `InvalidInput`
/// naming the resource's attribute that holds it, rather than a 201 on SQLite and a 500 on
/// PostgreSQL. (Neutron stores such a name; it cannot be stored here on PostgreSQL.)
fn refuse_nul(value: &Value, path: &[&str]) -> ApiResult<()> {
    let nul = |s: &str| s.contains('\0');
    match value {
        Value::String(s) if nul(s) => Err(nul_refused(path.get(1).copied())),
        Value::Array(items) => items.iter().try_for_each(|i| refuse_nul(i, path)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if nul(k) {
                return Err(nul_refused(None));
            }
            // `{"<resource>": {"<attribute>": ...}}`: the attribute is the second key (a bulk
            // list adds no key).
            let mut inner = path.to_vec();
            inner.push(k);
            refuse_nul(v, &inner)
        }),
        _ => Ok(()),
    }
}

/// Whether a JSON value holds a NUL anywhere (a key or a string, however deep).
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

fn nul_refused(attribute: Option<&str>) -> NeutronError {
    NeutronError::invalid_input(match attribute {
        Some(a) => format!("'{a}' must not contain a NUL character (U+0000)."),
        None => "the request body must not contain a NUL character (U+0000).".to_string(),
    })
}

fn missing(resource: &str) -> NeutronError {
    NeutronError::bad_request(format!("Unable to find '{resource}' in request body"))
}

/// Runs `work` (parsing a body, building an answer) on a blocking thread when `size` (items or
/// bytes) is past `threshold`: the 112 KiB body of a bulk or its answer of tens of thousands of
/// items takes tens of milliseconds of a core, during which an async worker would run nothing
/// else, whichever project's request waits on it.
pub async fn off_worker<T: Send + 'static>(
    size: usize,
    threshold: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    if size <= threshold {
        return work();
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Bodies past this many bytes are parsed off the async workers.
pub const BIG_BODY: usize = 16 * 1024;
/// Answers of more items than this are built off the async workers.
pub const BIG_ANSWER: usize = 64;

/// A create request's bodies (one, or a bulk: the flag), each checked by `check` (attributes
/// and policy), which answers the project each is for. A big body is parsed and checked on a
/// blocking thread ([`off_worker`]).
pub async fn checked_create_bodies(
    bytes: axum::body::Bytes,
    resource: &'static str,
    collection: &'static str,
    ctx: &RequestContext,
    check: fn(&RequestContext, &Map<String, Value>) -> ApiResult<String>,
) -> ApiResult<(Vec<Map<String, Value>>, bool, Vec<String>)> {
    let ctx = ctx.clone();
    off_worker(bytes.len(), BIG_BODY, move || {
        let (bodies, bulk) = match create_body(&bytes, resource, collection)? {
            CreateBody::One(b) => (vec![b], false),
            CreateBody::Bulk(v) => (v, true),
        };
        let projects = bodies
            .iter()
            .map(|b| check(&ctx, b))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok((bodies, bulk, projects))
    })
    .await
}

pub fn create_body(bytes: &[u8], resource: &str, collection: &str) -> ApiResult<CreateBody> {
    let Value::Object(mut top) = parse(bytes)? else {
        return Err(missing(resource));
    };
    if let Some(v) = top.remove(resource) {
        return match v {
            Value::Object(m) => Ok(CreateBody::One(m)),
            _ => Err(missing(resource)),
        };
    }
    match top.remove(collection) {
        Some(Value::Array(items)) if !items.is_empty() => items
            .into_iter()
            .map(|i| match i {
                Value::Object(m) => Ok(m),
                _ => Err(NeutronError::bad_request("Body contains invalid data")),
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(CreateBody::Bulk),
        _ => Err(missing(resource)),
    }
}

pub fn update_body(bytes: &[u8], resource: &str) -> ApiResult<Map<String, Value>> {
    match parse(bytes)? {
        Value::Object(mut top) => match top.remove(resource) {
            Some(Value::Object(m)) => Ok(m),
            _ => Err(missing(resource)),
        },
        _ => Err(missing(resource)),
    }
}

/// Checks a create body: read-only attributes are "not allowed in POST", unknown ones
/// unrecognized.
pub fn check_create_attributes(
    body: &Map<String, Value>,
    create: &[&str],
    read_only: &[&str],
) -> ApiResult<()> {
    if let Some(ro) = body
        .keys()
        .find(|k| read_only.contains(&k.as_str()) && !create.contains(&k.as_str()))
    {
        return Err(NeutronError::bad_request(format!(
            "Attribute '{ro}' not allowed in POST"
        )));
    }
    check_attributes(body, create, &[])
}

/// The 201 answer of a create: `{"<resource>": {...}}`, or `{"<collection>": [...]}` for bulk.
pub fn created(
    resource: &str,
    collection: &str,
    bulk: bool,
    mut items: Vec<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = if bulk || items.len() != 1 {
        serde_json::json!({ collection: items })
    } else {
        serde_json::json!({ resource: items.remove(0) })
    };
    (axum::http::StatusCode::CREATED, axum::Json(body)).into_response()
}

/// Rejects attributes not in `allowed` ("Unrecognized attribute(s) 'foo'"), and, on update,
/// known attributes that may not change ("Cannot update read-only attribute status").
pub fn check_attributes(
    body: &Map<String, Value>,
    allowed: &[&str],
    known_read_only: &[&str],
) -> ApiResult<()> {
    if let Some(ro) = body.keys().find(|k| known_read_only.contains(&k.as_str())) {
        return Err(NeutronError::bad_request(format!(
            "Cannot update read-only attribute {ro}"
        )));
    }
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(NeutronError::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            unknown.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn bodies_are_checked_like_neutron() {
        assert_eq!(
            create_body(b"{nope", "network", "networks")
                .err()
                .unwrap()
                .message,
            "Body contains invalid data"
        );
        assert_eq!(
            create_body(b"{}", "network", "networks")
                .err()
                .unwrap()
                .message,
            "Unable to find 'network' in request body"
        );
        assert!(
            matches!(create_body(br#"{"networks": [{}, {}]}"#, "network", "networks"), Ok(CreateBody::Bulk(v)) if v.len() == 2)
        );
        let e = check_attributes(&map(json!({"name": "x", "foo": 1})), &["name"], &[]).unwrap_err();
        assert_eq!(e.message, "Unrecognized attribute(s) 'foo'");
        let e =
            check_attributes(&map(json!({"status": "DOWN"})), &["name"], &["status"]).unwrap_err();
        assert_eq!(e.message, "Cannot update read-only attribute status");
    }
}
