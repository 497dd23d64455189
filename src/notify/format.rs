//! What each receiver is sent, in its documented format: the canonical alert JSON
//! (webhook), a Slack Block Kit message, a PagerDuty Events v2 event, Splunk HEC events,
//! and an Elasticsearch `_bulk` body with ECS field names.

use serde_json::{json, Value};

use crate::alert::{alert_id, Alert, AlertKind, Severity};

/// Webhook: one alert as an object, several as an array.
pub fn webhook(alerts: &[Alert]) -> Vec<u8> {
    match alerts {
        [one] => serde_json::to_vec(one),
        many => serde_json::to_vec(many),
    }
    .unwrap_or_default()
}

/// When the trouble began: the revocation (echo kinds, `revoked_entity_used`,
/// `reactivated`), the issue (`rotation_overdue`), the last activity
/// (`credential_unused`), else the alert's time.
fn since(a: &Alert) -> crate::time::Micros {
    a.revoked_at
        .or(a.issued_at)
        .or(a.last_active_at)
        .unwrap_or(a.at)
}

/// Slack's mrkdwn control characters, escaped as Slack asks.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The emoji and the word Slack shows for a severity.
fn badge(s: Severity) -> (&'static str, &'static str) {
    match s {
        Severity::Critical => (":red_circle:", "Critical"),
        Severity::High => (":large_orange_circle:", "High"),
        Severity::Medium => (":large_yellow_circle:", "Medium"),
        Severity::Low => (":white_circle:", "Low"),
    }
}

/// The systems an alert concerns, said for a reader.
fn systems_line(a: &Alert) -> String {
    let mut line = a.systems_text().replace(',', ", ");
    if let Some(origin) = a.origin_system {
        line.push_str(&format!(" (revoked in {origin})"));
    }
    line
}

/// Slack incoming webhook: what, which systems, since when, and the lineage command.
pub fn slack(a: &Alert) -> Value {
    let since = since(a);
    let secs = since.0.div_euclid(1_000_000);
    let mut fields = vec![
        json!({ "type": "mrkdwn", "text": format!("*Identity*\n`{}`", escape(&a.root)) }),
        json!({ "type": "mrkdwn", "text": format!("*Systems*\n{}", escape(&systems_line(a))) }),
        json!({ "type": "mrkdwn", "text": format!("*Since*\n<!date^{secs}^{{date_short_pretty}} {{time}} UTC|{since}>") }),
    ];
    let subject = a.subject();
    if !subject.is_empty() && subject != a.root {
        fields.push(json!({ "type": "mrkdwn", "text": format!("*Still active*\n`{}`", escape(&subject.replace(',', "`, `"))) }));
    }
    if let Some(case) = &a.case_id {
        fields.push(json!({ "type": "mrkdwn", "text": format!("*Case*\n`{}`", escape(case)) }));
    }
    let (emoji, word) = badge(a.severity);
    json!({
        "text": format!("[{}] {} {}: {}", a.severity.to_string().to_uppercase(), a.kind, a.root, a.detail),
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": format!("{word} · {}", a.kind), "emoji": true } },
            { "type": "section", "text": { "type": "mrkdwn", "text": format!("{emoji} {}", escape(&a.detail)) } },
            { "type": "section", "fields": fields },
            { "type": "section", "text": { "type": "mrkdwn", "text": format!("*Trace the lineage*\n```lockstep lineage {}```", escape(&a.root)) } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": format!("lockstep · alert `{}` · raised {}", a.alert_id, a.at) } ] },
        ],
    })
}

/// PagerDuty's severity for ours.
pub fn pagerduty_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "info",
    }
}

