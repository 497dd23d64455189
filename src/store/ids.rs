//! Compact ids for entity names: every name is interned on first sight into a dense
//! `u32`, so that the in-memory index ([`super::index`]) holds fixed-width records in
//! arrays and links entities by id instead of by string. The names live in pages of
//! 1 MiB (no allocation per name), each after its length; where a name is takes 4 bytes
//! an id, and a hash table holds only the ids; the name looked up last is remembered,
//! since an event asks for its entity several times.

use std::cell::Cell;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;

use super::id_table::IdTable;
use super::packed;
use super::paged::Paged;
use super::prefetch::{line, Stage};

/// An interned name.
pub type Id = u32;

/// The bytes of a page of names; a name is never split between two.
const PAGE: usize = 1 << 20;
/// The longest name: with its length (3 bytes at most) it fits in a page.
const LONGEST: usize = PAGE - 3;
/// The most pages: a name's place is its page and its offset in 12 and 20 bits (4 GiB
/// of names, some 150 million of the usual length).
const MOST_PAGES: usize = 1 << 12;

/// Names and their ids, both directions.
#[derive(Default)]
pub struct Ids {
    /// The names, one after another.
    pages: Vec<Vec<u8>>,
    /// Where the name of each id is: page << 20 | offset of its length.
    at: Paged<u32>,
    /// The ids, found by the hash of their name.
    table: IdTable,
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
            .find(hash, |id| self.bytes(id) == name.as_bytes());
        if id.is_some() {
            self.last.set(id);
        }
        id
    }

    /// The id of `name`, interning it first if needed; None when every id or page is
    /// taken or the name is longer than 1 MiB.
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
        let length = packed::header_len(bytes.len());
        if self
            .pages
            .last()
            .is_none_or(|p| p.len() + length + bytes.len() > PAGE)
        {
            if self.pages.len() == MOST_PAGES {
                return None;
            }
            self.pages.push(Vec::with_capacity(PAGE));
        }
        let page = self.pages.len() - 1;
        let offset = self.pages[page].len();
        crate::varint::put(&mut self.pages[page], bytes.len() as u64);
        self.pages[page].extend_from_slice(bytes);
        self.at.push((page as u32) << 20 | offset as u32);
        let hash = self.hasher.hash_one(bytes);
        let (pages, at, hasher) = (&self.pages, &self.at, &self.hasher);
        self.table
            .insert(hash, id, |id| hasher.hash_one(slice(pages, at, id)));
        Some(id)
    }

    /// Stage `stage` of prefetching the look-up of `name` ([`super::Store::look_ahead`]).
    /// From [`Stage::Node`] on, the id in the name's slot: the one sought, unless
    /// another name that shares its tag was put first.
    pub fn prefetch(&self, name: &str, stage: Stage) -> Option<Id> {
        let hash = self.hasher.hash_one(name.as_bytes());
        if stage == Stage::Slot {
            self.table.prefetch(hash);
            return None;
        }
        let id = self.table.candidate(hash)?;
        if stage == Stage::Node {
            line(self.at.get(id as usize)?);
        } else {
            let (page, offset) = place(*self.at.get(id as usize)?);
            line(self.pages.get(page)?.get(offset)?);
        }
        Some(id)
    }

    /// The name of `id`.
    pub fn name(&self, id: Id) -> &str {
        let bytes = self.bytes(id);
        // SAFETY: `bytes` is empty or exactly the bytes of one name, copied whole from a
        // `&str` by `intern` into pages that are only ever appended to; checking them
        // again on every look-up was a tenth of the router's thread (issue 30).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    fn bytes(&self, id: Id) -> &[u8] {
        slice(&self.pages, &self.at, id)
    }

    /// The bytes it holds (names, where they are, and the table).
    pub fn heap_bytes(&self) -> usize {
        self.pages.len() * PAGE + self.at.heap_bytes() + self.table.heap_bytes()
    }
}

/// The page and the offset in it of a name's place in `at`.
fn place(at: u32) -> (usize, usize) {
    ((at >> 20) as usize, (at & 0xf_ffff) as usize)
}

fn slice<'a>(pages: &'a [Vec<u8>], at: &Paged<u32>, id: Id) -> &'a [u8] {
    let Some(&at) = at.get(id as usize) else {
        return &[];
    };
    let (page, offset) = place(at);
    let Some(rest) = pages.get(page).and_then(|p| p.get(offset..)) else {
        return &[];
    };
    let mut reader = packed::Reader(rest);
    let len = reader.varint().unwrap_or(0) as usize;
    reader.0.get(..len).unwrap_or_default()
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
