//! The hygiene clocks of busy credentials, logged instead of rewritten (SPEC §4b).
//!
//! Every use of an API key moves its `last_active` clock: written as its entity row,
//! that is one row rewrite per busy key per commit — most of what hygiene cost. Instead, a
//! row whose only change is its clocks is *held*: changed in the row cache, kept in
//! memory, and not written; the commit writes one record to the `meta` column family
//! with the clocks of every entity that changed since the last one. The row in RocksDB
//! plus the log, read in order, is the state, so each commit stays complete: a restart
//! reads the log back into the held rows ([`ClockLog::load`]) and a read-only view lays
//! it over the rows it reads ([`LogReader`]).
//!
//! Once an entity is held, every change of its clocks is logged, whoever writes or
//! deletes its row ([`ClockLog::follow`]), so the log's last word on an entity is always
//! its clocks. When the held rows outgrow their share of the budget, or the log four
//! entries for each row that may be held, a commit writes them all as rows and deletes
//! the log in the same batch ([`ClockLog::stage`]).

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};

use super::table::{cf, Table};
use crate::error::StoreError;
use crate::model::entity::{Clocks, EntityRow, HygieneClock};
use crate::time::Micros;

/// The prefix of the log's records in `meta`; a record's key ends in its sequence.
const PREFIX: &[u8] = b"clocks/";

/// One entry of a record: an entity and its clocks (`None`: its row was deleted).
pub type Logged = (Box<[u8]>, Option<Clocks>);

/// The clocks a log holds, by entity (`None`: the row is gone).
pub type LoggedClocks = HashMap<Box<[u8]>, Option<Clocks>>;

/// Which entities are held since their rows were last written, and which of them changed
/// since the last record.
#[derive(Default)]
pub struct ClockLog {
    /// By entity: whether it changed since the last record.
    held: HashMap<Box<[u8]>, bool, RandomState>,
    /// The keys changed since the last record, in the order they changed.
    changed: Vec<Box<[u8]>>,
    /// The sequence of the next record.
    next: u64,
    /// The entries of the records in RocksDB.
    logged: usize,
}

impl ClockLog {
    /// The log a state directory holds, and the clocks of the rows to hold again (their
    /// rows in RocksDB are older; `None`: the row is gone).
    pub fn load(db: &DB) -> Result<(ClockLog, Vec<Logged>), StoreError> {
        let mut log = ClockLog::default();
        let mut clocks = HashMap::<_, _, RandomState>::default();
        let load = |seq, entries: Vec<Logged>| {
            log.next = seq + 1;
            log.logged += entries.len();
            clocks.extend(entries);
        };
        for_records(db, 0, load, false)?;
        log.held = clocks.keys().map(|key| (key.clone(), false)).collect();
        Ok((log, clocks.into_iter().collect()))
    }

    /// `key`'s row changed in its clocks only, in the row cache: held from now on.
    pub fn hold(&mut self, key: &[u8]) {
        match self.held.get_mut(key) {
            Some(changed) => {
                if !std::mem::replace(changed, true) {
                    self.changed.push(key.into());
                }
            }
            None => {
                self.held.insert(key.into(), true);
                self.changed.push(key.into());
            }
        }
    }

    /// `key`'s row is written or deleted: logged too if it is held, so that the log's
    /// last word on it stays its clocks.
    pub fn follow(&mut self, key: &[u8]) {
        if self.held.contains_key(key) {
            self.hold(key);
        }
    }

    /// Moves the changes into `batch`: one record of the clocks changed since the last
    /// one, as the rows hold them now — or, when more than `limit` rows are held or the
    /// log has more than four entries for each (a few busy keys, committed often, live),
    /// every held row released to be written as a row (`rows` stages them after this)
    /// and the whole log deleted. So a restart reads back at most that much.
    pub fn stage(
        &mut self,
        db: &DB,
        batch: &mut WriteBatch,
        rows: &mut Table<EntityRow>,
        limit: usize,
    ) -> Result<(), StoreError> {
        let meta = cf(db, "meta")?;
        if self.held.len() > limit || self.logged > limit.saturating_mul(4) {
            for key in self.held.keys() {
                rows.release(key);
            }
            batch.delete_range_cf(meta, record_key(0), record_key(self.next));
            // An empty record starts the log afresh, so sequences never repeat, even
            // across restarts: a reader tells a new log from the one it read by its first.
            batch.put_cf(meta, record_key(self.next), []);
            self.next += 1;
            self.held.clear();
            self.changed.clear();
            self.logged = 0;
            return Ok(());
        }
        if self.changed.is_empty() {
            return Ok(());
        }
        let mut record = Vec::with_capacity(self.changed.len() * 48);
        for key in self.changed.drain(..) {
            if let Some(changed) = self.held.get_mut(&key) {
                *changed = false;
            }
            let clocks = rows.read(db, &key, |row| row.map(|r| r.clocks))?;
            encode(&mut record, &key, clocks.as_ref());
            self.logged += 1;
        }
        batch.put_cf(meta, record_key(self.next), record);
        self.next += 1;
        Ok(())
    }
}

