//! Alert latency under load (not a criterion bench): `lockstep run` against a co-located
//! tansu broker while a producer feeds events stamped "now" at a sustained rate (default
//! 100,000 events/s for 60 s). Most events are key usage spread over every partition; every
//! 10 ms of the measured window an offboarding story is woven in — a vault token issued under a service account,
//! then the account disabled in IAM — whose vault echo never comes, so an `echo_missing`
//! falls due 2 s later. The harness reads the alerts topic and reports, for those alerts,
//! the latency from the deadline to the alert's arrival (allowed_lateness, 500 ms unless
//! changed, is part of it by design), with the consumed rate and the pipeline's peak RSS.
//!
//! `cargo bench --bench live_latency` (`LOCKSTEP_RATE`, `LOCKSTEP_SECONDS`,
//! `LOCKSTEP_LATENESS_MS`, `LOCKSTEP_PARTITIONS` per input topic, 1 unless changed, to
//! change). With `LOCKSTEP_BARE=1` no pipeline runs: a bare consumer of the input topics
//! reports the delay from send to receipt instead — the share of the latency that
//! producer, broker and consumer client take on this machine. That share grows with the
//! partitions and with the run's length: the memory broker's cost per record climbs as
//! its log grows, and more partitions mean more, smaller batches (bare, 60 s at 100k/s:
//! p99 0.64 s with one partition per topic, 1.6–1.8 s with two, 3.3 s with eight).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep::config::Config;
use lockstep::event::{Action, EntityKind, IdentityEvent, Outcome, System};
use lockstep::time::Micros;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::*;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(
    id: u64,
    system: System,
    entity: String,
    kind: EntityKind,
    action: Action,
    parent: Option<String>,
) -> IdentityEvent {
    IdentityEvent {
        event_id: format!("e{id}"),
        system,
        source: "bench".into(),
        time: Micros::now(),
        entity,
        entity_kind: kind,
        action,
        outcome: Outcome::Success,
        parent,
        actor: None,
        attributes: Default::default(),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// "p50 …, p99 …, max …" of sorted, non-empty milliseconds.
fn spread(sorted: &[f64]) -> String {
    format!(
        "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(sorted, 0.5),
        percentile(sorted, 0.99),
        sorted[sorted.len() - 1]
    )
}

fn main() {
    let rate = env("LOCKSTEP_RATE", 100_000);
    let seconds = env("LOCKSTEP_SECONDS", 60);
    let lateness = env("LOCKSTEP_LATENESS_MS", 500);
    let bare = env("LOCKSTEP_BARE", 0) == 1;
    let partitions = env("LOCKSTEP_PARTITIONS", 1) as u32;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, partitions);
    broker.create_topics(&OUTPUTS, 1);
    let cfg_path = config(
        dir.path(),
        &broker,
        &format!(
            "[sla]\niam = \"off\"\nvault = \"2s\"\nmdm = \"off\"\nsiem = \"off\"\n\
             [correlator]\nallowed_lateness = \"{lateness}ms\"\nidle_timeout = \"2s\"\n"
        ),
    );
    // The mdm topic is canonical Avro in the shared config; this harness writes JSON.
    let text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("canonical-avro", "canonical-json");
    std::fs::write(&cfg_path, text).unwrap();
    let cfg = Config::load(&cfg_path).unwrap();
    let log = dir.path().join("run.log");
    let child = (!bare).then(|| run(&cfg_path, &dir.path().join("state"), &log));
    std::thread::sleep(Duration::from_secs(3));

    // Each alert's arrival after its deadline (bare: each 50th record's after its send),
    // in ms.
    let arrivals: Arc<Mutex<Vec<f64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (arrivals, stop, brokers) = (arrivals.clone(), stop.clone(), broker.brokers());
        std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", "latency-reader")
                .set("fetch.wait.max.ms", "10")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            if bare {
                for topic in INPUTS {
                    for p in 0..partitions as i32 {
                        tpl.add_partition_offset(topic, p, Offset::End).unwrap();
                    }
                }
            } else {
                tpl.add_partition_offset("lockstep.alerts", 0, Offset::Beginning)
                    .unwrap();
            }
            consumer.assign(&tpl).unwrap();
            let mut seen = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    let now = Micros::now();
                    if bare {
                        seen += 1;
                        if let (0, Some(sent)) = (seen % 50, m.timestamp().to_millis()) {
                            let delay = now.0 as f64 / 1000.0 - sent as f64;
                            arrivals.lock().unwrap().push(delay);
                        }
                        continue;
                    }
                    let alert: serde_json::Value =
                        serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
                    if let Some(d) = alert["deadline"]
                        .as_str()
                        .and_then(|d| Micros::parse(d).ok())
                    {
                        arrivals.lock().unwrap().push((now.0 - d.0) as f64 / 1000.0);
                    }
                }
            }
        })
    };

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "2000000")
        .create()
        .unwrap();
    let topic = |s: System| {
        cfg.sources
            .iter()
            .find(|x| x.system == s)
            .unwrap()
            .topic
            .clone()
    };
    let topics: Vec<(System, String)> = System::ALL.iter().map(|s| (*s, topic(*s))).collect();
    let started = Instant::now();
    let (mut sent, mut stories, mut id) = (0u64, 0u64, 0u64);
    let per_tick = (rate / 100).max(1);
    let send_raw = |payload: &[u8], key: &str, topic: &str| {
        let mut record = BaseRecord::to(topic).payload(payload).key(key);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(1));
                    record = r;
                }
            }
        }
    };
    let send = |ev: IdentityEvent, topic: &str| {
        send_raw(
            lockstep::decode::json::encode(&ev).as_bytes(),
            &ev.entity,
            topic,
        );
    };
    let (mut line, mut checked) = (String::new(), false);
    let mut tick = 0u64;
    // Stories during the measured window; load alone for 5 s more, so the last deadlines
    // fall due under the same load rather than after the feed went quiet (then the
    // watermark waits for idle_timeout, which the quiet-feed test covers).
    let window = Duration::from_secs(seconds);
    while started.elapsed() < window + Duration::from_secs(5) {
        let due = Duration::from_millis(tick * 10);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        tick += 1;
        if started.elapsed() < window {
            let sa = format!("sa-{tick}");
            id += 1;
            send(
                event(
                    id,
                    System::Vault,
                    format!("{sa}/token"),
                    EntityKind::Token,
                    Action::Issued,
                    Some(sa.clone()),
                ),
                &topics[1].1,
            );
            id += 1;
            send(
                event(
                    id,
                    System::Iam,
                    sa,
                    EntityKind::ServiceAccount,
                    Action::Disabled,
                    None,
                ),
                &topics[0].1,
            );
            stories += 1;
            sent += 2;
        }
        // The filler is most of the load: its JSON is written from a template, stamped
        // once a tick, so that the harness's own producer takes less of the cores
        // lockstep and the broker share (the first one is checked against the encoder).
        let stamp = Micros::now();
        let time = stamp.to_string();
        for n in 0..per_tick.saturating_sub(2) {
            let (system, topic) = &topics[(n % 4) as usize];
            id += 1;
            let key = format!("key-{}", (id * 7919) % 200_000);
            line.clear();
            write!(
                line,
                r#"{{"event_id":"e{id}","system":"{system}","source":"bench","time":"{time}","entity":"{key}","entity_kind":"api_key","action":"used","outcome":"success"}}"#
            )
            .unwrap();
            if !checked {
                let mut ev = event(
                    id,
                    *system,
                    key.clone(),
                    EntityKind::ApiKey,
                    Action::Used,
                    None,
                );
                ev.time = stamp;
                assert_eq!(lockstep::decode::json::decode(line.as_bytes()).unwrap(), ev);
                checked = true;
            }
            send_raw(line.as_bytes(), &key, topic);
            sent += 1;
        }
        producer.poll(Duration::ZERO);
    }
    let produced_for = started.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(30)).unwrap();
    // Let the last deadlines fall due (2 s SLA + lateness) and arrive.
    let wait = Instant::now();
    while (arrivals.lock().unwrap().len() as u64) < stories
        && wait.elapsed() < Duration::from_secs(if bare { 3 } else { 30 })
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let mut lat = arrivals.lock().unwrap().clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "produced {sent} events in {produced_for:.1} s ({:.0} events/s offered), {stories} offboardings",
        sent as f64 / produced_for
    );
    let Some(child) = child else {
        if lat.is_empty() {
            println!("no record arrived at the bare consumer");
            return;
        }
        println!(
            "bare consumer, no pipeline: delay from send to receipt over {} sampled records: {}",
            lat.len(),
            spread(&lat)
        );
        return;
    };
    let rss = peak_rss_mib(child.id());
    terminate(child, &log);
    if lat.is_empty() {
        println!("no alert arrived: the pipeline did not keep up");
        return;
    }
    println!(
        "{} of {stories} echo_missing alerts arrived; latency after the deadline: {} (allowed_lateness {lateness} ms included)",
        lat.len(),
        spread(&lat)
    );
    println!("peak RSS of lockstep run: {} MiB", rss);
}
