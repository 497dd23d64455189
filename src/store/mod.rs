//! The RocksDB store: one column family per table, every change of one step committed
//! in a single `WriteBatch` so a crash leaves either all of it or none.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `entities` | entity | per-system state, the cases rooted there, hygiene clocks, rotation round and registration mark |
//! | `lineage`  | entity | parent, children, a jump towards the tree's top; at a top, the tree's case count |
//! | `cases`    | case id | the case and its per-system obligations |
//! | `timers`   | (deadline, case id, system), (deadline, rotated_at, entity), (deadline, first_seen, entity) or (deadline, hygiene rule, entity) | — scanned in deadline order |
//! | `watches`  | entity \0 system | cases waiting for that echo (`echo_late`) |
//! | `seen`     | system event_id | — (redelivery filter) |
//! | `alerts`   | alert id | the alert as canonical JSON |
//! | `meta`     | name | the layout and the processing clock |
//! | `positions`| topic \0 partition | the next offset to consume, and the last record consumed |
//! | `outbox`   | sequence | a record to produce, removed once delivered |
//! | `history`  | entity \0 time system event_id | what the event did (the entity's timeline) |
//! | `alert_times` | at alert_id | — (alerts in time order) |
//!
//! The entity and lineage rows are read from the in-memory index (`index`: compact
//! ids in `ids`, rows in `packed`), loaded at open; RocksDB holds their durable copy,
//! written in the same batch as everything else. The seams: `open` (options, layout,
//! damaged directories), `rows` (the entity and lineage questions of the correlator),
//! `prefetch`, `outbox` (positions and records to produce), `family` (the column
//! families), `worker` (the threads that write batches and read prefetches), and here
//! the store itself, the other tables and the commit.
//! [`view::StateView`] reads the committed state for the API and the CLI, beside a
//! running correlator or from a state directory opened read-only.

pub mod budget;
mod codec;
mod family;
mod id_table;
mod ids;
mod index;
mod key_filter;
pub mod keys;
mod open;
mod outbox;
mod packed;
mod paged;
mod prefetch;
mod rows;
mod seen;
mod table;
mod timers;
pub mod tree;
pub mod view;
mod worker;

use std::sync::Arc;

use rocksdb::{WriteBatch, DB};
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::error::StoreError;
use crate::event::{IdentityEvent, System};
use crate::model::case::Case;
use crate::model::entity::{EchoState, EntityRow};
use crate::time::Micros;
pub use budget::MemoryBudget;
use family::Family;
use index::Index;
use keys::TimerKey;
pub use open::has_room;
use open::{other_layout, stored_layout, FORMAT};
use outbox::outbox_seq;
pub use outbox::{OutboxRecord, Position};
use seen::Seen;
use table::Staged;
use table::Table;
use worker::Worker;

/// The cache of the positions table: one small entry per source partition.
const POSITIONS_CACHE: usize = 1 << 20;
const CLOCK_KEY: &[u8] = b"clock";
/// The batches a temporary store's last commit writes its cases and alerts in.
const WRITE_OUT_BATCH: usize = 4 << 20;

/// The correlator's durable state.
pub struct Store {
    db: Arc<DB>,
    budget: MemoryBudget,
    /// RocksDB's block cache, which gives way to the index as the tables' caches do, and
    /// its capacity.
    block_cache: (rocksdb::Cache, usize),
    /// Whether the store outlives the process (a state directory) and each commit must
    /// leave it complete; a temporary store only needs to be complete when read.
    durable: bool,
    /// Writes the batch of the last commit.
    writing: Worker<Result<(), StoreError>>,
    /// Reads a prefetch ([`Store::start_prefetch`]).
    reading: Worker<Result<seen::Fetched, StoreError>>,
    /// How many keys the last prefetch read.
    last_reads: usize,
    _temp: Option<tempfile::TempDir>,
    index: Index,
    cases: Table<Case>,
    watches: Table<Vec<String>>,
    seen: Seen,
    alerts: Table<String>,
    clock: Micros,
    clock_dirty: bool,
    positions: Table<Position>,
    outbox: Table<OutboxRecord>,
    outbox_next: u64,
    timers: timers::Timers,
    appended: Vec<(Family, Vec<u8>, Vec<u8>)>,
}

/// One line of an entity's timeline: an applied event, as the `history` column family
/// keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The event's id.
    pub event_id: String,
    /// The system that recorded it.
    pub system: System,
    /// Its time.
    pub time: Micros,
    /// What happened.
    pub action: crate::event::Action,
    /// Whether it took effect.
    pub outcome: crate::event::Outcome,
    /// Who did it.
    pub actor: Option<String>,
}

impl Store {
    /// How many rows were read from RocksDB because the caches held nothing for them
    /// (case, watch and alert rows; a row not there counts too: entity and lineage rows
    /// are all in the index).
    pub fn row_reads(&self) -> u64 {
        self.cases.misses() + self.watches.misses() + self.alerts.misses()
    }

