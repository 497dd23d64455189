//! The live pipeline (`lockstep run`): consume the source topics, order events by the
//! stream watermark, drive the same correlator as replay, and produce alerts, the case
//! changelog and dead letters through the outbox.
//!
//! Each step — poll up to [`MAX_BATCH`] records, release the events older than the
//! watermark, evaluate the deadlines before it — ends in one RocksDB write batch holding
//! the new state, timers, alerts, outbox records and consumed positions. A partition's
//! stored position is the offset of its oldest event still held in the reorder buffer,
//! so a crash loses nothing: on restart those records are consumed again, and any event
//! already applied is dropped as a redelivery.

pub mod feed;
pub mod lag;
pub mod watermark;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};

use crate::adapter::{Normalized, Normalizer};
use crate::alert::{alert_id, Alert, AlertKind};
use crate::config::Config;
use crate::correlate::reorder::ReorderBuffer;
use crate::correlate::{Correlator, Rules};
use crate::error::{DecodeError, StoreError};
use crate::sink::kafka::OutboxProducer;
use crate::sink::{case_json, encode_alert};
use crate::source::kafka::{client_config, consumer};
use crate::store::{OutboxRecord, Store};
use crate::telemetry::Metrics;
use crate::time::Micros;
use watermark::Watermarks;

/// Records polled in one step at most.
pub const MAX_BATCH: usize = 20_000;
const STEP_TIME: Duration = Duration::from_millis(100);
const POLL_WAIT: Duration = Duration::from_millis(50);
/// How long the consumer may report nothing but errors before it is rebuilt (a broker
/// that came back without its log leaves librdkafka's client on stale metadata).
const REBUILD_AFTER: Duration = Duration::from_secs(5);
/// Outputs in flight to the broker before consumption pauses (backpressure).
const MAX_IN_FLIGHT: usize = 200_000;

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Kafka refused the configuration or the assignment.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration lacks what the live pipeline needs.
    #[error("{0}")]
    Config(String),
}

struct Partition {
    topic: String,
    partition: i32,
    source: usize,
    next_offset: i64,
    held: BTreeMap<i64, u32>,
    stored: Option<i64>,
}

impl Partition {
    fn position(&self) -> i64 {
        self.held.keys().next().copied().unwrap_or(self.next_offset)
    }

    fn release(&mut self, offset: i64) {
        if let Some(n) = self.held.get_mut(&offset) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&offset);
            }
        }
    }
}

struct Silence {
    last_record: Instant,
    since: Micros,
    alerted: bool,
}

/// Switches shared with the API and the signal handlers.
#[derive(Clone, Default)]
pub struct Control {
    /// Set to stop: the pipeline commits, flushes and returns.
    pub shutdown: Arc<AtomicBool>,
    /// Set once the consumer is assigned and the outbox resent.
    pub ready: Arc<AtomicBool>,
}

/// The running pipeline: the consumer, and everything a record goes through after it.
pub struct Pipeline {
    consumer: BaseConsumer,
    core: Core,
    /// Since when every poll has returned an error, if it has.
    failing_since: Option<Instant>,
    shutdown: Arc<AtomicBool>,
}

/// What a consumed record goes through: ordering, correlation, outputs, commits.
struct Core {
    config: Config,
    consumed: Arc<[std::sync::atomic::AtomicI64]>,
    normalizers: Vec<Normalizer>,
    correlator: Correlator,
    producer: OutboxProducer,
    partitions: Vec<Partition>,
    index: HashMap<String, Vec<(i32, usize)>>,
    watermarks: Watermarks,
    buffer: ReorderBuffer<(usize, i64)>,
    silence: Vec<Silence>,
    metrics: Arc<Metrics>,
    to_send: Vec<(u64, OutboxRecord)>,
    delivered: Vec<u64>,
    print: bool,
    redeliveries_seen: u64,
}

