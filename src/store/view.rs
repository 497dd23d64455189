//! Reading the committed state: cases with their obligations, an entity's state per
//! system and timeline, lineage up and down, alerts in time order. Used by the HTTP API
//! beside a running correlator (RocksDB serves concurrent readers) and by the CLI on a
//! state directory opened read-only. It sees what the last commit wrote.

mod inventory;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, Options, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{codec, keys, EchoState, EntityRow, Family, HistoryEntry};
use crate::error::StoreError;
use crate::event::{EntityKind, System};
use crate::model::case::{Case, Echo};
use crate::model::entity::LineageRow;
use crate::time::Micros;
pub use inventory::{Inventory, InventoryEntry, InventoryFilter};

/// Where a case stands, for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Some deadline has not passed and nothing is missing.
    Open,
    /// Some system's echo is missing.
    Breached,
    /// Every obligation is met or was met late.
    Complete,
    /// A reactivation of the root superseded it.
    Superseded,
}

impl CaseState {
    /// The state of `case`.
    pub fn of(case: &Case) -> CaseState {
        if case.is_superseded() {
            CaseState::Superseded
        } else if case
            .obligations
            .iter()
            .any(|o| matches!(o.echo, Echo::Missing { .. }))
        {
            CaseState::Breached
        } else if case.obligations.iter().any(|o| o.echo == Echo::Pending) {
            CaseState::Open
        } else {
            CaseState::Complete
        }
    }

    /// Parses `open`, `breached`, `complete` or `superseded`.
    pub fn parse(s: &str) -> Result<CaseState, String> {
        match s {
            "open" => Ok(CaseState::Open),
            "breached" => Ok(CaseState::Breached),
            "complete" => Ok(CaseState::Complete),
            "superseded" => Ok(CaseState::Superseded),
            other => Err(format!(
                "unknown case state {other:?}: expected open, breached, complete or superseded"
            )),
        }
    }
}

/// Which cases to list.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only cases in this state.
    pub state: Option<CaseState>,
    /// Only cases with an obligation in (or opened by) this system; with `state`, the
    /// state of that system's obligation (breached: its echo is missing; open: pending;
    /// complete: met, on time or late).
    pub system: Option<System>,
    /// Only cases revoked at or after this instant.
    pub since: Option<Micros>,
}

impl CaseFilter {
    fn accepts(&self, case: &Case) -> bool {
        let state = match (self.state, self.system) {
            (None, _) => true,
            (Some(CaseState::Superseded), _) | (Some(_), None) => {
                self.state == Some(CaseState::of(case))
            }
            (Some(state), Some(system)) => {
                !case.is_superseded()
                    && case.obligations.iter().any(|o| {
                        o.system == system
                            && match o.echo {
                                Echo::Missing { .. } => state == CaseState::Breached,
                                Echo::Pending => state == CaseState::Open,
                                Echo::Met { .. } | Echo::Late { .. } => {
                                    state == CaseState::Complete
                                }
                            }
                    })
            }
        };
        state
            && self
                .system
                .is_none_or(|s| case.origin == s || case.obligations.iter().any(|o| o.system == s))
            && self.since.is_none_or(|t| case.revoked_at >= t)
    }
}

/// An entity as one system sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemState {
    /// The system.
    pub system: System,
    /// `none`, `active` or `revoked`.
    pub state: &'static str,
    /// When it last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Micros>,
}

/// A node of a lineage tree: an entity, its kind, its state per system, its children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineageNode {
    /// The entity.
    pub entity: String,
    /// Its kind, when an event gave one.
    pub kind: Option<EntityKind>,
    /// Its state in each system it was seen in.
    pub states: Vec<SystemState>,
    /// Open cases rooted at it.
    pub cases: Vec<String>,
    /// When it was created, issued or last rotated (kinds with a `max_age`, SPEC §4b).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Micros>,
    /// Its last activity (kinds with an `unused_after`, SPEC §4b).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active_at: Option<Micros>,
    /// Its latest rotation round (SPEC §4c): which holders followed and which did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<crate::model::round::RoundView>,
    /// Entities issued from it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<LineageNode>,
    /// It has children not shown ([`MAX_LINEAGE_DEPTH`] or [`MAX_LINEAGE_NODES`] reached).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl LineageNode {
    /// Whether it or a node below it has children not shown.
    pub fn cut(&self) -> bool {
        self.truncated || self.children.iter().any(LineageNode::cut)
    }
}

/// How far a lineage walk goes before it stops (cycles cannot happen; wide trees can).
pub const MAX_LINEAGE_NODES: usize = 10_000;
/// How many levels of descendants a lineage tree shows; deeper nodes are marked
/// `truncated` (ask for the lineage of the last one shown to go on). Every client's
/// JSON parser, and a person reading the tree, stay within reach.
pub const MAX_LINEAGE_DEPTH: usize = 40;

/// A read-only handle on the committed state.
#[derive(Clone)]
pub struct StateView {
    db: Arc<DB>,
}

impl StateView {
    pub(super) fn new(db: Arc<DB>) -> StateView {
        StateView { db }
    }

