//! Configuration: the TOML file (`config/lockstep.toml` documents every key), its
//! defaults (SPEC §4), and validation that fails at start with the key, the value and
//! what is allowed. String values may take `${VAR}` from the environment ([`env`](mod@env));
//! secret values never appear in an error.

pub mod consistency;
pub mod env;
pub mod notify;
pub mod show;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

pub use consistency::ConsistencyConfig;

use crate::adapter::{Format, Mapping, Normalizer};
use crate::decode::registry::Registry;
use crate::error::ConfigError;
use crate::event::{EntityKind, System};
use crate::store::MemoryBudget;
use crate::time::Span;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Echo deadlines per system, with per-entity-kind overrides.
    #[serde(default)]
    pub sla: SlaPolicy,
    /// Correlator timing knobs.
    #[serde(default)]
    pub correlator: CorrelatorConfig,
    /// Credential hygiene (SPEC §4b): rotation and dormancy limits per entity kind.
    #[serde(default)]
    pub hygiene: HygieneConfig,
    /// Consistency (SPEC §4c): rotation rounds and registration in the system of record.
    #[serde(default)]
    pub consistency: ConsistencyConfig,
    /// Where the RocksDB state lives.
    #[serde(default)]
    pub state: StateConfig,
    /// The Kafka cluster (live pipeline).
    pub kafka: Option<KafkaConfig>,
    /// Input topics, one or more per system (live pipeline).
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Output topics (live pipeline).
    #[serde(default)]
    pub sinks: SinksConfig,
    /// The HTTP listener for metrics and health.
    #[serde(default)]
    pub api: ApiConfig,
    /// How native records map onto the organisation's ids and lineage.
    #[serde(default)]
    pub mapping: Mapping,
    /// Access to a Confluent Schema Registry.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// Alert sinks beside Kafka: webhook, Slack, PagerDuty, Splunk HEC, Elasticsearch.
    #[serde(default)]
    pub notify: Vec<notify::NotifyConfig>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|e| e.in_file(path))
    }

    /// Parses and validates configuration text, with `${VAR}` from the process
    /// environment.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(text, &|name| std::env::var(name).ok())
    }

    /// [`Config::parse`] with variables from `lookup`.
    pub fn parse_with(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let invalid = |message: String, secrets: &[String]| ConfigError::Invalid {
            path: None,
            message: env::redact(&message, secrets),
        };
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| invalid(e.to_string(), &[]))?;
        let mut secrets = env::secret_values(&table);
        let interpolated =
            env::interpolate(&mut table, lookup).map_err(|e| invalid(e, &secrets))?;
        // Without variables the text itself is parsed, so errors point into the file.
        let parsed = if interpolated {
            secrets.extend(env::secret_values(&table));
            let text = toml::to_string(&table).map_err(|e| invalid(e.to_string(), &secrets))?;
            toml::from_str::<Config>(&text)
        } else {
            toml::from_str::<Config>(text)
        };
        let mut config = parsed.map_err(|e| invalid(e.to_string(), &secrets))?;
        config.validate().map_err(|m| invalid(m, &secrets))?;
        notify::validate(&mut config.notify).map_err(|m| invalid(m, &secrets))?;
        Ok(config)
    }

    /// Checks what the live pipeline needs, when it is configured.
    fn validate(&self) -> Result<(), String> {
        self.consistency
            .validate(self.correlator.reporting_system)?;
        let mut topics = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            if s.topic.is_empty() {
                return Err(format!(
                    "sources[{i}].topic is empty: name the Kafka topic to consume"
                ));
            }
            if let Some(url) = &s.schema_registry {
                if s.format != Format::CanonicalAvro {
                    return Err(format!(
                        "sources[{i}].schema_registry is set for format {}: it only applies to canonical-avro",
                        s.format
                    ));
                }
                check_registry_url(&format!("sources[{i}].schema_registry"), url)?;
            }
            if !topics.insert(s.topic.as_str()) {
                return Err(format!(
                    "sources[{i}].topic {:?} is listed twice: give each topic one entry",
                    s.topic
                ));
            }
        }
        if self
            .api
            .token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(
                "api.token is empty: give a long random string, or omit it on a loopback listener"
                    .into(),
            );
        }
        if self.api.listen != "off" {
            if let Err(e) = self.api.listen.parse::<std::net::SocketAddr>() {
                return Err(format!(
                    "api.listen {:?} is not an address such as \"127.0.0.1:9464\" (or \"off\"): {e}",
                    self.api.listen
                ));
            }
        }
        let ordering = Span(self.correlator.allowed_lateness.0 + self.correlator.idle_timeout.0);
        if let Some(stall) = self.api.stall_after.filter(|s| *s <= ordering) {
            return Err(format!(
                "api.stall_after ({stall}) is not longer than correlator.allowed_lateness + idle_timeout ({ordering}), which events may legitimately wait: give more, such as \"10m\", or \"off\""
            ));
        }
        if self.correlator.idle_timeout == Span(0) {
            return Err("correlator.idle_timeout is 0: every partition would always be idle; give a positive duration such as \"60s\"".into());
        }
        if self.correlator.max_held_events == 0 {
            return Err("correlator.max_held_events is 0: give the number of events the live pipeline may hold for ordering (default 500000)".into());
        }
        if !self.sources.is_empty() && self.kafka.is_none() {
            return Err("[[sources]] are configured but [kafka] is missing: add [kafka] brokers = \"host:9092\"".into());
        }
        if let Some(k) = &self.kafka {
            if k.brokers.trim().is_empty() {
                return Err("kafka.brokers is empty: give a comma-separated list such as \"127.0.0.1:9092\"".into());
            }
            for key in [
                "bootstrap.servers",
                "group.id",
                "enable.auto.commit",
                "partition.assignment.strategy",
            ] {
                if k.properties.contains_key(key) {
                    return Err(format!(
                        "kafka.properties.\"{key}\" is managed by lockstep: use kafka.brokers / kafka.group_id / kafka.assignment instead"
                    ));
                }
            }
            match (&k.repartition_topic, k.assignment) {
                (Some(topic), _) if topic.trim().is_empty() => {
                    return Err("kafka.repartition_topic is empty: name the topic the instances route events through by lineage root, e.g. \"lockstep.repartition\", or remove the key when the source topics are keyed by root".into());
                }
                (Some(_), Assignment::All) => {
                    return Err("kafka.repartition_topic needs kafka.assignment = \"group\": one instance (\"all\") sees every event and needs no routing by root; remove the key or join a group".into());
                }
                (Some(topic), _) if self.sources.iter().any(|s| &s.topic == topic) => {
                    return Err(format!("kafka.repartition_topic \"{topic}\" is also a [[sources]] topic: give the repartition topic a name of its own"));
                }
                _ => {}
            }
        }
        if let Some(url) = &self.sinks.schema_registry {
            check_registry_url("sinks.schema_registry", url)?;
        }
        if self.sinks.max_outbox == 0 {
            return Err("sinks.max_outbox = 0 would never consume: give the outputs awaiting the broker's acknowledgement past which consumption pauses (default 200000)".into());
        }
        if self.sinks.alerts_format == AlertsFormat::Avro && self.sinks.schema_registry.is_none() {
            return Err("sinks.alerts_format = \"avro\" needs sinks.schema_registry = \"https://registry:8081\": alerts go out Confluent-framed (magic byte, schema id) under the subject <alerts_topic>-value, as Confluent consumers, ksqlDB and Kafka Connect read them".into());
        }
        if self.registry.basic_auth.is_some() && self.registry.bearer_token.is_some() {
            return Err(
                "registry.basic_auth and registry.bearer_token are both set: keep one".into(),
            );
        }
        if self
            .registry
            .basic_auth
            .as_deref()
            .is_some_and(|b| !b.contains(':'))
        {
            return Err("registry.basic_auth is not \"user:password\"".into());
        }
        self.registry.tls()?;
        if self.kafka.is_some() && self.sources.is_empty() {
            return Err("[kafka] is configured but no [[sources]]: add one [[sources]] entry per input topic (system, topic, format)".into());
        }
        Ok(())
    }
}

