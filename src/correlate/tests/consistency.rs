//! Unit tests of SPEC §4c: rotation rounds and `rotation_missed`, registration and
//! `unregistered_identity`, and the order of deadlines at one instant — each on a small
//! story with hand-computed expectations. Rotation SLAs are the §4 defaults (iam and
//! vault 15m, mdm 4h, the SIEM none); `register_within` 24h for accounts, keys, agents.

use super::*;

/// The alerts of `kinds` only.
fn only(alerts: &[Alert], kinds: &[&str]) -> Vec<(String, String, String, String, String)> {
    ids(alerts)
        .into_iter()
        .filter(|a| kinds.contains(&a.0.as_str()))
        .collect()
}

/// The estate with the key rotated in IAM at 10:00: its vault secret owes a rotation
/// by 10:15.
fn rotated_key(secret_rotated: Option<&str>) -> Vec<IdentityEvent> {
    let mut events = estate();
    events.push(ev("i9", "10:00", Iam, "key", Rotated).kind(EntityKind::ApiKey));
    if let Some(t) = secret_rotated {
        events.push(ev("v9", t, Vault, "secret", Rotated).kind(EntityKind::Secret));
    }
    events
}

#[test]
fn a_secret_rotated_exactly_at_the_deadline_follows_its_key() {
    let alerts = run_with("", rotated_key(Some("10:15")), Some("11:00"));
    assert_eq!(only(&alerts, &["rotation_missed"]), vec![]);
}

#[test]
fn a_secret_rotated_one_microsecond_late_missed_the_rotation() {
    let alerts = run_with("", rotated_key(Some("10:15:00.000001")), Some("11:00"));
    assert_eq!(
        only(&alerts, &["rotation_missed"]),
        vec![row("rotation_missed", "sa", "vault", "secret", "10:15")]
    );
    let a = alerts
        .iter()
        .find(|a| a.kind == AlertKind::RotationMissed)
        .unwrap();
    assert_eq!(a.rotated_entity.as_deref(), Some("key"));
    assert_eq!(a.rotated_at, Some(at("10:00")));
    assert_eq!(a.origin_system, Some(Iam));
    assert_eq!(a.deadline, Some(at("10:15")));
    assert_eq!(a.severity, crate::alert::Severity::Medium);
}

#[test]
fn a_secret_rotated_before_its_key_does_not_echo_the_later_rotation() {
    let alerts = run_with("", rotated_key(Some("09:59")), Some("11:00"));
    assert_eq!(
        only(&alerts, &["rotation_missed"]),
        vec![row("rotation_missed", "sa", "vault", "secret", "10:15")]
    );
}

#[test]
fn the_rotated_entity_owes_its_rotation_in_every_other_system_that_holds_it() {
    // The key is also held by the vault (observed) and the SIEM; the vault rotates it
    // within the round, the secret is never rotated. The SIEM owes nothing.
    let mut events = rotated_key(None);
    events.push(ev("v2", "09:30", Vault, "key", Observed).kind(EntityKind::ApiKey));
    events.push(ev("s2", "09:30", Siem, "key", Observed).kind(EntityKind::ApiKey));
    events.push(ev("v3", "10:05", Vault, "key", Rotated).kind(EntityKind::ApiKey));
    let alerts = run_with("", events, Some("11:00"));
    assert_eq!(
        only(&alerts, &["rotation_missed"]),
        vec![row("rotation_missed", "sa", "vault", "secret", "10:15")]
    );
    // Without the vault's rotation of the key, both vault holders missed it.
    let mut events = rotated_key(None);
    events.push(ev("v2", "09:30", Vault, "key", Observed).kind(EntityKind::ApiKey));
    let alerts = run_with("", events, Some("11:00"));
    assert_eq!(
        only(&alerts, &["rotation_missed"]),
        vec![
            row("rotation_missed", "sa", "vault", "key", "10:15"),
            row("rotation_missed", "sa", "vault", "secret", "10:15"),
        ]
    );
}

