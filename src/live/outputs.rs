//! A core's outputs: alerts, case changes, dead letters and routed records queued in the
//! outbox with the step's state, committed in one batch, and sent once durable.

use std::time::Duration;

use rdkafka::message::{BorrowedMessage, Message};

use super::events::{DeadLetter, Event};
use super::{Core, LiveError, Role};
use crate::alert::Alert;
use crate::error::DecodeError;
use crate::notify::Notifier;
use crate::sink::case_json;
use crate::sink::kafka::OutboxProducer;
use crate::store::OutboxRecord;

/// The bit that marks the sequence numbers of a router's records, produced at once and
/// not kept in the outbox.
const ROUTED: u64 = 1 << 63;
/// How long a router's commit waits for its records to be acknowledged before it tries
/// again at the next step.
const ROUTED_ACK_WAIT: Duration = Duration::from_secs(5);

impl Core {
    /// Sends a record that cannot be read to the dead-letter topic, with its reason.
    pub(super) fn dead_letter(&mut self, p: usize, message: &BorrowedMessage<'_>, e: DecodeError) {
        let part = &self.partitions[p];
        let offset = message.offset();
        DeadLetter {
            at: part.at(offset),
            reason: &e,
        }
        .emit(&self.metrics);
        let record = OutboxRecord {
            topic: self.config.sinks.dead_letter_topic.clone(),
            key: message.key().map(<[u8]>::to_vec),
            partition: None,
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: vec![
                ("source.topic".into(), part.topic.clone().into_bytes()),
                (
                    "source.partition".into(),
                    part.partition.to_string().into_bytes(),
                ),
                ("source.offset".into(), offset.to_string().into_bytes()),
                ("reason".into(), e.reason.into_bytes()),
            ],
        };
        self.queue(record);
    }

    /// Counts, prints and queues the step's alerts; sends what a router routed, and
    /// queues the cases a correlator changed.
    pub(super) fn emit(&mut self, alerts: Vec<Alert>) -> Result<(), LiveError> {
        for alert in alerts {
            self.metrics
                .alerts
                .with_label_values(&[alert.kind.as_str()])
                .inc();
            if self.print {
                println!("{}", alert.display_line());
            }
            let record = OutboxRecord {
                topic: self.config.sinks.alerts_topic.clone(),
                key: Some(alert.root.clone().into_bytes()),
                partition: None,
                payload: self.alert_encoding.encode(&alert),
                headers: vec![
                    ("alert_id".into(), alert.alert_id.clone().into_bytes()),
                    ("kind".into(), alert.kind.as_str().as_bytes().to_vec()),
                ],
            };
            self.queue(record);
            for record in self.notifier.records(&alert) {
                self.queue(record);
            }
        }
        let routed = match &mut self.role {
            Role::Route(router) => router.take(),
            _ => Vec::new(),
        };
        for record in routed {
            self.producer.send(ROUTED | self.routed, record);
            self.routed += 1;
        }
        let Some(correlator) = self.role.correlator() else {
            return Ok(());
        };
        for (system, ms) in correlator.take_echoes() {
            self.metrics
                .echo_latency
                .with_label_values(&[system.as_str()])
                .observe(ms as f64 / 1000.0);
        }
        for case in correlator.take_changed_cases()? {
            let record = OutboxRecord {
                topic: self.config.sinks.cases_topic.clone(),
                key: Some(case.id.clone().into_bytes()),
                partition: None,
                payload: serde_json::to_vec(&case_json(&case)).unwrap_or_default(),
                headers: vec![("case_id".into(), case.id.clone().into_bytes())],
            };
            self.queue(record);
        }
        Ok(())
    }

    /// Puts an output in the outbox (committed with this step) and on the send list.
    pub(super) fn queue(&mut self, record: OutboxRecord) {
        let seq = self.role.store_mut().enqueue(record.clone());
        self.to_send.push((seq, record));
    }

    /// Sends the outputs of the batch being written once it is durable (a crash before
    /// that re-derives them from the records consumed again).
    pub(super) fn send_durable(&mut self) -> Result<(), LiveError> {
        if self.writing.is_empty() || !self.role.store_mut().write_done() {
            return Ok(());
        }
        self.role.store_mut().wait()?;
        let durable = std::mem::take(&mut self.writing);
        hand_over(&mut self.producer, &mut self.notifier, durable);
        Ok(())
    }

    /// Commits this step's state, positions and outputs in one batch, written in the
    /// background while the next step polls (`wait`: written before returning). The
    /// outputs of the previous batch, durable once the new one starts, are sent.
    ///
    /// A router's records do not go through the outbox (every event is one): they are
    /// produced at once, and its directory and positions are committed only when the
    /// broker has acknowledged every record routed before — until then, not at all (a
    /// crash routes those events again: repeats, which the shards drop, not losses).
    pub(super) fn commit(&mut self, wait: bool) -> Result<(), LiveError> {
        if matches!(self.role, Role::Route(_)) {
            self.delivered.extend(self.producer.flush(ROUTED_ACK_WAIT));
            if self.producer.in_flight() > 0 {
                return Ok(());
            }
        }
        let store = self.role.store_mut();
        for part in &mut self.partitions {
            let position = part.position();
            if part.stored != Some(position) {
                store.set_position(&part.topic, part.partition, position);
                part.stored = Some(position);
            }
        }
        for seq in self.delivered.drain(..) {
            if seq & ROUTED == 0 {
                store.delivered(seq);
            }
        }
        let timer = self.metrics.commit_seconds.start_timer();
        // Waits for the previous batch first: its outputs are durable after this.
        self.role.store_mut().commit_in_background()?;
        timer.observe_duration();
        let durable = std::mem::replace(&mut self.writing, std::mem::take(&mut self.to_send));
        hand_over(&mut self.producer, &mut self.notifier, durable);
        if wait {
            self.role.store_mut().wait()?;
            self.send_durable()?;
        }
        Ok(())
    }
}

/// Sends durable outputs on: alerts bound for a `[[notify]]` sink to its delivery
/// thread, the others to Kafka.
pub(super) fn hand_over(
    producer: &mut OutboxProducer,
    notifier: &mut Notifier,
    outputs: impl IntoIterator<Item = (u64, OutboxRecord)>,
) {
    for (seq, record) in outputs {
        if let Some(record) = notifier.take(seq, record) {
            producer.send(seq, record);
        }
    }
}
