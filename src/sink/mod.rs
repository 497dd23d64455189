//! Output encodings: alerts as canonical JSON, Avro (`schemas/alert.avsc`) or an OCSF
//! Detection Finding (class 2004); cases as changelog JSON. [`kafka`] produces them from
//! the store's outbox.

pub mod kafka;

use std::sync::OnceLock;

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use serde_json::{json, Value};

use crate::alert::{Alert, Severity};
use crate::config::AlertsFormat;
use crate::model::case::{Case, Echo};
use crate::time::Micros;

/// The alert schema text.
pub const ALERT_SCHEMA: &str = include_str!("../../schemas/alert.avsc");

fn alert_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    // A compile-time constant, checked by the tests below.
    SCHEMA.get_or_init(|| Schema::parse_str(ALERT_SCHEMA).unwrap_or(Schema::Null))
}

/// How alerts are encoded for the alerts topic: the format and, for Avro, the id under
/// which the alert schema is registered, which frames every record (Confluent wire
/// format: magic byte 0, the id in four big-endian bytes, the datum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertEncoding {
    /// The format.
    pub format: AlertsFormat,
    /// (Avro) The registry id of `schemas/alert.avsc`.
    pub schema_id: Option<u32>,
}

impl AlertEncoding {
    /// The record value of `alert`.
    pub fn encode(&self, alert: &Alert) -> Vec<u8> {
        match (self.format, self.schema_id) {
            (AlertsFormat::Avro, Some(id)) => {
                let datum = encode_alert(alert, AlertsFormat::Avro);
                let mut framed = Vec::with_capacity(datum.len() + 5);
                framed.push(0);
                framed.extend_from_slice(&id.to_be_bytes());
                framed.extend(datum);
                framed
            }
            (format, _) => encode_alert(alert, format),
        }
    }
}

/// Encodes an alert (Avro: the bare datum; see [`AlertEncoding`] for the topic's framing).
pub fn encode_alert(alert: &Alert, format: AlertsFormat) -> Vec<u8> {
    match format {
        AlertsFormat::Json => serde_json::to_vec(alert).unwrap_or_default(),
        AlertsFormat::Ocsf => serde_json::to_vec(&ocsf_finding(alert)).unwrap_or_default(),
        AlertsFormat::Avro => {
            apache_avro::to_avro_datum(alert_schema(), alert_value(alert)).unwrap_or_default()
        }
    }
}

