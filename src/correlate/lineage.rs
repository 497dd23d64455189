//! Lineage (SPEC §4): edges entity → parent, added by success events that name a
//! parent, never a second parent and never a cycle. Ancestors and descendants follow the
//! edges as known at the moment of evaluation.

use crate::error::StoreError;
use crate::store::Store;

/// Adds the edge `entity → parent` unless `entity` has a parent already or the edge would
/// close a cycle. Returns whether it was added.
///
/// A cycle needs `parent` below `entity`, which a childless entity (nearly every new
/// credential) cannot have. `entity` has no parent, so it is above `parent` exactly when
/// it is the top of `parent`'s tree. Both rows change in place, so a role with 40,000
/// sessions under it costs no copy of its child list per new session.
pub fn add_edge(store: &mut Store, entity: &str, parent_id: &str) -> Result<bool, StoreError> {
    if store.parent(entity)?.is_some() {
        return Ok(false);
    }
    if entity == parent_id {
        return Ok(false);
    }
    if store.has_children(entity)? && store.top(parent_id)? == entity {
        return Ok(false);
    }
    store.link(entity, parent_id)?;
    Ok(true)
}
