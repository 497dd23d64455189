//! What the pipeline learns from the broker off its own thread. A thread asks, every
//! [`Probe::period`] (a quarter of `idle_timeout`, within 200 ms–5 s), for the high
//! watermark of each partition the pipeline reads — setting
//! `lockstep_consumer_lag_records{topic,partition}` to high watermark − next offset — and,
//! every [`DISCOVER_EVERY`], for the partitions of the source topics, reporting any added
//! since. A slow broker delays these, never the pipeline, which hands over its next
//! offsets once a step.
//!
//! The answers are what SPEC §5 calls a lag *known* to be zero: a partition is caught up
//! at `now` only when an answer asked for within [`Probe::fresh`] of `now` gives a high
//! watermark the pipeline has read up to. A broker or coordinator that is stalled,
//! unreachable or frozen gives no answers, so its partitions are not known to be caught
//! up, and they hold the stream watermark instead of going idle.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::KafkaConfig;
use crate::source::kafka::{client_config, topic_partitions};
use crate::telemetry::Metrics;
use crate::time::Span;

/// How often the source topics are asked for partitions added since.
pub const DISCOVER_EVERY: Duration = Duration::from_secs(15);
const TIMEOUT: Duration = Duration::from_secs(5);

type Key = (String, i32);

/// What is known of one partition's end.
struct End {
    /// The next offset the pipeline will read (-1: none reported yet).
    next: i64,
    /// The last high watermark the broker gave, and when it was asked for.
    high: Option<(i64, Instant)>,
}

#[derive(Default)]
struct Shared {
    /// The partitions read now.
    watched: BTreeMap<Key, End>,
    /// Every partition of the source topics found so far (for discovery).
    known: BTreeSet<Key>,
    /// Partitions found since the pipeline last asked.
    added: Vec<Key>,
}

/// The pipeline's side of the probe thread (clones share it: a group member's shards).
#[derive(Clone)]
pub struct Probe {
    shared: Arc<Mutex<Shared>>,
    fresh: Duration,
}

