//! The correlator of SPEC §4: a deterministic state machine over the RocksDB store.
//! `apply(event)` first evaluates every deadline before the event's time, then runs the
//! event's three steps — (1) lineage edge, (2) coverage checks and their alerts,
//! (3) state, cases, `echo_late` — and `finish(as_of)` evaluates the deadlines up to the
//! end of a replay. Live mode and replay drive this same code; only the clock differs.
//! The hygiene clocks of SPEC §4b ([`hygiene`]) and the rotation rounds and registration
//! deadlines of §4c ([`consistency`]) are armed in step (3) and share the deadline timers.

pub mod consistency;
pub mod hygiene;
pub mod lineage;
pub mod reorder;

use std::collections::BTreeSet;

use crate::alert::{alert_id, Alert, AlertKind};
use crate::config::{Config, HygieneConfig, SlaPolicy};
use crate::error::StoreError;
use crate::event::{Action, ActionClass, IdentityEvent, System};
use crate::model::case::{case_id, Case, Echo, Obligation};
use crate::model::entity::{EchoState, EntityRow};
use crate::store::keys::{Due, TimerKey};
use crate::store::tree::TreeState;
use crate::store::Store;
use crate::time::{Micros, Span};
use consistency::ConsistencyRules;

/// The parts of the configuration that decide alerts.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Deadlines per system and entity kind.
    pub sla: SlaPolicy,
    /// Usage tolerated this long after a revocation.
    pub use_grace: Span,
    /// The system whose echo is the report of the revocation.
    pub reporting_system: System,
    /// Rotation and dormancy limits per entity kind (SPEC §4b).
    pub hygiene: HygieneConfig,
    /// Rotation deadlines and registration in the system of record (SPEC §4c).
    pub consistency: ConsistencyRules,
}

impl From<&Config> for Rules {
    fn from(c: &Config) -> Self {
        Rules {
            sla: c.sla.clone(),
            use_grace: c.correlator.use_grace,
            reporting_system: c.correlator.reporting_system,
            hygiene: c.hygiene.clone(),
            consistency: ConsistencyRules::from(c),
        }
    }
}

/// Counters of what the correlator did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events applied.
    pub applied: u64,
    /// Events ignored as redeliveries of a processed (system, event_id).
    pub redeliveries: u64,
    /// Events applied although older than an event already applied.
    pub late: u64,
    /// Cases opened.
    pub cases_opened: u64,
    /// Cases superseded by a reactivation of their root.
    pub cases_superseded: u64,
    /// Deadlines evaluated.
    pub deadlines: u64,
    /// Rows read from RocksDB because the store's caches held nothing for them.
    pub row_reads: u64,
    /// Entities in the store's in-memory index.
    pub indexed: u64,
    /// The bytes the index holds.
    pub index_bytes: u64,
}

impl Stats {
    /// Takes `ev` in once (SPEC §4's redelivery filter, by `(system, event_id)` in
    /// `store`): false for one seen before, counted as a redelivery; otherwise counts it
    /// applied — late when older than the store's clock, which it advances.
    pub fn admit(&mut self, store: &mut Store, ev: &IdentityEvent) -> Result<bool, StoreError> {
        if !store.mark_seen(ev.system, &ev.event_id)? {
            self.redeliveries += 1;
            return Ok(false);
        }
        self.applied += 1;
        if ev.time < store.clock() {
            self.late += 1;
        } else {
            store.set_clock(ev.time);
        }
        Ok(true)
    }

    /// These counts with the gauges of `store` (its reads and in-memory index).
    pub fn of_store(self, store: &Store) -> Stats {
        Stats {
            row_reads: store.row_reads(),
            indexed: store.indexed() as u64,
            index_bytes: store.index_bytes() as u64,
            ..self
        }
    }

    /// Adds `other`'s counts to these (the shards of one replay).
    pub fn absorb(&mut self, other: &Stats) {
        self.applied += other.applied;
        self.redeliveries += other.redeliveries;
        self.late += other.late;
        self.cases_opened += other.cases_opened;
        self.cases_superseded += other.cases_superseded;
        self.deadlines += other.deadlines;
        self.row_reads += other.row_reads;
        self.indexed += other.indexed;
        self.index_bytes += other.index_bytes;
    }
}

