//! Prefetch: before a run of events is applied, the redelivery marks only RocksDB can
//! answer for are read in one batch (on another thread when there are enough). The
//! index is not warmed ahead: touching a run's entities first cost the correlator's
//! thread what it saved it (1.3M identities: 216k events/s warming, 224k–231k not).
//! What a run's events look up in the index is asked for a few events ahead instead
//! ([`Store::look_ahead`]): prefetch instructions, which the thread does not wait for,
//! in three stages — a name's slot in the id table, then its id's place and node, then
//! its name's bytes and its row — so that the misses of several events overlap.

use std::sync::Arc;

use rocksdb::DB;

use super::{keys, seen, Store};
use crate::error::StoreError;
use crate::event::IdentityEvent;

/// Asks the CPU to bring the line holding `value` into its caches; nothing else.
pub(super) fn line<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and faults on nothing; the address is a live
    // reference's.
    unsafe {
        std::arch::x86_64::_mm_prefetch(
            (value as *const T).cast::<i8>(),
            std::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// A stage of prefetching what a look-up of a name reads, each a few events after the
/// one before it ([`Store::look_ahead`]).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Stage {
    /// The name's slot in the id table.
    Slot,
    /// Where the name of the id in that slot is, and the id's node.
    Node,
    /// The name's bytes, and the row.
    Row,
}

/// Each stage, and how far ahead of the event being applied it looks.
const STAGES: [(Stage, usize); 3] = [(Stage::Slot, 12), (Stage::Node, 8), (Stage::Row, 4)];

/// The keys a prefetch must read for a reader thread to pay (while the state fits the
/// caches, a few).
const READS_WORTH_A_THREAD: usize = 256;

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

impl Store {
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

    /// Before applying the event at `i` of a run, whose events `event_at` gives: the
    /// three stages of prefetching the index for the entities and parents of the events
    /// 12, 8 and 4 places ahead of it.
    pub fn look_ahead<'a>(&self, event_at: impl Fn(usize) -> Option<&'a IdentityEvent>, i: usize) {
        for (stage, ahead) in STAGES {
            if let Some(ev) = event_at(i + ahead) {
                self.index.prefetch(&ev.entity, stage);
                if let Some(parent) = &ev.parent {
                    self.index.prefetch(parent, stage);
                }
            }
        }
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
        self.reading.start(move || reads.read(&db))
    }

    /// The keys a prefetch of `events` reads (see [`Store::prefetch`]).
    fn reads<'a>(&mut self, events: impl IntoIterator<Item = &'a IdentityEvent>) -> Reads {
        let seen = events
            .into_iter()
            .map(|e| keys::seen(e.system, &e.event_id))
            .collect();
        let reads = Reads {
            seen: (self.seen.missing(seen), self.seen.stages()),
        };
        self.last_reads = reads.seen.0.len();
        reads
    }

    /// Caches what the last [`Store::start_prefetch`] read (waiting for it).
    pub fn finish_prefetch(&mut self) -> Result<(), StoreError> {
        let Some(read) = self.reading.wait()? else {
            return Ok(());
        };
        let read = read?;
        self.seen.install(read);
        Ok(())
    }
}
