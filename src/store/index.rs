//! The in-memory index of what every event needs: for each entity, by compact id
//! ([`super::ids`]), one 16-byte node — its parent, its children as a linked list, where
//! its row ([`super::packed`]) is — with the jumps towards the tops of deep trees and the
//! case counts of the trees that had cases beside them. The hot path reads only this; RocksDB holds the durable
//! copy — the `entities` and `lineage` rows, written from the changes noted here in the
//! commit's batch — and opening a state directory loads the index from them with one
//! sequential scan of each.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use rocksdb::{IteratorMode, WriteBatch, DB};

use super::codec;
use super::family::Family;
use super::ids::{Id, Ids};
use super::packed::{self, Arena, NONE};
use super::paged::Paged;
use super::prefetch::{line, Stage};
use crate::error::StoreError;
use crate::model::entity::{EchoState, EntityRow, LineageRow};
use crate::time::Micros;

/// An entity's node: its place in the lineage graph, by id, and where its row starts
/// ([`NONE`]: none). Children are linked newest first.
#[derive(Clone, Copy)]
struct Node {
    parent: Id,
    first_child: Id,
    next_sibling: Id,
    row: u32,
}

const NO_NODE: Node = Node {
    parent: NONE,
    first_child: NONE,
    next_sibling: NONE,
    row: NONE,
};

/// Entity rows and lineage, resident.
#[derive(Default)]
pub struct Index {
    ids: Ids,
    actors: Ids,
    rows: Arena,
    nodes: Paged<Node>,
    /// An ancestor above its parent, closer to the top, where one was set (see
    /// [`LineageRow::jump`]).
    jumps: HashMap<Id, Id, RandomState>,
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

    /// Stage `stage` of prefetching what a look-up of `entity` reads: its id
    /// ([`Ids::prefetch`]), then its node, then its row.
    pub fn prefetch(&self, entity: &str, stage: Stage) {
        let Some(id) = self.ids.prefetch(entity, stage) else {
            return;
        };
        let Some(node) = self.nodes.get(id as usize) else {
            return;
        };
        match stage {
            Stage::Row => self.rows.prefetch(node.row),
            _ => line(node),
        }
    }

    /// The id of `entity`, interning it.
    pub fn intern(&mut self, entity: &str) -> Result<Id, StoreError> {
        let id = self.ids.intern(entity).ok_or_else(|| {
            StoreError::Incompatible(format!(
                "cannot index {entity}: the index holds {} entities, its most",
                self.ids.len()
            ))
        })?;
        if self.nodes.len() <= id as usize {
            self.nodes.grow(id as usize + 1, NO_NODE);
        }
        Ok(id)
    }

    /// The row of `id`, if it has one.
    pub fn row(&self, id: Id) -> Result<Option<EntityRow>, StoreError> {
        match self.rows.get(id, self.node(id).row) {
            None => Ok(None),
            Some(bytes) => packed::decode(bytes, &self.actors)
                .map(Some)
                .ok_or_else(|| corrupt(Family::Entities, self.name(id))),
        }
    }

    /// The state of `id` in system `index` and when it last changed (no row: never seen).
    pub fn state_since(&self, id: Id, index: usize) -> Result<(EchoState, Micros), StoreError> {
        match self.rows.get(id, self.node(id).row) {
            None => Ok((EchoState::None, Micros::MIN)),
            Some(bytes) => packed::state_since(bytes, index, &self.actors)
                .ok_or_else(|| corrupt(Family::Entities, self.name(id))),
        }
    }

    /// Whether the row of `id` has open cases.
    pub fn has_cases(&self, id: Id) -> Result<bool, StoreError> {
        match self.rows.get(id, self.node(id).row) {
            None => Ok(false),
            Some(bytes) => packed::has_cases(bytes, &self.actors)
                .ok_or_else(|| corrupt(Family::Entities, self.name(id))),
        }
    }

    /// Whether `id` has a row.
    pub fn has_row(&self, id: Id) -> bool {
        self.node(id).row != NONE
    }

    /// Replaces the row of `id`.
    pub fn put_row(&mut self, id: Id, row: &EntityRow) {
        let mut bytes = std::mem::take(&mut self.scratch);
        packed::encode(row, &mut self.actors, &mut bytes);
        self.rows.put(id, &mut self.nodes[id as usize].row, &bytes);
        self.scratch = bytes;
        self.dirty_rows.set(id);
    }

    /// Removes the row of `id`.
    pub fn remove_row(&mut self, id: Id) {
        self.rows.remove(id, &mut self.nodes[id as usize].row);
        self.dirty_rows.set(id);
    }

    /// The parent of `id`.
    pub fn parent(&self, id: Id) -> Option<Id> {
        Some(self.node(id).parent).filter(|&p| p != NONE)
    }

    /// The jump of `id`, else its parent: where a walk to the top goes next.
    pub fn next(&self, id: Id) -> Option<Id> {
        self.jumps.get(&id).copied().or_else(|| self.parent(id))
    }

    /// The case count of the tree whose top is `id`.
    pub fn tree_cases(&self, id: Id) -> u64 {
        self.tree_cases.get(&id).copied().unwrap_or(0)
    }

    /// Whether `id` has children.
    pub fn has_children(&self, id: Id) -> bool {
        self.node(id).first_child != NONE
    }

    /// The children of `id`, in the order they were linked.
    pub fn children(&self, id: Id) -> Vec<Id> {
        let first = self.node(id).first_child;
        let mut children: Vec<Id> = std::iter::successors((first != NONE).then_some(first), |&c| {
            Some(self.node(c).next_sibling).filter(|&n| n != NONE)
        })
        .collect();
        children.reverse();
        children
    }

