//! One request to a receiver and what its answer means for each alert sent: the URL,
//! headers (HMAC signature, HEC token, Elasticsearch key) and body of each sink type,
//! and the verdict — taken, try again (5xx, 429, 408, no answer; `Retry-After` honoured),
//! or refused for good (another 4xx; for Elasticsearch, per bulk item, where 409 is a
//! document already indexed: taken).

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::format;
use crate::alert::Alert;
use crate::client::Auth;
use crate::config::notify::{NotifyConfig, SinkType};

/// What became of one alert of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver took it.
    Taken,
    /// Try again, not before this (when the receiver said).
    Retry(Option<Duration>),
    /// Refused for good, and why.
    Refused(String),
}

/// The longest `Retry-After` followed.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A sink's HTTP side.
pub struct Receiver {
    config: NotifyConfig,
    agent: ureq::Agent,
}

impl Receiver {
    /// The receiver `config` describes.
    pub fn new(config: NotifyConfig) -> Receiver {
        let timeout = config.timeout.to_std();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!("lockstep/", env!("CARGO_PKG_VERSION")))
            .build();
        Receiver { config, agent }
    }

    /// Alerts one request carries at most: Slack and PagerDuty take one at a time.
    pub fn batch(&self) -> usize {
        match self.config.sink {
            SinkType::Slack | SinkType::Pagerduty => 1,
            SinkType::Webhook | SinkType::SplunkHec | SinkType::Elasticsearch => 100,
        }
    }

    /// The URL, headers and body that deliver `alerts`.
    fn request(&self, alerts: &[Alert]) -> (String, Vec<(&'static str, String)>, Vec<u8>) {
        let c = &self.config;
        let base = c.url.trim_end_matches('/');
        let json = ("Content-Type", "application/json".to_owned());
        let one = |value: Value| serde_json::to_vec(&value).unwrap_or_default();
        match c.sink {
            SinkType::Webhook => {
                let body = format::webhook(alerts);
                let mut headers = vec![json];
                if let Some(secret) = &c.secret {
                    let at = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                        .to_string();
                    headers.push(("X-Lockstep-Signature", signature(secret, &at, &body)));
                    headers.push(("X-Lockstep-Timestamp", at));
                }
                (c.url.clone(), headers, body)
            }
            SinkType::Slack => (c.url.clone(), vec![json], one(format::slack(&alerts[0]))),
            SinkType::Pagerduty => {
                let key = c.routing_key.as_deref().unwrap_or_default();
                (
                    c.url.clone(),
                    vec![json],
                    one(format::pagerduty(&alerts[0], key)),
                )
            }
            SinkType::SplunkHec => {
                let token = c.token.as_deref().unwrap_or_default();
                let body = format::splunk_hec(alerts, c.index.as_deref(), c.sourcetype.as_deref());
                let auth = ("Authorization", format!("Splunk {token}"));
                (
                    format!("{base}/services/collector/event"),
                    vec![json, auth],
                    body,
                )
            }
            SinkType::Elasticsearch => {
                let index = c.index.as_deref().unwrap_or_default();
                let mut headers = vec![("Content-Type", "application/x-ndjson".to_owned())];
                match (&c.api_key, &c.basic_auth) {
                    (Some(key), _) => headers.push(("Authorization", format!("ApiKey {key}"))),
                    (None, Some(user)) => {
                        headers.push(("Authorization", Auth::Basic(user.clone()).header()));
                    }
                    (None, None) => {}
                }
                (
                    format!("{base}/_bulk"),
                    headers,
                    format::elasticsearch(alerts, index),
                )
            }
        }
    }

    /// Sends `alerts` in one request: a verdict for each.
    pub fn deliver(&self, alerts: &[Alert]) -> Vec<Verdict> {
        let (url, headers, body) = self.request(alerts);
        let mut request = self.agent.post(&url);
        for (name, value) in &headers {
            request = request.set(name, value);
        }
        let all = |verdict: Verdict| vec![verdict; alerts.len()];
        let response = match request.send_bytes(&body) {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                let after = response
                    .header("Retry-After")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                return all(match status {
                    408 | 429 | 500.. => Verdict::Retry(after),
                    _ => {
                        let text = response.into_string().unwrap_or_default();
                        Verdict::Refused(format!("HTTP {status}: {}", excerpt(&text)))
                    }
                });
            }
            // Not the URL: a Slack webhook's URL is its credential.
            Err(ureq::Error::Transport(t)) => {
                tracing::debug!(kind = %t.kind(), message = t.message().unwrap_or(""), "no answer");
                return all(Verdict::Retry(None));
            }
        };
        if self.config.sink != SinkType::Elasticsearch {
            return all(Verdict::Taken);
        }
        let answer: Value = response
            .into_string()
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        bulk_verdicts(&answer, alerts.len())
    }
}

/// `sha256=` and the hex HMAC-SHA256, under `secret`, of `timestamp.body`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The start of a receiver's answer, for the log and the dead letter.
fn excerpt(text: &str) -> &str {
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim()
}

/// The verdict of each item of an Elasticsearch `_bulk` answer (`items[i].create.status`).
/// An answer without them (a proxy's page, say) means: try again.
fn bulk_verdicts(answer: &Value, count: usize) -> Vec<Verdict> {
    let items = answer["items"].as_array();
    (0..count)
        .map(|i| {
            let item = items
                .and_then(|items| items.get(i))
                .map(|item| &item["create"]);
            match item.and_then(|item| item["status"].as_u64()) {
                Some(200..=299 | 409) => Verdict::Taken,
                Some(408 | 429) | Some(500..) | None => Verdict::Retry(None),
                Some(status) => Verdict::Refused(format!(
                    "HTTP {status}: {}",
                    item.map(|i| i["error"].to_string()).unwrap_or_default()
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_and_body() {
        // As Python's hmac.new(b"Jefe", b'1700000000.{"a":1}', hashlib.sha256) has it.
        assert_eq!(
            signature("Jefe", "1700000000", br#"{"a":1}"#),
            "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
    }

    #[test]
    fn a_bulk_answer_is_judged_item_by_item() {
        let answer = json!({ "errors": true, "items": [
            { "create": { "status": 201 } },
            { "create": { "status": 409, "error": { "type": "version_conflict_engine_exception" } } },
            { "create": { "status": 429 } },
            { "create": { "status": 400, "error": { "type": "mapper_parsing_exception" } } },
        ]});
        let v = bulk_verdicts(&answer, 5);
        assert_eq!(
            v[..3],
            [Verdict::Taken, Verdict::Taken, Verdict::Retry(None)]
        );
        assert!(matches!(&v[3], Verdict::Refused(why) if why.contains("mapper_parsing_exception")));
        assert_eq!(
            v[4],
            Verdict::Retry(None),
            "an item the answer does not mention"
        );
    }
}
