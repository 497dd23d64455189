//! Consistency (SPEC §4c): `rotation_missed` when a holder of a rotated credential — the
//! credential itself in another system, or a `secret` child of it — is not rotated by its
//! rotation deadline, and `unregistered_identity` when an identity first seen outside the
//! system of record is still unknown there `register_within` later.
//!
//! Both live in the rotated or first-seen entity's row (its latest round, its
//! registration mark) with timers in the deadline order of §4c; nothing is read or armed
//! for an event that is neither a rotation nor the first presence of a kind with a
//! `register_within` outside the system of record.

use super::Correlator;
use crate::alert::{registration_alert_id, rotation_alert_id, Alert, AlertKind};
use crate::config::{Config, KindLimits, Sla};
use crate::error::StoreError;
use crate::event::{Action, ActionClass, EntityKind, IdentityEvent, System};
use crate::model::entity::{EchoState, EntityRow};
use crate::model::round::{Followed, Registration, Round, RoundObligation};
use crate::store::keys::{Due, TimerKey};
use crate::time::Micros;

/// The rules of §4c, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct ConsistencyRules {
    /// Where an identity must exist to be registered.
    pub system_of_record: System,
    /// The rotation deadline of each system (none for the reporting system).
    pub rotation_sla: [Sla; 4],
    /// How long an identity of each kind may stay unregistered.
    pub register_within: KindLimits,
}

impl From<&Config> for ConsistencyRules {
    fn from(c: &Config) -> Self {
        ConsistencyRules {
            system_of_record: c.consistency.system_of_record,
            rotation_sla: c
                .consistency
                .rotation_slas(&c.sla, c.correlator.reporting_system),
            register_within: c.consistency.register_within.clone(),
        }
    }
}

impl Correlator {
    /// Step (3) of a success event, before its effect on state: the rotation rounds it
    /// opens or echoes and the registration deadline it arms. True when `row` changed.
    pub(super) fn apply_consistency(
        &mut self,
        ev: &IdentityEvent,
        row: &mut EntityRow,
        covered: bool,
    ) -> Result<bool, StoreError> {
        let mut changed = false;
        if ev.action == Action::Rotated {
            changed |= self.rotated(ev, row, covered)?;
        }
        if ev.action.class() == ActionClass::Presence {
            changed |= self.arm_registration(ev, row)?;
        }
        Ok(changed)
    }

