//! Evidence reports of a replay (`lockstep replay … --report FILE`): SLA compliance per
//! system, the echo latency distribution per system, the slowest and never-echoed cases,
//! every alert, credential hygiene (SPEC §4b: overdue rotations and unused credentials
//! per system and kind, oldest first, with their age distribution), consistency (SPEC
//! §4c: rotations a holder did not follow, identities never registered), the inventory
//! (what exists in which system, drift between systems, identities the system of record
//! does not know), and what the findings mean in OWASP NHI Top 10, NIST CSF 2.0, CIS AWS
//! Foundations, SOC 2 and ISO/IEC 27001:2022 terms — with what an auditor needs to hand
//! it over: the period covered, the SLA targets, who generated it when with which
//! lockstep, the SHA-256 of the configuration and of every input, a scope statement and
//! a sign-off block.
//! One [`Report`] is built from the committed state and the replay's alerts, then
//! written as JSON, CSV, Markdown or a self-contained HTML page (`html`) — so the
//! numbers agree across formats by construction.

mod consistency;
mod html;
mod inventory;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::alert::{Alert, AlertKind};
use crate::error::StoreError;
use crate::event::System;
use crate::model::case::{Case, Echo};
use crate::store::view::{CaseFilter, StateView};
use crate::time::{Micros, Span};
pub use inventory::{InventoryLine, InventorySummary, Listed};

/// Upper bounds (ms) of the latency histogram buckets; the last bucket is open.
pub const BUCKETS: [(i64, &str); 7] = [
    (60_000, "≤ 1 min"),
    (300_000, "≤ 5 min"),
    (900_000, "≤ 15 min"),
    (3_600_000, "≤ 1 h"),
    (14_400_000, "≤ 4 h"),
    (86_400_000, "≤ 1 day"),
    (i64::MAX, "> 1 day"),
];

/// How compliance is computed, said beside every compliance figure.
pub const COMPLIANCE_DEFINITION: &str = "compliance = on time ÷ evaluated, where evaluated = on time + late + never (obligations whose deadline passed); pending and superseded obligations are not counted";

/// Why a system's latency count can be smaller than its evaluated obligations.
pub const LATENCY_NOTE: &str = "latencies count the echoes that had something to echo: an obligation met at its deadline by a system that never held the case's entities has no latency, so a system can show fewer latencies than evaluated obligations";

/// A file and its SHA-256.
#[derive(Debug, Clone, Serialize)]
pub struct FileDigest {
    /// The path as given.
    pub name: String,
    /// Lower-case hex SHA-256 of its bytes (`-` for standard input, which is not kept).
    pub sha256: String,
}

impl FileDigest {
    /// Hashes `path` (`-`: standard input, not hashable after the replay read it).
    pub fn of(path: &Path) -> std::io::Result<FileDigest> {
        use sha2::Digest;
        let name = path.display().to_string();
        if path == Path::new("-") {
            return Ok(FileDigest {
                name,
                sha256: "-".into(),
            });
        }
        let mut hasher = sha2::Sha256::new();
        std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
        Ok(FileDigest {
            name,
            sha256: crate::alert::hex(&hasher.finalize()),
        })
    }
}

/// Who generated the report, when, from what.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Provenance {
    /// When the report was generated (RFC 3339, UTC).
    pub generated_at: String,
    /// The lockstep version.
    pub lockstep_version: String,
    /// Who ran it (`--operator`, else `LOCKSTEP_OPERATOR`, else the login name).
    pub operator: String,
    /// The configuration file, if one was given.
    pub config: Option<FileDigest>,
    /// Every input file, in the order read.
    pub inputs: Vec<FileDigest>,
    /// The earliest event time read.
    pub first_event: Option<String>,
    /// The latest event time read.
    pub last_event: Option<String>,
}

/// The SLA a system is held to: its default and the per-kind overrides.
#[derive(Debug, Clone, Serialize)]
pub struct SlaTarget {
    /// The system.
    pub system: String,
    /// The default SLA (`off`: no obligation).
    pub sla: String,
    /// `kind: sla` overrides.
    pub overrides: Vec<String>,
}

