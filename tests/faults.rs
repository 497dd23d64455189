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

/// Live, every deadline up to the wall clock comes due (hygiene's too): a replay as of
/// an hour ago raises the same.
fn as_of_now() -> String {
    Micros::now().minus(Span::hours(1)).to_string()
}

/// A `lockstep run` that is killed if the test fails before it stops it.
struct Running(Option<std::process::Child>);

impl Running {
    fn start(config: &Path, state: &Path, log: &Path) -> Running {
        Running(Some(run(config, state, log)))
    }

    /// Stops it with SIGTERM and checks it exits 0.
    fn stop(mut self, log: &Path) {
        if let Some(child) = self.0.take() {
            terminate(child, log);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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

/// Whether `records` hold every alert of `expected`.
fn has_all(records: &[Record], expected: &Alerts) -> bool {
    let got = alerts(records);
    expected.keys().all(|id| got.contains_key(id))
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
    let expected = replay_alerts(&write_events(dir.path(), &events), &as_of_now(), dir.path());
    assert!(expected.len() > 10);
    produce_framed(&broker, &events);

    let log = dir.path().join("run.log");
    let child = Running::start(&cfg_path, &dir.path().join("state"), &log);
    let records = read_until(
        &broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(60),
        |r| has_all(r, &expected),
    );
    let dead = read_until(
        &broker.brokers(),
        "lockstep.dead-letters",
        Duration::from_secs(3),
        |r| !r.is_empty(),
    );
    child.stop(&log);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        dead.is_empty(),
        "no dead letter: {:?}\n{log_text}",
        dead.iter().map(|d| &d.2).collect::<Vec<_>>()
    );
    assert!(
        registry.unavailable.load(Ordering::SeqCst) >= 2
            && registry.served.load(Ordering::SeqCst) >= 1,
        "the outage was met, asked about again, and outlived: {log_text}"
    );
    assert!(
        log_text.contains("partition paused at this record"),
        "{log_text}"
    );
    assert_same_alerts(&alerts(&records), &expected, &log);
}

/// A tmpfs of `size_mib` mounted on `dir` (we run as root), unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size_mib: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount a tmpfs on {} (needs root)",
            dir.display()
        );
        Tmpfs(dir.to_owned())
    }

    /// Writes a file until the filesystem is full: its path.
    fn fill(&self) -> std::path::PathBuf {
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&chunk[..512]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// GETs `path` from the API at `addr`: the status and the body (0 and nothing when
/// nothing answers).
fn get(addr: &str, path: &str) -> (u16, String) {
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Polls `until` every 200 ms for `timeout`: whether it came true.
fn eventually(timeout: Duration, until: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if until() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// The state directory's filesystem fills up mid-stream: `lockstep run` stops consuming
/// and says why (`/readyz` 503, `lockstep_store_writable 0`, a log line) while the API
/// answers; once the space is freed it resumes by itself, and the alerts are one
/// replay's. The store opens cleanly afterwards.
#[test]
fn a_full_disk_pauses_the_run_until_space_is_freed_and_loses_nothing() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 2);
    broker.create_topics(&OUTPUTS, 1);
    let cfg_path = config(dir.path(), &broker, FAST);
    let addr = format!("127.0.0.1:{}", free_port());
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(
        &cfg_path,
        text.replace("listen = \"off\"", &format!("listen = \"{addr}\"")),
    )
    .unwrap();
    let cfg = lockstep::config::Config::load(&cfg_path).unwrap();
    let events = generate(&Scenario::new(5, 150));
    let expected = replay_alerts(&write_events(dir.path(), &events), &as_of_now(), dir.path());
    assert!(expected.len() > 20);

    let disk = Tmpfs::mount(&dir.path().join("disk"), 160);
    let state = dir.path().join("disk/state");
    let log = dir.path().join("run.log");
    let child = Running::start(&cfg_path, &state, &log);
    // A steady stream (as a live feed is), into which the disk fills up.
    let feeder = {
        let events = events.clone();
        std::thread::spawn(move || lockstep::live::feed::produce(&cfg, &events, 1_500).unwrap())
    };
    assert!(
        eventually(Duration::from_secs(60), || get(&addr, "/metrics")
            .1
            .lines()
            .any(
                |l| l.starts_with("lockstep_events_total") && !l.ends_with(" 0")
            )),
        "the stream is being consumed"
    );
    let filler = disk.fill();
    let full = eventually(Duration::from_secs(60), || get(&addr, "/readyz").0 == 503);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(full, "/readyz says the run is paused: {}", log_text());
    let (status, body) = get(&addr, "/readyz");
    assert!(
        status == 503 && body.contains("disk full"),
        "{status} {body}"
    );
    assert!(get(&addr, "/metrics")
        .1
        .contains("lockstep_store_writable 0"));
    assert_eq!(get(&addr, "/healthz").0, 200, "the API still answers");
    assert!(
        log_text().contains("the state directory takes no writes"),
        "{}",
        log_text()
    );

    std::fs::remove_file(filler).unwrap();
    assert_eq!(feeder.join().unwrap(), events.len() as u64);
    assert!(
        eventually(Duration::from_secs(60), || get(&addr, "/readyz").0 == 200),
        "resumed by itself: {}",
        log_text()
    );
    assert!(get(&addr, "/metrics")
        .1
        .contains("lockstep_store_writable 1"));
    let records = read_until(
        &broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(60),
        |r| has_all(r, &expected),
    );
    child.stop(&log);
    assert_same_alerts(&alerts(&records), &expected, &log);

    // The store is whole: it opens, and a run over it adds nothing.
    let child = Running::start(&cfg_path, &state, &log);
    assert!(eventually(Duration::from_secs(30), || get(
        &addr, "/readyz"
    )
    .0 == 200));
    std::thread::sleep(Duration::from_secs(3));
    child.stop(&log);
    let again = read_until(
        &broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(5),
        |_| false,
    );
    assert_same_alerts(&alerts(&again), &expected, &log);
}
