//! The one loop of `lockstep run`, whatever the mode. An instance that reads every
//! partition itself ([`super::Instance`], also the group's router) and a member of a
//! group with the shards it owns ([`super::group::Member`]) are each a [`Mode`]; this
//! loop runs their steps until told to stop, and in each step polls for them — up to
//! [`MAX_BATCH`] records or [`STEP_TIME`], and at least once — hands each record over,
//! settles after (release, correlate, commit, produce), waits while their outputs back
//! up, and judges their consumer: one that reports nothing but errors for
//! [`REBUILD_AFTER`], or that lost the broker, is replaced, as the mode says how.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;

use super::{Control, LiveError, Progress, MAX_BATCH, POLL_WAIT};
use crate::correlate::Stats;
use crate::time::{Micros, Span};

/// How long a step polls at most.
const STEP_TIME: Duration = Duration::from_millis(50);
/// The first poll's wait while outputs wait for their batch to be written.
const SEND_WAIT: Duration = Duration::from_millis(5);
/// How long the consumer may report nothing but errors before it is replaced (stale
/// metadata, say); a lost broker connection replaces it at once.
const REBUILD_AFTER: Duration = Duration::from_secs(5);

/// What a step may do, as its mode says before it polls.
pub(super) struct Gate {
    /// Whether it polls (not while outputs back up, or without a consumer): when not,
    /// it settles and then waits [`POLL_WAIT`].
    pub(super) poll: bool,
    /// Whether outputs or deadlines wait for the step's end: its first poll waits less.
    pub(super) busy: bool,
}

/// Why a consumer is of no more use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Unusable {
    /// The connection to the broker is lost.
    BrokerGone,
    /// It has reported nothing but errors for [`REBUILD_AFTER`].
    Failing,
}

/// A way of running: what a step does around the polls of its consumer.
pub(super) trait Mode {
    /// The consumer's context.
    type Context: ConsumerContext;

    /// Before a step polls, with the consumer to make or replace (reconnecting,
    /// partitions added): what the step may do, or None to end it at once (the mode
    /// gave up what it owned).
    fn open_step(
        &mut self,
        consumer: &mut Option<BaseConsumer<Self::Context>>,
        started: Instant,
    ) -> Result<Option<Gate>, LiveError>;

    /// After each poll: whether the step ends there (the mode stopped inside the poll
    /// for longer than it may, and gave up what it owned). Never, unless it says so.
    fn polled(
        &mut self,
        _consumer: &BaseConsumer<Self::Context>,
        _started: Instant,
    ) -> Result<bool, LiveError> {
        Ok(false)
    }

    /// Takes a record in; `started` is when the step began, `future_limit` the time past
    /// which an event is a dead letter.
    fn take(
        &mut self,
        consumer: &BaseConsumer<Self::Context>,
        message: &BorrowedMessage<'_>,
        started: Instant,
        future_limit: Micros,
    ) -> Result<(), LiveError>;

    /// The consumer reported an error: the feeds are not quiet but unknown.
    fn unreadable(&mut self, consumer: &BaseConsumer<Self::Context>, now: Instant);

    /// The consumer is of no more use, for `why`: the mode replaces it (or lets it
    /// recover by itself).
    fn replace(
        &mut self,
        consumer: &mut Option<BaseConsumer<Self::Context>>,
        why: Unusable,
        error: &KafkaError,
    ) -> Result<(), LiveError>;

    /// After polling: release, correlate, commit, produce, pace.
    fn settle(&mut self, consumer: Option<&BaseConsumer<Self::Context>>) -> Result<(), LiveError>;

    /// What it has applied so far.
    fn stats(&self, consumer: Option<&BaseConsumer<Self::Context>>) -> Stats;

    /// `[correlator] max_future_skew`.
    fn skew(&self) -> Span;

    /// A step failed with `error`: what the run returns (after waiting, perhaps).
    fn failed(
        self,
        consumer: Option<BaseConsumer<Self::Context>>,
        error: LiveError,
        control: &Control,
    ) -> Result<(), LiveError>;

    /// Asked to stop: commit, flush, leave.
    fn shut_down(self, consumer: Option<BaseConsumer<Self::Context>>) -> Result<(), LiveError>;
}

/// A mode, its consumer (None while there is none) and the consumer's health.
pub(super) struct Driver<M: Mode> {
    consumer: Option<BaseConsumer<M::Context>>,
    mode: M,
    health: Health,
}

impl<M: Mode> Driver<M> {
    pub(super) fn new(consumer: Option<BaseConsumer<M::Context>>, mode: M) -> Driver<M> {
        Driver {
            consumer,
            mode,
            health: Health::default(),
        }
    }

