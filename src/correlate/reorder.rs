//! The reorder buffer: holds events until no event within the allowed lateness can
//! still sort before them, then releases them in (`time`, `event_id`, `system`) order.
//! An event that arrives within `allowed_lateness` of the newest event seen so far is
//! therefore processed exactly where it belongs; an older one is released at once
//! (applied late, never dropped). Replay uses the buffer's own watermark; the live
//! pipeline releases up to the stream watermark of its partitions.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::event::IdentityEvent;
use crate::time::{Micros, Span};

/// A held event and its tag (e.g. the Kafka position it came from). The heap moves
/// only its time, the first bytes of its id and a pointer — an event is a few hundred
/// bytes, and a heap of the tens of thousands a live stream holds moves each one some
/// sixteen times — and follows the pointer only between events of the same instant
/// whose ids begin alike (sources that stamp whole seconds make many equal instants).
struct Held<T> {
    time: Micros,
    id_prefix: u64,
    entry: Box<(IdentityEvent, T)>,
}

/// The first 8 bytes of `id`, zero-padded, big-endian: ordered as the ids are wherever
/// they differ (a shorter id sorts first unless the longer one continues with zeros,
/// and then the prefixes are equal).
fn id_prefix(id: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = id.len().min(8);
    bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.time
            .cmp(&other.time)
            .then(self.id_prefix.cmp(&other.id_prefix))
            .then_with(|| self.entry.0.order_key().cmp(&other.entry.0.order_key()))
    }
}

/// A min-heap of events keyed by processing order, bounded in time by the lateness.
/// Each event carries a tag `T` back out with it.
pub struct ReorderBuffer<T = ()> {
    lateness: Span,
    newest: Micros,
    held: BinaryHeap<Reverse<Held<T>>>,
}

impl ReorderBuffer<()> {
    /// Takes an untagged event in.
    pub fn push(&mut self, ev: IdentityEvent) {
        self.push_tagged(ev, ());
    }

    /// The next event that can no longer be overtaken, if any.
    pub fn pop_ready(&mut self) -> Option<IdentityEvent> {
        self.pop_before(self.watermark()).map(|held| held.0)
    }

    /// The next held event regardless of the watermark (end of input).
    pub fn pop_any(&mut self) -> Option<IdentityEvent> {
        self.held.pop().map(|Reverse(held)| held.entry.0)
    }
}

impl<T> ReorderBuffer<T> {
    /// A buffer that waits `lateness` for stragglers.
    pub fn new(lateness: Span) -> Self {
        ReorderBuffer {
            lateness,
            newest: Micros::MIN,
            held: BinaryHeap::new(),
        }
    }

    /// The buffer's own watermark (newest event time minus the lateness): events at or
    /// after it may still arrive and be put in order.
    pub fn watermark(&self) -> Micros {
        self.newest.minus(self.lateness)
    }

    /// Takes an event in with its tag.
    pub fn push_tagged(&mut self, ev: IdentityEvent, tag: T) {
        self.newest = self.newest.max(ev.time);
        self.held.push(Reverse(Held {
            time: ev.time,
            id_prefix: id_prefix(&ev.event_id),
            entry: Box::new((ev, tag)),
        }));
    }

    /// The next event older than `limit`, with its tag — boxed as it was held, so that
    /// a run of released events is a run of pointers, not of event-sized copies.
    pub fn pop_before(&mut self, limit: Micros) -> Option<Box<(IdentityEvent, T)>> {
        match self.held.peek() {
            Some(Reverse(held)) if held.time < limit => {
                self.held.pop().map(|Reverse(held)| held.entry)
            }
            _ => None,
        }
    }

    /// The next event older than `limit`, left in place.
    pub fn peek_before(&self, limit: Micros) -> Option<&(IdentityEvent, T)> {
        match self.held.peek() {
            Some(Reverse(held)) if held.time < limit => Some(&held.entry),
            _ => None,
        }
    }

    /// The earliest held event while more than `bound` are held: memory stays bounded
    /// when a burst inside the lateness would otherwise be held whole (one partition, no
    /// other to pause). An event that then arrives older than it is applied late.
    pub fn pop_over(&mut self, bound: usize) -> Option<Box<(IdentityEvent, T)>> {
        if self.held.len() > bound {
            self.held.pop().map(|Reverse(held)| held.entry)
        } else {
            None
        }
    }

    /// How many events are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, EntityKind, Outcome, System};

    fn ev(id: &str, system: System, time: i64) -> IdentityEvent {
        IdentityEvent {
            event_id: id.into(),
            system,
            source: "test".into(),
            time: Micros(time),
            entity: "e".into(),
            entity_kind: EntityKind::ApiKey,
            action: Action::Used,
            outcome: Outcome::Success,
            parent: None,
            actor: None,
            attributes: Default::default(),
        }
    }

    #[test]
    fn equal_instants_release_in_id_then_system_order() {
        let ids = [
            "e10",
            "e9",
            "e1",
            "abcdefgh2",
            "abcdefgh1",
            "abcdefgh",
            "a",
            "a\0",
            "a\0b",
            "",
            "b",
            "\u{e9}t\u{e9}",
            "zz",
        ];
        let mut events = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            for system in [System::Vault, System::Iam] {
                events.push(ev(id, system, 5 + (i as i64 % 2)));
            }
        }
        let mut buffer = ReorderBuffer::new(Span(0));
        for e in events.iter().rev() {
            buffer.push(e.clone());
        }
        let mut released = Vec::new();
        while let Some(e) = buffer.pop_any() {
            released.push(e);
        }
        let mut expected = events;
        expected.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        assert_eq!(released, expected);
    }

    #[test]
    fn a_burst_over_the_bound_is_released_earliest_first() {
        let mut buffer = ReorderBuffer::new(Span::secs(30));
        for i in 0..1000 {
            buffer.push(ev(&format!("e{i:04}"), System::Iam, 5));
        }
        assert!(buffer.pop_ready().is_none(), "all inside the lateness");
        let over: Vec<_> = std::iter::from_fn(|| buffer.pop_over(100)).collect();
        assert_eq!(over.len(), 900);
        assert_eq!(buffer.len(), 100);
        assert_eq!(over[0].0.event_id, "e0000");
        assert!(over
            .windows(2)
            .all(|w| w[0].0.order_key() < w[1].0.order_key()));
    }
}