impl SlaTarget {
    /// The targets of every system under `policy`.
    pub fn all(policy: &crate::config::SlaPolicy) -> Vec<SlaTarget> {
        let shown = |s: Option<Span>| s.map_or("off".to_owned(), |s| s.to_string());
        System::ALL
            .iter()
            .map(|system| SlaTarget {
                system: system.to_string(),
                sla: shown(policy.get(crate::event::EntityKind::Other, *system)),
                overrides: policy
                    .overrides()
                    .filter(|(_, s, _)| s == system)
                    .map(|(kind, _, sla)| format!("{kind}: {}", shown(sla)))
                    .collect(),
            })
            .collect()
    }

    /// `15m`, or `15m (api_key: 5m)`.
    pub fn text(&self) -> String {
        if self.overrides.is_empty() {
            self.sla.clone()
        } else {
            format!("{} ({})", self.sla, self.overrides.join(", "))
        }
    }
}

/// How one system kept its echo obligations.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SystemCompliance {
    /// The system.
    pub system: String,
    /// Obligations whose deadline was evaluated.
    pub evaluated: u64,
    /// Met by the deadline.
    pub on_time: u64,
    /// Missed, then echoed.
    pub late: u64,
    /// Missed and still not echoed.
    pub never: u64,
    /// Deadline not reached at the end of the replay.
    pub pending: u64,
    /// Of superseded cases (no longer owed).
    pub superseded: u64,
    /// `on_time / evaluated`, in percent (100 when nothing was evaluated).
    pub compliance_pct: f64,
    /// Echo latencies (ms) of on-time and late echoes that had something to echo.
    pub latency: Latency,
}

/// A latency distribution.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// How many latencies.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: Option<i64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<i64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<i64>,
    /// Largest, ms.
    pub max_ms: Option<i64>,
    /// Counts per [`BUCKETS`] bucket.
    pub histogram: Vec<u64>,
}

impl Latency {
    fn of(mut ms: Vec<i64>) -> Latency {
        ms.sort_unstable();
        let pick = |q: f64| {
            (!ms.is_empty())
                .then(|| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1])
        };
        let mut histogram = vec![0u64; BUCKETS.len()];
        for m in &ms {
            let i = BUCKETS
                .iter()
                .position(|(bound, _)| m <= bound)
                .unwrap_or(BUCKETS.len() - 1);
            histogram[i] += 1;
        }
        Latency {
            count: ms.len() as u64,
            p50_ms: pick(0.5),
            p90_ms: pick(0.9),
            p99_ms: pick(0.99),
            max_ms: ms.last().copied(),
            histogram,
        }
    }
}

/// A case in the slowest or never-echoed lists.
#[derive(Debug, Clone, Serialize)]
pub struct CaseLine {
    /// The case.
    pub case_id: String,
    /// Its root.
    pub root: String,
    /// Where it was revoked.
    pub origin: String,
    /// When.
    pub revoked_at: String,
    /// The system concerned.
    pub system: String,
    /// Echo latency (slowest) or none (never echoed).
    pub latency_ms: Option<i64>,
    /// The entities that were (or are still) missing.
    pub entities: Vec<String>,
}

/// What a kind of finding means in the frameworks auditors use.
#[derive(Debug, Clone, Serialize)]
pub struct Mapping {
    /// The alert kind.
    pub kind: String,
    /// How many were raised.
    pub count: u64,
    /// OWASP Non-Human Identities Top 10 (2025) risks.
    pub owasp_nhi: Vec<&'static str>,
    /// NIST Cybersecurity Framework 2.0 outcomes.
    pub nist_csf: Vec<&'static str>,
    /// CIS AWS Foundations Benchmark (and CIS Controls) controls.
    pub cis_aws: Vec<&'static str>,
    /// SOC 2 Trust Services Criteria.
    pub soc2: Vec<&'static str>,
    /// ISO/IEC 27001:2022 Annex A controls.
    pub iso27001: Vec<&'static str>,
}

