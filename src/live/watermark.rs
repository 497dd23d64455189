//! Stream time (SPEC §5): each partition's watermark is its largest event time minus
//! `allowed_lateness`; the stream watermark is the minimum over partitions that are not
//! idle; when every partition is idle it follows the wall clock (now − lateness), so
//! deadlines fire even when every feed is quiet. It never goes backwards.
//!
//! Quiet counts only while somebody listens: a partition is idle only when its records
//! stop *and* the pipeline knows it has read all the broker holds of it (the pipeline
//! [`Watermarks::touch`]es a partition it does not know that of), and time this process
//! did not run — stopped, frozen, starved for longer than half of `idle_timeout` between
//! two [`Watermarks::advance`]s — is not quiet on any partition.

use std::time::Instant;

use crate::time::{Micros, Span};

struct Clock {
    newest: Micros,
    last_record: Instant,
}

/// Watermarks of a set of partitions, indexed 0..n in the order they were taken on.
pub struct Watermarks {
    lateness: Span,
    idle_timeout: std::time::Duration,
    clocks: Vec<Clock>,
    current: Micros,
    /// When the watermark was last advanced.
    advanced: Option<Instant>,
}

impl Watermarks {
    /// No partitions yet; [`Watermarks::add`] takes them on.
    pub fn new(lateness: Span, idle_timeout: Span) -> Self {
        Watermarks {
            lateness,
            idle_timeout: idle_timeout.to_std(),
            clocks: Vec::new(),
            current: Micros::MIN,
            advanced: None,
        }
    }

    /// Takes one more partition (the next index), not seen yet: it holds the watermark
    /// until it has been without records for `idle_timeout` since `now`, so that a
    /// partition whose first records are still on their way is not overtaken.
    pub fn add(&mut self, now: Instant) {
        self.clocks.push(Clock {
            newest: Micros::MIN,
            last_record: now,
        });
    }

    /// A record of partition `p` with event time `t` arrived at `now`.
    pub fn observe(&mut self, p: usize, t: Micros, now: Instant) {
        if let Some(c) = self.clocks.get_mut(p) {
            c.newest = c.newest.max(t);
            c.last_record = now;
        }
    }

    /// Counts every partition as active at `now`: while the broker cannot be reached a
    /// feed is not quiet but unknown, and once it is back each partition gets
    /// `idle_timeout` to deliver what it holds before the wall clock moves the watermark.
    pub fn hold(&mut self, now: Instant) {
        for c in &mut self.clocks {
            c.last_record = now;
        }
    }

    /// Forgets the newest event time of every partition, keeping the stream watermark:
    /// the events held for ordering were dropped (the partitions handed over) and their
    /// records will be read again. A partition that kept the time of a dropped event
    /// would stop holding the watermark at its records still to be read again, and
    /// those would come after it, late, with the deadlines before them already fired.
    pub fn rewind(&mut self) {
        for c in &mut self.clocks {
            c.newest = Micros::MIN;
        }
    }

    /// The active partitions whose newest event is later than the oldest newest event of
    /// the active partitions: pausing them lets the one holding the watermark catch up.
    pub fn ahead(&self, now: Instant) -> Vec<usize> {
        let active = |c: &&Clock| now.duration_since(c.last_record) < self.idle_timeout;
        let Some(slowest) = self.clocks.iter().filter(active).map(|c| c.newest).min() else {
            return Vec::new();
        };
        (0..self.clocks.len())
            .filter(|&p| {
                let c = &self.clocks[p];
                active(&c) && c.newest > slowest
            })
            .collect()
    }

    /// Keeps partition `p` active at `now` (paused by the pipeline, it is not quiet).
    pub fn touch(&mut self, p: usize, now: Instant) {
        if let Some(c) = self.clocks.get_mut(p) {
            c.last_record = now;
        }
    }

    /// The stream watermark at `now` (wall clock `wall`). When the last advance was more
    /// than half of `idle_timeout` ago this process was not running (stopped, frozen or
    /// starved): nothing was heard in that time, so every partition counts as active from
    /// `now` (and returns its `idle_timeout` to say what it holds).
    pub fn advance(&mut self, now: Instant, wall: Micros) -> Micros {
        if self
            .advanced
            .is_some_and(|t| now.saturating_duration_since(t) > self.idle_timeout / 2)
        {
            self.hold(now);
        }
        self.advanced = Some(now);
        let active = self
            .clocks
            .iter()
            .filter(|c| now.duration_since(c.last_record) < self.idle_timeout)
            .map(|c| c.newest.minus(self.lateness))
            .min();
        let candidate = active.unwrap_or_else(|| wall.minus(self.lateness));
        self.current = self.current.max(candidate);
        self.current
    }

