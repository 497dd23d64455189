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
//! The entity and lineage rows are read from the in-memory [`index`], loaded at open;
//! RocksDB holds their durable copy, written in the same batch as everything else.
//! [`view::StateView`] reads the committed state for the API and the CLI, beside a
//! running correlator or from a state directory opened read-only.

pub mod budget;
mod codec;
mod ids;
mod index;
mod key_filter;
pub mod keys;
mod packed;
mod paged;
mod seen;
mod table;
mod timers;
pub mod tree;
pub mod view;

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, DB,
};
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::error::StoreError;
use crate::event::{IdentityEvent, System};
use crate::model::case::Case;
use crate::model::entity::{Clocks, EchoState, EntityRow};
use crate::time::Micros;
pub use budget::MemoryBudget;
use index::Index;
use keys::TimerKey;
use seen::Seen;
use table::Staged;
use table::Table;

/// The memtable of `meta` (the clock log's records): flushed on its own when full.
const META_BUFFER: usize = 4 << 20;
/// The cache of the positions table: one small entry per source partition.
const POSITIONS_CACHE: usize = 1 << 20;
const COLUMN_FAMILIES: [&str; 12] = [
    "entities",
    "lineage",
    "cases",
    "timers",
    "watches",
    "seen",
    "alerts",
    "meta",
    "positions",
    "outbox",
    "history",
    "alert_times",
];
/// Column families written by appending and read only by scans.
const APPEND_ONLY: [&str; 2] = ["history", "alert_times"];
const CLOCK_KEY: &[u8] = b"clock";
/// The batches a temporary store's last commit writes its cases and alerts in.
const WRITE_OUT_BATCH: usize = 4 << 20;
/// The keys a prefetch must read for a reader thread to pay (while the state fits the
/// caches, a few).
const READS_WORTH_A_THREAD: usize = 256;
const FORMAT_KEY: &[u8] = b"format";
/// The layout of the values; a state directory of another layout is refused at open.
/// 2: entity rows carry when each system's state changed and the entity's kind; the
/// history and alert_times column families. 3: hygiene clocks in entity rows and
/// hygiene timers (SPEC §4b); values in varint bincode ([`codec`]). 4: lineage rows
/// carry a jump towards the top of their tree and, at the top, the tree's case count.
/// 5: outbox records may name their partition (the repartition topic, SPEC §7). 6: the
/// log of held hygiene clocks in `meta` (`clock_log`). 7: entity rows carry the kind of
/// the latest success event, the registration mark and the rotation round of SPEC §4c;
/// rotation and registration timers sort between echo and hygiene timers. A layout 6
/// directory cannot be read (its rows lack those fields): it is refused with the
/// message to replay into a new directory. 8: entity rows carry when the entity was
/// first seen and who created it (the inventory); layout 7 rows lack them and are
/// refused the same way. 9: no log of held hygiene clocks in `meta` (the in-memory
/// index holds every row; a changed row is written at the next commit).
const FORMAT: u32 = 9;

/// The correlator's durable state.
pub struct Store {
    db: Arc<DB>,
    budget: MemoryBudget,
    /// Whether the store outlives the process (a state directory) and each commit must
    /// leave it complete; a temporary store only needs to be complete when read.
    durable: bool,
    writing: Option<JoinHandle<Result<(), rocksdb::Error>>>,
    /// The prefetch being read ([`Store::start_prefetch`]).
    reading: Option<JoinHandle<Result<seen::Fetched, StoreError>>>,
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
    appended: Vec<(&'static str, Vec<u8>, Vec<u8>)>,
}

/// What a prefetch reads: the redelivery marks only RocksDB can answer for, with the
/// count the cache's answers are told apart by ([`seen::Fetched`]).
struct Reads {
    seen: (Vec<Vec<u8>>, u64),
}

impl Reads {
    /// Reads them (on any thread).
    fn read(self, db: &DB) -> Result<seen::Fetched, StoreError> {
        seen::fetch(db, self.seen.0, self.seen.1)
    }
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
    /// Opens (creating if needed) the store in `dir`, with the default memory budget.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, MemoryBudget::DEFAULT)
    }

