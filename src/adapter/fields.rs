//! Reading native JSON records: dotted paths, strings that may be numbers, the time
//! forms vendors and log shippers use, and envelopes that batch several records.

use serde_json::Value;

use crate::error::DecodeError;
use crate::time::Micros;

/// The value at a dotted path (`"userIdentity.accessKeyId"`); array elements by index.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// The non-empty string at a path; numbers and booleans are given as text.
pub fn text(v: &Value, path: &str) -> Option<String> {
    match at(v, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The non-empty string at a path, borrowed.
pub fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The first of `paths` that has text.
pub fn first_text(v: &Value, paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| text(v, p))
}

/// The text at `path`, or an error naming the missing field.
pub fn required(v: &Value, path: &str) -> Result<String, DecodeError> {
    text(v, path).ok_or_else(|| DecodeError::new(format!("missing {path}")))
}

/// The array at a path (empty when absent).
pub fn array<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The event time at the first of `paths` present: RFC 3339 (any precision or offset),
/// the `YYYY-MM-DD HH:MM:SS[.f]` UTC form log shippers write, or epoch seconds,
/// milliseconds or microseconds (told apart by magnitude).
pub fn time(v: &Value, paths: &[&str]) -> Result<Micros, DecodeError> {
    let (path, value) = paths
        .iter()
        .find_map(|p| at(v, p).filter(|x| !x.is_null()).map(|x| (p, x)))
        .ok_or_else(|| DecodeError::new(format!("missing time ({})", paths.join(" or "))))?;
    parse_time(value).ok_or_else(|| DecodeError::new(format!("{path}: not a time: {value}")))
}

fn parse_time(value: &Value) -> Option<Micros> {
    match value {
        Value::Number(n) => epoch(n.as_f64()?),
        Value::String(s) => {
            if let Ok(t) = Micros::parse(s) {
                return Some(t);
            }
            if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return epoch(s.parse().ok()?);
            }
            let iso = s.replacen(' ', "T", 1);
            Micros::parse(&iso)
                .or_else(|_| Micros::parse(&format!("{iso}Z")))
                .ok()
        }
        _ => None,
    }
}

fn epoch(n: f64) -> Option<Micros> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let micros = if n < 1e11 {
        n * 1e6
    } else if n < 1e14 {
        n * 1e3
    } else {
        n
    };
    (micros < 9.2e18).then_some(Micros(micros as i64))
}

/// The records inside a batching envelope — a JSON array, or an object whose only
/// member (besides `@odata.*` annotations) is `Records` (CloudTrail files), `records`
/// (Azure Monitor) or `value` (Graph) holding an array (or, for `value`, one object) — or
/// the value itself.
pub fn unbatch(value: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match value {
        Value::Array(items) => Box::new(items.iter().flat_map(unbatch)),
        Value::Object(m) if m.keys().filter(|k| !k.starts_with('@')).count() == 1 => {
            match ["Records", "records", "value"]
                .iter()
                .find_map(|k| m.get(*k).and_then(Value::as_array))
            {
                Some(items) => Box::new(items.iter()),
                None => match m.get("value") {
                    Some(one @ Value::Object(_)) => Box::new(std::iter::once(one)),
                    _ => Box::new(std::iter::once(value)),
                },
            }
        }
        _ => Box::new(std::iter::once(value)),
    }
}

/// A deterministic id for a record that carries none: `sha256:` and the first 16 bytes
/// of the SHA-256 of its JSON (object keys sorted), so a redelivered record gets the
/// same id.
pub fn content_id(record: &Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(serde_json::to_vec(record).unwrap_or_default());
    format!("sha256:{}", crate::alert::hex(&digest[..16]))
}

/// The first of `paths` that has text, else the record's [`content_id`].
pub fn id_or_content(record: &Value, paths: &[&str]) -> String {
    first_text(record, paths).unwrap_or_else(|| content_id(record))
}

/// The last segment of a path-like id (`arn:…:role/path/name` → `name`).
pub fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_in_every_form() {
        let t = |v: Value| parse_time(&v).map(|m| m.to_string());
        let want = Some("2022-09-27T17:09:18.000000Z".to_owned());
        assert_eq!(t(json!("2022-09-27T17:09:18Z")), want);
        assert_eq!(t(json!("2022-09-27 17:09:18")), want);
        assert_eq!(t(json!("2022-09-27 17:09:18.000000000")), want);
        assert_eq!(t(json!(1664298558)), want);
        assert_eq!(t(json!(1664298558000u64)), want);
        assert_eq!(t(json!("1664298558000")), want);
        assert_eq!(
            t(json!("2022-09-27T19:09:18.123456789+02:00")).as_deref(),
            Some("2022-09-27T17:09:18.123456Z")
        );
        assert_eq!(t(json!("yesterday")), None);
        assert_eq!(t(json!(-5)), None);
        assert_eq!(t(json!(f64::MAX)), None);
    }

    #[test]
    fn paths_and_envelopes() {
        let v = json!({"a": {"b": [{"c": 7}]}, "Records": []});
        assert_eq!(text(&v, "a.b.0.c").as_deref(), Some("7"));
        assert_eq!(text(&v, "a.x"), None);
        assert_eq!(unbatch(&json!({"Records": [1, 2]})).count(), 2);
        assert_eq!(unbatch(&json!([[1], 2])).count(), 2);
        assert_eq!(unbatch(&v).count(), 1);
        assert_eq!(last_segment("arn:aws:iam::1:role/a/b"), "b");
    }
}
