//! End-to-end throughput harness of `lockstep run` through a co-located tansu broker
//! (not a criterion bench): pre-loads the source topics with a simulated scenario, starts
//! the pipeline, and reports events/s until every event is consumed and correlated,
//! the alerts produced, and the pipeline's peak RSS.
//!
//! `cargo bench --bench live_e2e` (`LOCKSTEP_E2E_ACCOUNTS` sets the size, 16000 ≈ 1M
//! events over ~100k identities; `LOCKSTEP_E2E_USES` the usage records per key, 25;
//! `LOCKSTEP_E2E_SEED` the scenario, 42. The replay harness's ~1.3M identities:
//! `LOCKSTEP_E2E_ACCOUNTS=200000 LOCKSTEP_E2E_USES=2 LOCKSTEP_E2E_SEED=5`;
//! `LOCKSTEP_E2E_MAX_HELD` sets `[correlator] max_held_events`, 500000).
//! `LOCKSTEP_E2E_STATE=DIR` starts the (single) instance on a copy of state directory DIR:
//! an estate already known, whose identities the feed does not name.
//! `LOCKSTEP_E2E_INSTANCES=N` runs N members of one group (`[kafka] assignment =
//! "group"`, six partitions per topic, started together) instead of one instance that
//! assigns itself every partition, and also reports their CPU time per event;
//! `LOCKSTEP_E2E_KEYS=entity` keys the records by entity id, routed by root through a
//! repartition topic of six partitions (`[kafka] repartition_topic`).
//! `LOCKSTEP_E2E_STAGE=router` (with `LOCKSTEP_E2E_KEYS=entity`) runs the group's serial
//! part alone instead: the router of a member, in this process, on a thread pinned to
//! the last core, until every pre-loaded event is routed; it reports that thread's CPU
//! per event (issue 30: what one core sustains).

#[path = "../tests/support/mod.rs"]
mod support;

/// The allocator of the `lockstep` binary, for the stage run in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lockstep::config::Config;
use lockstep::live::feed::{produce_keyed, Keys};
use lockstep::simulate::{generate, Scenario};
use support::*;

