//! What differs between organisations is configuration, not code (`[mapping]`): how
//! entity ids are normalised — an ARN, a name and an email can be one service account —
//! and lineage hints, such as a vault path template naming the credential it holds.
//!
//! Applied to every event a native adapter makes: ids (entity, parent, actor) are
//! rewritten by the first matching `[[mapping.rewrite]]` rule, then looked up in
//! `aliases`; an event without a parent whose entity matches a `[[mapping.lineage]]`
//! hint gets the hint's parent. Canonical input is already canonical and is left alone.

use std::collections::HashMap;

use regex::Regex;
use serde::{Deserialize, Deserializer};

use crate::event::IdentityEvent;

/// `[mapping]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Exact ids as a source writes them → the id lockstep uses.
    #[serde(default)]
    pub aliases: HashMap<String, String>,
    /// Regular-expression rewrites of ids, tried in order; the first match wins.
    #[serde(default)]
    pub rewrite: Vec<Rewrite>,
    /// Parents implied by an entity's id.
    #[serde(default)]
    pub lineage: Vec<LineageHint>,
}

/// `[[mapping.rewrite]]`: ids matching `pattern` become `replace` (`$name` / `$1` expand
/// the pattern's groups).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// A regular expression over the whole id.
    #[serde(deserialize_with = "regex")]
    pub pattern: Regex,
    /// The replacement.
    pub replace: String,
}

/// `[[mapping.lineage]]`: an entity matching `entity` whose record names no parent gets
/// `parent` (with the pattern's groups expanded), e.g. a vault secret at
/// `secret/data/aws/keys/(?P<key>.+)` is held under the access key `$key`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageHint {
    /// A regular expression over the entity id.
    #[serde(deserialize_with = "regex")]
    pub entity: Regex,
    /// The parent's id.
    pub parent: String,
}

fn regex<'de, D: Deserializer<'de>>(d: D) -> Result<Regex, D::Error> {
    let text = String::deserialize(d)?;
    Regex::new(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid regular expression {text:?}: {e}")))
}

impl Mapping {
    /// The id lockstep uses for `id`.
    pub fn id(&self, id: &str) -> String {
        let rewritten = self
            .rewrite
            .iter()
            .find_map(|r| {
                r.pattern.captures(id).map(|c| {
                    let mut out = String::new();
                    c.expand(&r.replace, &mut out);
                    out
                })
            })
            .unwrap_or_else(|| id.to_owned());
        match self.aliases.get(&rewritten) {
            Some(alias) => alias.clone(),
            None => rewritten,
        }
    }

    /// True when the mapping changes nothing.
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty() && self.rewrite.is_empty() && self.lineage.is_empty()
    }

    /// Normalises the ids of `ev` and adds a hinted parent.
    pub fn apply(&self, ev: &mut IdentityEvent) {
        if self.is_empty() {
            return;
        }
        ev.entity = self.id(&ev.entity);
        ev.parent = ev.parent.as_deref().map(|p| self.id(p));
        ev.actor = ev.actor.as_deref().map(|a| self.id(a));
        if ev.parent.is_none() {
            ev.parent = self.lineage.iter().find_map(|h| {
                h.entity.captures(&ev.entity).map(|c| {
                    let mut out = String::new();
                    c.expand(&h.parent, &mut out);
                    self.id(&out)
                })
            });
        }
        ev.parent = ev.parent.take().filter(|p| !p.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, EntityKind, System};
    use crate::time::Micros;

    fn mapping() -> Mapping {
        toml::from_str(
            r#"
            aliases = { "ci-deployer@corp.iam.gserviceaccount.com" = "ci-deployer" }
            [[rewrite]]
            pattern = '^arn:aws:iam::\d{12}:user/(?:.*/)?(?P<name>[^/]+)$'
            replace = "$name"
            [[lineage]]
            entity = '^secret/data/aws/keys/(?P<key>[^/]+)$'
            parent = "$key"
            "#,
        )
        .unwrap()
    }

    fn event(entity: &str, parent: Option<&str>) -> IdentityEvent {
        IdentityEvent {
            event_id: "e".into(),
            system: System::Vault,
            source: String::new(),
            time: Micros(0),
            entity: entity.into(),
            entity_kind: EntityKind::Secret,
            action: Action::Created,
            outcome: Default::default(),
            parent: parent.map(Into::into),
            actor: Some("arn:aws:iam::123456789012:user/ops/alice".into()),
            attributes: Default::default(),
        }
    }

    #[test]
    fn arn_name_and_email_become_one_id() {
        let m = mapping();
        assert_eq!(
            m.id("arn:aws:iam::123456789012:user/ci-deployer"),
            "ci-deployer"
        );
        assert_eq!(
            m.id("ci-deployer@corp.iam.gserviceaccount.com"),
            "ci-deployer"
        );
        assert_eq!(m.id("ci-deployer"), "ci-deployer");
        assert_eq!(
            m.id("arn:aws:iam::123456789012:role/r"),
            "arn:aws:iam::123456789012:role/r"
        );
    }

    #[test]
    fn lineage_hint_names_the_key_a_secret_holds() {
        let m = mapping();
        let mut ev = event("secret/data/aws/keys/AKIAEXAMPLE", None);
        m.apply(&mut ev);
        assert_eq!(ev.parent.as_deref(), Some("AKIAEXAMPLE"));
        assert_eq!(ev.actor.as_deref(), Some("alice"));
        let mut ev = event("secret/data/aws/keys/AKIAEXAMPLE", Some("other"));
        m.apply(&mut ev);
        assert_eq!(ev.parent.as_deref(), Some("other"), "a named parent wins");
    }

    #[test]
    fn bad_pattern_names_the_problem() {
        let err =
            toml::from_str::<Mapping>("[[rewrite]]\npattern = '('\nreplace = ''\n").unwrap_err();
        assert!(
            err.to_string().contains("invalid regular expression"),
            "{err}"
        );
    }
}