    /// How many entities its index holds.
    pub fn indexed(&self) -> usize {
        self.index.len()
    }

    /// The bytes its index holds.
    pub fn index_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    /// The memory budget it was opened with.
    pub fn budget(&self) -> MemoryBudget {
        self.budget
    }

    /// The case with id `id`.
    pub fn case(&mut self, id: &str) -> Result<Option<Case>, StoreError> {
        self.cases.get(&self.db, id.as_bytes())
    }

    /// Stores a case under its id.
    pub fn put_case(&mut self, case: Case) {
        let key = case.id.clone();
        self.cases.put(key.as_bytes(), case);
    }

    /// The cases waiting for `entity` to be revoked in `system`.
    pub fn watches(&mut self, entity: &str, system: System) -> Result<Vec<String>, StoreError> {
        let key = keys::entity_system(entity, system);
        Ok(self.watches.get(&self.db, &key)?.unwrap_or_default())
    }

    /// Replaces the watches on (`entity`, `system`).
    pub fn put_watches(&mut self, entity: &str, system: System, cases: Vec<String>) {
        let key = keys::entity_system(entity, system);
        if cases.is_empty() {
            self.watches.delete(&key);
        } else {
            self.watches.put(&key, cases);
        }
    }

    /// Records (`system`, `event_id`) as processed; false when it already was (a
    /// redelivery).
    pub fn mark_seen(&mut self, system: System, event_id: &str) -> Result<bool, StoreError> {
        self.seen.mark(&self.db, keys::seen(system, event_id))
    }

    /// Whether an alert with this id was raised before.
    pub fn alert_raised(&mut self, alert_id: &str) -> Result<bool, StoreError> {
        self.alerts.contains(&self.db, alert_id.as_bytes())
    }

    /// Records a raised alert.
    pub fn record_alert(&mut self, alert: &Alert) -> Result<(), StoreError> {
        let mut json = serde_json::to_string(alert).map_err(|e| StoreError::Corrupt {
            cf: Family::Alerts.name(),
            message: e.to_string(),
        })?;
        // The cache weighs the text, not the buffer it grew in (a 526-byte alert in 1 KiB).
        json.shrink_to_fit();
        self.alerts.put(alert.alert_id.as_bytes(), json);
        self.appended.push((
            Family::AlertTimes,
            keys::alert_time(alert.at, &alert.alert_id),
            Vec::new(),
        ));
        Ok(())
    }

    /// Adds an applied event to its entity's timeline (of a store that outlives the
    /// process: nothing reads a temporary store's timelines).
    pub fn record_history(&mut self, ev: &IdentityEvent) -> Result<(), StoreError> {
        if !self.durable {
            return Ok(());
        }
        let entry = HistoryEntry {
            event_id: ev.event_id.clone(),
            system: ev.system,
            time: ev.time,
            action: ev.action,
            outcome: ev.outcome,
            actor: ev.actor.clone(),
        };
        let bytes = codec::encode(&entry).map_err(|e| StoreError::Corrupt {
            cf: Family::History.name(),
            message: e.to_string(),
        })?;
        self.appended
            .push((Family::History, keys::history(ev), bytes));
        Ok(())
    }

    /// Schedules a deadline.
    pub fn add_timer(&mut self, timer: TimerKey) {
        self.timers.add(timer);
    }

    /// Removes and returns the earliest timer due before `limit` (or at it, if
    /// `inclusive`), reading the next timers from RocksDB when memory holds none.
    pub fn pop_due_timer(
        &mut self,
        limit: Micros,
        inclusive: bool,
    ) -> Result<Option<TimerKey>, StoreError> {
        if self.timers.needs_load() {
            self.wait()?;
            self.timers.load(&self.db)?;
        }
        Ok(self.timers.pop_due(limit, inclusive))
    }

    /// How many deadlines are scheduled (commits first).
    pub fn pending_timers(&mut self) -> Result<u64, StoreError> {
        self.commit()?;
        timers::Timers::count(&self.db)
    }

    /// The largest event time processed so far.
    pub fn clock(&self) -> Micros {
        self.clock
    }

    /// Records the largest event time processed so far.
    pub fn set_clock(&mut self, t: Micros) {
        self.clock = t;
        self.clock_dirty = true;
    }