impl Config {
    /// What `lockstep run` needs beyond a valid file: a `[kafka]` section (with its
    /// `[[sources]]`, which [`Config::parse`] checks).
    pub fn runnable(&self) -> Result<(), String> {
        match &self.kafka {
            Some(_) => Ok(()),
            None => Err("lockstep run needs [kafka] brokers = \"host:9092\" and one [[sources]] entry per input topic; this file serves replay only".into()),
        }
    }
}

/// `[kafka]`: the cluster and librdkafka properties (TLS, SASL…).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The consumer identity; offsets live in the state store, not the group.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Passed to librdkafka as they are, e.g. `"security.protocol" = "SASL_SSL"`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// How this instance gets its source partitions: alone, every one of them (`all`),
    /// or shared with the other instances of `group_id` (`group`, SPEC §7).
    #[serde(default)]
    pub assignment: Assignment,
    /// With `group`: source topics keyed as producers like (by entity id, say) are
    /// routed by lineage root through this topic, whose partitions are the state shards
    /// (SPEC §7). Unset: the source topics are keyed by root, and their partition p is
    /// state shard p.
    #[serde(default)]
    pub repartition_topic: Option<String>,
}

fn default_group_id() -> String {
    "lockstep".into()
}

/// `[kafka] assignment`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignment {
    /// One instance assigns itself every partition of the source topics.
    #[default]
    All,
    /// Instances with the same `group_id` share the partitions through the consumer-group
    /// protocol: partition number p of every source topic is state shard p, so the source
    /// topics must be keyed by lineage root and have the same number of partitions.
    Group,
}

