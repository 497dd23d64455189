//! End-to-end replay harness (not a criterion bench): simulates a scenario of a given
//! estate size, replays it with the release binary (state in RocksDB), and prints
//! events/s and peak RSS as the binary reports them, one summary line per size.
//!
//! `cargo bench --bench replay_e2e` runs the ~100k-identity scenario;
//! `LOCKSTEP_E2E_IDENTITIES=100k,400k,1.3M` runs each of the sizes the README's table
//! reports (`LOCKSTEP_E2E_CONFIG=FILE` replays with that configuration, e.g. another
//! `[state] memory_budget`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The scenarios by estate size: `lockstep simulate` seed, accounts and uses per key.
const SCENARIOS: [(&str, &str, &str, &str); 3] = [
    ("100k", "42", "16000", "25"),
    ("400k", "99", "60000", "8"),
    ("1.3M", "5", "200000", "2"),
];

fn main() {
    let sizes = std::env::var("LOCKSTEP_E2E_IDENTITIES").unwrap_or_else(|_| "100k".into());
    let config = std::env::var("LOCKSTEP_E2E_CONFIG").ok();
    let mut summary = Vec::new();
    for size in sizes.split(',').map(str::trim) {
        let Some(&(_, seed, accounts, uses)) = SCENARIOS.iter().find(|s| s.0 == size) else {
            eprintln!("LOCKSTEP_E2E_IDENTITIES: unknown size {size:?}: use 100k, 400k or 1.3M");
            std::process::exit(2);
        };
        summary.push(format!(
            "{size:>5} identities: {}",
            run(seed, accounts, uses, config.as_deref())
        ));
    }
    for line in summary {
        println!("{line}");
    }
}

/// Simulates and replays one scenario; the replay's summary line.
fn run(seed: &str, accounts: &str, uses: &str, config: Option<&str>) -> String {
    let bin = env!("CARGO_BIN_EXE_lockstep");
    let dir = tempfile::tempdir().expect("temp dir");
    let events = dir.path().join("events.jsonl");
    let sim = Command::new(bin)
        .args(["simulate", "--seed", seed, "--accounts", accounts])
        .args(["--uses-per-key", uses, "--out"])
        .arg(&events)
        .output()
        .expect("simulate runs");
    check(&sim);
    print!("{}", String::from_utf8_lossy(&sim.stderr));
    println!("identities: {}", identities(&events));
    let started = Instant::now();
    let mut replay = Command::new(bin);
    replay
        .args(["replay", "--input"])
        .arg(&events)
        .arg("--alerts")
        .arg(dir.path().join("alerts.ndjson"))
        .arg("--state")
        .arg(dir.path().join("state"));
    if let Some(config) = config {
        replay.args(["--config", config]);
    }
    let run = replay.output().expect("replay runs");
    check(&run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    print!("{stderr}");
    println!(
        "wall clock including start-up: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    stderr
        .lines()
        .rfind(|l| l.contains("events/s"))
        .and_then(|l| l.split("replay: ").nth(1))
        .unwrap_or("(no summary)")
        .to_owned()
}

fn check(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The distinct entities of a JSON-lines scenario.
fn identities(events: &Path) -> usize {
    let text = std::fs::read_to_string(events).expect("events");
    let mut set = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(start) = line.find("\"entity\":\"") {
            let rest = &line[start + 10..];
            set.insert(&rest[..rest.find('"').unwrap_or(0)]);
        }
    }
    set.len()
}
