//! Deadline timers with a bounded memory: the `timers` column family holds every one, in
//! deadline order; memory holds a window of the earliest — every timer due at or before
//! `horizon` — so the next due timer is always in memory, however many are scheduled
//! (a million revocations are a few million timers). A window grown past twice
//! [`WINDOW`] keeps its earliest [`WINDOW`]; an empty one is refilled from the column
//! family (after the store's pending batch is durable) merged with the additions and
//! removals not yet staged. Changes are staged in the order they were made.

use std::collections::BTreeSet;

use rocksdb::{Direction, IteratorMode, WriteBatch, DB};

use super::family::Family;
use super::keys::{instant, Due, TimerKey};
use crate::error::StoreError;
use crate::event::System;
use crate::time::{Micros, Span};

/// Timers kept in memory after a shrink, and loaded at a time.
pub const WINDOW: usize = 65_536;

/// The scheduled timers.
pub struct Timers {
    window: BTreeSet<TimerKey>,
    /// Every timer due at or before it is in `window`; later ones are only in the column
    /// family or in `ops`.
    horizon: Micros,
    /// Additions (true) and removals (false) since the last stage, in order.
    ops: Vec<(TimerKey, bool)>,
}

impl Timers {
    /// Nothing in memory yet: the first look loads the earliest.
    pub fn new() -> Timers {
        Timers {
            window: BTreeSet::new(),
            horizon: Micros::MIN,
            ops: Vec::new(),
        }
    }

    /// Schedules `timer`.
    pub fn add(&mut self, timer: TimerKey) {
        if timer.deadline > self.horizon {
            self.ops.push((timer, true));
            return;
        }
        if self.window.insert(timer.clone()) {
            self.ops.push((timer, true));
            if self.window.len() > 2 * WINDOW {
                self.shrink();
            }
        }
    }

    /// Unschedules `timer` (a tree that moved to another store takes it along).
    pub fn remove(&mut self, timer: TimerKey) {
        self.window.remove(&timer);
        self.ops.push((timer, false));
    }

    /// Whether the window must be refilled before the earliest timer is known.
    pub fn needs_load(&self) -> bool {
        self.window.is_empty() && self.horizon < Micros::MAX
    }

    /// Removes and returns the earliest timer due before `limit` (or at it, if
    /// `inclusive`). Only when [`Timers::needs_load`] is false is the answer complete.
    pub fn pop_due(&mut self, limit: Micros, inclusive: bool) -> Option<TimerKey> {
        let first = self.window.first()?;
        let due = if inclusive {
            first.deadline <= limit
        } else {
            first.deadline < limit
        };
        if !due {
            return None;
        }
        let timer = self.window.pop_first()?;
        self.ops.push((timer.clone(), false));
        Some(timer)
    }

    /// Refills the window with the earliest timers after the horizon: from `db` (every
    /// staged change must be written) and the changes not staged yet.
    pub fn load(&mut self, db: &DB) -> Result<(), StoreError> {
        let cf = Family::Timers.handle(db)?;
        let start = after(self.horizon);
        let mut found = BTreeSet::new();
        let mut full = None;
        for item in db.iterator_cf(cf, IteratorMode::From(&start, Direction::Forward)) {
            let (key, _) = item?;
            let timer = TimerKey::decode(&key).ok_or_else(|| StoreError::Corrupt {
                cf: Family::Timers.name(),
                message: format!("undecodable key {key:?}"),
            })?;
            if let Some(last) = found.last().filter(|_| found.len() >= WINDOW) {
                let last: &TimerKey = last;
                if last.deadline < timer.deadline {
                    full = Some(last.deadline);
                    break;
                }
            }
            found.insert(timer);
        }
        for (timer, added) in &self.ops {
            if timer.deadline > self.horizon {
                if *added {
                    found.insert(timer.clone());
                } else {
                    found.remove(timer);
                }
            }
        }
        // Full: every stored timer up to the last one read is here; else all of them.
        self.horizon = full.unwrap_or(Micros::MAX);
        let horizon = self.horizon;
        self.window
            .extend(found.into_iter().filter(|t| t.deadline <= horizon));
        Ok(())
    }

