//! Order-preserving key codecs. Integers are big-endian with the sign bit flipped so
//! that byte order is numeric order; strings end with a 0 byte so that a key that is a
//! prefix of another sorts first. Each key kind lives in its own column family.

use crate::event::System;
use crate::time::Micros;

/// Encodes an instant so that byte order is time order (negative times included).
pub fn instant(t: Micros) -> [u8; 8] {
    ((t.0 as u64) ^ (1 << 63)).to_be_bytes()
}

/// Decodes [`instant`].
pub fn decode_instant(bytes: [u8; 8]) -> Micros {
    Micros((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// Key of a per-(entity, system) row: `entity \0 system`.
pub fn entity_system(entity: &str, system: System) -> Vec<u8> {
    let mut k = Vec::with_capacity(entity.len() + 2);
    k.extend_from_slice(entity.as_bytes());
    k.push(0);
    k.push(system.index() as u8);
    k
}

/// Key of a redelivery marker: `system event_id`.
pub fn seen(system: System, event_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(event_id.len() + 1);
    k.push(system.index() as u8);
    k.extend_from_slice(event_id.as_bytes());
    k
}

/// Key of a timeline entry: `entity \0 time(8) system event_id`, so an entity's
/// history is one prefix scan in time order.
pub fn history(ev: &crate::event::IdentityEvent) -> Vec<u8> {
    let mut k = history_prefix(&ev.entity);
    k.extend_from_slice(&instant(ev.time));
    k.push(ev.system.index() as u8);
    k.extend_from_slice(ev.event_id.as_bytes());
    k
}

/// The prefix of every timeline key of `entity`.
pub fn history_prefix(entity: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(entity.len() + 24);
    k.extend_from_slice(entity.as_bytes());
    k.push(0);
    k
}

/// Key of the time index of alerts: `at(8) alert_id`.
pub fn alert_time(at: Micros, alert_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(alert_id.len() + 8);
    k.extend_from_slice(&instant(at));
    k.extend_from_slice(alert_id.as_bytes());
    k
}

/// A deadline timer, scanned in deadline order; at one instant the echo deadlines of
/// SPEC §4 come first, then the rotation and the registration deadlines of §4c, then the
/// hygiene deadlines of §4b; within one kind, in the order they were armed (by the time
/// of the arming event, then by entity).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey {
    /// When it falls due.
    pub deadline: Micros,
    /// What falls due.
    pub due: Due,
}

/// What a timer evaluates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Due {
    /// The echo a system owes a case (SPEC §4).
    Echo {
        /// The case.
        case_id: String,
        /// The system that owes the echo.
        system: System,
    },
    /// Deadlines of the rotation round of an entity (SPEC §4c): every obligation of the
    /// round with this deadline.
    Rotation {
        /// When the entity was rotated (the round).
        rotated_at: Micros,
        /// The rotated entity.
        entity: String,
    },
    /// The registration deadline of an entity (SPEC §4c).
    Registration {
        /// When it was first seen outside the system of record.
        first_seen: Micros,
        /// The entity.
        entity: String,
    },
    /// One of an entity's hygiene clocks (SPEC §4b).
    Hygiene {
        /// Which clock.
        rule: HygieneRule,
        /// The credential.
        entity: String,
    },
}

/// The two clocks of SPEC §4b.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HygieneRule {
    /// `max_age` since creation, issue or the last rotation: `rotation_overdue`.
    MaxAge,
    /// `unused_after` since the last activity: `credential_unused`.
    UnusedAfter,
}

impl HygieneRule {
    /// Both rules.
    pub const ALL: [HygieneRule; 2] = [HygieneRule::MaxAge, HygieneRule::UnusedAfter];

