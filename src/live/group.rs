//! Group membership (`[kafka] assignment = "group"`, SPEC §7): the instances of one
//! `group_id` share the state shards through the consumer-group protocol.
//!
//! With `[kafka] repartition_topic`, partition p of that topic is state shard p: the
//! member that owns shard 0 also runs the group's router ([`crate::repartition`]), which
//! reads every source partition, keyed as the producers like, and routes each event
//! there by its lineage root; the shards read what it routed (`routes`). Without it,
//! partition number p of every source topic is state shard p: the topics are keyed by
//! lineage root and have the same number of partitions, so every event of a tree reaches
//! shard p, and the range assignor gives a member the same partition numbers of every
//! topic (librdkafka's cooperative-sticky assignor does not promise that). Each shard is
//! a `Core` of its own — RocksDB under `STATE/shard-p`, watermark, deadlines, outbox —
//! so time and deadlines advance on every instance for what it owns.
//!
//! A move is a hand-over through Kafka: on revoke, each shard commits what it applied,
//! sends its outputs and drops the events it held (their records are consumed again by
//! the next owner, from the position committed with the state); on assign, a shard opens
//! its directory and resumes at its stored positions, or, with no state here (a new pod,
//! a survivor of a killed instance), reads its partitions from their beginning: they are
//! its changelog, and it is restoring — `/readyz` not ready, the restore
//! metrics moving — until it has caught up with what the broker held when it came.
//! Alerts re-derived on the way carry the `alert_id` they had: consumers de-duplicate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::driver::{Driver, Gate, Mode, Unusable};
use super::events::{Event, Rejoined};
use super::probe::Probe;
use super::routes::Moves;
use super::startup;
use super::{alert_encoding, kafka_of, Control, Core, LiveError, Pipeline, Role, Scope, MAX_BATCH};
use crate::api::{Registration, Stores};
use crate::config::Config;
use crate::correlate::Stats;
use crate::repartition::Router;
use crate::sink::AlertEncoding;
use crate::source::kafka::{
    fetched_high_watermark, group_consumer, source_partitions, topic_partitions_waiting,
};
use crate::store::{MemoryBudget, Store};
use crate::telemetry::Metrics;
use crate::time::{Micros, Span};

/// librdkafka's default `session.timeout.ms`.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// A shard is caught up once it has at most this many records left to read.
const CAUGHT_UP: i64 = MAX_BATCH as i64;

/// The live pipeline of one member of the group.
pub struct GroupPipeline(Driver<Member>);

/// A member of the group: its steps hand each record to the shard it belongs to, then
/// let every shard order, correlate, commit and produce.
struct Member {
    metrics: Arc<Metrics>,
    /// `[correlator] max_future_skew`.
    skew: Span,
    /// The topics it subscribes to.
    topics: Vec<String>,
    /// The group's `session.timeout.ms`: not running for longer, the member has likely
    /// been expelled, and its partitions given to others.
    session_timeout: Duration,
    /// When the last step began.
    last_step: Instant,
    /// `/readyz`: joined, and no shard restoring.
    ready: Arc<AtomicBool>,
}

/// What this member holds, shared by the poll loop and the rebalance callback (which
/// runs inside `poll`, on the same thread, so the lock is never contended).
struct Membership {
    holdings: Mutex<Holdings>,
}

/// What a member holds: the state shards it owns, those the last rebalance took from
/// it, and the router while it owns shard 0.
struct Holdings {
    owned: BTreeMap<i32, Owned>,
    /// The group's router, while this instance owns state shard 0 of a repartition
    /// topic.
    router: Option<RouterThread>,
    /// Revoked by the last rebalance (the range assignor revokes everything), committed;
    /// kept until the next assignment says whether they stay here.
    parked: BTreeMap<i32, Owned>,
    opener: Opener,
    /// Whether the group has answered this member at least once.
    joined: bool,
    /// What went wrong in a rebalance callback, for the poll loop to return.
    failed: Option<LiveError>,
}

/// What opening a shard needs.
struct Opener {
    /// The partitions per source topic at start: the state shards there are.
    shards: usize,
    config: Config,
    dir: PathBuf,
    budget: MemoryBudget,
    metrics: Arc<Metrics>,
    /// Where a shard registers its store for `/metrics`.
    stores: Stores,
    print: bool,
    encoding: AlertEncoding,
    /// `[kafka] repartition_topic`: the shards read it, and shard 0's owner routes.
    routes: Option<String>,
    /// The member's one probe of its partitions' ends, shared by its shards.
    probe: Probe,
}

