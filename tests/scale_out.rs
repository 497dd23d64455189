//! SPEC §7 against a real tansu broker on loopback: several `lockstep run` processes of
//! one consumer group (`[kafka] assignment = "group"`) share six state shards; one is
//! killed with -9 mid-stream, one joins with an empty state directory, one is stopped
//! with SIGTERM — and the alerts topic, de-duplicated by `alert_id`, equals a replay of
//! the same events. Twice: with the source topics keyed by lineage root (partition p of
//! each is shard p), and keyed by entity id, routed by root through a repartition topic
//! of six partitions — with a tree that gains a parent on another shard after it has
//! state of its own.

mod support;

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use lockstep::config::Config;
use lockstep::event::{Action, EntityKind, IdentityEvent, System};
use lockstep::live::feed::{produce_keyed, Keys};
use lockstep::repartition::shard_of;
use lockstep::simulate::{generate, Scenario};
use lockstep::time::{Micros, Span};
use support::group::*;
use support::*;

/// A partition of this small feed (6,348 events at 1,000/s over 24 partitions; mdm has
/// 158) can be quiet for seconds while the others run on: idle sooner than the whole
/// feed lasts, the watermark would pass records it has yet to get, as with one instance.
const GROUP: &str = r#"
[correlator]
allowed_lateness = "30s"
idle_timeout = "20s"
"#;

/// Two trees in the middle of `events`, on shards 5 and 0 — which the range assignor
/// gives to different members whenever two or more share the six: `acct`'s, with a key
/// and a revocation whose vault echo is still owed, gains the parent `org` (a use record
/// naming it), so its state moves to `org`'s shard and instance, where the echo is
/// judged missing, then late.
fn late_parent(events: &[IdentityEvent]) -> Vec<IdentityEvent> {
    let (acct, org) = ("svc-late-parent-1", "org-late-parent-2");
    assert_eq!((shard_of(acct, 6), shard_of(org, 6)), (5, 0));
    let t0 = events[events.len() / 3].time;
    let ev = |i: u32, minutes: i64, system: System, entity: &str, action: Action| {
        let time = t0.plus(Span::mins(minutes));
        let kind = EntityKind::ServiceAccount;
        IdentityEvent::new(
            format!("late-parent-{i}"),
            system,
            time,
            entity,
            kind,
            action,
        )
    };

    let mut key = ev(2, 1, System::Vault, "key-late-parent", Action::Issued);
    key.parent = Some(acct.into());
    key.entity_kind = EntityKind::ApiKey;
    let mut joins = ev(5, 5, System::Iam, acct, Action::Used);
    joins.parent = Some(org.into());
    vec![
        ev(0, 0, System::Iam, org, Action::Created),
        ev(1, 0, System::Iam, acct, Action::Created),
        key,
        ev(3, 2, System::Vault, "key-late-parent", Action::Used),
        ev(4, 3, System::Iam, acct, Action::Disabled),
        joins,
        ev(6, 25, System::Vault, "key-late-parent", Action::Revoked),
        ev(7, 30, System::Iam, org, Action::Disabled),
    ]
}

#[test]
fn members_added_killed_and_stopped_raise_the_alerts_of_one_replay() {
    share_the_work(Keys::Root);
}

#[test]
fn keyed_by_entity_routed_by_root_trees_moving_the_alerts_are_one_replays() {
    share_the_work(Keys::Entity);
}

