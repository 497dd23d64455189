//! The reorder buffer: holds events until no event within the allowed lateness can
//! still sort before them, then releases them in (`time`, `event_id`, `system`) order.
//! An event that arrives within `allowed_lateness` of the newest event seen so far is
//! therefore processed exactly where it belongs; an older one is released at once
//! (applied late, never dropped).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::event::IdentityEvent;
use crate::time::{Micros, Span};

struct Held(IdentityEvent);

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.order_key().cmp(&other.0.order_key())
    }
}

/// A min-heap of events keyed by processing order, bounded in time by the lateness.
pub struct ReorderBuffer {
    lateness: Span,
    newest: Micros,
    held: BinaryHeap<Reverse<Held>>,
}

impl ReorderBuffer {
    /// A buffer that waits `lateness` for stragglers.
    pub fn new(lateness: Span) -> Self {
        ReorderBuffer {
            lateness,
            newest: Micros::MIN,
            held: BinaryHeap::new(),
        }
    }

    /// The watermark: events at or after it may still arrive and be put in order.
    pub fn watermark(&self) -> Micros {
        self.newest.minus(self.lateness)
    }

    /// Takes an event in.
    pub fn push(&mut self, ev: IdentityEvent) {
        self.newest = self.newest.max(ev.time);
        self.held.push(Reverse(Held(ev)));
    }

    /// The next event that can no longer be overtaken, if any.
    pub fn pop_ready(&mut self) -> Option<IdentityEvent> {
        let watermark = self.watermark();
        match self.held.peek() {
            Some(Reverse(Held(ev))) if ev.time < watermark => {
                self.held.pop().map(|Reverse(Held(e))| e)
            }
            _ => None,
        }
    }

    /// The next held event regardless of the watermark (end of input).
    pub fn pop_any(&mut self) -> Option<IdentityEvent> {
        self.held.pop().map(|Reverse(Held(e))| e)
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