/// The router ([`crate::repartition`]) on a thread of its own, with its own consumer
/// of every source partition and its store under `STATE/router`.
struct RouterThread {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Result<(), LiveError>>,
}

struct Owned {
    core: Core,
    /// Since when, and from how many events applied, it catches up (None: caught up).
    restoring: Option<(Instant, u64)>,
    /// Counts its store in `/metrics` while it is here (dropped after `core`).
    _counted: Registration,
}

fn lock(holdings: &Mutex<Holdings>) -> MutexGuard<'_, Holdings> {
    holdings.lock().unwrap_or_else(|e| e.into_inner())
}

impl GroupPipeline {
    /// Joins the group `[kafka] group_id` with the state shards under `dir`; fails when
    /// the source topics do not have one partition count.
    pub fn start(
        config: Config,
        dir: PathBuf,
        metrics: Arc<Metrics>,
        print: bool,
        control: &Control,
    ) -> Result<GroupPipeline, LiveError> {
        let kafka = kafka_of(&config)?;
        startup::brokers_resolve(&kafka)?;
        let routes = kafka.repartition_topic.clone();
        let stop = &control.shutdown;
        let count = match &routes {
            Some(topic) => {
                let partitions = startup::wait_for_broker(
                    "reading the repartition topic's partitions",
                    stop,
                    || Ok(topic_partitions_waiting(&kafka, topic, stop)?),
                )?;
                partitions.len()
            }
            None => {
                let partitions = startup::wait_for_broker(
                    "reading the source topics' partitions",
                    stop,
                    || Ok(source_partitions(&kafka, &config.sources, stop)?),
                )?;
                partition_count(&config, &partitions)?
            }
        };
        if !dir.is_dir() {
            std::fs::create_dir(&dir).map_err(|e| {
                LiveError::Config(format!(
                    "state directory {}: {e} (its parent must exist)",
                    dir.display()
                ))
            })?;
        }
        same_shards(&dir, count)?;
        let opener = Opener {
            shards: count,
            encoding: alert_encoding(&config)?,
            // The router's store takes a share too.
            budget: config
                .state
                .memory_budget
                .share(count + usize::from(routes.is_some())),
            routes: routes.clone(),
            probe: Probe::spawn(
                &kafka,
                Vec::new(),
                Vec::new(),
                config.correlator.idle_timeout,
                metrics.clone(),
                control.shutdown.clone(),
            ),
            config: config.clone(),
            dir,
            metrics: metrics.clone(),
            stores: control.stores.clone(),
            print,
        };
        let membership = Membership {
            holdings: Mutex::new(Holdings {
                owned: BTreeMap::new(),
                router: None,
                parked: BTreeMap::new(),
                opener,
                joined: false,
                failed: None,
            }),
        };
        let topics: Vec<String> = {
            let shards = lock(&membership.holdings);
            shards
                .opener
                .topics()
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        let consumer = group_consumer(
            &kafka,
            &topics.iter().map(String::as_str).collect::<Vec<_>>(),
            membership,
        )?;
        match &routes {
            Some(topic) => tracing::info!(
                group = %kafka.group_id,
                shards = count,
                repartition_topic = %topic,
                "joining the consumer group: partition p of the repartition topic is state shard p; the owner of shard 0 routes the source topics into it by lineage root"
            ),
            None => tracing::info!(
                group = %kafka.group_id,
                shards = count,
                "joining the consumer group: partition number p of every source topic is state shard p"
            ),
        }
        let session_timeout = kafka
            .properties
            .get("session.timeout.ms")
            .and_then(|ms| ms.parse().ok())
            .map_or(DEFAULT_SESSION_TIMEOUT, Duration::from_millis);
        let member = Member {
            metrics,
            skew: config.correlator.max_future_skew,
            topics,
            session_timeout,
            last_step: Instant::now(),
            ready: control.ready.clone(),
        };
        Ok(GroupPipeline(Driver::new(Some(consumer), member)))
    }

    /// Runs steps until `control.shutdown` is set, then commits, flushes and leaves the
    /// group.
    pub fn run(self, control: &Control) -> Result<(), LiveError> {
        self.0.run(control)
    }
}

impl Member {
    /// This member did not run for longer than the group's session timeout (stopped,
    /// frozen, starved), or its consumer reported nothing but errors for long (`why`):
    /// the group has likely given its partitions to others, or will. Before it applies or sends anything more for them it gives them all up — each
    /// shard commits what it applied before, and drops what it held — and joins again:
    /// what it owns is what the next assignment says.
    fn rejoin(
        &mut self,
        consumer: &BaseConsumer<Membership>,
        why: Rejoined<'_>,
    ) -> Result<(), LiveError> {
        why.emit(&self.metrics);
        lock(&consumer.context().holdings).revoke()?;
        consumer.unsubscribe();
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        self.last_step = Instant::now();
        Ok(())
    }