/// The SOC 2 criteria and ISO/IEC 27001:2022 controls behind each kind of finding.
fn audit_frameworks(kind: AlertKind) -> (Vec<&'static str>, Vec<&'static str>) {
    const CC61: &str = "CC6.1 Logical access security";
    const CC62: &str = "CC6.2 Registration and removal of access";
    const CC63: &str = "CC6.3 Changes to and removal of access";
    const A515: &str = "A.5.15 Access control";
    const A516: &str = "A.5.16 Identity management";
    const A517: &str = "A.5.17 Authentication information";
    const A518: &str = "A.5.18 Access rights";
    const A82: &str = "A.8.2 Privileged access rights";
    match kind {
        AlertKind::EchoMissing => (vec![CC62, CC63], vec![A515, A516, A518]),
        AlertKind::EchoLate => (vec![CC62], vec![A516, A518]),
        AlertKind::RevokedEntityUsed => (vec![CC61, CC63], vec![A515, A517, A82]),
        AlertKind::Reactivated => (vec![CC62, CC63], vec![A516, A518]),
        AlertKind::RevocationFailed => (vec![CC62], vec![A518]),
        AlertKind::SourceSilent => (vec![], vec![]),
        AlertKind::RotationOverdue => (vec![CC61], vec![A517]),
        AlertKind::CredentialUnused => (vec![CC62, CC63], vec![A516, A518]),
        AlertKind::RotationMissed => (vec![CC61], vec![A517]),
        AlertKind::UnregisteredIdentity => (vec![CC62], vec![A516]),
    }
}

/// Upper bounds (days) of the hygiene age buckets; the last bucket is open.
pub const AGE_BUCKETS: [(i64, &str); 5] = [
    (60, "≤ 60 d"),
    (90, "≤ 90 d"),
    (180, "≤ 180 d"),
    (365, "≤ 1 y"),
    (i64::MAX, "> 1 y"),
];

/// One credential flagged by a hygiene alert (SPEC §4b).
#[derive(Debug, Clone, Serialize)]
pub struct HygieneLine {
    /// `rotation_overdue` or `credential_unused`.
    pub finding: String,
    /// The credential.
    pub entity: String,
    /// Its kind.
    pub entity_kind: String,
    /// Where it was active at the deadline.
    pub systems: Vec<String>,
    /// Issued or rotated (`rotation_overdue`), or last active (`credential_unused`).
    pub since: String,
    /// Whole days from `since` to the report's end (or the alert, without one).
    pub age_days: i64,
}

/// Credential hygiene: the findings of SPEC §4b counted per system and per kind, their
/// age distribution, and every flagged credential, oldest first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Hygiene {
    /// (finding, system) → credentials active there.
    pub by_system: BTreeMap<String, BTreeMap<String, u64>>,
    /// (finding, entity kind) → credentials.
    pub by_kind: BTreeMap<String, BTreeMap<String, u64>>,
    /// finding → counts per [`AGE_BUCKETS`] bucket.
    pub ages: BTreeMap<String, Vec<u64>>,
    /// Every flagged credential, oldest first.
    pub credentials: Vec<HygieneLine>,
}

impl Hygiene {
    fn of(
        view: &StateView,
        alerts: &[Alert],
        as_of: Option<Micros>,
    ) -> Result<Hygiene, StoreError> {
        let mut h = Hygiene::default();
        for a in alerts {
            let since = match a.kind {
                AlertKind::RotationOverdue => a.issued_at,
                AlertKind::CredentialUnused => a.last_active_at,
                _ => None,
            };
            let (Some(since), Some(entity)) = (since, &a.entity) else {
                continue;
            };
            let finding = a.kind.to_string();
            let kind = view
                .entity(entity)?
                .and_then(|r| r.kind)
                .map_or("other".to_owned(), |k| k.to_string());
            let systems: Vec<String> = a.systems.iter().flatten().map(|s| s.to_string()).collect();
            for s in &systems {
                *h.by_system
                    .entry(finding.clone())
                    .or_default()
                    .entry(s.clone())
                    .or_default() += 1;
            }
            *h.by_kind
                .entry(finding.clone())
                .or_default()
                .entry(kind.clone())
                .or_default() += 1;
            let age_days = (as_of.unwrap_or(a.at).0 - since.0).max(0) / Span::days(1).0;
            let bucket = AGE_BUCKETS
                .iter()
                .position(|(bound, _)| age_days <= *bound)
                .unwrap_or(AGE_BUCKETS.len() - 1);
            h.ages
                .entry(finding.clone())
                .or_insert_with(|| vec![0; AGE_BUCKETS.len()])[bucket] += 1;
            h.credentials.push(HygieneLine {
                finding,
                entity: entity.clone(),
                entity_kind: kind,
                systems,
                since: since.to_string(),
                age_days,
            });
        }
        h.credentials.sort_by(|a, b| {
            (&a.since, &a.entity, &a.finding).cmp(&(&b.since, &b.entity, &b.finding))
        });
        Ok(h)
    }
}

