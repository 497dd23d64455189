//! The live pipeline (`lockstep run`): consume the source topics, order events by the
//! stream watermark, drive the same correlator as replay, and produce alerts, the case
//! changelog and dead letters through the outbox.
//!
//! Each step — poll up to [`MAX_BATCH`] records, release the events older than the
//! watermark, evaluate the deadlines before it (up to [`MAX_BATCH`] of them: when every
//! feed goes idle the watermark follows the wall clock, and months of deadlines can come
//! due at once; the rest wait for the next steps, and events for them) — ends in one
//! RocksDB write batch holding the new state, timers, alerts, outbox records and consumed
//! positions. A partition's stored position is the offset of its oldest event still held
//! in the reorder buffer, so a crash loses nothing: on restart those records are consumed
//! again, and any event already applied is dropped as a redelivery. The batch is written
//! in the background while the next step polls; its outputs go to Kafka once it is
//! durable.
//!
//! One loop runs every mode (`driver`): one instance reading every partition itself
//! (`instance`: it reconnects to a broker that went away and reads back the last record
//! consumed from each partition, so a broker that came back without its log is
//! noticed), or a member of a group with the state shards it owns (`group`). Each
//! drives `Core`s: one per instance, one per shard, one for the group's router.

mod disk;
mod driver;
mod events;
pub mod feed;
pub mod group;
mod instance;
mod outputs;
mod partition;
pub mod probe;
mod role;
mod routes;
mod schema_wait;
mod silence;
mod startup;
pub mod watermark;

pub use instance::Pipeline;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};

use crate::adapter::{Normalized, Normalizer};
use crate::config::Config;
use crate::correlate::reorder::ReorderBuffer;
use crate::correlate::Stats;
use crate::error::{DecodeError, StoreError};
use crate::notify::Notifier;
use crate::sink::kafka::OutboxProducer;
use crate::sink::AlertEncoding;
use crate::source::continuity::{self, fingerprint};
use crate::source::kafka::client_config;
use crate::store::{OutboxRecord, Position};
use crate::telemetry::Metrics;
use crate::time::Micros;
use events::{Event, LogLost};
use outputs::hand_over;
use partition::Partition;
use probe::Probe;
use role::{Role, Scope};
use routes::Tag;
use schema_wait::SchemaWaits;
use silence::Silence;
use watermark::Watermarks;

/// How often `run` logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);
/// Records polled in one step at most.
pub const MAX_BATCH: usize = 20_000;
/// How long a step waits for records when there are none, or outputs back up.
const POLL_WAIT: Duration = Duration::from_millis(50);

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
    /// The source partitions cannot be checked now.
    #[error(transparent)]
    Unavailable(#[from] continuity::Unavailable),
    /// The state directory refused a write and has room again: RocksDB takes writes
    /// only once reopened, so the run starts over from its last commit (`live::disk`).
    #[error("the state directory must be reopened after a failed write")]
    Reopen,
    /// Asked to stop while the start waited for the broker.
    #[error("stopped before the broker answered")]
    Stopped,
}

/// Says how far the pipeline got every [`PROGRESS_EVERY`].
struct Progress {
    since: Instant,
    applied: u64,
}

impl Progress {
    fn new(stats: Stats) -> Progress {
        Progress {
            since: Instant::now(),
            applied: stats.applied,
        }
    }

    fn log(&mut self, stats: Stats, connected: bool) {
        if self.since.elapsed() < PROGRESS_EVERY {
            return;
        }
        // A group's sum falls when a shard moves away.
        let rate =
            stats.applied.saturating_sub(self.applied) as f64 / self.since.elapsed().as_secs_f64();
        tracing::info!(
            applied = stats.applied,
            events_per_s = rate.round(),
            redeliveries = stats.redeliveries,
            late = stats.late,
            cases_opened = stats.cases_opened,
            deadlines = stats.deadlines,
            row_reads = stats.row_reads,
            connected,
            "progress"
        );
        *self = Progress::new(stats);
    }
}

