//! The keys a table has written to RocksDB, as a fixed-size blocked Bloom filter: a key
//! it has never written is answered "absent" without a RocksDB read. Most reads of a
//! replay over a large estate are of ids never seen — a new entity, a new event id — and
//! each would otherwise probe RocksDB's memtables and the filter of every level.
//!
//! Only a store created by this process has one (it must know every key on disk), and it
//! never forgets a key: a filter that fills past its size answers "maybe" more often,
//! which is slower, never wrong. Each key sets [`PROBES`] bits within one 64-byte line, so
//! a lookup costs one cache miss. Its bits are atomic: the thread that writes a batch
//! records the batch's keys while the correlator's thread reads on (it asks only of keys
//! it does not know to be in that batch).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::FixedState;

/// Bits set per key: with ~10 bits a key, about 1% false "maybe".
const PROBES: u64 = 6;
/// Bits in a line (one cache line of 64 bytes).
const LINE_BITS: u64 = 512;

/// The keys a table wrote to RocksDB, as far as it knows them: all of them, in a filter
/// (a store this process created), or none (RocksDB may hold any key).
#[derive(Default)]
pub struct WrittenKeys(Option<KeyFilter>);

impl WrittenKeys {
    /// Every key written from now on, in a filter of at most `bytes` bytes: for a table
    /// whose column family is empty.
    pub fn all(bytes: usize) -> WrittenKeys {
        WrittenKeys(Some(KeyFilter::new(bytes)))
    }

    /// Records `key` as written to RocksDB.
    pub fn insert(&self, key: &[u8]) {
        if let Some(filter) = &self.0 {
            filter.insert(key);
        }
    }

    /// Whether RocksDB may hold `key` (false: it was never written).
    pub fn may_hold(&self, key: &[u8]) -> bool {
        self.0.as_ref().is_none_or(|f| f.may_contain(key))
    }
}

/// A Bloom filter of written keys.
pub struct KeyFilter {
    words: Box<[AtomicU64]>,
    /// The number of lines, a power of two, minus one.
    line_mask: u64,
    hasher: FixedState,
}

impl KeyFilter {
    /// A filter of at most `bytes` bytes (at least one line).
    pub fn new(bytes: usize) -> KeyFilter {
        let most = (bytes / 64).max(1) as u64;
        let lines = 1 << most.ilog2();
        KeyFilter {
            words: zeroed((lines * (LINE_BITS / 64)) as usize),
            line_mask: lines - 1,
            hasher: FixedState::with_seed(0x6b65_795f_6669_6c74),
        }
    }

    /// Records `key` as written (seen by another thread once it synchronises with this
    /// one: a join, a channel).
    pub fn insert(&self, key: &[u8]) {
        for (word, bit) in self.bits(key) {
            self.words[word].fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// False when `key` was certainly never inserted.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.bits(key)
            .all(|(word, bit)| self.words[word].load(Ordering::Relaxed) & bit != 0)
    }

    /// The (word, bit mask) of each of the key's probes.
    fn bits(&self, key: &[u8]) -> impl Iterator<Item = (usize, u64)> {
        let hash = self.hasher.hash_one(key);
        let base = (hash & self.line_mask) * LINE_BITS;
        let (mut at, step) = (hash >> 32, (hash >> 16) | 1);
        (0..PROBES).map(move |_| {
            at = at.wrapping_add(step);
            let bit = base + at % LINE_BITS;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }
}

/// `n` words at 0, from zeroed memory: a large filter's pages are not resident until a
/// key sets a bit there.
fn zeroed(n: usize) -> Box<[AtomicU64]> {
    let Ok(layout) = std::alloc::Layout::array::<AtomicU64>(n) else {
        return (0..n).map(|_| AtomicU64::new(0)).collect();
    };
    if layout.size() == 0 {
        return Box::new([]);
    }
    // SAFETY: the layout has a non-zero size; zeroed bytes are a valid `AtomicU64` (it
    // has the in-memory representation of `u64`), and the box frees the memory with the
    // layout it was allocated with (that of `[AtomicU64]` of length `n`).
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout).cast::<AtomicU64>();
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inserted_key_is_always_found_and_others_mostly_not() {
        let filter = KeyFilter::new(128 << 10);
        for i in 0..100_000 {
            filter.insert(format!("svc-{i:06}@corp.example/key-0").as_bytes());
        }
        for i in 0..100_000 {
            assert!(filter.may_contain(format!("svc-{i:06}@corp.example/key-0").as_bytes()));
        }
        let wrong = (0..100_000)
            .filter(|i| filter.may_contain(format!("svc-{i:06}@corp.example/key-1").as_bytes()))
            .count();
        assert!(
            wrong < 3_000,
            "{wrong} of 100,000 never inserted said maybe"
        );
    }

    #[test]
    fn a_tiny_filter_is_one_line_and_full_it_says_maybe() {
        let filter = KeyFilter::new(0);
        assert_eq!(filter.words.len(), 8);
        for i in 0..10_000 {
            filter.insert(format!("k{i}").as_bytes());
        }
        assert!(filter.may_contain(b"never inserted"));
    }
}
