//! Where consumption stands and what waits to be produced: the `positions` and `outbox`
//! column families, committed in the same batch as the state they belong to.

use rocksdb::IteratorMode;
use serde::{Deserialize, Serialize};

use super::family::Family;
use super::{codec, Store};
use crate::error::StoreError;

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

pub(super) fn outbox_seq(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt {
        cf: Family::Outbox.name(),
        message: format!("undecodable key {key:?}"),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

impl Store {
    /// The stored position of every (topic, partition).
    pub fn positions(&self) -> Result<Vec<(String, i32, Position)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(Family::Positions.handle(&self.db)?, IteratorMode::Start)
        {
            let (key, value) = item?;
            let corrupt = || StoreError::Corrupt {
                cf: Family::Positions.name(),
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
            .iterator_cf(Family::Outbox.handle(&self.db)?, IteratorMode::Start)
        {
            let (key, value) = item?;
            let record = codec::decode(&value).map_err(|e| StoreError::Corrupt {
                cf: Family::Outbox.name(),
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

    #[test]
    fn a_position_stored_as_a_bare_offset_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cf = Family::Positions.handle(&store.db).unwrap();
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
