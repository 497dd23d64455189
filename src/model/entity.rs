//! The rows the correlator keeps per entity: its state in each system with its open
//! cases, hygiene clocks and consistency records, and its place in the lineage graph.

use serde::{Deserialize, Serialize};

use super::round::{Registration, Round};
use crate::event::{ActionClass, IdentityEvent};
use crate::time::Micros;

/// The state of one entity in one system (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EchoState {
    /// Never seen in that system.
    #[default]
    None,
    /// Present or in use there.
    Active,
    /// Revoked there.
    Revoked,
}

impl EchoState {
    /// `none`, `active` or `revoked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EchoState::None => "none",
            EchoState::Active => "active",
            EchoState::Revoked => "revoked",
        }
    }
}

/// An entity's row: its state in each system and the non-superseded cases rooted at it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRow {
    /// State per system, indexed by [`crate::event::System::index`].
    pub states: [EchoState; 4],
    /// Open (not superseded) cases whose root is this entity, oldest first.
    pub cases: Vec<String>,
    /// When the state in each system last changed.
    pub since: [Micros; 4],
    /// The kind its first applied event gave it.
    pub kind: Option<crate::event::EntityKind>,
    /// Its hygiene clocks (SPEC §4b), indexed by [`crate::store::keys::HygieneRule::index`]: set
    /// only for kinds with a limit.
    pub clocks: Clocks,
    /// The kind of its latest success event (SPEC §4c: which children are secrets).
    pub latest_kind: Option<crate::event::EntityKind>,
    /// Whether a registration deadline was ever armed for it (SPEC §4c).
    pub registration: Registration,
    /// Its latest rotation round with obligations (SPEC §4c), open or closed.
    pub round: Option<Box<Round>>,
    /// The time of its earliest applied success event (the inventory's `first_seen`).
    pub first_seen: Option<Micros>,
    /// The actor of its first presence event (the inventory's `created_by`): `None`
    /// before one, `Some(None)` when that event named no actor.
    pub created_by: Option<Option<String>>,
}

impl EntityRow {
    /// Notes what the inventory reports of a success event: the earliest time it was
    /// seen, and the actor of its first presence event. True when the row changed, which
    /// is on its first event, its first presence event and a late event older than
    /// every other: the rest cost a comparison.
    pub fn note_sighting(&mut self, ev: &IdentityEvent) -> bool {
        let earlier = self.first_seen.is_none_or(|t| ev.time < t);
        if earlier {
            self.first_seen = Some(ev.time);
        }
        let created = self.created_by.is_none() && ev.action.class() == ActionClass::Presence;
        if created {
            self.created_by = Some(ev.actor.clone());
        }
        earlier || created
    }
}

/// An entity's hygiene clocks, indexed by [`crate::store::keys::HygieneRule::index`].
pub type Clocks = [Option<HygieneClock>; 2];

/// One hygiene clock of an entity (SPEC §4b): the time that armed it last, the deadline
/// that arming set, and the earliest timer still scheduled for it. Repeated armings (every
/// use of a key) move `since` and `deadline` only; the scheduled timer, when it comes due
/// before the deadline, schedules the next one (see `correlate::hygiene`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HygieneClock {
    /// The time of the arming event: `issued_at` or `last_active`.
    pub since: Micros,
    /// `since` + the limit of the arming event's kind.
    pub deadline: Micros,
    /// The earliest scheduled timer of this clock, at or before `deadline`.
    pub timer: Option<Micros>,
}

/// An entity's place in the lineage graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageRow {
    /// The entity it was issued from or belongs to.
    pub parent: Option<String>,
    /// Entities issued from it.
    pub children: Vec<String>,
    /// An ancestor above its parent, closer to the top of its tree (unset: its parent).
    /// Edges are never removed, so an ancestor stays one: a jump to it is always valid,
    /// and finding the top of a tree follows a few jumps, not the whole chain.
    pub jump: Option<String>,
    /// At the top of a tree: how many cases were ever opened at the tree's entities (at
    /// least the open ones). Zero spares a covering-case walk up the ancestors.
    pub tree_cases: u64,
}

impl LineageRow {
    /// The entity a walk towards the top of the tree goes to next: the jump, or else
    /// the parent.
    pub fn next(&self) -> Option<&str> {
        self.jump.as_deref().or(self.parent.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, EntityKind, Outcome, System};

    fn event(time: i64, action: Action, actor: Option<&str>) -> IdentityEvent {
        IdentityEvent {
            event_id: format!("e{time}"),
            system: System::Vault,
            source: "test".into(),
            time: Micros(time),
            entity: "key".into(),
            entity_kind: EntityKind::ApiKey,
            action,
            outcome: Outcome::Success,
            parent: None,
            actor: actor.map(str::to_owned),
            attributes: Default::default(),
        }
    }

    #[test]
    fn a_sighting_changes_the_row_only_on_the_first_event_the_first_presence_or_an_older_one() {
        let mut row = EntityRow::default();
        assert!(row.note_sighting(&event(10, Action::Used, Some("app"))));
        assert_eq!((row.first_seen, &row.created_by), (Some(Micros(10)), &None));
        assert!(!row.note_sighting(&event(11, Action::Used, Some("app"))));
        assert!(row.note_sighting(&event(12, Action::Created, Some("ops"))));
        assert_eq!(row.created_by, Some(Some("ops".into())));
        assert!(!row.note_sighting(&event(13, Action::Rotated, Some("bot"))));
        // A late event older than every other moves first_seen, not the creator.
        assert!(row.note_sighting(&event(5, Action::Issued, Some("late"))));
        assert_eq!(row.first_seen, Some(Micros(5)));
        assert_eq!(row.created_by, Some(Some("ops".into())));
        // A presence without an actor is still the first presence.
        let mut row = EntityRow::default();
        assert!(row.note_sighting(&event(1, Action::Enrolled, None)));
        assert!(!row.note_sighting(&event(2, Action::Enrolled, Some("later"))));
        assert_eq!(row.created_by, Some(None));
    }
}
