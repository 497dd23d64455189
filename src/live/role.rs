//! What a core is for: the partitions it covers, and its role — correlating, routing for
//! the group, or correlating a state shard's routed events — with the store it owns.

use super::probe::Probe;
use super::routes::Moves;
use crate::alert::Alert;
use crate::config::Config;
use crate::correlate::{Correlator, Rules, Stats};
use crate::error::StoreError;
use crate::event::IdentityEvent;
use crate::repartition::Router;
use crate::store::Store;
use crate::time::Micros;

/// What one core covers (an instance's every partition, a group's state shard or its
/// router), and its role there.
pub(super) struct Scope {
    /// The source partitions it consumes (with their positions in its store).
    pub(super) partitions: Vec<(String, i32)>,
    pub(super) probe: Probe,
    pub(super) judges_silence: bool,
    pub(super) role: Role,
}

/// What a core does with the events it reads, over its store.
pub(super) enum Role {
    /// Correlates them (SPEC §4).
    Correlate(Correlator),
    /// Routes them by lineage root to the repartition topic: the group's router.
    Route(Router),
    /// Correlates what the router sent to its state shard, and moves trees.
    Shard(Correlator, Moves),
}

impl Role {
    /// Correlating over `store`, keeping the changelog of cases.
    pub(super) fn correlate(config: &Config, store: Store) -> Role {
        Role::Correlate(Correlator::new(Rules::from(config), store).with_changelog())
    }

    /// Correlating over `store` what the router sends to a state shard.
    pub(super) fn shard(config: &Config, store: Store, moves: Moves) -> Role {
        Role::Shard(
            Correlator::new(Rules::from(config), store).with_changelog(),
            moves,
        )
    }

    pub(super) fn store_mut(&mut self) -> &mut Store {
        match self {
            Role::Correlate(c) | Role::Shard(c, _) => c.store_mut(),
            Role::Route(r) => r.store_mut(),
        }
    }

    pub(super) fn stats(&self) -> Stats {
        match self {
            Role::Correlate(c) | Role::Shard(c, _) => c.stats(),
            Role::Route(r) => r.stats(),
        }
    }

    /// The correlator, unless it routes.
    pub(super) fn correlator(&mut self) -> Option<&mut Correlator> {
        match self {
            Role::Correlate(c) | Role::Shard(c, _) => Some(c),
            Role::Route(_) => None,
        }
    }

    /// Applies a released event: correlated, or routed.
    pub(super) fn apply(
        &mut self,
        ev: &IdentityEvent,
        alerts: &mut Vec<Alert>,
    ) -> Result<(), StoreError> {
        match self {
            Role::Correlate(c) | Role::Shard(c, _) => c.apply(ev, alerts),
            Role::Route(r) => r.apply(ev),
        }
    }

    /// Moves time to `watermark`: the deadlines before it evaluated (at most `max`;
    /// true when more may be due), or, for the router, marked on every shard.
    pub(super) fn advance(
        &mut self,
        watermark: Micros,
        max: usize,
        alerts: &mut Vec<Alert>,
    ) -> Result<bool, StoreError> {
        match self {
            Role::Correlate(c) | Role::Shard(c, _) => c.advance(watermark, max, alerts),
            Role::Route(r) => {
                r.mark(watermark);
                Ok(false)
            }
        }
    }
}
