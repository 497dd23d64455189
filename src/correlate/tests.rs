//! Unit tests of SPEC §4: every alert row, the order rules, lineage, superseding and
//! replay end, each on a small story with hand-computed expectations; SPEC §4c in
//! [`consistency`].

use super::*;
use crate::config::Config;
use crate::correlate::reorder::ReorderBuffer;
use crate::event::System::{Iam, Mdm, Siem, Vault};
use crate::event::{Action::*, EntityKind, IdentityEvent, Outcome};

/// 2026-03-02 at `hh:mm[:ss]` UTC (or a whole `YYYY-MM-DDThh:mm`).
fn at(hm: &str) -> Micros {
    if hm.contains('T') {
        return Micros::parse(&format!("{hm}:00Z")).unwrap();
    }
    let full = if hm.len() == 5 {
        format!("{hm}:00")
    } else {
        hm.to_owned()
    };
    Micros::parse(&format!("2026-03-02T{full}Z")).unwrap()
}

fn ev(id: &str, time: &str, system: System, entity: &str, action: Action) -> IdentityEvent {
    IdentityEvent::new(
        id,
        system,
        at(time),
        entity,
        EntityKind::ServiceAccount,
        action,
    )
}

trait With {
    fn parent(self, p: &str) -> Self;
    fn failed(self) -> Self;
    fn kind(self, k: EntityKind) -> Self;
    fn days_later(self, days: i64) -> Self;
}

impl With for IdentityEvent {
    fn parent(mut self, p: &str) -> Self {
        self.parent = Some(p.into());
        self
    }
    fn failed(mut self) -> Self {
        self.outcome = Outcome::Failure;
        self
    }
    fn kind(mut self, k: EntityKind) -> Self {
        self.entity_kind = k;
        self
    }
    fn days_later(mut self, days: i64) -> Self {
        self.time = self.time.plus(Span::days(days));
        self
    }
}

/// Replays `events` (in any arrival order) through the reorder buffer and the
/// correlator, evaluating deadlines up to `as_of` (default: the latest event time).
fn run_with(config: &str, events: Vec<IdentityEvent>, as_of: Option<&str>) -> Vec<Alert> {
    let config = Config::parse(config).unwrap();
    let mut c = Correlator::new(Rules::from(&config), Store::temporary().unwrap());
    let mut buffer = ReorderBuffer::new(config.correlator.allowed_lateness);
    let latest = events.iter().map(|e| e.time).max().unwrap();
    let mut out = Vec::new();
    for e in events {
        buffer.push(e);
        while let Some(e) = buffer.pop_ready() {
            c.apply(&e, &mut out).unwrap();
        }
    }
    while let Some(e) = buffer.pop_any() {
        c.apply(&e, &mut out).unwrap();
    }
    c.finish(as_of.map_or(latest, at), usize::MAX, &mut out)
        .unwrap();
    crate::alert::sort_alerts(&mut out);
    out
}

fn run(events: Vec<IdentityEvent>) -> Vec<Alert> {
    run_with("", events, None)
}

/// The identifying tuple of SPEC §4: (kind, root, system, entity or entities, at).
fn ids(alerts: &[Alert]) -> Vec<(String, String, String, String, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a.kind.to_string(),
                a.root.clone(),
                a.systems_text(),
                a.subject(),
                a.at.to_string()[11..19].to_owned(),
            )
        })
        .collect()
}

fn row(
    kind: &str,
    root: &str,
    system: &str,
    subject: &str,
    time: &str,
) -> (String, String, String, String, String) {
    let full = if time.len() == 5 {
        format!("{time}:00")
    } else {
        time.to_owned()
    };
    (
        kind.into(),
        root.into(),
        system.into(),
        subject.into(),
        full,
    )
}

/// sa with a key (iam) whose secret lives in the vault, and an MDM agent.
fn estate() -> Vec<IdentityEvent> {
    vec![
        ev("i1", "09:00", Iam, "sa", Created),
        ev("i2", "09:01", Iam, "key", Issued)
            .parent("sa")
            .kind(EntityKind::ApiKey),
        ev("v1", "09:02", Vault, "secret", Created)
            .parent("key")
            .kind(EntityKind::Secret),
        ev("m1", "09:03", Mdm, "agent", Enrolled)
            .parent("sa")
            .kind(EntityKind::Agent),
        ev("s1", "09:04", Siem, "sa", Observed),
    ]
}

#[test]
fn echo_missing_per_system_at_its_deadline() {
    let mut events = estate();
    events.push(ev("i3", "10:00", Iam, "sa", Disabled));
    let alerts = run_with("", events, Some("15:00"));
    assert_eq!(
        ids(&alerts),
        vec![
            row("echo_missing", "sa", "iam", "key", "10:15"),
            row("echo_missing", "sa", "vault", "secret", "10:15"),
            row("echo_missing", "sa", "siem", "sa", "11:00"),
            row("echo_missing", "sa", "mdm", "agent", "14:00"),
        ]
    );
    let vault = &alerts[1];
    assert_eq!(vault.severity, crate::alert::Severity::High);
    assert_eq!(vault.origin_system, Some(Iam));
    assert_eq!(vault.revoked_at, Some(at("10:00")));
    assert_eq!(vault.deadline, Some(at("10:15")));
    assert_eq!(vault.entity, None);
}