/// The clock log as a reader last read it, to lay over the rows it reads: brought up to
/// date by reading only the records added since, or all of them once a commit has
/// written the held rows out and started the log afresh.
#[derive(Default)]
pub struct LogReader {
    /// The sequence of the first record read: another one means another log.
    first: Option<u64>,
    /// The sequence after the last record read.
    next: u64,
    clocks: Arc<LoggedClocks>,
}

impl LogReader {
    /// The clocks the log in `db` holds now.
    pub fn refresh(&mut self, db: &DB) -> Result<Arc<LoggedClocks>, StoreError> {
        let mut first = None;
        for_records(db, 0, |seq, _| first = Some(seq), true)?;
        if first != self.first {
            *self = LogReader {
                first,
                ..LogReader::default()
            };
        }
        let clocks = &mut self.clocks;
        let next = &mut self.next;
        for_records(
            db,
            *next,
            |seq, entries| {
                *next = seq + 1;
                Arc::make_mut(clocks).extend(entries);
            },
            false,
        )?;
        Ok(Arc::clone(&self.clocks))
    }
}

/// Calls `f` with the sequence and entries of each record from sequence `from` on,
/// oldest first (only the first record's, when `first_only`).
fn for_records(
    db: &DB,
    from: u64,
    mut f: impl FnMut(u64, Vec<Logged>),
    first_only: bool,
) -> Result<(), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt {
        cf: "meta",
        message: format!("clock log: {what}"),
    };
    let start = record_key(from);
    let iter = db.iterator_cf(
        cf(db, "meta")?,
        IteratorMode::From(&start, Direction::Forward),
    );
    for item in iter {
        let (key, value) = item?;
        let Some(seq) = key.strip_prefix(PREFIX) else {
            break;
        };
        let seq = <[u8; 8]>::try_from(seq)
            .map(u64::from_be_bytes)
            .map_err(|_| corrupt("a key of another length"))?;
        if first_only {
            f(seq, Vec::new());
            break;
        }
        f(
            seq,
            decode(&value).ok_or_else(|| corrupt("a truncated record"))?,
        );
    }
    Ok(())
}

fn record_key(seq: u64) -> Vec<u8> {
    [PREFIX, &seq.to_be_bytes()].concat()
}

/// Appends an entry: the key's length (4 bytes) and bytes, then a presence byte per
/// clock — 0 none, 1 armed, 2 armed with a timer — followed by its times (8 bytes each,
/// little-endian); a single byte 3 for a deleted row. A record is written for every
/// commit, so this is kept to copies, not a general encoder.
fn encode(out: &mut Vec<u8>, key: &[u8], clocks: Option<&Clocks>) {
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(key);
    let Some(clocks) = clocks else {
        out.push(GONE);
        return;
    };
    for clock in clocks {
        match clock {
            None => out.push(0),
            Some(c) => {
                out.push(if c.timer.is_some() { 2 } else { 1 });
                out.extend_from_slice(&c.since.0.to_le_bytes());
                out.extend_from_slice(&c.deadline.0.to_le_bytes());
                if let Some(timer) = c.timer {
                    out.extend_from_slice(&timer.0.to_le_bytes());
                }
            }
        }
    }
}

/// The tag of a deleted row, in place of the first clock's.
const GONE: u8 = 3;