/// The correlator: rules, the store, and counters.
pub struct Correlator {
    rules: Rules,
    store: Store,
    stats: Stats,
    changelog: Option<BTreeSet<String>>,
    echoes: Vec<(System, i64)>,
}

impl Correlator {
    /// A correlator over `store`, which may hold the state of an earlier run.
    pub fn new(rules: Rules, store: Store) -> Self {
        Correlator {
            rules,
            store,
            stats: Stats::default(),
            changelog: None,
            echoes: Vec::new(),
        }
    }

    /// Takes the tree whose top is the entity of `ev` out of this shard: its edge joins
    /// it to a tree of another shard (SPEC §7). The deadlines before the event are
    /// evaluated first, as they would be before the event itself.
    pub fn move_out(
        &mut self,
        ev: &IdentityEvent,
        out: &mut Vec<Alert>,
    ) -> Result<TreeState, StoreError> {
        self.fire_deadlines(ev.time, false, usize::MAX, out)?;
        self.store.take_tree(&ev.entity)
    }

    /// Adds a tree moved from another shard, unless it joined its new tree here already
    /// (a repeated move-in); true when added.
    pub fn move_in(&mut self, tree: TreeState) -> Result<bool, StoreError> {
        if self.joined(&tree.top)? {
            return Ok(false);
        }
        self.store.put_tree(tree)?;
        Ok(true)
    }

    /// Whether the tree whose top is `top` has joined its new tree here (a move-in for it
    /// is no longer awaited).
    pub fn joined(&mut self, top: &str) -> Result<bool, StoreError> {
        Ok(self.store.parent(top)?.is_some())
    }

    /// The rules it applies.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Also remembers which cases changed, for [`Correlator::take_changed_cases`].
    pub fn with_changelog(mut self) -> Self {
        self.changelog = Some(BTreeSet::new());
        self
    }

    /// The cases opened or changed since the last call (with a changelog).
    pub fn take_changed_cases(&mut self) -> Result<Vec<Case>, StoreError> {
        let ids = self
            .changelog
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut cases = Vec::with_capacity(ids.len());
        for id in ids {
            cases.extend(self.store.case(&id)?);
        }
        Ok(cases)
    }

    /// The echo latencies (system, ms from revocation) completed since the last call, on
    /// time or late, with a changelog.
    pub fn take_echoes(&mut self) -> Vec<(System, i64)> {
        std::mem::take(&mut self.echoes)
    }

    fn echoed(&mut self, case: &Case, system: System, at: Micros) {
        if self.changelog.is_some() {
            self.echoes
                .push((system, at.millis_since(case.revoked_at).max(0)));
        }
    }

    fn put_case(&mut self, case: Case) {
        if let Some(changed) = &mut self.changelog {
            changed.insert(case.id.clone());
        }
        self.store.put_case(case);
    }

    /// What it has done so far in this run.
    pub fn stats(&self) -> Stats {
        self.stats.of_store(&self.store)
    }