#[test]
fn missing_set_is_every_active_entity_sorted() {
    let events = vec![
        ev("i1", "09:00", Iam, "sa", Created),
        ev("i2", "09:01", Iam, "sa/k2", Issued).parent("sa"),
        ev("i3", "09:01", Iam, "sa/k1", Issued).parent("sa"),
        ev("i4", "09:02", Iam, "sa/k1/t", Issued).parent("sa/k1"),
        ev("i5", "09:03", Iam, "sa/k3", Issued).parent("sa"),
        ev("i6", "09:30", Iam, "sa/k3", Deleted),
        ev("i7", "10:00", Iam, "sa", Disabled),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("10:15"));
    assert_eq!(
        ids(&alerts),
        vec![row(
            "echo_missing",
            "sa",
            "iam",
            "sa/k1,sa/k1/t,sa/k2",
            "10:15"
        )]
    );
    assert_eq!(
        alerts[0].entities.as_deref(),
        Some(&["sa/k1".to_owned(), "sa/k1/t".into(), "sa/k2".into()][..])
    );
}

#[test]
fn echo_late_when_the_missing_set_is_finally_revoked() {
    let mut events = estate();
    events.push(ev("i3", "10:00", Iam, "sa", Disabled));
    events.push(ev("v2", "10:20", Vault, "secret", Deleted));
    events.push(ev("s2", "10:30", Siem, "sa", Revoked));
    let alerts = run_with(
        "[sla]\nmdm = \"off\"\niam = \"off\"\n",
        events,
        Some("12:00"),
    );
    assert_eq!(
        ids(&alerts),
        vec![
            row("echo_missing", "sa", "vault", "secret", "10:15"),
            row("echo_late", "sa", "vault", "secret", "10:20"),
        ]
    );
    let late = &alerts[1];
    assert_eq!(late.latency_ms, Some(20 * 60 * 1000));
    assert_eq!(late.event_id.as_deref(), Some("v2"));
    assert_eq!(late.severity, crate::alert::Severity::Medium);
}

#[test]
fn echo_late_waits_for_every_missing_entity() {
    let events = vec![
        ev("i1", "09:00", Iam, "sa", Created),
        ev("v1", "09:01", Vault, "a", Created).parent("sa"),
        ev("v2", "09:01", Vault, "b", Created).parent("sa"),
        ev("i2", "10:00", Iam, "sa", Disabled),
        ev("v3", "10:20", Vault, "a", Revoked),
        ev("v4", "10:25", Vault, "a", Enabled),
        ev("v5", "10:30", Vault, "b", Revoked),
        ev("v6", "10:40", Vault, "a", Revoked),
    ];
    let alerts = run_with(
        "[sla]\nsiem = \"off\"\niam = \"off\"\nmdm = \"off\"\n",
        events,
        None,
    );
    assert_eq!(
        ids(&alerts),
        vec![
            row("echo_missing", "sa", "vault", "a,b", "10:15"),
            row("reactivated", "sa", "vault", "a", "10:25"),
            row("echo_late", "sa", "vault", "a,b", "10:40"),
        ]
    );
}

#[test]
fn reporting_system_needs_the_root_revoked_even_when_never_seen() {
    let events = vec![
        ev("i1", "10:00", Iam, "sa", Disabled),
        ev("s1", "11:30", Siem, "sa", Deleted),
    ];
    let alerts = run(events.clone());
    assert_eq!(
        ids(&alerts),
        vec![
            row("echo_missing", "sa", "siem", "sa", "11:00"),
            row("echo_late", "sa", "siem", "sa", "11:30")
        ]
    );
    // With the vault as the reporting system, siem is an ordinary system: nothing active.
    let alerts = run_with("[correlator]\nreporting_system = \"vault\"\n", events, None);
    assert_eq!(
        ids(&alerts),
        vec![row("echo_missing", "sa", "vault", "sa", "10:15")]
    );
}

