//! `[[notify]]` end to end: `lockstep run` against a real tansu broker, with a stand-in
//! for each receiver (webhook, Slack, PagerDuty, Splunk HEC, Elasticsearch) that is down
//! (503) for its first requests. Every alert a replay of the same events raises reaches
//! each sink that wants it once, in the receiver's documented format; a receiver that
//! refuses for good sends its alerts to the dead-letter topic.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use lockstep::config::Config;
use lockstep::live::feed::produce;
use lockstep::simulate::{generate, Scenario};
use lockstep::time::{Micros, Span};
use serde_json::{json, Value};
use sha2::Sha256;
use support::stand_in::{Answer, Request, StandIn};
use support::*;

const ROUTING_KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";
const SECRET: &str = "webhook-signing-secret";

/// Down for the first two requests (the first says `Retry-After: 1`), then `ok`.
fn after_an_outage(ok: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> StandIn {
    StandIn::start(move |request, before| match before {
        0 => (503, vec![("Retry-After".into(), "1".into())], String::new()),
        1 => (503, vec![], String::new()),
        _ => ok(request),
    })
}

/// An Elasticsearch stand-in: a `create` of an `_id` it holds is a 409 conflict.
fn elasticsearch() -> StandIn {
    let held = Mutex::new(BTreeSet::new());
    after_an_outage(move |request| {
        let mut held = held.lock().unwrap();
        let items: Vec<Value> = ndjson(&request.body)
            .iter()
            .step_by(2)
            .map(|action| {
                let fresh = held.insert(action["create"]["_id"].to_string());
                json!({ "create": { "status": if fresh { 201 } else { 409 } } })
            })
            .collect();
        (
            200,
            vec![],
            json!({ "errors": false, "items": items }).to_string(),
        )
    })
}

fn ndjson(body: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(body)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("a sequence of JSON values")
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|t| Micros::parse(t).is_ok())
}

/// Each id once: the multiset of `ids` as a set, failing on a repeat.
fn once_each(sink: &str, ids: Vec<String>) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for id in ids {
        assert!(set.insert(id.clone()), "{sink}: {id} delivered twice");
    }
    set
}

