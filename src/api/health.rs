//! `/healthz`: the process is alive and its pipeline is not stuck. It fails (503, with
//! the reason) once the pipeline has made no progress — consumed no record, applied no
//! event, evaluated no deadline, had no output acknowledged — for `[api] stall_after`
//! while work waits for it: records unread on a source partition, deadlines due, outputs
//! not yet acknowledged, or events held for ordering. A quiet pipeline with nothing to
//! do is healthy however long it stays quiet. The pipeline reports through its metrics
//! (`lockstep_last_progress_timestamp_seconds` and the gauges of waiting work), so the
//! judgement costs the pipeline nothing.

use std::time::{Duration, Instant};

use prometheus::core::Collector;

use crate::telemetry::Metrics;

/// How `/healthz` judges the pipeline.
#[derive(Debug, Clone)]
pub struct Health {
    /// `[api] stall_after` (none: never fails).
    stall_after: Option<Duration>,
    /// When the API started: the age of "no progress yet".
    started: Instant,
}

impl Health {
    /// A judge failing after `stall_after` without progress while work waits.
    pub fn new(stall_after: Option<Duration>) -> Health {
        Health {
            stall_after,
            started: Instant::now(),
        }
    }

    /// Why the pipeline counts as stalled at unix time `now` (seconds), if it does.
    pub fn stalled(&self, metrics: &Metrics, now: f64) -> Option<String> {
        let limit = self.stall_after?;
        let last = metrics.last_progress.get();
        let idle = if last > 0.0 {
            now - last
        } else {
            self.started.elapsed().as_secs_f64()
        };
        if idle < limit.as_secs_f64() {
            return None;
        }
        let waiting = waiting_work(metrics);
        if waiting.is_empty() {
            return None;
        }
        Some(format!(
            "no progress for {idle:.0}s (api.stall_after = {}s) while {} wait",
            limit.as_secs(),
            waiting.join(", ")
        ))
    }
}

/// The work waiting for the pipeline, as its gauges say.
fn waiting_work(metrics: &Metrics) -> Vec<String> {
    let unread: f64 = metrics
        .consumer_lag
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_gauge().get_value())
        .sum();
    let mut waiting = Vec::new();
    let mut add = |n: i64, what: &str| {
        if n > 0 {
            waiting.push(format!("{n} {what}"));
        }
    };
    add(unread as i64, "records unread");
    add(metrics.outbox_pending.get(), "outputs unacknowledged");
    add(metrics.held_events.get(), "events held for ordering");
    if metrics.deadline_backlog.get() > 0 {
        waiting.push("deadlines due".to_owned());
    }
    waiting
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;

    fn judge() -> Health {
        Health::new(Some(Duration::from_secs(60)))
    }

    #[test]
    fn a_quiet_pipeline_with_nothing_waiting_stays_healthy() {
        let m = Metrics::new();
        m.last_progress.set(NOW - 3600.0);
        assert_eq!(judge().stalled(&m, NOW), None);
    }

    #[test]
    fn no_progress_past_stall_after_while_records_wait_is_a_stall() {
        let m = Metrics::new();
        m.last_progress.set(NOW - 61.0);
        m.consumer_lag.with_label_values(&["t", "0"]).set(1200);
        m.consumer_lag.with_label_values(&["t", "1"]).set(34);
        let why = judge().stalled(&m, NOW).expect("stalled");
        assert!(why.contains("no progress for 61s"), "{why}");
        assert!(why.contains("1234 records unread"), "{why}");
        m.last_progress.set(NOW - 59.0);
        assert_eq!(judge().stalled(&m, NOW), None, "within stall_after");
    }

    #[test]
    fn each_kind_of_waiting_work_is_named() {
        for (set, named) in [
            (
                (|m: &Metrics| m.outbox_pending.set(3)) as fn(&Metrics),
                "3 outputs unacknowledged",
            ),
            (|m: &Metrics| m.held_events.set(7), "7 events held"),
            (|m: &Metrics| m.deadline_backlog.set(1), "deadlines due"),
        ] {
            let m = Metrics::new();
            m.last_progress.set(NOW - 600.0);
            set(&m);
            let why = judge().stalled(&m, NOW).expect("stalled");
            assert!(why.contains(named), "{why}");
        }
    }

    #[test]
    fn stall_after_off_never_fails() {
        let m = Metrics::new();
        m.deadline_backlog.set(1);
        assert_eq!(Health::new(None).stalled(&m, NOW), None);
    }
}