#[test]
fn an_echo_at_the_deadline_instant_is_on_time() {
    let mut events = estate();
    events.push(ev("i3", "10:00", Iam, "sa", Disabled));
    events.push(ev("v2", "10:15", Vault, "secret", Deleted));
    let alerts = run_with(
        "[sla]\nsiem = \"off\"\nmdm = \"off\"\niam = \"off\"\n",
        events,
        None,
    );
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn an_echo_one_microsecond_late_is_late() {
    let mut events = estate();
    events.push(ev("i3", "10:00", Iam, "sa", Disabled));
    events.push(ev("v2", "10:15:00.000001", Vault, "secret", Deleted));
    let alerts = run_with(
        "[sla]\nsiem = \"off\"\nmdm = \"off\"\niam = \"off\"\n",
        events,
        None,
    );
    assert_eq!(
        ids(&alerts),
        vec![
            row("echo_missing", "sa", "vault", "secret", "10:15"),
            row("echo_late", "sa", "vault", "secret", "10:15")
        ]
    );
}

#[test]
fn ties_are_broken_by_event_id() {
    // Same instant: whichever revocation comes first by event_id opens the case.
    let key_first = vec![
        ev("i0", "09:00", Iam, "key", Issued).parent("sa"),
        ev("a", "10:00", Iam, "key", Deleted),
        ev("b", "10:00", Iam, "sa", Disabled),
    ];
    let sa_first = vec![
        ev("i0", "09:00", Iam, "key", Issued).parent("sa"),
        ev("b", "10:00", Iam, "key", Deleted),
        ev("a", "10:00", Iam, "sa", Disabled),
    ];
    let cfg = "[sla]\niam = \"off\"\nvault = \"off\"\nmdm = \"off\"\n";
    let roots = |alerts: Vec<Alert>| alerts.into_iter().map(|a| a.root).collect::<Vec<_>>();
    assert_eq!(
        roots(run_with(cfg, key_first, Some("12:00"))),
        vec!["key", "sa"]
    );
    // Arrival order does not matter, only (time, event_id).
    let mut reversed = sa_first;
    reversed.reverse();
    assert_eq!(roots(run_with(cfg, reversed, Some("12:00"))), vec!["sa"]);
}

#[test]
fn redeliveries_are_ignored_but_ids_are_per_system() {
    let events = vec![
        ev("x1", "10:00", Iam, "sa", Disabled),
        ev("x2", "10:05", Vault, "tok", Revoked).parent("sa"),
        // A redelivery of vault x2 (even with other content) is ignored…
        ev("x2", "10:30", Vault, "tok", Issued).parent("sa"),
        // …but the same id in another system is a different event.
        ev("x2", "10:31", Mdm, "dev", Enrolled).parent("sa"),
    ];
    let alerts = run_with(
        "[sla]\nsiem = \"off\"\nmdm = \"off\"\n",
        events,
        Some("10:40"),
    );
    assert_eq!(
        ids(&alerts),
        vec![row("reactivated", "sa", "mdm", "dev", "10:31")]
    );
}

#[test]
fn revoked_entity_used_after_grace_once_per_case_entity_system() {
    let events = vec![
        ev("i1", "09:00", Iam, "key", Issued).parent("sa"),
        ev("i2", "10:00", Iam, "sa", Disabled),
        ev("i3", "10:00:30", Iam, "key", Deleted),
        ev("u1", "10:01", Iam, "key", Used),
        ev("u2", "10:01:00.000001", Iam, "key", Used),
        ev("u3", "10:02", Iam, "key", Used),
        ev("u4", "10:03", Vault, "key", Used),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\nvault = \"off\"\n", events, None);
    assert_eq!(
        ids(&alerts),
        vec![
            row("revoked_entity_used", "sa", "iam", "key", "10:01"),
            row("revoked_entity_used", "sa", "vault", "key", "10:03"),
        ]
    );
    let used = &alerts[0];
    assert_eq!(used.at, at("10:01:00.000001"));
    assert_eq!(used.event_id.as_deref(), Some("u2"));
    assert_eq!(used.severity, crate::alert::Severity::Critical);
    assert_eq!(used.case_id, alerts[1].case_id);
}

#[test]
fn a_usage_record_naming_its_parent_is_covered_by_the_parents_case() {
    let events = vec![
        ev("i1", "10:00", Iam, "sa", Disabled),
        ev("u1", "10:05", Iam, "key", Used).parent("sa"),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("10:10"));
    assert_eq!(
        ids(&alerts),
        vec![row("revoked_entity_used", "sa", "iam", "key", "10:05")]
    );
}

#[test]
fn a_key_issued_under_a_revoked_parent_is_reactivated_and_still_owed() {
    let events = vec![
        ev("i1", "10:00", Iam, "sa", Disabled),
        ev("i2", "10:05", Iam, "key", Issued).parent("sa"),
        ev("i3", "10:05", Iam, "other", Issued).parent("elsewhere"),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("10:20"));
    assert_eq!(
        ids(&alerts),
        vec![
            row("reactivated", "sa", "iam", "key", "10:05"),
            row("echo_missing", "sa", "iam", "key", "10:15")
        ]
    );
}

#[test]
fn reactivating_the_root_supersedes_its_case() {
    let events = vec![
        ev("i1", "09:00", Iam, "key", Issued).parent("sa"),
        ev("i2", "10:00", Iam, "sa", Disabled),
        ev("i3", "10:05", Iam, "sa", Enabled),
        // Not covered any more: no alert for this use.
        ev("u1", "10:10", Iam, "key", Used),
        // A new revocation opens a new case, with its own deadline.
        ev("i4", "11:00", Iam, "sa", Disabled),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("12:00"));
    assert_eq!(
        ids(&alerts),
        vec![
            row("reactivated", "sa", "iam", "sa", "10:05"),
            row("echo_missing", "sa", "iam", "key", "11:15")
        ]
    );
    assert_ne!(alerts[0].case_id, alerts[1].case_id);
}

#[test]
fn observed_and_same_instant_presence_do_not_supersede() {
    let events = vec![
        ev("i1", "09:00", Iam, "key", Issued).parent("sa"),
        ev("i2", "10:00", Iam, "sa", Disabled),
        ev("i3", "10:00", Iam, "sa", Enabled),
        ev("s1", "10:05", Siem, "sa", Observed),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("10:15"));
    assert_eq!(
        ids(&alerts),
        vec![row("echo_missing", "sa", "iam", "key,sa", "10:15")]
    );
}

#[test]
fn a_superseded_case_raises_no_echo_late() {
    let events = vec![
        ev("v1", "09:00", Vault, "tok", Issued).parent("sa"),
        ev("i1", "10:00", Iam, "sa", Disabled),
        ev("i2", "10:30", Iam, "sa", Enabled),
        ev("v2", "10:40", Vault, "tok", Revoked),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("11:00"));
    assert_eq!(
        ids(&alerts),
        vec![
            row("echo_missing", "sa", "vault", "tok", "10:15"),
            row("reactivated", "sa", "iam", "sa", "10:30")
        ]
    );
}

#[test]
fn revocation_failed_once_per_event_and_changes_nothing() {
    let events = vec![
        ev("v1", "09:00", Vault, "tok", Issued),
        ev("v2", "10:00", Vault, "tok", Revoked).failed(),
        ev("v3", "10:01", Vault, "tok", Revoked).failed(),
        ev("i1", "10:02", Iam, "sa", Disabled)
            .failed()
            .parent("tok"),
    ];
    let alerts = run_with("", events, Some("12:00"));
    assert_eq!(
        ids(&alerts),
        vec![
            row("revocation_failed", "tok", "vault", "tok", "10:00"),
            row("revocation_failed", "tok", "vault", "tok", "10:01"),
            row("revocation_failed", "sa", "iam", "sa", "10:02"),
        ]
    );
    assert_ne!(alerts[0].alert_id, alerts[1].alert_id);
    assert_eq!(alerts[0].case_id, None);
}

#[test]
fn revocation_failed_under_a_case_names_its_root() {
    let events = vec![
        ev("v1", "09:00", Vault, "tok", Issued).parent("sa"),
        ev("i1", "10:00", Iam, "sa", Disabled),
        ev("v2", "10:05", Vault, "tok", Revoked).failed(),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("10:20"));
    assert_eq!(
        ids(&alerts),
        vec![
            row("revocation_failed", "sa", "vault", "tok", "10:05"),
            row("echo_missing", "sa", "vault", "tok", "10:15")
        ]
    );
    assert!(alerts[0].case_id.is_some());
}

#[test]
fn lineage_refuses_second_parents_and_cycles() {
    let events = vec![
        ev("i1", "09:00", Iam, "key", Issued).parent("sa"),
        ev("i2", "09:01", Iam, "key", Issued).parent("other"),
        ev("i3", "09:02", Iam, "sa", Created).parent("key"),
        ev("i4", "10:00", Iam, "key", Deleted),
        ev("i5", "10:00", Iam, "other", Deleted),
        // sa is not under key (cycle refused): no alert; key is not under other.
        ev("u1", "10:05", Iam, "sa", Used),
        ev("u2", "10:05", Vault, "key", Used),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\niam = \"off\"\n", events, None);
    assert_eq!(
        ids(&alerts),
        vec![row("revoked_entity_used", "key", "vault", "key", "10:05")]
    );
}

#[test]
fn a_parent_below_an_entity_with_children_is_refused_deep_down() {
    // root ← a ← b ← c; then root names c as its parent: c is below root, refused.
    // A childless entity (d) takes any parent.
    let events = vec![
        ev("i1", "09:00", Iam, "a", Created).parent("root"),
        ev("i2", "09:01", Iam, "b", Created).parent("a"),
        ev("i3", "09:02", Iam, "c", Created).parent("b"),
        ev("i4", "09:03", Iam, "root", Created).parent("c"),
        ev("i5", "09:04", Iam, "d", Created).parent("c"),
        ev("i6", "10:00", Iam, "root", Disabled),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("10:15"));
    assert_eq!(
        ids(&alerts),
        vec![row("echo_missing", "root", "iam", "a,b,c,d", "10:15")]
    );
}

#[test]
fn failure_events_add_no_edge_and_no_state() {
    let events = vec![
        ev("i1", "09:00", Iam, "key", Issued).parent("sa").failed(),
        ev("i2", "10:00", Iam, "sa", Disabled),
        ev("u1", "10:05", Iam, "key", Used),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("10:20"));
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn used_activates_only_from_none() {
    let events = vec![
        ev("v0", "09:00", Vault, "b", Revoked).parent("sa"),
        ev("v1", "09:00", Vault, "a", Used).parent("sa"),
        ev("v2", "09:00:30", Vault, "b", Used),
        ev("i1", "10:00", Iam, "sa", Disabled),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("10:20"));
    assert_eq!(
        ids(&alerts),
        vec![row("echo_missing", "sa", "vault", "a", "10:15")]
    );
}

#[test]
fn the_nearest_non_superseded_case_covers() {
    let events = vec![
        ev("i0", "09:00", Iam, "key", Issued).parent("sa"),
        ev("i1", "10:00", Iam, "sa", Disabled),
        // key is covered by sa's case: no new case for it.
        ev("i2", "10:01", Iam, "key", Deleted),
        ev("i3", "10:02", Iam, "sa", Enabled),
        // sa's case is superseded; key's own revocation opened none, so nothing covers.
        ev("u1", "10:10", Iam, "key", Used),
        ev("i4", "10:20", Iam, "key", Deleted),
        ev("u2", "10:30", Iam, "key", Used),
    ];
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("10:40"));
    assert_eq!(
        ids(&alerts),
        vec![
            row("reactivated", "sa", "iam", "sa", "10:02"),
            row("revoked_entity_used", "key", "iam", "key", "10:30")
        ]
    );
}

#[test]
fn per_kind_overrides_and_off() {
    let events = vec![
        ev("v1", "09:00", Vault, "key/secret", Created).parent("key"),
        ev("i1", "10:00", Iam, "key", Deleted).kind(EntityKind::ApiKey),
        ev("v0", "09:00", Vault, "sa/secret", Created).parent("sa"),
        ev("i2", "10:00", Iam, "sa", Disabled),
    ];
    let cfg = "[sla]\nsiem = \"off\"\n[sla.api_key]\nvault = \"5m\"\n";
    let alerts = run_with(cfg, events, Some("11:00"));
    assert_eq!(
        ids(&alerts),
        vec![
            row("echo_missing", "key", "vault", "key/secret", "10:05"),
            row("echo_missing", "sa", "vault", "sa/secret", "10:15"),
        ]
    );
}

#[test]
fn replay_end_evaluates_up_to_as_of_inclusive() {
    let events = vec![
        ev("v1", "09:00", Vault, "tok", Issued).parent("sa"),
        ev("i1", "10:00", Iam, "sa", Disabled),
    ];
    let cfg = "[sla]\nsiem = \"off\"\n";
    assert!(run_with(cfg, events.clone(), Some("10:14:59")).is_empty());
    assert_eq!(
        ids(&run_with(cfg, events.clone(), Some("10:15"))),
        vec![row("echo_missing", "sa", "vault", "tok", "10:15")]
    );
    // Default as_of is the latest event time: the 10:15 deadline is pending.
    assert!(run_with(cfg, events, None).is_empty());
}

#[test]
fn a_bounded_advance_evaluates_the_same_deadlines_over_several_steps() {
    // Six deadlines before the watermark (echo_missing in iam, vault, siem and mdm; the
    // two hygiene clocks of a key of another account, months later), one step at a time.
    let events = vec![
        ev("i1", "09:00", Iam, "sa", Created),
        ev("i0", "09:00", Iam, "sa2", Created),
        ev("i2", "09:00", Iam, "key", Issued)
            .parent("sa2")
            .kind(EntityKind::ApiKey),
        ev("i4", "09:00", Iam, "key1", Issued).parent("sa"),
        ev("v1", "09:05", Vault, "tok", Issued).parent("sa"),
        ev("m1", "09:05", Mdm, "agent", Enrolled).parent("sa"),
        ev("i3", "10:00", Iam, "sa", Disabled),
    ];
    let step = |max: usize| {
        let config = Config::parse("").unwrap();
        let mut c = Correlator::new(Rules::from(&config), Store::temporary().unwrap());
        let mut out = Vec::new();
        for e in &events {
            c.apply(e, &mut out).unwrap();
        }
        let mut steps = 0;
        while c.advance(at("2026-12-31T00:00"), max, &mut out).unwrap() {
            steps += 1;
        }
        crate::alert::sort_alerts(&mut out);
        (out, steps)
    };
    let (all, one_step) = step(usize::MAX);
    assert_eq!(one_step, 0);
    let (bounded, steps) = step(1);
    assert_eq!(ids(&bounded), ids(&all));
    assert!(steps >= 6, "one deadline a step: {steps} steps");
    let kinds: BTreeSet<AlertKind> = all.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            AlertKind::EchoMissing,
            AlertKind::RotationOverdue,
            AlertKind::CredentialUnused
        ]),
        "{all:?}"
    );
}

