//! `lockstep inventory` against an independent reading of its input: a simulated estate
//! with a few hand-written shadow identities and drifts added is replayed into a state
//! directory, and the inventory must equal, entity by entity, what a small reference fold
//! of SPEC §4's state rules over the same events ends with — states, kind, parent, root,
//! first sight, creator, registration in the system of record — under every filter and in
//! each output format.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

fn lockstep() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
}

/// Shadow identities and drifts the simulation does not make: an agent enrolled in MDM
/// for an account IAM never created, with a secret under it in the vault; a vault secret
/// under that account's sibling that IAM registers later; and a key revoked in IAM but
/// still active in the vault (drift).
fn extra_events() -> Vec<Value> {
    let ev = |id: &str, system: &str, time: &str, entity: &str, kind: &str, action: &str| {
        json!({"event_id": id, "system": system, "source": "test", "time": time,
               "entity": entity, "entity_kind": kind, "action": action, "outcome": "success"})
    };
    let mut agent = ev(
        "x-1",
        "mdm",
        "2026-03-03T10:00:00.000001Z",
        "shadow-agent",
        "agent",
        "enrolled",
    );
    agent["actor"] = json!("jamf-admin");
    agent["parent"] = json!("shadow-account");
    let mut secret = ev(
        "x-2",
        "vault",
        "2026-03-03T10:00:01Z",
        "shadow-secret",
        "secret",
        "created",
    );
    secret["parent"] = json!("shadow-agent");
    let mut later = ev(
        "x-3",
        "vault",
        "2026-03-03T11:00:00Z",
        "late-secret",
        "secret",
        "created",
    );
    later["parent"] = json!("late-account");
    later["actor"] = json!("ops");
    // Used before it is created: first seen by the use, created by the creation's actor.
    let mut used_first = ev(
        "x-6",
        "siem",
        "2026-03-03T09:00:00Z",
        "late-account",
        "service_account",
        "used",
    );
    used_first["actor"] = json!("someone");
    let mut registered = ev(
        "x-4",
        "iam",
        "2026-03-03T12:00:00Z",
        "late-account",
        "service_account",
        "created",
    );
    registered["actor"] = json!("iam-admin");
    let drift_key = [
        ev(
            "x-7",
            "iam",
            "2026-03-03T08:00:00Z",
            "drift-key",
            "api_key",
            "issued",
        ),
        ev(
            "x-8",
            "vault",
            "2026-03-03T08:00:01Z",
            "drift-key",
            "api_key",
            "created",
        ),
        ev(
            "x-9",
            "iam",
            "2026-03-03T08:30:00Z",
            "drift-key",
            "api_key",
            "revoked",
        ),
    ];
    let mut failed = ev(
        "x-5",
        "mdm",
        "2026-03-03T10:00:02Z",
        "never-there",
        "device",
        "enrolled",
    );
    failed["outcome"] = json!("failure");
    let mut out = vec![agent, secret, later, used_first, registered, failed];
    out.extend(drift_key);
    out
}

/// What the reference fold knows of an entity.
#[derive(Debug, Default, Clone, PartialEq)]
struct Expected {
    kind: String,
    states: BTreeMap<String, String>,
    parent: Option<String>,
    first_seen: Option<String>,
    created_by: Option<Option<String>>,
}