/// Alerts as an Avro object container file of `schemas/alert.avsc` (what `replay
/// --alerts-format avro` writes): the schema travels with the records.
pub struct AlertContainer<W: std::io::Write>(apache_avro::Writer<'static, W>);

impl<W: std::io::Write> AlertContainer<W> {
    /// A container written to `out`.
    pub fn new(out: W) -> Self {
        AlertContainer(apache_avro::Writer::new(alert_schema(), out))
    }

    /// Appends `alert`.
    pub fn append(&mut self, alert: &Alert) -> Result<(), apache_avro::Error> {
        self.0.append(alert_value(alert)).map(drop)
    }

    /// Writes what is buffered and returns the output.
    pub fn finish(self) -> Result<W, apache_avro::Error> {
        self.0.into_inner()
    }
}

fn union<T>(value: Option<T>, f: impl FnOnce(T) -> Avro) -> Avro {
    match value {
        Some(v) => Avro::Union(1, Box::new(f(v))),
        None => Avro::Union(0, Box::new(Avro::Null)),
    }
}

fn alert_value(a: &Alert) -> Avro {
    let kind = crate::alert::AlertKind::ALL
        .iter()
        .position(|k| *k == a.kind)
        .unwrap_or(0);
    let severity = match a.severity {
        Severity::Critical => 0,
        Severity::High => 1,
        Severity::Medium => 2,
        Severity::Low => 3,
    };
    let system = |s: crate::event::System| Avro::Enum(s.index() as u32, s.as_str().into());
    let time = |t: Micros| Avro::TimestampMicros(t.0);
    Avro::Record(vec![
        ("alert_id".into(), Avro::String(a.alert_id.clone())),
        (
            "kind".into(),
            Avro::Enum(kind as u32, a.kind.as_str().into()),
        ),
        (
            "severity".into(),
            Avro::Enum(severity, format!("{:?}", a.severity).to_lowercase()),
        ),
        ("case_id".into(), union(a.case_id.clone(), Avro::String)),
        ("root".into(), Avro::String(a.root.clone())),
        ("entity".into(), union(a.entity.clone(), Avro::String)),
        (
            "entities".into(),
            union(a.entities.clone(), |v| {
                Avro::Array(v.into_iter().map(Avro::String).collect())
            }),
        ),
        ("system".into(), union(a.system, system)),
        ("origin_system".into(), union(a.origin_system, system)),
        ("revoked_at".into(), union(a.revoked_at, time)),
        ("deadline".into(), union(a.deadline, time)),
        ("at".into(), time(a.at)),
        ("latency_ms".into(), union(a.latency_ms, Avro::Long)),
        ("event_id".into(), union(a.event_id.clone(), Avro::String)),
        ("detail".into(), Avro::String(a.detail.clone())),
        (
            "systems".into(),
            union(a.systems.clone(), |v| {
                Avro::Array(v.into_iter().map(system).collect())
            }),
        ),
        ("issued_at".into(), union(a.issued_at, time)),
        ("last_active_at".into(), union(a.last_active_at, time)),
        (
            "rotated_entity".into(),
            union(a.rotated_entity.clone(), Avro::String),
        ),
        ("rotated_at".into(), union(a.rotated_at, time)),
        ("first_seen".into(), union(a.first_seen, time)),
    ])
}

/// An OCSF 1.x Detection Finding (class_uid 2004) carrying the alert, its case, the
/// missing entities and the evidence event.
pub fn ocsf_finding(a: &Alert) -> Value {
    let (severity_id, severity) = match a.severity {
        Severity::Critical => (5, "Critical"),
        Severity::High => (4, "High"),
        Severity::Medium => (3, "Medium"),
        Severity::Low => (2, "Low"),
    };
    let millis = a.at.0.div_euclid(1000);
    json!({
        "activity_id": 1,
        "activity_name": "Create",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "time": millis,
        "message": a.detail,
        "metadata": {
            "version": "1.9.0",
            "product": { "name": "lockstep", "vendor_name": "lockstep", "version": env!("CARGO_PKG_VERSION") },
            "uid": a.alert_id,
        },
        "finding_info": {
            "uid": a.alert_id,
            "title": a.kind.as_str(),
            "desc": a.detail,
            "types": [a.kind.as_str()],
            "analytic": { "name": a.kind.as_str(), "uid": a.kind.as_str(), "type_id": 1, "type": "Rule" },
            "related_events": a.event_id.iter().map(|e| json!({ "uid": e })).collect::<Vec<_>>(),
            "related_events_count": a.event_id.iter().count(),
        },
        "is_alert": true,
        "evidences": [{
            "data": {
                "case_id": a.case_id,
                "root": a.root,
                "system": a.system,
                "systems": a.systems,
                "origin_system": a.origin_system,
                "issued_at": a.issued_at,
                "last_active_at": a.last_active_at,
                "rotated_entity": a.rotated_entity,
                "rotated_at": a.rotated_at,
                "first_seen": a.first_seen,
                "revoked_at": a.revoked_at,
                "deadline": a.deadline,
                "missing_entities": a.entities,
                "entity": a.entity,
                "event_id": a.event_id,
                "latency_ms": a.latency_ms,
            },
        }],
        "resources": std::iter::once(&a.root)
            .chain(a.entity.iter())
            .chain(a.rotated_entity.iter())
            .chain(a.entities.iter().flatten())
            .map(|e| json!({ "name": e, "type": "Non-human identity" }))
            .collect::<Vec<_>>(),

    })
}

/// A case and each system's echo outcome, as changelog evidence.
pub fn case_json(case: &Case) -> Value {
    let obligations: Vec<Value> = case
        .obligations
        .iter()
        .map(|o| {
            let (status, entities, echoed_at, event_id) = match &o.echo {
                Echo::Pending => ("pending", None, None, None),
                Echo::Met { at } => ("met", None, at.as_ref(), None),
                Echo::Missing { entities } => ("missing", Some(entities), None, None),
                Echo::Late {
                    entities,
                    at,
                    event_id,
                } => ("late", Some(entities), Some(at), Some(event_id)),
            };
            json!({
                "system": o.system,
                "deadline": o.deadline,
                "status": status,
                "entities": entities,
                "echoed_at": echoed_at,
                "event_id": event_id,
            })
        })
        .collect();
    json!({
        "case_id": case.id,
        "root": case.root,
        "root_kind": case.root_kind,
        "revoked_at": case.revoked_at,
        "origin_system": case.origin,
        "opened_by": case.opened_by,
        "superseded_at": case.superseded_at,
        "obligations": obligations,
    })
}

#[cfg(test)]
mod compat_tests;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;
    use crate::event::System;

    fn alert() -> Alert {
        Alert {
            alert_id: "a1".into(),
            kind: AlertKind::EchoMissing,
            severity: Severity::High,
            case_id: Some("c-1".into()),
            root: "sa".into(),
            entity: None,
            entities: Some(vec!["k1".into(), "k2".into()]),
            system: Some(System::Vault),
            systems: None,
            origin_system: Some(System::Iam),
            revoked_at: Some(Micros(1)),
            issued_at: None,
            last_active_at: None,
            rotated_entity: None,
            rotated_at: None,
            first_seen: None,
            deadline: Some(Micros(2)),
            at: Micros(2_000),
            latency_ms: None,
            event_id: None,
            detail: "d".into(),
        }
    }

    #[test]
    fn avro_alert_round_trips_through_the_schema() {
        assert!(matches!(alert_schema(), Schema::Record(_)));
        let bytes = encode_alert(&alert(), AlertsFormat::Avro);
        assert!(!bytes.is_empty());
        let value = apache_avro::from_avro_datum(alert_schema(), &mut &bytes[..], None).unwrap();
        let Avro::Record(fields) = value else {
            panic!("record")
        };
        assert_eq!(fields[0], ("alert_id".into(), Avro::String("a1".into())));
        assert_eq!(
            fields[7].1,
            Avro::Union(1, Box::new(Avro::Enum(1, "vault".into())))
        );
    }

    /// A record written with `writer`, read with schema resolution into this schema.
    fn read_as_current(writer: &Schema, fields: Vec<(String, Avro)>) -> Vec<(String, Avro)> {
        let bytes = apache_avro::to_avro_datum(writer, Avro::Record(fields)).unwrap();
        match apache_avro::from_avro_datum(writer, &mut &bytes[..], Some(alert_schema())) {
            Ok(Avro::Record(fields)) => fields,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn alerts_written_with_the_first_schema_read_with_this_one() {
        // Backward compatibility (SPEC §4b added kinds and fields): a consumer that has
        // moved to this schema still reads alerts its producers wrote with the first one.
        let old =
            Schema::parse_str(include_str!("../../tests/fixtures/schemas/alert-v1.avsc")).unwrap();
        let Avro::Record(mut fields) = alert_value(&alert()) else {
            panic!("record")
        };
        fields.truncate(15);
        fields[7].1 = Avro::Enum(1, "vault".into());
        let fields = read_as_current(&old, fields);
        let get = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(
            get("system"),
            Avro::Union(1, Box::new(Avro::Enum(1, "vault".into())))
        );
        assert_eq!(get("systems"), Avro::Union(0, Box::new(Avro::Null)));
        assert_eq!(get("issued_at"), Avro::Union(0, Box::new(Avro::Null)));
    }

    #[test]
    fn a_kind_this_reader_does_not_know_reads_as_unknown() {
        // A future writer adds a kind; a reader with this schema still reads the alert.
        let mut future: serde_json::Value = serde_json::from_str(ALERT_SCHEMA).unwrap();
        future["fields"][1]["type"]["symbols"]
            .as_array_mut()
            .unwrap()
            .insert(0, "key_leaked".into());
        let future = Schema::parse_str(&future.to_string()).unwrap();
        let Avro::Record(mut fields) = alert_value(&alert()) else {
            panic!("record")
        };
        fields[1].1 = Avro::Enum(0, "key_leaked".into());
        let fields = read_as_current(&future, fields);
        let unknown = AlertKind::ALL.len() as u32;
        assert_eq!(fields[1].1, Avro::Enum(unknown, "unknown".into()));
    }

    #[test]
    fn a_hygiene_alert_encodes_without_a_system() {
        let alert = Alert {
            kind: AlertKind::CredentialUnused,
            severity: Severity::Low,
            case_id: None,
            entities: None,
            entity: Some("k".into()),
            system: None,
            systems: Some(vec![System::Iam, System::Vault]),
            last_active_at: Some(Micros(5)),
            rotated_entity: None,
            rotated_at: None,
            first_seen: None,
            ..alert()
        };
        let bytes = encode_alert(&alert, AlertsFormat::Avro);
        let value = apache_avro::from_avro_datum(alert_schema(), &mut &bytes[..], None).unwrap();
        let Avro::Record(fields) = value else {
            panic!("record")
        };
        let get = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(get("kind"), Avro::Enum(7, "credential_unused".into()));
        assert_eq!(get("severity"), Avro::Enum(3, "low".into()));
        assert_eq!(get("system"), Avro::Union(0, Box::new(Avro::Null)));
        assert_eq!(
            get("systems"),
            Avro::Union(
                1,
                Box::new(Avro::Array(vec![
                    Avro::Enum(0, "iam".into()),
                    Avro::Enum(1, "vault".into())
                ]))
            )
        );
        let ocsf = ocsf_finding(&alert);
        assert_eq!(ocsf["severity"], "Low");
        assert_eq!(ocsf["evidences"][0]["data"]["systems"][1], "vault");
        assert_eq!(
            ocsf["evidences"][0]["data"]["last_active_at"],
            "1970-01-01T00:00:00.000005Z"
        );
    }

    /// The alert schema registered in a registry (a loopback stand-in answering as
    /// Confluent's does) frames each Avro alert; a Confluent reader's steps — check the
    /// magic byte, look the id up, decode with that schema — give the alert back.
    #[test]
    fn avro_alerts_are_confluent_framed_with_the_registered_schema() {
        let (url, server) = crate::decode::registry::tests::registry(vec![
            (200, r#"{"id":17}"#.into()),
            (
                200,
                serde_json::json!({ "schema": ALERT_SCHEMA }).to_string(),
            ),
        ]);
        let registry =
            crate::decode::registry::Registry::new(&url, std::time::Duration::from_secs(5), None);
        let id = registry
            .register("lockstep.alerts-value", ALERT_SCHEMA)
            .unwrap();
        let encoding = AlertEncoding {
            format: AlertsFormat::Avro,
            schema_id: Some(id),
        };
        let bytes = encoding.encode(&alert());
        assert_eq!(bytes[0], 0, "magic byte");
        let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
        assert_eq!(id, 17);
        let schema = registry.writer_schema(id).unwrap();
        let value = apache_avro::from_avro_datum(&schema, &mut &bytes[5..], None).unwrap();
        let Avro::Record(fields) = value else {
            panic!("record")
        };
        assert_eq!(fields[0], ("alert_id".into(), Avro::String("a1".into())));
        let requests = server.join().unwrap();
        assert!(requests[0].starts_with("POST /subjects/lockstep.alerts-value/versions"));
        assert!(requests[1].starts_with("GET /schemas/ids/17"));
    }

    #[test]
    fn ocsf_finding_has_the_required_attributes() {
        let f = ocsf_finding(&alert());
        for key in [
            "activity_id",
            "category_uid",
            "class_uid",
            "metadata",
            "severity_id",
            "time",
            "type_uid",
            "finding_info",
        ] {
            assert!(!f[key].is_null(), "{key}");
        }
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["type_uid"], 200401);
        assert_eq!(f["finding_info"]["uid"], "a1");
        assert_eq!(f["evidences"][0]["data"]["missing_entities"][1], "k2");
    }
}