/// The frameworks behind each kind of finding: (OWASP NHI, NIST CSF, CIS AWS).
fn frameworks(kind: AlertKind) -> (Vec<&'static str>, Vec<&'static str>, Vec<&'static str>) {
    const NHI1: &str = "NHI1 Improper Offboarding";
    const NHI2: &str = "NHI2 Secret Leakage";
    const NHI7: &str = "NHI7 Long-Lived Secrets";
    const NHI9: &str = "NHI9 NHI Reuse";
    const AA01: &str = "PR.AA-01 Identities and credentials are managed";
    const AA05: &str = "PR.AA-05 Access permissions are managed";
    const AE03: &str = "DE.AE-03 Information is correlated from multiple sources";
    const CIS112: &str = "CIS AWS 1.12 Credentials unused for 45 days or more are disabled";
    const CIS114: &str = "CIS AWS 1.14 Access keys are rotated every 90 days or less";
    const CIS51: &str = "CIS Controls v8 5.1 Establish and maintain an inventory of accounts";
    match kind {
        AlertKind::EchoMissing => (vec![NHI1, NHI7], vec![AA01, AE03], vec![]),
        AlertKind::EchoLate => (vec![NHI1], vec![AA01, AE03], vec![]),
        AlertKind::RevokedEntityUsed => (vec![NHI1, NHI2, NHI7], vec![AA05, AE03], vec![]),
        AlertKind::Reactivated => (vec![NHI1, NHI9], vec![AA01, AA05], vec![]),
        AlertKind::RevocationFailed => (vec![NHI1, NHI7], vec![AA01], vec![]),
        AlertKind::SourceSilent => (vec![], vec![AE03], vec![]),
        AlertKind::RotationOverdue => (vec![NHI7], vec![AA01], vec![CIS114]),
        AlertKind::CredentialUnused => (vec![NHI1], vec![AA01], vec![CIS112]),
        AlertKind::RotationMissed => (vec![NHI7], vec![AA01, AE03], vec![CIS114]),
        AlertKind::UnregisteredIdentity => (vec![NHI1], vec![AA01, AE03], vec![CIS51]),
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Who generated it, when, from which configuration and inputs, over which period.
    pub provenance: Provenance,
    /// What it covers and what it does not.
    pub scope: String,
    /// The SLA each system is held to.
    pub sla_targets: Vec<SlaTarget>,
    /// How compliance is computed.
    pub compliance_definition: &'static str,
    /// Why latency counts can differ from evaluated counts.
    pub latency_note: &'static str,
    /// When the deadlines were evaluated up to.
    pub as_of: Option<String>,
    /// Events read.
    pub events: u64,
    /// Cases in the state.
    pub cases: u64,
    /// Cases superseded by a reactivation.
    pub cases_superseded: u64,
    /// Per system.
    pub systems: Vec<SystemCompliance>,
    /// Alerts per kind.
    pub alerts_by_kind: BTreeMap<String, u64>,
    /// The ten slowest late echoes.
    pub slowest: Vec<CaseLine>,
    /// Obligations still missing.
    pub never_echoed: Vec<CaseLine>,
    /// Overdue rotations and unused credentials (SPEC §4b).
    pub hygiene: Hygiene,
    /// Rotations not followed and unregistered identities (SPEC §4c).
    pub consistency: consistency::Consistency,
    /// What exists where: counts by kind and system state, drift, unregistered entities.
    pub inventory: InventorySummary,
    /// Findings in OWASP NHI Top 10, NIST CSF 2.0 and CIS AWS Foundations terms.
    pub frameworks: Vec<Mapping>,
    /// Every alert of the replay.
    pub alerts: Vec<Alert>,
}

/// The output formats, chosen by the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// `.json`
    Json,
    /// `.csv`
    Csv,
    /// `.md`
    Markdown,
    /// `.html`
    Html,
}

impl ReportFormat {
    /// The format of `path`, from its extension.
    pub fn of(path: &Path) -> Result<ReportFormat, String> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => Ok(ReportFormat::Json),
            Some("csv") => Ok(ReportFormat::Csv),
            Some("md" | "markdown") => Ok(ReportFormat::Markdown),
            Some("html" | "htm") => Ok(ReportFormat::Html),
            _ => Err(format!(
                "--report {}: the extension names the format: .json, .csv, .md or .html",
                path.display()
            )),
        }
    }
}

