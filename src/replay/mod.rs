//! Replay: file inputs through the reorder buffer into the correlator, deadlines up to
//! `as_of`, alerts sorted in the output order of SPEC §4. Decoding runs on its own
//! thread; the correlator and RocksDB on the caller's. The store is committed every
//! [`crate::store::MemoryBudget::commit_every`] events (50,000 at the default budget) and at the end, so a later replay with the same state
//! directory continues where this one stopped. The alerts of a replay are read back from
//! the store once it has committed: every alert the state holds, with those raised by an
//! earlier, interrupted run over the same state — so a resumed replay outputs what one
//! clean pass would, even though the events it had applied are now redeliveries.

mod output;
mod shards;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;

use crossbeam_channel::bounded;
use indicatif::{ProgressBar, ProgressStyle};

use crate::adapter::Normalizer;
use crate::correlate::reorder::ReorderBuffer;
use crate::correlate::{Correlator, Stats};
use crate::error::StoreError;
use crate::event::IdentityEvent;
use crate::source::file::{self, DeadLetter, Record};
use crate::source::range::{self, KafkaRange};
use crate::store::Store;
use crate::time::{Micros, Span};
pub use output::AlertLog;
use shards::{Shards, Trees};

/// How often a replay without a terminal logs its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A progress line for logs (no terminal to draw a bar on): events, rate, and the time
/// left estimated from the bytes read.
fn log_progress(bar: &ProgressBar, events: u64, secs: f64) {
    let (done, total) = (bar.position(), bar.length().unwrap_or(0));
    let eta = (done > 0 && total > done).then(|| secs * (total - done) as f64 / done as f64);
    tracing::info!(
        events,
        events_per_s = (events as f64 / secs.max(1e-9)).round(),
        read_pct = (done * 100).checked_div(total).unwrap_or(0),
        eta_s = eta.map(f64::round),
        "replay progress"
    );
}

/// A replay suspects only events more than this (or `max_future_skew`, if longer) after
/// the wall clock: history replayed today is not in the future, but a test scenario may
/// be dated a little ahead.
const FUTURE_FLOOR: Span = Span::days(366);

/// The events stamped past the horizon, settled at the end of the input: those within
/// `skew` of the newest event before them, or of another one past the horizon (a feed
/// that really is ahead), are kept; an isolated one — one record stamped 9999 — is a dead
/// letter, so it cannot drag the replay's end and every deadline with it. Kept events
/// are all later than every other event, so they are applied last, still in order.
fn settle_ahead(
    mut ahead: Vec<IdentityEvent>,
    newest: Micros,
    skew: Span,
) -> (Vec<IdentityEvent>, Vec<IdentityEvent>) {
    ahead.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    let (mut kept, mut isolated) = (Vec::new(), Vec::new());
    let mut previous = newest;
    let mut rest = ahead.into_iter().peekable();
    while let Some(ev) = rest.next() {
        let mut cluster = vec![ev];
        while let Some(next) =
            rest.next_if(|n| n.time.0.saturating_sub(cluster[cluster.len() - 1].time.0) <= skew.0)
        {
            cluster.push(next);
        }
        let mut ids: Vec<_> = cluster.iter().map(|e| (e.system, &e.event_id)).collect();
        ids.sort();
        ids.dedup();
        let near = cluster[0].time.0.saturating_sub(previous.0) <= skew.0;
        if ids.len() >= 2 || near {
            previous = cluster[cluster.len() - 1].time;
            kept.extend(cluster);
        } else {
            isolated.extend(cluster);
        }
    }
    (kept, isolated)
}

/// How many dead letters a replay keeps for its summary.
pub const DEAD_LETTER_SAMPLE: usize = 10;

/// Dead letters: written out as they come, counted, the first few kept.
struct DeadLetters {
    out: Option<std::io::BufWriter<std::fs::File>>,
    sample: Vec<DeadLetter>,
    count: u64,
}

impl DeadLetters {
    fn new(path: Option<&std::path::Path>) -> std::io::Result<DeadLetters> {
        let out = match path {
            Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
            None => None,
        };
        Ok(DeadLetters {
            out,
            sample: Vec::new(),
            count: 0,
        })
    }

