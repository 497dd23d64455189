//! Compact ids for entity names: every name is interned on first sight into a dense
//! `u32`, so that the in-memory index ([`super::index`]) holds fixed-width records in
//! arrays and links entities by id instead of by string. The names live in pages of
//! 1 MiB (no allocation per name) and a hash table holds only the ids; the name looked
//! up last is remembered, since an event asks for its entity several times.

use std::cell::Cell;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

use super::paged::Paged;

/// An interned name.
pub type Id = u32;

/// The bytes of a page of names; a name is never split between two.
const PAGE: usize = 1 << 20;
/// The longest name: its length and its offset in its page take 20 bits each.
const LONGEST: usize = PAGE - 1;

/// Names and their ids, both directions.
#[derive(Default)]
pub struct Ids {
    /// The names, one after another.
    pages: Vec<Vec<u8>>,
    /// Where the name of each id is: page << 40 | offset << 20 | length.
    at: Paged<u64>,
    /// The ids, found by the hash of their name.
    table: HashTable<Id>,
    hasher: FixedState,
    /// The id found last, if any.
    last: Cell<Option<Id>>,
}

impl Ids {
    /// How many names are interned.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// The id of `name`, if it was interned.
    pub fn get(&self, name: &str) -> Option<Id> {
        if let Some(id) = self
            .last
            .get()
            .filter(|&id| self.bytes(id) == name.as_bytes())
        {
            return Some(id);
        }
        let hash = self.hasher.hash_one(name.as_bytes());
        let id = self
            .table
            .find(hash, |&id| self.bytes(id) == name.as_bytes())
            .copied();
        if id.is_some() {
            self.last.set(id);
        }
        id
    }

    /// The id of `name`, interning it first if needed; None when every id is taken or
    /// the name is longer than 1 MiB.
    pub fn intern(&mut self, name: &str) -> Option<Id> {
        if let Some(id) = self.get(name) {
            return Some(id);
        }
        let bytes = name.as_bytes();
        // The largest id stays free: it marks "none" in the index.
        let id = Id::try_from(self.at.len())
            .ok()
            .filter(|&id| id < Id::MAX)?;
        if bytes.len() > LONGEST {
            return None;
        }
        if self
            .pages
            .last()
            .is_none_or(|p| p.len() + bytes.len() > PAGE)
        {
            self.pages.push(Vec::with_capacity(PAGE));
        }
        let page = self.pages.len() - 1;
        let offset = self.pages[page].len();
        self.pages[page].extend_from_slice(bytes);
        self.at
            .push((page as u64) << 40 | (offset as u64) << 20 | bytes.len() as u64);
        let hash = self.hasher.hash_one(bytes);
        let (pages, at, hasher) = (&self.pages, &self.at, &self.hasher);
        self.table
            .insert_unique(hash, id, |&id| hasher.hash_one(slice(pages, at, id)));
        Some(id)
    }

    /// The name of `id`.
    pub fn name(&self, id: Id) -> &str {
        // Only whole names are stored, each from a `&str`.
        std::str::from_utf8(self.bytes(id)).unwrap_or_default()
    }

    fn bytes(&self, id: Id) -> &[u8] {
        slice(&self.pages, &self.at, id)
    }

    /// The bytes it holds (names, where they are, and the table).
    pub fn heap_bytes(&self) -> usize {
        self.pages.len() * PAGE + self.at.heap_bytes() + self.table.capacity() * 5
    }
}

fn slice<'a>(pages: &'a [Vec<u8>], at: &Paged<u64>, id: Id) -> &'a [u8] {
    let Some(&at) = at.get(id as usize) else {
        return &[];
    };
    let (page, offset, len) = (at >> 40, (at >> 20) & LONGEST as u64, at & LONGEST as u64);
    pages
        .get(page as usize)
        .and_then(|p| p.get(offset as usize..(offset + len) as usize))
        .unwrap_or_default()
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
        assert_eq!(
            (ids.name(0), ids.name(1), ids.name(2)),
            ("a", "svc@corp", "")
        );
        for i in 0..10_000 {
            assert_eq!(ids.intern(&format!("key-{i}")), Some(3 + i));
        }
        for i in 0..10_000 {
            assert_eq!(ids.get(&format!("key-{i}")), Some(3 + i));
            assert_eq!(ids.name(3 + i), format!("key-{i}"));
        }
        assert_eq!(ids.len(), 10_003);
        assert_eq!(ids.intern(&"x".repeat(PAGE)), None, "too long");
        let long = "y".repeat(LONGEST);
        let id = ids.intern(&long).unwrap();
        assert_eq!((ids.name(id), ids.get("a")), (long.as_str(), Some(0)));
    }
}