fn latency(case: &Case, at: Micros) -> i64 {
    at.millis_since(case.revoked_at).max(0)
}

impl Report {
    /// Builds the report of a replay from its state and alerts.
    pub fn build(
        view: &StateView,
        alerts: &[Alert],
        events: u64,
        as_of: Option<Micros>,
        provenance: Provenance,
        config: &crate::config::Config,
    ) -> Result<Report, StoreError> {
        let sla = &config.sla;
        let mut systems: Vec<SystemCompliance> = System::ALL
            .iter()
            .map(|s| SystemCompliance {
                system: s.to_string(),
                ..Default::default()
            })
            .collect();
        let mut latencies: Vec<Vec<i64>> = vec![Vec::new(); System::ALL.len()];
        let (mut cases, mut superseded) = (0u64, 0u64);
        let (mut slowest, mut never_echoed) = (Vec::new(), Vec::new());
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = view.cases(&CaseFilter::default(), cursor.as_deref(), 1000)?;
            for case in &page {
                cases += 1;
                superseded += u64::from(case.is_superseded());
                for o in &case.obligations {
                    let i = o.system.index();
                    let row = &mut systems[i];
                    let line = |latency_ms, entities: &[String]| CaseLine {
                        case_id: case.id.clone(),
                        root: case.root.clone(),
                        origin: case.origin.to_string(),
                        revoked_at: case.revoked_at.to_string(),
                        system: o.system.to_string(),
                        latency_ms,
                        entities: entities.to_vec(),
                    };
                    match &o.echo {
                        Echo::Pending if case.is_superseded() => row.superseded += 1,
                        Echo::Pending => row.pending += 1,
                        Echo::Met { at } => {
                            row.on_time += 1;
                            latencies[i].extend(at.map(|t| latency(case, t)));
                        }
                        Echo::Late { at, entities, .. } => {
                            row.late += 1;
                            latencies[i].push(latency(case, *at));
                            slowest.push(line(Some(latency(case, *at)), entities));
                        }
                        Echo::Missing { entities } => {
                            row.never += 1;
                            never_echoed.push(line(None, entities));
                        }
                    }
                }
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        for (row, ms) in systems.iter_mut().zip(latencies) {
            row.evaluated = row.on_time + row.late + row.never;
            row.compliance_pct = if row.evaluated == 0 {
                100.0
            } else {
                (row.on_time as f64 * 1000.0 / row.evaluated as f64).round() / 10.0
            };
            row.latency = Latency::of(ms);
        }
        slowest.sort_by(|a, b| {
            b.latency_ms
                .cmp(&a.latency_ms)
                .then(a.case_id.cmp(&b.case_id))
        });
        slowest.truncate(10);
        never_echoed.sort_by(|a, b| {
            a.revoked_at
                .cmp(&b.revoked_at)
                .then(a.case_id.cmp(&b.case_id))
        });
        let mut alerts_by_kind = BTreeMap::new();
        for kind in AlertKind::ALL.iter().copied() {
            alerts_by_kind.insert(
                kind.to_string(),
                alerts.iter().filter(|a| a.kind == kind).count() as u64,
            );
        }
        let frameworks = AlertKind::ALL
            .iter()
            .map(|k| {
                let (owasp_nhi, nist_csf, cis_aws) = frameworks(*k);
                let (soc2, iso27001) = audit_frameworks(*k);
                Mapping {
                    kind: k.to_string(),
                    count: alerts_by_kind[&k.to_string()],
                    owasp_nhi,
                    nist_csf,
                    cis_aws,
                    soc2,
                    iso27001,
                }
            })
            .collect();
        let scope = format!(
            "Revocations of non-human identities (service accounts, keys, tokens, secrets, agents, devices) recorded in the inputs listed, from {} to {}, and whether IAM, the vault, MDM and the SIEM echoed each within its SLA; credential rotation and use (hygiene); rotations every holder must follow and identities the system of record must know (consistency). Deadlines up to {} were evaluated; later ones are pending, not breached. Systems and events absent from the inputs are out of scope.",
            provenance.first_event.as_deref().unwrap_or("-"),
            provenance.last_event.as_deref().unwrap_or("-"),
            as_of.map_or("-".to_owned(), |t| t.to_string()),
        );
        Ok(Report {
            provenance,
            scope,
            sla_targets: SlaTarget::all(sla),
            compliance_definition: COMPLIANCE_DEFINITION,
            latency_note: LATENCY_NOTE,
            as_of: as_of.map(|t| t.to_string()),
            events,
            cases,
            cases_superseded: superseded,
            systems,
            alerts_by_kind,
            slowest,
            never_echoed,
            hygiene: Hygiene::of(view, alerts, as_of)?,
            consistency: consistency::Consistency::of(alerts),
            inventory: InventorySummary::of(view, config.consistency.system_of_record)?,
            frameworks,
            alerts: alerts.to_vec(),
        })
    }

    /// The report in `format`.
    pub fn render(&self, format: ReportFormat) -> String {
        match format {
            ReportFormat::Json => serde_json::to_string_pretty(self).unwrap_or_default(),
            ReportFormat::Csv => self.csv(),
            ReportFormat::Markdown => self.markdown(),
            ReportFormat::Html => html::page(self),
        }
    }

    /// Every number of the report as `section,key,metric,value` rows.
    fn csv(&self) -> String {
        let mut rows = vec!["section,key,metric,value".to_owned()];
        let mut row = |section: &str, key: &str, metric: &str, value: String| {
            rows.push(format!(
                "{section},{},{metric},{}",
                csv_field(key),
                csv_field(&value)
            ));
        };
        let p = &self.provenance;
        for (metric, value) in [
            ("generated_at", p.generated_at.as_str()),
            ("lockstep_version", p.lockstep_version.as_str()),
            ("operator", p.operator.as_str()),
            ("first_event", p.first_event.as_deref().unwrap_or("")),
            ("last_event", p.last_event.as_deref().unwrap_or("")),
            ("as_of", self.as_of.as_deref().unwrap_or("")),
        ] {
            row("provenance", "report", metric, value.to_owned());
        }
        for f in p.config.iter() {
            row("provenance", &f.name, "config_sha256", f.sha256.clone());
        }
        for f in &p.inputs {
            row("provenance", &f.name, "input_sha256", f.sha256.clone());
        }
        for t in &self.sla_targets {
            row("sla_target", &t.system, "sla", t.text());
        }
        row("replay", "all", "events", self.events.to_string());
        row("replay", "all", "cases", self.cases.to_string());
        row(
            "replay",
            "all",
            "cases_superseded",
            self.cases_superseded.to_string(),
        );
        for s in &self.systems {
            for (metric, value) in [
                ("evaluated", s.evaluated),
                ("on_time", s.on_time),
                ("late", s.late),
                ("never", s.never),
                ("pending", s.pending),
                ("superseded", s.superseded),
            ] {
                row("sla", &s.system, metric, value.to_string());
            }
            row(
                "sla",
                &s.system,
                "compliance_pct",
                format!("{:.1}", s.compliance_pct),
            );
            row("latency", &s.system, "count", s.latency.count.to_string());
            for (metric, v) in [
                ("p50_ms", s.latency.p50_ms),
                ("p90_ms", s.latency.p90_ms),
                ("p99_ms", s.latency.p99_ms),
                ("max_ms", s.latency.max_ms),
            ] {
                row(
                    "latency",
                    &s.system,
                    metric,
                    v.map_or(String::new(), |v| v.to_string()),
                );
            }
            for (n, (_, label)) in s.latency.histogram.iter().zip(BUCKETS) {
                row("histogram", &s.system, label, n.to_string());
            }
        }
        for (kind, n) in &self.alerts_by_kind {
            row("alerts", kind, "count", n.to_string());
        }
        for c in &self.never_echoed {
            row("never_echoed", &c.case_id, &c.system, c.entities.join(" "));
        }
        for c in &self.slowest {
            row(
                "slowest",
                &c.case_id,
                &c.system,
                c.latency_ms.unwrap_or_default().to_string(),
            );
        }
        let h = &self.hygiene;
        for (finding, counts) in &h.by_system {
            for (system, n) in counts {
                row("hygiene_system", finding, system, n.to_string());
            }
        }
        for (finding, counts) in &h.by_kind {
            for (kind, n) in counts {
                row("hygiene_kind", finding, kind, n.to_string());
            }
        }
        for (finding, counts) in &h.ages {
            for (n, (_, label)) in counts.iter().zip(AGE_BUCKETS) {
                row("hygiene_age", finding, label, n.to_string());
            }
        }
        for c in &h.credentials {
            row(
                "hygiene_credential",
                &c.entity,
                &c.finding,
                c.age_days.to_string(),
            );
        }
        self.consistency.csv_rows(&mut row);
        self.inventory.csv_rows(&mut row);
        // A byte-order mark, so spreadsheets read the UTF-8 (`≤`, `÷`) as such.
        "\u{feff}".to_owned() + &rows.join("\n") + "\n"
    }

    fn markdown(&self) -> String {
        let mut out = String::from("# lockstep evidence report\n\n");
        out += &self.provenance_markdown();
        out += &format!(
            "Deadlines evaluated up to {}. {} events, {} cases ({} superseded), {} alerts.\n\n",
            self.as_of.as_deref().unwrap_or("-"),
            self.events,
            self.cases,
            self.cases_superseded,
            self.alerts.len()
        );
        out += "## SLA compliance per system\n\n| system | evaluated | on time | late | never | pending | compliance | SLA target | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n";
        for (s, target) in self.systems.iter().zip(&self.sla_targets) {
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} | {} | {} | {} |\n",
                s.system,
                s.evaluated,
                s.on_time,
                s.late,
                s.never,
                s.pending,
                s.compliance_pct,
                md(&target.text()),
                duration(s.latency.p50_ms),
                duration(s.latency.p90_ms),
                duration(s.latency.p99_ms),
                duration(s.latency.max_ms)
            );
        }
        out += &format!(
            "\n{}. Superseded obligations (a reactivation of the root ended the case) are counted apart.\n",
            COMPLIANCE_DEFINITION
        );
        out += &format!(
            "\n## Echo latency distribution\n\n{}.\n\n| system | evaluated | latencies |",
            LATENCY_NOTE
        );
        for (_, label) in BUCKETS {
            out += &format!(" {label} |");
        }
        out += "\n|---|---:|---:|";
        out += &"---:|".repeat(BUCKETS.len());
        out += "\n";
        for s in &self.systems {
            out += &format!("| {} | {} | {} |", s.system, s.evaluated, s.latency.count);
            for n in &s.latency.histogram {
                out += &format!(" {n} |");
            }
            out += "\n";
        }
        out += "\n## Slowest echoes\n\n| case | root | system | latency | entities |\n|---|---|---|---:|---|\n";
        for c in &self.slowest {
            out += &format!(
                "| {} | {} | {} | {} | {} |\n",
                c.case_id,
                md(&c.root),
                c.system,
                duration(c.latency_ms),
                md(&c.entities.join(", "))
            );
        }
        out += "\n## Never echoed\n\n| case | root | revoked at | system | still active |\n|---|---|---|---|---|\n";
        for c in &self.never_echoed {
            out += &format!(
                "| {} | {} | {} | {} | {} |\n",
                c.case_id,
                md(&c.root),
                c.revoked_at,
                c.system,
                md(&c.entities.join(", "))
            );
        }
        out += &self.hygiene_markdown();
        out += &self.consistency.markdown();
        out += &self.inventory.markdown();
        out += "\n## Findings and frameworks\n\n| finding | count | OWASP NHI Top 10 | NIST CSF 2.0 | CIS AWS Foundations | SOC 2 | ISO/IEC 27001:2022 |\n|---|---:|---|---|---|---|---|\n";
        for m in &self.frameworks {
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                m.kind,
                m.count,
                m.owasp_nhi.join("; "),
                m.nist_csf.join("; "),
                m.cis_aws.join("; "),
                m.soc2.join("; "),
                m.iso27001.join("; ")
            );
        }
        out += "\n## Alerts\n\n| at | kind | severity | system | root | entities | detail |\n|---|---|---|---|---|---|---|\n";
        for a in &self.alerts {
            let who = a.subject();
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                a.at,
                a.kind,
                a.severity,
                a.systems_text(),
                md(&a.root),
                md(&who),
                md(&a.detail)
            );
        }
        out += &self.sign_off_markdown();
        out
    }
}