/// PagerDuty Events v2: a trigger de-duplicated by `alert_id`; an `echo_late` resolves
/// the incident its `echo_missing` opened (whose id is the same function of case,
/// system and root, with the kind `echo_missing`).
pub fn pagerduty(a: &Alert, routing_key: &str) -> Value {
    if a.kind == AlertKind::EchoLate {
        if let (Some(case), Some(system)) = (&a.case_id, a.system) {
            let missing = alert_id(AlertKind::EchoMissing, Some(case), system, &a.root, None);
            return json!({ "routing_key": routing_key, "event_action": "resolve", "dedup_key": missing });
        }
    }
    let mut summary = format!(
        "{} {} on {}: {}",
        a.kind,
        a.root,
        a.systems_text(),
        a.detail
    );
    if summary.len() > 1024 {
        let mut end = 1021;
        while !summary.is_char_boundary(end) {
            end -= 1;
        }
        summary.truncate(end);
        summary.push_str("...");
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": a.alert_id,
        "client": "lockstep",
        "payload": {
            "summary": summary,
            "source": format!("lockstep/{}", a.systems_text()),
            "severity": pagerduty_severity(a.severity),
            "timestamp": a.at,
            "component": a.root,
            "group": a.origin_system.map(|s| s.as_str()),
            "class": a.kind.as_str(),
            "custom_details": { "lineage": format!("lockstep lineage {}", a.root), "alert": a },
        },
    })
}

/// Splunk HEC `/services/collector/event`: one event object each, concatenated.
pub fn splunk_hec(alerts: &[Alert], index: Option<&str>, sourcetype: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    for a in alerts {
        let mut event = json!({
            "time": a.at.0 as f64 / 1e6,
            "source": "lockstep",
            "sourcetype": sourcetype.unwrap_or("lockstep:alert"),
            "event": a,
        });
        if let Some(index) = index {
            event["index"] = json!(index);
        }
        body.extend(serde_json::to_vec(&event).unwrap_or_default());
        body.push(b'\n');
    }
    body
}

/// Elastic Security's risk score of each severity, used as ECS `event.severity`.
fn ecs_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 99,
        Severity::High => 73,
        Severity::Medium => 47,
        Severity::Low => 21,
    }
}

/// One alert as an ECS document; the canonical alert rides under `lockstep`.
pub fn ecs_document(a: &Alert) -> Value {
    json!({
        "@timestamp": a.at,
        "message": a.detail,
        "event": {
            "kind": "alert",
            "category": ["iam"],
            "type": ["info"],
            "id": a.alert_id,
            "severity": ecs_severity(a.severity),
            "risk_score": ecs_severity(a.severity),
            "dataset": "lockstep.alerts",
            "provider": "lockstep",
            "start": since(a),
        },
        "rule": { "name": a.kind.as_str(), "id": a.kind.as_str(), "ruleset": "lockstep", "description": a.detail },
        "user": { "name": a.root },
        "observer": { "product": "lockstep", "vendor": "lockstep", "type": "correlator" },
        "labels": { "severity": a.severity.to_string(), "case_id": a.case_id, "systems": a.systems_text() },
        "lockstep": a,
    })
}

