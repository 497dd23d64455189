//! The report's "Inventory and drift" section: how many entities of each kind stand
//! active or revoked in each system, the entities active in one system and revoked in
//! another (drift), and those neither they nor an ancestor have a state in the system of
//! record (unregistered, SPEC §4c) — the lists bounded, with how many more there are.
//! Built in one pass over the state's inventory, so its memory does not grow with the
//! estate.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::html::{cell, esc};
use super::md;
use crate::error::StoreError;
use crate::event::System;
use crate::store::view::{InventoryEntry, InventoryFilter, StateView};

/// How many entities each list shows.
pub const LISTED: usize = 50;

/// One entity of a list.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryLine {
    /// The entity.
    pub entity: String,
    /// Its kind.
    pub entity_kind: String,
    /// Its state per system, e.g. `iam: revoked, vault: active`.
    pub states: String,
    /// The time of its earliest applied event.
    pub first_seen: Option<String>,
    /// The actor of its first presence event.
    pub created_by: Option<String>,
}

/// A bounded list and how many it stands for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listed {
    /// How many entities there are.
    pub count: u64,
    /// The first 50 of them (`LISTED`), in entity order.
    pub entities: Vec<InventoryLine>,
}

impl Listed {
    fn add(&mut self, e: &InventoryEntry) {
        self.count += 1;
        if self.entities.len() < LISTED {
            self.entities.push(InventoryLine {
                entity: e.entity.clone(),
                entity_kind: kind(e),
                states: e
                    .states
                    .iter()
                    .map(|(s, state)| format!("{s}: {state}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                first_seen: e.first_seen.map(|t| t.to_string()),
                created_by: e.created_by.clone(),
            });
        }
    }

    /// "… and N more", when the list is cut.
    fn more(&self, command: &str) -> Option<String> {
        let shown = self.entities.len() as u64;
        (self.count > shown).then(|| {
            format!(
                "… and {} more (`lockstep inventory --state DIR {command}` lists them all)",
                self.count - shown
            )
        })
    }
}

fn kind(e: &InventoryEntry) -> String {
    e.entity_kind.map_or("other".to_owned(), |k| k.to_string())
}

/// The section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InventorySummary {
    /// The system registration is judged against.
    pub system_of_record: String,
    /// Entities in the state.
    pub entities: u64,
    /// Entity kind → `<system>.<state>` → entities.
    pub by_kind: BTreeMap<String, BTreeMap<String, u64>>,
    /// Active in one system, revoked in another.
    pub drift: Listed,
    /// Not registered in the system of record.
    pub unregistered: Listed,
}

/// The `<system>.<state>` columns, in order.
fn columns() -> impl Iterator<Item = String> {
    System::ALL
        .iter()
        .flat_map(|s| ["active", "revoked"].map(|state| format!("{s}.{state}")))
}

impl InventorySummary {
    /// The section of the state `view`, registration judged against `system_of_record`.
    pub fn of(view: &StateView, system_of_record: System) -> Result<InventorySummary, StoreError> {
        let mut out = InventorySummary {
            system_of_record: system_of_record.to_string(),
            ..InventorySummary::default()
        };
        for e in view.inventory(InventoryFilter::all(system_of_record), None)? {
            let e = e?;
            out.entities += 1;
            let counts = out.by_kind.entry(kind(&e)).or_default();
            *counts.entry("entities".into()).or_default() += 1;
            for (s, state) in &e.states {
                *counts.entry(format!("{s}.{state}")).or_default() += 1;
            }
            let has = |state: &str| e.states.values().any(|s| *s == state);
            if has("active") && has("revoked") {
                out.drift.add(&e);
            }
            if !e.registered {
                out.unregistered.add(&e);
            }
        }
        Ok(out)
    }

    fn explained(&self) -> String {
        format!(
            "{} entities. Drift: active in one system and revoked in another. Unregistered: neither the entity nor an ancestor has a state in the system of record ({}); OWASP NHI1, NIST CSF 2.0 PR.AA-01.",
            self.entities, self.system_of_record
        )
    }

    /// `(section, key, metric, value)` rows for the CSV.
    pub fn csv_rows(&self, row: &mut impl FnMut(&str, &str, &str, String)) {
        row(
            "inventory",
            "all",
            "system_of_record",
            self.system_of_record.clone(),
        );
        row("inventory", "all", "entities", self.entities.to_string());
        for (kind, counts) in &self.by_kind {
            for (metric, n) in counts {
                row("inventory_kind", kind, metric, n.to_string());
            }
        }
        for (section, list) in [("drift", &self.drift), ("unregistered", &self.unregistered)] {
            row("inventory", "all", section, list.count.to_string());
            for e in &list.entities {
                row(section, &e.entity, &e.entity_kind, e.states.clone());
            }
        }
    }

