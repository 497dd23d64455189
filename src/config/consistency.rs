//! `[consistency]` (SPEC §4c): the system of record, the rotation deadline each system
//! owes a rotation made elsewhere, and how long an identity of each kind may exist
//! outside the system of record before `unregistered_identity`.

use serde::{Deserialize, Deserializer};

use super::{parse_limit, system, KindLimits, Sla, SlaPolicy};
use crate::event::{EntityKind, System};
use crate::time::Span;

/// `[consistency]`; kinds and systems not named keep their default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyConfig {
    /// The system where an identity must exist to be registered (default `iam`).
    #[serde(default = "default_system_of_record", deserialize_with = "system")]
    pub system_of_record: System,
    /// `[consistency.rotation_sla]`: per system, a duration or `"off"`; unset systems
    /// take their `[sla]` (without per-kind overrides).
    #[serde(default)]
    pub rotation_sla: RotationSla,
    /// `[consistency.register_within]`: per entity kind, a duration or `"off"`.
    #[serde(
        default = "KindLimits::register_within",
        deserialize_with = "register_within"
    )]
    pub register_within: KindLimits,
}

const fn default_system_of_record() -> System {
    System::Iam
}

impl Default for ConsistencyConfig {
    fn default() -> Self {
        ConsistencyConfig {
            system_of_record: default_system_of_record(),
            rotation_sla: RotationSla::default(),
            register_within: KindLimits::register_within(),
        }
    }
}

impl ConsistencyConfig {
    /// The rotation deadline of every system, resolved: the configured one, else the
    /// system's `[sla]`; none for the reporting system.
    pub fn rotation_slas(&self, sla: &SlaPolicy, reporting_system: System) -> [Sla; 4] {
        let mut out = [None; 4];
        for &s in System::ALL {
            out[s.index()] = if s == reporting_system {
                None
            } else {
                self.rotation_sla.0[s.index()].unwrap_or_else(|| sla.base(s))
            };
        }
        out
    }

    /// A duration configured for the reporting system, which owes no rotation.
    pub(super) fn validate(&self, reporting_system: System) -> Result<(), String> {
        if let Some(Some(_)) = self.rotation_sla.0[reporting_system.index()] {
            return Err(format!(
                "consistency.rotation_sla.{reporting_system}: {reporting_system} is the reporting system (correlator.reporting_system), which owes no rotation (SPEC §4c): remove the key or set it to \"off\""
            ));
        }
        Ok(())
    }
}

/// Rotation deadlines set per system (`None`: the default, from `[sla]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationSla(pub [Option<Sla>; 4]);

impl<'de> Deserialize<'de> for RotationSla {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut out = RotationSla::default();
        for (key, value) in &toml::Table::deserialize(d)? {
            let system = System::parse(key)
                .map_err(|e| D::Error::custom(format!("consistency.rotation_sla.{key}: {e}")))?;
            out.0[system.index()] = Some(
                parse_limit(&format!("consistency.rotation_sla.{key}"), value)
                    .map_err(D::Error::custom)?,
            );
        }
        Ok(out)
    }
}

impl KindLimits {
    /// SPEC §4c's `register_within` defaults: service_account, api_key, agent 24h.
    pub fn register_within() -> Self {
        let mut limits = KindLimits([None; EntityKind::ALL.len()]);
        for kind in [
            EntityKind::ServiceAccount,
            EntityKind::ApiKey,
            EntityKind::Agent,
        ] {
            limits.set(kind, Some(Span::hours(24)));
        }
        limits
    }
}

fn register_within<'de, D: Deserializer<'de>>(d: D) -> Result<KindLimits, D::Error> {
    KindLimits::register_within().merge("consistency.register_within", d)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::event::{EntityKind, System};
    use crate::time::Span;

    #[test]
    fn defaults_follow_the_spec() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.consistency.system_of_record, System::Iam);
        let slas = c.consistency.rotation_slas(&c.sla, System::Siem);
        assert_eq!(
            slas,
            [
                Some(Span::mins(15)),
                Some(Span::mins(15)),
                Some(Span::hours(4)),
                None
            ]
        );
        for kind in EntityKind::ALL {
            let expected = matches!(
                kind,
                EntityKind::ServiceAccount | EntityKind::ApiKey | EntityKind::Agent
            )
            .then_some(Span::hours(24));
            assert_eq!(c.consistency.register_within.get(*kind), expected, "{kind}");
        }
    }

    #[test]
    fn named_systems_and_kinds_change_others_keep_their_default() {
        let c = Config::parse(
            "[sla]\nmdm = \"2h\"\n[sla.api_key]\nvault = \"1m\"\n[consistency]\nsystem_of_record = \"vault\"\n[consistency.rotation_sla]\nvault = \"30m\"\niam = \"off\"\n[consistency.register_within]\nservice_account = \"12h\"\nagent = \"off\"\nsecret = \"2d\"\n",
        )
        .unwrap();
        assert_eq!(c.consistency.system_of_record, System::Vault);
        assert_eq!(
            c.consistency.rotation_slas(&c.sla, System::Siem),
            [None, Some(Span::mins(30)), Some(Span::hours(2)), None],
            "mdm follows [sla] without the per-kind overrides"
        );
        let within = &c.consistency.register_within;
        assert_eq!(
            within.get(EntityKind::ServiceAccount),
            Some(Span::hours(12))
        );
        assert_eq!(within.get(EntityKind::Agent), None);
        assert_eq!(within.get(EntityKind::Secret), Some(Span::days(2)));
        assert_eq!(within.get(EntityKind::ApiKey), Some(Span::hours(24)));
    }

    #[test]
    fn bad_consistency_settings_name_the_key_and_the_fix() {
        for (text, expected) in [
            (
                "[consistency.rotation_sla]\nldap = \"1h\"\n",
                "consistency.rotation_sla.ldap",
            ),
            (
                "[consistency.rotation_sla]\nvault = \"soon\"\n",
                "consistency.rotation_sla.vault",
            ),
            (
                "[consistency.rotation_sla]\nsiem = \"1h\"\n",
                "reporting system",
            ),
            (
                "[consistency.register_within]\nrobot = \"1h\"\n",
                "consistency.register_within.robot",
            ),
            (
                "[consistency.register_within]\nagent = 5\n",
                "consistency.register_within.agent",
            ),
            ("[consistency]\nsystem_of_record = \"ldap\"\n", "ldap"),
            ("[consistency]\nregister = \"1h\"\n", "unknown field"),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        assert!(Config::parse("[consistency.rotation_sla]\nsiem = \"off\"\n").is_ok());
    }
}