// ---- SPEC §4b: hygiene ------------------------------------------------------------------

/// Echo SLAs off, so that only the hygiene alerts show.
const NO_SLA: &str = "[sla]\niam = \"off\"\nvault = \"off\"\nmdm = \"off\"\nsiem = \"off\"\n";

/// `at(hm)` + `days`, as the tuple's time.
fn later(days: i64, hm: &str) -> Micros {
    at(hm).plus(Span::days(days))
}

fn hygiene_ids(alerts: &[Alert]) -> Vec<(String, String, String, String, Micros)> {
    alerts
        .iter()
        .filter(|a| {
            matches!(
                a.kind,
                AlertKind::RotationOverdue | AlertKind::CredentialUnused
            )
        })
        .map(|a| {
            assert_eq!(a.system, None, "hygiene alerts name systems, not a system");
            (
                a.kind.to_string(),
                a.root.clone(),
                a.systems_text(),
                a.subject(),
                a.at,
            )
        })
        .collect()
}

fn h(
    kind: &str,
    root: &str,
    systems: &str,
    entity: &str,
    at: Micros,
) -> (String, String, String, String, Micros) {
    (kind.into(), root.into(), systems.into(), entity.into(), at)
}

#[test]
fn hygiene_defaults_api_keys_and_secrets_only() {
    let events = vec![
        ev("i1", "09:00", Iam, "sa", Created),
        ev("i2", "09:00", Iam, "key", Issued)
            .parent("sa")
            .kind(EntityKind::ApiKey),
        ev("v1", "09:30", Vault, "secret", Created)
            .parent("key")
            .kind(EntityKind::Secret),
        ev("v2", "09:30", Vault, "tok", Issued)
            .parent("sa")
            .kind(EntityKind::Token),
        ev("i3", "10:00", Iam, "key", Used).kind(EntityKind::ApiKey),
    ];
    let alerts = run_with(NO_SLA, events.clone(), Some("2026-04-01T00:00"));
    assert!(alerts.is_empty(), "nothing due within 30 days: {alerts:?}");
    let mut events = events;
    events.push(ev("s1", "09:00", Siem, "sa", Observed).days_later(120));
    let alerts = run_with(NO_SLA, events, None);
    assert_eq!(
        hygiene_ids(&alerts),
        vec![
            h("credential_unused", "sa", "iam", "key", later(45, "10:00")),
            h("rotation_overdue", "sa", "iam", "key", later(90, "09:00")),
            h(
                "rotation_overdue",
                "sa",
                "vault",
                "secret",
                later(90, "09:30")
            ),
        ]
    );
    let unused = &alerts[0];
    assert_eq!(unused.severity, crate::alert::Severity::Low);
    assert_eq!(unused.last_active_at, Some(at("10:00")));
    assert_eq!(unused.issued_at, None);
    assert_eq!(unused.entity.as_deref(), Some("key"));
    let overdue = &alerts[1];
    assert_eq!(overdue.severity, crate::alert::Severity::Medium);
    assert_eq!(overdue.issued_at, Some(at("09:00")));
    assert_eq!(overdue.last_active_at, None);
    assert_eq!(overdue.case_id, None);
    let json = serde_json::to_value(overdue).unwrap();
    assert!(json.get("system").is_none(), "{json}");
    assert_eq!(json["systems"], serde_json::json!(["iam"]));
    assert_eq!(json["issued_at"], "2026-03-02T09:00:00.000000Z");
}