/// Switches shared with the API and the signal handlers.
#[derive(Clone, Default)]
pub struct Control {
    /// Set to stop: the pipeline commits, flushes and returns.
    pub shutdown: Arc<AtomicBool>,
    /// Set once the consumer is assigned and the outbox resent.
    pub ready: Arc<AtomicBool>,
    /// The open state stores, whose size, health and cases `/metrics` reports.
    pub stores: crate::api::Stores,
}

/// What a consumed record goes through: ordering, correlation, outputs, commits.
struct Core {
    /// How alerts are encoded for the alerts topic.
    alert_encoding: AlertEncoding,
    config: Config,
    /// Asks the broker for its partitions' ends (lag, and whether they are caught up) and,
    /// with every partition assigned, for partitions added.
    probe: Probe,
    /// Whether this core raises `source_silent` (one core of an instance does).
    judges_silence: bool,
    /// Partitions paused for being ahead while too many events are held.
    paused: BTreeSet<usize>,
    /// Partitions paused at a record the schema registry cannot help read now.
    schema_waits: SchemaWaits,
    /// Deadlines before the watermark left for the next step (a step evaluates at most
    /// [`MAX_BATCH`]): until they are evaluated, no held event is released.
    deadline_backlog: bool,
    normalizers: Vec<Normalizer>,
    role: Role,
    producer: OutboxProducer,
    /// The `[[notify]]` sinks' delivery threads.
    notifier: Notifier,
    partitions: Vec<Partition>,
    index: HashMap<String, Vec<(i32, usize)>>,
    watermarks: Watermarks,
    buffer: ReorderBuffer<Tag>,
    silence: Vec<Silence>,
    metrics: Arc<Metrics>,
    /// Outputs of this step, for the batch about to be written.
    to_send: Vec<(u64, OutboxRecord)>,
    /// Outputs of the batch being written: sent once it is durable.
    writing: Vec<(u64, OutboxRecord)>,
    delivered: Vec<u64>,
    /// Records routed so far (a router's): the next one's sequence number.
    routed: u64,
    /// What it added to the instance's gauges of held events, deadline backlog, outputs
    /// in flight and partitions waiting for the registry (the cores of an instance, a
    /// group's shards and router, each add their own).
    reported: [i64; 4],
    print: bool,
    redeliveries_seen: u64,
    /// The work done as of the last step ([`Core::work_done`]): when it changes, the
    /// pipeline made progress.
    work_seen: [i64; 3],
}

impl Drop for Core {
    /// A closed core (a shard that moved away) holds nothing of the instance's gauges.
    fn drop(&mut self) {
        let m = &self.metrics;
        for (gauge, reported) in Core::gauges(m).into_iter().zip(self.reported) {
            gauge.sub(reported);
        }
    }
}

/// `normalized`, or a dead-letter reason when one of its events is stamped after `limit`
/// (the wall clock + `skew`: SPEC §5 watermarks must not follow a clock gone wrong).
fn not_ahead(
    normalized: Normalized,
    limit: Micros,
    skew: crate::time::Span,
) -> Result<Normalized, DecodeError> {
    if let Normalized::Events(events) = &normalized {
        if let Some(ev) = events.iter().find(|e| e.time > limit) {
            return Err(DecodeError::new(format!(
                "event time {} is more than max_future_skew ({skew}) ahead of the wall clock",
                ev.time
            )));
        }
    }
    Ok(normalized)
}

/// The `[kafka]` section, with the `[[sources]]` `lockstep run` needs.
fn kafka_of(config: &Config) -> Result<crate::config::KafkaConfig, LiveError> {
    if config.sources.is_empty() {
        return Err(LiveError::Config(
            "lockstep run needs at least one [[sources]] entry (system, topic, format)".into(),
        ));
    }
    config.kafka.clone().ok_or_else(|| {
        LiveError::Config("lockstep run needs [kafka] brokers = \"host:9092\" in the config".into())
    })
}

