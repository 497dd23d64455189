//! Produces the store's outbox to Kafka. A record is in the outbox because the write
//! batch that raised it committed; it leaves the outbox only when the broker has
//! acknowledged it. After a crash the outbox is sent again, so an output is never lost
//! and a duplicate carries the same `alert_id` header. A record librdkafka refuses to
//! enqueue is tried again every [`RETRY_UNSENT`]; one it can never take (larger than
//! `message.max.bytes`) is given up with an error in the log, so it cannot hold the
//! outbox forever.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};

use crate::store::OutboxRecord;

/// Delivery reports: outbox sequence and whether the broker took it.
struct Reports(Sender<(u64, bool)>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        if let Err((e, _)) = result {
            tracing::warn!(error = %e, seq = *seq, "delivery failed; will retry");
        }
        let _ = self.0.send((*seq, result.is_ok()));
    }
}

/// How often records librdkafka refused to enqueue are offered again.
pub const RETRY_UNSENT: Duration = Duration::from_secs(1);

/// A producer that keeps every record until the broker acknowledges it.
pub struct OutboxProducer {
    producer: BaseProducer<Reports>,
    reports: Receiver<(u64, bool)>,
    in_flight: BTreeMap<u64, OutboxRecord>,
    /// In flight but not enqueued (librdkafka refused them), and when last tried.
    unsent: Vec<u64>,
    retried: Option<Instant>,
}

impl OutboxProducer {
    /// Creates the producer from the common client configuration.
    pub fn new(mut config: ClientConfig) -> Result<OutboxProducer, KafkaError> {
        let (tx, rx) = unbounded();
        config
            .set("enable.idempotence", "true")
            .set("linger.ms", "5");
        Ok(OutboxProducer {
            producer: config.create_with_context(Reports(tx))?,
            reports: rx,
            in_flight: BTreeMap::new(),
            unsent: Vec::new(),
            retried: None,
        })
    }

    /// Replaces the client with a new one (after the broker lost its state, an idempotent
    /// producer's sequence numbers no longer match) and sends every record in flight again.
    pub fn reconnect(&mut self, config: ClientConfig) -> Result<(), KafkaError> {
        let fresh = OutboxProducer::new(config)?;
        self.producer = fresh.producer;
        self.reports = fresh.reports;
        self.unsent = self.in_flight.keys().copied().collect();
        self.retried = None;
        Ok(())
    }

    /// Sends a record (kept until acknowledged).
    pub fn send(&mut self, seq: u64, record: OutboxRecord) {
        if self.transmit(seq, &record).is_err() {
            self.unsent.push(seq);
        }
        self.in_flight.insert(seq, record);
    }

    /// Enqueues a record, waiting while librdkafka's queue is full; any other refusal is
    /// the caller's to retry.
    fn transmit(&self, seq: u64, record: &OutboxRecord) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut message = BaseRecord::with_opaque_to(&record.topic, Box::new(seq))
            .payload(&record.payload)
            .headers(headers);
        if let Some(key) = &record.key {
            message = message.key(key);
        }
        if let Some(partition) = record.partition {
            message = message.partition(partition);
        }
        loop {
            match self.producer.send(message) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.producer.poll(Duration::from_millis(10));
                    message = back;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Offers the refused records again, at most every [`RETRY_UNSENT`]; returns those
    /// given up for good (the broker can never take them), to leave the outbox.
    fn retry_unsent(&mut self) -> Vec<u64> {
        if self.unsent.is_empty() || self.retried.is_some_and(|t| t.elapsed() < RETRY_UNSENT) {
            return Vec::new();
        }
        self.retried = Some(Instant::now());
        let mut given_up = Vec::new();
        for seq in std::mem::take(&mut self.unsent) {
            let Some(record) = self.in_flight.get(&seq) else {
                continue;
            };
            match self.transmit(seq, record) {
                Ok(()) => {}
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {
                    tracing::error!(
                        seq,
                        topic = %record.topic,
                        bytes = record.payload.len(),
                        "record larger than the producer's message.max.bytes: given up (raise message.max.bytes in [kafka.properties])"
                    );
                    self.in_flight.remove(&seq);
                    given_up.push(seq);
                }
                Err(e) => {
                    tracing::warn!(error = %e, seq, "cannot enqueue record; will retry");
                    self.unsent.push(seq);
                }
            }
        }
        given_up
    }

    /// Serves delivery reports; returns the sequences done with: acknowledged by the
    /// broker, or given up. Failed deliveries and refused records are sent again.
    pub fn poll(&mut self, wait: Duration) -> Vec<u64> {
        self.producer.poll(wait);
        let mut delivered = self.retry_unsent();
        let mut failed = Vec::new();
        while let Ok((seq, ok)) = self.reports.try_recv() {
            if ok {
                self.in_flight.remove(&seq);
                delivered.push(seq);
            } else {
                failed.push(seq);
            }
        }
        for seq in failed {
            if let Some(record) = self.in_flight.get(&seq) {
                if self.transmit(seq, record).is_err() {
                    self.unsent.push(seq);
                }
            }
        }
        delivered
    }

    /// Records sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits up to `timeout` for every in-flight record; returns those acknowledged.
    pub fn flush(&mut self, timeout: Duration) -> Vec<u64> {
        let _ = self.producer.flush(timeout);
        self.poll(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_librdkafka_refuses_is_retried_and_one_it_never_takes_is_given_up() {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.max.bytes", "2000");
        let mut producer = OutboxProducer::new(config).unwrap();
        let record = |bytes: usize| OutboxRecord {
            topic: "lockstep.alerts".into(),
            key: None,
            partition: None,
            payload: vec![b'x'; bytes],
            headers: Vec::new(),
        };
        producer.send(1, record(10_000));
        producer.send(2, record(10));
        assert_eq!(producer.in_flight(), 2);
        assert_eq!(
            producer.unsent,
            vec![1],
            "refused at enqueue, kept to retry"
        );
        assert_eq!(
            producer.poll(Duration::ZERO),
            vec![1],
            "given up: it can never fit"
        );
        assert_eq!(producer.in_flight(), 1, "the other waits for the broker");
        assert!(producer.unsent.is_empty());
    }
}