    /// Position in [`Self::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl TimerKey {
    /// `deadline(8, order-preserving)` then `0 case_id \0 system` (echo),
    /// `1 rotated_at(8) entity` (rotation), `2 first_seen(8) entity` (registration) or
    /// `3 rule entity` (hygiene).
    pub fn encode(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(32);
        k.extend_from_slice(&instant(self.deadline));
        match &self.due {
            Due::Echo { case_id, system } => {
                k.push(0);
                k.extend_from_slice(case_id.as_bytes());
                k.push(0);
                k.push(system.index() as u8);
            }
            Due::Rotation { rotated_at, entity } => {
                k.push(1);
                k.extend_from_slice(&instant(*rotated_at));
                k.extend_from_slice(entity.as_bytes());
            }
            Due::Registration { first_seen, entity } => {
                k.push(2);
                k.extend_from_slice(&instant(*first_seen));
                k.extend_from_slice(entity.as_bytes());
            }
            Due::Hygiene { rule, entity } => {
                k.push(3);
                k.push(rule.index() as u8);
                k.extend_from_slice(entity.as_bytes());
            }
        }
        k
    }

    /// Decodes [`TimerKey::encode`]; `None` for bytes it did not write.
    pub fn decode(bytes: &[u8]) -> Option<TimerKey> {
        let deadline = decode_instant(bytes.get(..8)?.try_into().ok()?);
        let due = match (bytes.get(8)?, &bytes[9..]) {
            (0, rest) if rest.len() >= 2 && rest[rest.len() - 2] == 0 => Due::Echo {
                case_id: std::str::from_utf8(&rest[..rest.len() - 2])
                    .ok()?
                    .to_owned(),
                system: *System::ALL.get(rest[rest.len() - 1] as usize)?,
            },
            (1, rest) if rest.len() >= 8 => Due::Rotation {
                rotated_at: decode_instant(rest[..8].try_into().ok()?),
                entity: std::str::from_utf8(&rest[8..]).ok()?.to_owned(),
            },
            (2, rest) if rest.len() >= 8 => Due::Registration {
                first_seen: decode_instant(rest[..8].try_into().ok()?),
                entity: std::str::from_utf8(&rest[8..]).ok()?.to_owned(),
            },
            (3, [rule, entity @ ..]) => Due::Hygiene {
                rule: *HygieneRule::ALL.get(*rule as usize)?,
                entity: std::str::from_utf8(entity).ok()?.to_owned(),
            },
            _ => return None,
        };
        Some(TimerKey { deadline, due })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn system() -> impl Strategy<Value = System> {
        (0usize..4).prop_map(|i| System::ALL[i])
    }

    fn due() -> impl Strategy<Value = Due> {
        prop_oneof![
            ("[a-z0-9-]{0,12}", system())
                .prop_map(|(case_id, system)| Due::Echo { case_id, system }),
            (prop_oneof![any::<i64>(), -2i64..2], "[a-z0-9\\x00é-]{0,12}").prop_map(
                |(t, entity)| Due::Rotation {
                    rotated_at: Micros(t),
                    entity
                }
            ),
            (prop_oneof![any::<i64>(), -2i64..2], "[a-z0-9\\x00é-]{0,12}").prop_map(
                |(t, entity)| Due::Registration {
                    first_seen: Micros(t),
                    entity
                }
            ),
            (0usize..2, "[a-z0-9\\x00é-]{0,12}").prop_map(|(r, entity)| Due::Hygiene {
                rule: HygieneRule::ALL[r],
                entity
            }),
        ]
    }

    proptest! {
        #[test]
        fn instant_order_is_byte_order(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(a.cmp(&b), instant(Micros(a)).cmp(&instant(Micros(b))));
            prop_assert_eq!(decode_instant(instant(Micros(a))), Micros(a));
        }

        #[test]
        fn timer_key_order_is_logical_order(
            a in (prop_oneof![any::<i64>(), -2i64..2], due()),
            b in (prop_oneof![any::<i64>(), -2i64..2], due()),
        ) {
            let ka = TimerKey { deadline: Micros(a.0), due: a.1 };
            let kb = TimerKey { deadline: Micros(b.0), due: b.1 };
            prop_assert_eq!(ka.cmp(&kb), ka.encode().cmp(&kb.encode()));
            prop_assert_eq!(TimerKey::decode(&ka.encode()), Some(ka));
        }
    }
}