    /// Opens (creating if needed) the store in `dir`, holding about `budget` in memory.
    pub fn open_with(dir: &Path, budget: MemoryBudget) -> Result<Store, StoreError> {
        Store::open_in(dir, budget, true)
    }

    /// Opens the store in `dir`; one not `durable` is never reopened.
    fn open_in(dir: &Path, budget: MemoryBudget, durable: bool) -> Result<Store, StoreError> {
        check_directory(dir)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        // In-place memtable updates (entities, below) need single-writer memtable inserts,
        // which is how the store writes anyway: one batch at a time.
        opts.set_allow_concurrent_memtable_write(false);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // The memtables of all column families share one budget: past it, the largest
        // is flushed.
        opts.set_db_write_buffer_size(budget.memtables());
        let write_buffer = (budget.memtables() / 4).min(64 << 20);
        let cache = Cache::new_lru_cache(budget.block_cache());
        let descriptors = COLUMN_FAMILIES.iter().map(|name| {
            let mut table = BlockBasedOptions::default();
            table.set_bloom_filter(10.0, false);
            table.set_block_cache(&cache);
            let mut cf_opts = Options::default();
            cf_opts.set_block_based_table_factory(&table);
            // `meta` holds a few keys and the clock log's records, which would otherwise
            // grow its memtable until the shared budget flushes every family's.
            cf_opts.set_write_buffer_size(if *name == "meta" {
                write_buffer.min(META_BUFFER)
            } else {
                write_buffer
            });
            // Most point reads of a replay miss (a new event id, a new entity): a memtable
            // bloom filter answers those without walking the skip list. The append-only
            // families are only scanned, and are written without one.
            if !APPEND_ONLY.contains(name) {
                cf_opts.set_memtable_prefix_bloom_ratio(0.1);
                cf_opts.set_memtable_whole_key_filtering(true);
            }
            // An entity row is rewritten whenever a busy key is used (its hygiene clock):
            // a row already in the memtable, no larger than before, is overwritten where
            // it is instead of adding a skip-list node per rewrite.
            if *name == "entities" {
                cf_opts.set_inplace_update_support(true);
            }
            // The clock log's records are written once and deleted soon: not worth
            // compressing (LZ4 on them cost more than writing them).
            cf_opts.set_compression_type(if *name == "meta" {
                rocksdb::DBCompressionType::None
            } else {
                rocksdb::DBCompressionType::Lz4
            });
            ColumnFamilyDescriptor::new(*name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, dir, descriptors)?;
        let meta = table::cf(&db, "meta")?;
        let clock = match db.get_pinned_cf(meta, CLOCK_KEY)? {
            Some(bytes) => codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                cf: "meta",
                message: e.to_string(),
            })?,
            None => Micros::MIN,
        };
        let layout = stored_layout(&db)?;
        // A store without a layout or a clock was never written: every key on disk will
        // be one this process wrote.
        let created = layout.is_none() && clock == Micros::MIN;
        match layout {
            Some(FORMAT) => {}
            None if clock == Micros::MIN => db.put_cf(meta, FORMAT_KEY, FORMAT.to_be_bytes())?,
            other => return Err(other_layout(dir, other)),
        }
        let index = Index::load(&db, durable)?;
        let outbox_next = match db
            .iterator_cf(table::cf(&db, "outbox")?, IteratorMode::End)
            .next()
        {
            Some(item) => outbox_seq(&item?.0)? + 1,
            None => 0,
        };
        let mut store = Store {
            db: Arc::new(db),
            budget,
            durable,
            writing: None,
            reading: None,
            last_reads: 0,
            _temp: None,
            index,
            cases: Table::new("cases", budget.table("cases")),
            watches: Table::new("watches", budget.table("watches")),
            seen: Seen::default(),
            alerts: Table::new("alerts", budget.table("alerts")),
            clock,
            clock_dirty: false,
            positions: Table::new("positions", POSITIONS_CACHE),
            outbox: Table::new("outbox", 0),
            outbox_next,
            timers: timers::Timers::new(),
            appended: Vec::new(),
        };
        if created {
            store.watches.filter_written(budget.key_filter("watches"));
            store.seen.filter_written(budget.key_filter("seen"));
        }
        Ok(store)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        self.db.path()
    }
}

