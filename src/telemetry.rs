//! Metrics of the live pipeline, in a Prometheus registry served at `/metrics`.
//! Names follow `lockstep_<noun>_<unit>`. The registry also carries the process
//! collector (`process_cpu_seconds_total`, `process_resident_memory_bytes`, open fds…),
//! `lockstep_build_info{version}` and RocksDB's own health (write stalls, pending
//! compaction, block cache use), read at each scrape.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric handle, registered once.
pub struct Metrics {
    registry: Registry,
    /// Events decoded, by system, source topic and outcome.
    pub events: IntCounterVec,
    /// Cases in the state, by where they stand (computed at each scrape).
    pub cases: prometheus::IntGaugeVec,
    /// Bytes of the RocksDB state: SST files and memtables (at each scrape).
    pub store_bytes: IntGauge,
    /// Records on the broker not consumed yet, by topic and partition.
    pub consumer_lag: prometheus::IntGaugeVec,
    /// Events older than the stream watermark when they arrived (applied anyway).
    pub late_events: IntCounter,
    /// Redeliveries dropped.
    pub redeliveries: IntCounter,
    /// Records sent to the dead-letter topic, by source topic.
    pub dead_letters: IntCounterVec,
    /// Native records of a type their format does not cover, by source topic.
    pub skipped_records: IntCounterVec,
    /// Alerts raised, by kind.
    pub alerts: IntCounterVec,
    /// Echo latency of every completed echo (on time or late), by system.
    pub echo_latency: prometheus::HistogramVec,
    /// Wall clock minus the stream watermark, in seconds.
    pub watermark_lag: prometheus::Gauge,
    /// 1 while `/readyz` says ready (set at each scrape).
    pub ready: IntGauge,
    /// Unix time the pipeline last made progress: records consumed, events applied,
    /// deadlines evaluated or outputs acknowledged (0: none yet). `/healthz` judges it.
    pub last_progress: prometheus::Gauge,
    /// RocksDB: bytes compaction still has to rewrite (all column families).
    pub pending_compaction_bytes: IntGauge,
    /// RocksDB: the rate writes are slowed to (bytes/s; 0 when not stalled).
    pub delayed_write_rate: IntGauge,
    /// RocksDB: 1 while writes are stopped.
    pub write_stopped: IntGauge,
    /// RocksDB: bytes of the block cache in use.
    pub block_cache_bytes: IntGauge,
    /// Events held in the reorder buffer.
    pub held_events: IntGauge,
    /// Correlators with deadlines before the watermark left for the next steps.
    pub deadline_backlog: IntGauge,
    /// Partitions paused because too many events are held (backpressure).
    pub paused_partitions: IntGauge,
    /// Records committed to the outbox and not yet delivered.
    pub outbox_pending: IntGauge,
    /// Partitions paused until the schema registry can be asked again.
    pub registry_waits: IntGauge,
    /// 1 while the state directory takes writes; 0 while it does not (a full disk):
    /// consumption is paused until it does again.
    pub store_writable: IntGauge,
    /// Partitions whose offsets went backwards (the broker lost its log).
    pub offset_resets: IntCounter,
    /// HTTP requests refused for a missing or wrong bearer token.
    pub unauthorized: IntCounter,
    /// Seconds a store commit took.
    pub commit_seconds: Histogram,
    /// Source partitions this instance owns now, by topic (`[kafka] assignment = "group"`).
    pub assigned_partitions: prometheus::IntGaugeVec,
    /// Partitions assigned to and revoked from this instance by the group.
    pub rebalances: IntCounterVec,
    /// Lineage trees moved between state shards (`out` of this instance's, `in`).
    pub tree_moves: IntCounterVec,
    /// State shards still catching up on records consumed before they came here.
    pub restoring_shards: IntGauge,
    /// Records the restoring shards still have to read.
    pub restore_lag: IntGauge,
    /// Seconds a shard took to catch up after it was assigned.
    pub restore_seconds: Histogram,
    /// `[[notify]]`: alerts a sink's receiver took, by sink.
    pub notify_delivered: IntCounterVec,
    /// `[[notify]]`: requests to try again (5xx, 429, 408, no answer), by sink.
    pub notify_retried: IntCounterVec,
    /// `[[notify]]`: alerts a receiver refused for good (other 4xx), sent to the
    /// dead-letter topic, by sink.
    pub notify_failed: IntCounterVec,
    /// `[[notify]]`: alerts dropped, oldest first, past a sink's `max_backlog`, by sink.
    pub notify_dropped: IntCounterVec,
    /// `[[notify]]`: alerts waiting for a sink, by sink.
    pub notify_backlog: prometheus::IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let counter = |name: &str, help: &str| register(&registry, IntCounter::new(name, help));
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                prometheus::IntGaugeVec::new(Opts::new(name, help), labels),
            )
        };
        let gauge = |name: &str, help: &str| register(&registry, IntGauge::new(name, help));
        let echo_latency = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "lockstep_echo_latency_seconds",
                "Revocation to echo (on time or late), by system",
            )
            .buckets(vec![
                60.0,
                300.0,
                900.0,
                1800.0,
                3600.0,
                4.0 * 3600.0,
                24.0 * 3600.0,
            ]),
            &["system"],
        );
        let echo_latency = register(&registry, echo_latency);
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new("lockstep_commit_seconds", "RocksDB write batch commit time")
                .buckets(prometheus::exponential_buckets(0.0001, 4.0, 8).expect("valid buckets")),
        );
        let commit_seconds = register(&registry, commit_seconds);
        let restore_seconds = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "lockstep_restore_seconds",
                    "Time a state shard took to catch up after it was assigned",
                )
                .buckets(prometheus::exponential_buckets(0.1, 4.0, 8).expect("valid buckets")),
            ),
        );
        let build_info = register(
            &registry,
            prometheus::IntGaugeVec::new(
                Opts::new("lockstep_build_info", "The running build (value 1)"),
                &["version"],
            ),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        let metrics = Metrics {
            events: counter_vec(
                "lockstep_events_total",
                "Events decoded",
                &["system", "topic", "outcome"],
            ),
            cases: gauge_vec("lockstep_cases", "Cases by state", &["state"]),
            store_bytes: gauge(
                "lockstep_store_bytes",
                "RocksDB state size (SST files and memtables)",
            ),
            consumer_lag: gauge_vec(
                "lockstep_consumer_lag_records",
                "Records on the broker not yet consumed",
                &["topic", "partition"],
            ),
            late_events: counter(
                "lockstep_late_events_total",
                "Events behind the watermark, applied",
            ),
            redeliveries: counter("lockstep_redeliveries_total", "Redelivered events dropped"),
            dead_letters: counter_vec(
                "lockstep_dead_letters_total",
                "Undecodable records",
                &["topic"],
            ),
            skipped_records: counter_vec(
                "lockstep_skipped_records_total",
                "Native records of a type the format does not cover",
                &["topic"],
            ),
            alerts: counter_vec("lockstep_alerts_total", "Alerts raised", &["kind"]),
            echo_latency,
            watermark_lag: register(
                &registry,
                prometheus::Gauge::new(
                    "lockstep_watermark_lag_seconds",
                    "Wall clock minus the stream watermark",
                ),
            ),
            ready: gauge(
                "lockstep_ready",
                "1 while /readyz says ready: assigned, outbox resent, every shard caught up",
            ),
            last_progress: register(
                &registry,
                prometheus::Gauge::new(
                    "lockstep_last_progress_timestamp_seconds",
                    "Unix time the pipeline last consumed, applied, evaluated a deadline or had an output acknowledged",
                ),
            ),
            pending_compaction_bytes: gauge(
                "lockstep_rocksdb_pending_compaction_bytes",
                "Bytes RocksDB compaction still has to rewrite",
            ),
            delayed_write_rate: gauge(
                "lockstep_rocksdb_delayed_write_rate_bytes",
                "Rate RocksDB slows writes to while stalling (0: not stalled)",
            ),
            write_stopped: gauge(
                "lockstep_rocksdb_write_stopped",
                "1 while RocksDB has stopped writes",
            ),
            block_cache_bytes: gauge(
                "lockstep_rocksdb_block_cache_bytes",
                "Bytes of RocksDB's block cache in use",
            ),
            held_events: gauge("lockstep_held_events", "Events in the reorder buffer"),
            deadline_backlog: gauge(
                "lockstep_deadline_backlog",
                "Correlators (shards) with deadlines before the watermark left for the next steps (a step evaluates at most 20,000)",
            ),
            paused_partitions: gauge(
                "lockstep_paused_partitions",
                "Partitions paused while the reorder buffer is over max_held_events",
            ),
            outbox_pending: gauge(
                "lockstep_outbox_pending",
                "Outputs committed, not yet delivered",
            ),
            registry_waits: gauge(
                "lockstep_registry_waiting_partitions",
                "Partitions paused at a record whose schema the registry cannot give now (down, slow, 5xx)",
            ),
            store_writable: gauge(
                "lockstep_store_writable",
                "1 while the state directory takes writes, 0 while consumption is paused because it does not (a full disk)",
            ),
            offset_resets: counter(
                "lockstep_offset_resets_total",
                "Partitions whose offsets went backwards",
            ),
            unauthorized: counter(
                "lockstep_api_unauthorized_total",
                "Requests refused for a bad token",
            ),
            commit_seconds,
            assigned_partitions: gauge_vec(
                "lockstep_assigned_partitions",
                "Source partitions this instance owns now",
                &["topic"],
            ),
            rebalances: counter_vec(
                "lockstep_rebalances_total",
                "Partitions assigned to and revoked from this instance by the group",
                &["change"],
            ),
            tree_moves: counter_vec(
                "lockstep_tree_moves_total",
                "Lineage trees moved between state shards, by direction (out, in)",
                &["direction"],
            ),
            restoring_shards: gauge(
                "lockstep_restoring_shards",
                "State shards still catching up after they were assigned",
            ),
            restore_lag: gauge(
                "lockstep_restore_lag_records",
                "Records the restoring state shards still have to read",
            ),
            restore_seconds,
            notify_delivered: counter_vec(
                "lockstep_notify_delivered_total",
                "Alerts a [[notify]] receiver took",
                &["sink"],
            ),
            notify_retried: counter_vec(
                "lockstep_notify_retried_total",
                "[[notify]] requests to try again (5xx, 429, 408, no answer)",
                &["sink"],
            ),
            notify_failed: counter_vec(
                "lockstep_notify_failed_total",
                "Alerts a [[notify]] receiver refused for good, sent to the dead-letter topic",
                &["sink"],
            ),
            notify_dropped: counter_vec(
                "lockstep_notify_dropped_total",
                "Alerts dropped, oldest first, past a [[notify]] sink's max_backlog",
                &["sink"],
            ),
            notify_backlog: gauge_vec(
                "lockstep_notify_backlog",
                "Alerts waiting for a [[notify]] sink",
                &["sink"],
            ),
            registry,
        };
        metrics.store_writable.set(1);
        metrics
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Registers a metric built from constant names and options: both can only fail on a
/// programming error (an invalid or duplicate name), which the tests catch.
fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<C>,
) -> C {
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
