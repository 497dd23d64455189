//! Partitions waiting for the schema registry. A record whose writer schema cannot be
//! looked up for now (the registry down, slow, or answering 5xx) is no dead letter: its
//! partition is paused at that record, which is read again after a backoff (1 s,
//! doubling to 30 s while the registry keeps failing). Meanwhile the partition holds the
//! stream watermark, as any partition that cannot be read does (SPEC §5): the events of
//! the outage are applied in their order when the registry is back, and no deadline
//! passes them by. The other partitions go on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::Core;

/// The first wait after a failed lookup.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A partition paused at the record that could not be read.
struct Wait {
    /// The record to read again.
    offset: i64,
    /// When to read it again.
    until: Instant,
    /// Whether the consumer has paused the partition.
    paused: bool,
}

/// The partitions (by index) waiting for the registry, and the backoff of each one that
/// failed lately.
#[derive(Default)]
pub struct SchemaWaits {
    waiting: BTreeMap<usize, Wait>,
    /// The last backoff of a partition, until one of its records is read again.
    backoff: BTreeMap<usize, Duration>,
}

impl SchemaWaits {
    /// Partition `p` waits, from `now`, to read the record at `offset` again; the
    /// backoff doubles with each failure in a row. Returns the wait.
    pub fn start(&mut self, p: usize, offset: i64, now: Instant) -> Duration {
        let backoff = self
            .backoff
            .get(&p)
            .map_or(FIRST_BACKOFF, |b| (*b * 2).min(MAX_BACKOFF));
        self.backoff.insert(p, backoff);
        self.waiting.insert(
            p,
            Wait {
                offset,
                until: now + backoff,
                paused: false,
            },
        );
        backoff
    }

    /// Whether partition `p` waits (its records are not taken in meanwhile).
    pub fn waits(&self, p: usize) -> bool {
        !self.waiting.is_empty() && self.waiting.contains_key(&p)
    }

    /// A record of partition `p` was read: its backoff starts over.
    pub fn read(&mut self, p: usize) {
        if !self.backoff.is_empty() {
            self.backoff.remove(&p);
        }
    }

    /// The waiting partitions.
    pub fn waiting(&self) -> impl Iterator<Item = usize> + '_ {
        self.waiting.keys().copied()
    }

    /// How many partitions wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The waiting partitions the consumer has not paused yet (marked paused now).
    pub fn pause_new(&mut self) -> Vec<usize> {
        self.waiting
            .iter_mut()
            .filter(|(_, w)| !w.paused)
            .map(|(p, w)| {
                w.paused = true;
                *p
            })
            .collect()
    }

    /// The partitions whose wait is over at `now`, with the offset to read again from;
    /// they wait no longer.
    pub fn due(&mut self, now: Instant) -> Vec<(usize, i64)> {
        let due: Vec<(usize, i64)> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.until <= now)
            .map(|(p, w)| (*p, w.offset))
            .collect();
        for (p, _) in &due {
            self.waiting.remove(p);
        }
        due
    }

    /// A new consumer: every waiting partition must be paused again.
    pub fn reconnected(&mut self) {
        for wait in self.waiting.values_mut() {
            wait.paused = false;
        }
    }
}

/// How long a seek back to the waiting record may take.
const SEEK_WAIT: Duration = Duration::from_secs(2);

impl Core {
    /// Pauses the partitions that began to wait, keeps them holding the watermark, and
    /// reads those whose wait is over again from the record that waited (a seek that
    /// fails starts a new wait).
    pub(super) fn wait_for_registry<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        now: Instant,
    ) {
        let list = |core: &Core, p: usize| {
            let part = &core.partitions[p];
            let mut list = TopicPartitionList::new();
            list.add_partition(&part.topic, part.partition);
            list
        };
        for p in self.schema_waits.pause_new() {
            if let Err(e) = consumer.pause(&list(self, p)) {
                tracing::warn!(error = %e, "cannot pause a partition waiting for the registry");
            }
        }
        for (p, offset) in self.schema_waits.due(now) {
            let part = &self.partitions[p];
            let sought = consumer.seek(
                &part.topic,
                part.partition,
                Offset::Offset(offset),
                SEEK_WAIT,
            );
            let resumed = sought.and_then(|()| match self.paused.contains(&p) {
                true => Ok(()),
                false => consumer.resume(&list(self, p)),
            });
            if let Err(e) = resumed {
                tracing::warn!(topic = %part.topic, partition = part.partition, error = %e, "cannot read the waiting record again yet");
                self.schema_waits.start(p, offset, now);
            }
        }
        for p in self.schema_waits.waiting() {
            self.watermarks.touch(p, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_while_the_registry_fails_and_starts_over_after_a_read() {
        let now = Instant::now();
        let mut waits = SchemaWaits::default();
        assert_eq!(waits.start(3, 100, now), FIRST_BACKOFF);
        assert!(waits.waits(3) && !waits.waits(2));
        assert_eq!(waits.pause_new(), vec![3]);
        assert!(waits.pause_new().is_empty(), "paused once");
        assert!(waits.due(now).is_empty(), "not yet");
        assert_eq!(waits.due(now + FIRST_BACKOFF), vec![(3, 100)]);
        assert!(!waits.waits(3));
        assert_eq!(waits.start(3, 100, now), FIRST_BACKOFF * 2);
        for _ in 0..10 {
            waits.start(3, 100, now);
        }
        assert_eq!(waits.start(3, 100, now), MAX_BACKOFF);
        waits.reconnected();
        assert_eq!(waits.pause_new(), vec![3], "a new consumer pauses it again");
        waits.due(now + MAX_BACKOFF);
        waits.read(3);
        assert_eq!(waits.start(3, 120, now), FIRST_BACKOFF);
        assert_eq!(waits.len(), 1);
    }
}
