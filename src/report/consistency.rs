//! The consistency section of the evidence report (SPEC §4c): every rotation a holder
//! did not follow (`rotation_missed`: OWASP NHI7 "missed rotation steps", NIST CSF 2.0
//! PR.AA-01, CIS AWS 1.14) and every identity its system of record never registered
//! (`unregistered_identity`: OWASP NHI1, NIST CSF 2.0 PR.AA-01, CIS Controls v8 5.1),
//! in time order, in each of the report's formats.

use serde::Serialize;

use super::md;
use crate::alert::{Alert, AlertKind};

/// What the section says each finding means.
pub const ROTATION_MISSED: &str = "A credential was rotated in one system while another holder — the same credential in another system, or a vault secret that stores it — kept the old value past its rotation deadline (`rotation_missed`: OWASP NHI7 Long-Lived Secrets, missed rotation steps; NIST CSF 2.0 PR.AA-01; CIS AWS 1.14).";
/// What the section says each finding means.
pub const UNREGISTERED: &str = "An identity seen in MDM, the vault or the SIEM that the system of record never created, nor any identity above it, within `register_within`: nobody can show who approved it (`unregistered_identity`: OWASP NHI1 Improper Offboarding; NIST CSF 2.0 PR.AA-01; CIS Controls v8 5.1 inventory of accounts).";

/// One holder that did not follow a rotation.
#[derive(Debug, Clone, Serialize)]
pub struct MissedRotation {
    /// The credential rotated.
    pub rotated_entity: String,
    /// When.
    pub rotated_at: String,
    /// Where.
    pub origin_system: String,
    /// The holder that kept the old value.
    pub holder: String,
    /// Where it kept it.
    pub system: String,
    /// Its rotation deadline.
    pub deadline: String,
}

/// One identity its system of record never registered.
#[derive(Debug, Clone, Serialize)]
pub struct Unregistered {
    /// The identity.
    pub entity: String,
    /// The top of its lineage tree.
    pub root: String,
    /// Where it was active at the deadline.
    pub systems: Vec<String>,
    /// When it was first seen outside the system of record.
    pub first_seen: String,
}

/// The section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Consistency {
    /// Rotations not followed, in time order.
    pub missed_rotations: Vec<MissedRotation>,
    /// Unregistered identities, in time order.
    pub unregistered: Vec<Unregistered>,
}

impl Consistency {
    /// The section of `alerts` (in the replay's order).
    pub fn of(alerts: &[Alert]) -> Consistency {
        let text = |t: Option<crate::time::Micros>| t.map(|t| t.to_string()).unwrap_or_default();
        let mut c = Consistency::default();
        for a in alerts {
            match a.kind {
                AlertKind::RotationMissed => c.missed_rotations.push(MissedRotation {
                    rotated_entity: a.rotated_entity.clone().unwrap_or_default(),
                    rotated_at: text(a.rotated_at),
                    origin_system: a.origin_system.map(|s| s.to_string()).unwrap_or_default(),
                    holder: a.subject(),
                    system: a.systems_text(),
                    deadline: a.at.to_string(),
                }),
                AlertKind::UnregisteredIdentity => c.unregistered.push(Unregistered {
                    entity: a.subject(),
                    root: a.root.clone(),
                    systems: a.systems.iter().flatten().map(|s| s.to_string()).collect(),
                    first_seen: text(a.first_seen),
                }),
                _ => {}
            }
        }
        c
    }

    /// CSV rows: (section, key, metric, value).
    pub fn csv_rows(&self, mut row: impl FnMut(&str, &str, &str, String)) {
        for m in &self.missed_rotations {
            row(
                "rotation_missed",
                &m.holder,
                &m.system,
                m.rotated_entity.clone(),
            );
        }
        for u in &self.unregistered {
            row(
                "unregistered_identity",
                &u.entity,
                "first_seen",
                u.first_seen.clone(),
            );
        }
    }

    /// The Markdown section.
    pub fn markdown(&self) -> String {
        let mut out = format!("\n## Consistency\n\n{ROTATION_MISSED}\n\n| holder | system | rotated credential | rotated at | in | deadline |\n|---|---|---|---|---|---|\n");
        for m in &self.missed_rotations {
            out += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                md(&m.holder),
                m.system,
                md(&m.rotated_entity),
                m.rotated_at,
                m.origin_system,
                m.deadline
            );
        }
        out += &format!(
            "\n{UNREGISTERED}\n\n| identity | root | active in | first seen |\n|---|---|---|---|\n"
        );
        for u in &self.unregistered {
            out += &format!(
                "| {} | {} | {} | {} |\n",
                md(&u.entity),
                md(&u.root),
                u.systems.join(", "),
                u.first_seen
            );
        }
        out
    }

    /// The HTML section; `esc` escapes text.
    pub fn html(&self, esc: impl Fn(&str) -> String) -> String {
        let mut body = format!("<h2>Consistency</h2><p class=\"small\">{}</p><table><tr><th>holder</th><th>system</th><th>rotated credential</th><th>rotated at</th><th>in</th><th>deadline</th></tr>", esc(ROTATION_MISSED));
        for m in &self.missed_rotations {
            body += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.holder),
                esc(&m.system),
                esc(&m.rotated_entity),
                esc(&m.rotated_at),
                esc(&m.origin_system),
                esc(&m.deadline)
            );
        }
        body += &format!("</table><p class=\"small\">{}</p><table><tr><th>identity</th><th>root</th><th>active in</th><th>first seen</th></tr>", esc(UNREGISTERED));
        for u in &self.unregistered {
            body += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&u.entity),
                esc(&u.root),
                esc(&u.systems.join(", ")),
                esc(&u.first_seen)
            );
        }
        body + "</table>"
    }
}
