//! The redelivery filter (SPEC §1): the (`system`, `event_id`) of every applied event,
//! one key each in the `seen` column family. Unlike the other tables it keeps no read
//! cache — nearly every lookup is of an id never seen, which RocksDB's bloom filters
//! answer, and a cache of those would only grow — just the ids marked since the last
//! commit and those of the batch being written (which RocksDB cannot answer for yet),
//! and the answers of the last prefetch.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;
use rocksdb::{WriteBatch, DB};

use super::family::Family;
use super::key_filter::WrittenKeys;
use crate::error::StoreError;

/// A set of marks.
type Marks = HashSet<Box<[u8]>, RandomState>;

/// The ids applied, as far as this process has marked them.
#[derive(Default)]
pub struct Seen {
    /// Marked since the last stage.
    fresh: Marks,
    /// Staged in the batch being written (shared with the thread writing it).
    writing: Arc<Marks>,
    /// Whether RocksDB held each prefetched key when it was read.
    prefetched: HashMap<Box<[u8]>, bool, RandomState>,
    /// Every key staged, when it knows them all (a store created by this process); the
    /// thread writing a batch records its keys.
    written: Arc<WrittenKeys>,
    /// How many times marks were staged.
    stages: u64,
}

/// Whether RocksDB held each of some keys, read on any thread for [`Seen::install`].
pub struct Fetched {
    stages: u64,
    found: Vec<(Vec<u8>, bool)>,
}

/// Reads whether RocksDB holds each of `keys` (sorted), for a filter that had staged
/// marks `stages` times when it named them ([`Seen::stages`]).
pub fn fetch(db: &DB, keys: Vec<Vec<u8>>, stages: u64) -> Result<Fetched, StoreError> {
    let mut found = Vec::with_capacity(keys.len());
    if !keys.is_empty() {
        let values = db.batched_multi_get_cf(Family::Seen.handle(db)?, &keys, true);
        for (key, value) in keys.into_iter().zip(values) {
            found.push((key, value?.is_some()));
        }
    }
    Ok(Fetched { stages, found })
}

impl Seen {
    /// Keeps a filter of `bytes` of the keys it writes, and answers ids never marked
    /// without RocksDB: for a store created by this process.
    pub fn filter_written(&mut self, bytes: usize) {
        self.written = Arc::new(WrittenKeys::all(bytes));
    }

    /// The keys of `keys` only RocksDB can answer for, sorted and each once, for
    /// [`fetch`].
    pub fn missing(&self, mut keys: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        keys.retain(|k| {
            !self.pending(k)
                && !self.prefetched.contains_key(k.as_slice())
                && self.written.may_hold(k)
        });
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// How many times marks were staged: answers [`fetch`]ed before the last may be stale.
    pub fn stages(&self) -> u64 {
        self.stages
    }

    /// Keeps the answers [`fetch`] read, unless marks were staged since (RocksDB may
    /// have changed under them).
    pub fn install(&mut self, fetched: Fetched) {
        if fetched.stages != self.stages {
            return;
        }
        for (key, found) in fetched.found {
            self.prefetched.insert(key.into_boxed_slice(), found);
        }
    }

    /// Marks `key`; false when it was marked before (a redelivery).
    pub fn mark(&mut self, db: &DB, key: Vec<u8>) -> Result<bool, StoreError> {
        if self.pending(&key) {
            return Ok(false);
        }
        let known = match self.prefetched.remove(key.as_slice()) {
            Some(found) => found,
            None if !self.written.may_hold(&key) => false,
            None => db.get_pinned_cf(Family::Seen.handle(db)?, &key)?.is_some(),
        };
        if !known {
            self.fresh.insert(key.into_boxed_slice());
        }
        Ok(!known)
    }

    fn pending(&self, key: &[u8]) -> bool {
        self.fresh.contains(key) || self.writing.contains(key)
    }

    /// Takes the new marks out, for the thread that writes the next batch
    /// ([`Staged::put`]); they count as being written until [`Seen::written`].
    /// Prefetched answers are dropped: RocksDB is about to change.
    pub fn stage(&mut self) -> Staged {
        // The last batch is written by now (`Store::write` waits for it first), so
        // `writing` holds nothing RocksDB cannot answer for.
        self.writing = Arc::new(std::mem::take(&mut self.fresh));
        self.prefetched.clear();
        self.stages += 1;
        Staged {
            marks: Arc::clone(&self.writing),
            written: Arc::clone(&self.written),
        }
    }

    /// The staged batch is in RocksDB: its marks are read from there now.
    pub fn written(&mut self) {
        self.writing = Arc::default();
    }
}

/// Marks staged for a batch: put into it, and recorded as written, by the thread that
/// writes it (off the correlator's thread).
pub struct Staged {
    marks: Arc<Marks>,
    written: Arc<WrittenKeys>,
}

impl Staged {
    /// Puts the marks into `batch`, in key order.
    pub fn put(self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let cf = Family::Seen.handle(db)?;
        let mut keys: Vec<&[u8]> = self.marks.iter().map(|k| &**k).collect();
        keys.sort_unstable();
        for key in keys {
            batch.put_cf(cf, key, []);
            self.written.insert(key);
        }
        Ok(())
    }
}
