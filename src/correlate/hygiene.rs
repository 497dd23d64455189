//! Credential hygiene (SPEC §4b): `rotation_overdue` when a credential outlives its
//! `max_age` since it was created, issued or last rotated, and `credential_unused` when it
//! goes `unused_after` without activity — both only while it is ACTIVE somewhere and not
//! covered by a revocation.
//!
//! Each arming of a clock (step 3 of an event) sets the entity's `since` and `deadline`
//! and would schedule a deadline; only the deadline of the latest arming can raise, since
//! an earlier one finds its stamp replaced. So one timer per clock suffices: arming adds a
//! timer only when none is scheduled at or before the new deadline, and a timer that comes
//! due before the clock's deadline schedules one at the deadline. `used` records — most of
//! the input — then cost a row update, not a timer write each.

use super::Correlator;
use crate::alert::{hygiene_alert_id, Alert, AlertKind};
use crate::config::HygieneConfig;
use crate::error::StoreError;
use crate::event::{Action, EntityKind, IdentityEvent};
use crate::model::entity::{EntityRow, HygieneClock};
use crate::store::keys::{Due, HygieneRule, TimerKey};
use crate::time::{Micros, Span};

impl HygieneRule {
    /// Whether a success `action` arms this clock (SPEC §4b).
    pub fn armed_by(self, action: Action) -> bool {
        use Action::*;
        match self {
            HygieneRule::MaxAge => matches!(action, Created | Issued | Rotated),
            HygieneRule::UnusedAfter => matches!(
                action,
                Created | Issued | Rotated | Enabled | Granted | Enrolled | Used
            ),
        }
    }

    /// The alert this clock raises.
    pub fn alert_kind(self) -> AlertKind {
        match self {
            HygieneRule::MaxAge => AlertKind::RotationOverdue,
            HygieneRule::UnusedAfter => AlertKind::CredentialUnused,
        }
    }
}

impl HygieneConfig {
    /// The limit of `rule` for credentials of `kind`; `None` when off.
    pub fn limit(&self, rule: HygieneRule, kind: EntityKind) -> Option<Span> {
        match rule {
            HygieneRule::MaxAge => self.max_age.get(kind),
            HygieneRule::UnusedAfter => self.unused_after.get(kind),
        }
    }
}

impl Correlator {
    /// Step (3) of a success event, §4b: arms the clocks its action and kind set. True
    /// when the entity's row changed.
    pub(super) fn arm_hygiene(&mut self, ev: &IdentityEvent, row: &mut EntityRow) -> bool {
        let mut changed = false;
        for rule in HygieneRule::ALL {
            if !rule.armed_by(ev.action) {
                continue;
            }
            let Some(limit) = self.rules.hygiene.limit(rule, ev.entity_kind) else {
                continue;
            };
            let deadline = ev.time.plus(limit);
            let clock = &mut row.clocks[rule.index()];
            let timer = match clock.and_then(|c| c.timer) {
                Some(scheduled) if scheduled <= deadline => scheduled,
                _ => {
                    self.store.add_timer(TimerKey {
                        deadline,
                        due: Due::Hygiene {
                            rule,
                            entity: ev.entity.clone(),
                        },
                    });
                    deadline
                }
            };
            let armed = Some(HygieneClock {
                since: ev.time,
                deadline,
                timer: Some(timer),
            });
            if *clock != armed {
                *clock = armed;
                changed = true;
            }
        }
        changed
    }

    /// A hygiene timer of `entity` came due at `at`: raises when it is the deadline of the
    /// clock's latest arming and the conditions of §4b hold, or schedules the deadline of
    /// a later arming.
    pub(super) fn hygiene_due(
        &mut self,
        at: Micros,
        rule: HygieneRule,
        entity: &str,
        out: &mut Vec<Alert>,
    ) -> Result<(), StoreError> {
        let mut row = self.store.entity(entity)?;
        let Some(mut clock) = row.clocks[rule.index()] else {
            return Ok(());
        };
        if clock.timer == Some(at) {
            clock.timer = None;
        }
        if clock.deadline > at && clock.timer.is_none() {
            self.store.add_timer(TimerKey {
                deadline: clock.deadline,
                due: Due::Hygiene {
                    rule,
                    entity: entity.to_owned(),
                },
            });
            clock.timer = Some(clock.deadline);
        }
        if clock.deadline == at {
            self.check_hygiene(at, rule, entity, clock.since, &row, out)?;
        }
        if row.clocks[rule.index()] != Some(clock) {
            row.clocks[rule.index()] = Some(clock);
            self.store.put_clocks(entity, row.clocks)?;
        }
        Ok(())
    }

    /// At the deadline `at` of the arming at `since`: the alert, if `entity` is ACTIVE
    /// somewhere and not covered.
    fn check_hygiene(
        &mut self,
        at: Micros,
        rule: HygieneRule,
        entity: &str,
        since: Micros,
        row: &EntityRow,
        out: &mut Vec<Alert>,
    ) -> Result<(), StoreError> {
        let systems = super::consistency::active_systems(row);
        if systems.is_empty() || self.covering_case(entity, &row.cases, at)?.is_some() {
            return Ok(());
        }
        let kind = rule.alert_kind();
        let alert_id = hygiene_alert_id(kind, entity, at);
        if self.store.alert_raised(&alert_id)? {
            return Ok(());
        }
        let root = self.store.top(entity)?;
        let what = row.kind.map_or("credential", EntityKind::as_str);
        let places = systems
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let age = Span(at.0 - since.0);
        let detail = match rule {
            HygieneRule::MaxAge => format!(
                "{what} {entity} is still active in {places} {age} after it was issued or last rotated ({since})"
            ),
            HygieneRule::UnusedAfter => format!(
                "{what} {entity} is still active in {places} and unused for {age} (last activity {since})"
            ),
        };
        let stamp = Some(since);
        let alert = Alert {
            alert_id,
            kind,
            severity: kind.severity(),
            case_id: None,
            root,
            entity: Some(entity.to_owned()),
            entities: None,
            system: None,
            systems: Some(systems),
            origin_system: None,
            revoked_at: None,
            issued_at: stamp.filter(|_| rule == HygieneRule::MaxAge),
            last_active_at: stamp.filter(|_| rule == HygieneRule::UnusedAfter),
            rotated_entity: None,
            rotated_at: None,
            first_seen: None,
            deadline: None,
            at,
            latency_ms: None,
            event_id: None,
            detail,
        };
        self.raise(alert, out)
    }
}