/// SPEC §4's state rules, folded over the events in (time, event_id) order after
/// dropping redeliveries: success events only; presence sets active, revocation
/// revoked, `used` active only from none; the first parent edge that closes no cycle.
fn reference(events: &[Value]) -> BTreeMap<String, Expected> {
    let mut seen = HashSet::new();
    let mut events: Vec<&Value> = events
        .iter()
        .filter(|e| seen.insert((e["system"].to_string(), e["event_id"].to_string())))
        .collect();
    let micros = |e: &Value| lockstep::time::Micros::parse(e["time"].as_str().unwrap()).unwrap();
    events.sort_by(|a, b| {
        (micros(a), a["event_id"].as_str()).cmp(&(micros(b), b["event_id"].as_str()))
    });
    let mut out: BTreeMap<String, Expected> = BTreeMap::new();
    let mut parents: HashMap<String, String> = HashMap::new();
    for e in events {
        if e["outcome"] == "failure" {
            continue;
        }
        let entity = e["entity"].as_str().unwrap().to_owned();
        if let Some(p) = e["parent"].as_str() {
            let mut at = Some(p.to_owned());
            let mut cycle = false;
            while let Some(a) = at {
                cycle |= a == entity;
                at = parents.get(&a).cloned();
            }
            if !parents.contains_key(&entity) && !cycle {
                parents.insert(entity.clone(), p.to_owned());
            }
        }
        let row = out.entry(entity).or_default();
        if row.kind.is_empty() {
            row.kind = e["entity_kind"].as_str().unwrap().to_owned();
            row.first_seen = Some(e["time"].as_str().unwrap().to_owned());
        }
        let action = e["action"].as_str().unwrap();
        let system = e["system"].as_str().unwrap().to_owned();
        let presence = [
            "created", "issued", "granted", "enabled", "enrolled", "rotated", "observed",
        ]
        .contains(&action);
        let state = if presence {
            Some("active")
        } else if action == "used" {
            (!row.states.contains_key(&system)).then_some("active")
        } else {
            Some("revoked")
        };
        if let Some(s) = state {
            row.states.insert(system, s.to_owned());
        }
        if presence && row.created_by.is_none() {
            row.created_by = Some(e["actor"].as_str().map(str::to_owned));
        }
    }
    for (entity, row) in out.iter_mut() {
        row.parent = parents.get(entity).cloned();
    }
    out
}

/// The top of `entity`'s tree and whether it or an ancestor has a state in `iam`.
fn place(entity: &str, all: &BTreeMap<String, Expected>) -> (String, bool) {
    let mut at = entity.to_owned();
    let mut registered = false;
    loop {
        let row = all.get(&at);
        registered |= row.is_some_and(|r| r.states.contains_key("iam"));
        match row.and_then(|r| r.parent.clone()) {
            Some(p) => at = p,
            None => return (at, registered),
        }
    }
}

struct Estate {
    dir: tempfile::TempDir,
    events: Vec<Value>,
}