#[test]
fn hygiene_deadline_exactly_at_a_rotation_raises_nothing() {
    let cfg = format!(
        "{NO_SLA}[hygiene.max_age]\napi_key = \"1h\"\n[hygiene.unused_after]\napi_key = \"off\"\n"
    );
    let events = vec![
        ev("i1", "09:00", Iam, "key", Issued).kind(EntityKind::ApiKey),
        ev("i2", "10:00", Iam, "key", Rotated).kind(EntityKind::ApiKey),
    ];
    assert!(run_with(&cfg, events.clone(), Some("10:59:59")).is_empty());
    let alerts = run_with(&cfg, events, Some("11:00"));
    assert_eq!(
        hygiene_ids(&alerts),
        vec![h("rotation_overdue", "key", "iam", "key", at("11:00"))]
    );
    assert_eq!(alerts[0].issued_at, Some(at("10:00")));
}

#[test]
fn hygiene_a_rotation_one_microsecond_late_is_overdue() {
    let cfg = format!("{NO_SLA}[hygiene.max_age]\napi_key = \"1h\"\n");
    let events = vec![
        ev("i1", "09:00", Iam, "key", Issued).kind(EntityKind::ApiKey),
        ev("i2", "10:00:00", Iam, "key", Rotated).kind(EntityKind::ApiKey),
    ];
    let mut events = events;
    events[1].time = events[1].time.plus(Span(1));
    let alerts = run_with(&cfg, events, Some("10:30"));
    assert_eq!(
        hygiene_ids(&alerts),
        vec![h("rotation_overdue", "key", "iam", "key", at("10:00"))]
    );
}