    /// The section in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "\n## Inventory and drift\n\n{}\n\n| kind | entities |",
            self.explained()
        );
        for c in columns() {
            let _ = write!(out, " {c} |");
        }
        out += "\n|---|---:|";
        out += &"---:|".repeat(columns().count());
        out += "\n";
        for (kind, counts) in &self.by_kind {
            let _ = write!(out, "| {kind} | {} |", counts.get("entities").unwrap_or(&0));
            for c in columns() {
                let _ = write!(out, " {} |", counts.get(&c).unwrap_or(&0));
            }
            out += "\n";
        }
        for (title, list, flag) in [
            ("Drift", &self.drift, "--drift"),
            ("Unregistered", &self.unregistered, "--unregistered"),
        ] {
            let _ = write!(
                out,
                "\n### {title}: {}\n\n| entity | kind | states | first seen | created by |\n|---|---|---|---|---|\n",
                list.count
            );
            for e in &list.entities {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    md(&e.entity),
                    e.entity_kind,
                    e.states,
                    e.first_seen.as_deref().unwrap_or("-"),
                    md(e.created_by.as_deref().unwrap_or("-"))
                );
            }
            if let Some(more) = list.more(flag) {
                let _ = writeln!(out, "\n{more}");
            }
        }
        out
    }

    /// The section in HTML; count cells carry the CSV's names (`<kind>.<system>.<state>`).
    pub fn html(&self) -> String {
        let mut out = format!(
            "<h2>Inventory and drift</h2><p class=\"small\">{}</p><table><tr><th>kind</th><th>entities</th>",
            esc(&self.explained())
        );
        for c in columns() {
            let _ = write!(out, "<th>{}</th>", esc(&c));
        }
        out += "</tr>";
        for (kind, counts) in &self.by_kind {
            let _ = write!(
                out,
                "<tr><td>{}</td>{}",
                esc(kind),
                cell(
                    format!("{kind}.entities"),
                    counts.get("entities").unwrap_or(&0)
                )
            );
            for c in columns() {
                out += &cell(format!("{kind}.{c}"), counts.get(&c).unwrap_or(&0));
            }
            out += "</tr>";
        }
        out += "</table>";
        for (title, list, flag) in [
            ("Drift", &self.drift, "--drift"),
            ("Unregistered", &self.unregistered, "--unregistered"),
        ] {
            let _ = write!(
                out,
                "<h3>{title}: {}</h3><table><tr><th>entity</th><th>kind</th><th>states</th><th>first seen</th><th>created by</th></tr>",
                list.count
            );
            for e in &list.entities {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&e.entity),
                    esc(&e.entity_kind),
                    esc(&e.states),
                    esc(e.first_seen.as_deref().unwrap_or("-")),
                    esc(e.created_by.as_deref().unwrap_or("-"))
                );
            }
            out += "</table>";
            if let Some(more) = list.more(flag) {
                let _ = write!(out, "<p class=\"small\">{}</p>", esc(&more));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> InventoryEntry {
        InventoryEntry {
            entity: format!("key-{n:03}"),
            entity_kind: Some(crate::event::EntityKind::ApiKey),
            root: format!("key-{n:03}"),
            parent: None,
            states: [(System::Iam, "revoked"), (System::Vault, "active")].into(),
            first_seen: None,
            issued_at: None,
            last_active_at: None,
            created_by: None,
            open_case: None,
            registered: true,
        }
    }

    #[test]
    fn a_list_shows_its_first_entities_and_says_how_many_more_there_are() {
        let mut list = Listed::default();
        for n in 0..LISTED + 3 {
            list.add(&entry(n));
        }
        assert_eq!(list.count, LISTED as u64 + 3);
        assert_eq!(list.entities.len(), LISTED);
        assert_eq!(list.entities[0].states, "iam: revoked, vault: active");
        assert!(list.more("--drift").unwrap().starts_with("… and 3 more"));
        let summary = InventorySummary {
            drift: list,
            ..InventorySummary::default()
        };
        assert!(summary.markdown().contains("… and 3 more"));
        assert!(summary.html().contains("… and 3 more"));
    }

    #[test]
    fn a_list_within_its_bound_says_nothing_more() {
        let mut list = Listed::default();
        list.add(&entry(1));
        assert_eq!(list.more("--drift"), None);
    }
}
