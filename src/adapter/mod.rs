//! Adapters: what IAM, vault, MDM and SIEM products actually emit, normalised into
//! canonical events (SPEC §2). One module per native format, each a pure function from a
//! parsed record to zero or more events ([`Emitter`]); [`Normalizer`] puts a source's
//! format, declared system and organisation [`mapping`] around them.
//!
//! Record types a format does not cover are [`Normalized::Skipped`] (counted, never
//! dead-lettered); a record that is not what its format promises is a [`DecodeError`]
//! with the reason (dead-lettered). Nothing secret is copied: Vault's HMAC'd values are
//! kept as opaque ids, client tokens and session tokens never leave the record.

pub mod cloudtrail;
pub mod entra;
pub mod fields;
pub mod gcp;
pub mod github;
pub mod intune;
pub mod jamf;
pub mod k8s;
pub mod mapping;
pub mod ocsf;
pub mod okta;
pub mod vault;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::decode;
use crate::decode::registry::Registry;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind, IdentityEvent, Outcome, System};
use crate::time::Micros;

pub use mapping::Mapping;

/// How a source's records are encoded: canonical, or a native format an adapter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One canonical JSON event per record.
    CanonicalJson,
    /// A canonical Avro datum, raw or in the Confluent wire format.
    CanonicalAvro,
    /// AWS CloudTrail records, bare or inside an EventBridge envelope.
    CloudTrail,
    /// GCP Cloud Audit Logs (`protoPayload` AuditLog entries).
    GcpAudit,
    /// Entra ID audit logs (Azure Monitor diagnostic or Graph `directoryAudit`).
    EntraAudit,
    /// Okta System Log.
    Okta,
    /// HashiCorp Vault audit device (file/socket JSON).
    VaultAudit,
    /// Jamf Pro webhooks.
    Jamf,
    /// Intune audit events (diagnostic log or Graph `auditEvent`).
    Intune,
    /// Kubernetes audit events (also inside an AKS diagnostic wrapper).
    K8sAudit,
    /// GitHub audit log.
    GithubAudit,
    /// OCSF 3001, 3002, 3004 and 6003.
    Ocsf,
}

impl Format {
    /// Every format with its name in configuration and on the command line.
    pub const ALL: &'static [(Format, &'static str)] = &[
        (Format::CanonicalJson, "canonical-json"),
        (Format::CanonicalAvro, "canonical-avro"),
        (Format::CloudTrail, "cloudtrail"),
        (Format::GcpAudit, "gcp-audit"),
        (Format::EntraAudit, "entra-audit"),
        (Format::Okta, "okta"),
        (Format::VaultAudit, "vault-audit"),
        (Format::Jamf, "jamf"),
        (Format::Intune, "intune"),
        (Format::K8sAudit, "k8s-audit"),
        (Format::GithubAudit, "github-audit"),
        (Format::Ocsf, "ocsf"),
    ];

    /// The name in configuration.
    pub fn name(self) -> &'static str {
        Format::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("?", |(_, n)| n)
    }

    /// Parses a name; the error lists every format.
    pub fn parse(s: &str) -> Result<Format, String> {
        Format::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(f, _)| *f)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|(_, n)| *n).collect();
                format!("unknown format {s:?}: expected one of {}", names.join(", "))
            })
    }

    /// True for the canonical formats, which need no adapter.
    pub fn is_canonical(self) -> bool {
        matches!(self, Format::CanonicalJson | Format::CanonicalAvro)
    }

    /// The system a native format usually stands for (a source's `system` overrides it).
    pub fn default_system(self) -> Option<System> {
        match self {
            Format::CanonicalJson | Format::CanonicalAvro => None,
            Format::VaultAudit => Some(System::Vault),
            Format::Jamf | Format::Intune => Some(System::Mdm),
            Format::Ocsf => Some(System::Siem),
            _ => Some(System::Iam),
        }
    }

    /// The `source` the events of this format carry.
    fn source(self) -> &'static str {
        match self {
            Format::CloudTrail => "aws.cloudtrail",
            Format::GcpAudit => "gcp.audit",
            Format::EntraAudit => "azure.entra",
            Format::Okta => "okta",
            Format::VaultAudit => "hashicorp.vault",
            Format::Jamf => "jamf",
            Format::Intune => "microsoft.intune",
            Format::K8sAudit => "kubernetes.audit",
            Format::GithubAudit => "github.audit",
            Format::Ocsf => "ocsf",
            Format::CanonicalJson | Format::CanonicalAvro => "",
        }
    }

    fn adapter(self) -> Option<Adapter> {
        Some(match self {
            Format::CloudTrail => cloudtrail::normalize,
            Format::GcpAudit => gcp::normalize,
            Format::EntraAudit => entra::normalize,
            Format::Okta => okta::normalize,
            Format::VaultAudit => vault::normalize,
            Format::Jamf => jamf::normalize,
            Format::Intune => intune::normalize,
            Format::K8sAudit => k8s::normalize,
            Format::GithubAudit => github::normalize,
            Format::Ocsf => ocsf::normalize,
            Format::CanonicalJson | Format::CanonicalAvro => return None,
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Format::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An adapter: one parsed native record into events, or the reason it is not one.
type Adapter = fn(&Value, &mut Emitter) -> Result<(), DecodeError>;

/// What one raw record became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Normalized {
    /// Canonical events (a native record can yield several).
    Events(Vec<IdentityEvent>),
    /// A record type the format does not cover, named: counted, not dead-lettered.
    Skipped(String),
}

/// Collects the events an adapter makes of one record.
#[derive(Debug)]
pub struct Emitter {
    system: System,
    source: &'static str,
    events: Vec<IdentityEvent>,
    skipped: Option<String>,
}

impl Emitter {
    fn new(system: System, source: &'static str) -> Self {
        Emitter {
            system,
            source,
            events: Vec::new(),
            skipped: None,
        }
    }

    /// Adds an event about `entity` and returns it for the optional fields.
    pub fn emit(
        &mut self,
        event_id: impl Into<String>,
        time: Micros,
        entity: impl Into<String>,
        entity_kind: EntityKind,
        action: Action,
    ) -> Draft<'_> {
        let ev = IdentityEvent::new(event_id, self.system, time, entity, entity_kind, action);
        self.events.push(IdentityEvent {
            source: self.source.to_owned(),
            ..ev
        });
        let last = self.events.len() - 1;
        Draft(&mut self.events[last])
    }

    /// Marks the record as a type this format does not cover.
    pub fn skip(&mut self, record_type: impl Into<String>) {
        self.skipped = Some(record_type.into());
    }
}

/// An event being filled in by an adapter.
pub struct Draft<'a>(&'a mut IdentityEvent);

