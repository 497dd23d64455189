//! The redelivery filter (SPEC §1): the (`system`, `event_id`) of every applied event,
//! one key each in the `seen` column family. Unlike the other tables it keeps no read
//! cache — nearly every lookup is of an id never seen, which RocksDB's bloom filters
//! answer, and a cache of those would only grow — just the ids marked since the last
//! commit and those of the batch being written (which RocksDB cannot answer for yet),
//! and the answers of the last prefetch.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;
use rocksdb::{WriteBatch, DB};

use super::key_filter::WrittenKeys;
use super::table::cf;
use crate::error::StoreError;

const CF: &str = "seen";

/// The ids applied, as far as this process has marked them.
#[derive(Default)]
pub struct Seen {
    /// Marked since the last stage.
    fresh: HashSet<Box<[u8]>, RandomState>,
    /// Staged in the batch being written.
    writing: HashSet<Box<[u8]>, RandomState>,
    /// Whether RocksDB held each prefetched key when it was read.
    prefetched: HashMap<Box<[u8]>, bool, RandomState>,
    /// Every key staged, when it knows them all (a store created by this process).
    written: WrittenKeys,
}

impl Seen {
    /// Keeps a filter of `bytes` of the keys it writes, and answers ids never marked
    /// without RocksDB: for a store created by this process.
    pub fn filter_written(&mut self, bytes: usize) {
        self.written = WrittenKeys::all(bytes);
    }

    /// Looks `keys` up in one batched read, so that marking them needs no read.
    pub fn prefetch(&mut self, db: &DB, mut keys: Vec<Vec<u8>>) -> Result<(), StoreError> {
        keys.retain(|k| {
            !self.pending(k)
                && !self.prefetched.contains_key(k.as_slice())
                && self.written.may_hold(k)
        });
        if keys.is_empty() {
            return Ok(());
        }
        keys.sort_unstable();
        keys.dedup();
        let found = db.batched_multi_get_cf(cf(db, CF)?, &keys, true);
        for (key, value) in keys.into_iter().zip(found) {
            self.prefetched
                .insert(key.into_boxed_slice(), value?.is_some());
        }
        Ok(())
    }

    /// Marks `key`; false when it was marked before (a redelivery).
    pub fn mark(&mut self, db: &DB, key: Vec<u8>) -> Result<bool, StoreError> {
        if self.pending(&key) {
            return Ok(false);
        }
        let known = match self.prefetched.remove(key.as_slice()) {
            Some(found) => found,
            None if !self.written.may_hold(&key) => false,
            None => db.get_pinned_cf(cf(db, CF)?, &key)?.is_some(),
        };
        if !known {
            self.fresh.insert(key.into_boxed_slice());
        }
        Ok(!known)
    }

    fn pending(&self, key: &[u8]) -> bool {
        self.fresh.contains(key) || self.writing.contains(key)
    }

    /// Moves the new marks into `batch` in key order; they count as being written until
    /// [`Seen::written`]. Prefetched answers are dropped: RocksDB is about to change.
    pub fn stage(&mut self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let cf = cf(db, CF)?;
        let mut keys: Vec<&[u8]> = self.fresh.iter().map(|k| &**k).collect();
        keys.sort_unstable();
        for key in keys {
            batch.put_cf(cf, key, []);
            self.written.insert(key);
        }
        // `writing` is empty once the last batch was written; were it not, its keys
        // would only be staged (and written) once more.
        std::mem::swap(&mut self.fresh, &mut self.writing);
        self.prefetched.clear();
        Ok(())
    }

    /// The staged batch is in RocksDB: its marks are read from there now.
    pub fn written(&mut self) {
        self.writing.clear();
    }
}