/// Whether directory `dir` takes `bytes` more now: a file of that size written, synced
/// and removed. (RocksDB itself, once a write failed for want of space, refuses every
/// write until it is reopened: this build cannot `Resume` it.)
pub fn has_room(dir: &Path, bytes: usize) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join("room-probe");
    let written = std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&vec![0; bytes]).and_then(|()| f.sync_all()));
    let _ = std::fs::remove_file(&path);
    written
}

impl Store {
    /// Opens a store in a fresh temporary directory, removed when the store is dropped,
    /// with the default memory budget.
    pub fn temporary() -> Result<Store, StoreError> {
        Store::temporary_with(MemoryBudget::DEFAULT)
    }

    /// Opens a store in a fresh temporary directory, removed when the store is dropped.
    pub fn temporary_with(budget: MemoryBudget) -> Result<Store, StoreError> {
        let dir = tempfile::Builder::new()
            .prefix("lockstep-state-")
            .tempdir()
            .map_err(|e| {
                StoreError::Incompatible(format!("cannot create a temporary store: {e}"))
            })?;
        let mut store = Store::open_in(dir.path(), budget, false)?;
        store._temp = Some(dir);
        Ok(store)
    }

    /// How many rows were read from RocksDB because the caches held nothing for them
    /// (case, watch and alert rows; a row not there counts too: entity and lineage rows
    /// are all in the index).
    pub fn row_reads(&self) -> u64 {
        self.cases.misses()
            + self.watches.misses()
            + self.alerts.misses()
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

    /// The row of `entity` (default: never seen).
    pub fn entity(&mut self, entity: &str) -> Result<EntityRow, StoreError> {
        Ok(self.row(entity)?.unwrap_or_default())
    }

    fn row(&self, entity: &str) -> Result<Option<EntityRow>, StoreError> {
        match self.index.id(entity) {
            Some(id) => self.index.row(id),
            None => Ok(None),
        }
    }

    /// The state of `entity` in `system`.
    pub fn state(&mut self, entity: &str, system: System) -> Result<EchoState, StoreError> {
        Ok(self.state_since(entity, system)?.0)
    }

    /// The state of `entity` in `system` and when it last changed.
    pub fn state_since(
        &mut self,
        entity: &str,
        system: System,
    ) -> Result<(EchoState, Micros), StoreError> {
        Ok(self.row(entity)?.map_or((EchoState::None, Micros::MIN), |r| {
            (r.states[system.index()], r.since[system.index()])
        }))
    }

    /// The open cases rooted at `entity`, oldest first.
    pub fn open_cases(&mut self, entity: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.row(entity)?.map(|r| r.cases).unwrap_or_default())
    }

    /// Whether `entity` has a row (the router's directory: it had an event).
    pub fn entity_known(&mut self, entity: &str) -> Result<bool, StoreError> {
        Ok(self.index.id(entity).is_some_and(|id| self.index.has_row(id)))
    }

    /// Gives `entity` a row, if it has none (the router's directory).
    pub fn mark_known(
        &mut self,
        entity: &str,
        kind: crate::event::EntityKind,
    ) -> Result<(), StoreError> {
        if !self.entity_known(entity)? {
            let row = EntityRow {
                kind: Some(kind),
                ..EntityRow::default()
            };
            self.put_entity(entity, row)?;
        }
        Ok(())
    }

    /// Replaces the row of `entity`.
    pub fn put_entity(&mut self, entity: &str, row: EntityRow) -> Result<(), StoreError> {
        let id = self.index.intern(entity)?;
        self.index.put_row(id, &row);
        Ok(())
    }

    /// Sets the hygiene clocks of `entity`, whose row changes in nothing else.
    pub fn put_clocks(&mut self, entity: &str, clocks: Clocks) -> Result<(), StoreError> {
        let mut row = self.entity(entity)?;
        row.clocks = clocks;
        self.put_entity(entity, row)
    }