/// The entries of a record; `None` when it is truncated or malformed.
fn decode(mut bytes: &[u8]) -> Option<Vec<Logged>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        Some(head)
    }
    fn time(bytes: &mut &[u8]) -> Option<Micros> {
        Some(Micros(i64::from_le_bytes(take(bytes, 8)?.try_into().ok()?)))
    }
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().ok()?);
        let key: Box<[u8]> = take(&mut bytes, usize::try_from(len).ok()?)?.into();
        if bytes.first() == Some(&GONE) {
            take(&mut bytes, 1)?;
            entries.push((key, None));
            continue;
        }
        let mut clocks: Clocks = [None; 2];
        for clock in &mut clocks {
            let tag = take(&mut bytes, 1)?[0];
            if tag == 0 {
                continue;
            }
            let (since, deadline) = (time(&mut bytes)?, time(&mut bytes)?);
            let timer = match tag {
                1 => None,
                2 => Some(time(&mut bytes)?),
                _ => return None,
            };
            *clock = Some(HygieneClock {
                since,
                deadline,
                timer,
            });
        }
        entries.push((key, Some(clocks)));
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::super::{codec, MemoryBudget, Store};
    use super::*;

    /// Clocks whose `last_active` is `t`.
    fn used_at(t: i64) -> Clocks {
        [
            None,
            Some(HygieneClock {
                since: Micros(t),
                deadline: Micros(t + 100),
                timer: Some(Micros(100)),
            }),
        ]
    }

    /// The state directory `dir`, opened read-only beside the store writing it.
    fn read_only(dir: &std::path::Path) -> DB {
        let families = super::super::COLUMN_FAMILIES;
        DB::open_cf_for_read_only(&rocksdb::Options::default(), dir, families, false).unwrap()
    }

    /// The clocks of `entity` as its row in RocksDB has them, without the log.
    fn stored_row(dir: &std::path::Path, entity: &str) -> Option<Clocks> {
        let db = read_only(dir);
        let bytes = db
            .get_cf(db.cf_handle("entities").unwrap(), entity)
            .unwrap()?;
        Some(codec::decode::<EntityRow>(&bytes).unwrap().clocks)
    }

    /// The entries of the log in `dir`.
    fn entries(dir: &std::path::Path) -> usize {
        let mut n = 0;
        for_records(&read_only(dir), 0, |_, e| n += e.len(), false).unwrap();
        n
    }

    fn row(clocks: Clocks) -> EntityRow {
        EntityRow {
            clocks,
            ..EntityRow::default()
        }
    }

    #[test]
    fn clocks_changed_alone_are_logged_not_rewritten_and_read_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.put_entity("key-1", row(used_at(1)));
        store.put_entity("key-2", row(used_at(1)));
        store.commit().unwrap();
        for t in 2..5 {
            store.put_clocks("key-1", used_at(t)).unwrap();
            store.commit().unwrap();
        }
        assert_eq!(
            store.view().entity("key-1").unwrap().unwrap().clocks,
            used_at(4)
        );
        drop(store);
        assert_eq!(
            stored_row(dir.path(), "key-1"),
            Some(used_at(1)),
            "not rewritten"
        );
        assert_eq!(entries(dir.path()), 3, "an entry a commit");

        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.entity("key-1").unwrap().clocks, used_at(4));
        assert_eq!(store.entity("key-2").unwrap().clocks, used_at(1));
        // Written as a row now (a rotation), the row has the last word, in the log too.
        store.put_entity("key-1", row(used_at(7)));
        store.commit().unwrap();
        store.put_clocks("key-2", used_at(8)).unwrap();
        store.commit().unwrap();
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.entity("key-1").unwrap().clocks, used_at(7));
        assert_eq!(store.entity("key-2").unwrap().clocks, used_at(8));
        let view = store.view();
        assert_eq!(view.entity("key-1").unwrap().unwrap().clocks, used_at(7));
        assert_eq!(view.entity("key-2").unwrap().unwrap().clocks, used_at(8));
    }

    #[test]
    fn a_held_entity_that_moves_away_stays_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.put_entity("key-1", row(used_at(1)));
        store.commit().unwrap();
        store.put_clocks("key-1", used_at(2)).unwrap();
        store.commit().unwrap();
        let tree = store.take_tree("key-1").unwrap();
        assert_eq!(tree.entities[0].1.clocks, used_at(2));
        store.commit().unwrap();
        assert_eq!(store.view().entity("key-1").unwrap(), None);
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.entity("key-1").unwrap(), EntityRow::default());
        store.put_tree(tree);
        store.commit().unwrap();
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.entity("key-1").unwrap().clocks, used_at(2));
    }

    #[test]
    fn past_their_share_of_the_budget_the_held_rows_are_written_and_the_log_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let budget = MemoryBudget::MIN;
        let many = budget.held_rows() + 1;
        let mut store = Store::open_with(dir.path(), budget).unwrap();
        for i in 0..many {
            store.put_entity(&format!("key-{i}"), row(used_at(1)));
        }
        store.commit().unwrap();
        for i in 0..many - 1 {
            store.put_clocks(&format!("key-{i}"), used_at(2)).unwrap();
        }
        store.commit().unwrap();
        drop(store);
        assert_eq!(
            entries(dir.path()),
            many - 1,
            "held up to the limit: logged"
        );
        let mut store = Store::open_with(dir.path(), budget).unwrap();
        let last = format!("key-{}", many - 1);
        assert_eq!(store.entity(&last).unwrap().clocks, used_at(1));
        store.put_clocks(&last, used_at(3)).unwrap();
        store.put_clocks("key-0", used_at(4)).unwrap();
        store.commit().unwrap();
        drop(store);
        assert_eq!(entries(dir.path()), 0, "past it: written as rows");
        assert_eq!(stored_row(dir.path(), "key-1"), Some(used_at(2)));
        assert_eq!(stored_row(dir.path(), "key-0"), Some(used_at(4)));
        assert_eq!(
            stored_row(dir.path(), &format!("key-{}", many - 1)),
            Some(used_at(3))
        );
    }

    #[test]
    fn a_record_reads_back_as_written_and_a_truncated_one_is_refused() {
        let mut armed = used_at(5);
        armed[0] = Some(HygieneClock {
            since: Micros(-1),
            deadline: Micros(i64::MAX),
            timer: None,
        });
        let entries: Vec<Logged> = vec![
            ("key-1".as_bytes().into(), Some(used_at(1))),
            ("".as_bytes().into(), Some([None; 2])),
            ("gone".as_bytes().into(), None),
            ("key-ü".as_bytes().into(), Some(armed)),
        ];
        let mut record = Vec::new();
        for (key, clocks) in &entries {
            encode(&mut record, key, clocks.as_ref());
        }
        assert_eq!(decode(&record), Some(entries));
        assert_eq!(decode(&record[..record.len() - 1]), None);
        assert_eq!(decode(&record[..3]), None);
    }

    #[test]
    fn a_log_four_times_the_held_rows_is_written_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.hold_at_most(2);
        store.put_entity("key-1", row(used_at(1)));
        store.commit().unwrap();
        for t in 2..10 {
            store.put_clocks("key-1", used_at(t)).unwrap();
            store.commit().unwrap();
        }
        drop(store);
        assert_eq!(entries(dir.path()), 8, "up to 4 for each of 2 rows");
        let mut store = Store::open(dir.path()).unwrap();
        store.hold_at_most(2);
        store.put_clocks("key-1", used_at(10)).unwrap();
        store.commit().unwrap();
        store.put_clocks("key-1", used_at(11)).unwrap();
        store.commit().unwrap();
        drop(store);
        assert_eq!(entries(dir.path()), 0, "9 entries: written out");
        assert_eq!(stored_row(dir.path(), "key-1"), Some(used_at(11)));
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.entity("key-1").unwrap().clocks, used_at(11));
        store.put_clocks("key-1", used_at(12)).unwrap();
        store.commit().unwrap();
        drop(store);
        assert_eq!(entries(dir.path()), 1, "logged afresh");
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.entity("key-1").unwrap().clocks, used_at(12));
    }

    #[test]
    fn a_view_reads_what_the_log_added_and_a_log_started_afresh_anew() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.hold_at_most(1);
        store.put_entity("key-1", row(used_at(1)));
        store.put_entity("key-2", row(used_at(1)));
        store.commit().unwrap();
        let view = store.view();
        let seen = |entity: &str| view.entity(entity).unwrap().unwrap().clocks;
        for t in 2..5 {
            store.put_clocks("key-1", used_at(t)).unwrap();
            store.commit().unwrap();
            assert_eq!(seen("key-1"), used_at(t), "what was added");
        }
        // A second held row: over the limit, both are written and the log starts afresh.
        store.put_clocks("key-2", used_at(5)).unwrap();
        store.commit().unwrap();
        assert_eq!(entries(dir.path()), 0);
        assert_eq!((seen("key-1"), seen("key-2")), (used_at(4), used_at(5)));
        store.put_clocks("key-2", used_at(6)).unwrap();
        store.put_entity("key-1", row(used_at(9)));
        store.commit().unwrap();
        assert_eq!(entries(dir.path()), 1);
        assert_eq!(
            (seen("key-1"), seen("key-2")),
            (used_at(9), used_at(6)),
            "the old log's clocks are gone"
        );
    }
}