    /// A `rotated` event of E: echoes E's open round, or opens one; echoes the open
    /// round of E's parent (E a secret it holds).
    fn rotated(
        &mut self,
        ev: &IdentityEvent,
        row: &mut EntityRow,
        covered: bool,
    ) -> Result<bool, StoreError> {
        let changed = match row.round.as_deref_mut() {
            Some(round) if round.is_open() => echo(round, &ev.entity, ev.system, ev.time),
            _ if !covered && ev.system != self.rules.reporting_system => {
                match self.open_round(ev, row)? {
                    Some(round) => {
                        row.round = Some(Box::new(round));
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if let Some(parent) = self.store.parent(&ev.entity)? {
            let mut above = self.store.entity(&parent)?;
            if let Some(round) = above.round.as_deref_mut().filter(|r| r.is_open()) {
                if echo(round, &ev.entity, ev.system, ev.time) {
                    self.store.put_entity(&parent, above)?;
                }
            }
        }
        Ok(changed)
    }

    /// The round a rotation of E at t in s opens, with a timer per deadline; none when
    /// it has no obligations (it closes at once). `row` is E's, before this event.
    fn open_round(
        &mut self,
        ev: &IdentityEvent,
        row: &EntityRow,
    ) -> Result<Option<Round>, StoreError> {
        let mut obligations = Vec::new();
        self.owed(&ev.entity, row, ev, &mut obligations);
        let mut children = Vec::new();
        self.store
            .for_children(&ev.entity, |c| children.push(c.to_owned()))?;
        for child in children {
            let held = self.store.entity(&child)?;
            if held.latest_kind == Some(EntityKind::Secret) {
                self.owed(&child, &held, ev, &mut obligations);
            }
        }
        if obligations.is_empty() {
            return Ok(None);
        }
        let round = Round {
            rotated_at: ev.time,
            origin: ev.system,
            obligations,
        };
        for deadline in round.pending_deadlines() {
            self.store.add_timer(TimerKey {
                deadline,
                due: Due::Rotation {
                    rotated_at: ev.time,
                    entity: ev.entity.clone(),
                },
            });
        }
        Ok(Some(round))
    }

    /// The obligations of holder H (row `held`) to the rotation `ev`: every system with a
    /// rotation SLA where H is ACTIVE, except (E, s) itself.
    fn owed(
        &self,
        holder: &str,
        held: &EntityRow,
        ev: &IdentityEvent,
        out: &mut Vec<RoundObligation>,
    ) {
        for &system in System::ALL {
            let Some(sla) = self.rules.consistency.rotation_sla[system.index()] else {
                continue;
            };
            if held.states[system.index()] != EchoState::Active
                || (holder == ev.entity && system == ev.system)
            {
                continue;
            }
            out.push(RoundObligation {
                holder: holder.to_owned(),
                system,
                deadline: ev.time.plus(sla),
                echoed: None,
                outcome: None,
            });
        }
    }

    /// A rotation deadline of the round of `entity` rotated at `rotated_at` came due:
    /// each obligation due then is echoed, released, or `rotation_missed`.
    pub(super) fn rotation_due(
        &mut self,
        deadline: Micros,
        rotated_at: Micros,
        entity: &str,
        out: &mut Vec<Alert>,
    ) -> Result<(), StoreError> {
        let mut row = self.store.entity(entity)?;
        let Some(mut round) = row.round.take().filter(|r| r.rotated_at == rotated_at) else {
            return Ok(());
        };
        let origin = round.origin;
        for o in &mut round.obligations {
            if o.deadline != deadline || o.outcome.is_some() {
                continue;
            }
            let followed = if o.echoed.is_some() {
                Followed::Echoed
            } else if self.store.state(&o.holder, o.system)? != EchoState::Active
                || self.covered(&o.holder, deadline)?
            {
                Followed::Released
            } else {
                let alert = self.rotation_missed(entity, origin, rotated_at, o)?;
                if !self.store.alert_raised(&alert.alert_id)? {
                    self.raise(alert, out)?;
                }
                Followed::Missed
            };
            o.outcome = Some(followed);
        }
        row.round = Some(round);
        self.store.put_entity(entity, row)?;
        Ok(())
    }

    fn rotation_missed(
        &mut self,
        rotated: &str,
        origin: System,
        rotated_at: Micros,
        o: &RoundObligation,
    ) -> Result<Alert, StoreError> {
        let kind = AlertKind::RotationMissed;
        let what = if o.holder == rotated {
            format!("{rotated} was rotated in {origin} at {rotated_at}")
        } else {
            format!(
                "{rotated}, which {} holds, was rotated in {origin} at {rotated_at}",
                o.holder
            )
        };
        Ok(Alert {
            alert_id: rotation_alert_id(rotated, rotated_at, &o.holder, o.system),
            kind,
            severity: kind.severity(),
            case_id: None,
            root: self.store.top(&o.holder)?,
            entity: Some(o.holder.clone()),
            entities: None,
            system: Some(o.system),
            systems: None,
            origin_system: Some(origin),
            revoked_at: None,
            issued_at: None,
            last_active_at: None,
            rotated_entity: Some(rotated.to_owned()),
            rotated_at: Some(rotated_at),
            first_seen: None,
            deadline: Some(o.deadline),
            at: o.deadline,
            latency_ms: None,
            event_id: None,
            detail: format!(
                "{what}; {} still holds the old value in {} past its rotation deadline",
                o.holder, o.system
            ),
        })
    }

    /// Arms the registration deadline of E, first seen outside the system of record, if
    /// its kind has one, it is not registered, and none was ever armed. True when `row`
    /// changed.
    fn arm_registration(
        &mut self,
        ev: &IdentityEvent,
        row: &mut EntityRow,
    ) -> Result<bool, StoreError> {
        let record = self.rules.consistency.system_of_record;
        if ev.system == record
            || row.registration != Registration::Unknown
            || row.states[record.index()] != EchoState::None
        {
            return Ok(false);
        }
        let Some(within) = self.rules.consistency.register_within.get(ev.entity_kind) else {
            return Ok(false);
        };
        if self.ancestor_registered(&ev.entity)? {
            row.registration = Registration::Registered;
            return Ok(true);
        }
        let deadline = ev.time.plus(within);
        row.registration = Registration::Armed {
            first_seen: ev.time,
            deadline,
        };
        self.store.add_timer(TimerKey {
            deadline,
            due: Due::Registration {
                first_seen: ev.time,
                entity: ev.entity.clone(),
            },
        });
        Ok(true)
    }

    /// Whether an ancestor of `entity` has a state in the system of record.
    fn ancestor_registered(&mut self, entity: &str) -> Result<bool, StoreError> {
        let record = self.rules.consistency.system_of_record;
        let mut current = self.store.parent(entity)?;
        while let Some(e) = current {
            if self.store.state(&e, record)? != EchoState::None {
                return Ok(true);
            }
            current = self.store.parent(&e)?;
        }
        Ok(false)
    }

    /// The registration deadline of `entity` came due: `unregistered_identity` if it is
    /// still unregistered, ACTIVE somewhere and not covered.
    pub(super) fn registration_due(
        &mut self,
        deadline: Micros,
        entity: &str,
        out: &mut Vec<Alert>,
    ) -> Result<(), StoreError> {
        let mut row = self.store.entity(entity)?;
        let Registration::Armed {
            first_seen,
            deadline: armed,
        } = row.registration
        else {
            return Ok(());
        };
        if armed != deadline {
            return Ok(());
        }
        row.registration = Registration::Evaluated { first_seen };
        let record = self.rules.consistency.system_of_record;
        let systems = active_systems(&row);
        let raise = row.states[record.index()] == EchoState::None
            && !systems.is_empty()
            && !self.ancestor_registered(entity)?
            && self.covering_case(entity, &row.cases, deadline)?.is_none();
        let kind_name = row.kind.map_or("identity", EntityKind::as_str);
        let detail = format!(
            "{kind_name} {entity} is active in {} since {first_seen} and {record} has never known it or an ancestor",
            systems.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
        self.store.put_entity(entity, row)?;
        let alert_id = registration_alert_id(entity);
        if !raise || self.store.alert_raised(&alert_id)? {
            return Ok(());
        }
        let kind = AlertKind::UnregisteredIdentity;
        let alert = Alert {
            alert_id,
            kind,
            severity: kind.severity(),
            case_id: None,
            root: self.store.top(entity)?,
            entity: Some(entity.to_owned()),
            entities: None,
            system: None,
            systems: Some(systems),
            origin_system: None,
            revoked_at: None,
            issued_at: None,
            last_active_at: None,
            rotated_entity: None,
            rotated_at: None,
            first_seen: Some(first_seen),
            deadline: None,
            at: deadline,
            latency_ms: None,
            event_id: None,
            detail,
        };
        self.raise(alert, out)
    }

    /// Whether a non-superseded case covers `entity` at `t`.
    fn covered(&mut self, entity: &str, t: Micros) -> Result<bool, StoreError> {
        let cases = self.store.open_cases(entity)?;
        Ok(self.covering_case(entity, &cases, t)?.is_some())
    }
}

/// Marks the obligation of (`holder`, `system`) of `round` echoed by a rotation at `t`,
/// if it is one not yet echoed and `t` is within [rotated_at, deadline]. True if so.
fn echo(round: &mut Round, holder: &str, system: System, t: Micros) -> bool {
    let rotated_at = round.rotated_at;
    match round.obligations.iter_mut().find(|o| {
        o.holder == holder
            && o.system == system
            && o.outcome.is_none()
            && o.echoed.is_none()
            && rotated_at <= t
            && t <= o.deadline
    }) {
        Some(o) => {
            o.echoed = Some(t);
            true
        }
        None => false,
    }
}

/// The systems where the row is ACTIVE, sorted by name.
pub(super) fn active_systems(row: &EntityRow) -> Vec<System> {
    let mut systems: Vec<System> = System::ALL
        .iter()
        .copied()
        .filter(|s| row.states[s.index()] == EchoState::Active)
        .collect();
    systems.sort_by_key(|s| s.as_str());
    systems
}