impl Pipeline {
    /// Connects to Kafka and resumes from `store`.
    pub fn start(
        config: Config,
        store: Store,
        metrics: Arc<Metrics>,
        print: bool,
        control: &Control,
    ) -> Result<Pipeline, LiveError> {
        let kafka = config.kafka.clone().ok_or_else(|| {
            LiveError::Config(
                "lockstep run needs [kafka] brokers = \"host:9092\" in the config".into(),
            )
        })?;
        if config.sources.is_empty() {
            return Err(LiveError::Config(
                "lockstep run needs at least one [[sources]] entry (system, topic, format)".into(),
            ));
        }
        let stored: HashMap<(String, i32), i64> = store
            .positions()?
            .into_iter()
            .map(|(t, p, o)| ((t, p), o))
            .collect();
        let pending = store.outbox()?;
        let (consumer, assigned) = consumer(&kafka, &config.sources, &stored, &control.shutdown)?;
        let mut producer = OutboxProducer::new(client_config(&kafka))?;
        if !pending.is_empty() {
            tracing::info!(
                records = pending.len(),
                "resending the outbox left by the last run"
            );
        }
        for (seq, record) in pending {
            producer.send(seq, record);
        }
        let mut partitions = Vec::new();
        let mut index: HashMap<String, Vec<(i32, usize)>> = HashMap::new();
        for (topic, partition) in assigned {
            let source = config
                .sources
                .iter()
                .position(|s| s.topic == topic)
                .unwrap_or(0);
            let stored = stored.get(&(topic.clone(), partition)).copied();
            index
                .entry(topic.clone())
                .or_default()
                .push((partition, partitions.len()));
            partitions.push(Partition {
                topic,
                partition,
                source,
                next_offset: stored.unwrap_or(0),
                held: BTreeMap::new(),
                stored,
            });
        }
        tracing::info!(
            partitions = partitions.len(),
            resumed = stored.len(),
            "consumer assigned"
        );
        let c = &config.correlator;
        let watermarks = Watermarks::new(
            partitions.len(),
            c.allowed_lateness,
            c.idle_timeout,
            Instant::now(),
        );
        let buffer = ReorderBuffer::new(c.allowed_lateness);
        let now = Instant::now();
        let silence = config
            .sources
            .iter()
            .map(|_| Silence {
                last_record: now,
                since: Micros::now(),
                alerted: false,
            })
            .collect();
        let correlator = Correlator::new(Rules::from(&config), store).with_changelog();
        let consumed = lag::spawn(
            &kafka,
            partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition))
                .collect(),
            metrics.clone(),
            control.shutdown.clone(),
        );
        let mapping = Arc::new(config.mapping.clone());
        let normalizers = config
            .sources
            .iter()
            .map(|s| s.normalizer(&mapping))
            .collect();
        Ok(Pipeline {
            consumer,
            failing_since: None,
            shutdown: control.shutdown.clone(),
            core: Core {
                config,
                consumed,
                normalizers,
                correlator,
                producer,
                partitions,
                index,
                watermarks,
                buffer,
                silence,
                metrics,
                to_send: Vec::new(),
                delivered: Vec::new(),
                print,
                redeliveries_seen: 0,
            },
        })
    }

    /// Runs steps until `control.shutdown` is set, then commits and flushes.
    pub fn run(mut self, control: &Control) -> Result<(), LiveError> {
        control.ready.store(true, Ordering::SeqCst);
        while !control.shutdown.load(Ordering::SeqCst) {
            self.step()?;
        }
        self.core.shutdown()
    }

    /// Replaces a consumer that has only reported errors for [`REBUILD_AFTER`] with a new
    /// one assigned at the offsets consumed so far; where the broker's log is now shorter,
    /// `auto.offset.reset` starts it over and [`Core::ingest`] reports the reset. The
    /// producer is recreated too, resending what is in flight. While the broker is
    /// unreachable the old clients stay and the rebuild is tried again.
    fn rebuild_consumer(&mut self) {
        tracing::warn!(
            "the consumer has reported only errors for {REBUILD_AFTER:?}: reconnecting with a new one"
        );
        self.failing_since = Some(Instant::now());
        let Some(kafka) = self.core.config.kafka.clone() else {
            return;
        };
        // A partition whose log now ends before the offset consumed so far lost it: it is
        // read from its beginning, and `ingest` reports the offsets going backwards.
        let probe: Option<BaseConsumer> = client_config(&kafka).create().ok();
        let positions: HashMap<(String, i32), i64> = self
            .core
            .partitions
            .iter()
            .filter(|p| {
                let end = probe.as_ref().and_then(|c| {
                    c.fetch_watermarks(&p.topic, p.partition, Duration::from_secs(5))
                        .ok()
                });
                end.is_none_or(|(_, high)| high >= p.next_offset)
            })
            .map(|p| ((p.topic.clone(), p.partition), p.next_offset))
            .collect();
        match consumer(
            &kafka,
            &self.core.config.sources,
            &positions,
            &self.shutdown,
        ) {
            Ok((consumer, _)) => {
                self.consumer = consumer;
                self.failing_since = None;
                if let Err(e) = self.core.producer.reconnect(client_config(&kafka)) {
                    tracing::warn!(error = %e, "cannot recreate the producer; keeping the old one");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reconnect yet; trying again"),
        }
    }

    /// One step: poll, order, correlate, commit, produce.
    pub fn step(&mut self) -> Result<(), LiveError> {
        let started = Instant::now();
        let mut polled = 0;
        let paused = self.core.producer.in_flight() >= MAX_IN_FLIGHT;
        while !paused && polled < MAX_BATCH && started.elapsed() < STEP_TIME {
            let wait = if polled == 0 {
                POLL_WAIT
            } else {
                Duration::ZERO
            };
            match self.consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    let since = *self.failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > REBUILD_AFTER {
                        self.rebuild_consumer();
                    }
                    break;
                }
                Some(Ok(message)) => {
                    self.failing_since = None;
                    self.core.ingest(&message);
                    polled += 1;
                }
            }
        }
        self.core.settle()?;
        if paused {
            std::thread::sleep(POLL_WAIT);
        }
        Ok(())
    }
}

