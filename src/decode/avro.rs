//! Canonical Avro (`schemas/identity_event.avsc`): raw datum, the Confluent wire format
//! (magic byte 0 and a 4-byte schema id before the datum), and object container files
//! (read block by block by [`super::container`], which survives damage).
//!
//! A raw datum never starts with a 0 byte: its first field is the non-empty `event_id`,
//! whose length prefix is a non-zero zig-zag varint. So a leading 0 unambiguously marks
//! the Confluent framing.

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

use apache_avro::types::Value;
use apache_avro::Schema;

use super::registry::Registry;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind, IdentityEvent, Outcome, System};
use crate::time::Micros;

/// The canonical event schema text.
pub const IDENTITY_EVENT_SCHEMA: &str = include_str!("../../schemas/identity_event.avsc");

/// The parsed canonical event schema.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The schema is a compile-time constant checked by the tests below.
        Schema::parse_str(IDENTITY_EVENT_SCHEMA).unwrap_or(Schema::Null)
    })
}

fn opt(value: &Option<String>) -> Value {
    match value {
        Some(s) => Value::Union(1, Box::new(Value::String(s.clone()))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn symbol(index: usize, name: &str) -> Value {
    Value::Enum(index as u32, name.to_owned())
}

/// The Avro value of an event.
pub fn to_value(ev: &IdentityEvent) -> Value {
    Value::Record(vec![
        ("event_id".into(), Value::String(ev.event_id.clone())),
        (
            "system".into(),
            symbol(ev.system.index(), ev.system.as_str()),
        ),
        ("source".into(), Value::String(ev.source.clone())),
        ("time".into(), Value::TimestampMicros(ev.time.0)),
        ("entity".into(), Value::String(ev.entity.clone())),
        (
            "entity_kind".into(),
            symbol(ev.entity_kind.index(), ev.entity_kind.as_str()),
        ),
        (
            "action".into(),
            symbol(ev.action.index(), ev.action.as_str()),
        ),
        (
            "outcome".into(),
            symbol(ev.outcome.index(), ev.outcome.as_str()),
        ),
        ("parent".into(), opt(&ev.parent)),
        ("actor".into(), opt(&ev.actor)),
        (
            "attributes".into(),
            Value::Map(
                ev.attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<HashMap<_, _>>(),
            ),
        ),
    ])
}

fn field_error(name: &str, value: &Value) -> DecodeError {
    DecodeError::new(format!("avro field {name}: unexpected value {value:?}"))
}

fn string(name: &str, value: Value) -> Result<String, DecodeError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Union(_, inner) => string(name, *inner),
        other => Err(field_error(name, &other)),
    }
}

fn optional(name: &str, value: Value) -> Result<Option<String>, DecodeError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Union(_, inner) => optional(name, *inner),
        other => Err(field_error(name, &other)),
    }
}