impl Estate {
    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn inventory(&self, args: &[&str]) -> String {
        let out = lockstep()
            .arg("inventory")
            .arg("--state")
            .arg(self.state())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["--format", "json"];
        all.extend(args);
        self.inventory(&all)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn replayed() -> Estate {
    let dir = tempfile::tempdir().unwrap();
    let simulated = dir.path().join("simulated.jsonl");
    assert!(lockstep()
        .args(["simulate", "--seed", "8", "--accounts", "120", "--out"])
        .arg(&simulated)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success());
    let mut events: Vec<Value> = std::fs::read_to_string(&simulated)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    events.extend(extra_events());
    let input = dir.path().join("events.jsonl");
    let text: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&input, text.join("\n") + "\n").unwrap();
    replay(&input, &dir.path().join("state"), dir.path());
    Estate { dir, events }
}

fn replay(input: &Path, state: &Path, dir: &Path) {
    let out = lockstep()
        .args(["replay", "--input"])
        .arg(input)
        .arg("--state")
        .arg(state)
        .arg("--alerts")
        .arg(dir.join("alerts.ndjson"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn names(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["entity"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_inventory_equals_entity_by_entity_what_a_reference_fold_of_the_input_ends_with() {
    let estate = replayed();
    let expected = reference(&estate.events);
    let lines = estate.json(&[]);
    assert_eq!(
        names(&lines),
        expected.keys().cloned().collect::<Vec<_>>(),
        "one line per entity with a success event, in key order"
    );
    assert!(expected.len() > 500, "a real estate: {}", expected.len());
    for line in &lines {
        let entity = line["entity"].as_str().unwrap();
        let want = &expected[entity];
        let states: BTreeMap<String, String> =
            serde_json::from_value(line["states"].clone()).unwrap();
        assert_eq!(states, want.states, "{entity}: states");
        assert_eq!(line["entity_kind"], want.kind.as_str(), "{entity}: kind");
        assert_eq!(line["parent"].as_str(), want.parent.as_deref(), "{entity}");
        let first = line["first_seen"]
            .as_str()
            .map(lockstep::time::Micros::parse);
        let want_first = want
            .first_seen
            .as_deref()
            .map(lockstep::time::Micros::parse);
        assert_eq!(first.map(Result::unwrap), want_first.map(Result::unwrap));
        assert_eq!(
            line["created_by"].as_str(),
            want.created_by.clone().flatten().as_deref(),
            "{entity}: created_by"
        );
        let (root, registered) = place(entity, &expected);
        assert_eq!(line["root"], root.as_str(), "{entity}: root");
        assert_eq!(line["registered"], registered, "{entity}: registered");
    }
    let line = |id: &str| lines.iter().find(|l| l["entity"] == id).unwrap().clone();
    assert_eq!(line("late-account")["created_by"], "iam-admin");
    assert_eq!(
        line("late-account")["first_seen"],
        "2026-03-03T09:00:00.000000Z"
    );
    assert_eq!(line("shadow-agent")["created_by"], "jamf-admin");
    assert_eq!(line("shadow-secret")["created_by"], Value::Null);
    assert!(!lines.iter().any(|l| l["entity"] == "never-there"));
}

#[test]
fn each_filter_keeps_exactly_the_entities_it_names() {
    let estate = replayed();
    let expected = reference(&estate.events);
    let keep = |f: &dyn Fn(&str, &Expected) -> bool| -> Vec<String> {
        expected
            .iter()
            .filter(|(e, x)| f(e, x))
            .map(|(e, _)| e.clone())
            .collect()
    };
    let has = |x: &Expected, s: &str| x.states.values().any(|v| v == s);
    let drift = keep(&|_, x| has(x, "active") && has(x, "revoked"));
    assert!(drift.contains(&"drift-key".to_owned()));
    assert_eq!(names(&estate.json(&["--drift"])), drift);
    let unregistered = keep(&|e, _| !place(e, &expected).1);
    assert_eq!(unregistered, ["shadow-agent", "shadow-secret"]);
    assert_eq!(names(&estate.json(&["--unregistered"])), unregistered);
    assert_eq!(
        names(&estate.json(&["--active"])),
        keep(&|_, x| has(x, "active"))
    );
    assert_eq!(
        names(&estate.json(&["--kind", "secret"])),
        keep(&|_, x| x.kind == "secret")
    );
    assert_eq!(
        names(&estate.json(&["--system", "mdm"])),
        keep(&|_, x| x.states.contains_key("mdm"))
    );
    assert_eq!(
        names(&estate.json(&["--active", "--kind", "api_key", "--system", "vault"])),
        keep(&|_, x| has(x, "active") && x.kind == "api_key" && x.states.contains_key("vault"))
    );
    // Another system of record: the shadow account's MDM agent is registered there.
    let config = estate.dir.path().join("mdm.toml");
    std::fs::write(&config, "[consistency]\nsystem_of_record = \"mdm\"\n").unwrap();
    let by_mdm = names(&estate.json(&["--unregistered", "--config", config.to_str().unwrap()]));
    assert!(!by_mdm.contains(&"shadow-agent".to_owned()));
    assert!(by_mdm.contains(&"late-account".to_owned()));
}

#[test]
fn csv_and_table_carry_the_same_entities_as_json() {
    let estate = replayed();
    let json = estate.json(&["--kind", "secret"]);
    let csv = estate.inventory(&["--format", "csv", "--kind", "secret"]);
    let mut rows = csv.lines();
    assert_eq!(
        rows.next().unwrap(),
        "entity,entity_kind,root,parent,iam,vault,mdm,siem,first_seen,issued_at,last_active_at,created_by,open_case,registered"
    );
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    assert_eq!(rows.len(), json.len());
    for (row, line) in rows.iter().zip(&json) {
        assert_eq!(row.len(), 14, "{row:?}");
        assert_eq!(row[0], line["entity"]);
        assert_eq!(row[5], line["states"]["vault"].as_str().unwrap_or(""));
        assert_eq!(row[13], line["registered"].to_string());
    }
    let table = estate.inventory(&["--kind", "secret"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ENTITY"));
    let lines: Vec<&str> = lines.collect();
    assert_eq!(lines.len(), json.len());
    for (text, line) in lines.iter().zip(&json) {
        assert!(text.starts_with(line["entity"].as_str().unwrap()), "{text}");
        assert!(text.contains("secret"), "{text}");
    }
}

#[test]
fn a_state_directory_that_is_not_one_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = lockstep()
        .args(["inventory", "--state"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lockstep state"));
}