    /// Writes every pending change in one atomic `WriteBatch` (a temporary store: what a
    /// [`view::StateView`] of it reads). An error is fatal for the run: nothing of the
    /// failed batch was written.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if !self.durable {
            // Nothing reopens the store, so nothing needs the batch to be one: the rows
            // a view reads (cases, alerts) kept back in memory are written a few MiB at
            // a time and leave the caches as they go: no batch holds a second copy of
            // them all (at 1.3M identities, 63 MiB) while the caches still hold the first.
            // Entity and lineage rows are in the index, watch rows are read only
            // through their cache: they stay there while they fit.
            self.wait()?;
            let db = Arc::clone(&self.db);
            for table in [&mut self.cases as &mut dyn Staged, &mut self.alerts] {
                table.write_out(&db, WRITE_OUT_BATCH)?;
            }
        }
        self.write(self.durable)?;
        self.wait()
    }

    /// Stages every pending change in one `WriteBatch` and writes it on another thread,
    /// so that correlation goes on meanwhile (replay). Reads stay consistent: the cache
    /// keeps every staged value until the write has finished. The next commit, or
    /// [`Store::wait`], waits for it. A temporary store writes only the rows its caches
    /// have no room for (and every case and alert at [`Store::commit`]).
    pub fn commit_in_background(&mut self) -> Result<(), StoreError> {
        self.write(self.durable)
    }

    /// Starts writing the pending changes: all of them, or (`everything` false) those
    /// that do not fit in memory.
    fn write(&mut self, everything: bool) -> Result<(), StoreError> {
        self.wait()?;
        let mut batch = WriteBatch::default();
        self.stage(&mut batch, everything)?;
        let (marks, timers) = (self.seen.stage(), self.timers.stage());
        let (db, durable) = (Arc::clone(&self.db), self.durable);
        self.writing.start(move || {
            marks.put(&db, &mut batch)?;
            timers.put(&db, &mut batch)?;
            Ok(write(&db, batch, durable)?)
        })
    }

    /// Whether no batch is being written (then [`Store::wait`] returns at once).
    pub fn write_done(&self) -> bool {
        self.writing.is_finished()
    }

    /// Waits for the batch being written, if any; then trims the caches.
    pub fn wait(&mut self) -> Result<(), StoreError> {
        if let Some(written) = self.writing.wait()? {
            written?;
        }
        let index = self.index.heap_bytes();
        self.cases
            .set_budget(self.budget.table_beside(Family::Cases, index));
        self.watches
            .set_budget(self.budget.table_beside(Family::Watches, index));
        self.alerts
            .set_budget(self.budget.table_beside(Family::Alerts, index));
        self.size_block_cache(index);
        for table in self.tables() {
            table.evict_if_over_budget();
        }
        self.seen.written();
        self.positions.evict_if_over_budget();
        self.outbox.evict_if_over_budget();
        Ok(())
    }

    /// Sizes the block cache for an index of `index` bytes (see
    /// [`MemoryBudget::block_cache_beside`]).
    fn size_block_cache(&mut self, index: usize) {
        let capacity = self.budget.block_cache_beside(index);
        if capacity != self.block_cache.1 {
            self.block_cache.1 = capacity;
            self.block_cache.0.set_capacity(capacity);
        }
    }

    /// Moves the pending changes into `batch`: all (afterwards nothing is pending), or
    /// (`everything` false) the appended rows and the rows of the tables over their
    /// budgets. The redelivery marks and timers are put into it by the thread that
    /// writes it ([`Store::write`]).
    fn stage(&mut self, batch: &mut WriteBatch, everything: bool) -> Result<(), StoreError> {
        let db = Arc::clone(&self.db);
        if everything {
            self.index.stage(&db, batch)?;
        }
        for table in self.tables() {
            if everything {
                table.stage(&db, batch)?;
            } else {
                table.spill(&db, batch)?;
            }
        }
        let db = &self.db;
        if self.clock_dirty {
            let bytes = codec::encode(&self.clock).map_err(|e| StoreError::Corrupt {
                cf: Family::Meta.name(),
                message: e.to_string(),
            })?;
            batch.put_cf(Family::Meta.handle(db)?, CLOCK_KEY, bytes);
            self.clock_dirty = false;
        }
        self.positions.stage(db, batch)?;
        self.outbox.stage(db, batch)?;
        // In key order: RocksDB's memtable inserts sorted keys far faster.
        self.appended.sort_unstable();
        for (cf, key, value) in self.appended.drain(..) {
            batch.put_cf(cf.handle(db)?, key, value);
        }
        Ok(())
    }

    /// The tables of the correlator's rows, whose caches share the memory budget.
    fn tables(&mut self) -> [&mut dyn Staged; 3] {
        [&mut self.cases, &mut self.watches, &mut self.alerts]
    }

    /// Writes the entity and lineage rows a temporary store keeps only in its index, a
    /// few MiB at a time, so that a view reads every entity (a report's inventory); a
    /// store that outlives the process has them written already.
    pub fn write_out_rows(&mut self) -> Result<(), StoreError> {
        if self.durable {
            return Ok(());
        }
        self.wait()?;
        self.index.write_out(&self.db, WRITE_OUT_BATCH)
    }

    /// A read-only view of the committed state, for the API beside a running pipeline
    /// (of a temporary store: its cases and alerts, and its rows after
    /// [`Store::write_out_rows`]).
    pub fn view(&self) -> view::StateView {
        view::StateView::new(Arc::clone(&self.db))
    }
}