    /// Keeps the earliest [`WINDOW`] timers (and any due at the same instant as the
    /// last of them) in memory; the rest are in the column family or in `ops`.
    fn shrink(&mut self) {
        let Some(keep) = self.window.iter().nth(WINDOW).map(|t| t.deadline) else {
            return;
        };
        if keep == Micros::MAX {
            return;
        }
        self.window.split_off(&first_at(keep.plus(Span(1))));
        self.horizon = keep;
    }

    /// Takes the changes out, for the thread that writes the next batch
    /// ([`Staged::put`]).
    pub fn stage(&mut self) -> Staged {
        Staged(std::mem::take(&mut self.ops))
    }

    /// How many timers are scheduled, counted in `db` (after a commit).
    pub fn count(db: &DB) -> Result<u64, StoreError> {
        let cf = Family::Timers.handle(db)?;
        let mut n = 0;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            item?;
            n += 1;
        }
        Ok(n)
    }
}

/// Timer changes staged for a batch: encoded and put into it by the thread that writes it.
pub struct Staged(Vec<(TimerKey, bool)>);

impl Staged {
    /// Puts the changes into `batch`, in the order they were made.
    pub fn put(self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let cf = Family::Timers.handle(db)?;
        for (timer, added) in self.0 {
            if added {
                batch.put_cf(cf, timer.encode(), []);
            } else {
                batch.delete_cf(cf, timer.encode());
            }
        }
        Ok(())
    }
}

/// The smallest timer due at `deadline`.
fn first_at(deadline: Micros) -> TimerKey {
    TimerKey {
        deadline,
        due: Due::Echo {
            case_id: String::new(),
            system: System::ALL[0],
        },
    }
}

/// The first key after every timer due at or before `horizon`.
fn after(horizon: Micros) -> Vec<u8> {
    if horizon == Micros::MIN {
        return Vec::new();
    }
    instant(horizon.plus(Span(1))).to_vec()
}

impl Default for Timers {
    fn default() -> Self {
        Timers::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use rand::{Rng, SeedableRng};

    fn timer(deadline: i64, n: u64) -> TimerKey {
        TimerKey {
            deadline: Micros(deadline),
            due: Due::Echo {
                case_id: format!("c{n}"),
                system: System::ALL[(n % 4) as usize],
            },
        }
    }

    /// Several windows' worth of timers, added before and while they are popped and
    /// across commits, come out in order, each once, with memory holding a window only.
    #[test]
    fn timers_beyond_memory_come_back_in_order() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut store = Store::temporary().unwrap();
        let mut expected = BTreeSet::new();
        for n in 0..(3 * WINDOW as u64) {
            let t = timer(rng.gen_range(0..1_000_000), n);
            expected.insert(t.clone());
            store.add_timer(t);
        }
        assert!(
            store.timers.window.len() <= 2 * WINDOW + 1,
            "memory holds a window"
        );
        store.commit().unwrap();
        let mut popped = Vec::new();
        let mut n = 10 * WINDOW as u64;
        while let Some(t) = store.pop_due_timer(Micros(2_000_000), false).unwrap() {
            if popped.len() % 1000 == 0 {
                // Later additions, some before what is left, some far after; a commit
                // now and then (in the background, as replay does).
                for _ in 0..50 {
                    n += 1;
                    let t = timer(t.deadline.0 + rng.gen_range(0..1_500_000), n);
                    if t.deadline.0 < 2_000_000 {
                        expected.insert(t.clone());
                    }
                    store.add_timer(t);
                }
                store.commit_in_background().unwrap();
            }
            popped.push(t);
        }
        let expected: Vec<TimerKey> = expected.into_iter().collect();
        assert_eq!(popped.len(), expected.len());
        assert!(popped == expected, "in order, each once");
        assert!(
            store.pending_timers().unwrap() > 0,
            "the later ones stay scheduled"
        );
    }
}