#[test]
fn a_rotation_inside_an_open_round_opens_none_and_a_later_one_does() {
    // Round 1: 10:00, secret rotated at 10:05. The key's rotation at 10:10 is inside the
    // open round (until 10:15): no round, so nothing owed by 10:25. At 10:20 the round
    // is closed: a new one, which the secret never follows.
    let mut events = rotated_key(Some("10:05"));
    events.push(ev("i10", "10:10", Iam, "key", Rotated).kind(EntityKind::ApiKey));
    let alerts = run_with("", events.clone(), Some("11:00"));
    assert_eq!(only(&alerts, &["rotation_missed"]), vec![]);
    events.push(ev("i11", "10:20", Iam, "key", Rotated).kind(EntityKind::ApiKey));
    let alerts = run_with("", events, Some("11:00"));
    assert_eq!(
        only(&alerts, &["rotation_missed"]),
        vec![row("rotation_missed", "sa", "vault", "secret", "10:35")]
    );
}

#[test]
fn a_rotation_of_a_covered_entity_is_reactivated_and_opens_no_round() {
    let mut events = rotated_key(None);
    events.retain(|e| e.event_id != "i9");
    events.push(ev("r1", "09:50", Iam, "sa", Disabled));
    events.push(ev("i9", "10:00", Iam, "key", Rotated).kind(EntityKind::ApiKey));
    let alerts = run_with("", events, Some("11:00"));
    assert_eq!(
        only(&alerts, &["rotation_missed", "reactivated"]),
        vec![row("reactivated", "sa", "iam", "key", "10:00")]
    );
}

#[test]
fn a_holder_revoked_or_covered_by_the_deadline_owes_nothing() {
    let mut events = rotated_key(None);
    events.push(ev("v4", "10:05", Vault, "secret", Deleted).kind(EntityKind::Secret));
    let alerts = run_with("", events, Some("11:00"));
    assert_eq!(only(&alerts, &["rotation_missed"]), vec![]);
    // The key revoked in IAM after its rotation: its case covers the secret.
    let mut events = rotated_key(None);
    events.push(ev("i5", "10:05", Iam, "key", Revoked).kind(EntityKind::ApiKey));
    let alerts = run_with("", events, Some("11:00"));
    assert_eq!(only(&alerts, &["rotation_missed"]), vec![]);
}

#[test]
fn only_children_whose_latest_kind_is_secret_owe_a_rotation_and_off_owes_none() {
    // A token issued from the key is not a secret; a child first recorded as `other`
    // and last as `secret` is.
    let mut events = rotated_key(None);
    events.push(
        ev("v5", "09:10", Vault, "token", Issued)
            .parent("key")
            .kind(EntityKind::Token),
    );
    events.push(
        ev("v6", "09:10", Vault, "copy", Created)
            .parent("key")
            .kind(EntityKind::Other),
    );
    events.push(ev("v7", "09:20", Vault, "copy", Observed).kind(EntityKind::Secret));
    let alerts = run_with("", events.clone(), Some("11:00"));
    assert_eq!(
        only(&alerts, &["rotation_missed"]),
        vec![
            row("rotation_missed", "sa", "vault", "copy", "10:15"),
            row("rotation_missed", "sa", "vault", "secret", "10:15"),
        ]
    );
    let alerts = run_with(
        "[consistency.rotation_sla]\nvault = \"off\"\n",
        events.clone(),
        Some("11:00"),
    );
    assert_eq!(only(&alerts, &["rotation_missed"]), vec![]);
    let alerts = run_with(
        "[consistency.rotation_sla]\nvault = \"1h\"\n",
        events,
        Some("12:00"),
    );
    assert_eq!(only(&alerts, &["rotation_missed"]).len(), 2);
    assert!(only(&alerts, &["rotation_missed"])
        .iter()
        .all(|a| a.4 == "11:00:00"));
}

