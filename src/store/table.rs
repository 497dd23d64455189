//! A typed view of one column family with a write-back cache. Reads go to the cache,
//! then to RocksDB; writes stay in the cache, marked dirty, until the store commits them
//! all in one `WriteBatch`. The cache is bounded: after a commit, a table whose cache
//! outgrew its budget drops its clean entries, so memory stays flat however large the
//! state grows.

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
}

/// One column family of `V` values, bincode-encoded.
pub struct Table<V> {
    cf: &'static str,
    budget: usize,
    cache: HashMap<Box<[u8]>, Slot<V>, RandomState>,
    dirty: Vec<Box<[u8]>>,
}

impl<V: Serialize + DeserializeOwned + Clone> Table<V> {
    /// A table over column family `cf` keeping at most about `budget` cached entries.
    pub fn new(cf: &'static str, budget: usize) -> Self {
        Table {
            cf,
            budget,
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
        let value: Option<V> = match db.get_pinned_cf(cf, key)? {
            Some(bytes) => Some(codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                cf: self.cf,
                message: e.to_string(),
            })?),
            None => None,
        };
        let result = f(value.as_ref());
        self.cache.insert(
            key.into(),
            Slot {
                value,
                dirty: false,
            },
        );
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
        for (key, value) in keys.into_iter().zip(values) {
            let value = match value? {
                Some(bytes) => Some(codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                    cf: self.cf,
                    message: e.to_string(),
                })?),
                None => None,
            };
            self.cache.insert(
                key.into(),
                Slot {
                    value,
                    dirty: false,
                },
            );
        }
        Ok(())
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
                self.cache.insert(key.into(), Slot { value, dirty: true });
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
            match &slot.value {
                Some(v) => {
                    let bytes = codec::encode(v).map_err(|e| StoreError::Corrupt {
                        cf: self.cf,
                        message: e.to_string(),
                    })?;
                    batch.put_cf(cf, &key, bytes);
                }
                None => batch.delete_cf(cf, &key),
            }
        }
        Ok(())
    }

    /// Drops the clean entries if the cache outgrew its budget. Only once the staged
    /// batch is in RocksDB: until then the cache is where its values are read from.
    /// Dirty entries (not yet staged) always stay.
    pub fn evict_if_over_budget(&mut self) {
        if self.cache.len() > self.budget {
            self.cache.retain(|_, slot| slot.dirty);
        }
    }
}

/// The handle of a column family that [`super::Store::open`] created.
pub fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::Incompatible(format!("column family {name} is missing")))
}
