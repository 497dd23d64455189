//! Lineage (SPEC §4): edges entity → parent, added by success events that name a
//! parent, never a second parent and never a cycle. Ancestors and descendants follow the
//! edges as known at the moment of evaluation.

use crate::error::StoreError;
use crate::store::Store;

/// Adds the edge `entity → parent` unless `entity` has a parent already or the edge would
/// close a cycle. Returns whether it was added.
pub fn add_edge(store: &mut Store, entity: &str, parent_id: &str) -> Result<bool, StoreError> {
    let mut row = store.lineage(entity)?;
    if row.parent.is_some() {
        return Ok(false);
    }
    let mut ancestor = Some(parent_id.to_owned());
    while let Some(a) = ancestor {
        if a == entity {
            return Ok(false);
        }
        ancestor = store.parent(&a)?;
    }
    row.parent = Some(parent_id.to_owned());
    store.put_lineage(entity, row);
    let mut up = store.lineage(parent_id)?;
    up.children.push(entity.to_owned());
    store.put_lineage(parent_id, up);
    Ok(true)
}

/// Every descendant of `root` (not `root` itself), breadth first.
pub fn descendants(store: &mut Store, root: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut frontier = store.lineage(root)?.children;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for child in &frontier {
            next.extend(store.lineage(child)?.children);
        }
        out.append(&mut frontier);
        frontier = next;
    }
    Ok(out)
}
