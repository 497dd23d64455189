//! End-to-end throughput harness of `lockstep run` through a co-located tansu broker
//! (not a criterion bench): pre-loads the source topics with a simulated scenario, starts
//! the pipeline, and reports events/s until every event is consumed and correlated,
//! the alerts produced, and the pipeline's peak RSS.
//!
//! `cargo bench --bench live_e2e` (`LOCKSTEP_E2E_ACCOUNTS` sets the size, 16000 ≈ 1M
//! events over ~100k identities; `LOCKSTEP_E2E_USES` the usage records per key, 25;
//! `LOCKSTEP_E2E_SEED` the scenario, 42. The replay harness's ~1.3M identities:
//! `LOCKSTEP_E2E_ACCOUNTS=200000 LOCKSTEP_E2E_USES=2 LOCKSTEP_E2E_SEED=5`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use lockstep::config::Config;
use lockstep::live::feed::produce;
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
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The number in environment variable `name`, or `default`.
fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let accounts: u32 = setting("LOCKSTEP_E2E_ACCOUNTS", 16_000);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 2);
    broker.create_topics(&OUTPUTS, 1);
    let api = free_port();
    let cfg_path = config(
        dir.path(),
        &broker,
        "[correlator]\nallowed_lateness = \"30s\"\nidle_timeout = \"2s\"\n",
    );
    let text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("listen = \"off\"", &format!("listen = \"127.0.0.1:{api}\""));
    std::fs::write(&cfg_path, text).unwrap();
    let cfg = Config::load(&cfg_path).unwrap();
    let events = generate(&Scenario {
        uses_per_key: setting("LOCKSTEP_E2E_USES", 25),
        ..Scenario::new(setting("LOCKSTEP_E2E_SEED", 42), accounts)
    });
    let started = Instant::now();
    produce(&cfg, &events, 0).unwrap();
    let produce_secs = started.elapsed().as_secs_f64();
    println!(
        "pre-loaded {} events in {produce_secs:.1} s ({:.0} events/s)",
        events.len(),
        events.len() as f64 / produce_secs
    );

    let log = dir.path().join("run.log");
    let child = run(&cfg_path, &dir.path().join("state"), &log);
    let started = Instant::now();
    let total = events.len() as f64;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let seen = metric(api, "lockstep_events_total");
        if seen >= total {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "stalled at {seen} events"
        );
    }
    let consumed = started.elapsed().as_secs_f64();
    while metric(api, "lockstep_held_events") > 0.0 || metric(api, "lockstep_outbox_pending") > 0.0
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let settled = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib(child.id());
    let alerts = metric(api, "lockstep_alerts_total");
    terminate(child, &log);
    println!("consumed {total} events in {consumed:.2} s: {:.0} events/s (start-up and group-free assignment included)", total / consumed);
    println!("all released, correlated and {alerts} alerts delivered after {settled:.2} s; peak RSS {} MiB", rss);
}