/// A shadow agent: enrolled in MDM at 09:00 with no identity in IAM.
fn shadow(more: Vec<IdentityEvent>) -> Vec<IdentityEvent> {
    let mut events = vec![ev("m1", "09:00", Mdm, "ghost", Enrolled).kind(EntityKind::Agent)];
    events.extend(more);
    events
}

#[test]
fn an_identity_never_registered_is_reported_once_at_its_deadline() {
    let alerts = run_with("", shadow(vec![]), Some("2026-03-05T09:00"));
    assert_eq!(
        only(&alerts, &["unregistered_identity"]),
        vec![row(
            "unregistered_identity",
            "ghost",
            "mdm",
            "ghost",
            "09:00"
        )]
    );
    let a = &alerts[0];
    assert_eq!(a.at, at("2026-03-03T09:00"));
    assert_eq!(a.first_seen, Some(at("09:00")));
    assert_eq!(a.systems, Some(vec![Mdm]));
    assert_eq!(a.system, None);
    // Seen again elsewhere, unenrolled and re-enrolled: armed at most once ever.
    let alerts = run_with(
        "",
        shadow(vec![
            ev("s1", "2026-03-03T10:00", Siem, "ghost", Observed).kind(EntityKind::Agent),
            ev("m2", "2026-03-03T11:00", Mdm, "ghost", Unenrolled).kind(EntityKind::Agent),
            ev("m3", "2026-03-03T12:00", Mdm, "ghost", Enrolled).kind(EntityKind::Agent),
        ]),
        Some("2026-03-09T09:00"),
    );
    assert_eq!(only(&alerts, &["unregistered_identity"]).len(), 1);
}

#[test]
fn registered_in_time_or_exactly_at_the_deadline_raises_nothing_and_late_raises() {
    for (t, raised) in [
        ("2026-03-02T12:00", 0),
        ("2026-03-03T09:00", 0),
        ("2026-03-03T09:01", 1),
    ] {
        let alerts = run_with(
            "",
            shadow(vec![IdentityEvent::new(
                "i1",
                Iam,
                at(t),
                "ghost",
                EntityKind::Agent,
                Created,
            )]),
            Some("2026-03-05T09:00"),
        );
        assert_eq!(
            only(&alerts, &["unregistered_identity"]).len(),
            raised,
            "registered at {t}"
        );
    }
}

#[test]
fn registered_through_an_ancestor_now_or_later_raises_nothing() {
    // The agent's account appears in IAM before the agent: registered at once.
    let alerts = run_with("", estate(), Some("2026-03-05T09:00"));
    assert_eq!(only(&alerts, &["unregistered_identity"]), vec![]);
    // The agent's parent is seen in the SIEM only (both armed), then created in IAM:
    // both registered by their deadlines.
    let events = shadow(vec![
        ev("s1", "09:00", Siem, "shadow-sa", Observed),
        ev("m2", "09:05", Mdm, "ghost", Observed)
            .parent("shadow-sa")
            .kind(EntityKind::Agent),
        ev("i1", "2026-03-02T18:00", Iam, "shadow-sa", Created),
    ]);
    let alerts = run_with("", events.clone(), Some("2026-03-05T09:00"));
    assert_eq!(only(&alerts, &["unregistered_identity"]), vec![]);
    // Never created: both are reported, the agent with its account as root.
    let alerts = run_with("", events[..3].to_vec(), Some("2026-03-05T09:00"));
    assert_eq!(
        only(&alerts, &["unregistered_identity"]),
        vec![
            row(
                "unregistered_identity",
                "shadow-sa",
                "mdm",
                "ghost",
                "09:00"
            ),
            row(
                "unregistered_identity",
                "shadow-sa",
                "siem",
                "shadow-sa",
                "09:00"
            ),
        ]
    );
}