/// `[[sources]]`: one input topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The lifecycle system the topic carries.
    #[serde(deserialize_with = "system")]
    pub system: System,
    /// The Kafka topic.
    pub topic: String,
    /// How its records are encoded: `canonical-json`, `canonical-avro`, or a native
    /// format an adapter reads (`cloudtrail`, `okta`, `vault-audit`, …).
    pub format: Format,
    /// Raise `source_silent` when the topic has no records for this long.
    #[serde(default, deserialize_with = "optional_span")]
    pub silence_alert: Option<Span>,
    /// (`canonical-avro`) A Confluent Schema Registry (`http(s)://host:8081`) holding the
    /// writer schemas of Confluent-framed records; without it the canonical schema is
    /// taken as the writer's.
    #[serde(default)]
    pub schema_registry: Option<String>,
}

impl SourceConfig {
    /// The normalizer of this source's records under the organisation's mapping, with
    /// the registry access of `[registry]`.
    pub fn normalizer(
        &self,
        mapping: &std::sync::Arc<Mapping>,
        access: &RegistryConfig,
    ) -> Normalizer {
        let normalizer = Normalizer::new(self.format, Some(self.system), mapping.clone());
        match &self.schema_registry {
            Some(url) => normalizer.with_registry(std::sync::Arc::new(access.client(url))),
            None => normalizer,
        }
    }
}

/// `[registry]`: how lockstep reaches a Confluent Schema Registry (the sources'
/// `schema_registry` and `sinks.schema_registry`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `"user:password"` for basic authentication (Confluent Cloud: API key and secret).
    pub basic_auth: Option<String>,
    /// A bearer token instead.
    pub bearer_token: Option<String>,
    /// Each request's timeout.
    #[serde(default = "default_registry_timeout", deserialize_with = "span")]
    pub timeout: Span,
    /// PEM certificates of a private CA the registry's certificate is signed by (trusted
    /// besides the public roots).
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (chain) for registries that ask for one (mutual TLS).
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