    /// The parent of `entity`, if it has one.
    pub fn parent(&mut self, entity: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .index
            .id(entity)
            .and_then(|id| self.index.parent(id))
            .map(|p| self.index.name(p).to_owned()))
    }

    /// Whether `entity` has children.
    pub fn has_children(&mut self, entity: &str) -> Result<bool, StoreError> {
        Ok(self
            .index
            .id(entity)
            .is_some_and(|id| self.index.has_children(id)))
    }

    /// Records the edge `child → parent`. `child` is the top of its tree (it has no
    /// parent): its tree's case count moves to the new top.
    pub fn link(&mut self, child: &str, parent: &str) -> Result<(), StoreError> {
        let parent = self.index.intern(parent)?;
        let child = self.index.intern(child)?;
        let (top, top_cases) = self.climb(parent);
        let moved = self.index.tree_cases(child);
        let jump = if top == parent { packed::NONE } else { top };
        self.index.add_edge(child, parent, jump);
        if moved > 0 {
            self.index.set_tree_cases(child, 0);
            self.index.set_tree_cases(top, top_cases + moved);
        }
        Ok(())
    }

    /// The top ancestor of `entity` (itself when it has no parent).
    pub fn top(&mut self, entity: &str) -> Result<String, StoreError> {
        Ok(match self.index.id(entity) {
            Some(id) => {
                let top = self.climb(id).0;
                self.index.name(top).to_owned()
            }
            None => entity.to_owned(),
        })
    }

    /// Whether a case was ever opened in the tree of `entity`.
    pub fn tree_had_cases(&mut self, entity: &str) -> Result<bool, StoreError> {
        Ok(self
            .index
            .id(entity)
            .is_some_and(|id| self.climb(id).1 > 0))
    }

    /// The top ancestor of `id` and the case count of its tree. The jumps of the
    /// entities passed on the way are pointed at the top.
    fn climb(&mut self, id: ids::Id) -> (ids::Id, u64) {
        let mut path = Vec::new();
        let mut current = id;
        while let Some(next) = self.index.next(current) {
            path.push(std::mem::replace(&mut current, next));
        }
        // The last one passed already leads straight to the top.
        path.pop();
        for passed in path {
            self.index.set_jump(passed, current);
        }
        (current, self.index.tree_cases(current))
    }

    /// Counts a case opened at `entity` in its tree.
    pub fn count_tree_case(&mut self, entity: &str) -> Result<(), StoreError> {
        let id = self.index.intern(entity)?;
        let (top, cases) = self.climb(id);
        self.index.set_tree_cases(top, cases + 1);
        Ok(())
    }

    /// Calls `f` with the children of `entity`.
    pub fn for_children(
        &mut self,
        entity: &str,
        mut f: impl FnMut(&str),
    ) -> Result<(), StoreError> {
        if let Some(id) = self.index.id(entity) {
            for child in self.index.children(id) {
                f(self.index.name(child));
            }
        }
        Ok(())
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
        let json = serde_json::to_string(alert).map_err(|e| StoreError::Corrupt {
            cf: "alerts",
            message: e.to_string(),
        })?;
        self.alerts.put(alert.alert_id.as_bytes(), json);
        self.appended.push((
            "alert_times",
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
            cf: "history",
            message: e.to_string(),
        })?;
        self.appended.push(("history", keys::history(ev), bytes));
        Ok(())
    }

    /// Warms the cache of redelivery marks for a run of events about to be applied, in
    /// one batched read (entity and lineage rows are all in the index).
    pub fn prefetch<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a IdentityEvent>,
    ) -> Result<(), StoreError> {
        self.finish_prefetch()?;
        let read = self.reads(events).read(&self.db)?;
        self.seen.install(read);
        Ok(())
    }

    /// Whether the last prefetch read enough marks to be worth reading on another
    /// thread ([`Store::start_prefetch`]).
    pub fn prefetch_pays_a_thread(&self) -> bool {
        self.last_reads >= READS_WORTH_A_THREAD
    }

    /// Starts [`Store::prefetch`] on another thread, which reads what the cache does not
    /// hold now while the caller goes on (applying the run before); the next
    /// [`Store::finish_prefetch`] caches it (none of it if marks were written meanwhile).
    pub fn start_prefetch<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a IdentityEvent>,
    ) -> Result<(), StoreError> {
        self.finish_prefetch()?;
        let reads = self.reads(events);
        let db = Arc::clone(&self.db);
        self.reading = Some(std::thread::spawn(move || reads.read(&db)));
        Ok(())
    }

    /// The keys a prefetch of `events` reads (see [`Store::prefetch`]).
    fn reads<'a>(&mut self, events: impl IntoIterator<Item = &'a IdentityEvent>) -> Reads {
        let mut touched = 0;
        let seen = events
            .into_iter()
            .map(|e| {
                touched ^= self.index.warm(&e.entity);
                keys::seen(e.system, &e.event_id)
            })
            .collect();
        std::hint::black_box(touched);
        let reads = Reads {
            seen: (self.seen.missing(seen), self.seen.stages()),
        };
        self.last_reads = reads.seen.0.len();
        reads
    }

    /// Caches what the last [`Store::start_prefetch`] read (waiting for it).
    pub fn finish_prefetch(&mut self) -> Result<(), StoreError> {
        let Some(reading) = self.reading.take() else {
            return Ok(());
        };
        let read = reading
            .join()
            .map_err(|_| StoreError::Incompatible("the store reader thread panicked".into()))??;
        self.seen.install(read);
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
        let (db, durable) = (Arc::clone(&self.db), self.durable);
        self.writing = Some(std::thread::spawn(move || write(&db, batch, durable)));
        Ok(())
    }

    /// Whether no batch is being written (then [`Store::wait`] returns at once).
    pub fn write_done(&self) -> bool {
        self.writing.as_ref().is_none_or(|w| w.is_finished())
    }

    /// Waits for the batch being written, if any; then trims the caches.
    pub fn wait(&mut self) -> Result<(), StoreError> {
        if let Some(writing) = self.writing.take() {
            writing.join().map_err(|_| {
                StoreError::Incompatible("the store writer thread panicked".into())
            })??;
        }
        for table in self.tables() {
            table.evict_if_over_budget();
        }
        self.seen.written();
        self.positions.evict_if_over_budget();
        self.outbox.evict_if_over_budget();
        Ok(())
    }

    /// Moves the pending changes into `batch`: all (afterwards nothing is pending), or
    /// (`everything` false) the redelivery marks, timers and appended rows and the rows
    /// of the tables over their budgets.
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
        self.seen.stage(db, batch)?;
        if self.clock_dirty {
            let bytes = codec::encode(&self.clock).map_err(|e| StoreError::Corrupt {
                cf: "meta",
                message: e.to_string(),
            })?;
            batch.put_cf(table::cf(db, "meta")?, CLOCK_KEY, bytes);
            self.clock_dirty = false;
        }
        self.positions.stage(db, batch)?;
        self.outbox.stage(db, batch)?;
        self.timers.stage(db, batch)?;
        // In key order: RocksDB's memtable inserts sorted keys far faster.
        self.appended.sort_unstable();
        for (cf, key, value) in self.appended.drain(..) {
            batch.put_cf(table::cf(db, cf)?, key, value);
        }
        Ok(())
    }

    /// The tables of the correlator's rows, whose caches share the memory budget.
    fn tables(&mut self) -> [&mut dyn Staged; 3] {
        [
            &mut self.cases,
            &mut self.watches,
            &mut self.alerts,
        ]
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

/// Refuses a directory that is not a lockstep state and cannot become one cleanly: a
/// missing parent (a typo, not a place to create), a non-empty directory holding no
/// RocksDB, or a store missing one of its column families (a damaged MANIFEST would
/// otherwise reopen with that table empty and re-raise alerts).
/// The layout recorded in a state directory (none: new, or layout 1).
fn stored_layout(db: &DB) -> Result<Option<u32>, StoreError> {
    Ok(db
        .get_pinned_cf(table::cf(db, "meta")?, FORMAT_KEY)?
        .and_then(|b| <[u8; 4]>::try_from(&*b).ok())
        .map(u32::from_be_bytes))
}

/// The refusal of a state directory of layout `found` (none: layout 1).
fn other_layout(dir: &Path, found: Option<u32>) -> StoreError {
    StoreError::Incompatible(format!(
        "state directory {} has layout {} and this lockstep reads and writes layout {FORMAT}: replay into a new directory",
        dir.display(),
        found.map_or("1".into(), |v| v.to_string())
    ))
}

fn check_directory(dir: &Path) -> Result<(), StoreError> {
    let refuse = |why: String| Err(StoreError::Incompatible(why));
    if !dir.exists() {
        return match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() && !p.is_dir() => refuse(format!(
                "state directory {}: its parent {} does not exist; create it first",
                dir.display(),
                p.display()
            )),
            _ => Ok(()),
        };
    }
    if !dir.join("CURRENT").is_file() {
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        return if empty {
            Ok(())
        } else {
            refuse(format!(
                "{} is not empty and holds no lockstep state: give a new or empty directory",
                dir.display()
            ))
        };
    }
    let present = DB::list_cf(&Options::default(), dir)?;
    match COLUMN_FAMILIES
        .iter()
        .find(|cf| !present.iter().any(|p| p == *cf))
    {
        Some(missing) => Err(StoreError::Corrupt {
            cf: missing,
            message: format!(
                "the store in {} has no column family {missing}: it is damaged (a truncated MANIFEST?); restore it from a backup or replay into a new directory",
                dir.display()
            ),
        }),
        None => Ok(()),
    }
}

