//! Request bodies: `{"<resource>": {...}}` or, for bulk create, `{"<collection>": [...]}`,
//! checked the way Neutron checks them, with its error texts.

use serde_json::{Map, Value};

use super::error::{ApiResult, NeutronError};

/// What a create body held: one resource, or a bulk list.
pub enum CreateBody {
    One(Map<String, Value>),
    Bulk(Vec<Map<String, Value>>),
}

fn parse(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes)
        .map_err(|_| NeutronError::bad_request("Body contains invalid data"))
}

fn missing(resource: &str) -> NeutronError {
    NeutronError::bad_request(format!("Unable to find '{resource}' in request body"))
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

/// Neutron's `convert_to_boolean`: true/false, "true"/"false" (any case), 1/0.
pub fn boolean(body: &Map<String, Value>, key: &str) -> ApiResult<Option<bool>> {
    let Some(v) = body.get(key) else {
        return Ok(None);
    };
    let parsed = match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        Value::Number(n) if n.as_i64() == Some(0) => Some(false),
        Value::String(s) if s.eq_ignore_ascii_case("true") || s == "1" => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") || s == "0" => Some(false),
        _ => None,
    };
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    parsed.map(Some).ok_or_else(|| {
        NeutronError::invalid_input(format!("'{text}' cannot be converted to boolean."))
    })
}

/// A string attribute of at most `max` characters (`null` is refused too).
pub fn string(body: &Map<String, Value>, key: &str, max: usize) -> ApiResult<Option<String>> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(NeutronError::bad_request(format!(
            "Invalid input for {key}. Reason: '{s}' exceeds maximum length of {max}."
        ))),
        Some(other) => Err(NeutronError::bad_request(format!(
            "Invalid input for {key}. Reason: '{other}' is not a valid string."
        ))),
    }
}

/// A list attribute: None when absent, no items for `null`, else its items; anything but a
/// list is "Invalid input for <key>. Reason: '<value>' is not a list".
pub fn list<'a>(v: Option<&'a Value>, key: &str) -> ApiResult<Option<&'a [Value]>> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(&[])),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(NeutronError::bad_request(format!(
            "Invalid input for {key}. Reason: '{other}' is not a list"
        ))),
    }
}

/// A string attribute where `null` means empty (Neutron's `convert_none_to_empty_string`, used
/// by e.g. `binding:host_id`: `openstack port unset --host` sends `null`).
pub fn string_or_empty(
    body: &Map<String, Value>,
    key: &str,
    max: usize,
) -> ApiResult<Option<String>> {
    match body.get(key) {
        Some(Value::Null) => Ok(Some(String::new())),
        _ => string(body, key, max),
    }
}

/// An integer attribute (a JSON number or a numeric string), `null` as None.
pub fn integer(body: &Map<String, Value>, key: &str) -> ApiResult<Option<i64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(other) => Err(NeutronError::invalid_input(format!(
            "'{other}' is not an integer"
        ))),
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

    #[test]
    fn booleans_convert_like_neutron() {
        let b = map(json!({"a": "True", "b": 0, "c": "notbool"}));
        assert_eq!(boolean(&b, "a").unwrap(), Some(true));
        assert_eq!(boolean(&b, "b").unwrap(), Some(false));
        let e = boolean(&b, "c").unwrap_err();
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            (
                "InvalidInput",
                "Invalid input for operation: 'notbool' cannot be converted to boolean."
            )
        );
    }
}