fn enumerated<T>(
    name: &str,
    value: Value,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, DecodeError> {
    match value {
        Value::Enum(_, s) | Value::String(s) => parse(&s).map_err(DecodeError::new),
        other => Err(field_error(name, &other)),
    }
}

/// The event of an Avro value written with the canonical schema (or a compatible one).
pub fn from_value(value: Value) -> Result<IdentityEvent, DecodeError> {
    let Value::Record(fields) = value else {
        return Err(DecodeError::new("avro datum is not a record"));
    };
    let mut event_id = None;
    let mut system = None;
    let mut source = String::new();
    let mut time = None;
    let mut entity = None;
    let mut entity_kind = EntityKind::Other;
    let mut action = None;
    let mut outcome = Outcome::Success;
    let mut parent = None;
    let mut actor = None;
    let mut attributes = std::collections::BTreeMap::new();
    for (name, v) in fields {
        match name.as_str() {
            "event_id" => event_id = Some(string(&name, v)?),
            "system" => system = Some(enumerated(&name, v, System::parse)?),
            "source" => source = string(&name, v)?,
            "time" => {
                time = Some(match v {
                    Value::TimestampMicros(t) | Value::Long(t) => Micros(t),
                    Value::TimestampMillis(t) => Micros(t.saturating_mul(1000)),
                    other => return Err(field_error(&name, &other)),
                })
            }
            "entity" => entity = Some(string(&name, v)?),
            "entity_kind" => entity_kind = enumerated(&name, v, EntityKind::parse)?,
            "action" => action = Some(enumerated(&name, v, Action::parse)?),
            "outcome" => outcome = enumerated(&name, v, Outcome::parse)?,
            "parent" => parent = optional(&name, v)?,
            "actor" => actor = optional(&name, v)?,
            "attributes" => match v {
                Value::Map(map) => {
                    for (k, v) in map {
                        attributes.insert(k.clone(), string(&k, v)?);
                    }
                }
                other => return Err(field_error(&name, &other)),
            },
            _ => {}
        }
    }
    let missing = |f: &str| DecodeError::new(format!("avro record lacks required field {f}"));
    let ev = IdentityEvent {
        event_id: event_id.ok_or_else(|| missing("event_id"))?,
        system: system.ok_or_else(|| missing("system"))?,
        source,
        time: time.ok_or_else(|| missing("time"))?,
        entity: entity.ok_or_else(|| missing("entity"))?,
        entity_kind,
        action: action.ok_or_else(|| missing("action"))?,
        outcome,
        parent,
        actor,
        attributes,
    };
    ev.validate().map_err(DecodeError::new)?;
    Ok(ev)
}

/// Encodes a raw Avro datum.
pub fn encode_datum(ev: &IdentityEvent) -> Result<Vec<u8>, DecodeError> {
    apache_avro::to_avro_datum(schema(), to_value(ev))
        .map_err(|e| DecodeError::new(format!("avro encode: {e}")))
}

/// Decodes a raw datum or a Confluent-framed one. The framed schema id is looked up in
/// `registry` and the datum resolved from that writer schema into the canonical one;
/// without a registry the canonical schema is taken as the writer's.
pub fn decode_datum(
    bytes: &[u8],
    registry: Option<&Registry>,
) -> Result<IdentityEvent, DecodeError> {
    let (writer, mut body) = match bytes {
        [0, a, b, c, d, rest @ ..] => (
            registry
                .map(|r| r.writer_schema(u32::from_be_bytes([*a, *b, *c, *d])))
                .transpose()?,
            rest,
        ),
        [0, ..] => {
            return Err(DecodeError::new(
                "Confluent framing shorter than its 5-byte header",
            ))
        }
        _ => (None, bytes),
    };
    let value = match &writer {
        Some(writer) => apache_avro::from_avro_datum(writer, &mut body, Some(schema())),
        None => apache_avro::from_avro_datum(schema(), &mut body, None),
    }
    .map_err(|e| DecodeError::new(format!("invalid avro datum: {e}")))?;
    if !body.is_empty() {
        return Err(DecodeError::new(format!(
            "{} trailing bytes after the avro datum",
            body.len()
        )));
    }
    from_value(value)
}

/// Writes events as an Avro object container file.
pub fn write_container<W: Write>(events: &[IdentityEvent], out: W) -> Result<W, DecodeError> {
    let mut writer = apache_avro::Writer::new(schema(), out);
    for ev in events {
        writer
            .append(to_value(ev))
            .map_err(|e| DecodeError::new(format!("avro write: {e}")))?;
    }
    writer
        .into_inner()
        .map_err(|e| DecodeError::new(format!("avro write: {e}")))
}

/// Reads an Avro object container file: one result per record, dead letters included
/// (see [`super::container`]).
pub fn read_container(
    input: impl std::io::BufRead,
    sink: impl FnMut(Result<IdentityEvent, DecodeError>),
) -> Result<(), DecodeError> {
    super::container::read(input, sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IdentityEvent {
        crate::decode::json::decode(br#"{"event_id":"e1","system":"vault","source":"hashicorp.vault","time":"2026-03-02T10:31:29.552037Z","entity":"tok-1","entity_kind":"token","action":"revoked","outcome":"failure","parent":"sa-1","attributes":{"path":"auth/token/revoke"}}"#).unwrap()
    }

    #[test]
    fn schema_parses() {
        assert!(matches!(schema(), Schema::Record(_)));
        let alert = Schema::parse_str(include_str!("../../schemas/alert.avsc")).unwrap();
        assert!(matches!(alert, Schema::Record(_)));
    }

    #[test]
    fn datum_round_trip_raw_and_confluent() {
        let ev = sample();
        let datum = encode_datum(&ev).unwrap();
        assert_ne!(datum[0], 0);
        assert_eq!(decode_datum(&datum, None).unwrap(), ev);
        let mut framed = vec![0, 0, 0, 0, 42];
        framed.extend_from_slice(&datum);
        assert_eq!(decode_datum(&framed, None).unwrap(), ev);
        assert!(decode_datum(&datum[..datum.len() / 2], None).is_err());
        assert!(decode_datum(&[0, 1], None).is_err());
    }

    #[test]
    fn container_round_trip() {
        let ev = sample();
        let bytes = write_container(&[ev.clone(), ev.clone()], Vec::new()).unwrap();
        let mut back = Vec::new();
        read_container(&bytes[..], |r| back.push(r.unwrap())).unwrap();
        assert_eq!(back, vec![ev.clone(), ev]);
        assert!(read_container(&b"not avro"[..], |_| {}).is_err());
    }
}
