//! The source partitions of a core. Each as the core tracks it: the next offset to read,
//! the records whose events are still held for ordering (so that its stored position
//! never passes one), the last record's fingerprint for continuity. And the core's
//! bookkeeping of them: taking one on, connecting a consumer assigned every one where it
//! resumes (reading back the last record consumed), pausing those ahead when too many
//! events are held, handing them over.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use prometheus::IntCounter;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::events::{At, Event, LogLost};
use super::{Core, LiveError, Role};
use crate::correlate::reorder::ReorderBuffer;
use crate::event::IdentityEvent;
use crate::source::continuity::{self, Continuity};
use crate::source::kafka::assigned_consumer;
use crate::store::Position;
use crate::telemetry::Metrics;

/// A source partition a core reads, and what it holds of it.
pub(super) struct Partition {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) source: usize,
    pub(super) next_offset: i64,
    /// Offset and fingerprint of the last record consumed.
    pub(super) check: Option<(i64, u64)>,
    /// Counts the logs this partition was read from (a lost log starts a new one), so
    /// events held from an old log do not release offsets of the new one.
    pub(super) epoch: u32,
    /// Offsets with events in the reorder buffer (how many), ascending; released
    /// entries stay, at 0, until the ones before them are released too.
    pub(super) held: VecDeque<(i64, u32)>,
    pub(super) stored: Option<Position>,
    /// `lockstep_events_total` of this topic by system and outcome, looked up once.
    pub(super) counters: [Option<IntCounter>; 8],
}

impl Partition {
    /// Where record `offset` of this partition is.
    pub(super) fn at(&self, offset: i64) -> At<'_> {
        At {
            topic: &self.topic,
            partition: self.partition,
            offset,
        }
    }

    pub(super) fn position(&self) -> Position {
        Position {
            next: self
                .held
                .front()
                .map_or(self.next_offset, |&(offset, _)| offset),
            check: self.check,
        }
    }

    /// Where the consumer resumes this partition.
    pub(super) fn resume_at(&self) -> Offset {
        match self.next_offset {
            0 => Offset::Beginning,
            next => Offset::Offset(next),
        }
    }

    /// The broker lost the log read so far: read the new one from its beginning.
    pub(super) fn start_over(&mut self) {
        self.next_offset = 0;
        self.check = None;
        self.epoch += 1;
        self.held.clear();
    }

    pub(super) fn count(&mut self, metrics: &Metrics, ev: &IdentityEvent) {
        let slot = ev.system.index() * 2 + ev.outcome.index();
        self.counters[slot]
            .get_or_insert_with(|| {
                metrics.events.with_label_values(&[
                    ev.system.as_str(),
                    &self.topic,
                    ev.outcome.as_str(),
                ])
            })
            .inc();
    }

    pub(super) fn release(&mut self, epoch: u32, offset: i64) {
        if epoch != self.epoch {
            return;
        }
        // Offsets are consecutive but where a log skips some: look there first.
        let first = self.held.front().map_or(offset, |&(o, _)| o);
        let guess = usize::try_from(offset - first).ok();
        let at = match guess.and_then(|i| self.held.get(i)) {
            Some(&(o, _)) if o == offset => guess,
            _ => self.held.binary_search_by_key(&offset, |&(o, _)| o).ok(),
        };
        if let Some(i) = at {
            self.held[i].1 = self.held[i].1.saturating_sub(1);
        }
        while self.held.front().is_some_and(|&(_, n)| n == 0) {
            self.held.pop_front();
        }
    }

    /// One more event of the record at `offset` (offsets only grow within a log) is held.
    pub(super) fn hold(&mut self, offset: i64) {
        match self.held.back_mut() {
            Some((last, n)) if *last == offset => *n += 1,
            _ => self.held.push_back((offset, 1)),
        }
    }
}