/// The alert ids a webhook received, its body signed as documented.
fn webhook_ids(hook: &StandIn) -> Vec<String> {
    let mut ids = Vec::new();
    for r in hook.accepted() {
        assert_eq!(r.headers["content-type"], "application/json");
        let at = &r.headers["x-lockstep-timestamp"];
        let sent: i64 = at.parse().unwrap();
        assert!((Micros::now().0 / 1_000_000 - sent).abs() < 300, "{at}");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{at}.").as_bytes());
        mac.update(&r.body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(r.headers["x-lockstep-signature"], format!("sha256={hex}"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let alerts = match body {
            Value::Array(many) => many,
            one => vec![one],
        };
        ids.extend(
            alerts
                .iter()
                .map(|a| a["alert_id"].as_str().unwrap().to_owned()),
        );
    }
    ids
}

/// The alert ids of the Slack messages, each a valid Block Kit message.
fn slack_ids(slack: &StandIn) -> Vec<String> {
    let mut ids = Vec::new();
    for r in slack.accepted() {
        let m: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(
            m["text"].as_str().is_some_and(|t| !t.is_empty()),
            "fallback text"
        );
        let blocks = m["blocks"].as_array().unwrap();
        assert!(!blocks.is_empty() && blocks.len() <= 50);
        for b in blocks {
            match b["type"].as_str().unwrap() {
                "header" => {
                    assert_eq!(b["text"]["type"], "plain_text");
                    assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 150);
                }
                "section" => {
                    let fields = b["fields"].as_array().map_or(0, Vec::len);
                    assert!(
                        b["text"]["type"] == "mrkdwn" || (1..=10).contains(&fields),
                        "{b}"
                    );
                }
                "context" => assert!(!b["elements"].as_array().unwrap().is_empty()),
                other => panic!("unexpected block type {other}"),
            }
        }
        let text = m.to_string();
        assert!(text.contains("lockstep lineage "), "{text}");
        let context = blocks.last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap();
        let id = context.split('`').nth(1).unwrap();
        ids.push(id.to_owned());
    }
    ids
}

#[test]
fn each_sink_gets_every_alert_of_a_run_once_after_an_outage_in_its_receivers_format() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 2);
    broker.create_topics(&OUTPUTS, 1);
    let hook = after_an_outage(|_| (200, vec![], String::new()));
    let slack = after_an_outage(|_| (200, vec![], "ok".into()));
    let pd = after_an_outage(|r| {
        let dedup = serde_json::from_slice::<Value>(&r.body).unwrap()["dedup_key"].clone();
        (
            202,
            vec![],
            json!({ "status": "success", "message": "Event processed", "dedup_key": dedup })
                .to_string(),
        )
    });
    let hec = after_an_outage(|_| (200, vec![], r#"{"text":"Success","code":0}"#.into()));
    let es = elasticsearch();
    let refuses = StandIn::start(|_, _| (400, vec![], r#"{"error":"invalid_payload"}"#.into()));
    let sinks = format!(
        r#"[correlator]
allowed_lateness = "30s"
idle_timeout = "1s"
[[notify]]
type = "webhook"
url = "{hook}/lockstep"
secret = "{SECRET}"
[[notify]]
type = "slack"
url = "{slack}/services/T0/B0/x"
min_severity = "high"
[[notify]]
type = "pagerduty"
url = "{pd}/v2/enqueue"
routing_key = "{ROUTING_KEY}"
kinds = ["echo_missing", "revoked_entity_used"]
[[notify]]
type = "splunk_hec"
url = "{hec}"
token = "hec-token-1"
index = "security"
[[notify]]
type = "elasticsearch"
url = "{es}"
index = "lockstep-alerts"
api_key = "ZXMta2V5"
[[notify]]
type = "webhook"
name = "refuses"
url = "{refuses}"
kinds = ["reactivated"]
"#,
        hook = hook.url,
        slack = slack.url,
        pd = pd.url,
        hec = hec.url,
        es = es.url,
        refuses = refuses.url,
    );
    let cfg_path = config(dir.path(), &broker, &sinks);
    let cfg = Config::load(&cfg_path).unwrap();
    let events = generate(&Scenario::new(5, 60));
    // The live watermark follows the wall clock: every deadline up to now comes due,
    // the hygiene clocks' too.
    let as_of = Micros::now().minus(Span::hours(1)).to_string();
    let expected = replay_alerts(&write_events(dir.path(), &events), &as_of, dir.path());
    let of_kind = |kinds: &[&str]| -> BTreeSet<String> {
        let kinds: Vec<Value> = kinds.iter().map(|k| json!(k)).collect();
        expected
            .iter()
            .filter(|(_, a)| kinds.contains(&a["kind"]))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let all: BTreeSet<String> = expected.keys().cloned().collect();
    let severe = of_kind(&[
        "revoked_entity_used",
        "echo_missing",
        "reactivated",
        "revocation_failed",
        "source_silent",
    ]);
    let paged = of_kind(&["echo_missing", "revoked_entity_used"]);
    // PagerDuty resolves with the dedup_key of the echo_missing a late echo follows.
    let resolved: BTreeSet<String> = expected
        .values()
        .filter(|a| a["kind"] == "echo_late")
        .map(|late| {
            let (id, _) = expected
                .iter()
                .find(|(_, a)| {
                    a["kind"] == "echo_missing"
                        && a["case_id"] == late["case_id"]
                        && a["system"] == late["system"]
                })
                .expect("an echo_late follows an echo_missing");
            id.clone()
        })
        .collect();
    let reactivated = of_kind(&["reactivated"]);
    assert!(
        !resolved.is_empty() && !reactivated.is_empty() && severe.len() < all.len(),
        "a scenario with every case"
    );

    eprintln!(
        "{} alerts: {} for Slack, {} PagerDuty triggers and {} resolves, {} refused",
        all.len(),
        severe.len(),
        paged.len(),
        resolved.len(),
        reactivated.len()
    );
    let log = dir.path().join("run.log");
    let child = run(&cfg_path, &dir.path().join("state"), &log);
    produce(&cfg, &events, 0).unwrap();
    let started = Instant::now();
    let done = || {
        once_each("webhook", webhook_ids(&hook)) == all
            && once_each("elasticsearch", es_ids(&es)) == all
            && once_each("splunk", hec_ids(&hec)) == all
            && once_each("slack", slack_ids(&slack)) == severe
            && pd.accepted().len() == paged.len() + resolved.len()
    };
    while !done() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let dead = read_until(
        &broker.brokers(),
        "lockstep.dead-letters",
        Duration::from_secs(30),
        |r| r.len() >= reactivated.len(),
    );
    let on_kafka = alerts(&read_until(
        &broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(30),
        |r| alerts(r).len() >= all.len(),
    ));
    eprintln!("every sink done after {:?}", started.elapsed());
    terminate(child, &log);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert_same_alerts(&on_kafka, &expected, &log);

    assert_eq!(once_each("webhook", webhook_ids(&hook)), all, "{log_text}");
    assert_eq!(once_each("slack", slack_ids(&slack)), severe);
    assert_eq!(once_each("splunk", hec_ids(&hec)), all);
    assert_eq!(once_each("elasticsearch", es_ids(&es)), all);
    let (triggered, resolves) = pagerduty_ids(&pd);
    assert_eq!(once_each("pagerduty", triggered), paged);
    assert_eq!(once_each("pagerduty resolve", resolves), resolved);
    for stand_in in [&hook, &slack, &pd, &hec, &es] {
        assert_eq!(stand_in.answered(503), 2, "the outage was ridden out");
    }
    // Refused for good: each alert once to the receiver, then to the dead letters.
    let refused: Vec<Request> = refuses.requests.lock().unwrap().clone();
    assert!(refused.iter().all(|r| r.status == 400));
    let tried = refused.iter().flat_map(|r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let alerts = body.as_array().cloned().unwrap_or_else(|| vec![body]);
        alerts
            .into_iter()
            .map(|a| a["alert_id"].as_str().unwrap().to_owned())
    });
    assert_eq!(
        once_each("refuses", tried.collect()),
        reactivated,
        "not tried again"
    );
    let dead: BTreeSet<String> = dead
        .iter()
        .filter(|(_, _, h)| h.get("notify.sink").map(String::as_str) == Some("refuses"))
        .inspect(|(_, _, h)| {
            assert!(h["reason"].contains("HTTP 400: {\"error\":\"invalid_payload\"}"))
        })
        .map(|(_, _, h)| h["alert_id"].clone())
        .collect();
    assert_eq!(dead, reactivated);
    // The token and the secrets never reach the log.
    for secret in [SECRET, "hec-token-1", "ZXMta2V5", ROUTING_KEY] {
        assert!(!log_text.contains(secret));
    }
    // The payloads docs/notify.md shows, when asked for.
    if let Ok(out) = std::env::var("LOCKSTEP_NOTIFY_SAMPLES") {
        let body = |s: &StandIn| serde_json::from_slice::<Value>(&s.accepted()[0].body).unwrap();
        let samples = json!({ "slack": body(&slack), "pagerduty": body(&pd) });
        std::fs::write(out, serde_json::to_string_pretty(&samples).unwrap()).unwrap();
    }
}

/// The alert ids of the HEC events, each in the HEC envelope.
fn hec_ids(hec: &StandIn) -> Vec<String> {
    let mut ids = Vec::new();
    for r in hec.accepted() {
        assert_eq!(r.path, "/services/collector/event");
        assert_eq!(r.headers["authorization"], "Splunk hec-token-1");
        for e in ndjson(&r.body) {
            assert!(
                e["time"].is_f64() || e["time"].is_u64(),
                "epoch seconds: {e}"
            );
            assert_eq!(e["index"], "security");
            assert_eq!(e["sourcetype"], "lockstep:alert");
            ids.push(e["event"]["alert_id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

/// The `_id`s the Elasticsearch stand-in indexed (201), each an action/document pair.
fn es_ids(es: &StandIn) -> Vec<String> {
    let mut ids = Vec::new();
    let mut seen = BTreeMap::new();
    for r in es.accepted() {
        assert_eq!(r.path, "/_bulk");
        assert_eq!(r.headers["content-type"], "application/x-ndjson");
        assert_eq!(r.headers["authorization"], "ApiKey ZXMta2V5");
        assert!(r.body.ends_with(b"\n"));
        let lines = ndjson(&r.body);
        assert_eq!(lines.len() % 2, 0, "action and document pairs");
        for pair in lines.chunks(2) {
            let (action, doc) = (&pair[0]["create"], &pair[1]);
            assert_eq!(action["_index"], "lockstep-alerts");
            assert!(is_rfc3339(&doc["@timestamp"]));
            assert_eq!(doc["event"]["kind"], "alert");
            assert!(doc["event"]["severity"].is_u64());
            assert!(doc["rule"]["name"].is_string());
            assert_eq!(action["_id"], doc["event"]["id"]);
            let id = action["_id"].as_str().unwrap().to_owned();
            // A create of an _id already held is a conflict, not a second document.
            if seen.insert(id.clone(), ()).is_none() {
                ids.push(id);
            }
        }
    }
    ids
}

/// The PagerDuty events: the dedup keys of the triggers, and of the resolves.
fn pagerduty_ids(pd: &StandIn) -> (Vec<String>, Vec<String>) {
    let (mut triggers, mut resolves) = (Vec::new(), Vec::new());
    for r in pd.accepted() {
        let e: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(e["routing_key"].as_str().map(str::len), Some(32));
        let key = e["dedup_key"].as_str().unwrap().to_owned();
        assert!(!key.is_empty() && key.len() <= 255);
        match e["event_action"].as_str().unwrap() {
            "trigger" => {
                let p = &e["payload"];
                let summary = p["summary"].as_str().unwrap();
                assert!(!summary.is_empty() && summary.len() <= 1024);
                assert!(p["source"].as_str().is_some_and(|s| !s.is_empty()));
                assert!(["critical", "error", "warning", "info"]
                    .contains(&p["severity"].as_str().unwrap()));
                assert!(is_rfc3339(&p["timestamp"]));
                assert!(p["custom_details"].is_object());
                triggers.push(key);
            }
            "resolve" => resolves.push(key),
            other => panic!("event_action {other}"),
        }
    }
    (triggers, resolves)
}

/// The alerts waiting for a receiver that is down survive `kill -9`: the next run sends
/// them from the outbox.
#[test]
fn alerts_waiting_for_a_receiver_that_is_down_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 2);
    broker.create_topics(&OUTPUTS, 1);
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook = {
        let up = up.clone();
        StandIn::start(
            move |_, _| match up.load(std::sync::atomic::Ordering::SeqCst) {
                true => (200, vec![], String::new()),
                false => (503, vec![], String::new()),
            },
        )
    };
    let sinks = format!(
        "[correlator]\nallowed_lateness = \"30s\"\nidle_timeout = \"1s\"\n[[notify]]\ntype = \"webhook\"\nurl = \"{}\"\nkinds = [\"echo_missing\", \"revoked_entity_used\"]\n",
        hook.url
    );
    let cfg_path = config(dir.path(), &broker, &sinks);
    let cfg = Config::load(&cfg_path).unwrap();
    let events = generate(&Scenario::new(8, 40));
    let as_of = Micros::now().minus(Span::hours(1)).to_string();
    let expected = replay_alerts(&write_events(dir.path(), &events), &as_of, dir.path());
    let wanted: BTreeSet<String> = expected
        .iter()
        .filter(|(_, a)| a["kind"] == "echo_missing" || a["kind"] == "revoked_entity_used")
        .map(|(id, _)| id.clone())
        .collect();
    assert!(!wanted.is_empty());

    let (state, log) = (dir.path().join("state"), dir.path().join("run.log"));
    let mut child = run(&cfg_path, &state, &log);
    produce(&cfg, &events, 0).unwrap();
    // Every alert is on Kafka, so committed: those for the webhook wait in the outbox.
    read_until(
        &broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(60),
        |r| alerts(r).len() >= expected.len(),
    );
    assert!(hook.answered(503) > 0, "tried while down");
    child.kill().unwrap();
    child.wait().unwrap();

    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let child = run(&cfg_path, &state, &log);
    let started = Instant::now();
    while webhook_ids_unsigned(&hook).len() < wanted.len()
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(child, &log);
    assert_eq!(once_each("webhook", webhook_ids_unsigned(&hook)), wanted);
}

/// The alert ids an unsigned webhook received.
fn webhook_ids_unsigned(hook: &StandIn) -> Vec<String> {
    let mut ids = Vec::new();
    for r in hook.accepted() {
        assert!(
            !r.headers.contains_key("x-lockstep-signature"),
            "no secret, no signature"
        );
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let alerts = body.as_array().cloned().unwrap_or_else(|| vec![body]);
        ids.extend(
            alerts
                .iter()
                .map(|a| a["alert_id"].as_str().unwrap().to_owned()),
        );
    }
    ids
}

/// `replay --notify` delivers a replay's alerts to the sinks, after their outage; it
/// fails when a receiver refuses them.
#[test]
fn a_replay_with_notify_delivers_its_alerts_once_each_after_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let hook = after_an_outage(|_| (200, vec![], String::new()));
    let refuses = StandIn::start(|_, _| (400, vec![], "no".into()));
    let events = write_events(dir.path(), &generate(&Scenario::new(3, 30)));
    let as_of = Micros::now().minus(Span::hours(1)).to_string();
    let replay = |url: &str, out: &str| {
        let cfg = dir.path().join(format!("{out}.toml"));
        std::fs::write(
            &cfg,
            format!("[[notify]]\ntype = \"webhook\"\nurl = \"{url}\"\n"),
        )
        .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args(["replay", "--notify", "--as-of", &as_of, "--input"])
            .arg(&events)
            .arg("--config")
            .arg(&cfg)
            .arg("--alerts")
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    let ok = replay(&hook.url, "alerts.ndjson");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let written: BTreeSet<String> = std::fs::read_to_string(dir.path().join("alerts.ndjson"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["alert_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(!written.is_empty());
    assert_eq!(once_each("webhook", webhook_ids_unsigned(&hook)), written);
    assert_eq!(hook.answered(503), 2);

    let refused = replay(&refuses.url, "refused.ndjson");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "{} of {} alerts were not delivered",
            written.len(),
            written.len()
        )),
        "{stderr}"
    );
}
