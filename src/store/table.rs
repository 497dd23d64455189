//! A typed view of one column family with a write-back cache. Reads go to the cache,
//! then to RocksDB; writes stay in the cache, marked dirty, until the store commits them
//! all in one `WriteBatch`. The cache is bounded in bytes: each entry is weighed by its
//! key and encoded value (known once read or staged), and after a commit a table over
//! its budget drops clean entries until it is a quarter under it, so memory stays flat
//! however large the state grows and the rest of the working set stays cached.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use rocksdb::{WriteBatch, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec;
use crate::error::StoreError;

struct Slot<V> {
    value: Option<V>,
    dirty: bool,
    /// The estimated bytes the entry holds; 0 until it is read or staged.
    weight: usize,
}

/// One column family of `V` values, bincode-encoded.
pub struct Table<V> {
    cf: &'static str,
    budget: usize,
    bytes: usize,
    cache: HashMap<Box<[u8]>, Slot<V>, RandomState>,
    dirty: Vec<Box<[u8]>>,
}

impl<V: Serialize + DeserializeOwned + Clone> Table<V> {
    /// A table over column family `cf` whose cache holds about `budget` bytes.
    pub fn new(cf: &'static str, budget: usize) -> Self {
        Table {
            cf,
            budget,
            bytes: 0,
            cache: HashMap::default(),
            dirty: Vec::new(),
        }
    }

    /// Reads the value at `key` in place, without copying it: one hash lookup when it
    /// is cached, a RocksDB read (then cached) when not.
    pub fn read<R>(
        &mut self,
        db: &DB,
        key: &[u8],
        f: impl FnOnce(Option<&V>) -> R,
    ) -> Result<R, StoreError> {
        if let Some(slot) = self.cache.get(key) {
            return Ok(f(slot.value.as_ref()));
        }
        let cf = cf(db, self.cf)?;
        let stored = db.get_pinned_cf(cf, key)?;
        let slot = self.clean_slot(key, stored.as_deref())?;
        let result = f(slot.value.as_ref());
        self.insert_clean(key, slot);
        Ok(result)
    }

    /// Loads the values of `keys` not cached yet with one batched RocksDB read, so the
    /// reads that follow hit the cache.
    pub fn prefetch(&mut self, db: &DB, keys: &[&[u8]]) -> Result<(), StoreError> {
        let mut keys: Vec<&[u8]> = keys
            .iter()
            .copied()
            .filter(|k| !self.cache.contains_key(*k))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        keys.sort_unstable();
        keys.dedup();
        let cf = cf(db, self.cf)?;
        let values = db.batched_multi_get_cf(cf, &keys, true);
        for (key, stored) in keys.into_iter().zip(values) {
            let slot = self.clean_slot(key, stored?.as_deref())?;
            self.insert_clean(key, slot);
        }
        Ok(())
    }

    /// The cache entry of a value as RocksDB holds it.
    fn clean_slot(&self, key: &[u8], stored: Option<&[u8]>) -> Result<Slot<V>, StoreError> {
        let value = match stored {
            Some(bytes) => Some(codec::decode(bytes).map_err(|e| StoreError::Corrupt {
                cf: self.cf,
                message: e.to_string(),
            })?),
            None => None,
        };
        Ok(Slot {
            value,
            dirty: false,
            weight: weight::<V>(key, stored.map_or(0, <[u8]>::len)),
        })
    }

    fn insert_clean(&mut self, key: &[u8], slot: Slot<V>) {
        self.bytes += slot.weight;
        if let Some(old) = self.cache.insert(key.into(), slot) {
            self.bytes -= old.weight;
        }
    }

    /// The value at `key`, if any.
    pub fn get(&mut self, db: &DB, key: &[u8]) -> Result<Option<V>, StoreError> {
        self.read(db, key, |v| v.cloned())
    }

    /// Whether a value exists at `key`.
    pub fn contains(&mut self, db: &DB, key: &[u8]) -> Result<bool, StoreError> {
        self.read(db, key, |v| v.is_some())
    }