impl Core {
    fn shutdown(&mut self) -> Result<(), LiveError> {
        tracing::info!("shutting down: committing and flushing outputs");
        self.commit()?;
        self.delivered
            .extend(self.producer.flush(Duration::from_secs(10)));
        self.commit()?;
        if self.producer.in_flight() > 0 {
            tracing::warn!(
                records = self.producer.in_flight(),
                "outputs not acknowledged yet stay in the outbox for the next run"
            );
        }
        Ok(())
    }

    /// After polling: release what the watermark allows, evaluate deadlines, commit,
    /// produce.
    fn settle(&mut self) -> Result<(), LiveError> {
        let now = Instant::now();
        let wall = Micros::now();
        let watermark = self.watermarks.advance(now, wall);
        let mut alerts = Vec::new();
        let released: Vec<_> = std::iter::from_fn(|| self.buffer.pop_before(watermark)).collect();
        self.correlator
            .prefetch(released.iter().map(|(ev, _)| ev))?;
        for (ev, (p, offset)) in released {
            self.correlator.apply(&ev, &mut alerts)?;
            self.partitions[p].release(offset);
        }
        self.correlator.advance(watermark, &mut alerts)?;
        self.check_silence(now, wall, &mut alerts)?;
        self.emit(alerts)?;
        self.commit()?;
        for (seq, record) in self.to_send.drain(..) {
            self.producer.send(seq, record);
        }
        self.delivered.extend(self.producer.poll(Duration::ZERO));
        let m = &self.metrics;
        m.held_events.set(self.buffer.len() as i64);
        m.outbox_pending.set(self.producer.in_flight() as i64);
        m.watermark_lag
            .set(wall.millis_since(watermark).clamp(0, i64::MAX / 2) / 1000);
        let redeliveries = self.correlator.stats().redeliveries;
        m.redeliveries.inc_by(redeliveries - self.redeliveries_seen);
        self.redeliveries_seen = redeliveries;
        Ok(())
    }