    /// Opens a state directory read-only (a running instance may keep writing it; the
    /// view is what was committed when it was opened).
    pub fn open_read_only(dir: &Path) -> Result<StateView, StoreError> {
        let db = DB::open_cf_for_read_only(
            &Options::default(),
            dir,
            Family::ALL.map(Family::name),
            false,
        )?;
        match super::stored_layout(&db)? {
            Some(super::FORMAT) | None => Ok(StateView::new(Arc::new(db))),
            other => Err(super::other_layout(dir, other)),
        }
    }

    fn get<V: DeserializeOwned>(&self, cf: Family, key: &[u8]) -> Result<Option<V>, StoreError> {
        match self.db.get_pinned_cf(cf.handle(&self.db)?, key)? {
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    cf: cf.name(),
                    message: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    /// The case with this id.
    pub fn case(&self, id: &str) -> Result<Option<Case>, StoreError> {
        self.get(Family::Cases, id.as_bytes())
    }

    /// Up to `limit` cases that `filter` accepts, in case-id order after the cursor
    /// `after`; and the cursor of the next page, if there is one.
    pub fn cases(
        &self,
        filter: &CaseFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Case>, Option<String>), StoreError> {
        let cf = Family::Cases.handle(&self.db)?;
        let mode = match after {
            Some(a) => IteratorMode::From(a.as_bytes(), Direction::Forward),
            None => IteratorMode::Start,
        };
        let mut page = Vec::new();
        for item in self.db.iterator_cf(cf, mode) {
            let (key, value) = item?;
            if after.is_some_and(|a| a.as_bytes() == &*key) {
                continue;
            }
            let case: Case = codec::decode(&value).map_err(|e| StoreError::Corrupt {
                cf: Family::Cases.name(),
                message: e.to_string(),
            })?;
            if !filter.accepts(&case) {
                continue;
            }
            if page.len() == limit {
                let next = page.last().map(|c: &Case| c.id.clone());
                return Ok((page, next));
            }
            page.push(case);
        }
        Ok((page, None))
    }

    /// The row of an entity, if any event named it.
    pub fn entity(&self, id: &str) -> Result<Option<EntityRow>, StoreError> {
        self.get(Family::Entities, id.as_bytes())
    }

    /// The latest event time applied (the correlator's clock); `None` before any event.
    pub fn clock(&self) -> Result<Option<Micros>, StoreError> {
        Ok(self
            .get::<Micros>(Family::Meta, super::CLOCK_KEY)?
            .filter(|t| *t != Micros::MIN))
    }

    /// The lineage row of an entity.
    pub fn lineage_row(&self, id: &str) -> Result<LineageRow, StoreError> {
        Ok(self
            .get(Family::Lineage, id.as_bytes())?
            .unwrap_or_default())
    }

    /// The applied events about `id`, oldest first (at most `limit`).
    pub fn history(&self, id: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let prefix = keys::history_prefix(id);
        let cf = Family::History.handle(&self.db)?;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() == limit {
                break;
            }
            out.push(codec::decode(&value).map_err(|e| StoreError::Corrupt {
                cf: Family::History.name(),
                message: e.to_string(),
            })?);
        }
        Ok(out)
    }

    /// Whether any event named `id` (as entity or as a parent).
    pub fn knows(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.entity(id)?.is_some()
            || self
                .get::<LineageRow>(Family::Lineage, id.as_bytes())?
                .is_some())
    }

    /// The state of `id` in every system it was seen in.
    pub fn states(&self, id: &str) -> Result<Vec<SystemState>, StoreError> {
        let row = self.entity(id)?.unwrap_or_default();
        Ok(System::ALL
            .iter()
            .filter(|s| row.states[s.index()] != EchoState::None)
            .map(|s| SystemState {
                system: *s,
                state: row.states[s.index()].as_str(),
                since: Some(row.since[s.index()]).filter(|t| *t != Micros::MIN),
            })
            .collect())
    }

    /// The chain of parents of `id`, nearest first, at most [`MAX_LINEAGE_NODES`] of
    /// them; and whether the chain goes on above the last one given (it was cut).
    pub fn ancestors(&self, id: &str) -> Result<(Vec<String>, bool), StoreError> {
        let mut out: Vec<String> = Vec::new();
        let mut at = id.to_owned();
        while let Some(parent) = self.lineage_row(&at)?.parent {
            if out.len() >= MAX_LINEAGE_NODES {
                return Ok((out, true));
            }
            out.push(parent.clone());
            at = parent;
        }
        Ok((out, false))
    }

    /// `id` and everything issued from it, as a tree.
    pub fn descendants(&self, id: &str) -> Result<LineageNode, StoreError> {
        let mut budget = MAX_LINEAGE_NODES;
        self.node(id, 0, &mut budget)
    }