    /// Runs steps until `control.shutdown` is set, then shuts the mode down.
    pub(super) fn run(mut self, control: &Control) -> Result<(), LiveError> {
        let mut progress = Progress::new(self.mode.stats(self.consumer.as_ref()));
        while !control.shutdown.load(Ordering::SeqCst) {
            if let Err(e) = self.step() {
                return self.mode.failed(self.consumer, e, control);
            }
            let stats = self.mode.stats(self.consumer.as_ref());
            progress.log(stats, self.consumer.is_some());
        }
        self.mode.shut_down(self.consumer)
    }

    /// One step: poll, hand each record over, settle.
    fn step(&mut self) -> Result<(), LiveError> {
        let started = Instant::now();
        // Events stamped after this are dead letters; read once per step (≤ 50 ms), as
        // the step's other clocks are.
        let future_limit = Micros::now().plus(self.mode.skew());
        let Some(gate) = self.mode.open_step(&mut self.consumer, started)? else {
            return Ok(());
        };
        let mut batch = PollBatch::new(started);
        while gate.poll && batch.more() {
            let Some(consumer) = self.consumer.as_ref() else {
                break;
            };
            // A group's rebalances run in here.
            let polled = consumer.poll(batch.wait(gate.busy));
            if self.mode.polled(consumer, started)? {
                return Ok(());
            }
            match polled {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    self.mode.unreadable(consumer, Instant::now());
                    if let Some(why) = self.health.failed(&e) {
                        self.health = Health::default();
                        self.mode.replace(&mut self.consumer, why, &e)?;
                    }
                    break;
                }
                Some(Ok(message)) => {
                    self.health = Health::default();
                    batch.count();
                    self.mode.take(consumer, &message, started, future_limit)?;
                }
            }
        }
        self.mode.settle(self.consumer.as_ref())?;
        if !gate.poll {
            std::thread::sleep(POLL_WAIT);
        }
        Ok(())
    }
}

/// Since when every poll has returned an error, if it has.
#[derive(Default)]
struct Health {
    failing_since: Option<Instant>,
}

impl Health {
    /// Counts a poll that returned `error`: whether the consumer is of no more use.
    fn failed(&mut self, error: &KafkaError) -> Option<Unusable> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if broker_gone(error) {
            Some(Unusable::BrokerGone)
        } else if since.elapsed() > REBUILD_AFTER {
            Some(Unusable::Failing)
        } else {
            None
        }
    }
}

/// Whether a consumer error means the connection to the broker is lost.
fn broker_gone(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
    )
}

/// The records a step polls: up to [`MAX_BATCH`], for up to [`STEP_TIME`] (the clock
/// read every 64 records: a record takes a few microseconds), and always at least one
/// poll.
struct PollBatch {
    started: Instant,
    polled: usize,
}

impl PollBatch {
    fn new(started: Instant) -> PollBatch {
        PollBatch { started, polled: 0 }
    }

    /// Whether to poll again.
    fn more(&self) -> bool {
        self.polled < MAX_BATCH
            && !(self.polled > 0
                && self.polled.is_multiple_of(64)
                && self.started.elapsed() >= STEP_TIME)
    }

    /// How long the next poll may wait for a record: the first of a step waits (less when
    /// outputs or deadlines wait for the step's end: `busy`), the others take what is
    /// there.
    fn wait(&self, busy: bool) -> Duration {
        match (self.polled, busy) {
            (0, false) => POLL_WAIT,
            (0, true) => SEND_WAIT,
            _ => Duration::ZERO,
        }
    }

    /// Counts a record polled.
    fn count(&mut self) {
        self.polled += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_polls_at_least_once_then_until_its_time_or_batch_is_used() {
        let late = PollBatch::new(Instant::now() - STEP_TIME * 2);
        assert!(late.more(), "a step that started late still polls once");
        assert_eq!((late.wait(false), late.wait(true)), (POLL_WAIT, SEND_WAIT));
        let mut batch = late;
        for _ in 0..63 {
            batch.count();
            assert!(batch.more(), "the clock is read every 64 records");
            assert_eq!(batch.wait(true), Duration::ZERO);
        }
        batch.count();
        assert!(!batch.more(), "64 records past the step's time");
        let mut fresh = PollBatch::new(Instant::now());
        for _ in 0..MAX_BATCH - 1 {
            fresh.count();
        }
        assert!(fresh.more());
        fresh.count();
        assert!(!fresh.more(), "a full batch");
    }

    #[test]
    fn a_lost_broker_replaces_the_consumer_at_once_other_errors_only_when_they_last() {
        let gone = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        let other = KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert_eq!(Health::default().failed(&gone), Some(Unusable::BrokerGone));
        let mut health = Health::default();
        assert_eq!(health.failed(&other), None, "one error is not a verdict");
        health.failing_since = Some(Instant::now() - REBUILD_AFTER * 2);
        assert_eq!(health.failed(&other), Some(Unusable::Failing));
    }
}