    /// Why it rejoins after not running for `gap`.
    fn stopped(&self, gap: Duration) -> Rejoined<'static> {
        Rejoined::Stopped {
            stopped_for: gap,
            session_timeout: self.session_timeout,
        }
    }
}

impl Mode for Member {
    type Context = Membership;

    /// A member that did not run for longer than the session timeout rejoins first.
    fn open_step(
        &mut self,
        consumer: &mut Option<BaseConsumer<Membership>>,
        started: Instant,
    ) -> Result<Option<Gate>, LiveError> {
        let Some(consumer) = consumer.as_ref() else {
            return Ok(None);
        };
        let gap =
            started.saturating_duration_since(std::mem::replace(&mut self.last_step, started));
        if gap > self.session_timeout {
            self.rejoin(consumer, self.stopped(gap))?;
            return Ok(None);
        }
        let shards = lock(&consumer.context().holdings);
        let cores = || shards.owned.values().map(|o| &o.core);
        Ok(Some(Gate {
            poll: !cores().any(Core::outbox_full),
            busy: cores().any(Core::busy),
        }))
    }

    /// Stopped in the poll for longer than the session timeout: nothing more is applied
    /// before the group says what this member owns now.
    fn polled(
        &mut self,
        consumer: &BaseConsumer<Membership>,
        started: Instant,
    ) -> Result<bool, LiveError> {
        let gap = started.elapsed();
        if gap <= self.session_timeout {
            return Ok(false);
        }
        self.rejoin(consumer, self.stopped(gap))?;
        Ok(true)
    }

    fn take(
        &mut self,
        consumer: &BaseConsumer<Membership>,
        message: &BorrowedMessage<'_>,
        started: Instant,
        future_limit: Micros,
    ) -> Result<(), LiveError> {
        let mut shards = lock(&consumer.context().holdings);
        if let Some(owned) = shards.owned.get_mut(&message.partition()) {
            owned.core.ingest(message, started, future_limit)?;
            owned.core.send_durable()?;
        }
        Ok(())
    }

    fn unreadable(&mut self, consumer: &BaseConsumer<Membership>, now: Instant) {
        for owned in lock(&consumer.context().holdings).owned.values_mut() {
            owned.core.watermarks.hold(now);
        }
    }

    /// librdkafka reconnects a group's consumer by itself, and the group rebalances once
    /// the broker is back; a consumer failing for long leaves the group and joins again.
    fn replace(
        &mut self,
        consumer: &mut Option<BaseConsumer<Membership>>,
        why: Unusable,
        error: &KafkaError,
    ) -> Result<(), LiveError> {
        match (why, consumer.as_ref()) {
            (Unusable::Failing, Some(consumer)) => {
                self.rejoin(consumer, Rejoined::Failing { error })
            }
            _ => Ok(()),
        }
    }

    fn settle(&mut self, consumer: Option<&BaseConsumer<Membership>>) -> Result<(), LiveError> {
        let Some(consumer) = consumer else {
            return Ok(());
        };
        let mut shards = lock(&consumer.context().holdings);
        if let Some(e) = shards.failed.take() {
            return Err(e);
        }
        if shards.router.as_ref().is_some_and(RouterThread::ended) {
            if let Some(router) = shards.router.take() {
                router.stop()?;
            }
            return Err(LiveError::Config(
                "the router stopped without being asked to".into(),
            ));
        }
        let (mut restoring, mut lag) = (0, 0);
        for (&shard, owned) in &mut shards.owned {
            owned.core.settle()?;
            owned.core.pace(consumer);
            if let Some(left) = owned.observe(consumer, shard, &self.metrics) {
                restoring += 1;
                lag += left;
            }
        }
        self.metrics.restoring_shards.set(restoring);
        self.metrics.restore_lag.set(lag);
        self.ready
            .store(shards.joined && restoring == 0, Ordering::SeqCst);
        Ok(())
    }

    /// What its shards applied, added up.
    fn stats(&self, consumer: Option<&BaseConsumer<Membership>>) -> Stats {
        let mut stats = Stats::default();
        if let Some(consumer) = consumer {
            for owned in lock(&consumer.context().holdings).owned.values() {
                stats.absorb(&owned.core.role.stats());
            }
        }
        stats
    }

