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

/// A deadline timer: `(deadline, case_id, system)`, scanned in deadline order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey {
    /// When the obligation falls due.
    pub deadline: Micros,
    /// The case it belongs to.
    pub case_id: String,
    /// The system that owes the echo.
    pub system: System,
}

impl TimerKey {
    /// `deadline(8, order-preserving) case_id \0 system`.
    pub fn encode(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.case_id.len() + 10);
        k.extend_from_slice(&instant(self.deadline));
        k.extend_from_slice(self.case_id.as_bytes());
        k.push(0);
        k.push(self.system.index() as u8);
        k
    }

    /// Decodes [`TimerKey::encode`]; `None` for bytes it did not write.
    pub fn decode(bytes: &[u8]) -> Option<TimerKey> {
        if bytes.len() < 10 || bytes[bytes.len() - 2] != 0 {
            return None;
        }
        let deadline = decode_instant(bytes[..8].try_into().ok()?);
        let case_id = std::str::from_utf8(&bytes[8..bytes.len() - 2])
            .ok()?
            .to_owned();
        let system = *System::ALL.get(bytes[bytes.len() - 1] as usize)?;
        Some(TimerKey {
            deadline,
            case_id,
            system,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn system() -> impl Strategy<Value = System> {
        (0usize..4).prop_map(|i| System::ALL[i])
    }

    proptest! {
        #[test]
        fn instant_order_is_byte_order(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(a.cmp(&b), instant(Micros(a)).cmp(&instant(Micros(b))));
            prop_assert_eq!(decode_instant(instant(Micros(a))), Micros(a));
        }

        #[test]
        fn timer_key_order_is_logical_order(
            a in (any::<i64>(), "[a-z0-9-]{0,12}", system()),
            b in (any::<i64>(), "[a-z0-9-]{0,12}", system()),
        ) {
            let ka = TimerKey { deadline: Micros(a.0), case_id: a.1, system: a.2 };
            let kb = TimerKey { deadline: Micros(b.0), case_id: b.1, system: b.2 };
            prop_assert_eq!(ka.cmp(&kb), ka.encode().cmp(&kb.encode()));
            prop_assert_eq!(TimerKey::decode(&ka.encode()), Some(ka));
        }
    }
}
