//! End-to-end tests of `lockstep run` against a real tansu broker on loopback: live
//! alerts equal a replay of the same events; kill -9 mid-stream loses and duplicates
//! nothing beyond `alert_id`; malformed records are dead-lettered; a quiet feed still
//! fires its deadline; broker restarts (memory and sqlite) are ridden out; native formats
//! live equal a native replay; the rotations and shadow identities of SPEC §4c live
//! equal their replay.
//! The scenarios share two cores, so they run one at a time.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lockstep::config::Config;
use lockstep::event::{Action, IdentityEvent, System};
use lockstep::live::feed::produce;
use lockstep::simulate::{generate, Scenario};
use lockstep::time::{Micros, Span};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use support::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

const FAST: &str = "[correlator]\nallowed_lateness = \"30s\"\nidle_timeout = \"1s\"\n";

/// An instant after every deadline of a simulated scenario, and before now − lateness.
fn as_of_after(events: &[IdentityEvent]) -> String {
    let latest = events.iter().map(|e| e.time).max().unwrap();
    let after = latest.plus(Span::hours(24 * 2));
    assert!(
        after < Micros::now().minus(Span::hours(1)),
        "scenario must lie in the past"
    );
    after.to_string()
}

fn setup(broker: &Broker) {
    broker.create_topics(&INPUTS, 2);
    broker.create_topics(&OUTPUTS, 1);
}

