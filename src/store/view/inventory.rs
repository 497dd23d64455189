//! The inventory (issue 31): every entity the state holds a row for, in key order, with
//! its kind, its place in its lineage tree, its state per system, when it was first seen,
//! who created it, its credential ages and the case in force at it — read as a stream, so
//! that ten million identities take no more memory than ten.
//!
//! The entity rows and the lineage rows are read side by side by two iterators in key
//! order (both tables are keyed by the entity). The top of a tree and whether an entity is
//! registered in the system of record (SPEC §4c: it or one of its ancestors has a state
//! there) take a walk up the ancestors; a bounded memo of the ancestors already walked
//! makes the siblings and descendants that follow in key order cost a look-up.

use std::collections::{BTreeMap, HashMap};

use rocksdb::{DBRawIteratorWithThreadMode, DB};
use serde::Serialize;

use super::{codec, EchoState, EntityRow, Family, StateView};
use crate::error::StoreError;
use crate::event::{EntityKind, System};
use crate::model::entity::LineageRow;
use crate::time::Micros;

/// How many ancestors the memo keeps before it starts afresh (a few MiB at most).
const MEMO_ENTRIES: usize = 65_536;

/// Which entities to list; every condition set must hold.
#[derive(Debug, Clone, Copy)]
pub struct InventoryFilter {
    /// Only entities ACTIVE in one system and REVOKED in another.
    pub drift: bool,
    /// Only entities not registered in the system of record.
    pub unregistered: bool,
    /// Only entities ACTIVE in some system.
    pub active: bool,
    /// Only entities of this kind.
    pub kind: Option<EntityKind>,
    /// Only entities with a state in this system.
    pub system: Option<System>,
    /// The system of record (`[consistency] system_of_record`).
    pub system_of_record: System,
}

impl InventoryFilter {
    /// Every entity, registration judged against `system_of_record`.
    pub fn all(system_of_record: System) -> InventoryFilter {
        InventoryFilter {
            drift: false,
            unregistered: false,
            active: false,
            kind: None,
            system: None,
            system_of_record,
        }
    }

    /// What the row alone decides (all but registration).
    fn accepts_row(&self, row: &EntityRow) -> bool {
        let has = |s: EchoState| row.states.contains(&s);
        (!self.drift || (has(EchoState::Active) && has(EchoState::Revoked)))
            && (!self.active || has(EchoState::Active))
            && self.kind.is_none_or(|k| row.kind == Some(k))
            && self
                .system
                .is_none_or(|s| row.states[s.index()] != EchoState::None)
    }
}

/// One line of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryEntry {
    /// The entity.
    pub entity: String,
    /// The kind its first applied event gave it.
    pub entity_kind: Option<EntityKind>,
    /// The top of its lineage tree (itself when it has no parent).
    pub root: String,
    /// The entity it was issued from or belongs to.
    pub parent: Option<String>,
    /// Its state in each system that has one for it.
    pub states: BTreeMap<System, &'static str>,
    /// The time of its earliest applied success event.
    pub first_seen: Option<Micros>,
    /// When it was created, issued or last rotated (kinds with a `max_age`, SPEC §4b).
    pub issued_at: Option<Micros>,
    /// Its last activity (kinds with an `unused_after`, SPEC §4b).
    pub last_active_at: Option<Micros>,
    /// The actor of its first presence event.
    pub created_by: Option<String>,
    /// The newest case rooted at it that no reactivation superseded.
    pub open_case: Option<String>,
    /// Whether it or one of its ancestors has a state in the system of record.
    pub registered: bool,
}

/// What the memo knows of an ancestor: the top of its tree, and whether it or one of
/// its own ancestors has a state in the system of record.
#[derive(Clone)]
struct Place {
    top: String,
    registered: bool,
}

/// The inventory as a stream of entries, in entity key order.
pub struct Inventory<'a> {
    view: &'a StateView,
    filter: InventoryFilter,
    rows: DBRawIteratorWithThreadMode<'a, DB>,
    lineage: DBRawIteratorWithThreadMode<'a, DB>,
    memo: HashMap<String, Place>,
    /// Skip this key first (the cursor, exclusive).
    after: Option<Vec<u8>>,
    failed: bool,
}

