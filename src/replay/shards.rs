//! A replay over several correlators (SPEC §7): the events of one lineage tree always
//! reach the same shard, a correlator with its own store on its own thread, so the
//! shards together raise exactly the alerts of one correlator — what one tree's alerts
//! are depends only on that tree's events, in the order the reorder buffer releases them.
//!
//! Which trees an input holds is known only once all of it is read (an entity may gain
//! a parent late, joining two trees), so a sharded replay reads its input twice: first
//! its lineage edges into a union-find ([`Trees`]), then its events, each sent to the
//! shard of its tree. Two events with one (system, event id) are put in one tree too: a
//! redelivery must meet the event it repeats. Grouping more than needed is harmless
//! (a hash collision merges two trees); grouping less would not be.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::thread::{Scope, ScopedJoinHandle};

use crossbeam_channel::{bounded, Sender};
use foldhash::fast::RandomState;

use crate::correlate::{Correlator, Stats};
use crate::error::StoreError;
use crate::event::IdentityEvent;
use crate::store::view::StateView;
use crate::time::Micros;

/// The lineage trees of an input, as a union-find over its entities.
#[derive(Default)]
pub struct Trees {
    entities: HashMap<Box<str>, usize, RandomState>,
    parent: Vec<usize>,
    events: HashMap<u64, usize, RandomState>,
    hasher: RandomState,
}

impl Trees {
    /// Puts `ev`'s entity in one tree with its parent and with the entity of any earlier
    /// event with the same (system, event id).
    pub fn add(&mut self, ev: &IdentityEvent) {
        let entity = self.node(&ev.entity);
        if let Some(parent) = &ev.parent {
            let parent = self.node(parent);
            self.union(entity, parent);
        }
        let key = self.hasher.hash_one((ev.system, ev.event_id.as_str()));
        match self.events.get(&key) {
            Some(&other) => self.union(entity, other),
            None => {
                self.events.insert(key, entity);
            }
        }
    }

    /// The shard, of `n`, of the tree of `entity`.
    pub fn shard(&mut self, entity: &str, n: usize) -> usize {
        let Some(&node) = self.entities.get(entity) else {
            return 0;
        };
        // Spread consecutive roots (entities numbered in input order) over the shards.
        let mixed = (self.find(node) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        (mixed % n as u64) as usize
    }

    fn node(&mut self, id: &str) -> usize {
        if let Some(&node) = self.entities.get(id) {
            return node;
        }
        let node = self.parent.len();
        self.parent.push(node);
        self.entities.insert(id.into(), node);
        node
    }

    fn find(&mut self, mut node: usize) -> usize {
        while self.parent[node] != node {
            let grand = self.parent[self.parent[node]];
            self.parent[node] = grand;
            node = grand;
        }
        node
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }
}

/// What a shard's thread is sent.
enum Batch {
    /// Events to apply, in order.
    Events(Vec<IdentityEvent>),
    /// The end of the input: evaluate deadlines up to this instant, commit, report.
    Finish(Option<Micros>),
}

/// What the shards did and left, together.
pub struct Ended {
    /// Their committed states, which hold the alerts.
    pub views: Vec<StateView>,
    /// The shards' counters, added up.
    pub stats: Stats,
    /// Deadlines after the end, pending.
    pub pending: u64,
}

/// A shard applying events, committing every `commit_every`.
struct Applying {
    commit_every: u64,
    since_commit: u64,
    scratch: Vec<crate::alert::Alert>,
}

impl Applying {
    fn apply(
        &mut self,
        correlator: &mut Correlator,
        events: &[IdentityEvent],
    ) -> Result<(), StoreError> {
        for (i, ev) in events.iter().enumerate() {
            correlator.store_mut().look_ahead(|i| events.get(i), i);
            correlator.apply(ev, &mut self.scratch)?;
            self.scratch.clear();
            self.since_commit += 1;
            if self.since_commit == self.commit_every {
                self.since_commit = 0;
                correlator.commit_in_background()?;
            }
        }
        Ok(())
    }
}

/// The shards of a replay, each a correlator on a thread of `scope`.
pub struct Shards<'scope> {
    trees: Option<Trees>,
    senders: Vec<Sender<Batch>>,
    threads: Vec<ScopedJoinHandle<'scope, Result<Ended, StoreError>>>,
}