const fn default_registry_timeout() -> Span {
    Span::secs(10)
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            basic_auth: None,
            bearer_token: None,
            timeout: default_registry_timeout(),
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl RegistryConfig {
    /// A client of the registry at `url` with this access.
    pub fn client(&self, url: &str) -> Registry {
        let auth = match (&self.basic_auth, &self.bearer_token) {
            (Some(user_password), _) => Some(crate::client::Auth::Basic(user_password.clone())),
            (None, Some(token)) => Some(crate::client::Auth::Bearer(token.clone())),
            (None, None) => None,
        };
        // Checked when the configuration loaded: a failure now is a file changed since.
        let tls = self.tls().unwrap_or_else(|why| {
            tracing::error!(error = %why, "registry TLS files unreadable: using the public roots only");
            None
        });
        Registry::over(
            url,
            crate::client::Http::with_tls(self.timeout.to_std(), auth, tls),
        )
    }

    /// The TLS client configuration of `ca_file`, `cert_file` and `key_file` (none: the
    /// defaults).
    pub fn tls(&self) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, String> {
        let named = |key: &str, path: &Option<PathBuf>| {
            path.as_ref()
                .map(|p| (format!("registry.{key}"), p.clone()))
        };
        crate::tls::TlsFiles {
            ca_file: named("ca_file", &self.ca_file),
            cert_file: named("cert_file", &self.cert_file),
            key_file: named("key_file", &self.key_file),
        }
        .client_config()
    }
}

/// How alerts are written to the alerts topic (and by `replay --alerts-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AlertsFormat {
    /// Canonical alert JSON.
    #[default]
    Json,
    /// `schemas/alert.avsc`, raw datum.
    Avro,
    /// OCSF Detection Finding (class 2004) JSON.
    Ocsf,
}

impl<'de> Deserialize<'de> for AlertsFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "json" => Ok(AlertsFormat::Json),
            "avro" => Ok(AlertsFormat::Avro),
            "ocsf" => Ok(AlertsFormat::Ocsf),
            other => Err(serde::de::Error::custom(format!(
                "unknown alerts_format {other:?}: expected json, avro or ocsf"
            ))),
        }
    }
}

/// `[sinks]`: output topics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    /// Alerts, keyed by root entity, `alert_id` and `kind` in headers.
    #[serde(default = "default_alerts_topic")]
    pub alerts_topic: String,
    /// Encoding of the alerts topic.
    #[serde(default)]
    pub alerts_format: AlertsFormat,
    /// The case changelog (audit evidence), keyed by case id.
    #[serde(default = "default_cases_topic")]
    pub cases_topic: String,
    /// Undecodable records, with source topic/partition/offset and reason in headers.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
    /// (`alerts_format = "avro"`) The Confluent Schema Registry the alert schema is
    /// registered in (subject `<alerts_topic>-value`).
    #[serde(default)]
    pub schema_registry: Option<String>,
    /// Outputs committed and not yet acknowledged by the broker (alerts, cases, dead
    /// letters) past which consumption pauses: an output topic that refuses writes
    /// (deleted, a record over its `max.message.bytes`, the broker refusing produce)
    /// stops the run at this bound instead of growing the outbox without one. Every
    /// output stays in the outbox until acknowledged, and is delivered once the topic
    /// takes writes again.
    #[serde(default = "default_max_outbox")]
    pub max_outbox: usize,
}

const fn default_max_outbox() -> usize {
    200_000
}

fn default_alerts_topic() -> String {
    "lockstep.alerts".into()
}
fn default_cases_topic() -> String {
    "lockstep.cases".into()
}
fn default_dead_letter_topic() -> String {
    "lockstep.dead-letters".into()
}

impl Default for SinksConfig {
    fn default() -> Self {
        SinksConfig {
            alerts_topic: default_alerts_topic(),
            alerts_format: AlertsFormat::Json,
            cases_topic: default_cases_topic(),
            dead_letter_topic: default_dead_letter_topic(),
            schema_registry: None,
            max_outbox: default_max_outbox(),
        }
    }
}

/// `[api]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; `"off"` disables the listener.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token required unless the listener is loopback (or env `LOCKSTEP_API_TOKEN`).
    pub token: Option<String>,
    /// Whether `/metrics` needs the token too (default: open, like `/healthz` and
    /// `/readyz`, so Prometheus can scrape by annotation).
    #[serde(default)]
    pub metrics_auth: bool,
    /// `/healthz` fails once the pipeline has made no progress for this long while work
    /// waits (records unread, deadlines due, outputs unacknowledged, events held);
    /// `"off"`: never.
    #[serde(default = "default_stall_after", deserialize_with = "span_or_off")]
    pub stall_after: Option<Span>,
}

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}

