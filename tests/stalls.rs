//! Faults that are not crashes (SPEC §5, §7), against a real tansu broker on loopback: a
//! broker frozen (SIGSTOP) mid-stream for twice `idle_timeout` while the feed is a
//! backlog of past events — one instance, and a group of two — and a group member frozen
//! past the session timeout. Silence nobody could hear is not quiet: the alerts equal
//! one replay's, none extra, none missing.
//! The scenarios share two cores, so they run one at a time.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use lockstep::config::Config;
use lockstep::event::IdentityEvent;
use lockstep::live::feed::{produce_keyed, Keys};
use lockstep::simulate::{generate, Scenario};
use lockstep::time::{Micros, Span};
use support::group::*;
use support::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Short enough that a stall outlasts it many times over; long enough that no partition
/// of the feed below (1,000 events/s, keyed by root) is quiet that long while it runs.
const IDLE: Duration = Duration::from_secs(4);

fn settings() -> String {
    format!(
        "[correlator]\nallowed_lateness = \"30s\"\nidle_timeout = \"{}s\"\n",
        IDLE.as_secs()
    )
}

/// The feed: a simulated scenario lying in the past, and what one replay of it raises
/// with every deadline up to an hour ago evaluated (live, deadlines come due up to the
/// wall clock).
fn scenario(dir: &Path, seed: u64) -> (Vec<IdentityEvent>, Alerts) {
    let events = generate(&Scenario::new(seed, 240));
    let as_of = Micros::now().minus(Span::hours(1));
    let expected = replay_alerts(&write_events(dir, &events), &as_of.to_string(), dir);
    assert!(expected.len() > 30, "{}", expected.len());
    (events, expected)
}

/// Produces `events` at 1,000/s on a thread, keyed by root.
fn feed(cfg: &Config, events: &[IdentityEvent]) -> std::thread::JoinHandle<u64> {
    let (cfg, events) = (cfg.clone(), events.to_vec());
    std::thread::spawn(move || produce_keyed(&cfg, &events, 1_000, Keys::Root).unwrap())
}

/// Reads the alerts topic until every expected alert is there, then compares (`log`
/// gives the log to show when they differ).
fn same_as_replay(broker: &Broker, expected: &Alerts, log: impl Fn() -> PathBuf) {
    let records = read_until(
        &broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(120),
        |r| {
            let got = alerts(r);
            expected.keys().all(|k| got.contains_key(k))
        },
    );
    assert_same_alerts(&alerts(&records), expected, &log());
}

#[test]
fn a_broker_frozen_mid_stream_raises_nothing_a_replay_does_not() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 1);
    broker.create_topics(&OUTPUTS, 1);
    let cfg_path = config(dir.path(), &broker, &settings());
    let cfg = Config::load(&cfg_path).unwrap();
    let (events, expected) = scenario(dir.path(), 13);

    let (state, log) = (dir.path().join("state"), dir.path().join("run.log"));
    let child = run(&cfg_path, &state, &log);
    let feeder = feed(&cfg, &events);
    std::thread::sleep(Duration::from_millis(2_500));
    broker.freeze();
    std::thread::sleep(IDLE * 2);
    broker.thaw();
    assert_eq!(feeder.join().unwrap(), events.len() as u64);
    same_as_replay(&broker, &expected, || log.clone());
    terminate(child, &log);
}

/// A group of two members (keyed by root, two partitions a topic) holding partitions,
/// and the feed of scenario `seed` on its way to them.
struct Group {
    dir: tempfile::TempDir,
    broker: Broker,
    expected: Alerts,
    a: Member,
    b: Member,
    feeder: std::thread::JoinHandle<u64>,
    events: usize,
}

impl Group {
    fn start(seed: u64) -> Group {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::memory(dir.path());
        broker.create_topics(&INPUTS, 2);
        broker.create_topics(&OUTPUTS, 1);
        let cfg_path = group_config(dir.path(), &broker, Keys::Root, &settings());
        let cfg = Config::load(&cfg_path).unwrap();
        let (events, expected) = scenario(dir.path(), seed);
        let a = Member::start(dir.path(), &cfg_path, "a");
        let b = Member::start(dir.path(), &cfg_path, "b");
        wait_until(
            "both members hold partitions",
            Duration::from_secs(60),
            &[&a, &b],
            || [&a, &b].iter().all(|m| m.held_partitions()),
        );
        let feeder = feed(&cfg, &events);
        Group {
            dir,
            broker,
            expected,
            a,
            b,
            feeder,
            events: events.len(),
        }
    }