#[test]
fn decommissioned_or_covered_before_the_deadline_raises_nothing() {
    let alerts = run_with(
        "",
        shadow(vec![
            ev("m2", "12:00", Mdm, "ghost", Unenrolled).kind(EntityKind::Agent)
        ]),
        Some("2026-03-05T09:00"),
    );
    assert_eq!(only(&alerts, &["unregistered_identity"]), vec![]);
    // Its device (a kind with no register_within) is revoked in MDM: the case covers it.
    let alerts = run_with(
        "",
        vec![
            ev("m1", "09:00", Mdm, "ghost", Enrolled)
                .parent("mac")
                .kind(EntityKind::Agent),
            ev("m2", "09:00", Mdm, "mac", Enrolled).kind(EntityKind::Device),
            ev("m3", "12:00", Mdm, "mac", Revoked).kind(EntityKind::Device),
        ],
        Some("2026-03-05T09:00"),
    );
    assert_eq!(only(&alerts, &["unregistered_identity"]), vec![]);
}

#[test]
fn kinds_without_register_within_and_another_system_of_record() {
    // A secret in the vault only: no register_within by default.
    let only_vault = vec![ev("v1", "09:00", Vault, "s", Created).kind(EntityKind::Secret)];
    let alerts = run_with("", only_vault.clone(), Some("2026-03-05T09:00"));
    assert_eq!(only(&alerts, &["unregistered_identity"]), vec![]);
    let alerts = run_with(
        "[consistency.register_within]\nsecret = \"1h\"\n",
        only_vault.clone(),
        Some("2026-03-05T09:00"),
    );
    assert_eq!(
        only(&alerts, &["unregistered_identity"]),
        vec![row("unregistered_identity", "s", "vault", "s", "10:00")]
    );
    // With the vault as system of record, the vault's secret is registered and the
    // IAM agent is not.
    let config = "[consistency]\nsystem_of_record = \"vault\"\n[consistency.register_within]\nsecret = \"1h\"\n";
    let mut events = only_vault;
    events.push(ev("i1", "09:00", Iam, "bot", Created).kind(EntityKind::Agent));
    let alerts = run_with(config, events, Some("2026-03-05T09:00"));
    assert_eq!(
        only(&alerts, &["unregistered_identity"]),
        vec![row("unregistered_identity", "bot", "iam", "bot", "09:00")]
    );
}

/// Every kind of deadline falls due at 10:15, armed in the reverse of the order they are
/// evaluated in: §4 echo, rotation, registration, §4b hygiene.
#[test]
fn at_one_instant_echo_then_rotation_then_registration_then_hygiene() {
    let config = Config::parse(
        "[sla]\nsiem = \"off\"\niam = \"off\"\nmdm = \"off\"\n[consistency.register_within]\nagent = \"15m\"\n[hygiene.max_age]\napi_key = \"15m\"\n[hygiene.unused_after]\napi_key = \"off\"\n",
    )
    .unwrap();
    let events = vec![
        ev("i1", "09:00", Iam, "key", Created).kind(EntityKind::Token),
        ev("v1", "09:01", Vault, "secret", Created)
            .parent("key")
            .kind(EntityKind::Secret),
        ev("i2", "09:00", Iam, "gone", Created),
        ev("v2", "09:01", Vault, "gone", Observed),
        // Armed 1-4 µs after 10:00: hygiene, registration, rotation, the case.
        ev("a1", "10:00:00.000001", Iam, "other", Issued).kind(EntityKind::ApiKey),
        ev("a2", "10:00:00.000002", Mdm, "ghost", Enrolled).kind(EntityKind::Agent),
        ev("a3", "10:00:00.000003", Iam, "key", Rotated).kind(EntityKind::Token),
        ev("a4", "10:00:00.000004", Iam, "gone", Revoked),
    ];
    let mut c = Correlator::new(Rules::from(&config), Store::temporary().unwrap());
    let mut out = Vec::new();
    for e in &events {
        c.apply(e, &mut out).unwrap();
    }
    c.finish(at("10:16"), usize::MAX, &mut out).unwrap();
    let kinds: Vec<String> = out.iter().map(|a| a.kind.to_string()).collect();
    assert_eq!(
        kinds,
        vec![
            "rotation_overdue",
            "unregistered_identity",
            "rotation_missed",
            "echo_missing"
        ],
        "each armed 1 µs after the one before falls due 1 µs later"
    );
    // Now all at 10:00 exactly: armed in the same order (by event id at one instant),
    // evaluated in the reverse one, by kind.
    let mut same: Vec<IdentityEvent> = events.clone();
    for e in same.iter_mut().skip(4) {
        e.time = at("10:00");
    }
    let mut c = Correlator::new(Rules::from(&config), Store::temporary().unwrap());
    let mut out = Vec::new();
    same.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    for e in &same {
        c.apply(e, &mut out).unwrap();
    }
    c.finish(at("10:16"), usize::MAX, &mut out).unwrap();
    let kinds: Vec<String> = out.iter().map(|a| a.kind.to_string()).collect();
    assert!(out.iter().all(|a| a.at == at("10:15")));
    assert_eq!(
        kinds,
        vec![
            "echo_missing",
            "rotation_missed",
            "unregistered_identity",
            "rotation_overdue"
        ]
    );
}

