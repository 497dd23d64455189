//! A lineage tree's state as one value, to move it between state shards (SPEC §7): when
//! the top of a tree gains a parent whose tree another shard holds, the whole tree —
//! entity rows, lineage rows, its open cases with their pending deadlines, the watches
//! waiting for its echoes, its hygiene clocks, its rotation rounds and registration marks
//! (SPEC §4c, in the entity rows) and the once-per alerts already raised for it — leaves one store ([`Store::take_tree`]) and joins the other
//! ([`Store::put_tree`]) before the event that links them is applied there.
//!
//! What a tree's results depend on is only its own events (coverage walks up, missing
//! sets walk down, both inside the tree), so the moved state continues exactly where the
//! old shard left it. Superseded cases stay behind: they evaluate nothing more, and their
//! timers there find them superseded. Timelines (`history`) stay too: they serve the
//! inspection of the shard that recorded them.

use serde::{Deserialize, Serialize};

use super::keys::{Due, HygieneRule, TimerKey};
use super::Store;
use crate::alert::{alert_id, AlertKind};
use crate::error::StoreError;
use crate::event::System;
use crate::model::case::{Case, Echo};
use crate::model::entity::{EntityRow, LineageRow};
use crate::model::round::Registration;

/// Everything a store holds of one lineage tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeState {
    /// The tree's top when it left.
    pub top: String,
    /// Entity rows, top first, then breadth first.
    pub entities: Vec<(String, EntityRow)>,
    /// Lineage rows, in the same order.
    pub lineage: Vec<(String, LineageRow)>,
    /// The open cases rooted in the tree.
    pub cases: Vec<Case>,
    /// (entity, system, cases waiting for that echo).
    pub watches: Vec<(String, System, Vec<String>)>,
    /// Alerts raised once per (case, entity, system), as id and canonical JSON: raised
    /// again after the move they would repeat.
    pub alerts: Vec<(String, String)>,
}

impl TreeState {
    /// Whether the store held nothing of the tree.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty() && self.lineage.is_empty()
    }

    /// The timers the tree's state schedules: the pending echo deadlines of its cases,
    /// the deadlines of its open rotation rounds and armed registrations, and the next
    /// timer of each hygiene clock.
    fn timers(&self) -> Vec<TimerKey> {
        let echoes = self.cases.iter().flat_map(|case| {
            case.obligations
                .iter()
                .filter(|o| o.echo == Echo::Pending)
                .map(|o| TimerKey {
                    deadline: o.deadline,
                    due: Due::Echo {
                        case_id: case.id.clone(),
                        system: o.system,
                    },
                })
        });
        let clocks = self.entities.iter().flat_map(|(entity, row)| {
            HygieneRule::ALL.into_iter().filter_map(move |rule| {
                let timer = row.clocks[rule.index()]?.timer?;
                Some(TimerKey {
                    deadline: timer,
                    due: Due::Hygiene {
                        rule,
                        entity: entity.clone(),
                    },
                })
            })
        });
        let consistency = self
            .entities
            .iter()
            .flat_map(|(entity, row)| consistency_timers(entity, row));
        echoes.chain(consistency).chain(clocks).collect()
    }
}

/// The timers of an entity's open rotation round and armed registration (SPEC §4c).
pub fn consistency_timers(entity: &str, row: &EntityRow) -> Vec<TimerKey> {
    let mut timers = Vec::new();
    if let Some(round) = &row.round {
        for deadline in round.pending_deadlines() {
            timers.push(TimerKey {
                deadline,
                due: Due::Rotation {
                    rotated_at: round.rotated_at,
                    entity: entity.to_owned(),
                },
            });
        }
    }
    if let Registration::Armed {
        first_seen,
        deadline,
    } = row.registration
    {
        timers.push(TimerKey {
            deadline,
            due: Due::Registration {
                first_seen,
                entity: entity.to_owned(),
            },
        });
    }
    timers
}

impl Store {
    /// Removes the tree whose top is `top` from this store and returns it (empty when
    /// the store holds nothing of it). Its timers are unscheduled here.
    pub fn take_tree(&mut self, top: &str) -> Result<TreeState, StoreError> {
        let mut tree = TreeState {
            top: top.to_owned(),
            ..TreeState::default()
        };
        let mut members = vec![top.to_owned()];
        let mut next = 0;
        while next < members.len() {
            let entity = members[next].clone();
            next += 1;
            if let Some(id) = self.index.id(&entity) {
                if let Some(row) = self.index.take_lineage_row(id) {
                    members.extend(row.children.iter().cloned());
                    tree.lineage.push((entity.clone(), row));
                }
                if let Some(row) = self.index.row(id)? {
                    for id in &row.cases {
                        if let Some(case) = self.cases.get(&self.db, id.as_bytes())? {
                            self.cases.delete(id.as_bytes());
                            tree.cases.push(case);
                        }
                    }
                    tree.entities.push((entity.clone(), row));
                    self.index.remove_row(id);
                }
            }
            for &system in System::ALL {
                let cases = self.watches(&entity, system)?;
                if !cases.is_empty() {
                    self.put_watches(&entity, system, Vec::new());
                    tree.watches.push((entity.clone(), system, cases));
                }
            }
        }
        for case in &tree.cases {
            for entity in &members {
                for &system in System::ALL {
                    for kind in [AlertKind::RevokedEntityUsed, AlertKind::Reactivated] {
                        let id = alert_id(kind, Some(&case.id), system, entity, None);
                        if let Some(json) = self.alerts.get(&self.db, id.as_bytes())? {
                            tree.alerts.push((id, json));
                        }
                    }
                }
            }
        }
        for timer in tree.timers() {
            self.timers.remove(timer);
        }
        Ok(tree)
    }

    /// Adds a tree taken from another store, with its timers; its entities are
    /// interned here.
    pub fn put_tree(&mut self, tree: TreeState) -> Result<(), StoreError> {
        for timer in tree.timers() {
            self.timers.add(timer);
        }
        for (entity, row) in tree.entities {
            self.put_entity(&entity, row)?;
        }
        for (entity, row) in &tree.lineage {
            self.index.put_lineage_row(entity, row)?;
        }
        for case in tree.cases {
            self.put_case(case);
        }
        for (entity, system, cases) in tree.watches {
            self.put_watches(&entity, system, cases);
        }
        for (id, json) in tree.alerts {
            self.alerts.put(id.as_bytes(), json);
        }
        Ok(())
    }
}