#[test]
fn hygiene_a_covered_credential_raises_nothing() {
    let cfg = format!(
        "{NO_SLA}[hygiene.max_age]\napi_key = \"1h\"\n[hygiene.unused_after]\napi_key = \"1h\"\n"
    );
    let events = vec![
        ev("i1", "09:00", Iam, "sa", Created),
        ev("i2", "09:00", Iam, "key", Issued)
            .parent("sa")
            .kind(EntityKind::ApiKey),
        ev("v1", "09:10", Vault, "key", Created).kind(EntityKind::ApiKey),
        ev("i3", "09:30", Iam, "sa", Disabled),
    ];
    assert!(run_with(&cfg, events.clone(), Some("12:00")).is_empty());
    // Once the parent's case is superseded the key is no longer covered: its next
    // deadline raises (the clocks armed at 09:10 by the vault's `created`).
    let mut events = events;
    events.push(ev("i4", "09:45", Iam, "sa", Enabled));
    assert_eq!(
        hygiene_ids(&run_with(&cfg, events, Some("12:00"))),
        vec![
            h("credential_unused", "sa", "iam,vault", "key", at("10:10")),
            h("rotation_overdue", "sa", "iam,vault", "key", at("10:10")),
        ]
    );
}

#[test]
fn hygiene_a_credential_revoked_before_its_deadline_raises_nothing() {
    let cfg = format!("{NO_SLA}[hygiene.max_age]\nsecret = \"1h\"\n");
    let events = vec![
        ev("v1", "09:00", Vault, "s", Created).kind(EntityKind::Secret),
        ev("v2", "09:59:59", Vault, "s", Deleted).kind(EntityKind::Secret),
    ];
    assert!(run_with(&cfg, events, Some("12:00")).is_empty());
}

