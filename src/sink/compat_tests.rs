//! The alert schema of SPEC §4c (`rotation_missed`, `unregistered_identity` and their
//! fields) against the one before it (`tests/fixtures/schemas/alert-v2.avsc`), both
//! ways: a consumer on either schema reads what a producer on the other wrote.

use apache_avro::types::Value as Avro;
use apache_avro::Schema;

use super::{alert_schema, alert_value};
use crate::alert::{Alert, AlertKind, Severity};
use crate::event::System;
use crate::time::Micros;

fn previous() -> Schema {
    Schema::parse_str(include_str!("../../tests/fixtures/schemas/alert-v2.avsc")).unwrap()
}

fn rotation_missed() -> Alert {
    Alert {
        alert_id: "a2".into(),
        kind: AlertKind::RotationMissed,
        severity: Severity::Medium,
        case_id: None,
        root: "sa".into(),
        entity: Some("secret".into()),
        entities: None,
        system: Some(System::Vault),
        systems: None,
        origin_system: Some(System::Iam),
        revoked_at: None,
        issued_at: None,
        last_active_at: None,
        rotated_entity: Some("key".into()),
        rotated_at: Some(Micros(10)),
        first_seen: None,
        deadline: Some(Micros(20)),
        at: Micros(20),
        latency_ms: None,
        event_id: None,
        detail: "d".into(),
    }
}

fn field(fields: &[(String, Avro)], name: &str) -> Option<Avro> {
    fields.iter().find(|(n, _)| n == name).map(|f| f.1.clone())
}

fn decode(writer: &Schema, bytes: &[u8], reader: &Schema) -> Vec<(String, Avro)> {
    match apache_avro::from_avro_datum(writer, &mut &bytes[..], Some(reader)) {
        Ok(Avro::Record(fields)) => fields,
        other => panic!("{other:?}"),
    }
}

#[test]
fn alerts_written_with_the_previous_schema_read_with_this_one() {
    let old = previous();
    // The previous schema's record: this one's without the three new fields.
    let Avro::Record(mut fields) = alert_value(&Alert {
        kind: AlertKind::CredentialUnused,
        rotated_entity: None,
        rotated_at: None,
        ..rotation_missed()
    }) else {
        panic!("record")
    };
    fields.truncate(fields.len() - 3);
    let bytes = apache_avro::to_avro_datum(&old, Avro::Record(fields)).unwrap();
    let fields = decode(&old, &bytes, alert_schema());
    let null = Some(Avro::Union(0, Box::new(Avro::Null)));
    assert_eq!(
        field(&fields, "kind"),
        Some(Avro::Enum(7, "credential_unused".into()))
    );
    assert_eq!(field(&fields, "rotated_entity"), null);
    assert_eq!(field(&fields, "rotated_at"), null);
    assert_eq!(field(&fields, "first_seen"), null);
    assert_eq!(
        field(&fields, "entity"),
        Some(Avro::Union(1, Box::new(Avro::String("secret".into()))))
    );
}

#[test]
fn alerts_written_with_this_schema_read_with_the_previous_one() {
    let old = previous();
    let bytes = super::encode_alert(&rotation_missed(), crate::config::AlertsFormat::Avro);
    let fields = decode(alert_schema(), &bytes, &old);
    // The previous reader knows neither the kind nor its fields: the kind reads as
    // its enum's default, the fields are skipped, the rest reads as written.
    assert_eq!(
        field(&fields, "kind"),
        Some(Avro::Enum(8, "unknown".into()))
    );
    assert_eq!(field(&fields, "rotated_entity"), None);
    assert_eq!(
        field(&fields, "system"),
        Some(Avro::Union(1, Box::new(Avro::Enum(1, "vault".into()))))
    );
    assert_eq!(field(&fields, "at"), Some(Avro::TimestampMicros(20)));
    // An unregistered identity: its systems, which the previous schema has, survive.
    let unregistered = Alert {
        kind: AlertKind::UnregisteredIdentity,
        system: None,
        systems: Some(vec![System::Mdm]),
        origin_system: None,
        rotated_entity: None,
        rotated_at: None,
        first_seen: Some(Micros(5)),
        deadline: None,
        ..rotation_missed()
    };
    let bytes = super::encode_alert(&unregistered, crate::config::AlertsFormat::Avro);
    let fields = decode(alert_schema(), &bytes, &old);
    assert_eq!(
        field(&fields, "systems"),
        Some(Avro::Union(
            1,
            Box::new(Avro::Array(vec![Avro::Enum(2, "mdm".into())]))
        ))
    );
    // And this schema reads its own new fields back.
    let fields = decode(alert_schema(), &bytes, alert_schema());
    assert_eq!(
        field(&fields, "kind"),
        Some(Avro::Enum(9, "unregistered_identity".into()))
    );
    assert_eq!(
        field(&fields, "first_seen"),
        Some(Avro::Union(1, Box::new(Avro::TimestampMicros(5))))
    );
}