fn default_stall_after() -> Option<Span> {
    Span::parse("10m").ok()
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_listen(),
            token: None,
            metrics_auth: false,
            stall_after: default_stall_after(),
        }
    }
}

/// `[correlator]`: grace and lateness (SPEC §4, §5).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelatorConfig {
    /// Usage this long after a revocation is still tolerated (in-flight requests).
    #[serde(default = "default_use_grace", deserialize_with = "span")]
    pub use_grace: Span,
    /// How far out of order events may arrive and still be processed in order.
    #[serde(default = "default_allowed_lateness", deserialize_with = "span")]
    pub allowed_lateness: Span,
    /// A partition without records this long no longer holds the watermark back.
    #[serde(default = "default_idle_timeout", deserialize_with = "span")]
    pub idle_timeout: Span,
    /// The system whose echo is the report of the revocation itself.
    #[serde(default = "default_reporting_system", deserialize_with = "system")]
    pub reporting_system: System,
    /// (live) Events held for ordering before the partitions ahead are paused.
    #[serde(default = "default_max_held_events")]
    pub max_held_events: usize,
    /// How far ahead of the wall clock an event may be stamped (clock skew between
    /// sources). Later ones are dead letters (live), or (replay) dead letters when, past
    /// it, no other event of the input comes near them: one record stamped 9999 must not
    /// drag the watermark, and every deadline, to the year 9999.
    #[serde(default = "default_max_future_skew", deserialize_with = "span")]
    pub max_future_skew: Span,
}

const fn default_use_grace() -> Span {
    Span::secs(60)
}
const fn default_allowed_lateness() -> Span {
    Span::secs(30)
}
const fn default_idle_timeout() -> Span {
    Span::secs(60)
}
const fn default_max_future_skew() -> Span {
    Span::hours(1)
}
const fn default_max_held_events() -> usize {
    500_000
}
const fn default_reporting_system() -> System {
    System::Siem
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        CorrelatorConfig {
            use_grace: default_use_grace(),
            allowed_lateness: default_allowed_lateness(),
            idle_timeout: default_idle_timeout(),
            reporting_system: default_reporting_system(),
            max_held_events: default_max_held_events(),
            max_future_skew: default_max_future_skew(),
        }
    }
}

/// `[state]`: the RocksDB directory and how much memory the state may hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the store; replay uses a temporary one when unset.
    pub dir: Option<PathBuf>,
    /// Memory for RocksDB's block cache and memtables and the tables' caches together.
    #[serde(default, deserialize_with = "memory_budget")]
    pub memory_budget: MemoryBudget,
}

/// An SLA entry: a duration, or `off` (no obligation).
pub type Sla = Option<Span>;

/// `[sla]`: the echo deadline of every system, and `[sla.<entity_kind>]` overrides
/// chosen by the kind of the entity whose revocation opened the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaPolicy {
    base: [Sla; 4],
    by_kind: BTreeMap<EntityKind, [Option<Sla>; 4]>,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        SlaPolicy {
            base: [
                Some(Span::mins(15)),
                Some(Span::mins(15)),
                Some(Span::hours(4)),
                Some(Span::hours(1)),
            ],
            by_kind: BTreeMap::new(),
        }
    }
}

impl SlaPolicy {
    /// The SLA of `system` for a case opened by an entity of `kind`; `None` when off.
    pub fn get(&self, kind: EntityKind, system: System) -> Sla {
        self.by_kind
            .get(&kind)
            .and_then(|o| o[system.index()])
            .unwrap_or(self.base[system.index()])
    }

    /// The SLA of `system` without the per-kind overrides; `None` when off.
    pub fn base(&self, system: System) -> Sla {
        self.base[system.index()]
    }

    /// Sets the SLA of a system (all kinds without an override).
    pub fn set(&mut self, system: System, sla: Sla) {
        self.base[system.index()] = sla;
    }