/// The partitions to pause with `held` events held for ordering and `paused` paused
/// now, given those `ahead` of the slowest active one: over `max` (`max_held_events`),
/// every one ahead, so that the slowest catches up and the watermark moves; at half of
/// it, none; in between, those paused now — except one no longer ahead: when the
/// partitions it waited for go quiet, a paused one becomes the slowest, and the
/// watermark then waits for it (kept paused, the pipeline stalled: a 3.1M-event
/// pre-loaded run stopped for good at 1.76M).
pub(super) fn to_pause(
    held: usize,
    max: usize,
    paused: &BTreeSet<usize>,
    ahead: BTreeSet<usize>,
) -> BTreeSet<usize> {
    if held > max {
        ahead
    } else if held <= max / 2 {
        BTreeSet::new()
    } else {
        paused.intersection(&ahead).copied().collect()
    }
}

impl Core {
    /// Takes a partition on (at its stored position, if any); it holds the watermark
    /// until it is idle.
    pub(super) fn add_partition(
        &mut self,
        topic: String,
        partition: i32,
        stored: Option<Position>,
    ) {
        let source = self
            .config
            .sources
            .iter()
            .position(|s| s.topic == topic)
            .unwrap_or(0);
        self.index
            .entry(topic.clone())
            .or_default()
            .push((partition, self.partitions.len()));
        self.watermarks.add(Instant::now());
        self.partitions.push(Partition {
            topic,
            partition,
            source,
            next_offset: stored.map_or(0, |s| s.next),
            check: stored.and_then(|s| s.check),
            epoch: 0,
            held: VecDeque::new(),
            stored,
            counters: Default::default(),
        });
    }