/// The sign-off block's lines: who prepared the report, and blanks for the reviewer.
pub const SIGN_OFF: [&str; 4] = ["Prepared by", "Reviewed by", "Date", "Signature"];

impl Report {
    fn provenance_markdown(&self) -> String {
        let p = &self.provenance;
        let mut out = format!(
            "Generated {} by {} with lockstep {}. Period covered: {} to {}.\n\n**Scope.** {}\n\n| file | role | SHA-256 |\n|---|---|---|\n",
            p.generated_at,
            md(&p.operator),
            p.lockstep_version,
            p.first_event.as_deref().unwrap_or("-"),
            p.last_event.as_deref().unwrap_or("-"),
            md(&self.scope)
        );
        for f in p.config.iter() {
            out += &format!("| {} | configuration | `{}` |\n", md(&f.name), f.sha256);
        }
        for f in &p.inputs {
            out += &format!("| {} | input | `{}` |\n", md(&f.name), f.sha256);
        }
        out + "\n"
    }

    fn sign_off_markdown(&self) -> String {
        let mut out = String::from("\n## Sign-off\n\n");
        for (i, what) in SIGN_OFF.iter().enumerate() {
            let filled = if i == 0 {
                md(&self.provenance.operator)
            } else {
                "________________".into()
            };
            out += &format!("- {what}: {filled}\n");
        }
        out
    }