    /// The last computed stream watermark.
    pub fn current(&self) -> Micros {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn minimum_over_active_partitions_then_wall_clock() {
        let start = Instant::now();
        let s = |secs: u64| start + Duration::from_secs(secs);
        let wall = Micros(1_000_000_000);
        let mut w = Watermarks::new(Span::secs(30), Span::secs(10));
        (0..3).for_each(|_| w.add(start));
        w.observe(0, Micros(100_000_000), start);
        w.observe(1, Micros(50_000_000), start);
        // Partition 2 has had no record yet: it holds the watermark until it is idle.
        assert_eq!(w.advance(s(0), wall), Micros::MIN);
        assert_eq!(w.advance(s(5), wall), Micros::MIN);
        w.observe(0, Micros(100_000_000), s(10));
        w.observe(1, Micros(50_000_000), s(10));
        assert_eq!(w.advance(s(10), wall), Micros(20_000_000));
        w.observe(0, Micros(110_000_000), s(15));
        assert_eq!(w.advance(s(15), wall), Micros(20_000_000));
        // Partition 1 goes idle: partition 0 alone decides.
        assert_eq!(w.advance(s(20), wall), Micros(80_000_000));
        assert_eq!(w.advance(s(24), wall), Micros(80_000_000));
        // All idle: the wall clock minus the lateness.
        assert_eq!(w.advance(s(25), wall), Micros(970_000_000));
        // An unreachable broker is not a quiet feed: held, the partitions are active.
        w.hold(s(25));
        assert_eq!(w.advance(s(29), Micros(2_000_000_000)), Micros(970_000_000));
        // Held active, partition 2 has no record yet: the others are ahead of it; once it
        // is idle, partition 0 (110) is ahead of partition 1 (60).
        assert_eq!(w.ahead(s(29)), vec![0, 1]);
        w.observe(0, Micros(110_000_000), s(33));
        w.observe(1, Micros(60_000_000), s(33));
        assert_eq!(w.ahead(s(35)), vec![0]);
        // Never backwards, even when a partition wakes up with old events.
        w.observe(1, Micros(60_000_000), s(33));
        assert_eq!(w.advance(s(33), wall), Micros(970_000_000));
    }

    #[test]
    fn records_to_be_read_again_hold_the_watermark_once_rewound() {
        let start = Instant::now();
        let s = |secs: u64| start + Duration::from_secs(secs);
        let wall = Micros(1_000_000_000);
        let read = |w: &mut Watermarks| {
            (0..2).for_each(|_| w.add(start));
            // Partition 0 read up to 100, partition 1 up to 50: events after 20 held.
            w.observe(0, Micros(100_000_000), start);
            w.observe(1, Micros(50_000_000), start);
            assert_eq!(w.advance(s(1), wall), Micros(20_000_000));
        };
        let (mut kept, mut rewound) = (
            Watermarks::new(Span::secs(30), Span::secs(10)),
            Watermarks::new(Span::secs(30), Span::secs(10)),
        );
        read(&mut kept);
        read(&mut rewound);
        // The held events are dropped and read again from 20; partition 1 is read
        // faster this time, up to 80, while partition 0 is back at 30.
        rewound.rewind();
        for w in [&mut kept, &mut rewound] {
            w.hold(s(2));
            w.observe(1, Micros(80_000_000), s(3));
            w.observe(0, Micros(30_000_000), s(3));
        }
        assert_eq!(
            rewound.advance(s(3), wall),
            Micros(20_000_000),
            "held at 30 − 30"
        );
        // Without the rewind partition 0 still counts its dropped 100: the watermark
        // goes to 50, past its records 30..100 still to be read again.
        assert_eq!(kept.advance(s(3), wall), Micros(50_000_000));
    }

    #[test]
    fn time_the_process_did_not_run_is_not_quiet() {
        let start = Instant::now();
        let s = |secs: u64| start + Duration::from_secs(secs);
        let wall = Micros(1_000_000_000);
        let mut w = Watermarks::new(Span::secs(30), Span::secs(10));
        w.add(start);
        w.observe(0, Micros(100_000_000), start);
        assert_eq!(w.advance(s(4), wall), Micros(70_000_000));
        // Frozen from 4 s to 60 s: on waking, nothing was heard, not silence.
        assert_eq!(w.advance(s(60), wall), Micros(70_000_000));
        assert_eq!(w.advance(s(65), wall), Micros(70_000_000));
        // Running and hearing nothing for `idle_timeout`: idle.
        assert_eq!(w.advance(s(70), wall), Micros(970_000_000));
    }
}
