//! A sink's delivery thread: it takes the alerts the pipeline hands it (committed in the
//! outbox), sends them in batches, reports each one's fate back, and retries what the
//! receiver could not take — oldest first, after [`FIRST_BACKOFF`] doubling to
//! [`MAX_BACKOFF`], or after the receiver's `Retry-After`. It never blocks the pipeline:
//! past `max_backlog` alerts waiting, the oldest are dropped (counted, logged).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use prometheus::{IntCounter, IntGauge};

use super::http::{self, Verdict};
use crate::alert::Alert;
use crate::telemetry::Metrics;

/// The first wait before trying again.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between tries (unless the receiver's `Retry-After` asks for more).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// An alert to deliver, under its outbox sequence.
pub struct Notice {
    /// Its outbox sequence.
    pub seq: u64,
    /// The alert.
    pub alert: Alert,
}

/// What became of a notice.
pub enum Outcome {
    /// Delivered, or dropped past the backlog bound: it leaves the outbox.
    Done(u64),
    /// Refused for good: it leaves the outbox for the dead-letter topic.
    Refused {
        /// Its outbox sequence.
        seq: u64,
        /// The alert.
        alert: Box<Alert>,
        /// The sink.
        sink: String,
        /// The receiver's answer.
        reason: String,
    },
}

/// A sink's counters.
struct Meters {
    delivered: IntCounter,
    retried: IntCounter,
    failed: IntCounter,
    dropped: IntCounter,
    backlog: IntGauge,
    /// What this thread added to the backlog gauge (several pipelines' threads share it).
    reported: i64,
}

impl Meters {
    fn new(metrics: &Metrics, sink: &str) -> Meters {
        Meters {
            delivered: metrics.notify_delivered.with_label_values(&[sink]),
            retried: metrics.notify_retried.with_label_values(&[sink]),
            failed: metrics.notify_failed.with_label_values(&[sink]),
            dropped: metrics.notify_dropped.with_label_values(&[sink]),
            backlog: metrics.notify_backlog.with_label_values(&[sink]),
            reported: 0,
        }
    }

    fn backlog(&mut self, now: usize) {
        let now = now as i64;
        self.backlog.add(now - self.reported);
        self.reported = now;
    }
}

impl Drop for Meters {
    fn drop(&mut self) {
        self.backlog(0);
    }
}

/// The wait after `failures` failed tries in a row.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// Starts the delivery thread of sink `name`; it ends when `notices` is closed (what it
/// holds then stays in the outbox for the next run).
pub fn spawn(
    name: String,
    receiver: http::Receiver,
    max_backlog: usize,
    notices: Receiver<Notice>,
    outcomes: Sender<Outcome>,
    metrics: &Arc<Metrics>,
) {
    let meters = Meters::new(metrics, &name);
    let thread = Delivery {
        name: name.clone(),
        receiver,
        max_backlog,
        queue: VecDeque::new(),
        outcomes,
        meters,
        failures: 0,
        not_before: None,
    };
    let spawned = std::thread::Builder::new()
        .name(format!("notify-{name}"))
        .spawn(move || thread.run(&notices));
    if let Err(e) = spawned {
        tracing::error!(sink = %name, error = %e, "cannot start the delivery thread: its alerts stay in the outbox");
    }
}

struct Delivery {
    name: String,
    receiver: http::Receiver,
    max_backlog: usize,
    queue: VecDeque<Notice>,
    outcomes: Sender<Outcome>,
    meters: Meters,
    /// Failed tries in a row.
    failures: u32,
    /// No try before this.
    not_before: Option<Instant>,
}

impl Delivery {
    fn run(mut self, notices: &Receiver<Notice>) {
        loop {
            let wait = match (self.queue.is_empty(), self.not_before) {
                (true, _) => Duration::from_secs(3600),
                (false, Some(t)) => t.saturating_duration_since(Instant::now()),
                (false, None) => Duration::ZERO,
            };
            match notices.recv_timeout(wait) {
                Ok(notice) => {
                    self.queue.push_back(notice);
                    self.queue.extend(notices.try_iter());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.bound();
            if self.not_before.is_some_and(|t| t > Instant::now()) || self.queue.is_empty() {
                continue;
            }
            self.not_before = None;
            self.send_batch();
            self.meters.backlog(self.queue.len());
        }
    }

    /// Drops the oldest past `max_backlog`.
    fn bound(&mut self) {
        let over = self.queue.len().saturating_sub(self.max_backlog);
        if over > 0 {
            tracing::warn!(sink = %self.name, dropped = over, max_backlog = self.max_backlog, "too many alerts waiting for the sink: the oldest are dropped");
            for notice in self.queue.drain(..over) {
                self.meters.dropped.inc();
                let _ = self.outcomes.send(Outcome::Done(notice.seq));
            }
        }
        self.meters.backlog(self.queue.len());
    }

    fn send_batch(&mut self) {
        let n = self.receiver.batch().min(self.queue.len());
        let batch: Vec<Notice> = self.queue.drain(..n).collect();
        let alerts: Vec<Alert> = batch.iter().map(|n| n.alert.clone()).collect();
        let verdicts = self.receiver.deliver(&alerts);
        let mut retry = Vec::new();
        let mut after = None;
        for (notice, verdict) in batch.into_iter().zip(verdicts) {
            match verdict {
                Verdict::Taken => {
                    self.meters.delivered.inc();
                    let _ = self.outcomes.send(Outcome::Done(notice.seq));
                }
                Verdict::Refused(reason) => {
                    tracing::error!(sink = %self.name, alert_id = %notice.alert.alert_id, reason = %reason, "the receiver refused the alert: sent to the dead-letter topic");
                    self.meters.failed.inc();
                    let _ = self.outcomes.send(Outcome::Refused {
                        seq: notice.seq,
                        alert: Box::new(notice.alert),
                        sink: self.name.clone(),
                        reason,
                    });
                }
                Verdict::Retry(wait) => {
                    after = after.max(wait);
                    retry.push(notice);
                }
            }
        }
        if retry.is_empty() {
            self.failures = 0;
            return;
        }
        self.meters.retried.inc();
        self.failures += 1;
        let wait = after.unwrap_or_default().max(backoff(self.failures));
        if self.failures == 1 || self.failures.is_multiple_of(10) {
            tracing::warn!(sink = %self.name, alerts = retry.len(), failures = self.failures, retry_in = ?wait, "the receiver did not take the alerts: trying again");
        }
        self.not_before = Some(Instant::now() + wait);
        for notice in retry.into_iter().rev() {
            self.queue.push_front(notice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(4), FIRST_BACKOFF * 8);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }
}
