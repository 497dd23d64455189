//! The in-memory index of what every event needs: for each entity, by compact id
//! ([`super::ids`]), its row ([`super::packed`]) and its place in the lineage graph
//! (parent, jump towards the top, children as a linked list), with the case counts of
//! the trees that had cases. The hot path reads only this; RocksDB holds the durable
//! copy — the `entities` and `lineage` rows, written from the changes noted here in the
//! commit's batch — and opening a state directory loads the index from them with one
//! sequential scan of each.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use rocksdb::{IteratorMode, WriteBatch, DB};

use super::codec;
use super::ids::{Id, Ids};
use super::packed::{self, Arena, NONE};
use super::paged::Paged;
use super::table;
use crate::error::StoreError;
use crate::model::entity::{EntityRow, LineageRow};

/// An entity's place in the lineage graph, by id ([`NONE`]: none).
#[derive(Clone, Copy)]
struct Link {
    parent: Id,
    jump: Id,
    first_child: Id,
    last_child: Id,
    next_sibling: Id,
}

const NO_LINK: Link = Link {
    parent: NONE,
    jump: NONE,
    first_child: NONE,
    last_child: NONE,
    next_sibling: NONE,
};

/// Entity rows and lineage, resident.
#[derive(Default)]
pub struct Index {
    ids: Ids,
    actors: Ids,
    rows: Arena,
    links: Paged<Link>,
    /// At the top of a tree that had cases: how many (see [`LineageRow::tree_cases`]).
    tree_cases: HashMap<Id, u64, RandomState>,
    /// Ids with a lineage row (an edge, or a case counted at them).
    linked: Bits,
    /// Ids whose row or lineage changed since the last [`Index::stage`].
    dirty_rows: Marks,
    dirty_links: Marks,
    scratch: Vec<u8>,
}

/// A set of ids, a bit each.
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn has(&self, id: Id) -> bool {
        self.0
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// Sets `id`; true when it was not set.
    fn set(&mut self, id: Id) -> bool {
        let word = id as usize / 64;
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        let fresh = self.0[word] & (1 << (id % 64)) == 0;
        self.0[word] |= 1 << (id % 64);
        fresh
    }

    fn clear(&mut self, id: Id) {
        if let Some(w) = self.0.get_mut(id as usize / 64) {
            *w &= !(1 << (id % 64));
        }
    }

    fn heap_bytes(&self) -> usize {
        self.0.capacity() * 8
    }
}

/// The ids changed since they were last staged (none kept when nothing stages them).
#[derive(Default)]
struct Marks {
    bits: Bits,
    list: Vec<Id>,
    kept: bool,
}

impl Marks {
    fn set(&mut self, id: Id) {
        if self.kept && self.bits.set(id) {
            self.list.push(id);
        }
    }

    /// The ids changed, emptying the set.
    fn drain(&mut self) -> Vec<Id> {
        let list = std::mem::take(&mut self.list);
        for &id in &list {
            self.bits.clear(id);
        }
        list
    }

    fn heap_bytes(&self) -> usize {
        self.bits.heap_bytes() + self.list.capacity() * 4
    }
}

impl Index {
    /// The id of `entity`, if it was ever named.
    pub fn id(&self, entity: &str) -> Option<Id> {
        self.ids.get(entity)
    }

    /// The name of `id`.
    pub fn name(&self, id: Id) -> &str {
        self.ids.name(id)
    }

    /// The id of `entity`, interning it.
    pub fn intern(&mut self, entity: &str) -> Result<Id, StoreError> {
        let id = self.ids.intern(entity).ok_or_else(|| {
            StoreError::Incompatible(format!(
                "cannot index {entity}: the index holds {} entities, its most",
                self.ids.len()
            ))
        })?;
        if self.links.len() <= id as usize {
            self.links.grow(id as usize + 1, NO_LINK);
        }
        Ok(id)
    }

    /// Touches what an event about `entity` will read — its id, row and links, and
    /// its parent's — so that a run of events' cache misses overlap here instead of
    /// each waiting in turn while it is applied; a number made of what was read.
    pub fn warm(&self, entity: &str) -> u64 {
        let Some(id) = self.ids.get(entity) else {
            return 0;
        };
        let row = self.rows.get(id).map_or(0, |r| r.len() as u64);
        let link = self.link(id).map_or(NO_LINK, |l| *l);
        let up = self.link(link.parent).map_or(0, |l| u64::from(l.parent));
        row ^ u64::from(link.first_child) ^ up
    }

