//! Consumer lag for `/metrics`: a thread of its own asks the broker for each assigned
//! partition's high watermark every [`PERIOD`] and sets
//! `lockstep_consumer_lag_records{topic,partition}` to high watermark − next offset.
//! The pipeline only stores its next offsets in atomics; a slow broker delays the
//! metric, never the pipeline.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::KafkaConfig;
use crate::source::kafka::client_config;
use crate::telemetry::Metrics;

/// How often the watermarks are fetched.
pub const PERIOD: Duration = Duration::from_secs(15);

/// Starts the probe for `partitions`; returns the next offsets the pipeline keeps current.
pub fn spawn(
    kafka: &KafkaConfig,
    partitions: Vec<(String, i32)>,
    metrics: Arc<Metrics>,
    shutdown: Arc<AtomicBool>,
) -> Arc<[AtomicI64]> {
    let next: Arc<[AtomicI64]> = partitions.iter().map(|_| AtomicI64::new(-1)).collect();
    let probe: Option<BaseConsumer> = client_config(kafka).create().ok();
    let offsets = Arc::clone(&next);
    let _ = std::thread::Builder::new()
        .name("lag".into())
        .spawn(move || {
            let Some(probe) = probe else { return };
            let mut last = Instant::now() - PERIOD;
            while !shutdown.load(Ordering::Relaxed) {
                if last.elapsed() >= PERIOD {
                    last = Instant::now();
                    for ((topic, partition), at) in partitions.iter().zip(offsets.iter()) {
                        let consumed = at.load(Ordering::Relaxed);
                        if let Ok((_, high)) =
                            probe.fetch_watermarks(topic, *partition, Duration::from_secs(5))
                        {
                            if consumed >= 0 {
                                metrics
                                    .consumer_lag
                                    .with_label_values(&[topic, &partition.to_string()])
                                    .set((high - consumed).max(0));
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
    next
}