impl<'scope> Shards<'scope> {
    /// Starts one thread per correlator; `trees` routes the events (None: one shard).
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        correlators: impl IntoIterator<Item = &'env mut Correlator>,
        trees: Option<Trees>,
    ) -> Shards<'scope> {
        let (mut senders, mut threads) = (Vec::new(), Vec::new());
        for correlator in correlators {
            let (tx, rx) = bounded::<Batch>(4);
            senders.push(tx);
            threads.push(scope.spawn(move || {
                let commit_every = correlator.store_mut().budget().commit_every();
                let mut applying = Applying {
                    commit_every,
                    since_commit: 0,
                    scratch: Vec::new(),
                };
                // The rows of a batch are read while the batch before it is applied, once
                // there are enough of them to read.
                let mut next: Vec<IdentityEvent> = Vec::new();
                for batch in rx {
                    match batch {
                        Batch::Events(events) if correlator.prefetch_pays_a_thread() => {
                            correlator.start_prefetch(events.iter())?;
                            applying.apply(correlator, &next)?;
                            correlator.finish_prefetch()?;
                            next = events;
                        }
                        Batch::Events(events) => {
                            applying.apply(correlator, &std::mem::take(&mut next))?;
                            correlator.prefetch(events.iter())?;
                            applying.apply(correlator, &events)?;
                        }
                        Batch::Finish(as_of) => {
                            applying.apply(correlator, &next)?;
                            let scratch = &mut applying.scratch;
                            // The deadlines up to `as_of` — months of them for a late
                            // `--as-of` — in steps of `commit_every`, each committed.
                            let step = usize::try_from(commit_every).unwrap_or(usize::MAX);
                            if let Some(t) = as_of {
                                while correlator.finish(t, step, scratch)? {
                                    scratch.clear();
                                    correlator.commit_in_background()?;
                                }
                            }
                            correlator.commit()?;
                            return Ok(Ended {
                                views: vec![correlator.store_mut().view()],
                                stats: correlator.stats(),
                                pending: correlator.pending()?,
                            });
                        }
                    }
                }
                Err(StoreError::Incompatible(
                    "a replay shard's input ended without its finish".into(),
                ))
            }));
        }
        Shards {
            trees,
            senders,
            threads,
        }
    }

    /// Sends the events of `ready` (emptied) to their shards.
    pub fn apply(&mut self, ready: &mut Vec<IdentityEvent>) -> Result<(), StoreError> {
        if ready.is_empty() {
            return Ok(());
        }
        let Some(trees) = &mut self.trees else {
            return self.send(0, Batch::Events(std::mem::take(ready)));
        };
        let n = self.senders.len();
        let mut split: Vec<Vec<IdentityEvent>> = (0..n).map(|_| Vec::new()).collect();
        for ev in ready.drain(..) {
            split[trees.shard(&ev.entity, n)].push(ev);
        }
        for (shard, events) in split.into_iter().enumerate() {
            if !events.is_empty() {
                self.send(shard, Batch::Events(events))?;
            }
        }
        Ok(())
    }

    /// Ends every shard at `as_of` and gathers what they raised.
    pub fn finish(mut self, as_of: Option<Micros>) -> Result<Ended, StoreError> {
        for shard in 0..self.senders.len() {
            self.send(shard, Batch::Finish(as_of))?;
        }
        let mut all = Ended {
            views: Vec::new(),
            stats: Stats::default(),
            pending: 0,
        };
        for thread in self.threads {
            let ended = join(thread)?;
            all.views.extend(ended.views);
            all.stats.absorb(&ended.stats);
            all.pending += ended.pending;
        }
        Ok(all)
    }

    /// Sends `batch` to `shard`; when that shard has stopped, its error.
    fn send(&mut self, shard: usize, batch: Batch) -> Result<(), StoreError> {
        if self.senders[shard].send(batch).is_ok() {
            return Ok(());
        }
        let thread = self.threads.swap_remove(shard);
        Err(join(thread).err().unwrap_or_else(|| {
            StoreError::Incompatible("a replay shard stopped before its input ended".into())
        }))
    }
}

fn join(thread: ScopedJoinHandle<'_, Result<Ended, StoreError>>) -> Result<Ended, StoreError> {
    thread
        .join()
        .unwrap_or_else(|_| Err(StoreError::Incompatible("a replay shard panicked".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, entity: &str, parent: Option<&str>) -> IdentityEvent {
        let parent = parent.map_or(String::new(), |p| format!(r#","parent":"{p}""#));
        crate::decode::json::decode(
            format!(r#"{{"event_id":"{id}","system":"iam","time":"2026-01-01T00:00:00Z","entity":"{entity}","action":"used"{parent}}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn a_tree_joined_late_and_a_repeated_event_id_share_a_shard() {
        let mut trees = Trees::default();
        trees.add(&event("1", "token-a", Some("key-a")));
        trees.add(&event("2", "token-b", Some("key-b")));
        trees.add(&event("3", "lonely", None));
        // key-b gains a parent late: both trees are one.
        trees.add(&event("4", "key-b", Some("key-a")));
        // The same event id for another entity: a redelivery must meet its original.
        trees.add(&event("3", "stray", None));
        for n in [2, 3, 7] {
            let a = trees.shard("token-a", n);
            for entity in ["key-a", "token-b", "key-b"] {
                assert_eq!(trees.shard(entity, n), a, "{entity} with {n} shards");
            }
            assert_eq!(trees.shard("stray", n), trees.shard("lonely", n));
        }
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|i| {
                trees.add(&event(&format!("x{i}"), &format!("e{i}"), None));
                trees.shard(&format!("e{i}"), 4)
            })
            .collect();
        assert_eq!(spread.len(), 4, "independent trees spread over every shard");
    }
}
