//! The canonical identity event of SPEC §1 and its vocabulary: the four lifecycle
//! systems, entity kinds, actions (presence / revocation / usage) and outcomes.
//!
//! Every input format is normalised into [`IdentityEvent`]; the correlator sees nothing else.
//! Times are [`Micros`]: microseconds since the Unix epoch, rendered as RFC 3339 UTC.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Micros;

/// Declares a closed vocabulary: a `Copy` enum with its wire names, a parser with a clear
/// error listing what is allowed, and `Display`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name, as in canonical JSON and the Avro enum symbols.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Position in [`Self::ALL`] (the Avro enum index).
            pub fn index(self) -> usize {
                self as usize
            }

            /// Parses a wire name; the error lists every allowed value.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {:?}: expected one of {}",
                        $what,
                        other,
                        [$($wire),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// One of the four systems that together make up an identity's lifecycle.
    System, "system" {
        Iam => "iam",
        Vault => "vault",
        Mdm => "mdm",
        Siem => "siem",
    }
);

vocabulary!(
    /// What kind of identity or credential an event is about.
    EntityKind, "entity_kind" {
        ServiceAccount => "service_account",
        User => "user",
        Role => "role",
        ApiKey => "api_key",
        Token => "token",
        Secret => "secret",
        Certificate => "certificate",
        Device => "device",
        Agent => "agent",
        Other => "other",
    }
);

vocabulary!(
    /// What happened to the entity.
    Action, "action" {
        Created => "created",
        Issued => "issued",
        Granted => "granted",
        Enabled => "enabled",
        Enrolled => "enrolled",
        Rotated => "rotated",
        Observed => "observed",
        Revoked => "revoked",
        Disabled => "disabled",
        Deleted => "deleted",
        Unenrolled => "unenrolled",
        Expired => "expired",
        Used => "used",
    }
);

vocabulary!(
    /// Whether the recorded action took effect.
    #[derive(Default)]
    Outcome, "outcome" {
        #[default]
        Success => "success",
        Failure => "failure",
    }
);

/// The three classes of actions (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionClass {
    /// The entity exists or was (re)made live.
    Presence,
    /// The entity was taken away.
    Revocation,
    /// The entity was used.
    Usage,
}

impl Action {
    /// The class this action belongs to.
    pub const fn class(self) -> ActionClass {
        match self {
            Action::Created
            | Action::Issued
            | Action::Granted
            | Action::Enabled
            | Action::Enrolled
            | Action::Rotated
            | Action::Observed => ActionClass::Presence,
            Action::Revoked
            | Action::Disabled
            | Action::Deleted
            | Action::Unenrolled
            | Action::Expired => ActionClass::Revocation,
            Action::Used => ActionClass::Usage,
        }
    }

    /// Actions that make a revoked identity live again: they raise `reactivated` and
    /// supersede a case of which the entity is the root (`observed` is presence, not this).
    pub const fn reactivates(self) -> bool {
        matches!(
            self,
            Action::Created
                | Action::Enabled
                | Action::Issued
                | Action::Granted
                | Action::Enrolled
                | Action::Rotated
        )
    }
}

/// The canonical record every source is normalised into (SPEC §1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityEvent {
    /// Unique within `system`; a repeat is a redelivery.
    pub event_id: String,
    /// The lifecycle system that recorded it.
    pub system: System,
    /// The product or adapter, e.g. `aws.cloudtrail`.
    #[serde(default)]
    pub source: String,
    /// Event time.
    pub time: Micros,
    /// The identity or credential the event is about.
    pub entity: String,
    /// What kind of entity it is.
    #[serde(default = "default_kind")]
    pub entity_kind: EntityKind,
    /// What happened.
    pub action: Action,
    /// Whether it took effect.
    #[serde(default)]
    pub outcome: Outcome,
    /// Lineage: the entity this one was issued from or belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Who did it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Anything else worth keeping.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

const fn default_kind() -> EntityKind {
    EntityKind::Other
}

impl IdentityEvent {
    /// A success event with no parent, actor or attributes.
    pub fn new(
        event_id: impl Into<String>,
        system: System,
        time: Micros,
        entity: impl Into<String>,
        entity_kind: EntityKind,
        action: Action,
    ) -> IdentityEvent {
        IdentityEvent {
            event_id: event_id.into(),
            system,
            source: String::new(),
            time,
            entity: entity.into(),
            entity_kind,
            action,
            outcome: Outcome::Success,
            parent: None,
            actor: None,
            attributes: BTreeMap::new(),
        }
    }

    /// The processing order of SPEC §4: (`time`, `event_id`), then `system` to make
    /// equal event ids from different systems deterministic.
    pub fn order_key(&self) -> (Micros, &str, System) {
        (self.time, &self.event_id, self.system)
    }

    /// True for an event whose outcome is success.
    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Success
    }

    /// Checks the invariants serde cannot express: non-empty ids, and no NUL in the ids
    /// the store keys by (`entity \0 …` keys: an id with a NUL could forge another
    /// entity's timeline).
    pub fn validate(&self) -> Result<(), String> {
        if !self.time.is_calendar() {
            return Err(format!(
                "time {} µs since the epoch is outside the years 0001–9999",
                self.time.0
            ));
        }
        for (field, value) in [
            ("event_id", Some(&self.event_id)),
            ("entity", Some(&self.entity)),
            ("parent", self.parent.as_ref()),
        ] {
            if value.is_some_and(|v| v.contains('\0')) {
                return Err(format!("{field} contains a NUL character (U+0000)"));
            }
        }
        if self.event_id.is_empty() {
            return Err("event_id is empty".into());
        }
        if self.entity.is_empty() {
            return Err("entity is empty".into());
        }
        if self.parent.as_deref() == Some("") {
            return Err("parent is empty (omit it instead)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_spec_lists() {
        let presence: Vec<_> = Action::ALL
            .iter()
            .filter(|a| a.class() == ActionClass::Presence)
            .map(|a| a.as_str())
            .collect();
        assert_eq!(
            presence,
            ["created", "issued", "granted", "enabled", "enrolled", "rotated", "observed"]
        );
        assert!(!Action::Observed.reactivates());
        assert!(Action::Rotated.reactivates());
        assert_eq!(Action::Expired.class(), ActionClass::Revocation);
    }

    #[test]
    fn parse_lists_allowed_values() {
        let err = System::parse("ldap").unwrap_err();
        assert!(err.contains("iam, vault, mdm, siem"), "{err}");
        assert_eq!(EntityKind::parse("api_key"), Ok(EntityKind::ApiKey));
    }
}
