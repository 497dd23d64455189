//! Alerts as OCSF Detection Findings (class 2004), checked against the OCSF schema in
//! tests/fixtures/samples/ocsf (the shared copy of ocsf-schema 1.9.0-dev): the class
//! chain detection_finding → finding → base_event gives the attributes a finding may
//! carry and those it must; enum attributes must hold a defined value; the uid
//! arithmetic must hold; `finding_info` must satisfy its object. Every alert kind of a
//! simulated replay is checked, and a broken finding is shown to fail.

use std::collections::BTreeMap;
use std::path::Path;

use lockstep::alert::Alert;
use lockstep::sink::ocsf_finding;
use serde_json::Value;

fn schema(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/samples/ocsf/schema_1.9.0-dev")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The attributes of detection_finding with those it inherits; the most specific
/// definition of each wins (a `null` in a subclass keeps the parent's).
fn class_attributes() -> BTreeMap<String, Value> {
    let mut merged = BTreeMap::new();
    for class in [
        "events_base_event",
        "events_findings_finding",
        "events_findings_detection_finding",
    ] {
        for (name, def) in schema(class)["attributes"].as_object().unwrap() {
            if name.starts_with('$') {
                continue;
            }
            match def {
                Value::Object(d) => {
                    let entry = merged
                        .entry(name.clone())
                        .or_insert_with(|| Value::Object(Default::default()));
                    for (k, v) in d {
                        entry[k] = v.clone();
                    }
                }
                _ => {
                    merged
                        .entry(name.clone())
                        .or_insert(Value::Object(Default::default()));
                }
            }
        }
    }
    merged
}

/// Every violation of the schema by `finding`.
fn violations(finding: &Value) -> Vec<String> {
    let attrs = class_attributes();
    let mut out = Vec::new();
    let obj = finding.as_object().unwrap();
    for (name, def) in &attrs {
        if def["requirement"] == "required" && !obj.contains_key(name) {
            out.push(format!("required attribute {name} missing"));
        }
    }
    for (name, value) in obj {
        let Some(def) = attrs.get(name) else {
            out.push(format!("attribute {name} is not defined for class 2004"));
            continue;
        };
        // The uids are checked by their arithmetic below (base_event's enums are placeholders).
        if matches!(name.as_str(), "class_uid" | "category_uid" | "type_uid") {
            continue;
        }
        if let Some(values) = def["enum"].as_object() {
            let key = value.as_i64().map(|v| v.to_string()).unwrap_or_default();
            if !values.contains_key(&key) {
                out.push(format!("{name} = {value} is not in its enum"));
            }
        }
    }
    let detection = schema("events_findings_detection_finding");
    let category_uid = 2;
    let class_uid = category_uid * 1000 + detection["uid"].as_i64().unwrap();
    if finding["class_uid"] != class_uid || finding["category_uid"] != category_uid {
        out.push(format!(
            "class_uid must be {class_uid} in category {category_uid}"
        ));
    }
    let activity = finding["activity_id"].as_i64().unwrap_or(-1);
    if finding["type_uid"].as_i64() != Some(class_uid * 100 + activity) {
        out.push("type_uid must be class_uid × 100 + activity_id".into());
    }
    // severity_id's values live in the OCSF dictionary, which the shared copy lacks.
    if !matches!(finding["severity_id"].as_i64(), Some(0..=6 | 99)) {
        out.push(format!(
            "severity_id = {} is not an OCSF severity",
            finding["severity_id"]
        ));
    }
    if !finding["time"].is_i64() {
        out.push("time must be epoch milliseconds".into());
    }
    let info = schema("objects_finding_info");
    let info_attrs = info["attributes"].as_object().unwrap();
    for (name, def) in info_attrs {
        if def["requirement"] == "required" && finding["finding_info"].get(name).is_none() {
            out.push(format!("finding_info.{name} missing"));
        }
    }
    let empty = serde_json::Map::new();
    for name in finding["finding_info"].as_object().unwrap_or(&empty).keys() {
        if !info_attrs.contains_key(name) {
            out.push(format!("finding_info.{name} is not defined"));
        }
    }
    for key in ["product", "version"] {
        if finding["metadata"].get(key).is_none() {
            out.push(format!("metadata.{key} missing"));
        }
    }
    out
}

fn replayed_alerts() -> Vec<Alert> {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let alerts = dir.path().join("alerts.ndjson");
    let run = |args: &[&str]| {
        assert!(std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success())
    };
    run(&[
        "simulate",
        "--seed",
        "41",
        "--accounts",
        "300",
        "--out",
        events.to_str().unwrap(),
    ]);
    run(&[
        "replay",
        "--input",
        events.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
    ]);
    std::fs::read_to_string(alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_alert_kind_is_a_valid_detection_finding_with_its_evidence() {
    let alerts = replayed_alerts();
    let mut kinds = std::collections::BTreeSet::new();
    for alert in &alerts {
        let finding = ocsf_finding(alert);
        let v = violations(&finding);
        assert!(
            v.is_empty(),
            "{} violates OCSF 2004: {v:?}\n{finding:#}",
            alert.kind
        );
        assert_eq!(finding["finding_info"]["uid"], alert.alert_id.as_str());
        let evidence = &finding["evidences"][0]["data"];
        assert_eq!(evidence["case_id"], serde_json::json!(alert.case_id));
        assert_eq!(
            evidence["missing_entities"],
            serde_json::json!(alert.entities)
        );
        assert_eq!(evidence["system"], serde_json::json!(alert.system));
        kinds.insert(alert.kind);
    }
    assert!(
        kinds.len() >= 5,
        "the simulation raises every correlation kind: {kinds:?}"
    );
}

#[test]
fn a_broken_finding_is_caught() {
    let alert = &replayed_alerts()[0];
    let mut finding = ocsf_finding(alert);
    finding["finding_info"]
        .as_object_mut()
        .unwrap()
        .remove("uid");
    finding["severity_id"] = serde_json::json!(42);
    finding["colour"] = serde_json::json!("red");
    finding.as_object_mut().unwrap().remove("metadata");
    let v = violations(&finding);
    for needle in [
        "finding_info.uid missing",
        "severity_id = 42",
        "colour is not defined",
        "required attribute metadata missing",
    ] {
        assert!(
            v.iter().any(|m| m.contains(needle)),
            "{needle:?} not in {v:?}"
        );
    }
}