    /// A consumer assigned every partition where it resumes: the last record consumed is
    /// read back first, and a partition whose log the broker lost starts over (said, and
    /// counted). Idleness counts from now. Also says whether any log was lost. Fails when
    /// the broker does not answer.
    pub(super) fn connect(
        &mut self,
        kafka: &crate::config::KafkaConfig,
    ) -> Result<(BaseConsumer, bool), LiveError> {
        let checks: Vec<continuity::Check> = self
            .partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition, p.check))
            .collect();
        let started = Instant::now();
        let verdicts = continuity::verify(kafka, &checks)?;
        tracing::info!(
            partitions = checks.len(),
            took = ?started.elapsed(),
            "read back the last records consumed"
        );
        let mut lost = false;
        for (part, verdict) in self.partitions.iter_mut().zip(verdicts) {
            if verdict == Continuity::Lost {
                lost = true;
                LogLost {
                    at: part.at(part.next_offset - 1),
                    went_back_from: None,
                }
                .emit(&self.metrics);
                part.start_over();
            }
        }
        let points: Vec<_> = self
            .partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition, p.resume_at()))
            .collect();
        let consumer = assigned_consumer(kafka, &points)?;
        self.schema_waits.reconnected();
        // Reading back the last records took time.
        self.watermarks.hold(Instant::now());
        Ok((consumer, lost))
    }

    /// Bounds the reorder buffer (see [`to_pause`]). Paused partitions, and those not
    /// known to be caught up (SPEC §5: the broker holds unread records, or has not said
    /// lately what it holds), count as active, not idle.
    pub(super) fn pace<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let now = Instant::now();
        self.wait_for_registry(consumer, now);
        let held = self.buffer.len();
        let max = self.config.correlator.max_held_events;
        let ahead = self.watermarks.ahead(now).into_iter().collect();
        let want = to_pause(held, max, &self.paused, ahead);
        if want != self.paused {
            // A partition waiting for the registry stays paused whatever the pace.
            let waits = &self.schema_waits;
            let list = |set: &mut dyn Iterator<Item = &usize>| {
                let mut list = TopicPartitionList::new();
                for &p in set.filter(|p| !waits.waits(**p)) {
                    let part = &self.partitions[p];
                    list.add_partition(&part.topic, part.partition);
                }
                list
            };
            let changed = consumer
                .pause(&list(&mut want.difference(&self.paused)))
                .and_then(|()| consumer.resume(&list(&mut self.paused.difference(&want))));
            if let Err(e) = changed {
                tracing::warn!(error = %e, "cannot pause or resume partitions");
                return;
            }
            if self.paused.is_empty() {
                tracing::info!(
                    held,
                    max_held_events = max,
                    "too many events held for ordering: pausing the partitions ahead of the slowest"
                );
            }
            self.paused = want;
            self.metrics.paused_partitions.set(self.paused.len() as i64);
        }
        for &p in &self.paused {
            self.watermarks.touch(p, now);
        }
        // A partition that is behind, or that the broker has not answered for lately
        // (stalled, unreachable, frozen), is not quiet: it keeps holding the watermark
        // back however long that lasts (idle, its records would come after the watermark
        // passed them, and be applied late).
        let parts = self.partitions.iter();
        let known = self.probe.caught_up(
            parts.map(|p| (p.topic.as_str(), p.partition, p.next_offset)),
            now,
        );
        for (p, caught_up) in known.into_iter().enumerate() {
            if !caught_up {
                self.watermarks.touch(p, now);
            }
        }
    }

    /// Where the consumer resumes (`topic`, `partition`), if this core covers it.
    pub(super) fn resume_at_of(&self, topic: &str, partition: i32) -> Option<Offset> {
        self.partitions
            .iter()
            .find(|p| p.topic == topic && p.partition == partition)
            .map(Partition::resume_at)
    }

    /// Hands the partitions over: commits and sends what was applied, then forgets the
    /// events held for ordering — their records are consumed again from the committed
    /// positions, by whoever owns the partitions next.
    pub(super) fn retire(&mut self) -> Result<(), LiveError> {
        self.shutdown()?;
        self.probe.forget(
            self.partitions
                .iter()
                .map(|p| (p.topic.as_str(), p.partition)),
        );
        self.buffer = ReorderBuffer::new(self.config.correlator.allowed_lateness);
        self.watermarks.rewind();
        if let Role::Shard(_, moves) = &mut self.role {
            moves.forget();
        }
        for part in &mut self.partitions {
            part.next_offset = part.position().next;
            part.held.clear();
        }
        self.paused.clear();
        self.report_gauges();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_partition_that_became_the_slowest_is_resumed() {
        let set = |v: &[usize]| v.iter().copied().collect::<BTreeSet<usize>>();
        // Over the bound: every partition ahead of the slowest.
        assert_eq!(to_pause(11, 10, &set(&[]), set(&[1, 2])), set(&[1, 2]));
        // At half of it: none.
        assert_eq!(to_pause(5, 10, &set(&[1, 2]), set(&[1, 2])), set(&[]));
        // In between the same stay paused…
        assert_eq!(
            to_pause(8, 10, &set(&[1, 2]), set(&[1, 2, 3])),
            set(&[1, 2])
        );
        // …but partition 0, the slowest, went quiet: 1 is the slowest now, and must run.
        assert_eq!(to_pause(8, 10, &set(&[1, 2]), set(&[2])), set(&[2]));
    }

    #[test]
    fn a_partition_resumes_at_its_oldest_record_still_held() {
        let mut part = Partition {
            topic: "t".into(),
            partition: 0,
            source: 0,
            next_offset: 10,
            check: None,
            epoch: 0,
            held: VecDeque::new(),
            stored: None,
            counters: Default::default(),
        };
        assert_eq!(part.position().next, 10);
        // Record 10 holds two events; 11 and 12 one each.
        for offset in [10, 10, 11, 12] {
            part.hold(offset);
        }
        part.next_offset = 13;
        part.release(0, 11);
        assert_eq!(part.position().next, 10, "11 released out of order");
        part.release(0, 10);
        assert_eq!(part.position().next, 10, "one event of 10 still held");
        part.release(1, 10);
        assert_eq!(part.position().next, 10, "another log's release counts not");
        part.release(0, 10);
        assert_eq!(part.position().next, 12, "10 and 11 both done");
        part.release(0, 12);
        assert_eq!(part.position().next, 13);
    }
}