impl StateView {
    /// The entities `filter` accepts, in key order after the entity `after` (exclusive),
    /// read one at a time.
    pub fn inventory(
        &self,
        filter: InventoryFilter,
        after: Option<&str>,
    ) -> Result<Inventory<'_>, StoreError> {
        let mut rows = self.db.raw_iterator_cf(Family::Entities.handle(&self.db)?);
        let mut lineage = self.db.raw_iterator_cf(Family::Lineage.handle(&self.db)?);
        match after {
            Some(a) => {
                rows.seek(a.as_bytes());
                lineage.seek(a.as_bytes());
            }
            None => {
                rows.seek_to_first();
                lineage.seek_to_first();
            }
        }
        Ok(Inventory {
            view: self,
            filter,
            rows,
            lineage,
            memo: HashMap::new(),
            after: after.map(|a| a.as_bytes().to_vec()),
            failed: false,
        })
    }
}

fn corrupt(cf: Family) -> impl Fn(bincode::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        cf: cf.name(),
        message: e.to_string(),
    }
}

impl Inventory<'_> {
    /// The next entry the filter accepts, if any.
    fn advance(&mut self) -> Result<Option<InventoryEntry>, StoreError> {
        loop {
            let Some((key, value)) = self.rows.item() else {
                self.rows.status()?;
                return Ok(None);
            };
            let key = key.to_vec();
            let row: EntityRow = codec::decode(value).map_err(corrupt(Family::Entities))?;
            self.rows.next();
            if self.after.take().is_some_and(|a| a == key) {
                continue;
            }
            if !self.filter.accepts_row(&row) {
                continue;
            }
            let entity = String::from_utf8_lossy(&key).into_owned();
            let parent = self.parent_of(&key)?;
            let own = row.states[self.filter.system_of_record.index()] != EchoState::None;
            let (root, registered) = match &parent {
                None => (entity.clone(), own),
                Some(p) => {
                    let above = self.place(p)?;
                    (above.top, own || above.registered)
                }
            };
            if self.filter.unregistered && registered {
                continue;
            }
            return Ok(Some(entry(entity, row, root, parent, registered)));
        }
    }

    /// The parent of the entity at `key`, from the lineage iterator moved up to it.
    fn parent_of(&mut self, key: &[u8]) -> Result<Option<String>, StoreError> {
        while self.lineage.key().is_some_and(|k| k < key) {
            self.lineage.next();
        }
        self.lineage.status()?;
        match self.lineage.item() {
            Some((k, v)) if k == key => {
                let row: LineageRow = codec::decode(v).map_err(corrupt(Family::Lineage))?;
                Ok(row.parent)
            }
            _ => Ok(None),
        }
    }

    /// The top of `ancestor`'s tree and whether it is registered: from the memo, or by
    /// walking up to an ancestor the memo knows (or the top), remembering each one passed.
    fn place(&mut self, ancestor: &str) -> Result<Place, StoreError> {
        let sor = self.filter.system_of_record.index();
        let mut path: Vec<(String, bool)> = Vec::new();
        let mut at = ancestor.to_owned();
        let known = loop {
            if let Some(place) = self.memo.get(&at) {
                break Some(place.clone());
            }
            let states = self
                .view
                .get::<EntityRow>(Family::Entities, at.as_bytes())?
                .map(|r| r.states[sor] != EchoState::None)
                .unwrap_or(false);
            let parent = self.view.lineage_row(&at)?.parent;
            path.push((at, states));
            match parent {
                Some(p) => at = p,
                None => break None,
            }
        };
        let mut place = known.unwrap_or_else(|| Place {
            top: path.last().map(|(id, _)| id.clone()).unwrap_or_default(),
            registered: false,
        });
        if self.memo.len() + path.len() > MEMO_ENTRIES {
            self.memo.clear();
        }
        for (id, own) in path.into_iter().rev() {
            place.registered |= own;
            self.memo.insert(id, place.clone());
        }
        Ok(place)
    }
}

fn entry(
    entity: String,
    row: EntityRow,
    root: String,
    parent: Option<String>,
    registered: bool,
) -> InventoryEntry {
    let [issued_at, last_active_at] = row.clocks.map(|c| c.map(|c| c.since));
    InventoryEntry {
        states: System::ALL
            .iter()
            .filter(|s| row.states[s.index()] != EchoState::None)
            .map(|s| (*s, row.states[s.index()].as_str()))
            .collect(),
        entity,
        entity_kind: row.kind,
        root,
        parent,
        first_seen: row.first_seen,
        issued_at,
        last_active_at,
        created_by: row.created_by.flatten(),
        open_case: row.cases.last().cloned(),
        registered,
    }
}

impl Iterator for Inventory<'_> {
    type Item = Result<InventoryEntry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.advance().transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}
