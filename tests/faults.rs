//! Faults that are not crashes, end to end against a real tansu broker: a schema
//! registry that answers 503 for a while, a state directory whose filesystem fills up.
//! In each, `lockstep run` pauses what it cannot do, resumes by itself, and raises the
//! alerts one replay of the same events raises: none lost, none extra, no dead letter.
//! The scenarios share two cores, so they run one at a time.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep::event::{IdentityEvent, System};
use lockstep::simulate::{generate, Scenario};
use lockstep::time::{Micros, Span};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use support::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

const FAST: &str = "[correlator]\nallowed_lateness = \"30s\"\nidle_timeout = \"1s\"\n";

/// The schema id the MDM records are framed with.
const SCHEMA_ID: u32 = 1;

/// An instant after every deadline of a simulated scenario, and before now − lateness.
fn as_of_after(events: &[IdentityEvent]) -> String {
    let latest = events.iter().map(|e| e.time).max().unwrap();
    let after = latest.plus(Span::hours(24 * 2));
    assert!(after < Micros::now().minus(Span::hours(1)));
    after.to_string()
}

/// A schema registry stand-in on loopback: `GET /schemas/ids/1` answers 503 until
/// `outage` has passed since the first request, then the canonical event schema.
struct Registry {
    url: String,
    unavailable: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Registry {
    fn start(outage: Duration) -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let unavailable = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (down, up, done) = (unavailable.clone(), served.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut first = None;
            while !done.load(Ordering::SeqCst) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(n) if n > 0 => request.extend_from_slice(&chunk[..n]),
                        _ => break,
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let since = *first.get_or_insert_with(Instant::now);
                let (status, body) = if !line.starts_with(&format!("GET /schemas/ids/{SCHEMA_ID} "))
                {
                    (
                        404,
                        r#"{"error_code":40403,"message":"Schema not found"}"#.to_owned(),
                    )
                } else if since.elapsed() < outage {
                    down.fetch_add(1, Ordering::SeqCst);
                    (
                        503,
                        r#"{"error_code":50302,"message":"registry restarting"}"#.to_owned(),
                    )
                } else {
                    up.fetch_add(1, Ordering::SeqCst);
                    let schema = lockstep::decode::avro::IDENTITY_EVENT_SCHEMA;
                    (200, serde_json::json!({ "schema": schema }).to_string())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Registry {
            url,
            unavailable,
            served,
            stop,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Produces `events` to `lockstep.<system>`, keyed by entity: canonical JSON, but MDM
/// events as canonical Avro framed with schema id [`SCHEMA_ID`] (looked up in the
/// registry).
fn produce_framed(broker: &Broker, events: &[IdentityEvent]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    for ev in events {
        let payload = match ev.system {
            System::Mdm => {
                let mut framed = vec![0];
                framed.extend(SCHEMA_ID.to_be_bytes());
                framed.extend(lockstep::decode::avro::encode_datum(ev).unwrap());
                framed
            }
            _ => lockstep::decode::json::encode(ev).into_bytes(),
        };
        let topic = format!("lockstep.{}", ev.system.as_str());
        producer
            .send(BaseRecord::to(&topic).key(&ev.entity).payload(&payload))
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// The MDM source of the harness's config reads its schemas from `registry`.
fn with_registry(config: &Path, registry: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replacen(
        "format = \"canonical-avro\"\n",
        &format!("format = \"canonical-avro\"\nschema_registry = \"{registry}\"\n"),
        1,
    );
    std::fs::write(config, text).unwrap();
}

/// A registry outage of 6 s (six times `idle_timeout`) while a backlog is read: the MDM
/// partitions wait for it, holding the watermark, and their records are read when it
/// answers again: no dead letter, and the alerts of one replay.
#[test]
fn a_registry_outage_pauses_its_partitions_and_loses_nothing() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 2);
    broker.create_topics(&OUTPUTS, 1);
    let registry = Registry::start(Duration::from_secs(6));
    let cfg_path = config(dir.path(), &broker, FAST);
    with_registry(&cfg_path, &registry.url);
    let events = generate(&Scenario::new(11, 60));
    assert!(events.iter().filter(|e| e.system == System::Mdm).count() > 20);
    let expected = replay_alerts(
        &write_events(dir.path(), &events),
        &as_of_after(&events),
        dir.path(),
    );
    assert!(expected.len() > 10);
    produce_framed(&broker, &events);

    let log = dir.path().join("run.log");
    let child = run(&cfg_path, &dir.path().join("state"), &log);
    let records = read_until(
        &broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(90),
        |r| alerts(r).len() >= expected.len(),
    );
    let dead = read_until(
        &broker.brokers(),
        "lockstep.dead-letters",
        Duration::from_secs(3),
        |r| !r.is_empty(),
    );
    terminate(child, &log);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        registry.unavailable.load(Ordering::SeqCst) >= 2,
        "the outage was met, and asked about again: {log_text}"
    );
    assert!(registry.served.load(Ordering::SeqCst) >= 1);
    assert!(
        dead.is_empty(),
        "no dead letter: {:?}\n{log_text}",
        dead.iter().map(|d| &d.2).collect::<Vec<_>>()
    );
    assert!(
        log_text.contains("partition paused at this record"),
        "{log_text}"
    );
    assert_same_alerts(&alerts(&records), &expected, &log);
}
