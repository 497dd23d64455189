//! Alerts (SPEC §3, §4): the kinds, their severities, the canonical JSON record, the
//! deterministic `alert_id`, and the output order of a replay.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::System;
use crate::time::Micros;

/// What an alert reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A system had not echoed a revocation by its deadline.
    EchoMissing,
    /// A missing echo finally arrived.
    EchoLate,
    /// A revoked credential was used after the grace period.
    RevokedEntityUsed,
    /// A revoked identity was re-enabled or re-issued.
    Reactivated,
    /// A revocation attempt failed.
    RevocationFailed,
    /// An input has been silent longer than its `silence_alert` (live pipeline, SPEC §5).
    SourceSilent,
    /// A credential outlived its `max_age` without rotation (SPEC §4b).
    RotationOverdue,
    /// A credential went `unused_after` without activity (SPEC §4b).
    CredentialUnused,
    /// A holder of a rotated credential was not rotated by its deadline (SPEC §4c).
    RotationMissed,
    /// An identity the system of record never registered (SPEC §4c).
    UnregisteredIdentity,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 10] = [
        AlertKind::EchoMissing,
        AlertKind::EchoLate,
        AlertKind::RevokedEntityUsed,
        AlertKind::Reactivated,
        AlertKind::RevocationFailed,
        AlertKind::SourceSilent,
        AlertKind::RotationOverdue,
        AlertKind::CredentialUnused,
        AlertKind::RotationMissed,
        AlertKind::UnregisteredIdentity,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::EchoMissing => "echo_missing",
            AlertKind::EchoLate => "echo_late",
            AlertKind::RevokedEntityUsed => "revoked_entity_used",
            AlertKind::Reactivated => "reactivated",
            AlertKind::RevocationFailed => "revocation_failed",
            AlertKind::SourceSilent => "source_silent",
            AlertKind::RotationOverdue => "rotation_overdue",
            AlertKind::CredentialUnused => "credential_unused",
            AlertKind::RotationMissed => "rotation_missed",
            AlertKind::UnregisteredIdentity => "unregistered_identity",
        }
    }

    /// The severity SPEC §4 assigns.
    pub const fn severity(self) -> Severity {
        match self {
            AlertKind::RevokedEntityUsed => Severity::Critical,
            AlertKind::EchoLate
            | AlertKind::RotationOverdue
            | AlertKind::RotationMissed
            | AlertKind::UnregisteredIdentity => Severity::Medium,
            AlertKind::CredentialUnused => Severity::Low,
            AlertKind::EchoMissing
            | AlertKind::Reactivated
            | AlertKind::RevocationFailed
            | AlertKind::SourceSilent => Severity::High,
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Act now: a revoked credential is live.
    Critical,
    /// Act today.
    High,
    /// Review.
    Medium,
    /// Tidy up.
    Low,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        })
    }
}

/// A canonical alert. Fields that do not apply to a kind are `None` and omitted from JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic id: a function of (kind, case_id, system, entity).
    pub alert_id: String,
    /// What happened.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// The case concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// The root of the case (or the entity itself when nothing covers it).
    pub root: String,
    /// The entity of the triggering event (entity kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// The entities still active (echo kinds), sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<Vec<String>>,
    /// The system concerned (none for the hygiene kinds, which name `systems`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    /// (hygiene kinds) The systems where the credential is active, sorted by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systems: Option<Vec<System>>,
    /// The system where the revocation was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_system: Option<System>,
    /// When the case's root was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Micros>,
    /// (`rotation_overdue`) When the credential was created, issued or last rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Micros>,
    /// (`credential_unused`) The credential's last activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_at: Option<Micros>,
    /// (`rotation_missed`) The credential whose rotation the holder did not follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_entity: Option<String>,
    /// (`rotation_missed`) When that credential was rotated (in `origin_system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<Micros>,
    /// (`unregistered_identity`) When it was first seen outside the system of record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Micros>,
    /// The echo deadline (echo kinds) or the rotation deadline (`rotation_missed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Micros>,
    /// The event time or deadline that triggered the alert.
    pub at: Micros,
    /// `at − revoked_at` in whole milliseconds (`echo_late`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// The triggering event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// A sentence for a human.
    pub detail: String,
}

impl Alert {
    /// The entity part of the identity: `entity`, or the sorted `entities` joined by `,`.
    pub fn subject(&self) -> String {
        match (&self.entity, &self.entities) {
            (Some(e), _) => e.clone(),
            (None, Some(list)) => list.join(","),
            (None, None) => String::new(),
        }
    }