    /// The overrides per entity kind: (kind, system, sla).
    pub fn overrides(&self) -> impl Iterator<Item = (EntityKind, System, Sla)> + '_ {
        self.by_kind.iter().flat_map(|(kind, slas)| {
            System::ALL
                .iter()
                .filter_map(move |s| slas[s.index()].map(|sla| (*kind, *s, sla)))
        })
    }

    /// Sets an override for one entity kind.
    pub fn set_for_kind(&mut self, kind: EntityKind, system: System, sla: Sla) {
        self.by_kind.entry(kind).or_insert([None; 4])[system.index()] = Some(sla);
    }
}

/// `[hygiene]` (SPEC §4b): `[hygiene.max_age]` and `[hygiene.unused_after]`, each a
/// table of entity kind = duration or `"off"`; kinds not named keep their default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HygieneConfig {
    /// How long a credential may live after it was created, issued or last rotated.
    #[serde(default = "KindLimits::max_age", deserialize_with = "max_age")]
    pub max_age: KindLimits,
    /// How long a credential may go without activity.
    #[serde(
        default = "KindLimits::unused_after",
        deserialize_with = "unused_after"
    )]
    pub unused_after: KindLimits,
}

impl Default for HygieneConfig {
    fn default() -> Self {
        HygieneConfig {
            max_age: KindLimits::max_age(),
            unused_after: KindLimits::unused_after(),
        }
    }
}

/// A duration (or none: `"off"`) per entity kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindLimits([Option<Span>; EntityKind::ALL.len()]);

impl KindLimits {
    /// SPEC §4b's `max_age` defaults: api_key 90d, secret 90d.
    pub fn max_age() -> Self {
        let mut limits = KindLimits([None; EntityKind::ALL.len()]);
        limits.set(EntityKind::ApiKey, Some(Span::days(90)));
        limits.set(EntityKind::Secret, Some(Span::days(90)));
        limits
    }

    /// SPEC §4b's `unused_after` defaults: api_key 45d.
    pub fn unused_after() -> Self {
        let mut limits = KindLimits([None; EntityKind::ALL.len()]);
        limits.set(EntityKind::ApiKey, Some(Span::days(45)));
        limits
    }

    /// The limit of `kind`; `None` when off.
    pub fn get(&self, kind: EntityKind) -> Option<Span> {
        self.0[kind.index()]
    }

    /// Sets the limit of `kind`.
    pub fn set(&mut self, kind: EntityKind, limit: Option<Span>) {
        self.0[kind.index()] = limit;
    }

    fn merge<'de, D: Deserializer<'de>>(
        mut self,
        section: &str,
        d: D,
    ) -> Result<KindLimits, D::Error> {
        use serde::de::Error;
        for (key, value) in &toml::Table::deserialize(d)? {
            let kind = EntityKind::parse(key)
                .map_err(|e| D::Error::custom(format!("{section}.{key}: {e}")))?;
            let limit =
                parse_limit(&format!("{section}.{key}"), value).map_err(D::Error::custom)?;
            self.set(kind, limit);
        }
        Ok(self)
    }
}

fn max_age<'de, D: Deserializer<'de>>(d: D) -> Result<KindLimits, D::Error> {
    KindLimits::max_age().merge("hygiene.max_age", d)
}

fn unused_after<'de, D: Deserializer<'de>>(d: D) -> Result<KindLimits, D::Error> {
    KindLimits::unused_after().merge("hygiene.unused_after", d)
}

fn parse_limit(key: &str, value: &toml::Value) -> Result<Sla, String> {
    match value.as_str() {
        Some("off") => Ok(None),
        Some(text) => Span::parse(text)
            .map(Some)
            .map_err(|e| format!("{key}: {e}, or \"off\"")),
        None => Err(format!(
            "{key}: expected a duration string such as \"15m\" or \"off\", got {value}"
        )),
    }
}