/// The alerts topic's encoding; for Avro, the alert schema registered under the
/// topic's subject first (a registry that refuses it stops the start, with its reason).
fn alert_encoding(config: &Config) -> Result<AlertEncoding, LiveError> {
    let format = config.sinks.alerts_format;
    let schema_id = match (&config.sinks.schema_registry, format) {
        (Some(url), crate::config::AlertsFormat::Avro) => {
            let subject = format!("{}-value", config.sinks.alerts_topic);
            let id = config
                .registry
                .client(url)
                .register(&subject, crate::sink::ALERT_SCHEMA)
                .map_err(|why| LiveError::Config(format!("registering the alert schema: {why}")))?;
            tracing::info!(subject = %subject, id, "alert schema registered");
            Some(id)
        }
        _ => None,
    };
    Ok(AlertEncoding { format, schema_id })
}

impl Core {
    /// A core over the partitions of `scope`, resuming at the positions its store holds;
    /// outputs the last run left in its outbox are sent again.
    fn open(
        config: Config,
        metrics: Arc<Metrics>,
        print: bool,
        alert_encoding: AlertEncoding,
        mut scope: Scope,
    ) -> Result<Core, LiveError> {
        let kafka = kafka_of(&config)?;
        let store = scope.role.store_mut();
        let stored: HashMap<(String, i32), Position> = store
            .positions()?
            .into_iter()
            .map(|(t, p, o)| ((t, p), o))
            .collect();
        let pending = store.outbox()?;
        let mut producer = OutboxProducer::new(client_config(&kafka))?;
        let mut notifier =
            Notifier::spawn(&config.notify, &config.sinks.dead_letter_topic, &metrics);
        if !pending.is_empty() {
            tracing::info!(
                records = pending.len(),
                "resending the outbox left by the last run"
            );
        }
        hand_over(&mut producer, &mut notifier, pending);
        let c = &config.correlator;
        // A shard's time is the router's marks: its partition is never idle, since quiet
        // there may be the router away, not the feeds.
        let idle_timeout = match scope.role {
            Role::Shard(..) => crate::time::Span::days(36_500),
            _ => c.idle_timeout,
        };
        let watermarks = Watermarks::new(c.allowed_lateness, idle_timeout);
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
        let mapping = Arc::new(config.mapping.clone());
        let normalizers = config
            .sources
            .iter()
            .map(|s| s.normalizer(&mapping, &config.registry))
            .collect();
        let mut core = Core {
            alert_encoding,
            config,
            probe: scope.probe,
            judges_silence: scope.judges_silence,
            paused: BTreeSet::new(),
            schema_waits: SchemaWaits::default(),
            deadline_backlog: false,
            normalizers,
            role: scope.role,
            producer,
            notifier,
            partitions: Vec::new(),
            index: HashMap::new(),
            watermarks,
            buffer,
            silence,
            metrics,
            to_send: Vec::new(),
            writing: Vec::new(),
            delivered: Vec::new(),
            routed: 0,
            reported: [0; 4],
            print,
            redeliveries_seen: 0,
            work_seen: [-1; 3],
        };
        for (topic, partition) in scope.partitions {
            let at = stored.get(&(topic.clone(), partition)).copied();
            core.add_partition(topic, partition, at);
        }
        tracing::info!(
            partitions = core.partitions.len(),
            resumed = stored.len(),
            "partitions taken on"
        );
        Ok(core)
    }

    /// Whether outputs wait for their batch to be written, or deadlines for their turn:
    /// the step comes back soon for them.
    fn busy(&self) -> bool {
        !self.writing.is_empty() || self.deadline_backlog
    }

    /// Whether `[sinks] max_outbox` outputs await the broker's acknowledgement: then no
    /// record is consumed and no deadline evaluated until fewer do.
    fn outbox_full(&self) -> bool {
        self.producer.in_flight() >= self.config.sinks.max_outbox
    }