/// Writes `batch`: through the write-ahead log only for a store that outlives the process
/// (`durable`) — a temporary store is never recovered.
fn write(db: &DB, batch: WriteBatch, durable: bool) -> Result<(), rocksdb::Error> {
    if durable {
        db.write(batch)
    } else {
        db.write_without_wal(batch)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.reading.wait();
        if let Err(e) = self.wait() {
            tracing::error!(error = %e, "the last write batch failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_id_is_new_once_whether_marked_now_being_written_durable_or_prefetched() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        assert!(store.mark_seen(System::Iam, "e1").unwrap());
        assert!(!store.mark_seen(System::Iam, "e1").unwrap(), "same batch");
        assert!(
            store.mark_seen(System::Vault, "e1").unwrap(),
            "another system"
        );
        store.commit_in_background().unwrap();
        assert!(
            !store.mark_seen(System::Iam, "e1").unwrap(),
            "being written"
        );
        store.wait().unwrap();
        assert!(!store.mark_seen(System::Iam, "e1").unwrap(), "durable");
        let ev = |id: &str| IdentityEvent {
            event_id: id.into(),
            system: System::Iam,
            source: "test".into(),
            time: Micros(1),
            entity: "sa".into(),
            entity_kind: crate::event::EntityKind::ServiceAccount,
            action: crate::event::Action::Used,
            outcome: crate::event::Outcome::Success,
            parent: None,
            actor: None,
            attributes: Default::default(),
        };
        let batch = [ev("e1"), ev("e2"), ev("e2")];
        store.prefetch(&batch).unwrap();
        assert!(
            !store.mark_seen(System::Iam, "e1").unwrap(),
            "prefetched, known"
        );
        assert!(
            store.mark_seen(System::Iam, "e2").unwrap(),
            "prefetched, new"
        );
        assert!(!store.mark_seen(System::Iam, "e2").unwrap(), "its repeat");
        store.commit().unwrap();
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        for id in ["e1", "e2"] {
            assert!(
                !store.mark_seen(System::Iam, id).unwrap(),
                "{id} after reopening"
            );
        }
        assert!(store.mark_seen(System::Iam, "e3").unwrap());
        // Read on another thread before it was marked and written: that answer is stale.
        store.start_prefetch(&[ev("e4")]).unwrap();
        assert!(store.mark_seen(System::Iam, "e4").unwrap());
        store.commit().unwrap();
        store.finish_prefetch().unwrap();
        assert!(
            !store.mark_seen(System::Iam, "e4").unwrap(),
            "prefetched before it was written"
        );
    }

    #[test]
    fn a_tree_top_is_found_by_jumps_and_carries_the_tree_case_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        // Grown downwards (each new credential under the last) and upwards (each new
        // entity becomes the parent of the old top).
        for i in 1..200 {
            store
                .link(&format!("n{i}"), &format!("n{}", i - 1))
                .unwrap();
            store
                .link(&format!("m{}", 200 - i), &format!("m{}", 199 - i))
                .unwrap();
        }
        assert_eq!(store.top("n199").unwrap(), "n0");
        assert_eq!(store.top("m199").unwrap(), "m0");
        assert_eq!(store.top("n0").unwrap(), "n0");
        assert_eq!(store.top("elsewhere").unwrap(), "elsewhere");
        // After one walk every entity passed jumps straight to the top.
        for i in 0..199 {
            let row = store
                .index
                .id(&format!("m{i}"))
                .and_then(|id| store.index.lineage_row(id));
            let next = row.and_then(|r| r.jump.or(r.parent));
            assert!(i == 0 || next.as_deref() == Some("m0"), "m{i}: {next:?}");
        }
        store.count_tree_case("m120").unwrap();
        assert!(store.tree_had_cases("m0").unwrap());
        assert!(store.tree_had_cases("m199").unwrap());
        assert!(!store.tree_had_cases("n0").unwrap());
        assert!(!store.tree_had_cases("n77").unwrap());
        // A tree that gains a parent brings its count to the new top.
        store.link("m0", "n150").unwrap();
        assert_eq!(store.top("m199").unwrap(), "n0");
        store.commit().unwrap();
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        assert!(store.tree_had_cases("n0").unwrap());
        assert!(
            store.tree_had_cases("n77").unwrap(),
            "the count moved to n0"
        );
        let m0 = store
            .index
            .lineage_row(store.index.id("m0").unwrap())
            .unwrap();
        assert_eq!(m0.tree_cases, 0, "m0 is no longer a top");
        assert_eq!(store.top("m7").unwrap(), "n0");
    }
}