#[test]
fn hygiene_active_in_several_systems_lists_them_sorted_by_name() {
    let cfg = format!("{NO_SLA}[hygiene.max_age]\ndevice = \"1h\"\n");
    let events = vec![
        ev("v1", "09:00", Vault, "d", Created).kind(EntityKind::Device),
        ev("m1", "09:01", Mdm, "d", Enrolled).kind(EntityKind::Device),
        ev("s1", "09:02", Siem, "d", Observed).kind(EntityKind::Device),
        ev("i1", "09:03", Iam, "d", Used).kind(EntityKind::Device),
    ];
    let alerts = run_with(&cfg, events, Some("12:00"));
    assert_eq!(
        hygiene_ids(&alerts),
        vec![h(
            "rotation_overdue",
            "d",
            "iam,mdm,siem,vault",
            "d",
            at("10:00")
        )]
    );
    assert_eq!(alerts[0].systems, Some(vec![Iam, Mdm, Siem, Vault]));
}

#[test]
fn hygiene_kinds_without_settings_and_off() {
    let events = vec![
        ev("i1", "09:00", Iam, "t", Issued).kind(EntityKind::Token),
        ev("i2", "09:00", Iam, "k", Issued).kind(EntityKind::ApiKey),
        ev("i3", "09:00", Iam, "sa", Created),
    ];
    // Defaults: tokens and service accounts have no limits.
    let by_default = run_with(NO_SLA, events.clone(), Some("2026-12-01T00:00"));
    assert_eq!(
        hygiene_ids(&by_default),
        vec![
            h("credential_unused", "k", "iam", "k", later(45, "09:00")),
            h("rotation_overdue", "k", "iam", "k", later(90, "09:00")),
        ]
    );
    let cfg = format!("{NO_SLA}[hygiene.max_age]\ntoken = \"1h\"\napi_key = \"off\"\n[hygiene.unused_after]\napi_key = \"off\"\n");
    assert_eq!(
        hygiene_ids(&run_with(&cfg, events, Some("2026-12-01T00:00"))),
        vec![h("rotation_overdue", "t", "iam", "t", at("10:00"))]
    );
}

#[test]
fn hygiene_use_re_arms_the_unused_clock_and_a_gap_raises_once() {
    let cfg = format!(
        "{NO_SLA}[hygiene.unused_after]\napi_key = \"30m\"\n[hygiene.max_age]\napi_key = \"off\"\n"
    );
    let events = vec![
        ev("i1", "09:00", Iam, "k", Issued).kind(EntityKind::ApiKey),
        ev("i2", "09:20", Iam, "k", Used).kind(EntityKind::ApiKey),
        ev("i3", "09:40", Iam, "k", Used).kind(EntityKind::ApiKey),
        ev("i4", "10:30", Iam, "k", Used).kind(EntityKind::ApiKey),
        ev("i5", "10:50", Iam, "k", Used).kind(EntityKind::ApiKey),
    ];
    let alerts = run_with(&cfg, events, Some("11:20"));
    assert_eq!(
        hygiene_ids(&alerts),
        vec![
            h("credential_unused", "k", "iam", "k", at("10:10")),
            h("credential_unused", "k", "iam", "k", at("11:20")),
        ]
    );
    assert_eq!(alerts[0].last_active_at, Some(at("09:40")));
    assert_eq!(alerts[1].last_active_at, Some(at("10:50")));
}

#[test]
fn hygiene_a_shorter_limit_armed_later_still_falls_due_first() {
    // The key's clock is armed for 2h by its kind, then re-armed by an event of a kind
    // with a 30m limit: the later arming's earlier deadline raises.
    let cfg = format!("{NO_SLA}[hygiene.unused_after]\napi_key = \"2h\"\ntoken = \"30m\"\n[hygiene.max_age]\napi_key = \"off\"\n");
    let events = vec![
        ev("i1", "09:00", Iam, "k", Issued).kind(EntityKind::ApiKey),
        ev("i2", "09:10", Iam, "k", Used).kind(EntityKind::Token),
    ];
    let alerts = run_with(&cfg, events, Some("12:00"));
    assert_eq!(
        hygiene_ids(&alerts),
        vec![h("credential_unused", "k", "iam", "k", at("09:40"))]
    );
}