impl<'de> Deserialize<'de> for SlaPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let table = toml::Table::deserialize(d)?;
        let mut policy = SlaPolicy::default();
        let systems = || {
            System::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (key, value) in &table {
            if let Ok(system) = System::parse(key) {
                policy.set(
                    system,
                    parse_limit(&format!("sla.{key}"), value).map_err(D::Error::custom)?,
                );
            } else if let Ok(kind) = EntityKind::parse(key) {
                let Some(inner) = value.as_table() else {
                    return Err(D::Error::custom(format!(
                        "sla.{key}: expected a table of per-system overrides, e.g. [sla.{key}] vault = \"5m\""
                    )));
                };
                for (sys_key, sys_value) in inner {
                    let system = System::parse(sys_key)
                        .map_err(|e| D::Error::custom(format!("sla.{key}.{sys_key}: {e}")))?;
                    let sla = parse_limit(&format!("sla.{key}.{sys_key}"), sys_value)
                        .map_err(D::Error::custom)?;
                    policy.set_for_kind(kind, system, sla);
                }
            } else {
                let kinds: Vec<_> = EntityKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(D::Error::custom(format!(
                    "unknown key sla.{key}: expected a system ({}) or an entity kind table ({})",
                    systems(),
                    kinds.join(", ")
                )));
            }
        }
        Ok(policy)
    }
}

fn check_registry_url(key: &str, url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err(format!(
            "{key} {url:?} is not an http(s):// URL: give \"https://registry:8081\""
        )),
    }
}

fn span<'de, D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
    let text = String::deserialize(d)?;
    Span::parse(&text).map_err(serde::de::Error::custom)
}

fn span_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Span>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    Span::parse(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{e}, or \"off\"")))
}

fn optional_span<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Span>, D::Error> {
    span(d).map(Some)
}

fn memory_budget<'de, D: Deserializer<'de>>(d: D) -> Result<MemoryBudget, D::Error> {
    let text = String::deserialize(d)?;
    MemoryBudget::parse(&text)
        .map_err(|e| serde::de::Error::custom(format!("state.memory_budget: {e}")))
}

