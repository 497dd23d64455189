//! What the pipeline learns from the broker off its own thread: a thread asks, every
//! [`PERIOD`], for each partition's high watermark — setting
//! `lockstep_consumer_lag_records{topic,partition}` to high watermark − next offset — and
//! for the partitions of the source topics, reporting any added since. A slow broker
//! delays these, never the pipeline, which hands over its next offsets once a step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::KafkaConfig;
use crate::source::kafka::{client_config, topic_partitions};
use crate::telemetry::Metrics;

/// How often the broker is asked.
pub const PERIOD: Duration = Duration::from_secs(15);
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Shared {
    /// Every partition known, with the next offset to consume (-1: none yet).
    partitions: Vec<((String, i32), i64)>,
    /// Partitions found since the pipeline last asked.
    added: Vec<(String, i32)>,
}

/// The pipeline's side of the probe thread.
pub struct Probe {
    shared: Arc<Mutex<Shared>>,
}

impl Probe {
    /// Starts the thread for the `topics`, whose partitions now are `partitions`.
    pub fn spawn(
        kafka: &KafkaConfig,
        topics: Vec<String>,
        partitions: Vec<(String, i32)>,
        metrics: Arc<Metrics>,
        shutdown: Arc<AtomicBool>,
    ) -> Probe {
        let shared = Arc::new(Mutex::new(Shared {
            partitions: partitions.into_iter().map(|p| (p, -1)).collect(),
            added: Vec::new(),
        }));
        let probe: Option<BaseConsumer> = client_config(kafka).create().ok();
        let state = Arc::clone(&shared);
        let _ = std::thread::Builder::new()
            .name("probe".into())
            .spawn(move || {
                let Some(probe) = probe else { return };
                // None: measure at once (`now - PERIOD` would panic on a machine up for
                // less than PERIOD, where Instant cannot go back that far).
                let mut last: Option<Instant> = None;
                while !shutdown.load(Ordering::Relaxed) {
                    if last.is_none_or(|t| t.elapsed() >= PERIOD) {
                        last = Some(Instant::now());
                        measure_lag(&probe, &state, &metrics);
                        discover(&probe, &topics, &state);
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            });
        Probe { shared }
    }

    /// The next offsets of the partitions, in the order they are known.
    pub fn report(&self, next: impl Iterator<Item = i64>) {
        for (slot, n) in lock(&self.shared).partitions.iter_mut().zip(next) {
            slot.1 = n;
        }
    }

    /// Partitions added to the source topics since the last call.
    pub fn take_added(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut lock(&self.shared).added)
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn measure_lag(probe: &BaseConsumer, state: &Mutex<Shared>, metrics: &Metrics) {
    let partitions = lock(state).partitions.clone();
    for ((topic, partition), consumed) in partitions {
        if consumed < 0 {
            continue;
        }
        if let Ok((_, high)) = probe.fetch_watermarks(&topic, partition, TIMEOUT) {
            metrics
                .consumer_lag
                .with_label_values(&[&topic, &partition.to_string()])
                .set((high - consumed).max(0));
        }
    }
}

fn discover(probe: &BaseConsumer, topics: &[String], state: &Mutex<Shared>) {
    for topic in topics {
        let Ok(ids) = topic_partitions(probe, topic, TIMEOUT) else {
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
fn note_added(shared: &mut Shared, topic: &str, ids: &[i32]) -> Vec<(String, i32)> {
    let mut added = Vec::new();
    for &id in ids {
        let key = (topic.to_owned(), id);
        if !shared.partitions.iter().any(|(p, _)| *p == key) {
            shared.partitions.push((key.clone(), -1));
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
            partitions: vec![(("t".into(), 0), 5), (("t".into(), 1), 7)],
            added: Vec::new(),
        };
        assert_eq!(
            note_added(&mut shared, "t", &[0, 1, 2]),
            [("t".to_owned(), 2)]
        );
        assert!(note_added(&mut shared, "t", &[0, 1, 2]).is_empty());
        assert_eq!(note_added(&mut shared, "u", &[0]), [("u".to_owned(), 0)]);
        assert_eq!(shared.partitions.len(), 4);
        assert_eq!(
            std::mem::take(&mut shared.added),
            [("t".to_owned(), 2), ("u".to_owned(), 0)]
        );
    }
}