/// Where a partition's consumption stands: the next offset to consume and, once a
/// record was consumed, the offset and fingerprint of the last one — read back after an
/// outage to tell whether the broker still holds the same log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The next offset to consume.
    pub next: i64,
    /// (offset, fingerprint) of the last record consumed.
    pub check: Option<(i64, u64)>,
}

/// A record waiting in the outbox to be produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// Destination topic.
    pub topic: String,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// The partition, when the record names it (else the key's hash chooses).
    pub partition: Option<i32>,
    /// Message value.
    pub payload: Vec<u8>,
    /// Message headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

fn outbox_seq(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt {
        cf: "outbox",
        message: format!("undecodable key {key:?}"),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(reading) = self.reading.take() {
            let _ = reading.join();
        }
        if let Err(e) = self.wait() {
            tracing::error!(error = %e, "the last write batch failed");
        }
    }
}

impl Store {
    /// The stored position of every (topic, partition).
    pub fn positions(&self) -> Result<Vec<(String, i32, Position)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(table::cf(&self.db, "positions")?, IteratorMode::Start)
        {
            let (key, value) = item?;
            let corrupt = || StoreError::Corrupt {
                cf: "positions",
                message: format!("undecodable entry {key:?}"),
            };
            let split = key
                .len()
                .checked_sub(5)
                .filter(|&i| key[i] == 0)
                .ok_or_else(corrupt)?;
            let topic = std::str::from_utf8(&key[..split])
                .map_err(|_| corrupt())?
                .to_owned();
            let partition = i32::from_be_bytes(key[split + 1..].try_into().map_err(|_| corrupt())?);
            // Before the last record's check was kept, the value was the offset alone.
            let position = codec::decode(&value)
                .or_else(|_| codec::decode(&value).map(|next| Position { next, check: None }))
                .map_err(|_| corrupt())?;
            out.push((topic, partition, position));
        }
        Ok(out)
    }

    /// Records the position of (topic, partition), committed with the state it led to.
    /// Key: `topic \0 partition(4, big-endian)`.
    pub fn set_position(&mut self, topic: &str, partition: i32, position: Position) {
        let mut key = Vec::with_capacity(topic.len() + 5);
        key.extend_from_slice(topic.as_bytes());
        key.push(0);
        key.extend_from_slice(&partition.to_be_bytes());
        self.positions.put(&key, position);
    }

    /// Queues a record to produce, committed with the state that raised it.
    pub fn enqueue(&mut self, record: OutboxRecord) -> u64 {
        let seq = self.outbox_next;
        self.outbox_next += 1;
        self.outbox.put(&seq.to_be_bytes(), record);
        seq
    }

    /// Removes a delivered record (at the next commit).
    pub fn delivered(&mut self, seq: u64) {
        self.outbox.delete(&seq.to_be_bytes());
    }

    /// Every committed record still waiting in the outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<(u64, OutboxRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(table::cf(&self.db, "outbox")?, IteratorMode::Start)
        {
            let (key, value) = item?;
            let record = codec::decode(&value).map_err(|e| StoreError::Corrupt {
                cf: "outbox",
                message: e.to_string(),
            })?;
            out.push((outbox_seq(&key)?, record));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(next: i64, check: Option<(i64, u64)>) -> Position {
        Position { next, check }
    }

    /// Layout 3, layout 6 (before the rows of SPEC §4c) and 7 (before the inventory's) alike: refused with the way to
    /// rebuild, never misread.
    #[test]
    fn a_state_directory_of_another_layout_is_refused_read_write_and_read_only() {
        for layout in [3u32, 6, 7] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Store::open(dir.path()).unwrap();
            store.put_entity("k", EntityRow::default());
            store.set_clock(Micros(1));
            store.commit().unwrap();
            drop(store);
            {
                let db = DB::open_cf(&Options::default(), dir.path(), COLUMN_FAMILIES).unwrap();
                let meta = db.cf_handle("meta").unwrap();
                db.put_cf(meta, FORMAT_KEY, layout.to_be_bytes()).unwrap();
            }
            let err = Store::open(dir.path()).err().unwrap().to_string();
            assert!(
                err.contains(&format!(
                    "has layout {layout} and this lockstep reads and writes layout {FORMAT}"
                )) && err.contains("replay into a new directory"),
                "{err}"
            );
            let err = view::StateView::open_read_only(dir.path())
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(&format!("has layout {layout}")), "{err}");
        }
    }

    #[test]
    fn a_store_missing_a_column_family_is_refused_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        {
            let mut db = DB::open_cf(&Options::default(), dir.path(), COLUMN_FAMILIES).unwrap();
            db.drop_cf("alerts").unwrap();
        }
        let err = Store::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("no column family alerts"), "{err}");
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("notes.txt"), "mine").unwrap();
        let err = Store::open(other.path()).err().unwrap().to_string();
        assert!(err.contains("holds no lockstep state"), "{err}");
        let err = Store::open(&other.path().join("no/such/state"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(
            Store::open(&other.path().join("fresh")).is_ok(),
            "a new directory"
        );
    }

    #[test]
    fn a_position_stored_as_a_bare_offset_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cf = table::cf(&store.db, "positions").unwrap();
        store
            .db
            .put_cf(cf, b"t\0\0\0\0\x02", codec::encode(&17i64).unwrap())
            .unwrap();
        assert_eq!(
            store.positions().unwrap(),
            vec![("t".to_owned(), 2, at(17, None))]
        );
    }

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
            let row = store.index.id(&format!("m{i}")).and_then(|id| store.index.lineage_row(id));
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
        let m0 = store.index.lineage_row(store.index.id("m0").unwrap()).unwrap();
        assert_eq!(m0.tree_cases, 0, "m0 is no longer a top");
        assert_eq!(store.top("m7").unwrap(), "n0");
    }

    #[test]
    fn positions_and_outbox_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let record = OutboxRecord {
            topic: "alerts".into(),
            key: Some(b"sa".to_vec()),
            partition: None,
            payload: b"{}".to_vec(),
            headers: vec![("kind".into(), b"echo_missing".to_vec())],
        };
        {
            let mut store = Store::open(dir.path()).unwrap();
            store.set_position("lockstep.iam", 0, at(42, Some((41, 99))));
            store.set_position("lockstep.iam", 256, at(7, None));
            store.set_position("a\0b", 1, at(9, Some((3, u64::MAX))));
            assert_eq!(store.enqueue(record.clone()), 0);
            assert_eq!(store.enqueue(record.clone()), 1);
            store.commit().unwrap();
            store.delivered(0);
            store.commit().unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        let mut positions = store.positions().unwrap();
        positions.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        assert_eq!(
            positions,
            vec![
                ("a\0b".to_owned(), 1, at(9, Some((3, u64::MAX)))),
                ("lockstep.iam".to_owned(), 0, at(42, Some((41, 99)))),
                ("lockstep.iam".to_owned(), 256, at(7, None))
            ]
        );
        assert_eq!(store.outbox().unwrap(), vec![(1, record.clone())]);
        assert_eq!(
            store.enqueue(record),
            2,
            "sequence continues after the last record"
        );
    }
}
