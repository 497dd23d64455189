//! What the pipeline tells its operator, each told in one place (Vector's
//! `internal_events` habit): a named event writes its log line and moves its metric
//! together, so that neither is raised without the other.

use std::time::Duration;

use rdkafka::error::KafkaError;

use crate::error::DecodeError;
use crate::telemetry::Metrics;

/// Something that happened to the pipeline: a log line and a metric.
pub(super) trait Event {
    fn emit(self, metrics: &Metrics);
}

/// Where in a source a record was read.
pub(super) struct At<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A record went to the dead-letter topic.
pub(super) struct DeadLetter<'a> {
    pub at: At<'a>,
    pub reason: &'a DecodeError,
}

impl Event for DeadLetter<'_> {
    fn emit(self, metrics: &Metrics) {
        let At {
            topic,
            partition,
            offset,
        } = self.at;
        tracing::warn!(topic, partition, offset, reason = %self.reason, "dead letter");
        metrics.dead_letters.with_label_values(&[topic]).inc();
    }
}

/// The broker lost a partition's log, noticed in one of two ways: its offsets went
/// back below the next one expected (`went_back_from`; `at.offset` is the one read), and
/// the partition is read on from the new log; or the last record consumed (`at.offset`)
/// is gone or changed, and the partition is read again from its beginning.
pub(super) struct LogLost<'a> {
    pub at: At<'a>,
    pub went_back_from: Option<i64>,
}

impl Event for LogLost<'_> {
    fn emit(self, metrics: &Metrics) {
        let At {
            topic,
            partition,
            offset,
        } = self.at;
        match self.went_back_from {
            Some(expected) => tracing::warn!(
                topic,
                partition,
                expected,
                got = offset,
                "offsets went backwards: the broker lost its log (a memory broker restarted?); carrying on from the new log"
            ),
            None => tracing::warn!(
                topic,
                partition,
                offset,
                "the broker lost the log consumed so far (the last record read is gone or changed: a memory broker that restarted?); reading the partition again from its beginning"
            ),
        }
        metrics.offset_resets.inc();
    }
}

/// The state directory refused a write: consumption pauses until it has room.
pub(super) struct StoreUnwritable<'a> {
    pub why: &'a str,
}

impl Event for StoreUnwritable<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::error!(
            error = %self.why,
            "the state directory takes no writes (disk full?): consumption paused; the API still answers from the last commit; resuming from it by itself once there is room"
        );
        metrics.store_writable.set(0);
    }
}

/// A group member gives its partitions up and joins again before it reads on.
pub(super) enum Rejoined<'a> {
    /// It did not run for `stopped_for`, longer than the session timeout: the group has
    /// likely given its partitions to others.
    Stopped {
        stopped_for: Duration,
        session_timeout: Duration,
    },
    /// Its consumer has reported nothing but errors for long, the last `error`.
    Failing { error: &'a KafkaError },
}

impl Event for Rejoined<'_> {
    fn emit(self, metrics: &Metrics) {
        match self {
            Rejoined::Stopped {
                stopped_for,
                session_timeout,
            } => tracing::warn!(
                stopped_for = ?stopped_for,
                session_timeout = ?session_timeout,
                "this member did not run for longer than the group's session timeout (stopped, frozen or starved): giving its partitions up and joining the group again before it reads on"
            ),
            Rejoined::Failing { error } => tracing::warn!(
                error = %error,
                "the consumer reports nothing but errors: giving the partitions up and joining the group again"
            ),
        }
        metrics.rebalances.with_label_values(&["rejoined"]).inc();
    }
}
