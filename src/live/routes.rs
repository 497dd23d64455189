//! A state shard that reads the repartition topic (SPEC §7, [`crate::repartition`]):
//! events come routed by root in the router's order, with the router's watermark as
//! marks; a move-out takes a tree out of this shard's store and sends it to the shard of
//! the root it joined; a move-in waits here (its record held, so its offset is not
//! committed past) until the event that awaits it imports it. While a move-in is awaited
//! nothing after the awaiting event is applied and no deadline after it is evaluated.

use std::collections::HashMap;
use std::time::Instant;

use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::{Core, LiveError, Role};
use crate::alert::Alert;
use crate::error::DecodeError;
use crate::event::IdentityEvent;
use crate::repartition::{shard_of, Routed, RoutedEvent};
use crate::store::tree::TreeState;
use crate::time::Micros;

/// What a held event asks for when it is released.
pub(super) enum Step {
    /// Correlate it.
    Apply,
    /// Import the tree with this top (from the stash), then correlate it.
    Await(Box<str>),
    /// Move the tree whose top is its entity to the shard of this root.
    MoveOut(Box<str>),
}

/// Where a held event came from — its partition (index), the log it was read from
/// (epoch) and its record's offset — and what it asks for.
pub(super) struct Tag {
    pub(super) partition: usize,
    pub(super) epoch: u32,
    pub(super) offset: i64,
    pub(super) step: Step,
}

/// The repartition topic this shard reads, and the move-ins that arrived.
pub(super) struct Moves {
    topic: String,
    shards: usize,
    /// Move-ins by top.
    stash: HashMap<String, MoveIn>,
}

/// A move-in that arrived, and where its record is: held (its offset not committed past)
/// until the event that awaits it imports it.
struct MoveIn {
    tree: TreeState,
    partition: usize,
    epoch: u32,
    offset: i64,
}

impl Moves {
    /// A shard of `shards` reading `topic`.
    pub(super) fn new(topic: String, shards: usize) -> Moves {
        Moves {
            topic,
            shards,
            stash: HashMap::new(),
        }
    }

    /// Forgets the move-ins that arrived (their records are read again by the next owner).
    pub(super) fn forget(&mut self) {
        self.stash.clear();
    }
}

impl Core {
    /// Takes in a record of the repartition topic (partition index `p`).
    pub(super) fn ingest_routed(
        &mut self,
        p: usize,
        message: &BorrowedMessage<'_>,
        now: Instant,
    ) -> Result<(), LiveError> {
        let headers: Vec<(&str, &[u8])> = message
            .headers()
            .into_iter()
            .flat_map(|h| {
                h.iter()
                    .filter_map(|header| Some((header.key, header.value?)))
            })
            .collect();
        let routed = Routed::decode(&headers, message.payload().unwrap_or_default());
        let (offset, epoch) = (message.offset(), self.partitions[p].epoch);
        let steps = match routed {
            Ok(Routed::Events(run)) => run
                .into_iter()
                .map(|RoutedEvent { ev, awaits }| {
                    (ev, awaits.map_or(Step::Apply, |t| Step::Await(t.into())))
                })
                .collect(),
            Ok(Routed::MoveOut(ev)) => match message.key().map(std::str::from_utf8) {
                Some(Ok(root)) => vec![(ev, Step::MoveOut(root.into()))],
                _ => {
                    let why = DecodeError::new("repartition move-out without its root as key");
                    self.dead_letter(p, message, why);
                    Vec::new()
                }
            },
            Ok(Routed::MoveIn(tree)) => {
                let Role::Shard(correlator, moves) = &mut self.role else {
                    return Ok(());
                };
                if !correlator.joined(&tree.top)? {
                    self.partitions[p].hold(offset);
                    let top = tree.top.clone();
                    let arrived = MoveIn {
                        tree,
                        partition: p,
                        epoch,
                        offset,
                    };
                    if let Some(earlier) = moves.stash.insert(top, arrived) {
                        self.partitions[earlier.partition].release(earlier.epoch, earlier.offset);
                    }
                }
                Vec::new()
            }
            Ok(Routed::Mark(watermark)) => {
                let lateness = self.config.correlator.allowed_lateness;
                self.watermarks.observe(p, watermark.plus(lateness), now);
                Vec::new()
            }
            Err(why) => {
                self.dead_letter(p, message, why);
                Vec::new()
            }
        };
        for (ev, step) in steps {
            self.partitions[p].hold(offset);
            let tag = Tag {
                partition: p,
                epoch,
                offset,
                step,
            };
            self.buffer.push_tagged(ev, tag);
        }
        Ok(())
    }

    /// Pops the next held event before `limit`, unless it awaits a move-in that has
    /// not arrived (and its tree has not joined here already: a repeated event); then
    /// nothing, and `blocked` is its time.
    pub(super) fn pop_release(
        &mut self,
        limit: Micros,
        blocked: &mut Option<Micros>,
    ) -> Result<Option<Box<(IdentityEvent, Tag)>>, LiveError> {
        let Some(front) = self.buffer.peek_before(limit) else {
            return Ok(None);
        };
        if let (Step::Await(top), Role::Shard(correlator, moves)) = (&front.1.step, &mut self.role)
        {
            if !moves.stash.contains_key(&**top) && !correlator.joined(top)? {
                *blocked = Some(front.0.time);
                return Ok(None);
            }
        }
        Ok(self.buffer.pop_before(limit))
    }

    /// Applies a released event as its step says.
    pub(super) fn apply_step(
        &mut self,
        ev: &IdentityEvent,
        step: &Step,
        alerts: &mut Vec<Alert>,
    ) -> Result<(), LiveError> {
        match step {
            Step::Apply => {}
            Step::Await(top) => {
                if let Role::Shard(correlator, moves) = &mut self.role {
                    if let Some(MoveIn {
                        tree,
                        partition: p,
                        epoch,
                        offset,
                    }) = moves.stash.remove(&**top)
                    {
                        let entities = tree.entities.len();
                        if correlator.move_in(tree)? {
                            tracing::info!(top = %top, entities, "tree moved in");
                            self.metrics.tree_moves.with_label_values(&["in"]).inc();
                        }
                        self.partitions[p].release(epoch, offset);
                    }
                }
            }
            Step::MoveOut(root) => {
                // Only a shard reading routes holds move-outs.
                let Role::Shard(correlator, moves) = &mut self.role else {
                    return Ok(());
                };
                let (topic, to) = (moves.topic.clone(), shard_of(root, moves.shards));
                let tree = correlator.move_out(ev, alerts)?;
                tracing::info!(top = %ev.entity, root = %root, to, entities = tree.entities.len(), "tree moved out");
                self.metrics.tree_moves.with_label_values(&["out"]).inc();
                let record = Routed::MoveIn(tree).record(&topic, root, to);
                self.queue(record);
                return Ok(());
            }
        }
        self.role.apply(ev, alerts)?;
        Ok(())
    }
}