#[test]
fn hygiene_survives_a_restart_between_arming_and_deadline() {
    let cfg = Config::parse(&format!(
        "{NO_SLA}[hygiene.unused_after]\napi_key = \"30m\"\n"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    {
        let mut c = Correlator::new(Rules::from(&cfg), Store::open(dir.path()).unwrap());
        c.apply(
            &ev("i1", "09:00", Iam, "k", Issued).kind(EntityKind::ApiKey),
            &mut out,
        )
        .unwrap();
        c.apply(
            &ev("i2", "09:20", Iam, "k", Used).kind(EntityKind::ApiKey),
            &mut out,
        )
        .unwrap();
        c.commit().unwrap();
    }
    let mut c = Correlator::new(Rules::from(&cfg), Store::open(dir.path()).unwrap());
    // A redelivery changes nothing; the deadline of the 09:20 use is the one that raises.
    c.apply(
        &ev("i2", "09:20", Iam, "k", Used).kind(EntityKind::ApiKey),
        &mut out,
    )
    .unwrap();
    c.finish(at("10:00"), usize::MAX, &mut out).unwrap();
    assert_eq!(
        hygiene_ids(&out),
        vec![h("credential_unused", "k", "iam", "k", at("09:50"))]
    );
}

#[test]
fn a_deep_chain_is_covered_from_its_top_and_a_tree_joined_later_brings_its_case() {
    // t0 ← t1 ← … ← t2999, revoked at the top: the leaf's use is covered 3,000 levels up.
    // Then a separate tree, revoked while on its own, joins the chain from below: its
    // case still covers its own leaf, found through the merged tree.
    let mut events = Vec::new();
    for i in 1..3000 {
        events.push(
            ev(&format!("i{i}"), "09:00", Iam, &format!("t{i}"), Issued)
                .parent(&format!("t{}", i - 1)),
        );
    }
    events.push(ev("r1", "10:00", Iam, "t0", Disabled));
    events.push(ev("u1", "10:05", Iam, "t2999", Used));
    events.push(ev("x1", "09:00", Iam, "leaf", Issued).parent("lone"));
    events.push(ev("r2", "10:00", Iam, "lone", Disabled));
    // (A use names the parent: an issue would re-activate lone and supersede its case.)
    events.push(ev("x2", "10:00:30", Iam, "lone", Used).parent("t2999"));
    events.push(ev("u2", "10:06", Iam, "leaf", Used));
    // The same below a chain where no case was ever opened: the count comes with it.
    for i in 1..3000 {
        events.push(
            ev(&format!("j{i}"), "09:00", Iam, &format!("c{i}"), Issued)
                .parent(&format!("c{}", i - 1)),
        );
    }
    events.push(ev("y1", "09:00", Iam, "leaf2", Issued).parent("lone2"));
    events.push(ev("r3", "10:00", Iam, "lone2", Disabled));
    events.push(ev("y2", "10:00:30", Iam, "lone2", Used).parent("c2999"));
    events.push(ev("u3", "10:07", Iam, "leaf2", Used));
    let alerts = run_with("[sla]\nsiem = \"off\"\n", events, Some("10:10"));
    let used: Vec<_> = ids(&alerts)
        .into_iter()
        .filter(|a| a.0 == "revoked_entity_used" && !a.3.starts_with("lone"))
        .collect();
    assert_eq!(
        used,
        vec![
            row("revoked_entity_used", "t0", "iam", "t2999", "10:05"),
            row("revoked_entity_used", "lone", "iam", "leaf", "10:06"),
            row("revoked_entity_used", "lone2", "iam", "leaf2", "10:07"),
        ]
    );
}

/// The alerts of `events` (in time order) applied by a correlator over a state directory
/// that commits after the events in `commits`, crashes (drops everything since its last
/// commit) after those in `crashes` and reapplies them; de-duplicated by id, as
/// consumers do.
fn with_restarts(
    config: &Config,
    events: &[IdentityEvent],
    as_of: Micros,
    (commits, crashes): (&[usize], &[usize]),
) -> Vec<Alert> {
    let dir = tempfile::tempdir().unwrap();
    let open = || Correlator::new(Rules::from(config), Store::open(dir.path()).unwrap());
    let mut c = open();
    let mut crashes = crashes.to_vec();
    let (mut out, mut committed, mut i) = (Vec::new(), 0, 0);
    while i < events.len() {
        c.apply(&events[i], &mut out).unwrap();
        i += 1;
        if commits.contains(&i) {
            c.commit().unwrap();
            committed = i;
        }
        if let Some(crash) = crashes.iter().position(|&at| at == i) {
            crashes.swap_remove(crash);
            drop(c);
            c = open();
            i = committed;
        }
    }
    c.finish(as_of, usize::MAX, &mut out).unwrap();
    crate::alert::sort_alerts(&mut out);
    out.dedup_by(|a, b| a.alert_id == b.alert_id);
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    #[test]
    fn restarts_change_no_alert(
        raw in proptest::collection::vec((0i64..360, 0usize..2, 0usize..6, 0usize..8), 1..50),
        commits in proptest::collection::vec(1usize..50, 0..20),
        crashes in proptest::collection::vec(1usize..50, 1..6),
    ) {
        let actions = [Issued, Rotated, Used, Used, Used, Used, Revoked, Enabled];
        let mut events: Vec<IdentityEvent> = raw
            .iter()
            .enumerate()
            .map(|(i, &(minute, system, key, action))| {
                let mut e = ev(&format!("e{i}"), "00:00", [Iam, Vault][system], &format!("k{key}"), actions[action])
                    .kind(EntityKind::ApiKey);
                e.time = e.time.plus(Span(minute * 60_000_000));
                e
            })
            .collect();
        events.sort_by(|a, b| (a.time, &a.event_id).cmp(&(b.time, &b.event_id)));
        let config = Config::parse(
            "[hygiene.unused_after]\napi_key = \"20m\"\n[hygiene.max_age]\napi_key = \"1h\"\n",
        )
        .unwrap();
        let as_of = at("12:00");
        let alone = with_restarts(&config, &events, as_of, (&[], &[]));
        let restarted = with_restarts(&config, &events, as_of, (&commits, &crashes));
        proptest::prop_assert_eq!(restarted, alone);
    }
}

mod consistency;