fn metric(port: u16, name: &str) -> f64 {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let request = format!("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let _ = s.write_all(request.as_bytes());
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    sum_of(&body, name)
}

/// The sum of the samples of metric `name` in a Prometheus text `body`.
fn sum_of(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The group's router alone (`LOCKSTEP_E2E_STAGE=router`), over the source topics of
/// the config at `cfg_path` holding `total` events: its thread pinned to the last core,
/// until every event is routed and acknowledged; prints its CPU per event.
fn router_alone(cfg_path: &std::path::Path, dir: &std::path::Path, total: f64) {
    use std::sync::Arc;

    use lockstep::live::{Control, Pipeline};
    use lockstep::repartition::Router;
    use lockstep::store::Store;
    use lockstep::telemetry::Metrics;

    let config = Config::load(cfg_path).unwrap();
    let metrics = Arc::new(Metrics::new());
    let control = Control::default();
    let store = Store::open_with(&dir.join("router"), config.state.memory_budget).unwrap();
    let router = Router::new(ROUTES.into(), 6, store);
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (shutdown, thread_metrics) = (control.shutdown.clone(), metrics.clone());
    let started = Instant::now();
    let handle = std::thread::Builder::new()
        .name("router".into())
        .spawn(move || {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity only
            // write into the set and this thread's affinity.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cores - 1, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            Pipeline::router(config, thread_metrics, &control, router)
                .unwrap()
                .run(&control)
                .unwrap();
        })
        .unwrap();
    let tid = tid_rx.recv().unwrap();
    let thread_cpu = || {
        ticks_seconds(
            &std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default(),
        )
    };
    let mut consumed = None;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let body = metrics.render();
        let seen = sum_of(&body, "lockstep_events_total");
        if seen >= total {
            consumed.get_or_insert((started.elapsed().as_secs_f64(), thread_cpu()));
            if sum_of(&body, "lockstep_held_events") == 0.0
                && sum_of(&body, "lockstep_outbox_pending") == 0.0
            {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "stalled at {seen} events"
        );
    }
    let (secs, consumed_cpu) = consumed.unwrap();
    let cpu = thread_cpu();
    shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
    handle.join().unwrap();
    println!("router alone: consumed {total} events in {secs:.2} s ({:.0} events/s, start-up included; router thread CPU {consumed_cpu:.2} s by then)", total / secs);
    println!(
        "router alone: thread CPU {cpu:.2} s until every event was routed and acknowledged: {:.2} µs per event, {:.0} events/s on one core",
        cpu * 1e6 / total,
        total / cpu
    );
}

/// The number in environment variable `name`, or `default`.
fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A config for one instance with its API on `api` (and, in a group, its membership).
fn instance_config(
    dir: &std::path::Path,
    broker: &Broker,
    api: u16,
    group: bool,
    keys: Keys,
) -> PathBuf {
    let held: usize = setting("LOCKSTEP_E2E_MAX_HELD", 500_000);
    let cfg_path = config(
        dir,
        broker,
        &format!(
            "[correlator]\nallowed_lateness = \"30s\"\nidle_timeout = \"2s\"\nmax_held_events = {held}\n"
        ),
    );
    let mut text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("listen = \"off\"", &format!("listen = \"127.0.0.1:{api}\""));
    if group {
        let routes = match keys {
            Keys::Entity => format!("repartition_topic = \"{ROUTES}\"\n"),
            Keys::Root => String::new(),
        };
        text = text.replacen(
            "[kafka.properties]\n",
            &format!("assignment = \"group\"\n{routes}[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n"),
            1,
        );
    }
    let path = dir.join(format!("lockstep-{api}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// User + system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    ticks_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// User + system CPU seconds of a process's or a thread's `stat` line.
fn ticks_seconds(stat: &str) -> f64 {
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// User + system CPU seconds of the live threads of process `pid`, by thread name with
/// its digits dropped (`rdk:broker3` → `rdk:broker`): the stages of a member — the
/// `router`, the shards on the main thread, librdkafka's and RocksDB's threads. A thread
/// takes its creator's name unless given one, and the time of threads that ended counts
/// only in the process's total.
fn cpu_by_thread(pid: u32) -> BTreeMap<String, f64> {
    let mut by = BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name: String = stat[open + 1..close]
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        *by.entry(name).or_insert(0.0) += ticks_seconds(&stat);
    }
    by
}

/// The repartition topic of `LOCKSTEP_E2E_KEYS=entity`.
const ROUTES: &str = "lockstep.repartition";

fn main() {
    let accounts: u32 = setting("LOCKSTEP_E2E_ACCOUNTS", 16_000);
    let instances: usize = setting("LOCKSTEP_E2E_INSTANCES", 0);
    let keys = match std::env::var("LOCKSTEP_E2E_KEYS").as_deref() {
        Ok("entity") => Keys::Entity,
        _ => Keys::Root,
    };
    assert!(
        keys == Keys::Root || instances > 0,
        "LOCKSTEP_E2E_KEYS=entity needs LOCKSTEP_E2E_INSTANCES"
    );
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, if instances > 0 { 6 } else { 2 });
    broker.create_topics(&OUTPUTS, 1);
    if keys == Keys::Entity {
        broker.create_topics(&[ROUTES], 6);
    }
    let apis: Vec<u16> = (0..instances.max(1)).map(|_| free_port()).collect();
    let configs: Vec<PathBuf> = apis
        .iter()
        .map(|&api| instance_config(dir.path(), &broker, api, instances > 0, keys))
        .collect();
    let cfg = Config::load(&configs[0]).unwrap();
    let events = generate(&Scenario {
        uses_per_key: setting("LOCKSTEP_E2E_USES", 25),
        ..Scenario::new(setting("LOCKSTEP_E2E_SEED", 42), accounts)
    });
    let started = Instant::now();
    produce_keyed(&cfg, &events, 0, keys).unwrap();
    let produce_secs = started.elapsed().as_secs_f64();
    println!(
        "pre-loaded {} events in {produce_secs:.1} s ({:.0} events/s)",
        events.len(),
        events.len() as f64 / produce_secs
    );

    if let Ok(known) = std::env::var("LOCKSTEP_E2E_STATE") {
        let copied = std::process::Command::new("cp")
            .arg("-r")
            .arg(&known)
            .arg(dir.path().join("state-0"))
            .status()
            .unwrap();
        assert!(copied.success(), "copying {known}");
    }
    if std::env::var("LOCKSTEP_E2E_STAGE").as_deref() == Ok("router") {
        assert!(
            keys == Keys::Entity,
            "LOCKSTEP_E2E_STAGE=router needs LOCKSTEP_E2E_KEYS=entity"
        );
        return router_alone(&configs[0], dir.path(), events.len() as f64);
    }
    let started = Instant::now();
    let children: Vec<_> = configs
        .iter()
        .enumerate()
        .map(|(i, cfg_path)| {
            let log = dir.path().join(format!("run-{i}.log"));
            (
                run(cfg_path, &dir.path().join(format!("state-{i}")), &log),
                log,
            )
        })
        .collect();
    let sum = |name: &str| apis.iter().map(|&api| metric(api, name)).sum::<f64>();
    let total = events.len() as f64;
    // Events consumed again after a hand-over count twice: in a group, done is when
    // every shard has caught up.
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let seen = sum("lockstep_events_total");
        let joined = instances == 0
            || apis
                .iter()
                .all(|&api| metric(api, "lockstep_assigned_partitions") > 0.0);
        if seen >= total && joined && sum("lockstep_restoring_shards") == 0.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "stalled at {seen} events"
        );
    }
    let consumed = started.elapsed().as_secs_f64();
    let busy = || {
        sum("lockstep_held_events") > 0.0
            || sum("lockstep_outbox_pending") > 0.0
            || sum("lockstep_deadline_backlog") > 0.0
    };
    // Settled once nothing is held, in flight or due, and no alert came for 2 s (routed
    // records on their way to a shard are in none of these gauges): then since the
    // first quiet sample.
    let mut quiet: Option<(f64, f64)> = None;
    let settled = loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = started.elapsed().as_secs_f64();
        let alerts = sum("lockstep_alerts_total");
        quiet = match quiet {
            _ if busy() => None,
            Some((since, seen)) if seen == alerts => {
                if now - since >= 2.0 {
                    break since;
                }
                Some((since, seen))
            }
            _ => Some((now, alerts)),
        };
    };
    let rss: Vec<u64> = children.iter().map(|(c, _)| peak_rss_mib(c.id())).collect();
    let cpu: f64 = children.iter().map(|(c, _)| cpu_seconds(c.id())).sum();
    let mut threads = BTreeMap::new();
    for (child, _) in &children {
        for (name, secs) in cpu_by_thread(child.id()) {
            *threads.entry(name).or_insert(0.0) += secs;
        }
    }
    let live: f64 = threads.values().sum();
    threads.insert("(threads that ended)".into(), cpu - live);
    let alerts = sum("lockstep_alerts_total");
    let decoded = sum("lockstep_events_total");
    for (child, log) in children {
        terminate(child, &log);
    }
    println!("consumed {total} events in {consumed:.2} s: {:.0} events/s (start-up and assignment included; {} instance(s))", total / consumed, instances.max(1));
    println!("all released, correlated and {alerts} alerts delivered after {settled:.2} s; peak RSS {rss:?} MiB");
    println!(
        "CPU {cpu:.1} s in all: {:.1} µs per event ({decoded} events decoded, hand-overs included)",
        cpu * 1e6 / total
    );
    for (name, secs) in threads {
        println!(
            "  CPU of {name}: {secs:.1} s, {:.2} µs per event",
            secs * 1e6 / total
        );
    }
}
