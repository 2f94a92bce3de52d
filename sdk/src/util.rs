use crate::types::{Agent, Pairs};

/// The value for `key` in a list of pairs.
pub fn pairs_get<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A pair `(key, value)` of owned strings.
pub fn pair(key: &str, value: impl Into<String>) -> (String, String) {
    (key.to_string(), value.into())
}

/// A JSON string literal (for `vif-details` values).
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON boolean literal.
pub fn json_bool(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// The agents of one type among those on the host.
pub fn agents_of_type<'a>(agents: &'a [Agent], agent_type: &'a str) -> impl Iterator<Item = &'a Agent> {
    agents.iter().filter(move |a| a.agent_type == agent_type)
}
