//! The Kafka input: one consumer assigned every partition of the configured topics at
//! the offsets stored in RocksDB (never broker-side commits). Records are decoded by
//! their source's [`Normalizer`](crate::adapter::Normalizer); whether the broker still
//! holds the log consumed so far is [`continuity`](super::continuity)'s question.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
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

/// Every partition of the `sources` topics, waiting for topics that do not exist yet
/// until `stop` is set.
pub fn source_partitions(
    kafka: &KafkaConfig,
    sources: &[SourceConfig],
    stop: &AtomicBool,
) -> Result<Vec<(String, i32)>, KafkaError> {
    let probe: BaseConsumer = client_config(kafka).create()?;
    let mut partitions = Vec::new();
    for source in sources {
        for p in partitions_of(&probe, &source.topic, stop)? {
            partitions.push((source.topic.clone(), p));
        }
    }
    Ok(partitions)
}

/// The partitions of `topic`, waiting for it to exist until `stop` is set.
pub fn topic_partitions_waiting(
    kafka: &KafkaConfig,
    topic: &str,
    stop: &AtomicBool,
) -> Result<Vec<i32>, KafkaError> {
    let probe: BaseConsumer = client_config(kafka).create()?;
    partitions_of(&probe, topic, stop)
}

/// A consumer of the live pipeline, assigned `assignment` (never broker-side commits;
/// a partition whose offset is out of range starts at its beginning).
pub fn assigned_consumer(
    kafka: &KafkaConfig,
    assignment: &[(String, i32, Offset)],
) -> Result<BaseConsumer, KafkaError> {
    let consumer: BaseConsumer = consumer_config(kafka).create()?;
    let mut list = TopicPartitionList::new();
    for (topic, partition, offset) in assignment {
        list.add_partition_offset(topic, *partition, *offset)?;
    }
    consumer.assign(&list)?;
    Ok(consumer)
}

/// A member of the consumer group `kafka.group_id`, subscribed to `topics`, whose
/// `context` handles the assignments (the range assignor, which gives a member the same
/// partition numbers of every topic of one partition count; never broker-side commits).
pub fn group_consumer<C: ConsumerContext>(
    kafka: &KafkaConfig,
    topics: &[&str],
    context: C,
) -> Result<BaseConsumer<C>, KafkaError> {
    let mut config = consumer_config(kafka);
    config.set("partition.assignment.strategy", "range");
    let consumer: BaseConsumer<C> = config.create_with_context(context)?;
    consumer.subscribe(topics)?;
    Ok(consumer)
}

/// The consumer configuration of the live pipeline: offsets kept in the state store, a
/// partition without one read from its beginning.
fn consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = client_config(kafka);
    config
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "50")
        // Fewer, fuller fetches under load (less work for broker and client alike);
        // a quiet feed still answers within fetch.wait.max.ms.
        .set("fetch.min.bytes", "100000");
    for (k, v) in &kafka.properties {
        config.set(k, v);
    }
    config
}

/// The high watermark of (`topic`, `partition`) as the last fetch response gave it —
/// librdkafka's cache, no request (the broker's ListOffsets answer is wrong on some
/// brokers, tansu's memory build among them); None before any fetch.
pub fn fetched_high_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle is valid while `consumer` lives; librdkafka reads the
    // NUL-terminated `topic`, alive for the call, and writes the two offsets.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// The partitions of `topic` the broker knows now (none if it does not exist).
pub fn topic_partitions(
    client: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

/// The partitions of `topic`, waiting (and saying so) while it does not exist.
pub(crate) fn partitions_of(
    consumer: &BaseConsumer,
    topic: &str,
    stop: &AtomicBool,
) -> Result<Vec<i32>, KafkaError> {
    let mut said = None::<Instant>;
    loop {
        let ids = topic_partitions(consumer, topic, Duration::from_secs(10))?;
        if !ids.is_empty() || stop.load(Ordering::SeqCst) {
            return Ok(ids);
        }
        if said.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            tracing::warn!(topic, "topic does not exist yet; waiting for it (create it, with the partitions it needs)");
            said = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::BaseProducer;

    fn kafka(properties: &[(&str, &str)]) -> KafkaConfig {
        let text = format!(
            "[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"cloudtrail\"\n[kafka]\nbrokers = \"127.0.0.1:1\"\n[kafka.properties]\n{}",
            properties
                .iter()
                .map(|(k, v)| format!("\"{k}\" = \"{v}\"\n"))
                .collect::<String>()
        );
        crate::config::Config::parse(&text).unwrap().kafka.unwrap()
    }

    #[test]
    fn the_kafka_client_is_built_with_zstd_and_oauthbearer_oidc() {
        // librdkafka refuses these properties at creation when built without them.
        let zstd: Result<BaseProducer, _> =
            client_config(&kafka(&[("compression.type", "zstd")])).create();
        assert!(zstd.is_ok(), "{:?}", zstd.err());
        let oidc = kafka(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "OAUTHBEARER"),
            ("sasl.oauthbearer.method", "oidc"),
            ("sasl.oauthbearer.client.id", "lockstep"),
            ("sasl.oauthbearer.client.secret", "s3cret"),
            (
                "sasl.oauthbearer.token.endpoint.url",
                "https://idp.example/oauth2/token",
            ),
        ]);
        let consumer: Result<BaseConsumer, _> = client_config(&oidc).create();
        assert!(consumer.is_ok(), "{:?}", consumer.err());
    }
}
