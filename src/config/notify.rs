//! `[[notify]]`: alert sinks beside Kafka — a generic webhook, Slack, PagerDuty, Splunk
//! HEC and Elasticsearch — with their filters and per-type keys, checked at start: a key
//! that does not apply to the sink's type, or a missing one, fails naming it.

use serde::Deserialize;

use crate::alert::{Alert, AlertKind, Severity};
use crate::time::Span;

/// What a sink speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkType {
    /// The canonical alert JSON, POSTed (an object, or an array when batched).
    Webhook,
    /// A Slack incoming webhook (Block Kit).
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Splunk HTTP Event Collector.
    SplunkHec,
    /// Elasticsearch `_bulk`, ECS field names.
    Elasticsearch,
}

impl SinkType {
    /// The name in the configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            SinkType::Webhook => "webhook",
            SinkType::Slack => "slack",
            SinkType::Pagerduty => "pagerduty",
            SinkType::SplunkHec => "splunk_hec",
            SinkType::Elasticsearch => "elasticsearch",
        }
    }
}

/// PagerDuty's Events API v2 endpoint, the default `url` of a `pagerduty` sink.
pub const PAGERDUTY_EVENTS: &str = "https://events.pagerduty.com/v2/enqueue";

/// One `[[notify]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// What the receiver speaks.
    #[serde(rename = "type")]
    pub sink: SinkType,
    /// Where to POST (Splunk: the HEC base URL; Elasticsearch: the cluster URL).
    #[serde(default)]
    pub url: String,
    /// Names the sink in metrics, logs and the outbox (default `<type>-<position>`).
    /// Alerts waiting for a sink across a restart wait under its name.
    pub name: Option<String>,
    /// Only alerts at least this severe.
    pub min_severity: Option<Severity>,
    /// Only these kinds.
    pub kinds: Option<Vec<AlertKind>>,
    /// (webhook) Signs each body with HMAC-SHA256.
    pub secret: Option<String>,
    /// (pagerduty) The integration key of the service.
    pub routing_key: Option<String>,
    /// (splunk_hec) The HEC token.
    pub token: Option<String>,
    /// (splunk_hec, elasticsearch) The index.
    pub index: Option<String>,
    /// (splunk_hec) The sourcetype (default `lockstep:alert`).
    pub sourcetype: Option<String>,
    /// (elasticsearch) An API key (the base64 `id:api_key` Elasticsearch hands out).
    pub api_key: Option<String>,
    /// (elasticsearch) `"user:password"` instead.
    pub basic_auth: Option<String>,
    /// Alerts waiting for this sink before the oldest are dropped (counted).
    #[serde(default = "default_max_backlog")]
    pub max_backlog: usize,
    /// Each request's timeout.
    #[serde(default = "default_timeout", deserialize_with = "super::span")]
    pub timeout: Span,
}

const fn default_max_backlog() -> usize {
    10_000
}

const fn default_timeout() -> Span {
    Span::secs(10)
}

impl NotifyConfig {
    /// The sink's name: `name`, or `<type>-<position>`.
    pub fn name(&self, position: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-{position}", self.sink.as_str()))
    }

    /// Whether `alert` goes to this sink. PagerDuty resolves an `echo_missing` incident
    /// with the `echo_late` that follows, so there an `echo_late` passes whenever an
    /// `echo_missing` would.
    pub fn wants(&self, alert: &Alert) -> bool {
        let kind = match (self.sink, alert.kind) {
            (SinkType::Pagerduty, AlertKind::EchoLate) => AlertKind::EchoMissing,
            (_, kind) => kind,
        };
        self.min_severity.is_none_or(|min| kind.severity() <= min)
            && self
                .kinds
                .as_ref()
                .is_none_or(|kinds| kinds.contains(&kind))
    }

    /// Checks the entry at `position`, filling in PagerDuty's default URL.
    pub fn validate(&mut self, position: usize) -> Result<(), String> {
        let at = format!("notify[{position}]");
        let ty = self.sink.as_str();
        if self.sink == SinkType::Pagerduty && self.url.is_empty() {
            self.url = PAGERDUTY_EVENTS.into();
        }
        // The URL is not echoed: a Slack webhook URL is itself the credential.
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "{at}.url is missing or not an http(s):// URL: give the receiver's endpoint"
            ));
        }
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(format!(
                "{at}.name is empty: give the sink a name, or omit the key"
            ));
        }
        if self.kinds.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!(
                "{at}.kinds is empty: list the alert kinds to send, or omit the key for all"
            ));
        }
        if self.max_backlog == 0 {
            return Err(format!(
                "{at}.max_backlog is 0: give how many alerts may wait for the sink (default 10000)"
            ));
        }
        let allowed: &[&str] = match self.sink {
            SinkType::Webhook => &["secret"],
            SinkType::Slack => &[],
            SinkType::Pagerduty => &["routing_key"],
            SinkType::SplunkHec => &["token", "index", "sourcetype"],
            SinkType::Elasticsearch => &["index", "api_key", "basic_auth"],
        };
        let given = [
            ("secret", self.secret.is_some()),
            ("routing_key", self.routing_key.is_some()),
            ("token", self.token.is_some()),
            ("index", self.index.is_some()),
            ("sourcetype", self.sourcetype.is_some()),
            ("api_key", self.api_key.is_some()),
            ("basic_auth", self.basic_auth.is_some()),
        ];
        if let Some((key, _)) = given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
            return Err(format!(
                "{at}.{key} does not apply to type = \"{ty}\" (its keys: {}): remove it",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ));
        }
        let required: &[(&str, &Option<String>)] = match self.sink {
            SinkType::Pagerduty => &[("routing_key", &self.routing_key)],
            SinkType::SplunkHec => &[("token", &self.token)],
            SinkType::Elasticsearch => &[("index", &self.index)],
            SinkType::Webhook | SinkType::Slack => &[],
        };
        for (key, value) in required {
            if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                return Err(format!("{at}.{key} is missing: type = \"{ty}\" needs it"));
            }
        }
        if self.secret.as_deref().is_some_and(str::is_empty) {
            return Err(format!(
                "{at}.secret is empty: give the shared signing secret, or omit the key"
            ));
        }
        if self.routing_key.as_ref().is_some_and(|k| k.len() != 32) {
            return Err(format!(
                "{at}.routing_key is not 32 characters: give the integration key of the PagerDuty service's Events API v2 integration"
            ));
        }
        if self.api_key.is_some() && self.basic_auth.is_some() {
            return Err(format!(
                "{at}.api_key and {at}.basic_auth are both set: keep one"
            ));
        }
        if self.basic_auth.as_deref().is_some_and(|b| !b.contains(':')) {
            return Err(format!("{at}.basic_auth is not \"user:password\""));
        }
        Ok(())
    }
}

