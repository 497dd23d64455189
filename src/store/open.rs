//! Opening a state directory: the RocksDB options of each column family, the layout
//! check that refuses a directory written by another layout with how to rebuild it, the
//! refusal of a damaged one, and temporary stores.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, IteratorMode, Options, DB};

use super::family::Family;
use super::index::Index;
use super::seen::Seen;
use super::table::Table;
use super::worker::Worker;
use super::{codec, outbox_seq, timers, MemoryBudget, Store, CLOCK_KEY, POSITIONS_CACHE};
use crate::error::StoreError;
use crate::time::Micros;

/// The memtable of `meta` (a few keys): flushed on its own when full.
const META_BUFFER: usize = 4 << 20;
/// The table files of `seen` (redelivery marks).
const SEEN_FILE: u64 = 8 << 20;
const FORMAT_KEY: &[u8] = b"format";
/// The layout of the values; a state directory of another layout is refused at open.
/// 2: entity rows carry when each system's state changed and the entity's kind; the
/// history and alert_times column families. 3: hygiene clocks in entity rows and
/// hygiene timers (SPEC §4b); values in varint bincode ([`codec`]). 4: lineage rows
/// carry a jump towards the top of their tree and, at the top, the tree's case count.
/// 5: outbox records may name their partition (the repartition topic, SPEC §7). 6: the
/// log of held hygiene clocks in `meta`. 7: entity rows carry the kind of
/// the latest success event, the registration mark and the rotation round of SPEC §4c;
/// rotation and registration timers sort between echo and hygiene timers. A layout 6
/// directory cannot be read (its rows lack those fields): it is refused with the
/// message to replay into a new directory. 8: entity rows carry when the entity was
/// first seen and who created it (the inventory); layout 7 rows lack them and are
/// refused the same way. 9: no log of held hygiene clocks in `meta` (the in-memory
/// index holds every row; a changed row is written at the next commit).
pub(super) const FORMAT: u32 = 9;

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
        let descriptors = Family::ALL.iter().map(|&family| {
            let mut table = BlockBasedOptions::default();
            // A filter is built and held for every table file, at 10 bits a key: only
            // for the families read by key.
            if !family.scanned_only() {
                table.set_bloom_filter(10.0, false);
            }
            table.set_block_cache(&cache);
            let mut cf_opts = Options::default();
            cf_opts.set_block_based_table_factory(&table);
            // The redelivery marks are one small key an event: a compaction building a
            // 64 MiB file of them held 8 bytes a key until its filter was done (136 MiB
            // for the 17.8M keys of a 10M-identity replay, the run's peak). Files of
            // 8 MiB bound that to a few MiB.
            if family == Family::Seen {
                cf_opts.set_target_file_size_base(SEEN_FILE);
            }
            // `meta` holds a few keys: a memtable of their size.
            cf_opts.set_write_buffer_size(if family == Family::Meta {
                write_buffer.min(META_BUFFER)
            } else {
                write_buffer
            });
            // Most point reads of a replay miss (a new event id, a new entity): a memtable
            // bloom filter answers those without walking the skip list. The append-only
            // families are only scanned, and are written without one.
            if !family.append_only() {
                cf_opts.set_memtable_prefix_bloom_ratio(0.1);
                cf_opts.set_memtable_whole_key_filtering(true);
            }
            // An entity row is rewritten at every commit a busy key was used in (its
            // hygiene clock): a row already in the memtable, no larger than before, is
            // overwritten where it is instead of adding a skip-list node per rewrite.
            if family == Family::Entities {
                cf_opts.set_inplace_update_support(true);
            }
            // A few small keys, rewritten: not worth compressing.
            cf_opts.set_compression_type(if family == Family::Meta {
                rocksdb::DBCompressionType::None
            } else {
                rocksdb::DBCompressionType::Lz4
            });
            ColumnFamilyDescriptor::new(family.name(), cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, dir, descriptors)?;
        let meta = Family::Meta.handle(&db)?;
        let clock = match db.get_pinned_cf(meta, CLOCK_KEY)? {
            Some(bytes) => codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                cf: Family::Meta.name(),
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
            .iterator_cf(Family::Outbox.handle(&db)?, IteratorMode::End)
            .next()
        {
            Some(item) => outbox_seq(&item?.0)? + 1,
            None => 0,
        };
        let mut store = Store {
            db: Arc::new(db),
            budget,
            block_cache: (cache, budget.block_cache()),
            durable,
            writing: Worker::new("store-writer"),
            reading: Worker::new("store-reader"),
            last_reads: 0,
            _temp: None,
            index,
            cases: Table::new(Family::Cases, budget.table(Family::Cases)),
            watches: Table::new(Family::Watches, budget.table(Family::Watches)),
            seen: Seen::default(),
            alerts: Table::new(Family::Alerts, budget.table(Family::Alerts)),
            clock,
            clock_dirty: false,
            positions: Table::new(Family::Positions, POSITIONS_CACHE),
            outbox: Table::new(Family::Outbox, 0),
            outbox_next,
            timers: timers::Timers::new(),
            appended: Vec::new(),
        };
        store.size_block_cache(store.index.heap_bytes());
        if created {
            store
                .watches
                .filter_written(budget.key_filter(Family::Watches));
            store.seen.filter_written(budget.key_filter(Family::Seen));
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
}

/// The layout recorded in a state directory (none: new, or layout 1).
pub(super) fn stored_layout(db: &DB) -> Result<Option<u32>, StoreError> {
    Ok(db
        .get_pinned_cf(Family::Meta.handle(db)?, FORMAT_KEY)?
        .and_then(|b| <[u8; 4]>::try_from(&*b).ok())
        .map(u32::from_be_bytes))
}

/// The refusal of a state directory of layout `found` (none: layout 1).
pub(super) fn other_layout(dir: &Path, found: Option<u32>) -> StoreError {
    StoreError::Incompatible(format!(
        "state directory {} has layout {} and this lockstep reads and writes layout {FORMAT}: replay into a new directory",
        dir.display(),
        found.map_or("1".into(), |v| v.to_string())
    ))
}

/// Refuses a directory that is not a lockstep state and cannot become one cleanly: a
/// missing parent (a typo, not a place to create), a non-empty directory holding no
/// RocksDB, or a store missing one of its column families (a damaged MANIFEST would
/// otherwise reopen with that table empty and re-raise alerts).
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
    match Family::ALL
        .iter()
        .find(|cf| !present.iter().any(|p| p == cf.name()))
    {
        Some(missing) => Err(StoreError::Corrupt {
            cf: missing.name(),
            message: format!(
                "the store in {} has no column family {}: it is damaged (a truncated MANIFEST?); restore it from a backup or replay into a new directory",
                dir.display(),
                missing.name()
            ),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::view;
    use super::*;
    use crate::model::entity::EntityRow;

    /// Layout 3, 6 (before the rows of SPEC §4c), 7 (before the inventory's) and 8 (with
    /// the clock log, before the index) alike: refused with the way to rebuild, never
    /// misread.
    #[test]
    fn a_state_directory_of_another_layout_is_refused_read_write_and_read_only() {
        for layout in [3u32, 6, 7, 8] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Store::open(dir.path()).unwrap();
            store.put_entity("k", EntityRow::default()).unwrap();
            store.set_clock(Micros(1));
            store.commit().unwrap();
            drop(store);
            {
                let db = DB::open_cf(
                    &Options::default(),
                    dir.path(),
                    Family::ALL.map(Family::name),
                )
                .unwrap();
                let meta = Family::Meta.handle(&db).unwrap();
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
            let mut db = DB::open_cf(
                &Options::default(),
                dir.path(),
                Family::ALL.map(Family::name),
            )
            .unwrap();
            db.drop_cf(Family::Alerts.name()).unwrap();
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
}
