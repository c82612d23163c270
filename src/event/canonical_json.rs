//! Canonical JSON: the one encoding of a JSON value that metadata and
//! changed fields are sealed in.

use serde_json::{Map, Value};

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace,
/// strings escaped as `serde_json` does, integers only (floats are refused
/// by validation). The same value always gives the same bytes, however a
/// backend stored or reordered it.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    into_text(out)
}

pub(super) fn canonical_json_object(map: &Map<String, Value>) -> String {
    let mut out = Vec::new();
    write_canonical_object(map, &mut out);
    into_text(out)
}

/// JSON written from `Value`s is UTF-8, since every string in it is.
fn into_text(json: Vec<u8>) -> String {
    String::from_utf8(json)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_canonical_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

fn write_canonical_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // Usually sorted already (serde_json's map is a `BTreeMap` unless a
    // crate enables its `preserve_order` feature).
    if !entries.is_sorted_by(|a, b| a.0.as_bytes() <= b.0.as_bytes()) {
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    }
    out.push(b'{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(key.as_str(), out);
        out.push(b':');
        write_canonical(item, out);
    }
    out.push(b'}');
}

/// A string or scalar as `serde_json` writes it.
fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Serialising a string or scalar into memory cannot fail.
    let written = serde_json::to_writer(out, value);
    debug_assert!(written.is_ok(), "{written:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = serde_json::json!({"b": 1, "a": {"d": [true, null], "c": "x\"y"}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":"x\"y","d":[true,null]},"b":1}"#
        );
    }

    #[test]
    fn canonical_json_escapes_strings_as_serde_json_does() {
        let value = serde_json::json!({
            "zeile\n": "\u{1b}[31m\u{7f} \\ ü €",
            "Z": [-7, u64::MAX, "\t"],
        });
        assert_eq!(
            canonical_json(&value),
            // serde_json leaves DEL as it is.
            "{\"Z\":[-7,18446744073709551615,\"\\t\"],\"zeile\\n\":\"\\u001b[31m\u{7f} \\\\ ü €\"}"
        );
    }
}