fn share_the_work(keys: Keys) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 6);
    broker.create_topics(&OUTPUTS, 1);
    if keys == Keys::Entity {
        broker.create_topics(&[ROUTES], 6);
    }
    let cfg_path = group_config(dir.path(), &broker, keys, GROUP);
    let cfg = Config::load(&cfg_path).unwrap();

    // With the stories of SPEC §4c: open rotation rounds and registration marks move
    // with their trees, and live with the shards of members killed or added.
    let mut events = generate(&Scenario {
        consistency: true,
        ..Scenario::new(11, 240)
    });
    assert!(
        events.iter().any(|e| e.parent.is_some()),
        "the scenario has lineage"
    );
    if keys == Keys::Entity {
        events.extend(late_parent(&events));
        events.sort_by_key(|e| e.time);
    }
    // Live, every deadline up to the wall clock comes due (hygiene's too).
    let as_of = Micros::now().minus(Span::hours(1));
    let expected = replay_alerts(
        &write_events(dir.path(), &events),
        &as_of.to_string(),
        dir.path(),
    );
    assert!(expected.len() > 30, "{}", expected.len());
    for kind in ["rotation_missed", "unregistered_identity"] {
        assert!(expected.values().any(|a| a["kind"] == kind), "no {kind}");
    }

    let a = Member::start(dir.path(), &cfg_path, "a");
    let b = Member::start(dir.path(), &cfg_path, "b");
    let c = Member::start(dir.path(), &cfg_path, "c");
    wait_until(
        "three members hold partitions",
        Duration::from_secs(60),
        &[&a, &b, &c],
        || [&a, &b, &c].iter().all(|m| m.held_partitions()),
    );

    let feeder = {
        let events = events.clone();
        std::thread::spawn(move || produce_keyed(&cfg, &events, 1_000, keys).unwrap())
    };
    // Mid-stream: a member is killed with -9 (its shards go to the others, which never
    // had them; keyed by entity, the one running the router: the next owner of shard 0
    // routes everything again from an empty directory), d joins with an empty disk, b
    // leaves with SIGTERM.
    std::thread::sleep(Duration::from_millis(1_500));
    let mut members = vec![a, b, c];
    let victim = match keys {
        Keys::Entity => members.iter().position(Member::routes).unwrap_or(0),
        Keys::Root => 0,
    };
    let a = members.remove(victim);
    let (b, c) = (members.remove(0), members.remove(0));
    let a_log = a.log.clone();
    a.kill();
    let d = Member::start(dir.path(), &cfg_path, "d");
    wait_until(
        "the new member holds partitions",
        Duration::from_secs(60),
        &[&b, &c, &d],
        || d.held_partitions(),
    );
    let b_log = b.log.clone();
    b.stop();
    assert_eq!(feeder.join().unwrap(), events.len() as u64);

    // Until every expected alert is there (each record read once).
    let seen = RefCell::new((0, HashSet::new()));
    let records = read_until(
        &broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(120),
        |r| {
            let (read, ids) = &mut *seen.borrow_mut();
            ids.extend(alerts(&r[*read..]).into_keys());
            *read = r.len();
            expected.keys().all(|k| ids.contains(k))
        },
    );
    let got = alerts(&records);
    let logs = dir.path().join("members.log");
    let text: String = [&a_log, &c.log, &d.log]
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n---\n");
    std::fs::write(&logs, &text).unwrap();
    assert_same_alerts(&got, &expected, &logs);
    assert!(
        records.len() >= got.len(),
        "duplicates are allowed, losses are not"
    );
    assert!(
        d.text()
            .contains("restoring it from the beginning of its partitions"),
        "d started empty: {text}"
    );
    assert!(
        d.text().contains("shard restored: caught up"),
        "d said when its shards had caught up: {text}"
    );
    if keys == Keys::Entity {
        let late = |kind: &str| {
            expected.values().any(|a| {
                a["kind"] == kind
                    && a["root"]
                        .as_str()
                        .is_some_and(|r| r.contains("late-parent"))
            })
        };
        assert!(late("echo_missing") && late("echo_late"), "{expected:#?}");
        // Split across instances: out of one member, into another.
        let logs = [&a_log, &b_log, &c.log, &d.log]
            .map(|l| std::fs::read_to_string(l).unwrap_or_default());
        let moved = |how: &str| {
            let line = format!("tree moved {how} top=svc-late-parent-1");
            logs.iter().position(|l| l.contains(&line))
        };
        let (out, into) = (moved("out"), moved("in"));
        assert!(
            out.is_some() && into.is_some() && out != into,
            "svc-late-parent-1's tree moved from one member to another ({out:?} → {into:?}): {text}"
        );
    }
    c.stop();
    d.stop();
}
