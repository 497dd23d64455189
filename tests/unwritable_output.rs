//! An output topic that refuses writes, end to end against the durable tansu build
//! (which creates no topic by itself): the alerts topic does not exist, so the broker
//! takes none of the alerts (librdkafka holds them, then reports them failed, and
//! lockstep sends them again). `lockstep run` keeps what it cannot send in its outbox,
//! pauses consumption once `[sinks] max_outbox` outputs await an acknowledgement (saying
//! so, in the log and `lockstep_outbox_pending`), and once the topic is created
//! delivers everything: the alerts, de-duplicated by `alert_id`, equal one replay's.
//!
//! Why not a topic deleted mid-stream: tansu's `DeleteTopics` empties the other topics
//! too (measured: after `tansu topic delete` of one topic, another topic's high
//! watermark went from 2 to 0 and a produce to it was never acknowledged).

mod support;

use std::time::{Duration, Instant};

use lockstep::simulate::{generate, Scenario};
use lockstep::time::{Micros, Span};
use support::http::{api_config, get, sample};
use support::*;

/// The outputs awaiting an acknowledgement past which consumption pauses: small, so
/// the alerts a stream raises as it goes (most come due when it has ended) reach it
/// early in the feed.
const MAX_OUTBOX: usize = 10;
const ALERTS: &str = "lockstep.alerts";

/// The sum of every sample of `name` on a `/metrics` page.
fn total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn an_alerts_topic_that_refuses_writes_pauses_consumption_at_max_outbox_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::durable(dir.path());
    broker.create_topics(&INPUTS, 2);
    broker.create_topics(&["lockstep.cases", "lockstep.dead-letters"], 1);
    let port = free_port();
    let settings = format!(
        "[correlator]\nallowed_lateness = \"30s\"\nidle_timeout = \"1s\"\n[sinks]\nmax_outbox = {MAX_OUTBOX}\n"
    );
    let cfg_path = api_config(dir.path(), &broker, port, &settings, &[]);
    let cfg = lockstep::config::Config::load(&cfg_path).unwrap();
    let events = generate(&Scenario::new(37, 600));
    let as_of = Micros::now().minus(Span::hours(1)).to_string();
    let expected = replay_alerts(&write_events(dir.path(), &events), &as_of, dir.path());
    assert!(expected.len() > 10 * MAX_OUTBOX, "{}", expected.len());
    // Killed if the test fails before it stops it.
    let member = support::group::Member::start(dir.path(), &cfg_path, "a");
    let log = member.log.clone();
    // A steady feed, which goes on while consumption is paused.
    let feeder = {
        let events = events.clone();
        std::thread::spawn(move || lockstep::live::feed::produce(&cfg, &events, 500).unwrap())
    };
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    // The outbox fills up to the bound with alerts, and consumption pauses there while
    // the feed goes on: nothing consumed for 3 s, with records waiting and the bound met.
    let metrics = || get(port, "/metrics").map(|(_, m)| m).unwrap_or_default();
    let started = Instant::now();
    let mut seen: Vec<(Instant, f64)> = Vec::new();
    loop {
        let now = metrics();
        let consumed = total(&now, "lockstep_events_total");
        seen.push((Instant::now(), consumed));
        let still = seen
            .iter()
            .filter(|(t, _)| t.elapsed() <= Duration::from_secs(3))
            .all(|&(_, c)| c == consumed);
        if still
            && seen[0].0.elapsed() > Duration::from_secs(3)
            && sample(&now, "lockstep_outbox_pending").is_some_and(|n| n >= MAX_OUTBOX as f64)
            && total(&now, "lockstep_consumer_lag_records") > 0.0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "consumption never paused at max_outbox with records waiting: {now}\n{}",
            said()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        said().contains("the broker has not acknowledged max_outbox outputs"),
        "{}",
        said()
    );

    broker.create_topics(&[ALERTS], 1);
    assert_eq!(feeder.join().unwrap(), events.len() as u64);
    let records = read_until(&broker.brokers(), ALERTS, Duration::from_secs(120), |r| {
        let got = alerts(r);
        expected.keys().all(|k| got.contains_key(k))
    });
    assert!(
        said().contains("outputs acknowledged again: consuming"),
        "{}",
        said()
    );
    member.stop();
    assert_same_alerts(&alerts(&records), &expected, &log);
}
