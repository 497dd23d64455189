//! Cases: a revocation of a root entity and the echo every other system owes it
//! (SPEC §4). A case holds one [`Obligation`] per system with an SLA; each obligation
//! ends `Met` (nothing missing at the deadline), `Missing` (an `echo_missing` was
//! raised), or `Late` (the missing echo came after all).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::alert::hex;
use crate::event::{EntityKind, System};
use crate::time::Micros;

/// What became of one system's obligation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Echo {
    /// The deadline has not passed.
    Pending,
    /// At the deadline nothing was missing; `at` is when the last entity the system
    /// held was revoked there (none when it held none).
    Met {
        /// When the echo completed, if the system had anything to echo.
        at: Option<Micros>,
    },
    /// At the deadline these entities were still active (or the root unreported).
    Missing {
        /// The missing set, sorted.
        entities: Vec<String>,
    },
    /// The missing set was finally revoked.
    Late {
        /// The missing set, sorted.
        entities: Vec<String>,
        /// When the last of them was revoked.
        at: Micros,
        /// The event that completed the echo.
        event_id: String,
    },
}

/// The echo one system owes a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Obligation {
    /// The system that owes it.
    pub system: System,
    /// `revoked_at + sla`.
    pub deadline: Micros,
    /// Its outcome so far.
    pub echo: Echo,
}

/// A revocation and the obligations it creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Deterministic id of (root, revoked_at, origin).
    pub id: String,
    /// The revoked entity.
    pub root: String,
    /// Its kind, which chose the SLA overrides.
    pub root_kind: EntityKind,
    /// When it was revoked.
    pub revoked_at: Micros,
    /// Where it was revoked.
    pub origin: System,
    /// The revocation event.
    pub opened_by: String,
    /// When a reactivation of the root superseded it.
    pub superseded_at: Option<Micros>,
    /// One per system with an SLA.
    pub obligations: Vec<Obligation>,
}

impl Case {
    /// The obligation of `system`, if it has one.
    pub fn obligation_mut(&mut self, system: System) -> Option<&mut Obligation> {
        self.obligations.iter_mut().find(|o| o.system == system)
    }

    /// Whether a reactivation of the root has superseded the case.
    pub fn is_superseded(&self) -> bool {
        self.superseded_at.is_some()
    }
}

/// `c-` and 96 bits of SHA-256 over (root, revoked_at, origin).
pub fn case_id(root: &str, revoked_at: Micros, origin: System) -> String {
    let mut h = Sha256::new();
    h.update((root.len() as u64).to_be_bytes());
    h.update(root.as_bytes());
    h.update(revoked_at.0.to_be_bytes());
    h.update(origin.as_str().as_bytes());
    format!("c-{}", hex(&h.finalize()[..12]))
}
