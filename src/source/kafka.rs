//! The Kafka input: one consumer assigned every partition of the configured topics at
//! the offsets stored in RocksDB (never broker-side commits). Records are decoded by
//! their source's [`Normalizer`](crate::adapter::Normalizer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::{KafkaConfig, SourceConfig};

/// The librdkafka configuration shared by the consumer and the producer.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in &kafka.properties {
        c.set(k, v);
    }
    c
}

/// Creates the consumer and assigns it every partition of `sources` at the stored
/// positions (the beginning for partitions never consumed), waiting for topics that do
/// not exist yet until `stop` is set. Returns the partitions.
pub fn consumer(
    kafka: &KafkaConfig,
    sources: &[SourceConfig],
    stored: &HashMap<(String, i32), i64>,
    stop: &AtomicBool,
) -> Result<(BaseConsumer, Vec<(String, i32)>), KafkaError> {
    let mut config = client_config(kafka);
    config
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create()?;
    let mut assignment = TopicPartitionList::new();
    let mut partitions = Vec::new();
    for source in sources {
        for p in partitions_of(&consumer, &source.topic, stop)? {
            let offset = match stored.get(&(source.topic.clone(), p)) {
                Some(&next) => Offset::Offset(next),
                None => Offset::Beginning,
            };
            assignment.add_partition_offset(&source.topic, p, offset)?;
            partitions.push((source.topic.clone(), p));
        }
    }
    consumer.assign(&assignment)?;
    Ok((consumer, partitions))
}

/// The partitions of `topic`, waiting (and saying so) while it does not exist.
pub(crate) fn partitions_of(
    consumer: &BaseConsumer,
    topic: &str,
    stop: &AtomicBool,
) -> Result<Vec<i32>, KafkaError> {
    let mut said = None::<Instant>;
    loop {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let ids: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if !ids.is_empty() || stop.load(Ordering::SeqCst) {
            return Ok(ids);
        }
        if said.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            tracing::warn!(topic, "source topic does not exist yet; waiting for it");
            said = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
