//! Attributes read out of a resource body (a JSON object), converted and checked as Neutron
//! does (`convert_to_boolean`, string lengths, lists, integers).

use serde_json::{Map, Value};

use crate::error::{CoreResult, NeutronError};

/// Neutron's `convert_to_boolean`: true/false, "true"/"false" (any case), 1/0.
pub fn boolean(body: &Map<String, Value>, key: &str) -> CoreResult<Option<bool>> {
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
pub fn string(body: &Map<String, Value>, key: &str, max: usize) -> CoreResult<Option<String>> {
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
pub fn list<'a>(v: Option<&'a Value>, key: &str) -> CoreResult<Option<&'a [Value]>> {
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
) -> CoreResult<Option<String>> {
    match body.get(key) {
        Some(Value::Null) => Ok(Some(String::new())),
        _ => string(body, key, max),
    }
}

/// An integer attribute (a JSON number or a numeric string), `null` as None.
pub fn integer(body: &Map<String, Value>, key: &str) -> CoreResult<Option<i64>> {
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
