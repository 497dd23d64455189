//! One instance that reads every source partition itself (`[kafka] assignment =
//! "assign"`, and the group's router): one core, one consumer assigned every partition.
//! A broker that goes away is reconnected to; at start and after every outage the last
//! record consumed from each partition is read back ([`crate::source::continuity`]), so
//! a broker that came back without its log is noticed and its partitions read again
//! from the start. A partition added to a source topic is taken on by a new consumer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;

use super::driver::{Driver, Gate, Mode, Unusable};
use super::probe::Probe;
use super::role::{Role, Scope};
use super::{alert_encoding, disk, kafka_of, startup, Control, Core, LiveError};
use crate::config::Config;
use crate::correlate::Stats;
use crate::repartition::Router;
use crate::source::kafka::{client_config, source_partitions};
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::time::{Micros, Span};

/// How often a broker that went away is tried again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// The running pipeline of one instance: its consumer, and everything a record goes
/// through after it.
pub struct Pipeline(Driver<Instance>);

/// The core of an instance, and its reconnecting.
pub(super) struct Instance {
    pub(super) core: Core,
    /// When reconnecting was last tried.
    reconnect_tried: Option<Instant>,
    /// Why it failed last (said once, not every attempt).
    unavailable: Option<String>,
    /// Whether consumption is paused for `[sinks] max_outbox` outputs unacknowledged.
    outbox_full: bool,
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
        let role = Role::correlate(&config, store);
        Pipeline::open(config, metrics, print, control, role)
    }

    /// The router of a group ([`crate::repartition`]): reads every source partition,
    /// in order, and routes each event by its root into `[kafka] repartition_topic`.
    pub fn router(
        config: Config,
        metrics: Arc<Metrics>,
        control: &Control,
        router: Router,
    ) -> Result<Pipeline, LiveError> {
        Pipeline::open(config, metrics, false, control, Role::Route(router))
    }

    fn open(
        config: Config,
        metrics: Arc<Metrics>,
        print: bool,
        control: &Control,
        role: Role,
    ) -> Result<Pipeline, LiveError> {
        let kafka = kafka_of(&config)?;
        startup::brokers_resolve(&kafka)?;
        let stop = &control.shutdown;
        let assigned =
            startup::wait_for_broker("reading the source topics' partitions", stop, || {
                Ok(source_partitions(&kafka, &config.sources, stop)?)
            })?;
        let probe = Probe::spawn(
            &kafka,
            config.sources.iter().map(|s| s.topic.clone()).collect(),
            assigned.clone(),
            config.correlator.idle_timeout,
            metrics.clone(),
            control.shutdown.clone(),
        );
        let encoding = alert_encoding(&config)?;
        let scope = Scope {
            partitions: assigned,
            probe,
            judges_silence: true,
            role,
        };
        let mut core = Core::open(config, metrics, print, encoding, scope)?;
        let (consumer, _) =
            startup::wait_for_broker("reading back the last records consumed", stop, || {
                core.connect(&kafka)
            })?;
        let instance = Instance {
            core,
            reconnect_tried: None,
            unavailable: None,
            outbox_full: false,
        };
        Ok(Pipeline(Driver::new(Some(consumer), instance)))
    }

    /// Runs steps until `control.shutdown` is set, then commits and flushes. A store
    /// that refuses a write pauses the run until the state directory has room again,
    /// then returns [`LiveError::Reopen`] (`live::disk`).
    pub fn run(self, control: &Control) -> Result<(), LiveError> {
        control.ready.store(true, Ordering::SeqCst);
        self.0.run(control)
    }
}

