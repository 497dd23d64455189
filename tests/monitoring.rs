//! What Prometheus sees of lockstep: the alert rules of
//! `deploy/k8s-examples/prometheusrule.yaml` parse as PromQL (promtool's check, with the
//! `promql-parser` package: Python bindings of the Rust crate, a port of Prometheus's
//! parser; scripts/promql-metrics.py), query only metrics a running `lockstep run`
//! exports — a member
//! of a consumer group, whose cases, store size and RocksDB gauges are set too — and each
//! links a runbook of docs/runbooks.md; the ServiceMonitor selects one Service, so each
//! pod is scraped once.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use lockstep::config::Config;
use lockstep::live::feed::produce;
use lockstep::simulate::{generate, Scenario};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use support::http::*;
use support::*;

/// Every rule of the PrometheusRule: (alert, expr, runbook_url).
fn rules() -> Vec<(String, String, String)> {
    let docs = yaml_documents("deploy/k8s-examples/prometheusrule.yaml");
    let mut rules = Vec::new();
    for group in docs[0]["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            rules.push((
                rule["alert"].as_str().unwrap().to_owned(),
                rule["expr"].as_str().unwrap().to_owned(),
                rule["annotations"]["runbook_url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
    }
    rules
}

/// The metric names each expression of `exprs` (by name) selects, parsed as Prometheus
/// parses them; or the parse errors.
fn selected(exprs: &BTreeMap<String, String>) -> Result<BTreeMap<String, Vec<String>>, String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/promql-metrics.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(exprs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

/// The metric names the rules query (`up` is Prometheus's own), each rule parsed.
fn rule_metrics() -> BTreeSet<String> {
    let exprs = rules()
        .into_iter()
        .map(|(alert, expr, _)| (alert, expr))
        .collect();
    let mut names: BTreeSet<String> = selected(&exprs)
        .unwrap_or_else(|e| panic!("the rules do not parse: {e}"))
        .into_values()
        .flatten()
        .collect();
    names.remove("up");
    names
}

#[test]
fn every_alert_rule_parses_and_links_its_runbook() {
    let runbooks = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbooks.md"),
    )
    .unwrap();
    let anchors: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let rules = rules();
    assert!(rules.len() >= 10, "{rules:?}");
    // The parser refuses what Prometheus would.
    let broken = BTreeMap::from([(
        "x".to_owned(),
        "sum by (instance (lockstep_ready)".to_owned(),
    )]);
    assert!(selected(&broken).is_err());
    for (alert, _, url) in &rules {
        let anchor = url
            .strip_prefix("docs/runbooks.md#")
            .unwrap_or_else(|| panic!("{alert}: runbook_url {url:?}"));
        assert_eq!(anchor, alert.to_lowercase(), "{alert}: {url}");
        assert!(
            anchors.contains(anchor),
            "{alert}: no `## {alert}` in docs/runbooks.md"
        );
    }
    // The names it takes from the rules are the ones the operators asked for.
    let names = rule_metrics();
    for needed in [
        "lockstep_watermark_lag_seconds",
        "lockstep_consumer_lag_records",
        "lockstep_dead_letters_total",
        "lockstep_rocksdb_write_stopped",
        "lockstep_outbox_pending",
        "lockstep_ready",
        "lockstep_last_progress_timestamp_seconds",
        "lockstep_alerts_total",
    ] {
        assert!(names.contains(needed), "no rule on {needed}: {names:?}");
    }
}

#[test]
fn the_service_monitor_selects_one_service_so_each_pod_is_scraped_once() {
    let monitor = &yaml_documents("deploy/k8s-examples/servicemonitor.yaml")[0];
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    let port = monitor["spec"]["endpoints"][0]["port"].as_str().unwrap();
    let services = yaml_documents("deploy/k8s/service.yaml");
    let selected: Vec<&serde_json::Value> = services
        .iter()
        .filter(|s| s["kind"] == "Service")
        .filter(|s| {
            selector
                .iter()
                .all(|(k, v)| &s["metadata"]["labels"][k] == v)
        })
        .collect();
    assert_eq!(selected.len(), 1, "{selected:?}");
    assert!(
        selected[0]["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port),
        "the selected Service has the port {port}"
    );
}

#[test]
fn a_group_member_exports_its_cases_store_and_rocksdb_gauges_and_every_metric_the_rules_query() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 2);
    broker.create_topics(&OUTPUTS, 1);
    let port = free_port();
    let cfg = api_config(
        dir.path(),
        &broker,
        port,
        "[correlator]\nallowed_lateness = \"1s\"\nidle_timeout = \"1s\"\n",
        &[(
            "[kafka.properties]\n",
            "assignment = \"group\"\ngroup_id = \"lockstep-monitoring\"\n[kafka.properties]\n",
        )],
    );
    let log = dir.path().join("run.log");
    let child = run(&cfg, &dir.path().join("state"), &log);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .create()
        .unwrap();
    producer
        .send(BaseRecord::to("lockstep.iam").key("k").payload("{not json"))
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let events = generate(&Scenario::new(3, 30));
    produce(&Config::load(&cfg).unwrap(), &events, 0).unwrap();
    let metrics = wait_for(port, "/metrics", Duration::from_secs(90), &log, |_, m| {
        let cases: f64 = ["open", "breached", "complete", "superseded"]
            .iter()
            .filter_map(|s| sample(m, &format!("lockstep_cases{{state=\"{s}\"}}")))
            .sum();
        cases > 0.0
            && sample(m, "lockstep_store_bytes").unwrap_or(0.0) > 0.0
            && m.contains("lockstep_consumer_lag_records{")
            && m.contains("lockstep_alerts_total{")
    });
    terminate(child, &log);
    assert!(
        sample(&metrics, "lockstep_rocksdb_block_cache_bytes").unwrap_or(0.0) > 0.0,
        "{metrics}"
    );
    assert!(sample(&metrics, "lockstep_last_progress_timestamp_seconds").unwrap_or(0.0) > 1.7e9);
    let exported: BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let missing: Vec<String> = rule_metrics()
        .into_iter()
        .filter(|name| !exported.contains(name.trim_end_matches("_bucket")))
        .collect();
    assert!(
        missing.is_empty(),
        "the rules query metrics a running lockstep does not export: {missing:?}"
    );
}