#[test]
fn open_rounds_and_registration_marks_survive_restarts_and_crashes() {
    let config = Config::parse("").unwrap();
    let mut events = rotated_key(None);
    events.extend(shadow(vec![]));
    events.push(ev("v8", "10:10", Vault, "other-secret", Created).kind(EntityKind::Secret));
    events.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    let as_of = at("2026-03-04T00:00");
    let alone = with_restarts(&config, &events, as_of, (&[], &[]));
    assert_eq!(
        only(&alone, &["rotation_missed", "unregistered_identity"]).len(),
        2
    );
    let n = events.len();
    for cut in 1..n {
        let restarted = with_restarts(&config, &events, as_of, (&[cut], &[n]));
        assert_eq!(
            restarted, alone,
            "committed after {cut}, crashed at the end"
        );
    }
}

#[test]
fn a_tree_that_moves_takes_its_open_round_and_registration_with_it() {
    // Shard A holds the key's tree (round open) and a shadow agent (registration
    // armed); both trees leave A when their tops gain a parent held by shard B.
    let config = Config::parse("").unwrap();
    let mut a = Correlator::new(Rules::from(&config), Store::temporary().unwrap());
    let mut b = Correlator::new(Rules::from(&config), Store::temporary().unwrap());
    let mut out = Vec::new();
    let key_tree = [
        ev("i2", "09:01", Iam, "key", Issued).kind(EntityKind::ApiKey),
        ev("v1", "09:02", Vault, "secret", Created)
            .parent("key")
            .kind(EntityKind::Secret),
        ev("m1", "09:03", Mdm, "ghost", Enrolled).kind(EntityKind::Agent),
        ev("i9", "10:00", Iam, "key", Rotated).kind(EntityKind::ApiKey),
    ];
    for e in &key_tree {
        a.apply(e, &mut out).unwrap();
    }
    // B holds the account in the SIEM only (so the agent stays unregistered).
    b.apply(&ev("s1", "09:00", Siem, "sa", Observed), &mut out)
        .unwrap();
    for (id, system, top) in [("i3", Iam, "key"), ("m2", Mdm, "ghost")] {
        let link = ev(id, "10:01", system, top, Used).parent("sa");
        let tree = a.move_out(&link, &mut out).unwrap();
        assert!(b.move_in(tree).unwrap());
        b.apply(&link, &mut out).unwrap();
    }
    assert_eq!(a.pending().unwrap(), 0, "no timer left behind on A");
    a.finish(at("2026-03-04T00:00"), usize::MAX, &mut out)
        .unwrap();
    b.finish(at("2026-03-04T00:00"), usize::MAX, &mut out)
        .unwrap();
    crate::alert::sort_alerts(&mut out);
    assert_eq!(
        only(&out, &["rotation_missed", "unregistered_identity"]),
        vec![
            row("rotation_missed", "sa", "vault", "secret", "10:15"),
            row("unregistered_identity", "sa", "siem", "sa", "09:00"),
            row("unregistered_identity", "sa", "mdm", "ghost", "09:03"),
        ]
    );
}