    /// The instance's gauges each core adds its share to.
    fn gauges(m: &Metrics) -> [&prometheus::IntGauge; 4] {
        [
            &m.held_events,
            &m.deadline_backlog,
            &m.outbox_pending,
            &m.registry_waits,
        ]
    }

    /// Adds what changed of its held events, deadline backlog, outputs in flight and
    /// partitions waiting for the registry to the instance's gauges.
    fn report_gauges(&mut self) {
        let now = [
            self.buffer.len() as i64,
            i64::from(self.deadline_backlog),
            self.producer.in_flight() as i64,
            self.schema_waits.len() as i64,
        ];
        let gauges = Core::gauges(&self.metrics);
        for ((gauge, now), reported) in gauges.into_iter().zip(now).zip(&mut self.reported) {
            gauge.add(now - *reported);
            *reported = now;
        }
    }

    /// Commits, and waits (10 s at most) for the outputs to be acknowledged.
    fn shutdown(&mut self) -> Result<(), LiveError> {
        tracing::info!("committing and flushing outputs");
        self.commit(true)?;
        for record in self
            .notifier
            .flush(Duration::from_secs(5), &mut self.delivered)
        {
            self.queue(record);
        }
        self.delivered
            .extend(self.producer.flush(Duration::from_secs(10)));
        self.commit(true)?;
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
        let mut released = Vec::new();
        // An event awaiting a move-in stops the release, and the deadlines, at its time.
        let mut blocked = None;
        if !self.deadline_backlog {
            while let Some(held) = self.pop_release(watermark, &mut blocked)? {
                released.push(held);
            }
        }
        // A hard bound for what pausing cannot help (a burst on one partition): past twice
        // max_held_events and a poll's worth — never reached while pausing works, since
        // a paused partition adds nothing — the earliest held events are released early.
        if blocked.is_none() {
            let bound = self.config.correlator.max_held_events * 2 + MAX_BATCH;
            released.extend(std::iter::from_fn(|| self.buffer.pop_over(bound)));
        }
        self.role
            .store_mut()
            .prefetch(released.iter().map(|held| &held.0))?;
        for (i, held) in released.iter().enumerate() {
            let event_at = |i: usize| released.get(i).map(|held| &held.0);
            self.role.store_mut().look_ahead(event_at, i);
            let (ev, tag) = &**held;
            self.apply_step(ev, &tag.step, &mut alerts)?;
            self.partitions[tag.partition].release(tag.epoch, tag.offset);
        }
        // Alerts the producer has not taken yet wait in memory: none are added while
        // too many are in flight.
        if !self.outbox_full() {
            let limit = blocked.map_or(watermark, |t| t.min(watermark));
            self.deadline_backlog = self.role.advance(limit, MAX_BATCH, &mut alerts)?;
        }
        self.check_silence(now, wall, &mut alerts)?;
        self.emit(alerts)?;
        for record in self.notifier.settle(&mut self.delivered) {
            self.queue(record);
        }
        self.commit(false)?;
        self.delivered.extend(self.producer.poll(Duration::ZERO));
        self.probe.report(
            self.partitions
                .iter()
                .map(|p| (p.topic.as_str(), p.partition, p.next_offset)),
        );
        self.report_gauges();
        let m = &self.metrics;
        m.watermark_lag
            .set(wall.millis_since(watermark).max(0) as f64 / 1000.0);
        let redeliveries = self.role.stats().redeliveries;
        m.redeliveries.inc_by(redeliveries - self.redeliveries_seen);
        self.redeliveries_seen = redeliveries;
        let work = self.work_done();
        if work != self.work_seen {
            self.work_seen = work;
            m.last_progress.set(wall.0 as f64 / 1e6);
        }
        Ok(())
    }

    /// What this core has done, for `/healthz` to tell a stalled pipeline from a quiet
    /// one: events applied or dropped and deadlines evaluated, outputs in flight (they
    /// change when one is acknowledged), and the next offsets (records consumed).
    fn work_done(&self) -> [i64; 3] {
        let stats = self.role.stats();
        [
            (stats.applied + stats.redeliveries + stats.deadlines) as i64,
            self.producer.in_flight() as i64,
            self.partitions.iter().map(|p| p.next_offset).sum(),
        ]
    }