    /// Records the edge `child → parent`, with `child`'s jump (`NONE`: its parent).
    pub fn add_edge(&mut self, child: Id, parent: Id, jump: Id) {
        let first = self.nodes[parent as usize].first_child;
        let node = &mut self.nodes[child as usize];
        node.parent = parent;
        node.next_sibling = first;
        self.nodes[parent as usize].first_child = child;
        self.set_jump(child, jump);
        self.touch_link(parent);
    }

    /// Points the jump of `id` at `to` (`NONE`: none).
    pub fn set_jump(&mut self, id: Id, to: Id) {
        if to == NONE {
            self.jumps.remove(&id);
        } else {
            self.jumps.insert(id, to);
        }
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

    fn node(&self, id: Id) -> Node {
        self.nodes.get(id as usize).copied().unwrap_or(NO_NODE)
    }

    /// The lineage row of `id`, with names, if it has one.
    pub fn lineage_row(&self, id: Id) -> Option<LineageRow> {
        if !self.linked.has(id) {
            return None;
        }
        let name = |i: Id| (i != NONE).then(|| self.name(i).to_owned());
        Some(LineageRow {
            parent: name(self.node(id).parent),
            children: self
                .children(id)
                .into_iter()
                .map(|c| self.name(c).to_owned())
                .collect(),
            jump: self.jumps.get(&id).and_then(|&j| name(j)),
            tree_cases: self.tree_cases(id),
        })
    }

    /// Removes the lineage row of `id` and returns it (the edges to its children stay
    /// until theirs are removed too: a whole tree leaves at once).
    pub fn take_lineage_row(&mut self, id: Id) -> Option<LineageRow> {
        let row = self.lineage_row(id)?;
        let node = &mut self.nodes[id as usize];
        (node.parent, node.first_child, node.next_sibling) = (NONE, NONE, NONE);
        self.jumps.remove(&id);
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
        self.nodes[id as usize].parent = parent;
        self.set_jump(id, jump);
        self.nodes[id as usize].first_child = NONE;
        for child in &row.children {
            let c = self.intern(child)?;
            self.nodes[c as usize].next_sibling = self.nodes[id as usize].first_child;
            self.nodes[id as usize].first_child = c;
        }
        self.set_tree_cases(id, row.tree_cases);
        Ok(())
    }

    /// Moves the changes since the last call into `batch`: each changed row and lineage
    /// row written under its entity's name, or deleted.
    pub fn stage(&mut self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let entities = Family::Entities.handle(db)?;
        let mut ids = self.dirty_rows.drain();
        ids.sort_unstable_by(|a, b| self.name(*a).cmp(self.name(*b)));
        for id in ids {
            let name = self.name(id).as_bytes();
            match self.row(id)? {
                Some(row) => batch.put_cf(entities, name, encode(Family::Entities, &row)?),
                None => batch.delete_cf(entities, name),
            }
        }
        let lineage = Family::Lineage.handle(db)?;
        let mut ids = self.dirty_links.drain();
        ids.sort_unstable_by(|a, b| self.name(*a).cmp(self.name(*b)));
        for id in ids {
            let name = self.name(id).as_bytes();
            match self.lineage_row(id) {
                Some(row) => batch.put_cf(lineage, name, encode(Family::Lineage, &row)?),
                None => batch.delete_cf(lineage, name),
            }
        }
        Ok(())
    }

    /// Writes every row and lineage row, `chunk` bytes a batch at most (a temporary
    /// store, for a view to read).
    pub fn write_out(&self, db: &DB, chunk: usize) -> Result<(), StoreError> {
        let entities = Family::Entities.handle(db)?;
        let lineage = Family::Lineage.handle(db)?;
        let mut batch = WriteBatch::default();
        for id in 0..self.len() as Id {
            if let Some(row) = self.row(id)? {
                batch.put_cf(entities, self.name(id), encode(Family::Entities, &row)?);
            }
            if let Some(row) = self.lineage_row(id) {
                batch.put_cf(lineage, self.name(id), encode(Family::Lineage, &row)?);
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
        let cf = Family::Entities.handle(db)?;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            let name = name_of(Family::Entities, &key)?;
            let row: EntityRow =
                codec::decode(&value).map_err(|_| corrupt(Family::Entities, name))?;
            let id = index.intern(name)?;
            index.put_row(id, &row);
        }
        let cf = Family::Lineage.handle(db)?;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            let name = name_of(Family::Lineage, &key)?;
            let row: LineageRow =
                codec::decode(&value).map_err(|_| corrupt(Family::Lineage, name))?;
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
            + self.nodes.heap_bytes()
            + self.jumps.capacity() * 9
            + self.tree_cases.capacity() * 16
            + self.linked.heap_bytes()
            + self.dirty_rows.heap_bytes()
            + self.dirty_links.heap_bytes()
    }
}

fn encode<T: serde::Serialize>(cf: Family, value: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|e| StoreError::Corrupt {
        cf: cf.name(),
        message: e.to_string(),
    })
}

fn name_of(cf: Family, key: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(key).map_err(|_| StoreError::Corrupt {
        cf: cf.name(),
        message: format!("a key that is not UTF-8: {key:?}"),
    })
}

fn corrupt(cf: Family, entity: &str) -> StoreError {
    StoreError::Corrupt {
        cf: cf.name(),
        message: format!("the row of {entity} does not decode"),
    }
}
