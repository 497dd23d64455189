//! End-to-end replay harness (not a criterion bench): simulates a scenario of about a
//! million events over about a hundred thousand identities, replays it with the release
//! binary (state in RocksDB), and prints events/s and peak RSS as the binary reports them.
//!
//! `cargo bench --bench replay_e2e` (set `LOCKSTEP_E2E_ACCOUNTS` to change the size).

use std::process::Command;
use std::time::Instant;

fn main() {
    let accounts = std::env::var("LOCKSTEP_E2E_ACCOUNTS").unwrap_or_else(|_| "16000".into());
    let bin = env!("CARGO_BIN_EXE_lockstep");
    let dir = tempfile::tempdir().expect("temp dir");
    let events = dir.path().join("events.jsonl");
    let alerts = dir.path().join("alerts.ndjson");
    let state = dir.path().join("state");
    let sim = Command::new(bin)
        .args([
            "simulate",
            "--seed",
            "42",
            "--accounts",
            &accounts,
            "--uses-per-key",
            "25",
            "--out",
        ])
        .arg(&events)
        .output()
        .expect("simulate runs");
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    print!("{}", String::from_utf8_lossy(&sim.stderr));
    let identities = {
        let text = std::fs::read_to_string(&events).expect("events");
        let mut set = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(start) = line.find("\"entity\":\"") {
                let rest = &line[start + 10..];
                set.insert(rest[..rest.find('"').unwrap_or(0)].to_owned());
            }
        }
        set.len()
    };
    println!("identities: {identities}");
    let started = Instant::now();
    let run = Command::new(bin)
        .args(["replay", "--input"])
        .arg(&events)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--state")
        .arg(&state)
        .output()
        .expect("replay runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    print!("{}", String::from_utf8_lossy(&run.stderr));
    println!(
        "wall clock including start-up: {:.2} s",
        started.elapsed().as_secs_f64()
    );
}