    /// Takes a consumed record in; `now` is when its poll began (close enough for
    /// idleness and silence, and one clock read a step rather than one a record).
    fn ingest(
        &mut self,
        message: &BorrowedMessage<'_>,
        now: Instant,
        future_limit: Micros,
    ) -> Result<(), LiveError> {
        let Some(p) = self
            .index
            .get(message.topic())
            .and_then(|parts| parts.iter().find(|(id, _)| *id == message.partition()))
            .map(|(_, p)| *p)
        else {
            return Ok(());
        };
        if self.schema_waits.waits(p) {
            // Read again from the record that waits, once the wait is over.
            return Ok(());
        }
        let offset = message.offset();
        let part = &mut self.partitions[p];
        if offset < part.next_offset {
            LogLost {
                at: part.at(offset),
                went_back_from: Some(part.next_offset),
            }
            .emit(&self.metrics);
            part.start_over();
        }
        let check = part.check;
        part.next_offset = offset + 1;
        part.check = Some((offset, fingerprint(message)));
        if matches!(self.role, Role::Shard(..)) {
            return self.ingest_routed(p, message, now);
        }
        let silence = &mut self.silence[part.source];
        silence.last_record = now;
        silence.alerted = false;
        let normalized = match message.payload() {
            Some(payload) => self.normalizers[part.source].normalize(payload),
            None => Err(DecodeError::new("record has no value")),
        }
        .and_then(|n| not_ahead(n, future_limit, self.config.correlator.max_future_skew));
        if normalized.is_ok() {
            self.schema_waits.read(p);
        }
        match normalized {
            Err(e) if e.transient => {
                // Not consumed: the partition resumes at this record after the wait.
                part.next_offset = offset;
                part.check = check;
                let wait = self.schema_waits.start(p, offset, now);
                tracing::warn!(
                    topic = %part.topic,
                    partition = part.partition,
                    offset,
                    reason = %e,
                    retry_in = ?wait,
                    "the schema registry cannot be asked now: partition paused at this record, holding the watermark"
                );
            }
            Ok(Normalized::Events(events)) => {
                for ev in events {
                    part.count(&self.metrics, &ev);
                    if ev.time < self.watermarks.current() {
                        self.metrics.late_events.inc();
                    }
                    silence.since = ev.time;
                    self.watermarks.observe(p, ev.time, silence.last_record);
                    part.hold(offset);
                    let tag = Tag {
                        partition: p,
                        epoch: part.epoch,
                        offset,
                        step: routes::Step::Apply,
                    };
                    self.buffer.push_tagged(ev, tag);
                }
            }
            Ok(Normalized::Skipped(_)) => {
                self.metrics
                    .skipped_records
                    .with_label_values(&[&part.topic])
                    .inc();
            }
            Err(e) => self.dead_letter(p, message, e),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_stamped_past_the_wall_clock_is_a_dead_letter() {
        let now = Micros::parse("2026-03-02T10:00:00Z").unwrap();
        let ev = |time: &str| {
            crate::decode::json::decode(format!(r#"{{"event_id":"e","system":"iam","time":"{time}","entity":"x","action":"used"}}"#).as_bytes()).unwrap()
        };
        let skew = crate::time::Span::hours(1);
        let ok = Normalized::Events(vec![ev("2026-03-02T10:59:59Z")]);
        assert!(not_ahead(ok, now.plus(skew), skew).is_ok());
        let far = Normalized::Events(vec![ev("2026-03-02T09:00:00Z"), ev("9999-12-31T00:00:00Z")]);
        let reason = not_ahead(far, now.plus(skew), skew).err().unwrap().reason;
        assert!(
            reason.contains("9999-12-31") && reason.contains("max_future_skew (1h)"),
            "{reason}"
        );
    }
}
