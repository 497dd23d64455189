//! Compact ids for entity names: every name is interned on first sight into a dense
//! `u32`, so that the in-memory index ([`super::index`]) holds fixed-width records in
//! arrays and links entities by id instead of by string. The names live in one arena
//! (no allocation per name) and a hash table holds only the ids, hashing a name once
//! per look-up.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

/// An interned name.
pub type Id = u32;

/// Names and their ids, both directions.
#[derive(Default)]
pub struct Ids {
    /// Every name, one after another, in id order.
    arena: Vec<u8>,
    /// Where the name of each id ends in `arena` (it starts where the one before ends).
    ends: Vec<u64>,
    /// The ids, found by the hash of their name.
    table: HashTable<Id>,
    hasher: FixedState,
}

impl Ids {
    /// How many names are interned.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The id of `name`, if it was interned.
    pub fn get(&self, name: &str) -> Option<Id> {
        let hash = self.hasher.hash_one(name.as_bytes());
        self.table
            .find(hash, |&id| self.bytes(id) == name.as_bytes())
            .copied()
    }

    /// The id of `name`, interning it first if needed; None when every id is taken.
    pub fn intern(&mut self, name: &str) -> Option<Id> {
        let hash = self.hasher.hash_one(name.as_bytes());
        let (arena, ends, hasher) = (&self.arena, &self.ends, &self.hasher);
        let slice = |id: Id| slice(arena, ends, id);
        if let Some(&id) = self.table.find(hash, |&id| slice(id) == name.as_bytes()) {
            return Some(id);
        }
        // The largest id stays free: it marks "none" in the index.
        let id = Id::try_from(self.ends.len()).ok().filter(|&id| id < Id::MAX)?;
        self.table
            .insert_unique(hash, id, |&id| hasher.hash_one(slice(id)));
        self.arena.extend_from_slice(name.as_bytes());
        self.ends.push(self.arena.len() as u64);
        Some(id)
    }

    /// The name of `id`.
    pub fn name(&self, id: Id) -> &str {
        // Only whole names are stored, each from a `&str`.
        std::str::from_utf8(self.bytes(id)).unwrap_or_default()
    }

    fn bytes(&self, id: Id) -> &[u8] {
        slice(&self.arena, &self.ends, id)
    }

    /// The bytes it holds (arena, ends and table).
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.ends.capacity() * 8 + self.table.capacity() * 5
    }

}

fn slice<'a>(arena: &'a [u8], ends: &[u64], id: Id) -> &'a [u8] {
    let i = id as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &arena[start..ends[i] as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_dense_ids_in_order_of_first_sight_and_keep_them() {
        let mut ids = Ids::default();
        assert_eq!(ids.get("a"), None);
        assert_eq!(ids.intern("a"), Some(0));
        assert_eq!(ids.intern("svc@corp"), Some(1));
        assert_eq!(ids.intern("a"), Some(0));
        assert_eq!(ids.intern(""), Some(2));
        assert_eq!(ids.get("svc@corp"), Some(1));
        assert_eq!((ids.name(0), ids.name(1), ids.name(2)), ("a", "svc@corp", ""));
        for i in 0..10_000 {
            assert_eq!(ids.intern(&format!("key-{i}")), Some(3 + i));
        }
        for i in 0..10_000 {
            assert_eq!(ids.get(&format!("key-{i}")), Some(3 + i));
            assert_eq!(ids.name(3 + i), format!("key-{i}"));
        }
        assert_eq!(ids.len(), 10_003);
    }
}