    /// Changes the value at `key` in place (the default value when there is none), marking
    /// it for the next commit: no copy of the value, however large it is.
    pub fn update(&mut self, db: &DB, key: &[u8], f: impl FnOnce(&mut V)) -> Result<(), StoreError>
    where
        V: Default,
    {
        self.read(db, key, |_| ())?;
        let Some(slot) = self.cache.get_mut(key) else {
            return Ok(());
        };
        f(slot.value.get_or_insert_with(V::default));
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(key.into());
        }
        Ok(())
    }

    /// Sets `key` to `value` (written at the next commit).
    pub fn put(&mut self, key: &[u8], value: V) {
        self.set(key, Some(value));
    }

    /// Removes `key` (at the next commit).
    pub fn delete(&mut self, key: &[u8]) {
        self.set(key, None);
    }

    fn set(&mut self, key: &[u8], value: Option<V>) {
        match self.cache.get_mut(key) {
            Some(slot) => {
                slot.value = value;
                if !slot.dirty {
                    slot.dirty = true;
                    self.dirty.push(key.into());
                }
            }
            None => {
                let slot = Slot {
                    value,
                    dirty: true,
                    weight: 0,
                };
                self.cache.insert(key.into(), slot);
                self.dirty.push(key.into());
            }
        }
    }

    /// Moves every dirty entry into `batch`, in key order (RocksDB's memtable inserts
    /// sorted keys far faster than scattered ones); the entries are clean afterwards.
    pub fn stage(&mut self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let cf = cf(db, self.cf)?;
        self.dirty.sort_unstable();
        for key in self.dirty.drain(..) {
            let Some(slot) = self.cache.get_mut(&key) else {
                continue;
            };
            slot.dirty = false;
            let encoded = match &slot.value {
                Some(v) => {
                    let bytes = codec::encode(v).map_err(|e| StoreError::Corrupt {
                        cf: self.cf,
                        message: e.to_string(),
                    })?;
                    let len = bytes.len();
                    batch.put_cf(cf, &key, bytes);
                    len
                }
                None => {
                    batch.delete_cf(cf, &key);
                    0
                }
            };
            self.bytes -= slot.weight;
            slot.weight = weight::<V>(&key, encoded);
            self.bytes += slot.weight;
        }
        Ok(())
    }

    /// Drops clean entries, until the cache is a quarter under its budget, if it is over
    /// it. Only once the staged batch is in RocksDB: until then the cache is where its
    /// values are read from. Dirty entries (not yet staged) always stay.
    pub fn evict_if_over_budget(&mut self) {
        if self.bytes <= self.budget {
            return;
        }
        let target = self.budget / 4 * 3;
        let bytes = &mut self.bytes;
        self.cache.retain(|_, slot| {
            if slot.dirty || *bytes <= target {
                return true;
            }
            *bytes -= slot.weight;
            false
        });
    }
}

/// The estimated memory of a cache entry: the hash table's slot with its share of empty
/// slots (at most 1/8 empty before it grows), the key with its allocation header, and the
/// heap parts of the value (about its varint encoding).
fn weight<V>(key: &[u8], encoded: usize) -> usize {
    std::mem::size_of::<(Box<[u8]>, Slot<V>)>() * 5 / 4 + key.len() + 16 + encoded
}

/// The handle of a column family that [`super::Store::open`] created.
pub fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::Incompatible(format!("column family {name} is missing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_over_budget_drops_clean_entries_to_a_quarter_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = DB::open_cf(&opts, dir.path(), ["t"]).unwrap();
        let budget = 64 << 10;
        let mut table: Table<String> = Table::new("t", budget);
        for i in 0..10_000 {
            table.put(format!("k{i}").as_bytes(), format!("value {i}"));
        }
        let mut batch = WriteBatch::default();
        table.stage(&db, &mut batch).unwrap();
        db.write(batch).unwrap();
        let weighed = |t: &Table<String>| t.cache.values().map(|s| s.weight).sum::<usize>();
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
}