    /// Once the feed is through, the alerts equal one replay's; the members stop, and
    /// a's log is returned.
    fn same_as_replay(self) -> String {
        assert_eq!(self.feeder.join().unwrap(), self.events as u64);
        let (a, b) = (&self.a, &self.b);
        same_as_replay(&self.broker, &self.expected, || {
            logs_of(&[a, b], self.dir.path())
        });
        let text = self.a.text();
        self.a.stop();
        self.b.stop();
        text
    }
}

#[test]
fn a_broker_frozen_under_a_group_raises_nothing_a_replay_does_not() {
    let _one = serial();
    let group = Group::start(17);
    std::thread::sleep(Duration::from_millis(2_500));
    group.broker.freeze();
    std::thread::sleep(IDLE * 2);
    group.broker.thaw();
    group.same_as_replay();
}

#[test]
fn a_member_frozen_past_the_session_timeout_gives_its_partitions_up() {
    let _one = serial();
    let group = Group::start(19);
    std::thread::sleep(Duration::from_millis(2_000));
    // Three session timeouts (6 s): the group gives a's partitions to b meanwhile.
    group.a.freeze();
    std::thread::sleep(Duration::from_secs(18));
    group.a.thaw();
    let a = group.same_as_replay();
    assert!(
        a.contains("joining the group again"),
        "a said it gave its partitions up on waking: {a}"
    );
}

/// The members' logs, joined into one file in `dir`.
fn logs_of(members: &[&Member], dir: &Path) -> PathBuf {
    let path = dir.join("members.log");
    let text: Vec<String> = members.iter().map(|m| m.text()).collect();
    std::fs::write(&path, text.join("\n---\n")).unwrap();
    path
}

/// A member started while the broker is frozen (SIGSTOP) cannot read the source topics'
/// partitions: it waits for the broker, saying so, with `/readyz` 503, and does not exit;
/// once the broker runs on it joins, and its alerts equal one replay's.
fn started_while_the_broker_is_frozen(group: bool, seed: u64) {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 2);
    broker.create_topics(&OUTPUTS, 1);
    let cfg_path = match group {
        true => group_config(dir.path(), &broker, Keys::Root, &settings()),
        false => config(dir.path(), &broker, &settings()),
    };
    let port = free_port();
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    let text = text.replace(
        "listen = \"off\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&cfg_path, text).unwrap();
    let cfg = Config::load(&cfg_path).unwrap();
    let (events, expected) = scenario(dir.path(), seed);
    // The feed is a backlog on the broker before the member starts.
    assert_eq!(
        produce_keyed(&cfg, &events, 0, Keys::Root).unwrap(),
        events.len() as u64
    );

    broker.freeze();
    let mut member = Member::start(dir.path(), &cfg_path, "a");
    let log = member.log.clone();
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = std::time::Instant::now();
    while !said().contains("the broker does not answer yet") {
        assert!(
            member.running(),
            "the member exited while the broker was frozen:\n{}",
            said()
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the member never said it waits for the broker:\n{}",
            said()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = support::http::get(port, "/readyz").expect("the API answers");
    assert_eq!(status, 503, "/readyz while waiting for the broker: {body}");
    // Longer than the member's first attempt and its first backoffs.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        member.running(),
        "the member exited while the broker was frozen:\n{}",
        said()
    );
    broker.thaw();
    same_as_replay(&broker, &expected, || log.clone());
    support::http::wait_for(port, "/readyz", Duration::from_secs(60), &log, |s, _| {
        s == 200
    });
    member.stop();
}

#[test]
fn a_member_started_while_the_broker_is_frozen_waits_for_it_then_joins() {
    started_while_the_broker_is_frozen(true, 23);
}

#[test]
fn an_instance_started_while_the_broker_is_frozen_waits_for_it_then_runs() {
    started_while_the_broker_is_frozen(false, 29);
}
