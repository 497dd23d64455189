//! `[state] memory_budget`: peak memory follows the budget, not the estate, and the
//! alerts do not depend on it — a replay whose state barely fits in memory (every
//! table cache evicted over and over, memtables flushed every few steps, rows read back
//! from SST files) equals one whose state stays in memory, and one written whole to a
//! state directory at every commit, byte for byte.

use std::path::Path;
use std::process::Command;

/// What a replay holds beyond the budget and the events held for ordering: the binary,
/// thread stacks, the allocator's slack, one step of changes and its write batch, the
/// input read ahead, RocksDB's index and filter blocks and the alerts of one instant
/// while they are written (docs/operating.md, Reliability).
const OVERHEAD_MIB: u64 = 320;
/// The most an event held for ordering costs, with its strings and the heap's slot.
const HELD_EVENT_BYTES: u64 = 1 << 10;

fn lockstep(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "lockstep {args:?} failed: {stderr}");
    stderr
}

fn config(dir: &Path, budget: &str) -> String {
    let text = std::fs::read_to_string("config/lockstep.toml").unwrap();
    let line = format!("memory_budget = \"{budget}\"");
    let text = text.replace("memory_budget = \"512MiB\"", &line);
    assert!(
        text.contains(&line),
        "config/lockstep.toml sets memory_budget"
    );
    let path = dir.join(format!("budget-{budget}.toml"));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Replays `events` under `budget`: the sorted alert lines and the peak RSS in MiB.
fn replay(dir: &Path, events: &str, budget: &str) -> (Vec<String>, u64) {
    replay_with(dir, events, &config(dir, budget), &[])
}

/// Replays `events` with configuration file `config` and `more` arguments: the sorted
/// alert lines and the peak RSS in MiB.
fn replay_with(dir: &Path, events: &str, config: &str, more: &[&str]) -> (Vec<String>, u64) {
    let alerts = dir.join("alerts.nd");
    let mut args = vec![
        "replay",
        "--config",
        config,
        "--input",
        events,
        "--alerts",
        alerts.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    let stderr = lockstep(&args);
    let rss = stderr
        .split("peak RSS ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the summary reports the peak RSS");
    let mut lines: Vec<String> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort_unstable();
    (lines, rss)
}

fn simulate(dir: &Path, name: &str, args: &[&str]) -> String {
    let out = dir.join(name).to_string_lossy().into_owned();
    let mut all = vec!["simulate", "--out", &out];
    all.extend_from_slice(args);
    lockstep(&all);
    out
}

#[test]
fn peak_memory_follows_the_budget_not_the_estate() {
    // ~270k identities, 500k events: with the default budget the replay holds about
    // 450 MiB; with 48 MiB it must stay within 48 MiB and the fixed overhead.
    let dir = tempfile::tempdir().unwrap();
    let events = simulate(
        dir.path(),
        "estate.jsonl",
        &["--seed", "7", "--accounts", "40000", "--uses-per-key", "1"],
    );
    let (small, small_rss) = replay(dir.path(), &events, "48MiB");
    let (large, large_rss) = replay(dir.path(), &events, "1GiB");
    assert!(small.len() > 1000, "{} alerts", small.len());
    assert!(small == large, "the alerts depend on the memory budget");
    assert!(
        small_rss <= 48 + OVERHEAD_MIB,
        "peak RSS {small_rss} MiB under a 48 MiB budget (allowed: {} MiB)",
        48 + OVERHEAD_MIB
    );
    assert!(
        large_rss > small_rss + 64,
        "the budget does not govern memory: {large_rss} MiB at 1 GiB, {small_rss} MiB at 48 MiB"
    );
}

#[test]
fn alerts_do_not_depend_on_how_much_state_stays_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios: [&[&str]; 3] = [
        &["--seed", "3", "--accounts", "4000"],
        &[
            "--seed",
            "4",
            "--accounts",
            "3000",
            "--months",
            "6",
            "--redelivery",
            "0.05",
        ],
        &[
            "--seed",
            "5",
            "--accounts",
            "6000",
            "--uses-per-key",
            "4",
            "--disorder",
            "25s",
        ],
    ];
    for (i, args) in scenarios.into_iter().enumerate() {
        let events = simulate(dir.path(), &format!("scenario-{i}.jsonl"), args);
        let (tight, _) = replay(dir.path(), &events, "32MiB");
        let (roomy, _) = replay(dir.path(), &events, "2GiB");
        assert!(tight.len() > 100, "scenario {i}: {} alerts", tight.len());
        assert!(
            tight == roomy,
            "scenario {i} ({args:?}): the alerts differ between 32 MiB and 2 GiB"
        );
        // A state directory is written whole at every commit; a temporary store keeps
        // changed rows in memory while they fit.
        let state = dir.path().join(format!("state-{i}"));
        let config = config(dir.path(), "32MiB");
        let (durable, _) = replay_with(
            dir.path(),
            &events,
            &config,
            &["--state", state.to_str().unwrap()],
        );
        assert!(
            tight == durable,
            "scenario {i} ({args:?}): the alerts differ between a temporary store and a state directory"
        );
    }
}

/// `count` revocations of API keys in iam, spread evenly over ten seconds from
/// 2026-03-01T00:00:00Z.
fn burst(dir: &Path, count: u64) -> String {
    let events = dir.join(format!("burst-{count}.jsonl"));
    let mut text = String::with_capacity(count as usize * 140);
    let step_us = 10_000_000 / count;
    for i in 0..count {
        let us = i * step_us;
        let (s, us) = (us / 1_000_000, us % 1_000_000);
        text.push_str(&format!(
            "{{\"event_id\":\"r{i}\",\"system\":\"iam\",\"time\":\"2026-03-01T00:00:{s:02}.{us:06}Z\",\"entity\":\"key-{i}\",\"entity_kind\":\"api_key\",\"action\":\"revoked\"}}\n"
        ));
    }
    std::fs::write(&events, text).unwrap();
    events.to_string_lossy().into_owned()
}

/// A configuration of a `budget_mib` budget holding at most `held` events for ordering,
/// and the most a replay under it may hold (MiB): the budget, twice the held events at
/// their most, the fixed overhead.
fn tight_config(dir: &Path, budget_mib: u64, held: u64) -> (String, u64) {
    let config = config(dir, &format!("{budget_mib}MiB"));
    let tuned = std::fs::read_to_string(&config).unwrap().replace(
        "max_held_events = 500000",
        &format!("max_held_events = {held}"),
    );
    assert!(tuned.contains(&format!("max_held_events = {held}")));
    std::fs::write(&config, tuned).unwrap();
    let allowed = budget_mib + 2 * held * HELD_EVENT_BYTES / (1 << 20) + OVERHEAD_MIB;
    (config, allowed)
}

#[test]
fn a_million_revocations_in_ten_seconds_stay_within_the_budget() {
    // Before: 2.06 GB (every timer in memory, the reorder buffer unbounded within the
    // allowed lateness). A million cases and three million deadlines: all in RocksDB
    // beyond the budget, the held events bounded by max_held_events.
    let dir = tempfile::tempdir().unwrap();
    let events = burst(dir.path(), 1_000_000);
    let (config, allowed) = tight_config(dir.path(), 64, 25_000);
    let (alerts, rss) = replay_with(dir.path(), &events, &config, &[]);
    assert!(
        alerts.is_empty(),
        "no deadline is due within the ten seconds"
    );
    assert!(
        rss <= allowed,
        "peak RSS {rss} MiB for a million revocations (allowed: {allowed} MiB)"
    );
}

#[test]
fn deadlines_due_at_once_at_the_end_stay_within_the_budget() {
    // 200,000 revocations and, with `--as-of` six hours later, 600,000 deadlines due
    // after the last event: 200,000 echo_missing (siem). Evaluated in one step they held
    // every alert and changed row in memory (300,000: 1,286 MiB); in committed steps of
    // the budget's size they stay within it.
    let dir = tempfile::tempdir().unwrap();
    let events = burst(dir.path(), 200_000);
    let (config, allowed) = tight_config(dir.path(), 64, 25_000);
    let (alerts, rss) = replay_with(
        dir.path(),
        &events,
        &config,
        &["--as-of", "2026-03-01T06:00:00Z"],
    );
    assert_eq!(alerts.len(), 200_000);
    assert!(alerts.iter().all(|a| a.contains("\"echo_missing\"")));
    assert!(
        rss <= allowed,
        "peak RSS {rss} MiB with 600,000 deadlines due at the end (allowed: {allowed} MiB)"
    );
}