    /// The system part: `system`, or the `systems` joined by `,`.
    pub fn systems_text(&self) -> String {
        match (self.system, &self.systems) {
            (Some(s), _) => s.as_str().to_owned(),
            (None, Some(list)) => list
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            (None, None) => String::new(),
        }
    }

    /// One readable line: time, severity, kind, system, detail.
    pub fn display_line(&self) -> String {
        format!(
            "{}  {:<8}  {:<21}  {:<5}  {}",
            self.at,
            format!("{:?}", self.severity).to_uppercase(),
            self.kind,
            self.systems_text(),
            self.detail
        )
    }

    /// The replay output order: (at, kind, root, system or systems, entity).
    pub fn sort_key(&self) -> (Micros, &'static str, &str, String, String) {
        (
            self.at,
            self.kind.as_str(),
            &self.root,
            self.systems_text(),
            self.subject(),
        )
    }
}

/// Sorts alerts in the replay output order.
pub fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by_cached_key(|a| {
        let (at, kind, root, systems, subject) = a.sort_key();
        (at, kind, root.to_owned(), systems, subject)
    });
}

/// The deterministic alert id: the first 128 bits of SHA-256 over (kind, case_id,
/// system, entity, and — for `revocation_failed`, raised once per event — the event id),
/// hex-encoded. The same alert from a replay or after a crash has the same id.
pub fn alert_id(
    kind: AlertKind,
    case_id: Option<&str>,
    system: System,
    entity: &str,
    event_id: Option<&str>,
) -> String {
    digest(&[
        kind.as_str(),
        case_id.unwrap_or(""),
        system.as_str(),
        entity,
        event_id.unwrap_or(""),
    ])
}

/// The deterministic id of a hygiene alert (SPEC §4b): (kind, entity, deadline). Each
/// arming of a clock raises at most once, and a clock's deadline names its arming.
pub fn hygiene_alert_id(kind: AlertKind, entity: &str, at: Micros) -> String {
    digest(&[kind.as_str(), entity, &at.0.to_string()])
}

/// The deterministic id of a `rotation_missed` (SPEC §4c): (kind, rotated entity,
/// rotated_at, holder, system) — one obligation of one round.
pub fn rotation_alert_id(
    rotated: &str,
    rotated_at: Micros,
    holder: &str,
    system: System,
) -> String {
    digest(&[
        AlertKind::RotationMissed.as_str(),
        rotated,
        &rotated_at.0.to_string(),
        holder,
        system.as_str(),
    ])
}

/// The deterministic id of an `unregistered_identity` (SPEC §4c): (kind, entity), raised
/// once per entity.
pub fn registration_alert_id(entity: &str) -> String {
    digest(&[AlertKind::UnregisteredIdentity.as_str(), entity])
}

/// The first 128 bits of SHA-256 over length-prefixed parts, hex-encoded.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize()[..16])
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Decodes [`hex`]; `None` for text it did not write.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_id_is_deterministic_and_separates_fields() {
        let a = alert_id(
            AlertKind::EchoMissing,
            Some("c1"),
            System::Vault,
            "sa",
            None,
        );
        assert_eq!(
            a,
            alert_id(
                AlertKind::EchoMissing,
                Some("c1"),
                System::Vault,
                "sa",
                None
            )
        );
        assert_eq!(a.len(), 32);
        assert_ne!(
            a,
            alert_id(AlertKind::EchoMissing, Some("c1"), System::Mdm, "sa", None)
        );
        assert_ne!(
            alert_id(AlertKind::Reactivated, Some("c1x"), System::Iam, "y", None),
            alert_id(AlertKind::Reactivated, Some("c1"), System::Iam, "xy", None)
        );
    }

    #[test]
    fn json_omits_fields_that_do_not_apply() {
        let alert = Alert {
            alert_id: "x".into(),
            kind: AlertKind::RevocationFailed,
            severity: Severity::High,
            case_id: None,
            root: "sa".into(),
            entity: Some("sa".into()),
            entities: None,
            system: Some(System::Iam),
            systems: None,
            origin_system: None,
            revoked_at: None,
            issued_at: None,
            last_active_at: None,
            rotated_entity: None,
            rotated_at: None,
            first_seen: None,
            deadline: None,
            at: Micros(1_000_000),
            latency_ms: None,
            event_id: Some("e1".into()),
            detail: "d".into(),
        };
        let json = serde_json::to_string(&alert).unwrap();
        assert_eq!(
            json,
            r#"{"alert_id":"x","kind":"revocation_failed","severity":"high","root":"sa","entity":"sa","system":"iam","at":"1970-01-01T00:00:01.000000Z","event_id":"e1","detail":"d"}"#
        );
        let back: Alert = serde_json::from_str(&json).unwrap();
        assert_eq!(back, alert);
    }
}