    /// The row of `id`, if it has one.
    pub fn row(&self, id: Id) -> Result<Option<EntityRow>, StoreError> {
        match self.rows.get(id) {
            None => Ok(None),
            Some(bytes) => packed::decode(bytes, &self.actors)
                .map(Some)
                .ok_or_else(|| corrupt("entities", self.name(id))),
        }
    }

    /// Whether `id` has a row.
    pub fn has_row(&self, id: Id) -> bool {
        self.rows.get(id).is_some()
    }

    /// Replaces the row of `id`.
    pub fn put_row(&mut self, id: Id, row: &EntityRow) {
        let mut bytes = std::mem::take(&mut self.scratch);
        packed::encode(row, &mut self.actors, &mut bytes);
        self.rows.put(id, &bytes);
        self.scratch = bytes;
        self.dirty_rows.set(id);
    }

    /// Removes the row of `id`.
    pub fn remove_row(&mut self, id: Id) {
        self.rows.remove(id);
        self.dirty_rows.set(id);
    }

    /// The parent of `id`.
    pub fn parent(&self, id: Id) -> Option<Id> {
        self.link(id).map(|l| l.parent).filter(|&p| p != NONE)
    }

    /// The jump of `id`, else its parent: where a walk to the top goes next.
    pub fn next(&self, id: Id) -> Option<Id> {
        let link = self.link(id)?;
        [link.jump, link.parent].into_iter().find(|&i| i != NONE)
    }

    /// The case count of the tree whose top is `id`.
    pub fn tree_cases(&self, id: Id) -> u64 {
        self.tree_cases.get(&id).copied().unwrap_or(0)
    }

    /// Whether `id` has children.
    pub fn has_children(&self, id: Id) -> bool {
        self.link(id).is_some_and(|l| l.first_child != NONE)
    }