impl Draft<'_> {
    /// Sets the lineage parent (ignored when absent or empty).
    pub fn parent(self, parent: Option<impl Into<String>>) -> Self {
        self.0.parent = parent.map(Into::into).filter(|p: &String| !p.is_empty());
        self
    }

    /// Sets who did it (ignored when absent or empty).
    pub fn actor(self, actor: Option<impl Into<String>>) -> Self {
        self.0.actor = actor.map(Into::into).filter(|a: &String| !a.is_empty());
        self
    }

    /// Marks the event a failure when `failed`.
    pub fn failed(self, failed: bool) -> Self {
        if failed {
            self.0.outcome = Outcome::Failure;
        }
        self
    }

    /// Keeps an attribute (ignored when absent or empty).
    pub fn attr(self, key: &str, value: Option<impl Into<String>>) -> Self {
        if let Some(v) = value.map(Into::into).filter(|v: &String| !v.is_empty()) {
            self.0.attributes.insert(key.to_owned(), v);
        }
        self
    }
}

/// Turns a source's raw records into canonical events: its format, its declared system,
/// and the organisation's mapping.
#[derive(Debug, Clone)]
pub struct Normalizer {
    format: Format,
    system: Option<System>,
    mapping: Arc<Mapping>,
    registry: Option<Arc<Registry>>,
}

impl Normalizer {
    /// A normalizer for `format`; native events are stamped with `system` (default: the
    /// format's usual system), canonical events must already carry it.
    pub fn new(format: Format, system: Option<System>, mapping: Arc<Mapping>) -> Self {
        Normalizer {
            format,
            system,
            mapping,
            registry: None,
        }
    }

    /// Resolves Confluent-framed Avro schema ids with `registry`.
    pub fn with_registry(mut self, registry: Arc<Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The format read.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Normalises one raw record (bytes as they arrive on a topic or a line of a file).
    pub fn normalize(&self, raw: &[u8]) -> Result<Normalized, DecodeError> {
        let event = match self.format {
            Format::CanonicalJson => decode::json::decode(raw)?,
            Format::CanonicalAvro => decode::avro::decode_datum(raw, self.registry.as_deref())?,
            _ => {
                let value: Value = serde_json::from_slice(raw)
                    .map_err(|e| DecodeError::new(format!("invalid {} JSON: {e}", self.format)))?;
                return self.normalize_value(&value);
            }
        };
        if let Some(system) = self.system.filter(|s| *s != event.system) {
            return Err(DecodeError::new(format!(
                "event system {} from a source declared {system}",
                event.system
            )));
        }
        Ok(Normalized::Events(vec![event]))
    }

    /// Normalises one parsed native record; envelopes that batch records (`Records`,
    /// `records`, `value`, a JSON array) are opened and their records taken in order.
    pub fn normalize_value(&self, value: &Value) -> Result<Normalized, DecodeError> {
        let Some(adapter) = self.format.adapter() else {
            let event = IdentityEvent::deserialize(value)
                .map_err(|e| DecodeError::new(format!("invalid canonical JSON: {e}")))?;
            event.validate().map_err(DecodeError::new)?;
            return Ok(Normalized::Events(vec![event]));
        };
        let system = self
            .system
            .or(self.format.default_system())
            .unwrap_or(System::Siem);
        let mut emitter = Emitter::new(system, self.format.source());
        let mut skipped = Vec::new();
        for record in fields::unbatch(value) {
            emitter.skipped = None;
            adapter(record, &mut emitter)
                .map_err(|e| DecodeError::new(format!("{}: {}", self.format, e.reason)))?;
            skipped.extend(emitter.skipped.take());
        }
        if emitter.events.is_empty() {
            return Ok(Normalized::Skipped(
                skipped
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| "empty batch".into()),
            ));
        }
        for ev in &mut emitter.events {
            self.mapping.apply(ev);
            if ev.parent.as_ref() == Some(&ev.entity) {
                ev.parent = None;
            }
            ev.validate()
                .map_err(|e| DecodeError::new(format!("{}: {e}", self.format)))?;
        }
        Ok(Normalized::Events(emitter.events))
    }
}