    /// The store, for queries.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Warms the store's caches for events about to be applied (an optimisation only:
    /// results are the same without it).
    pub fn prefetch<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a IdentityEvent>,
    ) -> Result<(), StoreError> {
        self.store.prefetch(events)
    }

    /// [`Correlator::prefetch`] read on another thread while the caller applies the
    /// events before these (see [`Store::start_prefetch`]); ready once
    /// [`Correlator::finish_prefetch`] returns.
    pub fn start_prefetch<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a IdentityEvent>,
    ) -> Result<(), StoreError> {
        self.store.start_prefetch(events)
    }

    /// Whether [`Correlator::start_prefetch`] pays (see [`Store::prefetch_pays_a_thread`]).
    pub fn prefetch_pays_a_thread(&self) -> bool {
        self.store.prefetch_pays_a_thread()
    }

    /// Caches what [`Correlator::start_prefetch`] read.
    pub fn finish_prefetch(&mut self) -> Result<(), StoreError> {
        self.store.finish_prefetch()
    }

    /// Commits every change so far in one write batch.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        self.store.commit()
    }

    /// Commits in one write batch written on another thread (see
    /// [`Store::commit_in_background`]); the next commit waits for it.
    pub fn commit_in_background(&mut self) -> Result<(), StoreError> {
        self.store.commit_in_background()
    }

    /// Processes one event: deadlines before its time, then its three steps. Alerts are
    /// appended to `out`.
    pub fn apply(&mut self, ev: &IdentityEvent, out: &mut Vec<Alert>) -> Result<(), StoreError> {
        self.fire_deadlines(ev.time, false, usize::MAX, out)?;
        if !self.stats.admit(&mut self.store, ev)? {
            return Ok(());
        }
        let raised = out.len();

        // (1) lineage
        if ev.succeeded() {
            if let Some(p) = &ev.parent {
                lineage::add_edge(&mut self.store, &ev.entity, p)?;
            }
        }

        // (2) coverage checks; the entity's row, read once, serves (3) too (nothing in
        // between writes it)
        let row = self.store.entity(&ev.entity)?;
        let cover = self.covering_case(&ev.entity, &row.cases, ev.time)?;
        self.check_event(ev, cover.as_ref(), out)?;

        // (3) state, cases, echo_late
        let changed = ev.succeeded() && self.apply_effect(ev, row, cover.is_some(), out)?;

        // The timeline keeps lifecycle events, and uses that changed a state or raised an
        // alert; routine repeated use (most of the volume) is not kept event by event.
        if ev.action.class() != ActionClass::Usage || changed || out.len() > raised {
            self.store.record_history(ev)?;
        }
        Ok(())
    }

    /// Live time: evaluates the deadlines before the stream watermark, earliest first and
    /// at most `max` of them, so that a step stays bounded when the watermark jumps (every
    /// feed idle, months of deadlines due at once). True when it stopped at `max`: more
    /// may be due, for the next step — an event applied first evaluates them before itself.
    pub fn advance(
        &mut self,
        watermark: Micros,
        max: usize,
        out: &mut Vec<Alert>,
    ) -> Result<bool, StoreError> {
        self.fire_deadlines(watermark, false, max, out)
    }

    /// Ends a replay: evaluates the deadlines at or before `as_of`, earliest first and at
    /// most `max` of them; true when it stopped at `max` (call again, after a commit).
    pub fn finish(
        &mut self,
        as_of: Micros,
        max: usize,
        out: &mut Vec<Alert>,
    ) -> Result<bool, StoreError> {
        self.fire_deadlines(as_of, true, max, out)
    }

    /// How many deadlines (echo and hygiene) have not been evaluated yet; commits first.
    pub fn pending(&mut self) -> Result<u64, StoreError> {
        self.store.pending_timers()
    }

    /// The first non-superseded case found walking up from `entity` (whose open cases
    /// are `cases`) through its ancestors, among cases revoked at or before `t`.
    fn covering_case(
        &mut self,
        entity: &str,
        cases: &[String],
        t: Micros,
    ) -> Result<Option<Case>, StoreError> {
        if let Some(case) = self.newest_open(cases, t)? {
            return Ok(Some(case));
        }
        // A tree where no case was ever opened covers nothing: no walk up its chain.
        if !self.store.tree_had_cases(entity)? {
            return Ok(None);
        }
        for cases in self.store.cases_above(entity)? {
            if let Some(case) = self.newest_open(&cases, t)? {
                return Ok(Some(case));
            }
        }
        Ok(None)
    }

    /// The newest of `cases` not superseded and revoked at or before `t`.
    fn newest_open(&mut self, cases: &[String], t: Micros) -> Result<Option<Case>, StoreError> {
        for id in cases.iter().rev() {
            if let Some(case) = self.store.case(id)? {
                if !case.is_superseded() && case.revoked_at <= t {
                    return Ok(Some(case));
                }
            }
        }
        Ok(None)
    }

    /// Step (2): `revoked_entity_used`, `reactivated`, `revocation_failed`.
    fn check_event(
        &mut self,
        ev: &IdentityEvent,
        cover: Option<&Case>,
        out: &mut Vec<Alert>,
    ) -> Result<(), StoreError> {
        let kind = match (ev.succeeded(), ev.action.class(), cover) {
            (true, ActionClass::Usage, Some(c))
                if ev.time > c.revoked_at.plus(self.rules.use_grace) =>
            {
                AlertKind::RevokedEntityUsed
            }
            (true, ActionClass::Presence, Some(c))
                if ev.action.reactivates() && ev.time > c.revoked_at =>
            {
                AlertKind::Reactivated
            }
            (false, ActionClass::Revocation, _) => AlertKind::RevocationFailed,
            _ => return Ok(()),
        };
        let per_event = (kind == AlertKind::RevocationFailed).then_some(ev.event_id.as_str());
        let id = alert_id(
            kind,
            cover.map(|c| c.id.as_str()),
            ev.system,
            &ev.entity,
            per_event,
        );
        if self.store.alert_raised(&id)? {
            return Ok(());
        }
        let detail = match (kind, cover) {
            (AlertKind::RevokedEntityUsed, Some(c)) => format!(
                "{} was used in {} {} after {} was revoked in {}",
                ev.entity,
                ev.system,
                Span(ev.time.0 - c.revoked_at.0),
                c.root,
                c.origin
            ),
            (AlertKind::Reactivated, Some(c)) => format!(
                "{} was {} in {} after {} was revoked in {} at {}",
                ev.entity, ev.action, ev.system, c.root, c.origin, c.revoked_at
            ),
            _ => format!(
                "{} of {} failed in {}",
                action_noun(ev.action),
                ev.entity,
                ev.system
            ),
        };
        let alert = Alert {
            alert_id: id,
            kind,
            severity: kind.severity(),
            case_id: cover.map(|c| c.id.clone()),
            root: cover.map_or_else(|| ev.entity.clone(), |c| c.root.clone()),
            entity: Some(ev.entity.clone()),
            entities: None,
            system: Some(ev.system),
            systems: None,
            origin_system: cover.map(|c| c.origin),
            revoked_at: cover.map(|c| c.revoked_at),
            issued_at: None,
            last_active_at: None,
            rotated_entity: None,
            rotated_at: None,
            first_seen: None,
            deadline: None,
            at: ev.time,
            latency_ms: None,
            event_id: Some(ev.event_id.clone()),
            detail,
        };
        self.raise(alert, out)
    }

    /// Step (3) of a success event; true when it changed the entity's state.
    fn apply_effect(
        &mut self,
        ev: &IdentityEvent,
        mut row: EntityRow,
        covered: bool,
        out: &mut Vec<Alert>,
    ) -> Result<bool, StoreError> {
        let consistency = self.apply_consistency(ev, &mut row, covered)?;
        let relabelled = row.latest_kind != Some(ev.entity_kind);
        row.latest_kind = Some(ev.entity_kind);
        let slot = ev.system.index();
        let old = row.states[slot];
        let new = match ev.action.class() {
            ActionClass::Presence => EchoState::Active,
            ActionClass::Revocation => EchoState::Revoked,
            ActionClass::Usage if old == EchoState::None => EchoState::Active,
            ActionClass::Usage => old,
        };
        row.states[slot] = new;
        if new != old {
            row.since[slot] = ev.time;
        }
        let cases_before = row.cases.len();
        let first_seen = row.kind.is_none();
        if first_seen {
            row.kind = Some(ev.entity_kind);
        }
        let sighted = row.note_sighting(ev);

        if ev.action.reactivates() && !row.cases.is_empty() {
            let mut kept = Vec::with_capacity(row.cases.len());
            for id in std::mem::take(&mut row.cases) {
                match self.store.case(&id)? {
                    Some(mut case) if ev.time > case.revoked_at => {
                        case.superseded_at = Some(ev.time);
                        self.put_case(case);
                        self.stats.cases_superseded += 1;
                    }
                    Some(_) => kept.push(id),
                    None => {}
                }
            }
            row.cases = kept;
        }

        if ev.action.class() == ActionClass::Revocation && !covered {
            let case = self.open_case(ev);
            row.cases.push(case.id.clone());
            self.store.count_tree_case(&ev.entity)?;
            self.put_case(case);
        }
        let armed = self.arm_hygiene(ev, &mut row);
        // Usage by an active entity changes nothing but its hygiene clock, if it has one:
        // no row write for most events.
        if new != old
            || row.cases.len() != cases_before
            || first_seen
            || consistency
            || relabelled
            || sighted
        {
            self.store.put_entity(&ev.entity, row)?;
        } else if armed {
            self.store.put_clocks(&ev.entity, row.clocks)?;
        }

        if new == EchoState::Revoked && old != EchoState::Revoked {
            self.check_echo_late(ev, out)?;
        }
        Ok(new != old)
    }

    /// A new case for a success revocation that nothing covers, with its timers.
    fn open_case(&mut self, ev: &IdentityEvent) -> Case {
        let id = case_id(&ev.entity, ev.time, ev.system);
        let obligations: Vec<Obligation> = System::ALL
            .iter()
            .filter_map(|&system| {
                self.rules
                    .sla
                    .get(ev.entity_kind, system)
                    .map(|sla| Obligation {
                        system,
                        deadline: ev.time.plus(sla),
                        echo: Echo::Pending,
                    })
            })
            .collect();
        for o in &obligations {
            self.store.add_timer(TimerKey {
                deadline: o.deadline,
                due: Due::Echo {
                    case_id: id.clone(),
                    system: o.system,
                },
            });
        }
        self.stats.cases_opened += 1;
        Case {
            id,
            root: ev.entity.clone(),
            root_kind: ev.entity_kind,
            revoked_at: ev.time,
            origin: ev.system,
            opened_by: ev.event_id.clone(),
            superseded_at: None,
            obligations,
        }
    }

    /// Evaluates the deadlines before `limit` (or at it, if `inclusive`), earliest first,
    /// at most `max` of them; true when it stopped at `max`.
    fn fire_deadlines(
        &mut self,
        limit: Micros,
        inclusive: bool,
        max: usize,
        out: &mut Vec<Alert>,
    ) -> Result<bool, StoreError> {
        for _ in 0..max {
            let Some(timer) = self.store.pop_due_timer(limit, inclusive)? else {
                return Ok(false);
            };
            self.stats.deadlines += 1;
            match timer.due {
                Due::Echo { case_id, system } => self.echo_due(&case_id, system, out)?,
                Due::Rotation { rotated_at, entity } => {
                    self.rotation_due(timer.deadline, rotated_at, &entity, out)?
                }
                Due::Registration { entity, .. } => {
                    self.registration_due(timer.deadline, &entity, out)?
                }
                Due::Hygiene { rule, entity } => {
                    self.hygiene_due(timer.deadline, rule, &entity, out)?
                }
            }
        }
        Ok(true)
    }

    /// The echo deadline of `case_id` in `system` came due: met, or `echo_missing`.
    fn echo_due(
        &mut self,
        case_id: &str,
        system: System,
        out: &mut Vec<Alert>,
    ) -> Result<(), StoreError> {
        let Some(mut case) = self.store.case(case_id)? else {
            return Ok(());
        };
        if case.is_superseded() {
            return Ok(());
        }
        let (missing, echoed_at) = self.missing(&case, system)?;
        let Some(obligation) = case.obligation_mut(system) else {
            return Ok(());
        };
        if missing.is_empty() {
            obligation.echo = Echo::Met { at: echoed_at };
            if let Some(at) = echoed_at {
                self.echoed(&case, system, at);
            }
            self.put_case(case);
            return Ok(());
        }
        obligation.echo = Echo::Missing {
            entities: missing.clone(),
        };
        let deadline = obligation.deadline;
        for e in &missing {
            let mut watching = self.store.watches(e, system)?;
            watching.push(case.id.clone());
            self.store.put_watches(e, system, watching);
        }
        let detail = if system == self.rules.reporting_system {
            format!(
                "{} has not reported the revocation of {} ({} at {})",
                system, case.root, case.origin, case.revoked_at
            )
        } else {
            format!(
                "{} has not echoed the revocation of {} ({} at {}): {} still active",
                system,
                case.root,
                case.origin,
                case.revoked_at,
                missing.join(", ")
            )
        };
        let alert = self.echo_alert(
            AlertKind::EchoMissing,
            &case,
            system,
            missing,
            deadline,
            detail,
        );
        self.put_case(case);
        self.raise(alert, out)
    }

    /// The missing set of SPEC §4 for `case` in `system`, sorted.
    /// The missing set of `case` in `system` (SPEC §4), and when the entities that
    /// system revoked were revoked there (the latest), for the echo latency of a met
    /// obligation.
    fn missing(
        &mut self,
        case: &Case,
        system: System,
    ) -> Result<(Vec<String>, Option<Micros>), StoreError> {
        if system == self.rules.reporting_system {
            let (state, since) = self.store.state_since(&case.root, system)?;
            return Ok(if state == EchoState::Revoked {
                (vec![], Some(since))
            } else {
                (vec![case.root.clone()], None)
            });
        }
        let mut missing = Vec::new();
        let mut echoed_at = None;
        self.store
            .tree_states(&case.root, system, |e, state, since| match state {
                EchoState::Active => missing.push(e.to_owned()),
                EchoState::Revoked => echoed_at = echoed_at.max(Some(since)),
                EchoState::None => {}
            })?;
        missing.sort();
        missing.dedup();
        Ok((missing, echoed_at))
    }

    /// After `ev` revoked its entity in its system: raises `echo_late` for every case
    /// whose missing set in that system is now fully echoed.
    fn check_echo_late(
        &mut self,
        ev: &IdentityEvent,
        out: &mut Vec<Alert>,
    ) -> Result<(), StoreError> {
        let watching = self.store.watches(&ev.entity, ev.system)?;
        if watching.is_empty() {
            return Ok(());
        }
        let mut still = Vec::new();
        for id in watching {
            let Some(mut case) = self.store.case(&id)? else {
                continue;
            };
            if case.is_superseded() {
                continue;
            }
            let Some(Obligation {
                echo: Echo::Missing { entities },
                deadline,
                ..
            }) = case
                .obligations
                .iter()
                .find(|o| o.system == ev.system)
                .cloned()
            else {
                continue;
            };
            let mut done = true;
            for e in &entities {
                let state = self.store.state(e, ev.system)?;
                let echoed = if ev.system == self.rules.reporting_system {
                    state == EchoState::Revoked
                } else {
                    state != EchoState::Active
                };
                if !echoed {
                    done = false;
                    break;
                }
            }
            if !done {
                still.push(id);
                continue;
            }
            if let Some(o) = case.obligation_mut(ev.system) {
                o.echo = Echo::Late {
                    entities: entities.clone(),
                    at: ev.time,
                    event_id: ev.event_id.clone(),
                };
            }
            let latency = ev.time.millis_since(case.revoked_at);
            self.echoed(&case, ev.system, ev.time);
            let detail = format!(
                "{} echoed the revocation of {} {} after it, {} past its deadline",
                ev.system,
                case.root,
                Span(ev.time.0 - case.revoked_at.0),
                Span(ev.time.0 - deadline.0)
            );
            let mut alert = self.echo_alert(
                AlertKind::EchoLate,
                &case,
                ev.system,
                entities,
                deadline,
                detail,
            );
            alert.at = ev.time;
            alert.latency_ms = Some(latency);
            alert.event_id = Some(ev.event_id.clone());
            self.put_case(case);
            self.raise(alert, out)?;
        }
        self.store.put_watches(&ev.entity, ev.system, still);
        Ok(())
    }

    fn echo_alert(
        &self,
        kind: AlertKind,
        case: &Case,
        system: System,
        entities: Vec<String>,
        deadline: Micros,
        detail: String,
    ) -> Alert {
        Alert {
            alert_id: alert_id(kind, Some(&case.id), system, &case.root, None),
            kind,
            severity: kind.severity(),
            case_id: Some(case.id.clone()),
            root: case.root.clone(),
            entity: None,
            entities: Some(entities),
            system: Some(system),
            systems: None,
            origin_system: Some(case.origin),
            revoked_at: Some(case.revoked_at),
            issued_at: None,
            last_active_at: None,
            rotated_entity: None,
            rotated_at: None,
            first_seen: None,
            deadline: Some(deadline),
            at: deadline,
            latency_ms: None,
            event_id: None,
            detail,
        }
    }

    fn raise(&mut self, alert: Alert, out: &mut Vec<Alert>) -> Result<(), StoreError> {
        self.store.record_alert(&alert)?;
        out.push(alert);
        Ok(())
    }
}

fn action_noun(action: Action) -> &'static str {
    match action {
        Action::Revoked => "revocation",
        Action::Disabled => "disabling",
        Action::Deleted => "deletion",
        Action::Unenrolled => "unenrolment",
        Action::Expired => "expiry",
        _ => "action",
    }
}

#[cfg(test)]
mod tests;