    fn ingest(&mut self, message: &BorrowedMessage<'_>) {
        let Some(p) = self
            .index
            .get(message.topic())
            .and_then(|parts| parts.iter().find(|(id, _)| *id == message.partition()))
            .map(|(_, p)| *p)
        else {
            return;
        };
        let offset = message.offset();
        let part = &mut self.partitions[p];
        if offset < part.next_offset {
            tracing::warn!(
                topic = %part.topic,
                partition = part.partition,
                expected = part.next_offset,
                got = offset,
                "offsets went backwards: the broker lost its log (a memory broker restarted?); carrying on from the new log"
            );
            self.metrics.offset_resets.inc();
            part.held.clear();
        }
        part.next_offset = offset + 1;
        self.consumed[p].store(offset + 1, Ordering::Relaxed);
        let silence = &mut self.silence[part.source];
        silence.last_record = Instant::now();
        silence.alerted = false;
        let normalized = match message.payload() {
            Some(payload) => self.normalizers[part.source].normalize(payload),
            None => Err(DecodeError::new("record has no value")),
        };
        match normalized {
            Ok(Normalized::Events(events)) => {
                for ev in events {
                    self.metrics
                        .events
                        .with_label_values(&[ev.system.as_str(), &part.topic, ev.outcome.as_str()])
                        .inc();
                    if ev.time < self.watermarks.current() {
                        self.metrics.late_events.inc();
                    }
                    silence.since = ev.time;
                    self.watermarks.observe(p, ev.time, silence.last_record);
                    *part.held.entry(offset).or_insert(0) += 1;
                    self.buffer.push_tagged(ev, (p, offset));
                }
            }
            Ok(Normalized::Skipped(_)) => {
                self.metrics
                    .skipped_records
                    .with_label_values(&[&part.topic])
                    .inc();
            }
            Err(e) => {
                tracing::warn!(topic = %part.topic, partition = part.partition, offset, reason = %e, "dead letter");
                self.metrics
                    .dead_letters
                    .with_label_values(&[&part.topic])
                    .inc();
                let record = OutboxRecord {
                    topic: self.config.sinks.dead_letter_topic.clone(),
                    key: message.key().map(<[u8]>::to_vec),
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
        }
    }

    fn check_silence(
        &mut self,
        now: Instant,
        wall: Micros,
        alerts: &mut Vec<Alert>,
    ) -> Result<(), LiveError> {
        for (source, silence) in self.config.sources.iter().zip(&mut self.silence) {
            let Some(limit) = source.silence_alert else {
                continue;
            };
            if silence.alerted || now.duration_since(silence.last_record) < limit.to_std() {
                continue;
            }
            silence.alerted = true;
            let since = silence.since.to_string();
            let alert = Alert {
                alert_id: alert_id(
                    AlertKind::SourceSilent,
                    None,
                    source.system,
                    &source.topic,
                    Some(&since),
                ),
                kind: AlertKind::SourceSilent,
                severity: AlertKind::SourceSilent.severity(),
                case_id: None,
                root: source.topic.clone(),
                entity: Some(source.topic.clone()),
                entities: None,
                system: source.system,
                origin_system: None,
                revoked_at: None,
                deadline: None,
                at: wall,
                latency_ms: None,
                event_id: None,
                detail: format!(
                    "no records on {} ({}) for {limit}: an absent echo from {} may be a dead feed",
                    source.topic, source.system, source.system
                ),
            };
            self.correlator.store_mut().record_alert(&alert)?;
            alerts.push(alert);
        }
        Ok(())
    }

    fn emit(&mut self, alerts: Vec<Alert>) -> Result<(), LiveError> {
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
                payload: encode_alert(&alert, self.config.sinks.alerts_format),
                headers: vec![
                    ("alert_id".into(), alert.alert_id.clone().into_bytes()),
                    ("kind".into(), alert.kind.as_str().as_bytes().to_vec()),
                ],
            };
            self.queue(record);
        }
        for (system, ms) in self.correlator.take_echoes() {
            self.metrics
                .echo_latency
                .with_label_values(&[system.as_str()])
                .observe(ms as f64 / 1000.0);
        }
        for case in self.correlator.take_changed_cases()? {
            let record = OutboxRecord {
                topic: self.config.sinks.cases_topic.clone(),
                key: Some(case.id.clone().into_bytes()),
                payload: serde_json::to_vec(&case_json(&case)).unwrap_or_default(),
                headers: vec![("case_id".into(), case.id.clone().into_bytes())],
            };
            self.queue(record);
        }
        Ok(())
    }

    /// Puts an output in the outbox (committed with this step) and on the send list.
    fn queue(&mut self, record: OutboxRecord) {
        let seq = self.correlator.store_mut().enqueue(record.clone());
        self.to_send.push((seq, record));
    }

    fn commit(&mut self) -> Result<(), LiveError> {
        let store = self.correlator.store_mut();
        for part in &mut self.partitions {
            let position = part.position();
            if part.stored != Some(position) {
                store.set_position(&part.topic, part.partition, position);
                part.stored = Some(position);
            }
        }
        for seq in self.delivered.drain(..) {
            store.delivered(seq);
        }
        let timer = self.metrics.commit_seconds.start_timer();
        self.correlator.commit()?;
        timer.observe_duration();
        Ok(())
    }
}
