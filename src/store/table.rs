//! A typed view of one column family with a write-back cache. Reads go to the cache,
//! then to RocksDB; writes stay in the cache, marked dirty, until the store commits them
//! all in one `WriteBatch` — or, for a store nobody reopens, until the cache outgrows its
//! budget ([`Table::spill`]). The cache is bounded in bytes: each entry is weighed by its
//! key and encoded value, and after a commit a table over its budget drops clean entries
//! until it is a quarter under it, so memory stays flat however large the state grows
//! and the rest of the working set stays cached.

use super::family::Family;
use std::collections::HashMap;

use foldhash::fast::RandomState;

use rocksdb::{WriteBatch, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec;
use super::key_filter::WrittenKeys;
use crate::error::StoreError;

struct Slot<V> {
    value: Option<V>,
    dirty: bool,
    /// The trim ([`Table::evict_if_over_budget`]) after which it was last read or changed.
    touched: u32,
    /// The estimated bytes the entry holds.
    weight: usize,
}

/// The ages eviction tells apart: entries unused for more rounds count as this old.
const AGES: usize = 64;

/// One column family of `V` values, bincode-encoded.
pub struct Table<V> {
    cf: Family,
    budget: usize,
    bytes: usize,
    cache: HashMap<Box<[u8]>, Slot<V>, RandomState>,
    dirty: Dirty,
    /// The mean encoded value, which weighs an entry not encoded yet.
    mean: Mean,
    /// How many times the cache was trimmed: the clock its entries' ages are told by
    /// (every trim drops a quarter of the budget, so an age is about that much churn).
    round: u32,
    /// Keys looked up in RocksDB because the cache held nothing for them.
    misses: u64,
    /// Every key this table wrote, when it knows them all (a store created by this
    /// process).
    written: WrittenKeys,
}

/// The entries changed since they were last staged: their keys, how many they are and
/// their weight. The keys may also name entries a spill staged since, and name one
/// twice: [`Table::stage`] skips what is clean, and a spill drops those keys once they
/// are as many as the entries changed.
#[derive(Default)]
struct Dirty {
    keys: Vec<Box<[u8]>>,
    count: usize,
    bytes: usize,
}

impl Dirty {
    /// Marks the entry `slot` at `key`, whose weight just grew by `grown`, changed.
    fn mark<V>(&mut self, key: &[u8], slot: &mut Slot<V>, grown: usize) {
        if slot.dirty {
            self.bytes += grown;
        } else {
            slot.dirty = true;
            self.keys.push(key.into());
            self.count += 1;
            self.bytes += slot.weight;
        }
    }
}

/// A running mean of the encoded values weighed.
#[derive(Default)]
struct Mean {
    count: usize,
    bytes: usize,
}

impl Mean {
    /// The weight of an entry whose value encodes to `encoded` bytes, counted in.
    fn weigh<V>(&mut self, key: &[u8], encoded: usize) -> usize {
        self.count += 1;
        self.bytes += encoded;
        weight::<V>(key, encoded)
    }
}

impl<V: Serialize + DeserializeOwned + Clone> Table<V> {
    /// A table over column family `cf` whose cache holds about `budget` bytes.
    pub fn new(cf: Family, budget: usize) -> Self {
        Table {
            cf,
            budget,
            bytes: 0,
            cache: HashMap::default(),
            dirty: Dirty::default(),
            mean: Mean::default(),
            round: 0,
            misses: 0,
            written: WrittenKeys::default(),
        }
    }

    /// Holds about `bytes` from the next trim on.
    pub fn set_budget(&mut self, bytes: usize) {
        self.budget = bytes;
    }

    /// Keeps a filter of `bytes` of the keys it writes, and answers reads of keys never
    /// written without RocksDB: for a table whose column family was empty.
    pub fn filter_written(&mut self, bytes: usize) {
        self.written = WrittenKeys::all(bytes);
    }

    /// Reads the value at `key` in place, without copying it: one hash lookup when it
    /// is cached, a RocksDB read (then cached) when not.
    pub fn read<R>(
        &mut self,
        db: &DB,
        key: &[u8],
        f: impl FnOnce(Option<&V>) -> R,
    ) -> Result<R, StoreError> {
        if let Some(slot) = self.cache.get_mut(key) {
            slot.touched = self.round;
            return Ok(f(slot.value.as_ref()));
        }
        let slot = if self.written.may_hold(key) {
            let cf = self.cf.handle(db)?;
            self.misses += 1;
            let stored = db.get_pinned_cf(cf, key)?;
            let (value, encoded) = decode(self.cf, stored.as_deref())?;
            self.clean_slot(key, value, encoded)
        } else {
            self.clean_slot(key, None, 0)
        };
        let result = f(slot.value.as_ref());
        self.insert_clean(key.into(), slot);
        Ok(result)
    }

    /// The cache entry of a value as RocksDB holds it, `encoded` bytes there.
    fn clean_slot(&mut self, key: &[u8], value: Option<V>, encoded: usize) -> Slot<V> {
        Slot {
            value,
            dirty: false,
            touched: self.round,
            weight: self.mean.weigh::<V>(key, encoded),
        }
    }

    fn insert_clean(&mut self, key: Box<[u8]>, slot: Slot<V>) {
        self.bytes += slot.weight;
        if let Some(old) = self.cache.insert(key, slot) {
            self.bytes -= old.weight;
        }
    }

    /// How many keys were looked up in RocksDB because the cache held nothing for them.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// The value at `key`, if any.
    pub fn get(&mut self, db: &DB, key: &[u8]) -> Result<Option<V>, StoreError> {
        self.read(db, key, |v| v.cloned())
    }

    /// Whether a value exists at `key`.
    pub fn contains(&mut self, db: &DB, key: &[u8]) -> Result<bool, StoreError> {
        self.read(db, key, |v| v.is_some())
    }

    /// Sets `key` to `value` (written at the next commit).
    pub fn put(&mut self, key: &[u8], value: V) {
        self.set(key, Some(value));
    }

    /// Removes `key` (at the next commit).
    pub fn delete(&mut self, key: &[u8]) {
        self.set(key, None);
    }

    /// Puts `value` at `key`, weighed as it encodes: a table that has written nothing
    /// yet (a replay's alerts, kept in memory while they fit) has no mean to go by.
    fn set(&mut self, key: &[u8], value: Option<V>) {
        let weight = weight::<V>(key, value.as_ref().map_or(0, codec::size));
        match self.cache.get_mut(key) {
            Some(slot) => {
                slot.touched = self.round;
                slot.value = value;
                let grown = weight.saturating_sub(slot.weight);
                slot.weight += grown;
                self.bytes += grown;
                self.dirty.mark(key, slot, grown);
            }
            None => {
                let mut slot = Slot {
                    value,
                    dirty: false,
                    touched: self.round,
                    weight,
                };
                self.bytes += slot.weight;
                self.dirty.mark(key, &mut slot, 0);
                self.cache.insert(key.into(), slot);
            }
        }
    }

    /// Moves every dirty entry into `batch`, in key order (RocksDB's memtable inserts
    /// sorted keys far faster than scattered ones); the entries are clean afterwards.
    pub fn stage(&mut self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let cf = self.cf.handle(db)?;
        for key in self.sorted_dirty_keys() {
            self.stage_entry(cf, &key, batch)?;
        }
        Ok(())
    }

    /// Writes every dirty entry to RocksDB (without the write-ahead log: for a store
    /// nobody reopens) in batches of about `chunk` bytes, and drops each batch's entries
    /// from the cache once it is written: no batch holds a second copy of them all.
    pub fn write_out(&mut self, db: &DB, chunk: usize) -> Result<(), StoreError> {
        let cf = self.cf.handle(db)?;
        let mut batch = WriteBatch::default();
        let mut staged = Vec::new();
        for key in self.sorted_dirty_keys() {
            if self.stage_entry(cf, &key, &mut batch)? {
                staged.push(key);
            }
            if batch.size_in_bytes() >= chunk {
                self.write_and_drop(db, std::mem::take(&mut batch), &mut staged)?;
            }
        }
        self.write_and_drop(db, batch, &mut staged)
    }

    /// Writes `batch` and drops the entries at `keys`, staged in it.
    fn write_and_drop(
        &mut self,
        db: &DB,
        batch: WriteBatch,
        keys: &mut Vec<Box<[u8]>>,
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        db.write_without_wal(batch)?;
        for key in keys.drain(..) {
            if let Some(slot) = self.cache.remove(&key) {
                self.bytes -= slot.weight;
            }
        }
        // Rows fetched before this were read while these were not in RocksDB.
        self.round = self.round.wrapping_add(1);
        Ok(())
    }

    /// The keys of the dirty entries, sorted and each once; the list is empty afterwards.
    fn sorted_dirty_keys(&mut self) -> Vec<Box<[u8]>> {
        let mut keys = std::mem::take(&mut self.dirty.keys);
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Moves the entry at `key` into `batch` if it is dirty (true), and marks it clean.
    fn stage_entry(
        &mut self,
        cf: &rocksdb::ColumnFamily,
        key: &[u8],
        batch: &mut WriteBatch,
    ) -> Result<bool, StoreError> {
        let Some(slot) = self.cache.get_mut(key).filter(|slot| slot.dirty) else {
            return Ok(false);
        };
        slot.dirty = false;
        self.dirty.count -= 1;
        self.dirty.bytes = self.dirty.bytes.saturating_sub(slot.weight);
        let encoded = match &slot.value {
            Some(v) => {
                let bytes = codec::encode(v).map_err(|e| StoreError::Corrupt {
                    cf: self.cf.name(),
                    message: e.to_string(),
                })?;
                let len = bytes.len();
                batch.put_cf(cf, key, bytes);
                self.written.insert(key);
                len
            }
            None => {
                batch.delete_cf(cf, key);
                0
            }
        };
        self.bytes -= slot.weight;
        slot.weight = self.mean.weigh::<V>(key, encoded);
        self.bytes += slot.weight;
        Ok(true)
    }

    /// Stages dirty entries, as [`Table::stage`], only as far as the cache has outgrown
    /// its budget: the least recently used, until the clean entries
    /// [`Table::evict_if_over_budget`] may drop bring it a quarter under. A store that is
    /// never reopened (a replay's temporary one) keeps changed rows in memory while they
    /// fit, and a row changed in every commit window — a busy key's hygiene clock — is
    /// written once, not once per window.
    pub fn spill(&mut self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        if self.bytes <= self.budget {
            return Ok(());
        }
        // Eviction leaves the dirty entries: these must weigh no more than its target.
        let excess = self.dirty.bytes.saturating_sub(self.budget / 4 * 3);
        if excess == 0 {
            return Ok(());
        }
        // Two passes over the cache in memory order, not two look-ups of every dirty key.
        let dirty = self.cache.values().filter(|slot| slot.dirty);
        let mut oldest = Oldest::find(self.round, dirty, excess);
        let spilled = self
            .cache
            .iter()
            .filter(|(_, slot)| slot.dirty && oldest.goes(slot))
            .map(|(key, _)| key.clone())
            .collect();
        let all = std::mem::replace(&mut self.dirty.keys, spilled);
        self.stage(db, batch)?;
        self.dirty.keys = all;
        if self.dirty.keys.len() > 2 * self.dirty.count {
            let cache = &self.cache;
            self.dirty
                .keys
                .retain(|key| cache.get(key).is_some_and(|slot| slot.dirty));
            self.dirty.keys.sort_unstable();
            self.dirty.keys.dedup();
        }
        Ok(())
    }

    /// Drops clean entries, least recently used first, until the cache is a quarter
    /// under its budget, if it is over it. Only once the staged batch is in RocksDB:
    /// until then the cache is where its values are read from. Dirty entries (not yet
    /// staged) always stay.
    pub fn evict_if_over_budget(&mut self) {
        if self.bytes <= self.budget {
            return;
        }
        let droppable = |slot: &Slot<V>| !slot.dirty;
        let excess = self.bytes - self.budget / 4 * 3;
        let slots = self.cache.values().filter(|slot| droppable(slot));
        let mut oldest = Oldest::find(self.round, slots, excess);
        let bytes = &mut self.bytes;
        self.cache.retain(|_, slot| {
            if !droppable(slot) || !oldest.goes(slot) {
                return true;
            }
            *bytes -= slot.weight;
            false
        });
        self.round = self.round.wrapping_add(1);
        // The hash table keeps the size it grew to while a commit window filled it: its
        // empty slots, weighed nowhere, would hold more memory than the entries (three
        // times the entries' slots, measured at 1.3M identities).
        if self.cache.capacity() > self.cache.len() * 2 {
            self.cache.shrink_to(self.cache.len() * 5 / 4);
        }
    }
}

/// Which of some cache entries are the least recently used, weighing `excess` bytes
/// together: those last touched before the trim `oldest_kept` ago all are, and of
/// those touched then, the first met weighing `partial`.
struct Oldest {
    round: u32,
    oldest_kept: usize,
    partial: usize,
}

impl Oldest {
    fn find<'a, V: 'a>(
        round: u32,
        slots: impl Iterator<Item = &'a Slot<V>>,
        excess: usize,
    ) -> Self {
        let mut oldest = Oldest {
            round,
            oldest_kept: AGES,
            partial: excess,
        };
        let mut by_age = [0usize; AGES];
        for slot in slots {
            by_age[oldest.age(slot)] += slot.weight;
        }
        let mut left = excess;
        while oldest.oldest_kept > 0 && left > 0 {
            oldest.oldest_kept -= 1;
            oldest.partial = left;
            left = left.saturating_sub(by_age[oldest.oldest_kept]);
        }
        oldest
    }

    /// How many trims ago `slot` was last touched (at most [`AGES`] - 1).
    fn age<V>(&self, slot: &Slot<V>) -> usize {
        (self.round.wrapping_sub(slot.touched) as usize).min(AGES - 1)
    }

    /// Whether `slot`, met in any order, is one of them.
    fn goes<V>(&mut self, slot: &Slot<V>) -> bool {
        let age = self.age(slot);
        if age == self.oldest_kept && self.partial > 0 {
            self.partial = self.partial.saturating_sub(slot.weight);
            return true;
        }
        age > self.oldest_kept
    }
}

/// What the store does with every table, whatever its value type.
pub trait Staged {
    /// [`Table::stage`]
    fn stage(&mut self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError>;
    /// [`Table::spill`]
    fn spill(&mut self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError>;
    /// [`Table::evict_if_over_budget`]
    fn evict_if_over_budget(&mut self);
    /// [`Table::write_out`]
    fn write_out(&mut self, db: &DB, chunk: usize) -> Result<(), StoreError>;
}

impl<V: Serialize + DeserializeOwned + Clone> Staged for Table<V> {
    fn stage(&mut self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        Table::stage(self, db, batch)
    }

    fn spill(&mut self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        Table::spill(self, db, batch)
    }

    fn evict_if_over_budget(&mut self) {
        Table::evict_if_over_budget(self)
    }

    fn write_out(&mut self, db: &DB, chunk: usize) -> Result<(), StoreError> {
        Table::write_out(self, db, chunk)
    }
}

/// The value RocksDB holds as `stored` in `cf`, if any, and its encoded size.
fn decode<V: DeserializeOwned>(
    cf: Family,
    stored: Option<&[u8]>,
) -> Result<(Option<V>, usize), StoreError> {
    let Some(bytes) = stored else {
        return Ok((None, 0));
    };
    let value = codec::decode(bytes).map_err(|e| StoreError::Corrupt {
        cf: cf.name(),
        message: e.to_string(),
    })?;
    Ok((Some(value), bytes.len()))
}

/// The estimated memory of a cache entry: the hash table's slot with its share of empty
/// slots (at most 1/8 empty before it grows), the key with its allocation header, and the
/// heap parts of the value (about its varint encoding).
fn weight<V>(key: &[u8], encoded: usize) -> usize {
    std::mem::size_of::<(Box<[u8]>, Slot<V>)>() * 5 / 4 + key.len() + 16 + encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RocksDB in `dir` with column family `cases`, and a table over it of a 64 KiB budget.
    fn small_table(dir: &std::path::Path) -> (DB, Table<String>, usize) {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = DB::open_cf(&opts, dir, [Family::Cases.name()]).unwrap();
        let budget = 64 << 10;
        (db, Table::new(Family::Cases, budget), budget)
    }

    /// Writes every change of `table` to `db` and trims its cache, as a commit does.
    fn commit(db: &DB, table: &mut Table<String>) {
        let mut batch = WriteBatch::default();
        table.stage(db, &mut batch).unwrap();
        db.write(batch).unwrap();
        table.evict_if_over_budget();
    }

    /// Puts `value i` at `ki` for every i of `keys`.
    fn put_values(table: &mut Table<String>, keys: std::ops::Range<usize>) {
        for i in keys {
            table.put(format!("k{i}").as_bytes(), format!("value {i}"));
        }
    }

    /// The weight of every cached entry, added up.
    fn weighed(table: &Table<String>) -> usize {
        table.cache.values().map(|s| s.weight).sum()
    }

    #[test]
    fn a_cache_over_budget_drops_clean_entries_to_a_quarter_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut table, budget) = small_table(dir.path());
        put_values(&mut table, 0..10_000);
        let mut batch = WriteBatch::default();
        table.stage(&db, &mut batch).unwrap();
        db.write(batch).unwrap();
        assert_eq!(weighed(&table), table.bytes);
        assert!(table.bytes > budget);
        table.put(b"unstaged", "stays".into());
        table.evict_if_over_budget();
        assert!(table.bytes <= budget / 4 * 3, "{} bytes", table.bytes);
        assert_eq!(weighed(&table), table.bytes);
        assert!((2..10_000).contains(&table.cache.len()));
        assert!(
            table.cache[&b"unstaged"[..]].dirty,
            "a dirty entry is never dropped"
        );
        for i in 0..10_000 {
            let value = table.get(&db, format!("k{i}").as_bytes()).unwrap();
            assert_eq!(value, Some(format!("value {i}")), "read back from RocksDB");
        }
    }

    #[test]
    fn with_a_filter_of_the_keys_written_a_key_never_written_costs_no_read() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut table, _) = small_table(dir.path());
        table.filter_written(16 << 10);
        put_values(&mut table, 0..10_000);
        commit(&db, &mut table);
        let before = table.misses();
        for i in 0..10_000 {
            let value = table.get(&db, format!("k{i}").as_bytes()).unwrap();
            assert_eq!(value, Some(format!("value {i}")), "read back from RocksDB");
        }
        let evicted = table.misses() - before;
        assert!(
            evicted > 5_000,
            "{evicted}: most were dropped and read back"
        );
        for i in 0..10_000 {
            assert_eq!(table.get(&db, format!("n{i}").as_bytes()).unwrap(), None);
        }
        let asked = table.misses() - before - evicted;
        assert!(asked < 500, "{asked} of 10,000 never written were read");
    }

    #[test]
    fn entries_read_since_the_last_trim_outlast_those_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut table, budget) = small_table(dir.path());
        for i in 0..5_000 {
            table.put(format!("old{i}").as_bytes(), format!("value {i}"));
        }
        commit(&db, &mut table);
        let kept: Vec<Box<[u8]>> = table.cache.keys().take(50).cloned().collect();
        let misses = table.misses();
        for key in &kept {
            table.get(&db, key).unwrap();
        }
        assert_eq!(table.misses(), misses, "cached: no RocksDB reads");
        let before = table.cache.len();
        for i in 0..200 {
            table.put(format!("new{i}").as_bytes(), format!("value {i}"));
        }
        commit(&db, &mut table);
        assert!(table.bytes <= budget / 4 * 3, "{} bytes", table.bytes);
        for key in &kept {
            assert!(table.cache.contains_key(key), "a read entry was dropped");
        }
        for i in 0..200 {
            assert!(table.cache.contains_key(format!("new{i}").as_bytes()));
        }
        assert!(
            table.cache.len() < before + 200,
            "entries not read went first"
        );
    }

    #[test]
    fn values_put_before_any_is_written_weigh_what_they_encode_to() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut table, budget) = small_table(dir.path());
        // 100 values of 1 KiB: past the 64 KiB budget, though the table has no mean yet.
        for i in 0..100 {
            table.put(format!("k{i}").as_bytes(), "x".repeat(1024));
        }
        assert!(table.bytes > 100 * 1024, "{} bytes", table.bytes);
        let mut batch = WriteBatch::default();
        table.spill(&db, &mut batch).unwrap();
        assert!(
            !batch.is_empty(),
            "nothing spilled at {} bytes",
            table.bytes
        );
        assert!(table.bytes > budget);
        table.evict_if_over_budget();
        assert!(table.bytes <= budget, "{} bytes", table.bytes);
    }

    #[test]
    fn writing_out_leaves_every_change_in_rocksdb_and_none_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut table, _) = small_table(dir.path());
        put_values(&mut table, 0..300);
        table.delete(b"k7");
        table.write_out(&db, 1024).unwrap();
        assert_eq!(table.bytes, 0);
        assert_eq!(table.dirty.count, 0);
        for i in 0..300 {
            let key = format!("k{i}");
            assert!(!table.cache.contains_key(key.as_bytes()), "{key} cached");
            let expected = (i != 7).then(|| format!("value {i}"));
            let stored = db
                .get_cf(db.cf_handle(Family::Cases.name()).unwrap(), &key)
                .unwrap();
            assert_eq!(
                stored.map(|b| codec::decode::<String>(&b).unwrap()),
                expected
            );
            assert_eq!(table.get(&db, key.as_bytes()).unwrap(), expected);
        }
    }

    #[test]
    fn a_spill_writes_only_the_least_recent_changes_that_do_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut table, budget) = small_table(dir.path());
        let spill = |table: &mut Table<String>| {
            let mut batch = WriteBatch::default();
            table.spill(&db, &mut batch).unwrap();
            let count = batch.len();
            db.write(batch).unwrap();
            table.evict_if_over_budget();
            count
        };
        put_values(&mut table, 0..100);
        assert_eq!(spill(&mut table), 0, "changes that fit stay in memory");
        put_values(&mut table, 0..10_000);
        let written = spill(&mut table);
        assert!((1..10_000).contains(&written), "{written} written");
        assert!(table.bytes <= budget / 4 * 3, "{} bytes", table.bytes);
        assert_eq!(weighed(&table), table.bytes);
        let dirty = |t: &Table<String>| {
            t.cache
                .values()
                .filter(|s| s.dirty)
                .map(|s| s.weight)
                .sum::<usize>()
        };
        assert_eq!(dirty(&table), table.dirty.bytes);
        // Changed after that trim: older changes are written before these.
        put_values(&mut table, 10_000..10_300);
        assert!(spill(&mut table) > 0);
        assert_eq!(dirty(&table), table.dirty.bytes);
        let stored = |i: usize| {
            db.get_cf(db.cf_handle(Family::Cases.name()).unwrap(), format!("k{i}"))
                .unwrap()
        };
        for i in 10_000..10_300 {
            assert!(stored(i).is_none(), "k{i}, changed last, was written");
        }
        for i in 0..10_300 {
            let value = table.get(&db, format!("k{i}").as_bytes()).unwrap();
            assert_eq!(value, Some(format!("value {i}")));
        }
    }
}