/// Checks every entry; names must differ (they key the outbox).
pub fn validate(sinks: &mut [NotifyConfig]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for (i, sink) in sinks.iter_mut().enumerate() {
        sink.validate(i)?;
        if !names.insert(sink.name(i)) {
            return Err(format!(
                "notify[{i}].name {:?} is taken by another [[notify]] entry: give each sink its own name",
                sink.name(i)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn error(entry: &str) -> String {
        Config::parse(&format!("[[notify]]\n{entry}"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_sink_is_checked_at_start_naming_the_key() {
        assert!(error("type = \"slack\"").contains("notify[0].url is missing"));
        assert!(error("type = \"pagerduty\"").contains("notify[0].routing_key is missing"));
        assert!(error("type = \"pagerduty\"\nrouting_key = \"short\"")
            .contains("notify[0].routing_key is not 32 characters"));
        assert!(error("type = \"splunk_hec\"\nurl = \"https://h:8088\"")
            .contains("notify[0].token is missing"));
        assert!(error("type = \"elasticsearch\"\nurl = \"http://es:9200\"")
            .contains("notify[0].index is missing"));
        assert!(
            error("type = \"slack\"\nurl = \"https://hooks\"\nsecret = \"shh-1\"")
                .contains("notify[0].secret does not apply to type = \"slack\"")
        );
        assert!(error("type = \"teams\"\nurl = \"https://x\"").contains("unknown variant `teams`"));
        assert!(
            error("type = \"webhook\"\nurl = \"https://x\"\nmin_severity = \"urgent\"")
                .contains("unknown variant `urgent`")
        );
        assert!(error("type = \"webhook\"\nurl = \"https://x\"\ncolour = 1")
            .contains("unknown field `colour`"));
        let twice = Config::parse(
            "[[notify]]\ntype = \"webhook\"\nurl = \"https://a\"\nname = \"soc\"\n[[notify]]\ntype = \"slack\"\nurl = \"https://b\"\nname = \"soc\"\n",
        );
        assert!(twice
            .err()
            .unwrap()
            .to_string()
            .contains("notify[1].name \"soc\" is taken"));
    }

    #[test]
    fn secrets_of_a_sink_never_appear_in_an_error() {
        let msg = error(
            "type = \"elasticsearch\"\nurl = \"http://es:9200\"\nindex = \"a\"\napi_key = \"s3cr3t-api\"\nbasic_auth = \"u:hunter2\"",
        );
        assert!(msg.contains("both set"), "{msg}");
        let msg = error(
            "type = \"webhook\"\nurl = \"https://x\"\nsecret = \"hunter2\"\ntoken = \"tok-123\"",
        );
        assert!(msg.contains("notify[0].token does not apply"), "{msg}");
        for secret in ["s3cr3t-api", "hunter2", "tok-123"] {
            assert!(!msg.contains(secret), "{msg}");
        }
    }

    #[test]
    fn pagerduty_gets_the_late_echo_that_resolves_what_it_was_sent() {
        let config = Config::parse(&format!(
            "[[notify]]\ntype = \"pagerduty\"\nrouting_key = \"{}\"\nmin_severity = \"high\"\nkinds = [\"echo_missing\"]\n[[notify]]\ntype = \"webhook\"\nurl = \"http://x\"\nmin_severity = \"high\"\n",
            "r".repeat(32)
        ))
        .unwrap();
        let (pd, hook) = (&config.notify[0], &config.notify[1]);
        assert_eq!(pd.url, super::PAGERDUTY_EVENTS);
        let mut alert = crate::notify::format::tests::echo_missing();
        alert.kind = crate::alert::AlertKind::EchoLate;
        assert!(
            pd.wants(&alert) && !hook.wants(&alert),
            "echo_late is medium"
        );
        alert.kind = crate::alert::AlertKind::RevokedEntityUsed;
        assert!(!pd.wants(&alert) && hook.wants(&alert));
        alert.kind = crate::alert::AlertKind::CredentialUnused;
        assert!(!hook.wants(&alert), "low");
    }
}