impl Probe {
    /// How often the thread asks for the partitions' ends, for an `idle_timeout`.
    pub fn period(idle_timeout: Span) -> Duration {
        (idle_timeout.to_std() / 4).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// How old an answer may be and still say a partition is caught up: three periods,
    /// so one slow answer does not make a quiet partition busy, and still less than
    /// `idle_timeout`.
    pub fn fresh(idle_timeout: Span) -> Duration {
        Probe::period(idle_timeout) * 3
    }

    /// Starts the thread. It watches `partitions`, and finds the partitions added to
    /// `topics` (none to find: a group member's probe, whose partitions come and go with
    /// the assignment).
    pub fn spawn(
        kafka: &KafkaConfig,
        topics: Vec<String>,
        partitions: Vec<Key>,
        idle_timeout: Span,
        metrics: Arc<Metrics>,
        shutdown: Arc<AtomicBool>,
    ) -> Probe {
        let shared = Arc::new(Mutex::new(Shared {
            known: partitions.iter().cloned().collect(),
            watched: partitions
                .into_iter()
                .map(|key| {
                    (
                        key,
                        End {
                            next: -1,
                            high: None,
                        },
                    )
                })
                .collect(),
            added: Vec::new(),
        }));
        let client: Option<BaseConsumer> = client_config(kafka).create().ok();
        let state = Arc::clone(&shared);
        let period = Probe::period(idle_timeout);
        let _ = std::thread::Builder::new()
            .name("probe".into())
            .spawn(move || {
                let Some(client) = client else { return };
                // None: at once (`now - period` would panic on a machine up for less
                // than that, where Instant cannot go back so far).
                let (mut asked, mut discovered): (Option<Instant>, Option<Instant>) = (None, None);
                while !shutdown.load(Ordering::Relaxed) {
                    if asked.is_none_or(|t| t.elapsed() >= period) {
                        asked = Some(Instant::now());
                        measure_ends(&client, &state, &metrics);
                    }
                    if !topics.is_empty()
                        && discovered.is_none_or(|t| t.elapsed() >= DISCOVER_EVERY)
                    {
                        discovered = Some(Instant::now());
                        discover(&client, &topics, &state);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        Probe {
            shared,
            fresh: Probe::fresh(idle_timeout),
        }
    }

    /// The next offsets of the partitions `parts` reads (watched from now on).
    pub fn report<'a>(&self, parts: impl IntoIterator<Item = (&'a str, i32, i64)>) {
        let mut shared = lock(&self.shared);
        for (topic, partition, next) in parts {
            shared
                .watched
                .entry((topic.to_owned(), partition))
                .or_insert(End { next, high: None })
                .next = next;
        }
    }

    /// Stops watching `parts` (they moved to another instance).
    pub fn forget<'a>(&self, parts: impl IntoIterator<Item = (&'a str, i32)>) {
        let mut shared = lock(&self.shared);
        for (topic, partition) in parts {
            shared.watched.remove(&(topic.to_owned(), partition));
        }
    }

    /// For each of `parts` (topic, partition, next offset), whether it is known to be
    /// caught up at `now`: a fresh answer's high watermark is at most its next offset.
    pub fn caught_up<'a>(
        &self,
        parts: impl IntoIterator<Item = (&'a str, i32, i64)>,
        now: Instant,
    ) -> Vec<bool> {
        let shared = lock(&self.shared);
        parts
            .into_iter()
            .map(|(topic, partition, next)| {
                let end = shared.watched.get(&(topic.to_owned(), partition));
                end.and_then(|e| e.high).is_some_and(|(high, asked)| {
                    high <= next && now.saturating_duration_since(asked) <= self.fresh
                })
            })
            .collect()
    }

    /// The records of `parts` (topic, partition, next offset) left to read, as answers
    /// asked at or after `since` give their ends; None until each has such an answer.
    pub fn left_since<'a>(
        &self,
        parts: impl IntoIterator<Item = (&'a str, i32, i64)>,
        since: Instant,
    ) -> Option<i64> {
        let shared = lock(&self.shared);
        parts
            .into_iter()
            .try_fold(0, |left, (topic, partition, next)| {
                let end = shared.watched.get(&(topic.to_owned(), partition))?;
                let (high, _) = end.high.filter(|&(_, asked)| asked >= since)?;
                Some(left + (high - next).max(0))
            })
    }

    /// Partitions added to the source topics since the last call.
    pub fn take_added(&self) -> Vec<Key> {
        std::mem::take(&mut lock(&self.shared).added)
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asks the high watermark of every watched partition; an answer is kept with the time
/// it was asked for (the broker held no more than that then).
fn measure_ends(client: &BaseConsumer, state: &Mutex<Shared>, metrics: &Metrics) {
    let keys: Vec<Key> = lock(state).watched.keys().cloned().collect();
    for key in keys {
        let asked = Instant::now();
        let Ok((_, high)) = client.fetch_watermarks(&key.0, key.1, TIMEOUT) else {
            continue;
        };
        let mut shared = lock(state);
        // Forgotten meanwhile (moved away): its gauge stays removed.
        let Some(end) = shared.watched.get_mut(&key) else {
            continue;
        };
        end.high = Some((high, asked));
        if end.next >= 0 {
            metrics
                .consumer_lag
                .with_label_values(&[&key.0, &key.1.to_string()])
                .set((high - end.next).max(0));
        }
    }
}

fn discover(client: &BaseConsumer, topics: &[String], state: &Mutex<Shared>) {
    for topic in topics {
        let Ok(ids) = topic_partitions(client, topic, TIMEOUT) else {
            continue;
        };
        for (topic, partition) in note_added(&mut lock(state), topic, &ids) {
            tracing::info!(
                topic,
                partition,
                "partition added to a source topic; consuming it from its beginning"
            );
        }
    }
}

/// Takes the partitions `ids` of `topic` that are not known yet on, as added; returns them.
fn note_added(shared: &mut Shared, topic: &str, ids: &[i32]) -> Vec<Key> {
    let mut added = Vec::new();
    for &id in ids {
        let key = (topic.to_owned(), id);
        if shared.known.insert(key.clone()) {
            shared.added.push(key.clone());
            added.push(key);
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_not_known_yet_are_added_once() {
        let mut shared = Shared {
            known: [("t".to_owned(), 0), ("t".to_owned(), 1)].into(),
            ..Shared::default()
        };
        assert_eq!(
            note_added(&mut shared, "t", &[0, 1, 2]),
            [("t".to_owned(), 2)]
        );
        assert!(note_added(&mut shared, "t", &[0, 1, 2]).is_empty());
        assert_eq!(note_added(&mut shared, "u", &[0]), [("u".to_owned(), 0)]);
        assert_eq!(shared.known.len(), 4);
        assert_eq!(
            std::mem::take(&mut shared.added),
            [("t".to_owned(), 2), ("u".to_owned(), 0)]
        );
    }

    #[test]
    fn caught_up_only_with_a_fresh_answer_read_up_to() {
        let probe = Probe {
            shared: Arc::default(),
            fresh: Duration::from_secs(3),
        };
        let start = Instant::now();
        probe.report([("t", 0, 10), ("t", 1, 10)]);
        // No answer yet: not known, so not caught up.
        assert_eq!(probe.caught_up([("t", 0, 10)], start), [false]);
        {
            let mut shared = lock(&probe.shared);
            let ends = &mut shared.watched;
            ends.get_mut(&("t".to_owned(), 0)).unwrap().high = Some((10, start));
            ends.get_mut(&("t".to_owned(), 1)).unwrap().high = Some((12, start));
        }
        let soon = start + Duration::from_secs(1);
        // Read up to the end: caught up; behind it: not.
        assert_eq!(
            probe.caught_up([("t", 0, 10), ("t", 1, 10), ("t", 1, 12)], soon),
            [true, false, true]
        );
        // An answer older than `fresh` (a stalled broker answers nothing): unknown.
        let late = start + Duration::from_secs(4);
        assert_eq!(probe.caught_up([("t", 0, 10)], late), [false]);
        // What is left to read, from answers asked since a moment only.
        assert_eq!(
            probe.left_since([("t", 0, 4), ("t", 1, 10)], start),
            Some(8)
        );
        assert_eq!(probe.left_since([("t", 0, 4)], soon), None, "asked before");
        // A partition that moved away is not watched, and not caught up.
        probe.forget([("t", 0)]);
        assert_eq!(probe.caught_up([("t", 0, 10)], soon), [false]);
        assert_eq!(probe.left_since([("t", 0, 10)], start), None);
    }
}
