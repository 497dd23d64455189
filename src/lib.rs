//! lockstep — an event-streaming audit correlator for non-human identities.
//!
//! It consumes the change events of the four systems that make up an identity's
//! lifecycle (IAM, the secrets vault, MDM, the SIEM), keeps their joint state in RocksDB,
//! and alerts when a revocation in one system is not echoed by the others within their
//! SLA, or when a revoked credential is used, re-activated, or its revocation fails; and
//! when credentials outlive their rotation or go unused (hygiene), when a rotation is not
//! followed by every holder or an identity is unknown to the system of record
//! (consistency). The exact semantics are SPEC.md §4, §4b and §4c.
//!
//! The flow, and where each stage lives:
//!
//! ```text
//! source (files: source::file; Kafka: source::kafka)
//!   →  decode (decode::json, decode::avro, decode::container; decode::registry for
//!      Confluent-framed Avro) or adapt (adapter::*: native formats)
//!   →  order (correlate::reorder: reorder buffer bounded by allowed_lateness)
//!   →  correlate (correlate: lineage, per-(entity, system) state, cases, timers;
//!      correlate::hygiene: rotation and dormancy clocks; correlate::consistency:
//!      rotation rounds and registration deadlines)
//!   →  commit (store: one RocksDB WriteBatch per step — a replay's temporary store
//!      writes only the rows its caches have no room for; store::timers: deadlines in
//!      RocksDB with a window in memory)
//!   →  outputs (alert: canonical alerts; sink: Kafka, OCSF; replay: alerts read back
//!      from the store an instant at a time, in output order; report: evidence reports;
//!      notify: webhook, Slack, PagerDuty, Splunk HEC, Elasticsearch from the outbox)
//!
//! The records correlate changes and store keeps: model (model::case: cases and their
//! obligations; model::entity: per-entity state, hygiene clocks and lineage rows;
//! model::round: rotation rounds and registration marks).
//!
//! Live (live, `lockstep run`): one instance assigns itself every source partition — a
//! core polls, orders, correlates and commits each step, its outputs leaving through the
//! outbox (sink::kafka) once durable. A group (live::group, SPEC §7) shares state shards:
//! with topics keyed by root, partition p of every source topic is shard p; keyed by
//! entity, the router (repartition::Router, beside shard 0) reads every source partition,
//! keeps the lineage directory and routes each event by its root to the repartition
//! topic, whose partition p is shard p (live::routes: trees that gain a parent move
//! between shards). A core's role is one of Correlate, Route or Shard (live::Role);
//! correlate knows nothing of routing. Both modes run on one loop (live::driver: a
//! live::instance or a live::group member is a Mode; the loop polls, hands records
//! over, settles, and replaces a consumer that lost the broker or keeps failing).
//!
//! Reading the state: store::view (committed state) → api (HTTP /v1, OpenAPI) and the
//! CLI's `lineage` / `cases` (lineage: tree, dot, mermaid; client: `--api` mode and the
//! registry's HTTP). Configuration: config (config::env: `${VAR}` and redaction;
//! config::show: the effective configuration).
//! ```
//!
//! Invariants: results equal processing events one by one in (`time`, `event_id`) order
//! after dropping redeliveries; a deadline `d` is evaluated after every event with
//! `time <= d` and before any later one; the correlator is deterministic, so replay and
//! live mode give the same alerts; data never panics the process — an undecodable record
//! becomes a dead letter with its reason.

pub mod adapter;
pub mod alert;
pub mod api;
pub mod client;
pub mod config;
pub mod correlate;
pub mod decode;
pub mod error;
pub mod event;
pub mod lineage;
pub mod live;
pub mod model;
pub mod notify;
pub mod repartition;
pub mod replay;
pub mod report;
pub mod simulate;
pub mod sink;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod tls;
mod varint;