/// Elasticsearch `_bulk`: a `create` action with `_id` = `alert_id` (a re-sent alert is
/// refused as a conflict, not indexed twice) and the document, per alert.
pub fn elasticsearch(alerts: &[Alert], index: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for a in alerts {
        let action = json!({ "create": { "_index": index, "_id": a.alert_id } });
        for line in [action, ecs_document(a)] {
            body.extend(serde_json::to_vec(&line).unwrap_or_default());
            body.push(b'\n');
        }
    }
    body
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::System;
    use crate::time::Micros;

    /// An `echo_missing` of vault for `sa-ci-deployer`, revoked in IAM.
    pub(crate) fn echo_missing() -> Alert {
        let revoked = Micros::parse("2026-03-02T10:00:00Z").unwrap();
        Alert {
            alert_id: alert_id(
                AlertKind::EchoMissing,
                Some("c-1"),
                System::Vault,
                "sa-ci-deployer",
                None,
            ),
            kind: AlertKind::EchoMissing,
            severity: Severity::High,
            case_id: Some("c-1".into()),
            root: "sa-ci-deployer".into(),
            entity: None,
            entities: Some(vec!["vault:lease/ci".into()]),
            system: Some(System::Vault),
            systems: None,
            origin_system: Some(System::Iam),
            revoked_at: Some(revoked),
            issued_at: None,
            last_active_at: None,
            rotated_entity: None,
            rotated_at: None,
            first_seen: None,
            deadline: Some(Micros::parse("2026-03-02T10:15:00Z").unwrap()),
            at: Micros::parse("2026-03-02T10:15:00Z").unwrap(),
            latency_ms: None,
            event_id: None,
            detail: "vault has not echoed the revocation <of> sa-ci-deployer & its lease".into(),
        }
    }

    #[test]
    fn a_webhook_gets_an_object_or_an_array() {
        let one: Value = serde_json::from_slice(&webhook(&[echo_missing()])).unwrap();
        assert_eq!(one["alert_id"], echo_missing().alert_id);
        let two: Value =
            serde_json::from_slice(&webhook(&[echo_missing(), echo_missing()])).unwrap();
        assert_eq!(two.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn slack_says_what_which_systems_since_when_and_the_lineage_command() {
        let m = slack(&echo_missing());
        let blocks = m["blocks"].as_array().unwrap();
        let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["header", "section", "section", "section", "context"]
        );
        assert_eq!(
            blocks[0]["text"]["type"], "plain_text",
            "headers take plain text only"
        );
        assert!(
            m["text"].as_str().unwrap().contains("echo_missing"),
            "notification fallback"
        );
        let text = m.to_string();
        assert!(text.contains("vault (revoked in iam)"), "{text}");
        assert!(
            text.contains("<!date^1772445600^"),
            "since the revocation: {text}"
        );
        assert!(text.contains("lockstep lineage sa-ci-deployer"), "{text}");
        assert!(
            text.contains("&lt;of&gt; sa-ci-deployer &amp; its"),
            "escaped: {text}"
        );
        // Slack allows at most 10 fields of at most 2000 characters in a section.
        let fields = blocks[2]["fields"].as_array().unwrap();
        assert!(
            fields.len() <= 10
                && fields
                    .iter()
                    .all(|f| f["text"].as_str().unwrap().len() <= 2000)
        );
    }

    #[test]
    fn pagerduty_triggers_by_alert_id_and_the_late_echo_resolves_it() {
        let missing = echo_missing();
        let key = "0123456789abcdef0123456789abcdef";
        let e = pagerduty(&missing, key);
        assert_eq!(e["event_action"], "trigger");
        assert_eq!(e["dedup_key"], missing.alert_id.as_str());
        assert_eq!(e["payload"]["severity"], "error");
        assert_eq!(e["payload"]["timestamp"], "2026-03-02T10:15:00.000000Z");
        assert_eq!(e["payload"]["custom_details"]["alert"]["case_id"], "c-1");
        let late = Alert {
            kind: AlertKind::EchoLate,
            alert_id: alert_id(
                AlertKind::EchoLate,
                Some("c-1"),
                System::Vault,
                "sa-ci-deployer",
                None,
            ),
            ..echo_missing()
        };
        let r = pagerduty(&late, key);
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(
            r["dedup_key"],
            missing.alert_id.as_str(),
            "the incident echo_missing opened"
        );
        let long = Alert {
            detail: "é".repeat(2000),
            ..echo_missing()
        };
        assert!(
            pagerduty(&long, key)["payload"]["summary"]
                .as_str()
                .unwrap()
                .len()
                <= 1024
        );
    }

    #[test]
    fn splunk_events_carry_epoch_seconds_and_the_alert() {
        let body = splunk_hec(&[echo_missing(), echo_missing()], Some("sec"), None);
        let events: Vec<Value> = serde_json::Deserializer::from_slice(&body)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["time"], 1_772_446_500.0);
        assert_eq!(events[0]["index"], "sec");
        assert_eq!(events[0]["sourcetype"], "lockstep:alert");
        assert_eq!(events[0]["event"]["kind"], "echo_missing");
    }

    #[test]
    fn elasticsearch_bulk_pairs_a_create_by_alert_id_with_an_ecs_document() {
        let body = String::from_utf8(elasticsearch(&[echo_missing()], "lockstep-alerts")).unwrap();
        assert!(body.ends_with('\n'), "NDJSON ends with a newline");
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["create"]["_id"], echo_missing().alert_id.as_str());
        assert_eq!(lines[1]["@timestamp"], "2026-03-02T10:15:00.000000Z");
        assert_eq!(lines[1]["event"]["kind"], "alert");
        assert_eq!(lines[1]["event"]["severity"], 73);
        assert_eq!(lines[1]["rule"]["name"], "echo_missing");
    }
}