fn system<'de, D: Deserializer<'de>>(d: D) -> Result<System, D::Error> {
    let text = String::deserialize(d)?;
    System::parse(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_spec() {
        let c = Config::parse("").unwrap();
        assert_eq!(
            c.sla.get(EntityKind::User, System::Iam),
            Some(Span::mins(15))
        );
        assert_eq!(
            c.sla.get(EntityKind::User, System::Vault),
            Some(Span::mins(15))
        );
        assert_eq!(
            c.sla.get(EntityKind::User, System::Mdm),
            Some(Span::hours(4))
        );
        assert_eq!(
            c.sla.get(EntityKind::User, System::Siem),
            Some(Span::hours(1))
        );
        assert_eq!(c.correlator.use_grace, Span::secs(60));
        assert_eq!(c.correlator.reporting_system, System::Siem);
    }

    #[test]
    fn overrides_and_off() {
        let c = Config::parse(
            "[sla]\nmdm = \"off\"\nvault = \"5m\"\n[sla.api_key]\nvault = \"1m\"\nsiem = \"off\"\n",
        )
        .unwrap();
        assert_eq!(c.sla.get(EntityKind::User, System::Mdm), None);
        assert_eq!(
            c.sla.get(EntityKind::User, System::Vault),
            Some(Span::mins(5))
        );
        assert_eq!(
            c.sla.get(EntityKind::ApiKey, System::Vault),
            Some(Span::mins(1))
        );
        assert_eq!(c.sla.get(EntityKind::ApiKey, System::Siem), None);
        assert_eq!(
            c.sla.get(EntityKind::ApiKey, System::Iam),
            Some(Span::mins(15))
        );
    }

    #[test]
    fn environment_variables_fill_string_values_exactly() {
        let password = r#"p&|"$w'd\ ${not} #x"#;
        let lookup = |name: &str| match name {
            "KAFKA_PASSWORD" => Some(password.to_owned()),
            "BROKERS" => Some("k1:9092,k2:9092".to_owned()),
            _ => None,
        };
        let text = "[kafka]\nbrokers = \"${BROKERS}\"\ngroup_id = \"${GROUP:-lockstep-prod}\"\n[kafka.properties]\n\"sasl.password\" = \"${KAFKA_PASSWORD}\"\n[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"canonical-json\"\n";
        let c = Config::parse_with(text, &lookup).unwrap();
        let k = c.kafka.unwrap();
        assert_eq!(k.brokers, "k1:9092,k2:9092");
        assert_eq!(k.group_id, "lockstep-prod");
        assert_eq!(k.properties["sasl.password"], password);
        let err = Config::parse_with("[api]\ntoken = \"${API_TOKEN}\"\n", &lookup)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api.token") && err.contains("API_TOKEN is not set"),
            "{err}"
        );
    }

    #[test]
    fn stall_after_is_a_duration_or_off_and_outlasts_the_ordering_wait() {
        let stall = |text: &str| Config::parse(text).map(|c| c.api.stall_after);
        assert_eq!(stall("").unwrap(), Some(Span::mins(10)));
        assert_eq!(stall("[api]\nstall_after = \"off\"\n").unwrap(), None);
        assert_eq!(
            stall("[api]\nstall_after = \"2m\"\n").unwrap(),
            Some(Span::mins(2))
        );
        let err = stall("[api]\nstall_after = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stall_after") && err.contains("\"off\""),
            "{err}"
        );
        let err = stall("[api]\nstall_after = \"60s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api.stall_after (1m)") && err.contains("allowed_lateness + idle_timeout"),
            "{err}"
        );
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        for text in [
            "[kafka]\nbrokers = \"b:9092\"\n[kafka.properties]\n\"sasl.password\" = \"hunter2\nx",
            "[api]\ntoken = 8675309\nlisten = 5\n",
            "[kafka]\nbrokers = \"b:9092\"\nnope = 1\n[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n",
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(!err.contains("hunter2") && !err.contains("8675309"), "{err}");
        }
    }

    #[test]
    fn errors_name_key_value_and_fix() {
        let cases = [
            ("[sla]\nldap = \"5m\"\n", "sla.ldap"),
            ("[sla]\niam = \"soon\"\n", "\"soon\""),
            ("[sla.api_key]\nldap = \"5m\"\n", "sla.api_key.ldap"),
            ("[correlator]\nuse_grace = \"1x\"\n", "use_grace"),
            (
                "[correlator]\nreporting_system = \"splunk\"\n",
                "iam, vault, mdm, siem",
            ),
            ("[correlator]\ngrace = \"1m\"\n", "grace"),
            ("[stat]\ndir = \"x\"\n", "stat"),
            ("[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"canonical-json\"\n", "[kafka] is missing"),
            ("[kafka]\nbrokers = \"b:9092\"\n[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"syslog\"\n", "canonical-json, canonical-avro, cloudtrail"),
            ("[kafka]\nbrokers = \"b:9092\"\n[kafka.properties]\n\"group.id\" = \"x\"\n", "kafka.group_id"),
            ("[sinks]\nalerts_format = \"xml\"\n", "json, avro or ocsf"),
            ("[correlator]\nmax_held_events = 0\n", "correlator.max_held_events"),
            ("[kafka]\nbrokers = \"b:9092\"\n[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"canonical-json\"\nschema_registry = \"http://r:8081\"\n", "only applies to canonical-avro"),
            ("[kafka]\nbrokers = \"b:9092\"\n[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"canonical-avro\"\nschema_registry = \"ftp://r:8081\"\n", "sources[0].schema_registry"),
            ("[sinks]\nalerts_format = \"avro\"\n", "sinks.schema_registry"),
            ("[registry]\nbasic_auth = \"a:b\"\nbearer_token = \"t\"\n", "keep one"),
            ("[kafka]\nbrokers = \"b:9092\"\nrepartition_topic = \"r\"\n[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"canonical-json\"\n", "needs kafka.assignment = \"group\""),
            ("[kafka]\nbrokers = \"b:9092\"\nassignment = \"group\"\nrepartition_topic = \"t\"\n[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"canonical-json\"\n", "also a [[sources]] topic"),
            ("[kafka]\nbrokers = \"b:9092\"\nassignment = \"group\"\nrepartition_topic = \" \"\n[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"canonical-json\"\n", "kafka.repartition_topic is empty"),
        ];
        for (text, needle) in cases {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} -> {err}");
        }
    }
}