    /// The children of `id`, in the order they were linked.
    pub fn children(&self, id: Id) -> impl Iterator<Item = Id> + '_ {
        let first = self.link(id).map_or(NONE, |l| l.first_child);
        std::iter::successors((first != NONE).then_some(first), |&c| {
            let next = self.links[c as usize].next_sibling;
            (next != NONE).then_some(next)
        })
    }

    /// Records the edge `child → parent`, with `child`'s jump (`NONE`: its parent).
    pub fn add_edge(&mut self, child: Id, parent: Id, jump: Id) {
        let link = &mut self.links[child as usize];
        link.parent = parent;
        link.jump = jump;
        link.next_sibling = NONE;
        let last = self.links[parent as usize].last_child;
        if last == NONE {
            self.links[parent as usize].first_child = child;
        } else {
            self.links[last as usize].next_sibling = child;
        }
        self.links[parent as usize].last_child = child;
        self.touch_link(child);
        self.touch_link(parent);
    }

    /// Points the jump of `id` at `to`.
    pub fn set_jump(&mut self, id: Id, to: Id) {
        self.links[id as usize].jump = to;
        self.touch_link(id);
    }

    /// Sets the case count of the tree whose top is `id`.
    pub fn set_tree_cases(&mut self, id: Id, count: u64) {
        if count == 0 {
            self.tree_cases.remove(&id);
        } else {
            self.tree_cases.insert(id, count);
        }
        self.touch_link(id);
    }

    fn touch_link(&mut self, id: Id) {
        self.linked.set(id);
        self.dirty_links.set(id);
    }

    fn link(&self, id: Id) -> Option<&Link> {
        self.links.get(id as usize)
    }

    /// The lineage row of `id`, with names, if it has one.
    pub fn lineage_row(&self, id: Id) -> Option<LineageRow> {
        if !self.linked.has(id) {
            return None;
        }
        let link = self.links[id as usize];
        let name = |i: Id| (i != NONE).then(|| self.name(i).to_owned());
        Some(LineageRow {
            parent: name(link.parent),
            children: self.children(id).map(|c| self.name(c).to_owned()).collect(),
            jump: name(link.jump),
            tree_cases: self.tree_cases(id),
        })
    }

    /// Removes the lineage row of `id` and returns it (the edges to its children stay
    /// until theirs are removed too: a whole tree leaves at once).
    pub fn take_lineage_row(&mut self, id: Id) -> Option<LineageRow> {
        let row = self.lineage_row(id)?;
        self.links[id as usize] = NO_LINK;
        self.tree_cases.remove(&id);
        self.linked.clear(id);
        self.dirty_links.set(id);
        Some(row)
    }

    /// Puts a lineage row given with names (a tree moved from another store), whose
    /// entity has none here.
    pub fn put_lineage_row(&mut self, entity: &str, row: &LineageRow) -> Result<(), StoreError> {
        let id = self.intern(entity)?;
        let parent = match row.parent.as_deref() {
            Some(p) => self.intern(p)?,
            None => NONE,
        };
        let jump = match row.jump.as_deref() {
            Some(j) => self.intern(j)?,
            None => NONE,
        };
        self.links[id as usize].parent = parent;
        self.links[id as usize].jump = jump;
        let mut last = NONE;
        for child in &row.children {
            let c = self.intern(child)?;
            if last == NONE {
                self.links[id as usize].first_child = c;
            } else {
                self.links[last as usize].next_sibling = c;
            }
            last = c;
        }
        self.links[id as usize].last_child = last;
        self.set_tree_cases(id, row.tree_cases);
        Ok(())
    }

    /// Moves the changes since the last call into `batch`: each changed row and lineage
    /// row written under its entity's name, or deleted.
    pub fn stage(&mut self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let entities = table::cf(db, "entities")?;
        let mut ids = self.dirty_rows.drain();
        ids.sort_unstable_by(|a, b| self.name(*a).cmp(self.name(*b)));
        for id in ids {
            let name = self.name(id).as_bytes();
            match self.row(id)? {
                Some(row) => batch.put_cf(entities, name, encode("entities", &row)?),
                None => batch.delete_cf(entities, name),
            }
        }
        let lineage = table::cf(db, "lineage")?;
        let mut ids = self.dirty_links.drain();
        ids.sort_unstable_by(|a, b| self.name(*a).cmp(self.name(*b)));
        for id in ids {
            let name = self.name(id).as_bytes();
            match self.lineage_row(id) {
                Some(row) => batch.put_cf(lineage, name, encode("lineage", &row)?),
                None => batch.delete_cf(lineage, name),
            }
        }
        Ok(())
    }

    /// Writes every row and lineage row, `chunk` bytes a batch at most (a temporary
    /// store, for a view to read).
    pub fn write_out(&self, db: &DB, chunk: usize) -> Result<(), StoreError> {
        let entities = table::cf(db, "entities")?;
        let lineage = table::cf(db, "lineage")?;
        let mut batch = WriteBatch::default();
        for id in 0..self.len() as Id {
            if let Some(row) = self.row(id)? {
                batch.put_cf(entities, self.name(id), encode("entities", &row)?);
            }
            if let Some(row) = self.lineage_row(id) {
                batch.put_cf(lineage, self.name(id), encode("lineage", &row)?);
            }
            if batch.size_in_bytes() >= chunk {
                db.write_without_wal(std::mem::take(&mut batch))?;
            }
        }
        db.write_without_wal(batch)?;
        Ok(())
    }

    /// Loads the rows and lineage rows a store holds (at open); `staged`: whether its
    /// changes will be staged ([`Index::stage`]), or only written out at the end
    /// ([`Index::write_out`]: a temporary store).
    pub fn load(db: &DB, staged: bool) -> Result<Index, StoreError> {
        let mut index = Index::default();
        let cf = table::cf(db, "entities")?;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            let name = name_of("entities", &key)?;
            let row: EntityRow = codec::decode(&value).map_err(|_| corrupt("entities", name))?;
            let id = index.intern(name)?;
            index.put_row(id, &row);
        }
        let cf = table::cf(db, "lineage")?;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            let name = name_of("lineage", &key)?;
            let row: LineageRow = codec::decode(&value).map_err(|_| corrupt("lineage", name))?;
            index.put_lineage_row(name, &row)?;
        }
        index.dirty_rows.kept = staged;
        index.dirty_links.kept = staged;
        Ok(index)
    }

    /// How many entities it knows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The bytes it holds.
    pub fn heap_bytes(&self) -> usize {
        self.ids.heap_bytes()
            + self.actors.heap_bytes()
            + self.rows.heap_bytes()
            + self.links.heap_bytes()
            + self.tree_cases.capacity() * 16
            + self.linked.heap_bytes()
            + self.dirty_rows.heap_bytes()
            + self.dirty_links.heap_bytes()
    }
}

fn encode<T: serde::Serialize>(cf: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|e| StoreError::Corrupt {
        cf,
        message: e.to_string(),
    })
}

fn name_of<'a>(cf: &'static str, key: &'a [u8]) -> Result<&'a str, StoreError> {
    std::str::from_utf8(key).map_err(|_| StoreError::Corrupt {
        cf,
        message: format!("a key that is not UTF-8: {key:?}"),
    })
}

fn corrupt(cf: &'static str, entity: &str) -> StoreError {
    StoreError::Corrupt {
        cf,
        message: format!("the row of {entity} does not decode"),
    }
}
