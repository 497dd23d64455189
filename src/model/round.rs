//! Consistency records of SPEC §4c kept in an entity's row: the latest rotation round
//! of the entity (the holders that owe its rotation an echo, and what each did) and its
//! registration mark (whether a registration deadline was ever armed for it).

use serde::{Deserialize, Serialize};

use crate::event::System;
use crate::time::Micros;

/// A rotation of an entity and the echoes the other holders owe it. Kept in the rotated
/// entity's row after it closes (until the next round), so `lineage` can show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// When the entity was rotated.
    pub rotated_at: Micros,
    /// Where it was rotated.
    pub origin: System,
    /// The holders that owe an echo, in the order they were armed.
    pub obligations: Vec<RoundObligation>,
}

/// The rotation one holder owes a round: the rotated entity itself in another system, or
/// one of its `secret` children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundObligation {
    /// The entity that must be rotated too.
    pub holder: String,
    /// Where.
    pub system: System,
    /// `rotated_at + rotation_sla[system]`.
    pub deadline: Micros,
    /// When a `rotated` event of the holder in that system echoed it.
    pub echoed: Option<Micros>,
    /// What its deadline found; none until the deadline is evaluated.
    pub outcome: Option<Followed>,
}

/// What a rotation deadline found for one holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Followed {
    /// The holder was rotated in time.
    Echoed,
    /// Not rotated, still active and not covered: `rotation_missed` was raised.
    Missed,
    /// Not rotated, but no longer active there or covered by a revocation: nothing owed.
    Released,
}

/// A round as `lineage` shows it: which holders followed the rotation and which did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoundView {
    /// When the entity was rotated.
    pub rotated_at: Micros,
    /// Where.
    pub origin: System,
    /// Each holder's obligation.
    pub holders: Vec<HolderView>,
}

/// One holder of a round in [`RoundView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolderView {
    /// The holder.
    pub entity: String,
    /// Where it owes the rotation.
    pub system: System,
    /// By when.
    pub deadline: Micros,
    /// `followed`, `missed`, `released` (no longer active there, or covered) or
    /// `pending` (its deadline is not past; `echoed_at` says if it followed already).
    pub status: &'static str,
    /// When it was rotated there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echoed_at: Option<Micros>,
}

impl Round {
    /// The round as `lineage` shows it.
    pub fn view(&self) -> RoundView {
        RoundView {
            rotated_at: self.rotated_at,
            origin: self.origin,
            holders: self
                .obligations
                .iter()
                .map(|o| HolderView {
                    entity: o.holder.clone(),
                    system: o.system,
                    deadline: o.deadline,
                    status: match o.outcome {
                        None => "pending",
                        Some(Followed::Echoed) => "followed",
                        Some(Followed::Missed) => "missed",
                        Some(Followed::Released) => "released",
                    },
                    echoed_at: o.echoed,
                })
                .collect(),
        }
    }

    /// Whether a deadline of the round has not been evaluated yet.
    pub fn is_open(&self) -> bool {
        self.obligations.iter().any(|o| o.outcome.is_none())
    }

    /// The distinct deadlines not evaluated yet, earliest first: one timer each.
    pub fn pending_deadlines(&self) -> Vec<Micros> {
        let mut deadlines: Vec<Micros> = self
            .obligations
            .iter()
            .filter(|o| o.outcome.is_none())
            .map(|o| o.deadline)
            .collect();
        deadlines.sort_unstable();
        deadlines.dedup();
        deadlines
    }
}

/// Whether a registration deadline of SPEC §4c was ever armed for an entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Registration {
    /// Not known to be registered; no deadline armed.
    #[default]
    Unknown,
    /// Registered through an ancestor (found once; registration never ends, since states
    /// never return to NONE and edges are never removed): no walk up again.
    Registered,
    /// A deadline is armed: first seen outside the system of record at `first_seen`.
    Armed {
        /// The time of the presence event that armed it.
        first_seen: Micros,
        /// `first_seen + register_within[kind]`.
        deadline: Micros,
    },
    /// The armed deadline was evaluated; none is ever armed again.
    Evaluated {
        /// The time of the presence event that armed it.
        first_seen: Micros,
    },
}