/// A broker with the topics, a config for it, and where `lockstep run` keeps its
/// state and log.
struct Fixture {
    dir: tempfile::TempDir,
    broker: Broker,
    cfg_path: std::path::PathBuf,
    cfg: Config,
    state: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Fixture {
    fn new(durable: bool, extra: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let broker = if durable {
            Broker::durable(dir.path())
        } else {
            Broker::memory(dir.path())
        };
        setup(&broker);
        let cfg_path = config(dir.path(), &broker, extra);
        let cfg = Config::load(&cfg_path).unwrap();
        let state = dir.path().join("state");
        let log = dir.path().join("run.log");
        Fixture {
            dir,
            broker,
            cfg_path,
            cfg,
            state,
            log,
        }
    }

    fn run(&self) -> std::process::Child {
        run(&self.cfg_path, &self.state, &self.log)
    }

    /// What a replay of `events` raises, deadlines all evaluated.
    fn expected(&self, events: &[IdentityEvent]) -> BTreeMap<String, serde_json::Value> {
        let file = write_events(self.dir.path(), events);
        replay_alerts(&file, &as_of_after(events), self.dir.path())
    }
}

fn wait_for_alerts(broker: &Broker, expected: usize) -> BTreeMap<String, serde_json::Value> {
    let records = read_until(
        &broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(90),
        |r| alerts(r).len() >= expected,
    );
    alerts(&records)
}

#[test]
fn live_alerts_equal_replay_and_survive_kill_9() {
    let _one = serial();
    let fx = Fixture::new(false, FAST);
    let events = generate(&Scenario::new(5, 150));
    let expected = fx.expected(&events);
    assert!(expected.len() > 20);

    let mut child = fx.run();
    let feeder = {
        let cfg = fx.cfg.clone();
        let events = events.clone();
        std::thread::spawn(move || produce(&cfg, &events, 1_500).unwrap())
    };
    // kill -9 at several points mid-stream, restarting each time from the store.
    for pause in [700, 1100, 900] {
        std::thread::sleep(Duration::from_millis(pause));
        child.kill().unwrap();
        child.wait().unwrap();
        child = fx.run();
    }
    assert_eq!(feeder.join().unwrap(), events.len() as u64);
    let got = wait_for_alerts(&fx.broker, expected.len());
    terminate(child, &fx.log);
    assert_same_alerts(&got, &expected, &fx.log);

    // The case changelog carries every case with its per-system outcome.
    let cases = read_until(
        &fx.broker.brokers(),
        "lockstep.cases",
        Duration::from_secs(10),
        |r| !r.is_empty(),
    );
    let case: serde_json::Value = serde_json::from_slice(&cases[0].1).unwrap();
    assert!(
        case["obligations"]
            .as_array()
            .is_some_and(|o| !o.is_empty()),
        "{case}"
    );
}

/// SPEC §4c live: rotations followed or not and shadow identities give the alerts of a
/// replay, across a kill -9 that leaves rounds open and registrations armed.
#[test]
fn live_rotations_and_shadow_identities_equal_replay_across_kill_9() {
    let _one = serial();
    let fx = Fixture::new(false, FAST);
    let events = generate(&Scenario {
        consistency: true,
        ..Scenario::new(6, 150)
    });
    let expected = fx.expected(&events);
    for kind in ["rotation_missed", "unregistered_identity"] {
        assert!(expected.values().any(|a| a["kind"] == kind), "no {kind}");
    }
    let mut child = fx.run();
    let feeder = {
        let cfg = fx.cfg.clone();
        let events = events.clone();
        std::thread::spawn(move || produce(&cfg, &events, 1_500).unwrap())
    };
    std::thread::sleep(Duration::from_millis(1_200));
    child.kill().unwrap();
    child.wait().unwrap();
    child = fx.run();
    assert_eq!(feeder.join().unwrap(), events.len() as u64);
    let got = wait_for_alerts(&fx.broker, expected.len());
    terminate(child, &fx.log);
    assert_same_alerts(&got, &expected, &fx.log);
}

#[test]
fn a_zstd_compressed_source_topic_is_consumed_with_the_alerts_of_a_replay() {
    let _one = serial();
    let fx = Fixture::new(false, FAST);
    let events = generate(&Scenario::new(7, 60));
    let expected = fx.expected(&events);
    assert!(expected.len() > 5);
    // The feed compresses its record batches with zstd, the default of many producers;
    // the broker keeps them as they came and lockstep's consumer decompresses them.
    let mut feed = fx.cfg.clone();
    let properties = &mut feed.kafka.as_mut().unwrap().properties;
    properties.insert("compression.type".into(), "zstd".into());
    properties.insert("linger.ms".into(), "50".into());
    assert_eq!(produce(&feed, &events, 0).unwrap(), events.len() as u64);
    let child = fx.run();
    let got = wait_for_alerts(&fx.broker, expected.len());
    terminate(child, &fx.log);
    assert_same_alerts(&got, &expected, &fx.log);
}

#[test]
fn malformed_records_are_dead_lettered_and_the_rest_processed() {
    let _one = serial();
    let fx = Fixture::new(false, FAST);
    let events = generate(&Scenario::new(9, 40));
    let expected = fx.expected(&events);

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", fx.broker.brokers())
        .create()
        .unwrap();
    let vault_on_iam = lockstep::decode::json::encode(&IdentityEvent {
        system: System::Vault,
        ..events[0].clone()
    });
    for bad in [
        "{not json",
        r#"{"event_id":"x","system":"iam"}"#,
        vault_on_iam.as_str(),
    ] {
        producer
            .send(BaseRecord::to("lockstep.iam").key("bad").payload(bad))
            .unwrap();
    }
    producer
        .send(
            BaseRecord::to("lockstep.mdm")
                .key("bad")
                .payload(&[0u8, 1, 2][..]),
        )
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();

    let child = fx.run();
    produce(&fx.cfg, &events, 0).unwrap();
    let got = wait_for_alerts(&fx.broker, expected.len());
    let dead = read_until(
        &fx.broker.brokers(),
        "lockstep.dead-letters",
        Duration::from_secs(30),
        |r| r.len() >= 4,
    );
    terminate(child, &fx.log);
    assert_same_alerts(&got, &expected, &fx.log);
    assert_eq!(dead.len(), 4);
    let first = &dead
        .iter()
        .find(|d| d.1 == b"{not json")
        .expect("raw record kept")
        .2;
    assert_eq!(first["source.topic"], "lockstep.iam");
    assert!(first.contains_key("source.partition") && first.contains_key("source.offset"));
    assert!(
        first["reason"].contains("invalid canonical JSON"),
        "{first:?}"
    );
    assert!(dead.iter().any(|d| d.2["reason"].contains("declared iam")));
    assert!(dead.iter().any(|d| d.2["source.topic"] == "lockstep.mdm"));
}

#[test]
fn a_deadline_fires_while_every_feed_is_quiet() {
    let _one = serial();
    let extra = "[sla]\niam = \"off\"\nvault = \"2s\"\nmdm = \"off\"\nsiem = \"off\"\n\
                 [correlator]\nallowed_lateness = \"1s\"\nidle_timeout = \"1s\"\n";
    let fx = Fixture::new(false, extra);
    let child = fx.run();
    std::thread::sleep(Duration::from_secs(2));
    let now = Micros::now();
    let token = event(
        "v-1",
        System::Vault,
        "tok",
        Action::Issued,
        Some("sa"),
        now.minus(Span::secs(10)),
    );
    let disable = event("i-1", System::Iam, "sa", Action::Disabled, None, now);
    produce(&fx.cfg, &[token, disable], 0).unwrap();
    // The deadline is now + 2s; with 1s lateness the watermark passes it at now + 3s.
    let due = Instant::now() + Duration::from_secs(3)
        - Duration::from_micros((Micros::now().0 - now.0) as u64);
    let got = read_until(
        &fx.broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(20),
        |r| !r.is_empty(),
    );
    let late_by = Instant::now().saturating_duration_since(due);
    terminate(child, &fx.log);
    let alerts = alerts(&got);
    let alert = alerts
        .values()
        .next()
        .expect("echo_missing raised with no further event");
    assert_eq!(alert["kind"], "echo_missing");
    assert_eq!(alert["entities"][0], "tok");
    eprintln!("quiet-feed deadline: alert read {late_by:?} after the watermark passed it");
    assert!(
        late_by < Duration::from_secs(2),
        "alert came {late_by:?} after it was due"
    );
}

/// A token event for hand-made stories.
fn event(
    id: &str,
    system: System,
    entity: &str,
    action: Action,
    parent: Option<&str>,
    time: Micros,
) -> IdentityEvent {
    IdentityEvent {
        event_id: id.into(),
        system,
        source: "test".into(),
        time,
        entity: entity.into(),
        entity_kind: lockstep::event::EntityKind::Token,
        action,
        outcome: lockstep::event::Outcome::Success,
        parent: parent.map(str::to_owned),
        actor: None,
        attributes: Default::default(),
    }
}

/// The broker restarts empty, and its producers refill the new logs beyond the offsets
/// consumed before — so the consumer cannot just carry on at those offsets. The records
/// read last are read back, found gone, and the partitions are read from the beginning.
#[test]
fn a_memory_broker_that_comes_back_empty_is_noticed_and_ridden_out() {
    let _one = serial();
    let mut fx = Fixture::new(
        false,
        "[correlator]\nallowed_lateness = \"1s\"\nidle_timeout = \"1s\"\n",
    );
    let child = fx.run();
    produce(&fx.cfg, &generate(&Scenario::new(3, 30)), 0).unwrap();
    assert!(!wait_for_alerts(&fx.broker, 1).is_empty());
    std::thread::sleep(Duration::from_secs(2));

    fx.broker.restart();
    setup(&fx.broker);
    // A story just ahead of the wall clock, so it is in order whatever the watermark —
    // a token issued under a service account after the account was disabled — first in
    // the new logs, then more filler than was consumed before on every partition.
    let t = Micros::now().plus(Span::secs(3));
    let story = [
        event("r-1", System::Iam, "r-sa", Action::Disabled, None, t),
        event(
            "r-2",
            System::Vault,
            "r-tok",
            Action::Issued,
            Some("r-sa"),
            t.plus(Span::secs(1)),
        ),
    ];
    produce(&fx.cfg, &story, 0).unwrap();
    produce(&fx.cfg, &generate(&Scenario::new(7, 60)), 0).unwrap();
    let got = read_until(
        &fx.broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(90),
        |r| alerts(r).values().any(|a| a["entity"] == "r-tok"),
    );
    terminate(child, &fx.log);
    let log = std::fs::read_to_string(&fx.log).unwrap();
    assert!(
        log.contains("the broker lost the log consumed so far"),
        "the reset is reported:\n{log}"
    );
    let alert = alerts(&got)
        .into_values()
        .find(|a| a["entity"] == "r-tok")
        .unwrap_or_else(|| panic!("the head of the new logs is read; log:\n{log}"));
    assert_eq!(alert["kind"], "reactivated");
    assert_eq!(alert["root"], "r-sa");
}

/// A sqlite-backed broker restarts mid-stream: the pipeline waits for it (the feeds are
/// not idle while it is away), reads back its last records, finds them, and carries on
/// where it stopped; the alerts equal a replay of all the events.
#[test]
fn a_durable_broker_restart_loses_nothing() {
    let _one = serial();
    // Idle after 5 s: the pause before the restart is no quiet feed.
    let mut fx = Fixture::new(
        true,
        "[correlator]\nallowed_lateness = \"30s\"\nidle_timeout = \"5s\"\n",
    );
    let events = generate(&Scenario::new(8, 60));
    let (first, second) = events.split_at(events.len() / 2);
    let expected = fx.expected(&events);
    let child = fx.run();
    produce(&fx.cfg, first, 0).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    fx.broker.restart();
    produce(&fx.cfg, second, 0).unwrap();
    let got = wait_for_alerts(&fx.broker, expected.len());
    terminate(child, &fx.log);
    assert_same_alerts(&got, &expected, &fx.log);
}

/// Native records on topics of their own format (CloudTrail, the Vault audit device,
/// OCSF from the SIEM) go through the same adapters live as in a replay: the offboarding
/// story of tests/fixtures/scenario raises the same alerts either way.
#[test]
fn native_formats_live_give_the_alerts_of_a_native_replay() {
    let _one = serial();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenario");
    let story = std::fs::read_to_string(scenario.join("lockstep.toml")).unwrap();
    let topics = [
        ("native.cloudtrail", "iam", "cloudtrail", "cloudtrail.jsonl"),
        ("native.vault", "vault", "vault-audit", "vault_audit.log"),
        ("native.siem", "siem", "ocsf", "siem_ocsf.jsonl"),
    ];
    let sources: String = topics
        .iter()
        .map(|(topic, system, format, _)| {
            format!(
                "[[sources]]\nsystem = \"{system}\"\ntopic = \"{topic}\"\nformat = \"{format}\"\n"
            )
        })
        .collect();
    let fx = Fixture::new(false, &format!("{FAST}{story}\n{sources}"));
    fx.broker.create_topics(&topics.map(|(topic, ..)| topic), 1);

    let config = scenario.join("lockstep.toml");
    let inputs: Vec<String> = topics
        .iter()
        .map(|(_, _, format, file)| format!("{format}={}", scenario.join(file).display()))
        .collect();
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--as-of",
        "2026-03-09T00:00:00Z",
    ];
    for input in &inputs {
        args.extend(["--input", input.as_str()]);
    }
    let expected = replay_with(&args, fx.dir.path(), "replay.ndjson");
    assert_eq!(expected.len(), 4, "{expected:#?}");

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", fx.broker.brokers())
        .create()
        .unwrap();
    for (topic, _, _, file) in &topics {
        for line in std::fs::read_to_string(scenario.join(file))
            .unwrap()
            .lines()
        {
            producer
                .send(BaseRecord::<(), _>::to(topic).payload(line))
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let child = fx.run();
    let got = wait_for_alerts(&fx.broker, expected.len());
    terminate(child, &fx.log);
    assert_same_alerts(&got, &expected, &fx.log);
}

/// `lockstep replay --since --until` from the broker equals a file replay of the events
/// of that range, and leaves the live group's offsets and the alerts topic alone.
#[test]
fn a_kafka_time_range_replay_equals_a_file_replay() {
    let _one = serial();
    let fx = Fixture::new(false, FAST);
    let events = generate(&Scenario::new(13, 80));
    produce(&fx.cfg, &events, 0).unwrap();
    let mut times: Vec<Micros> = events.iter().map(|e| e.time).collect();
    times.sort();
    let (since, until) = (times[times.len() / 4], times[times.len() * 3 / 4]);
    let in_range: Vec<IdentityEvent> = events
        .iter()
        .filter(|e| e.time >= since && e.time < until)
        .cloned()
        .collect();
    let file = write_events(fx.dir.path(), &in_range);

    let replay = |args: &[&str], out: &str| replay_with(args, fx.dir.path(), out);
    let from_file = replay(&["--input", file.to_str().unwrap()], "file.ndjson");
    let (since, until) = (since.to_string(), until.to_string());
    let from_kafka = replay(
        &[
            "--config",
            fx.cfg_path.to_str().unwrap(),
            "--since",
            &since,
            "--until",
            &until,
        ],
        "kafka.ndjson",
    );
    assert!(!from_file.is_empty(), "the range raises alerts");
    assert_eq!(from_kafka, from_file);

    let alerts_topic = read_until(
        &fx.broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(3),
        |r| !r.is_empty(),
    );
    assert!(alerts_topic.is_empty(), "a replay produces nothing");
    let live: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", fx.broker.brokers())
        .set("group.id", &fx.cfg.kafka.as_ref().unwrap().group_id)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in INPUTS {
        for p in 0..2 {
            tpl.add_partition(topic, p);
        }
    }
    if let Ok(committed) = live.committed_offsets(tpl, Duration::from_secs(10)) {
        for e in committed.elements() {
            assert!(
                !matches!(e.offset(), rdkafka::Offset::Offset(_)),
                "the live group has an offset on {}/{}",
                e.topic(),
                e.partition()
            );
        }
    }
}

/// With room for only 50 held events, the partitions ahead of the slowest are paused and
/// resumed over and over while a backlog is read; the alerts still equal a replay.
#[test]
fn a_small_held_events_bound_pauses_partitions_and_loses_nothing() {
    let _one = serial();
    let fx = Fixture::new(false, &format!("{FAST}max_held_events = 50\n"));
    let events = generate(&Scenario::new(11, 80));
    let expected = fx.expected(&events);
    produce(&fx.cfg, &events, 0).unwrap();
    let child = fx.run();
    let got = wait_for_alerts(&fx.broker, expected.len());
    terminate(child, &fx.log);
    let log = std::fs::read_to_string(&fx.log).unwrap();
    assert!(
        log.contains("pausing the partitions ahead of the slowest"),
        "{log}"
    );
    assert_same_alerts(&got, &expected, &fx.log);
}