impl Instance {
    /// Makes a new consumer, at most every [`RECONNECT_EVERY`], once the broker answers:
    /// partitions whose log the broker still holds resume where they stopped, the others
    /// start over (and the producer is recreated, since the broker lost its state).
    fn reconnect(&mut self, consumer: &mut Option<BaseConsumer>) {
        if self
            .reconnect_tried
            .is_some_and(|t| t.elapsed() < RECONNECT_EVERY)
        {
            return;
        }
        self.reconnect_tried = Some(Instant::now());
        let Some(kafka) = self.core.config.kafka.clone() else {
            return;
        };
        match self.core.connect(&kafka) {
            Ok((connected, lost)) => {
                tracing::info!("reconnected to the broker");
                *consumer = Some(connected);
                self.core.paused.clear();
                self.core.metrics.paused_partitions.set(0);
                self.unavailable = None;
                if lost {
                    if let Err(e) = self.core.producer.reconnect(client_config(&kafka)) {
                        tracing::warn!(error = %e, "cannot recreate the producer; keeping the old one");
                    }
                }
            }
            Err(e) => {
                let why = e.to_string();
                if self.unavailable.as_ref() != Some(&why) {
                    tracing::warn!(error = %why, "cannot reconnect yet; trying every {RECONNECT_EVERY:?}");
                    self.unavailable = Some(why);
                }
            }
        }
    }
}

impl Mode for Instance {
    type Context = rdkafka::consumer::DefaultConsumerContext;

    fn open_step(
        &mut self,
        consumer: &mut Option<BaseConsumer>,
        _started: Instant,
    ) -> Result<Option<Gate>, LiveError> {
        let added = self.core.probe.take_added();
        if !added.is_empty() {
            for (topic, partition) in added {
                self.core.add_partition(topic, partition, None);
            }
            // The new consumer is assigned every partition, the new ones too.
            *consumer = None;
            self.reconnect_tried = None;
        }
        if consumer.is_none() {
            self.core.watermarks.hold(Instant::now());
            self.reconnect(consumer);
        }
        let outbox_full = self.core.outbox_full();
        if outbox_full != self.outbox_full {
            self.outbox_full = outbox_full;
            match outbox_full {
                true => tracing::warn!(
                    max_outbox = self.core.config.sinks.max_outbox,
                    "the broker has not acknowledged max_outbox outputs (an output topic refusing writes?): consumption paused until it does"
                ),
                false => tracing::info!("outputs acknowledged again: consuming"),
            }
        }
        Ok(Some(Gate {
            poll: !outbox_full && consumer.is_some(),
            busy: self.core.busy(),
        }))
    }

    fn take(
        &mut self,
        _: &BaseConsumer,
        message: &BorrowedMessage<'_>,
        started: Instant,
        future_limit: Micros,
    ) -> Result<(), LiveError> {
        self.core.ingest(message, started, future_limit)?;
        self.core.send_durable()
    }

    fn unreadable(&mut self, _: &BaseConsumer, now: Instant) {
        self.core.watermarks.hold(now);
    }

    /// Drops the consumer; the next steps make a new one ([`Instance::reconnect`]).
    fn replace(
        &mut self,
        consumer: &mut Option<BaseConsumer>,
        _: Unusable,
        error: &KafkaError,
    ) -> Result<(), LiveError> {
        tracing::warn!(error = %error, "lost the broker: reconnecting, then reading back the last records consumed");
        *consumer = None;
        Ok(())
    }

    fn settle(&mut self, consumer: Option<&BaseConsumer>) -> Result<(), LiveError> {
        self.core.settle()?;
        if let Some(consumer) = consumer {
            self.core.pace(consumer);
        }
        Ok(())
    }

    fn stats(&self, _: Option<&BaseConsumer>) -> Stats {
        self.core.role.stats()
    }

    fn skew(&self) -> Span {
        self.core.config.correlator.max_future_skew
    }

    /// A store that refuses a write waits for room ([`Instance::wait_for_disk`]); any
    /// other failure ends the run.
    fn failed(
        self,
        consumer: Option<BaseConsumer>,
        error: LiveError,
        control: &Control,
    ) -> Result<(), LiveError> {
        let Some(why) = disk::unwritable(&error) else {
            return Err(error);
        };
        drop(consumer);
        self.wait_for_disk(error, &why, control)
    }

    fn shut_down(mut self, _: Option<BaseConsumer>) -> Result<(), LiveError> {
        self.core.shutdown()
    }
}
