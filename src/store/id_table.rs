//! The hash table of [`super::ids`]: ids found by the hash of their name. Each slot is a
//! 1-byte tag (7 bits of the hash, or [`EMPTY`]) and a 4-byte id, probed linearly
//! [`GROUP`] tags at a time, at most 7/8 full: hashbrown's layout and load, written out
//! so that where a name's probe starts is known before anything is read. A run of
//! events then asks for the lines its look-ups will need a few events ahead
//! ([`IdTable::prefetch`], [`IdTable::candidate`]), and the misses of several events
//! overlap instead of following one another (issue 29). Ids are never removed.

use super::ids::Id;
use super::prefetch::line;

/// Tags read at once.
const GROUP: usize = 8;
/// The tag of an empty slot (a full one's top bit is clear).
const EMPTY: u8 = 0x80;
const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Ids by the hash of their name.
#[derive(Default)]
pub struct IdTable {
    /// A tag a slot, then the first [`GROUP`] again, so that a group read at any slot
    /// is whole.
    tags: Vec<u8>,
    /// An id a slot: a power of two of them, or none.
    ids: Vec<Id>,
    len: usize,
}

/// The tag of `hash`: its top 7 bits.
fn tag_of(hash: u64) -> u8 {
    (hash >> 57) as u8
}

/// The bytes of `group` that may equal `tag`, as their top bits (some may not: a
/// candidate is checked).
fn matches(group: u64, tag: u8) -> u64 {
    let x = group ^ (LOW_BITS * u64::from(tag));
    x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS
}

/// The bytes of `group` that are empty, as their top bits.
fn empties(group: u64) -> u64 {
    group & HIGH_BITS
}

impl IdTable {
    /// The id whose hash is `hash` and for which `eq` holds.
    pub fn find(&self, hash: u64, mut eq: impl FnMut(Id) -> bool) -> Option<Id> {
        let mask = self.ids.len().checked_sub(1)?;
        let tag = tag_of(hash);
        let mut pos = hash as usize & mask;
        loop {
            let group = self.group(pos);
            let mut hits = matches(group, tag);
            while hits != 0 {
                let i = (pos + hits.trailing_zeros() as usize / 8) & mask;
                if self.tags[i] == tag && eq(self.ids[i]) {
                    return Some(self.ids[i]);
                }
                hits &= hits - 1;
            }
            if empties(group) != 0 {
                return None;
            }
            pos = (pos + GROUP) & mask;
        }
    }

    /// Adds `id`, whose hash is `hash` and which is not in the table; `rehash` gives the
    /// hash of any id already in (for growing).
    pub fn insert(&mut self, hash: u64, id: Id, rehash: impl Fn(Id) -> u64) {
        if (self.len + 1) * 8 > self.ids.len() * 7 {
            self.grow(rehash);
        }
        self.place(hash, id);
        self.len += 1;
    }

    /// Starts bringing in the lines a look-up of `hash` reads first.
    pub fn prefetch(&self, hash: u64) {
        if let Some(mask) = self.ids.len().checked_sub(1) {
            let pos = hash as usize & mask;
            line(&self.tags[pos]);
            line(&self.ids[pos]);
        }
    }

    /// The id a look-up of `hash` would check first, if any: most often the one sought,
    /// once [`IdTable::prefetch`] has brought its lines in.
    pub fn candidate(&self, hash: u64) -> Option<Id> {
        let mask = self.ids.len().checked_sub(1)?;
        let pos = hash as usize & mask;
        let hits = matches(self.group(pos), tag_of(hash));
        let i = (pos + hits.trailing_zeros() as usize / 8) & mask;
        (hits != 0 && self.tags[i] == tag_of(hash)).then(|| self.ids[i])
    }

    /// The bytes it holds.
    pub fn heap_bytes(&self) -> usize {
        self.tags.capacity() + self.ids.capacity() * std::mem::size_of::<Id>()
    }

    fn group(&self, pos: usize) -> u64 {
        let mut bytes = [0; GROUP];
        bytes.copy_from_slice(&self.tags[pos..pos + GROUP]);
        u64::from_le_bytes(bytes)
    }

    /// Puts `id` in the first empty slot of its probe (there is one: the table is at
    /// most 7/8 full).
    fn place(&mut self, hash: u64, id: Id) {
        let mask = self.ids.len() - 1;
        let mut pos = hash as usize & mask;
        loop {
            let free = empties(self.group(pos));
            if free != 0 {
                let i = (pos + free.trailing_zeros() as usize / 8) & mask;
                self.tags[i] = tag_of(hash);
                if i < GROUP {
                    self.tags[self.ids.len() + i] = tag_of(hash);
                }
                self.ids[i] = id;
                return;
            }
            pos = (pos + GROUP) & mask;
        }
    }

    /// Twice the slots (at least two groups), every id placed again.
    fn grow(&mut self, rehash: impl Fn(Id) -> u64) {
        let slots = (self.ids.len() * 2).max(2 * GROUP);
        let old_tags = std::mem::replace(&mut self.tags, vec![EMPTY; slots + GROUP]);
        let old_ids = std::mem::replace(&mut self.ids, vec![Id::MAX; slots]);
        for (&tag, &id) in old_tags.iter().zip(&old_ids) {
            if tag != EMPTY {
                self.place(rehash(id), id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn finds_every_id_put_in_and_none_other(
            hashes in prop::collection::vec(any::<u64>(), 0..3000),
            // Few distinct hashes too: long runs of equal tags and starts.
            narrow in any::<bool>(),
        ) {
            let hash_of: Vec<u64> = hashes
                .iter()
                .map(|&h| if narrow { (h % 64) | ((h % 3) << 57) } else { h })
                .collect();
            let mut table = IdTable::default();
            let mut model: HashMap<Id, u64> = HashMap::new();
            for (id, &h) in hash_of.iter().enumerate() {
                let id = id as Id;
                prop_assert_eq!(table.find(h, |other| other == id), None);
                table.insert(h, id, |other| hash_of[other as usize]);
                model.insert(id, h);
                if let Some(candidate) = table.candidate(h) {
                    prop_assert_eq!(hash_of[candidate as usize] >> 57, h >> 57);
                }
            }
            for (&id, &h) in &model {
                prop_assert_eq!(table.find(h, |other| other == id), Some(id));
            }
            prop_assert!(table.len * 8 <= table.ids.len() * 7);
            // An empty slot's id is never offered.
            let absent = hash_of.len() as Id;
            for &h in &hash_of {
                prop_assert_eq!(table.find(h, |other| other >= absent), None);
            }
        }
    }

    #[test]
    fn an_empty_table_finds_nothing_and_prefetching_it_is_harmless() {
        let table = IdTable::default();
        table.prefetch(7);
        assert_eq!((table.find(7, |_| true), table.candidate(7)), (None, None));
    }
}
