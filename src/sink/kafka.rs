//! Produces the store's outbox to Kafka. A record is in the outbox because the write
//! batch that raised it committed; it leaves the outbox only when the broker has
//! acknowledged it. After a crash the outbox is sent again, so an output is never lost
//! and a duplicate carries the same `alert_id` header.

use std::collections::BTreeMap;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
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

/// A producer that keeps every record until the broker acknowledges it.
pub struct OutboxProducer {
    producer: BaseProducer<Reports>,
    reports: Receiver<(u64, bool)>,
    in_flight: BTreeMap<u64, OutboxRecord>,
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
        })
    }

    /// Replaces the client with a new one (after the broker lost its state, an idempotent
    /// producer's sequence numbers no longer match) and sends every record in flight again.
    pub fn reconnect(&mut self, config: ClientConfig) -> Result<(), KafkaError> {
        let fresh = OutboxProducer::new(config)?;
        self.producer = fresh.producer;
        self.reports = fresh.reports;
        for (seq, record) in &self.in_flight {
            self.transmit(*seq, record);
        }
        Ok(())
    }

    /// Sends a record (kept until acknowledged).
    pub fn send(&mut self, seq: u64, record: OutboxRecord) {
        self.transmit(seq, &record);
        self.in_flight.insert(seq, record);
    }

    fn transmit(&self, seq: u64, record: &OutboxRecord) {
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
        let mut message = message;
        loop {
            match self.producer.send(message) {
                Ok(()) => return,
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    self.producer.poll(Duration::from_millis(10));
                    message = back;
                }
                Err((e, _)) => {
                    // Stays in flight and in the outbox: retried by `poll`.
                    tracing::warn!(error = %e, seq, "cannot enqueue record; will retry");
                    return;
                }
            }
        }
    }

    /// Serves delivery reports; returns the sequences the broker acknowledged. Failed
    /// deliveries are sent again.
    pub fn poll(&mut self, wait: Duration) -> Vec<u64> {
        self.producer.poll(wait);
        let mut delivered = Vec::new();
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
                self.transmit(seq, record);
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
