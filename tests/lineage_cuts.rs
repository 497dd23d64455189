//! A lineage says what it left out: a 20,000-deep chain, a root with more children than
//! a tree shows, and a short chain, replayed into a state directory and read back with
//! `lockstep lineage` (the same answer as `/v1/lineage`). The JSON marks each cut
//! (`ancestors_truncated`, `tree_truncated`, the cut node's `truncated`) and only the
//! cuts; the text tree keeps every line narrow however deep the chain.

use std::process::Command;

use serde_json::{json, Value};

const CHAIN: usize = 20_000;
const WIDE: usize = 10_050;

fn lockstep() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
}

fn event(n: usize, entity: &str, parent: Option<&str>) -> Value {
    let mut e = json!({
        "event_id": format!("e-{n}"), "system": "iam", "source": "test",
        "time": format!("2026-03-02T10:{:02}:{:02}.{:06}Z", n / 60_000_000 % 60, n / 1_000_000 % 60, n % 1_000_000),
        "entity": entity, "entity_kind": "service_account", "action": "created",
    });
    if let Some(p) = parent {
        e["parent"] = json!(p);
    }
    e
}

struct Replayed {
    _dir: tempfile::TempDir,
    state: std::path::PathBuf,
}

impl Replayed {
    fn lineage(&self, entity: &str, format: &str) -> String {
        let out = lockstep()
            .args(["lineage", entity, "--format", format, "--state"])
            .arg(&self.state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, entity: &str) -> Value {
        serde_json::from_str(&self.lineage(entity, "json")).unwrap()
    }
}

fn replayed() -> Replayed {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    let mut n = 0;
    let mut push = |entity: &str, parent: Option<&str>| {
        lines.push(event(n, entity, parent).to_string());
        n += 1;
    };
    push("chain-0", None);
    for i in 1..CHAIN {
        push(&format!("chain-{i}"), Some(&format!("chain-{}", i - 1)));
    }
    push("wide", None);
    for i in 0..WIDE {
        push(&format!("wide-{i}"), Some("wide"));
    }
    push("short-0", None);
    push("short-1", Some("short-0"));
    push("short-2", Some("short-1"));
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let state = dir.path().join("state");
    let out = lockstep()
        .args(["replay", "--input"])
        .arg(&input)
        .arg("--state")
        .arg(&state)
        .arg("--alerts")
        .arg(dir.path().join("alerts.ndjson"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Replayed { _dir: dir, state }
}

fn widest(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn lineage_marks_each_cut_and_only_the_cuts_and_the_text_stays_narrow() {
    let r = replayed();

    // 19,999 ancestors above the deepest link: 10,000 given, the cut said.
    let deep = r.json(&format!("chain-{}", CHAIN - 1));
    let ancestors = deep["ancestors"].as_array().unwrap();
    assert_eq!(ancestors.len(), 10_000);
    assert_eq!(ancestors[0]["entity"], format!("chain-{}", CHAIN - 2));
    assert_eq!(deep["ancestors_truncated"], true);
    assert_eq!(deep["tree_truncated"], false);
    let text = r.lineage(&format!("chain-{}", CHAIN - 1), "tree");
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("more ancestors above these 10000"),
        "{}",
        &text[..200]
    );
    assert_eq!(text.lines().count(), 10_002);
    assert!(widest(&text) < 200, "widest line {}", widest(&text));
    assert!(text.contains("[depth 9999] ↑ chain-19998"));

    // The top of the chain: its tree is cut at depth 40, at the node that says so.
    let top = r.json("chain-0");
    assert_eq!(top["ancestors_truncated"], false);
    assert_eq!(top["tree_truncated"], true);
    let mut node = &top["tree"];
    let mut depth = 0;
    while let Some(child) = node["children"].get(0) {
        assert_ne!(node["truncated"], true, "only the last node shown is cut");
        node = child;
        depth += 1;
    }
    assert_eq!(depth, 39);
    assert_eq!(node["truncated"], true);
    let text = r.lineage("chain-0", "tree");
    assert!(widest(&text) < 200, "widest line {}", widest(&text));
    assert!(text.contains("more below"));

    // A root with more children than a tree holds: cut by size.
    let wide = r.json("wide");
    assert_eq!(wide["tree_truncated"], true);
    assert_eq!(wide["tree"]["truncated"], true);
    assert!(wide["tree"]["children"].as_array().unwrap().len() < WIDE);

    // Nothing cut: both say so.
    for entity in ["short-0", "short-2", "wide-7"] {
        let whole = r.json(entity);
        assert_eq!(whole["ancestors_truncated"], false, "{entity}");
        assert_eq!(whole["tree_truncated"], false, "{entity}");
    }
}
