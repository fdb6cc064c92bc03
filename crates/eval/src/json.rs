//! Deterministic JSON output: keys sorted at every level, two-space
//! indentation, shortest round-trip float formatting, trailing newline.
//!
//! `serde_json`'s own map type keeps insertion order when some crate in the
//! build enables its `preserve_order` feature, so key order is enforced here
//! rather than relied upon.

use serde::Serialize;
use serde_json::Value;

use crate::error::Result;

/// Serialise `value` as canonical, pretty-printed JSON ending in a newline.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Result<String> {
    let v = serde_json::to_value(value)?;
    let mut out = String::new();
    write_value(&v, 0, &mut out);
    out.push('\n');
    Ok(out)
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_value(v: &Value, level: usize, out: &mut String) {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            // Scalars: serde_json's own formatting (shortest round-trip
            // floats, JSON string escapes) cannot fail.
            out.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for (i, it) in items.iter().enumerate() {
                indent(out, level + 1);
                write_value(it, level + 1, out);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                indent(out, level + 1);
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push_str(": ");
                write_value(&map[k.as_str()], level + 1, out);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, level);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sorted_and_stable() {
        #[derive(Serialize)]
        struct S {
            zeta: f64,
            alpha: Vec<u8>,
            mid: Option<String>,
        }
        let s = S {
            zeta: 0.1,
            alpha: vec![1, 2],
            mid: None,
        };
        let j = to_canonical_json(&s).unwrap();
        assert_eq!(
            j,
            "{\n  \"alpha\": [\n    1,\n    2\n  ],\n  \"mid\": null,\n  \"zeta\": 0.1\n}\n"
        );
    }
}