    fn node(&self, id: &str, depth: usize, budget: &mut usize) -> Result<LineageNode, StoreError> {
        *budget = budget.saturating_sub(1);
        let row = self.entity(id)?.unwrap_or_default();
        let mut children = Vec::new();
        let mut kids = self.lineage_row(id)?.children;
        kids.sort();
        let mut truncated = false;
        for child in kids {
            if *budget == 0 || depth + 1 >= MAX_LINEAGE_DEPTH {
                truncated = true;
                break;
            }
            children.push(self.node(&child, depth + 1, budget)?);
        }
        let [issued, active] = row.clocks.map(|c| c.map(|c| c.since));
        Ok(LineageNode {
            entity: id.to_owned(),
            kind: row.kind,
            states: self.states(id)?,
            cases: row.cases,
            issued_at: issued,
            last_active_at: active,
            rotation: row.round.as_deref().map(crate::model::round::Round::view),
            truncated,
            children,
        })
    }

    /// How many cases stand where, over every case (a full scan of the cases).
    pub fn case_counts(&self) -> Result<[(CaseState, i64); 4], StoreError> {
        let mut counts = [
            (CaseState::Open, 0),
            (CaseState::Breached, 0),
            (CaseState::Complete, 0),
            (CaseState::Superseded, 0),
        ];
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = self.cases(&CaseFilter::default(), cursor.as_deref(), 4096)?;
            for case in &page {
                let state = CaseState::of(case);
                if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
                    slot.1 += 1;
                }
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(counts),
            }
        }
    }

    /// RocksDB's health: (pending compaction bytes over every column family, delayed
    /// write rate, whether writes are stopped, block cache bytes in use).
    pub fn engine_health(&self) -> Result<[u64; 4], StoreError> {
        let mut pending = 0;
        for family in Family::ALL {
            let cf = family.handle(&self.db)?;
            pending += self
                .db
                .property_int_value_cf(cf, "rocksdb.estimate-pending-compaction-bytes")?
                .unwrap_or(0);
        }
        let int = |p: &str| -> Result<u64, StoreError> {
            Ok(self.db.property_int_value(p)?.unwrap_or(0))
        };
        let entities = Family::Entities.handle(&self.db)?;
        let cache = self
            .db
            .property_int_value_cf(entities, "rocksdb.block-cache-usage")?
            .unwrap_or(0);
        Ok([
            pending,
            int("rocksdb.actual-delayed-write-rate")?,
            int("rocksdb.is-write-stopped")?,
            cache,
        ])
    }

    /// Bytes of SST files and memtables over every column family.
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for family in Family::ALL {
            let cf = family.handle(&self.db)?;
            for property in [
                "rocksdb.total-sst-files-size",
                "rocksdb.size-all-mem-tables",
            ] {
                total += self.db.property_int_value_cf(cf, property)?.unwrap_or(0);
            }
        }
        Ok(total)
    }

    /// Every alert the state holds, by instant (and, within one, by id), read one at a
    /// time.
    pub fn alerts_by_time(
        &self,
    ) -> Result<impl Iterator<Item = Result<crate::alert::Alert, StoreError>> + '_, StoreError>
    {
        let times = Family::AlertTimes.handle(&self.db)?;
        let alerts = Family::Alerts.handle(&self.db)?;
        let corrupt = |message: String| StoreError::Corrupt {
            cf: Family::Alerts.name(),
            message,
        };
        let alert = move |id: &[u8]| -> Result<Option<crate::alert::Alert>, StoreError> {
            let Some(bytes) = self.db.get_pinned_cf(alerts, id)? else {
                return Ok(None);
            };
            let json: String = codec::decode(&bytes).map_err(|e| corrupt(e.to_string()))?;
            serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| corrupt(e.to_string()))
        };
        Ok(self
            .db
            .iterator_cf(times, IteratorMode::Start)
            .filter_map(move |item| match item {
                Ok((key, _)) => alert(&key[8..]).transpose(),
                Err(e) => Some(Err(e.into())),
            }))
    }

    /// Up to `limit` alerts (canonical JSON) raised at or after `since`, in time order,
    /// after the cursor `after`; and the next cursor, if there is more.
    pub fn alerts(
        &self,
        since: Option<Micros>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<serde_json::Value>, Option<String>), StoreError> {
        let cf = Family::AlertTimes.handle(&self.db)?;
        let start = match after {
            Some(cursor) => crate::alert::unhex(cursor)
                .ok_or_else(|| StoreError::Incompatible(format!("invalid cursor {cursor:?}")))?,
            None => keys::alert_time(since.unwrap_or(Micros::MIN), "").to_vec(),
        };
        let alerts = Family::Alerts.handle(&self.db)?;
        let mut page = Vec::new();
        let mut last = None;
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (key, _) = item?;
            if after.is_some() && *key == *start {
                continue;
            }
            if page.len() == limit {
                return Ok((page, last.map(|k: Vec<u8>| crate::alert::hex(&k))));
            }
            let id = &key[8..];
            if let Some(bytes) = self.db.get_pinned_cf(alerts, id)? {
                let json: String = codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                    cf: Family::Alerts.name(),
                    message: e.to_string(),
                })?;
                page.push(
                    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                        cf: Family::Alerts.name(),
                        message: e.to_string(),
                    })?,
                );
            }
            last = Some(key.to_vec());
        }
        Ok((page, None))
    }
}