    fn push(&mut self, dead: DeadLetter) -> std::io::Result<()> {
        use std::io::Write;
        self.count += 1;
        if let Some(out) = &mut self.out {
            let line = serde_json::json!({
                "input": dead.input.display().to_string(),
                "line": dead.line,
                "reason": dead.reason,
                "record": dead.raw,
            });
            writeln!(out, "{line}")?;
        }
        if self.sample.len() < DEAD_LETTER_SAMPLE {
            self.sample.push(dead);
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<(Vec<DeadLetter>, u64)> {
        use std::io::Write;
        if let Some(out) = &mut self.out {
            out.flush()?;
        }
        Ok((self.sample, self.count))
    }
}

const CHUNK: usize = 2048;
/// Chunks the reader may decode ahead of the correlator: enough to keep it busy, few
/// enough that the input waiting in memory stays small (it is outside the state's memory
/// budget).
const READ_AHEAD: usize = 4;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayInput {
    /// Input files, read in order, each with how it is read (canonical, or a native
    /// format through its adapter).
    pub inputs: Vec<(PathBuf, Normalizer)>,
    /// Or instead: a time range of the configured topics.
    pub kafka: Option<KafkaRange>,
    /// Evaluate deadlines up to here (default: the latest event time read).
    pub as_of: Option<Micros>,
    /// How far out of order events may arrive.
    pub allowed_lateness: Span,
    /// Clock skew tolerated ahead of the wall clock (see `settle_ahead`).
    pub max_future_skew: Span,
    /// Past twice this many events held for ordering, the earliest are released early.
    pub max_held_events: usize,
    /// Where dead letters are written as JSON lines as they come (memory stays flat
    /// however much of the input is bad).
    pub dead_letters: Option<PathBuf>,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Correlators applying the events, each owning whole lineage trees (1: the one
    /// given; more: the others in temporary stores of its memory budget; files only).
    pub shards: usize,
}

/// What a replay produced.
pub struct ReplayOutcome {
    /// Every alert of the state (this run's and an earlier one's over the same state
    /// directory), read in output order from the shards' stores.
    pub alerts: AlertLog,
    /// The first [`DEAD_LETTER_SAMPLE`] records that did not decode (all of them went to
    /// the dead-letter output as they came).
    pub dead_letters: Vec<DeadLetter>,
    /// How many records did not decode.
    pub dead_letter_count: u64,
    /// Native records of types their format does not cover, counted by type.
    pub skipped: BTreeMap<String, u64>,
    /// Events decoded.
    pub events_read: u64,
    /// What the correlator did.
    pub stats: Stats,
    /// The instant deadlines were evaluated up to, if any event was read.
    pub as_of: Option<Micros>,
    /// The earliest and latest event times read, if any event was read.
    pub period: Option<(Micros, Micros)>,
    /// Deadlines after `as_of`: pending, not breached.
    pub pending: u64,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The Kafka range could not be read.
    #[error("cannot read from Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// An input could not be read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Shards asked of an input that cannot be read twice.
    #[error("--shards needs files to read twice (not standard input or a Kafka range)")]
    Unshardable,
}

/// Replays `input` through `correlator`.
pub fn replay(
    correlator: &mut Correlator,
    input: &ReplayInput,
) -> Result<ReplayOutcome, ReplayError> {
    let trees = (input.shards > 1).then(|| trees(input)).transpose()?;
    let mut others = Vec::new();
    for _ in 1..input.shards {
        let store = Store::temporary_with(correlator.store_mut().budget())?;
        others.push(Correlator::new(correlator.rules().clone(), store));
    }
    let total: u64 = input
        .inputs
        .iter()
        .filter_map(|(p, _)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = if input.progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} replay [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::hidden())
    };

    let (tx, rx) = bounded::<Vec<Record>>(READ_AHEAD);
    let inputs = input.inputs.clone();
    let kafka = input.kafka.clone();
    let reader_bar = bar.clone();
    let reader = thread::spawn(move || -> Result<(), ReplayError> {
        if let Some(kafka) = kafka {
            for chunk in range::read(&kafka)?.chunks(CHUNK) {
                let _ = tx.send(chunk.to_vec());
            }
            return Ok(());
        }
        let mut done = 0u64;
        for (path, normalizer) in inputs {
            let mut chunk = Vec::with_capacity(CHUNK);
            file::read(
                &path,
                &normalizer,
                |rec| {
                    chunk.push(rec);
                    if chunk.len() == CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        let _ = tx.send(full);
                    }
                },
                |bytes| reader_bar.set_position(done + bytes),
            )
            .map_err(|source| ReplayError::Input {
                path: path.clone(),
                source,
            })?;
            if !chunk.is_empty() {
                let _ = tx.send(chunk);
            }
            done += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        }
        Ok(())
    });

    std::thread::scope(|scope| {
        let shards = Shards::start(
            scope,
            std::iter::once(correlator).chain(others.iter_mut()),
            trees,
        );
        correlate(input, rx, shards, &bar)
    })
    .and_then(|mut outcome| {
        reader.join().unwrap_or_else(|_| {
            Err(StoreError::Incompatible("the input reader thread panicked".into()).into())
        })?;
        outcome.alerts.keep_open(others);
        Ok(outcome)
    })
}

/// Pass one of a sharded replay: the lineage trees of every input.
fn trees(input: &ReplayInput) -> Result<Trees, ReplayError> {
    if input.kafka.is_some() || input.inputs.iter().any(|(p, _)| p == Path::new("-")) {
        return Err(ReplayError::Unshardable);
    }
    tracing::info!(
        shards = input.shards,
        "replay: reading the lineage trees first"
    );
    let mut trees = Trees::default();
    for (path, normalizer) in &input.inputs {
        file::read(
            path,
            normalizer,
            |record| {
                if let Record::Event(ev) = record {
                    trees.add(&ev);
                }
            },
            |_| {},
        )
        .map_err(|source| ReplayError::Input {
            path: path.clone(),
            source,
        })?;
    }
    Ok(trees)
}

/// Pass two: the records of `rx` through the reorder buffer into `shards`, dead letters
/// out, deadlines evaluated up to the end.
fn correlate(
    input: &ReplayInput,
    rx: crossbeam_channel::Receiver<Vec<Record>>,
    mut shards: Shards<'_>,
    bar: &ProgressBar,
) -> Result<ReplayOutcome, ReplayError> {
    let mut buffer = ReorderBuffer::new(input.allowed_lateness);
    let dead_path = input.dead_letters.as_deref();
    let output_error = |source| ReplayError::Input {
        path: dead_path.map_or_else(PathBuf::new, PathBuf::from),
        source,
    };
    let mut dead_letters = DeadLetters::new(dead_path).map_err(output_error)?;
    let mut skipped = BTreeMap::new();
    let mut events_read = 0u64;
    let mut latest = Micros::MIN;
    let mut earliest = Micros::MAX;
    let mut ready: Vec<IdentityEvent> = Vec::with_capacity(CHUNK);
    let started = std::time::Instant::now();
    let mut reported = started;
    let horizon = Micros::now().plus(input.max_future_skew.max(FUTURE_FLOOR));
    let mut ahead = Vec::new();
    for chunk in rx {
        if !input.progress && reported.elapsed() >= PROGRESS_EVERY {
            reported = std::time::Instant::now();
            log_progress(bar, events_read, started.elapsed().as_secs_f64());
        }
        for record in chunk {
            match record {
                Record::Event(ev) if ev.time > horizon => ahead.push(ev),
                Record::Event(ev) => {
                    events_read += 1;
                    latest = latest.max(ev.time);
                    earliest = earliest.min(ev.time);
                    buffer.push(ev);
                    while let Some(ev) = buffer.pop_ready() {
                        ready.push(ev);
                    }
                    ready.extend(
                        std::iter::from_fn(|| buffer.pop_over(2 * input.max_held_events))
                            .map(|held| held.0),
                    );
                }
                Record::Dead(dead) => dead_letters.push(dead).map_err(output_error)?,
                Record::Skipped(what) => *skipped.entry(what).or_insert(0) += 1,
            }
        }
        shards.apply(&mut ready)?;
    }
    let (accepted, isolated) = settle_ahead(ahead, latest, input.max_future_skew);
    for ev in isolated {
        dead_letters
            .push(DeadLetter {
                input: "(replay input)".into(),
                line: 0,
                reason: format!(
                    "event time {} is more than {} after the wall clock and no other event of the input comes within max_future_skew ({}) of it",
                    ev.time,
                    input.max_future_skew.max(FUTURE_FLOOR),
                    input.max_future_skew
                ),
                raw: Some(crate::decode::json::encode(&ev)),
            })
            .map_err(output_error)?;
    }
    let (dead_sample, dead_count) = dead_letters.finish().map_err(output_error)?;
    for ev in accepted {
        events_read += 1;
        latest = latest.max(ev.time);
        earliest = earliest.min(ev.time);
        buffer.push(ev);
    }
    ready.extend(std::iter::from_fn(|| buffer.pop_any()));
    shards.apply(&mut ready)?;
    let as_of = input.as_of.or((events_read > 0).then_some(latest));
    let ended = shards.finish(as_of)?;
    bar.finish_and_clear();
    Ok(ReplayOutcome {
        alerts: AlertLog::new(ended.views),
        dead_letters: dead_sample,
        dead_letter_count: dead_count,
        skipped,
        events_read,
        stats: ended.stats,
        as_of,
        period: (events_read > 0).then_some((earliest, latest)),
        pending: ended.pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: &str, time: &str) -> IdentityEvent {
        crate::decode::json::decode(
            format!(r#"{{"event_id":"{id}","system":"iam","time":"{time}","entity":"e","action":"used"}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn isolated_events_past_the_horizon_are_set_apart_clusters_kept() {
        let newest = Micros::parse("2030-01-01T00:00:00Z").unwrap();
        let ahead = vec![
            at("far", "9999-12-31T00:00:00Z"),
            at("far", "9999-12-31T00:00:00Z"),
            at("near", "2030-01-01T00:30:00Z"),
            at("a", "2031-06-01T00:00:00Z"),
            at("b", "2031-06-01T00:10:00Z"),
        ];
        let (kept, isolated) = settle_ahead(ahead, newest, Span::hours(1));
        let ids = |v: &[IdentityEvent]| v.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&kept), ["near", "a", "b"]);
        assert_eq!(
            ids(&isolated),
            ["far", "far"],
            "a redelivery is no neighbour"
        );
    }
}
