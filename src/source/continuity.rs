//! Log continuity: does the broker still hold the log a partition was consumed from?
//! A broker that restarted without its storage (tansu's memory engine, say) begins every
//! partition again at offset 0, and once producers refill it the offsets consumed so far
//! name other records — resuming there would silently skip the new log's head. So each
//! partition keeps the fingerprint of the last record it consumed; at start and after an
//! outage that record is read back and compared.

use std::hash::{BuildHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use foldhash::fast::FixedState;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::kafka::client_config;
use crate::config::KafkaConfig;

/// How long a partition's check record is waited for.
const READ_BACK: Duration = Duration::from_secs(2);

/// A fingerprint of a record: its timestamp, key and value.
pub fn fingerprint(message: &BorrowedMessage<'_>) -> u64 {
    let mut h = FixedState::with_seed(0x6c6f_636b_7374_6570).build_hasher();
    message.timestamp().to_millis().hash(&mut h);
    message.key().hash(&mut h);
    message.payload().hash(&mut h);
    h.finish()
}

/// What reading back a partition's last consumed record found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// The record is there, unchanged: resume where consumption stopped.
    Same,
    /// The record is gone or another one took its offset: the log was lost and the
    /// partition must be read again from its beginning.
    Lost,
    /// Nothing was consumed yet, or nothing could be read back in time (a compacted
    /// record, a slow broker): resume where consumption stopped; an offset out of range
    /// still restarts the partition.
    Unknown,
}

/// Why the partitions cannot be checked now.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The broker does not answer.
    #[error("the broker does not answer: {0}")]
    Broker(#[from] KafkaError),
    /// A partition is not there (a broker that lost its topics, before they are made
    /// again): a consumer assigned it now would not notice it coming back.
    #[error("{0} partition {1} does not exist (yet)")]
    Missing(String, i32),
}

/// A partition and, once a record was consumed, the offset and fingerprint of the last.
pub type Check = (String, i32, Option<(i64, u64)>);

/// Reads back each partition's check record.
pub fn verify(kafka: &KafkaConfig, checks: &[Check]) -> Result<Vec<Continuity>, Unavailable> {
    let mut config = client_config(kafka);
    config
        .set("group.id", format!("{}.continuity", kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(None, READ_BACK)?;
    if let Some((topic, partition, _)) = checks.iter().find(|(topic, partition, _)| {
        !metadata.topics().iter().any(|t| {
            t.name() == topic
                && t.error().is_none()
                && t.partitions().iter().any(|p| p.id() == *partition)
        })
    }) {
        return Err(Unavailable::Missing(topic.clone(), *partition));
    }
    checks
        .iter()
        .map(|(topic, partition, last)| match last {
            Some((offset, print)) => Ok(read_back(&consumer, topic, *partition, *offset, *print)?),
            None => Ok(Continuity::Unknown),
        })
        .collect()
}

fn read_back(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
    print: u64,
) -> Result<Continuity, KafkaError> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer.assign(&list)?;
    let until = Instant::now() + READ_BACK;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match consumer.poll(left) {
            Some(Ok(m)) if m.topic() == topic && m.partition() == partition => {
                return Ok(match m.offset() == offset {
                    true if fingerprint(&m) == print => Continuity::Same,
                    true => Continuity::Lost,
                    false => Continuity::Unknown,
                });
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                return Ok(Continuity::Lost)
            }
            Some(_) | None => {}
        }
    }
    // Nothing read: the record is gone if the log now ends at or before it.
    Ok(
        match consumer.fetch_watermarks(topic, partition, READ_BACK) {
            Ok((_, high)) if high <= offset => Continuity::Lost,
            _ => Continuity::Unknown,
        },
    )
}