    fn skew(&self) -> Span {
        self.skew
    }

    fn failed(
        self,
        _: Option<BaseConsumer<Membership>>,
        error: LiveError,
        _: &Control,
    ) -> Result<(), LiveError> {
        Err(error)
    }

    /// Commits every shard, stops the router, then leaves the group.
    fn shut_down(self, consumer: Option<BaseConsumer<Membership>>) -> Result<(), LiveError> {
        let Some(consumer) = consumer else {
            return Ok(());
        };
        tracing::info!("shutting down: committing every shard, then leaving the group");
        let router = lock(&consumer.context().holdings).router.take();
        if let Some(router) = router {
            router.stop()?;
        }
        let shards: Vec<Owned> = {
            let mut shards = lock(&consumer.context().holdings);
            let owned = std::mem::take(&mut shards.owned);
            let parked = std::mem::take(&mut shards.parked);
            owned.into_values().chain(parked.into_values()).collect()
        };
        for mut owned in shards {
            owned.core.shutdown()?;
        }
        // Dropping the consumer leaves the group: the others take the partitions over.
        drop(consumer);
        Ok(())
    }
}

/// Records the number of state shards in `dir` (file `shards`), or checks it against the
/// one recorded: with another partition count a root names another partition, and the
/// shards kept here would hold parts of trees.
fn same_shards(dir: &std::path::Path, count: usize) -> Result<(), LiveError> {
    let file = dir.join("shards");
    let io = |e: std::io::Error| LiveError::Config(format!("{}: {e}", file.display()));
    match std::fs::read_to_string(&file) {
        Ok(text) if text.trim() == count.to_string() => Ok(()),
        Ok(text) => Err(LiveError::Config(format!(
            "the state in {} was built with {} partitions per source topic, and the topics now have {count}: trees would be split over the shards; run with a new state directory (every instance), which rebuilds from the topics",
            dir.display(),
            text.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&file, format!("{count}\n")).map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

/// The one partition count of the source topics (`partitions` lists them all).
fn partition_count(config: &Config, partitions: &[(String, i32)]) -> Result<usize, LiveError> {
    let counts: BTreeMap<&str, usize> = config
        .sources
        .iter()
        .map(|s| {
            let n = partitions.iter().filter(|(t, _)| *t == s.topic).count();
            (s.topic.as_str(), n)
        })
        .collect();
    let distinct: BTreeSet<usize> = counts.values().copied().collect();
    match distinct.into_iter().collect::<Vec<_>>()[..] {
        [n] if n > 0 => Ok(n),
        _ => Err(LiveError::Config(format!(
            "[kafka] assignment = \"group\" needs every source topic to have the same number of partitions (partition p of each is state shard p), and they have {counts:?}: recreate the topics with one partition count, or use assignment = \"all\""
        ))),
    }
}

impl Owned {
    /// While restoring, returns the records left to read, or None once caught up (said,
    /// and timed). Caught up is judged from the broker's answers to the probe asked since
    /// the shard opened: the consumer's cached high watermarks may be those of an earlier
    /// time it held these partitions (a member that resumed a copy of the shard it kept
    /// from then was "caught up" at once, with thousands of records to read). Until
    /// those answers come, the cached ones give the estimate.
    fn observe(
        &mut self,
        consumer: &BaseConsumer<Membership>,
        shard: i32,
        metrics: &Metrics,
    ) -> Option<i64> {
        let (since, from) = self.restoring?;
        let parts = &self.core.partitions;
        let answered = self.core.probe.left_since(
            parts
                .iter()
                .map(|p| (p.topic.as_str(), p.partition, p.next_offset)),
            since,
        );
        let Some(left) = answered else {
            let cached = parts.iter().filter_map(|p| {
                fetched_high_watermark(consumer, &p.topic, p.partition)
                    .map(|high| (high - p.next_offset).max(0))
            });
            return Some(cached.sum());
        };
        if left > CAUGHT_UP {
            return Some(left);
        }
        let applied = self.core.role.stats().applied - from;
        tracing::info!(shard, applied, took = ?since.elapsed(), "shard restored: caught up with its partitions");
        metrics
            .restore_seconds
            .observe(since.elapsed().as_secs_f64());
        self.restoring = None;
        None
    }
}

impl Holdings {
    /// Takes the assignment: shards parked by the revoke before it stay if assigned
    /// again, the others close; new ones open; every partition starts at its shard's
    /// stored position (its beginning when the shard has none).
    fn assign(&mut self, tpl: &mut TopicPartitionList) -> Result<(), LiveError> {
        let assigned: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let numbers: BTreeSet<i32> = assigned.iter().map(|(_, p)| *p).collect();
        for (shard, owned) in std::mem::take(&mut self.parked) {
            if numbers.contains(&shard) {
                self.owned.insert(shard, owned);
            }
        }
        for &shard in &numbers {
            if !self.owned.contains_key(&shard) {
                let owned = self.opener.open(shard)?;
                self.owned.insert(shard, owned);
            }
        }
        if numbers.contains(&0) && self.router.is_none() {
            if let Some(topic) = &self.opener.routes {
                self.router = Some(RouterThread::spawn(&self.opener, topic.clone())?);
            }
        }
        // The time the rebalance took is not quiet on the feeds: every partition gets
        // `idle_timeout` from now to deliver what it holds before the wall clock moves
        // the watermark (else a shard parked through a long join would find all its
        // partitions idle, and fire deadlines its unread records answer).
        let now = Instant::now();
        for owned in self.owned.values_mut() {
            owned.core.watermarks.hold(now);
        }
        for (topic, partition) in &assigned {
            let at = self.owned[partition]
                .core
                .resume_at_of(topic, *partition)
                .unwrap_or(Offset::Beginning);
            tpl.set_partition_offset(topic, *partition, at)?;
        }
        let metrics = &self.opener.metrics;
        for topic in self.opener.topics() {
            let n = assigned.iter().filter(|(t, _)| t == topic).count();
            metrics
                .assigned_partitions
                .with_label_values(&[topic])
                .set(n as i64);
        }
        metrics
            .rebalances
            .with_label_values(&["assigned"])
            .inc_by(assigned.len() as u64);
        tracing::info!(shards = ?numbers, partitions = assigned.len(), "partitions assigned");
        self.joined = true;
        Ok(())
    }

    /// Gives everything back (the range assignor revokes the whole assignment): each
    /// shard commits, sends its outputs and drops what it held, then waits parked.
    fn revoke(&mut self) -> Result<(), LiveError> {
        // One router per group: it stops before anyone else can own shard 0.
        if let Some(router) = self.router.take() {
            router.stop()?;
        }
        let metrics = &self.opener.metrics;
        let mut partitions = 0;
        for (shard, mut owned) in std::mem::take(&mut self.owned) {
            partitions += owned.core.partitions.len();
            // Retired first: its probe stops setting the lag of what moved away.
            owned.core.retire()?;
            for part in &owned.core.partitions {
                let labels = [part.topic.as_str(), &part.partition.to_string()];
                let _ = metrics.consumer_lag.remove_label_values(&labels);
            }
            self.parked.insert(shard, owned);
        }
        for topic in self.opener.topics() {
            metrics
                .assigned_partitions
                .with_label_values(&[topic])
                .set(0);
        }
        metrics
            .rebalances
            .with_label_values(&["revoked"])
            .inc_by(partitions as u64);
        if partitions > 0 {
            tracing::info!(
                shards = ?self.parked.keys().collect::<Vec<_>>(),
                "partitions revoked: committed and handed over"
            );
        }
        Ok(())
    }
}

impl Opener {
    /// The topics the group shares: the repartition topic, or every source topic.
    fn topics(&self) -> Vec<&str> {
        match &self.routes {
            Some(topic) => vec![topic.as_str()],
            None => self
                .config
                .sources
                .iter()
                .map(|s| s.topic.as_str())
                .collect(),
        }
    }

    /// Opens shard `shard` of this instance: its directory (created empty if it is
    /// new here), partition `shard` of every source topic.
    fn open(&self, shard: i32) -> Result<Owned, LiveError> {
        // Partitions added later would split trees over shards (a root's hash now names
        // another partition): stop rather than correlate half a tree.
        if usize::try_from(shard).map_or(true, |s| s >= self.shards) {
            return Err(LiveError::Config(format!(
                "partition {shard} was added to the shared topics after the start ({} per topic then): state shards are fixed, so the trees of the new count would be split; move to new topics with the new count and replay, or go back to {} partitions",
                self.shards, self.shards
            )));
        }
        let dir = self.dir.join(format!("shard-{shard}"));
        let store = Store::open_with(&dir, self.budget)?;
        let counted = self.stores.register(store.view());
        let resumed = !store.positions()?.is_empty();
        let sources = &self.config.sources;
        let (partitions, role, judges_silence) = match &self.routes {
            Some(topic) => (
                vec![(topic.clone(), shard)],
                Role::shard(&self.config, store, Moves::new(topic.clone(), self.shards)),
                false,
            ),
            None => (
                sources.iter().map(|s| (s.topic.clone(), shard)).collect(),
                Role::correlate(&self.config, store),
                shard == 0,
            ),
        };
        tracing::info!(
            shard,
            dir = %dir.display(),
            resumed,
            "opening state shard: {}",
            if resumed {
                "resuming at its stored positions"
            } else {
                "no state here: restoring it from the beginning of its partitions"
            }
        );
        let core = Core::open(
            self.config.clone(),
            self.metrics.clone(),
            self.print,
            self.encoding,
            Scope {
                partitions,
                probe: self.probe.clone(),
                judges_silence,
                role,
            },
        )?;
        let applied = core.role.stats().applied;
        Ok(Owned {
            core,
            restoring: Some((Instant::now(), applied)),
            _counted: counted,
        })
    }
}

impl RouterThread {
    /// Starts the router of `opener`'s group, routing into `topic`.
    fn spawn(opener: &Opener, topic: String) -> Result<RouterThread, LiveError> {
        let control = Control::default();
        let stop = control.shutdown.clone();
        let (config, metrics, budget) =
            (opener.config.clone(), opener.metrics.clone(), opener.budget);
        let dir = opener.dir.join("router");
        let shards = opener.shards;
        tracing::info!(dir = %dir.display(), "this instance owns state shard 0: starting the router");
        let handle = std::thread::Builder::new()
            .name("router".into())
            .spawn(move || {
                let store = Store::open_with(&dir, budget)?;
                let router = Router::new(topic, shards, store);
                Pipeline::router(config, metrics, &control, router)?.run(&control)
            })
            .map_err(|e| LiveError::Config(format!("cannot start the router thread: {e}")))?;
        Ok(RouterThread { stop, handle })
    }

    /// Whether it stopped (with an error: it runs until asked to stop).
    fn ended(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stops it: it commits and sends what it routed.
    fn stop(self) -> Result<(), LiveError> {
        self.stop.store(true, Ordering::SeqCst);
        let ended = self
            .handle
            .join()
            .map_err(|_| LiveError::Config("the router thread panicked".into()))?;
        tracing::info!("router stopped");
        match ended {
            // Asked to stop while its start waited for the broker: it routed nothing.
            Err(LiveError::Stopped) => Ok(()),
            other => other,
        }
    }
}

impl ClientContext for Membership {}

impl ConsumerContext for Membership {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Membership>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let mut shards = lock(&self.holdings);
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => shards
                .assign(tpl)
                .and_then(|()| consumer.assign(tpl).map_err(LiveError::from)),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => shards
                .revoke()
                .and_then(|()| consumer.unassign().map_err(LiveError::from)),
            other => {
                tracing::warn!(error = ?other, "rebalance failed: giving the partitions back");
                shards
                    .revoke()
                    .and_then(|()| consumer.unassign().map_err(LiveError::from))
            }
        };
        if let Err(e) = done {
            tracing::error!(error = %e, "rebalance");
            shards.failed.get_or_insert(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_topics_have_one_partition_count_which_the_state_keeps() {
        let config = Config::parse(
            "[kafka]\nbrokers = \"b:9092\"\nassignment = \"group\"\n[[sources]]\nsystem = \"iam\"\ntopic = \"a\"\nformat = \"canonical-json\"\n[[sources]]\nsystem = \"vault\"\ntopic = \"b\"\nformat = \"canonical-json\"\n",
        )
        .unwrap();
        let parts = |a: i32, b: i32| -> Vec<(String, i32)> {
            let of = |t: &'static str, n: i32| (0..n).map(move |p| (t.to_owned(), p));
            of("a", a).chain(of("b", b)).collect()
        };
        assert_eq!(partition_count(&config, &parts(6, 6)).unwrap(), 6);
        let dir = tempfile::tempdir().unwrap();
        same_shards(dir.path(), 6).unwrap();
        same_shards(dir.path(), 6).unwrap();
        let why = same_shards(dir.path(), 8).unwrap_err().to_string();
        assert!(
            why.contains("built with 6") && why.contains("now have 8"),
            "{why}"
        );
        let why = partition_count(&config, &parts(6, 4))
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("\"a\": 6") && why.contains("\"b\": 4"),
            "{why}"
        );
    }
}
