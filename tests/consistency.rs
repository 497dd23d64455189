//! SPEC §4c end to end through the binary: a simulated estate with rotations followed or
//! not and shadow identities replays to the same alerts over every `--shards` count and
//! when resumed from its state directory; a tree that joins another after its round
//! opened and its registration was armed keeps both; the report, `lineage` and
//! `check-config` show them.

use std::path::Path;
use std::process::{Command, Output};

fn lockstep(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "lockstep {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// `simulate --consistency`, and a hand-made join: a key rotated while it is the top of
/// its own tree (its secret never follows) and a shadow agent, both of which later find
/// their parent — an account only the SIEM knows.
fn inputs(dir: &Path) -> Vec<String> {
    let simulated = path(dir, "events.jsonl");
    lockstep(&[
        "simulate",
        "--seed",
        "13",
        "--accounts",
        "2000",
        "--consistency",
        "--out",
        &simulated,
    ]);
    let line = |id: &str,
                system: &str,
                t: &str,
                entity: &str,
                kind: &str,
                action: &str,
                parent: Option<&str>| {
        let parent = parent.map_or(String::new(), |p| format!(r#","parent":"{p}""#));
        format!(
            r#"{{"event_id":"{id}","system":"{system}","time":"2026-03-01T{t}Z","entity":"{entity}","entity_kind":"{kind}","action":"{action}"{parent}}}"#
        )
    };
    let joined = path(dir, "joined.jsonl");
    let events = [
        line(
            "j1",
            "siem",
            "00:00:00",
            "acct-z",
            "service_account",
            "observed",
            None,
        ),
        line("j2", "iam", "00:01:00", "key-y", "api_key", "created", None),
        line(
            "j3",
            "vault",
            "00:02:00",
            "secret-y",
            "secret",
            "created",
            Some("key-y"),
        ),
        line(
            "j4", "mdm", "00:03:00", "agent-x", "agent", "enrolled", None,
        ),
        line("j5", "iam", "01:00:00", "key-y", "api_key", "rotated", None),
        line(
            "j6",
            "iam",
            "01:05:00",
            "key-y",
            "api_key",
            "used",
            Some("acct-z"),
        ),
        line(
            "j7",
            "mdm",
            "01:06:00",
            "agent-x",
            "agent",
            "observed",
            Some("acct-z"),
        ),
        line(
            "j8",
            "iam",
            "2026-03-03T00:00:00",
            "other",
            "role",
            "created",
            None,
        ),
    ];
    let text = events
        .join("\n")
        .replace("2026-03-01T2026-03-03T", "2026-03-03T");
    std::fs::write(&joined, text + "\n").unwrap();
    vec![simulated, joined]
}

#[test]
fn rotations_and_shadow_identities_replay_the_same_over_every_shard_count_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    for input in inputs(dir.path()) {
        let mut outputs = Vec::new();
        for shards in ["1", "2", "5"] {
            let alerts = path(dir.path(), &format!("alerts-{shards}.nd"));
            lockstep(&[
                "replay",
                "--config",
                "config/lockstep.toml",
                "--input",
                &input,
                "--alerts",
                &alerts,
                "--shards",
                shards,
            ]);
            outputs.push(std::fs::read_to_string(&alerts).unwrap());
        }
        for kind in ["rotation_missed", "unregistered_identity"] {
            assert!(outputs[0].contains(kind), "{input}: no {kind}");
        }
        assert!(outputs[1] == outputs[0], "{input}: 2 shards differ from 1");
        assert!(outputs[2] == outputs[0], "{input}: 5 shards differ from 1");
        // The same input in two halves by time into one state directory: the second
        // run continues the rounds and registrations the first left open.
        let text = std::fs::read_to_string(&input).unwrap();
        let time = |l: &str| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["time"].as_str().unwrap().to_owned()
        };
        let mut times: Vec<String> = text.lines().map(time).collect();
        times.sort();
        let middle = times[times.len() / 2].clone();
        let (first, second): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| time(l) < middle);
        let state = path(dir.path(), &format!("state-{}", outputs[0].len()));
        for (i, part) in [first, second].iter().enumerate() {
            let file = path(dir.path(), &format!("part-{i}.jsonl"));
            std::fs::write(&file, part.join("\n") + "\n").unwrap();
            let alerts = path(dir.path(), &format!("resumed-{i}.nd"));
            lockstep(&[
                "replay",
                "--config",
                "config/lockstep.toml",
                "--input",
                &file,
                "--alerts",
                &alerts,
                "--state",
                &state,
            ]);
        }
        let resumed = std::fs::read_to_string(path(dir.path(), "resumed-1.nd")).unwrap();
        assert!(
            resumed == outputs[0],
            "{input}: resumed from its state differs"
        );
    }
}

#[test]
fn the_joined_tree_keeps_its_round_and_registration_and_lineage_shows_the_round() {
    let dir = tempfile::tempdir().unwrap();
    let joined = inputs(dir.path()).remove(1);
    let state = path(dir.path(), "state");
    let report = path(dir.path(), "report.md");
    let alerts = path(dir.path(), "alerts.nd");
    lockstep(&[
        "replay",
        "--config",
        "config/lockstep.toml",
        "--input",
        &joined,
        "--alerts",
        &alerts,
        "--state",
        &state,
        "--report",
        &report,
    ]);
    let text = std::fs::read_to_string(&alerts).unwrap();
    let found: Vec<(String, String, String, String)> = text
        .lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (s("kind"), s("entity"), s("root"), s("at"))
        })
        .filter(|a| a.0 == "rotation_missed" || a.0 == "unregistered_identity")
        .collect();
    let t = |s: &str| format!("2026-03-{s}.000000Z");
    assert_eq!(
        found,
        vec![
            (
                "rotation_missed".into(),
                "secret-y".into(),
                "acct-z".into(),
                t("01T01:15:00")
            ),
            (
                "unregistered_identity".into(),
                "acct-z".into(),
                "acct-z".into(),
                t("02T00:00:00")
            ),
            (
                "unregistered_identity".into(),
                "agent-x".into(),
                "acct-z".into(),
                t("02T00:03:00")
            ),
        ]
    );
    let out = lockstep(&["lineage", "key-y", "--state", &state]);
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(
        tree.contains("⟳ rotated in iam at 2026-03-01T01:00:00.000000Z: secret-y in vault missed"),
        "{tree}"
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("## Consistency"), "{md}");
    assert!(md.contains("| secret-y | vault | key-y |"), "{md}");
    assert!(md.contains("| agent-x | acct-z | mdm |"), "{md}");
    assert!(md.contains("| rotation_missed | 1 | NHI7"), "{md}");
}
