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
/// only its time and a pointer — an event is a few hundred bytes, and a heap of the
/// tens of thousands a live stream holds moves each one some sixteen times — and
/// compares the rest of the order only between events of the same instant.
struct Held<T> {
    time: Micros,
    entry: Box<(IdentityEvent, T)>,
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
        self.pop_before(self.watermark()).map(|(e, ())| e)
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
            entry: Box::new((ev, tag)),
        }));
    }

    /// The next event older than `limit`, with its tag.
    pub fn pop_before(&mut self, limit: Micros) -> Option<(IdentityEvent, T)> {
        match self.held.peek() {
            Some(Reverse(held)) if held.time < limit => {
                self.held.pop().map(|Reverse(held)| *held.entry)
            }
            _ => None,
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