    fn hygiene_markdown(&self) -> String {
        let h = &self.hygiene;
        let mut out = String::from("\n## Credential hygiene\n\nCredentials still active past their `max_age` without rotation (`rotation_overdue`: OWASP NHI7, CIS AWS 1.14) or past `unused_after` without activity (`credential_unused`: OWASP NHI1, CIS AWS 1.12).\n\n| finding | per system | per kind |\n|---|---|---|\n");
        let list = |m: Option<&BTreeMap<String, u64>>| {
            m.into_iter()
                .flatten()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for finding in [AlertKind::RotationOverdue, AlertKind::CredentialUnused] {
            let f = finding.to_string();
            out += &format!(
                "| {f} | {} | {} |\n",
                list(h.by_system.get(&f)),
                list(h.by_kind.get(&f))
            );
        }
        out += "\n| finding |";
        for (_, label) in AGE_BUCKETS {
            out += &format!(" {label} |");
        }
        out += "\n|---|";
        out += &"---:|".repeat(AGE_BUCKETS.len());
        out += "\n";
        for (finding, counts) in &h.ages {
            out += &format!("| {finding} |");
            for n in counts {
                out += &format!(" {n} |");
            }
            out += "\n";
        }
        out += "\n| credential | kind | finding | active in | since | age (days) |\n|---|---|---|---|---|---:|\n";
        for c in &h.credentials {
            out += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                md(&c.entity),
                c.entity_kind,
                c.finding,
                c.systems.join(", "),
                c.since,
                c.age_days
            );
        }
        out
    }
}

