//! Compliance replays history where it lives: the configured source topics read for a
//! time range (`lockstep replay --brokers … --since T --until T`). The consumer has an
//! identity of its own (`<group_id>-replay-<pid>-<nanos>`), is assigned partitions
//! rather than joining a group, never commits an offset, and produces nothing — the live
//! group's offsets and the live alerts topic are never touched.
//!
//! Each partition is sought to the offset of its first record stamped at or after
//! `since − allowed_lateness` (ListOffsets by time; the beginning when the broker cannot
//! tell) and read until its end or a record stamped at or after `until +
//! allowed_lateness`. Events whose time lies in `[since, until)` are kept and handed
//! over in (time, event_id) order, as a file of the same events would be replayed.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::file::{DeadLetter, Record};
use super::kafka::client_config;
use crate::adapter::Normalized;
use crate::config::Config;
use crate::time::Micros;

/// How long a partition may stay silent before it counts as read to its end.
const QUIET: Duration = Duration::from_secs(10);
/// How long after an end-of-partition report, with no record since, a partition that has
/// delivered records is done. (The report names the partition number only, not the
/// topic; a partition that delivers nothing waits [`QUIET`].)
const SETTLE: Duration = Duration::from_millis(1000);

/// A time range of the configured topics.
#[derive(Debug, Clone)]
pub struct KafkaRange {
    /// The configuration: `[kafka]` (brokers, properties), `[[sources]]`, `[mapping]`.
    pub config: Config,
    /// Events at or after this instant…
    pub since: Micros,
    /// …and before this one.
    pub until: Micros,
}

/// Reads the range; returns its records, events in (time, event_id) order after the
/// dead letters and skips.
pub fn read(range: &KafkaRange) -> Result<Vec<Record>, KafkaError> {
    let config = &range.config;
    let Some(kafka) = &config.kafka else {
        return Err(KafkaError::ClientCreation(
            "a replay from Kafka needs [kafka] brokers (or --brokers)".into(),
        ));
    };
    let identity = format!(
        "{}-replay-{}-{}",
        kafka.group_id,
        std::process::id(),
        Micros::now().0
    );
    let mut client = client_config(kafka);
    client
        .set("group.id", &identity)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer = client.create()?;
    let slack = config.correlator.allowed_lateness;
    let from = range.since.minus(slack);
    let to = range.until.plus(slack);

    let mut wanted = TopicPartitionList::new();
    let mut parts: Vec<(String, i32, usize)> = Vec::new();
    let stop = AtomicBool::new(true);
    for (s, source) in config.sources.iter().enumerate() {
        for p in super::kafka::partitions_of(&consumer, &source.topic, &stop)? {
            wanted.add_partition_offset(
                &source.topic,
                p,
                Offset::Offset(from.0.div_euclid(1000)),
            )?;
            parts.push((source.topic.clone(), p, s));
        }
    }
    let starts = consumer
        .offsets_for_times(wanted, Duration::from_secs(10))
        .ok();
    let mut assignment = TopicPartitionList::new();
    for (topic, p, _) in &parts {
        let offset = starts
            .as_ref()
            .and_then(|t| t.find_partition(topic, *p))
            .map(|e| e.offset())
            .filter(|o| matches!(o, Offset::Offset(_)))
            .unwrap_or(Offset::Beginning);
        assignment.add_partition_offset(topic, *p, offset)?;
    }
    consumer.assign(&assignment)?;

    let mapping = Arc::new(config.mapping.clone());
    let normalizers: Vec<_> = config
        .sources
        .iter()
        .map(|s| s.normalizer(&mapping, &config.registry))
        .collect();
    let mut done = vec![false; parts.len()];
    let mut heard = vec![Instant::now(); parts.len()];
    let mut at_end = vec![false; parts.len()];
    let mut got_any = vec![false; parts.len()];
    let mut events = Vec::new();
    let mut other = Vec::new();
    while done.iter().any(|d| !d) {
        for (i, part) in parts.iter().enumerate() {
            if done[i] {
                continue;
            }
            if at_end[i] && got_any[i] && heard[i].elapsed() > SETTLE {
                done[i] = true;
            } else if heard[i].elapsed() > QUIET {
                tracing::warn!(topic = %part.0, partition = part.1, "no record for {QUIET:?}: taken as read to its end");
                done[i] = true;
            }
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = match message {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(p)) => {
                for (i, part) in parts.iter().enumerate() {
                    at_end[i] |= part.1 == p;
                }
                continue;
            }
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                continue
            }
            Err(e) => return Err(e),
        };
        let Some(i) = parts
            .iter()
            .position(|(t, p, _)| t == message.topic() && *p == message.partition())
        else {
            continue;
        };
        heard[i] = Instant::now();
        at_end[i] = false;
        got_any[i] = true;
        if done[i] {
            continue;
        }
        let stamped = message.timestamp().to_millis().map(|ms| Micros(ms * 1000));
        if stamped.is_some_and(|t| t >= to) {
            done[i] = true;
            continue;
        }
        let dead = |reason: String| {
            Record::Dead(DeadLetter {
                input: PathBuf::from(format!("kafka:{}/{}", message.topic(), message.partition())),
                line: message.offset() as u64,
                reason,
                raw: message
                    .payload()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            })
        };
        let Some(payload) = message.payload() else {
            other.push(dead("record has no value".into()));
            continue;
        };
        match normalizers[parts[i].2].normalize(payload) {
            Ok(Normalized::Events(evs)) => events.extend(
                evs.into_iter()
                    .filter(|e| e.time >= range.since && e.time < range.until),
            ),
            Ok(Normalized::Skipped(what)) => other.push(Record::Skipped(what)),
            Err(e) => other.push(dead(e.reason)),
        }
    }
    events.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    other.extend(events.into_iter().map(Record::Event));
    Ok(other)
}
