//! The entity and lineage rows as the correlator asks for them, by name, answered from
//! the in-memory [`super::index`]: states, cases, clocks, parents, tree tops (by jumps,
//! compressed as they are walked) and the case counts of trees.

use super::ids::Id;
use super::{packed, Store};
use crate::error::StoreError;
use crate::event::System;
use crate::model::entity::{Clocks, EchoState, EntityRow};
use crate::time::Micros;

impl Store {
    /// The row of `entity` (default: never seen).
    pub fn entity(&mut self, entity: &str) -> Result<EntityRow, StoreError> {
        Ok(self.row(entity)?.unwrap_or_default())
    }

    fn row(&self, entity: &str) -> Result<Option<EntityRow>, StoreError> {
        match self.index.id(entity) {
            Some(id) => self.index.row(id),
            None => Ok(None),
        }
    }

    /// The state of `entity` in `system`.
    pub fn state(&mut self, entity: &str, system: System) -> Result<EchoState, StoreError> {
        Ok(self.state_since(entity, system)?.0)
    }

    /// The state of `entity` in `system` and when it last changed.
    pub fn state_since(
        &mut self,
        entity: &str,
        system: System,
    ) -> Result<(EchoState, Micros), StoreError> {
        match self.index.id(entity) {
            Some(id) => self.index.state_since(id, system.index()),
            None => Ok((EchoState::None, Micros::MIN)),
        }
    }

    /// Calls `f` with the name, state in `system` and time of that state of `root` and of
    /// every descendant of it, each once (the candidates of a missing set, SPEC §4).
    pub fn tree_states(
        &mut self,
        root: &str,
        system: System,
        mut f: impl FnMut(&str, EchoState, Micros),
    ) -> Result<(), StoreError> {
        let Some(root_id) = self.index.id(root) else {
            f(root, EchoState::None, Micros::MIN);
            return Ok(());
        };
        let mut tree = vec![root_id];
        let mut next = 0;
        while let Some(&id) = tree.get(next) {
            let (state, since) = self.index.state_since(id, system.index())?;
            f(self.index.name(id), state, since);
            tree.extend(self.index.children(id));
            next += 1;
        }
        Ok(())
    }

    /// The open cases of each ancestor of `entity` that has any, nearest first.
    pub fn cases_above(&mut self, entity: &str) -> Result<Vec<Vec<String>>, StoreError> {
        let mut above = Vec::new();
        let mut current = self.index.id(entity).and_then(|id| self.index.parent(id));
        while let Some(id) = current {
            if self.index.has_cases(id)? {
                above.extend(self.index.row(id)?.map(|r| r.cases));
            }
            current = self.index.parent(id);
        }
        Ok(above)
    }

    /// The open cases rooted at `entity`, oldest first.
    pub fn open_cases(&mut self, entity: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.row(entity)?.map(|r| r.cases).unwrap_or_default())
    }

    /// Whether `entity` has a row (the router's directory: it had an event).
    pub fn entity_known(&mut self, entity: &str) -> Result<bool, StoreError> {
        Ok(self
            .index
            .id(entity)
            .is_some_and(|id| self.index.has_row(id)))
    }

    /// Gives `entity` a row, if it has none (the router's directory).
    pub fn mark_known(
        &mut self,
        entity: &str,
        kind: crate::event::EntityKind,
    ) -> Result<(), StoreError> {
        if !self.entity_known(entity)? {
            let row = EntityRow {
                kind: Some(kind),
                ..EntityRow::default()
            };
            self.put_entity(entity, row)?;
        }
        Ok(())
    }

    /// Replaces the row of `entity`.
    pub fn put_entity(&mut self, entity: &str, row: EntityRow) -> Result<(), StoreError> {
        let id = self.index.intern(entity)?;
        self.index.put_row(id, &row);
        Ok(())
    }

    /// Sets the hygiene clocks of `entity`, whose row changes in nothing else.
    pub fn put_clocks(&mut self, entity: &str, clocks: Clocks) -> Result<(), StoreError> {
        let mut row = self.entity(entity)?;
        row.clocks = clocks;
        self.put_entity(entity, row)
    }

    /// The parent of `entity`, if it has one.
    pub fn parent(&mut self, entity: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .index
            .id(entity)
            .and_then(|id| self.index.parent(id))
            .map(|p| self.index.name(p).to_owned()))
    }

    /// Whether `entity` has children.
    pub fn has_children(&mut self, entity: &str) -> Result<bool, StoreError> {
        Ok(self
            .index
            .id(entity)
            .is_some_and(|id| self.index.has_children(id)))
    }

    /// Records the edge `child → parent`. `child` is the top of its tree (it has no
    /// parent): its tree's case count moves to the new top.
    pub fn link(&mut self, child: &str, parent: &str) -> Result<(), StoreError> {
        let parent = self.index.intern(parent)?;
        let child = self.index.intern(child)?;
        let (top, top_cases) = self.climb(parent);
        let moved = self.index.tree_cases(child);
        let jump = if top == parent { packed::NONE } else { top };
        self.index.add_edge(child, parent, jump);
        if moved > 0 {
            self.index.set_tree_cases(child, 0);
            self.index.set_tree_cases(top, top_cases + moved);
        }
        Ok(())
    }

    /// The top ancestor of `entity` (itself when it has no parent).
    pub fn top(&mut self, entity: &str) -> Result<String, StoreError> {
        Ok(match self.index.id(entity) {
            Some(id) => {
                let top = self.climb(id).0;
                self.index.name(top).to_owned()
            }
            None => entity.to_owned(),
        })
    }

    /// Whether a case was ever opened in the tree of `entity`.
    pub fn tree_had_cases(&mut self, entity: &str) -> Result<bool, StoreError> {
        Ok(self.index.id(entity).is_some_and(|id| self.climb(id).1 > 0))
    }

    /// The top ancestor of `id` and the case count of its tree. The jumps of the
    /// entities passed on the way are pointed at the top.
    fn climb(&mut self, id: Id) -> (Id, u64) {
        let mut path = Vec::new();
        let mut current = id;
        while let Some(next) = self.index.next(current) {
            path.push(std::mem::replace(&mut current, next));
        }
        // The last one passed already leads straight to the top.
        path.pop();
        for passed in path {
            self.index.set_jump(passed, current);
        }
        (current, self.index.tree_cases(current))
    }

    /// Counts a case opened at `entity` in its tree.
    pub fn count_tree_case(&mut self, entity: &str) -> Result<(), StoreError> {
        let id = self.index.intern(entity)?;
        let (top, cases) = self.climb(id);
        self.index.set_tree_cases(top, cases + 1);
        Ok(())
    }

    /// Calls `f` with the children of `entity`.
    pub fn for_children(
        &mut self,
        entity: &str,
        mut f: impl FnMut(&str),
    ) -> Result<(), StoreError> {
        if let Some(id) = self.index.id(entity) {
            for child in self.index.children(id) {
                f(self.index.name(child));
            }
        }
        Ok(())
    }
}