/// A duration for people: `850 ms`, `42 s`, `12.5 min`, `3.2 h`, `2.1 d`.
pub fn duration(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "–".into() };
    let s = ms as f64 / 1000.0;
    if ms < 1000 {
        format!("{ms} ms")
    } else if s < 60.0 {
        format!("{s:.0} s")
    } else if s < 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// Text for a Markdown table cell: no column break, no raw HTML, no line break.
fn md(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\r', '\n'], " ")
}

/// A CSV field: quoted when it must be, and never read as a formula by a spreadsheet
/// (a leading `=`, `+`, `-`, `@`, tab or CR gets a `'` in front).
pub fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_buckets() {
        let l = Latency::of(vec![30_000, 120_000, 600_000, 7_200_000]);
        assert_eq!(l.count, 4);
        assert_eq!(l.p50_ms, Some(120_000));
        assert_eq!(l.max_ms, Some(7_200_000));
        assert_eq!(l.histogram, vec![1, 1, 1, 0, 1, 0, 0]);
        assert_eq!(Latency::of(vec![]).p50_ms, None);
        assert_eq!(duration(Some(90_000)), "1.5 min");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("@sum"), "'@sum");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(md("a|b<script>\r\nc"), "a\\|b&lt;script&gt;  c");
        assert!(ReportFormat::of(Path::new("r.pdf")).is_err());
        assert_eq!(
            ReportFormat::of(Path::new("R.HTML")),
            Ok(ReportFormat::Html)
        );
    }
}
