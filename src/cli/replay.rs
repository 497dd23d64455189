//! `lockstep replay`: events from files or a Kafka time range through the correlator,
//! the alerts written in the encoding of the live topic, evidence reports, a summary.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use lockstep::alert::AlertKind;
use lockstep::config::notify::NotifyConfig;
use lockstep::config::AlertsFormat;
use lockstep::correlate::{Correlator, Rules};
use lockstep::notify::Notifier;
use lockstep::replay::{replay, AlertLog, ReplayInput, ReplayOutcome};
use lockstep::report::{FileDigest, Report, ReportFormat};
use lockstep::sink::AlertContainer;
use lockstep::source::range::KafkaRange;
use lockstep::store::Store;
use lockstep::time::Micros;

use super::{load_config, parse_instant, ReadArgs};

/// The arguments of `lockstep replay`.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (defaults apply when omitted).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Input file; repeat for several. Canonical JSON lines or an Avro container
    /// file, or native records of the `--format`; `FORMAT=FILE` reads one file as
    /// another format (e.g. `--input cloudtrail=trail.json --input vault-audit=audit.log`).
    #[arg(
        long = "input",
        required_unless_present = "since",
        conflicts_with = "since"
    )]
    inputs: Vec<String>,
    /// Replay the configured `[[sources]]` topics from Kafka instead of files: events
    /// at or after this RFC 3339 instant (with --until). The live group's offsets and
    /// alerts topic are never touched.
    #[arg(long, value_parser = parse_instant, requires = "until")]
    since: Option<Micros>,
    /// …and before this one.
    #[arg(long, value_parser = parse_instant, requires = "since")]
    until: Option<Micros>,
    /// Bootstrap servers for --since/--until (default: `[kafka] brokers`).
    #[arg(long, requires = "since")]
    brokers: Option<String>,
    #[command(flatten)]
    read: ReadArgs,
    /// Where to write the alerts (`-` for stdout).
    #[arg(long, default_value = "-")]
    alerts: PathBuf,
    /// How: canonical JSON lines, an Avro container file of `schemas/alert.avsc`, or
    /// OCSF Detection Findings (2004) as JSON lines — the encodings of the live topic.
    #[arg(long, value_enum, default_value = "json")]
    alerts_format: AlertsFormat,
    /// Evaluate deadlines up to this RFC 3339 instant (default: the latest event time).
    #[arg(long, value_parser = parse_instant)]
    as_of: Option<Micros>,
    /// Keep the state in this RocksDB directory (default: `[state] dir`, else a temporary one).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Write undecodable records here as JSON lines with their reason.
    #[arg(long)]
    dead_letters: Option<PathBuf>,
    /// Also print every alert readably on stdout.
    #[arg(long)]
    print: bool,
    /// Also deliver the alerts to the configuration's `[[notify]]` sinks (waits up to
    /// a minute for them; fails when some were not delivered).
    #[arg(long)]
    notify: bool,
    /// Write an evidence report; the extension names the format (.json, .csv, .md,
    /// .html). Repeat for several.
    #[arg(long = "report")]
    reports: Vec<PathBuf>,
    /// Who runs the replay, for the reports' generation record (default:
    /// `LOCKSTEP_OPERATOR`, else the login name).
    #[arg(long)]
    operator: Option<String>,
    /// Correlators sharing the work, one per thread, each owning whole lineage
    /// trees: the alerts are those of one. Files only (they are read twice: first
    /// the lineage); each shard has its share of the memory budget and a temporary
    /// store (no --state, no reports).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64),
              conflicts_with_all = ["state", "reports", "since"])]
    shards: u16,
}

/// Runs `lockstep replay`.
pub fn run(
    Args {
        config: config_path,
        inputs,
        since,
        until,
        brokers,
        read,
        alerts,
        alerts_format,
        as_of,
        state,
        dead_letters,
        print,
        notify,
        reports,
        operator,
        shards,
    }: Args,
) -> Result<()> {
    let formats = reports
        .iter()
        .map(|r| ReportFormat::of(r).map(|f| (r.clone(), f)))
        .collect::<Result<Vec<_>, String>>()
        .map_err(anyhow::Error::msg)?;
    let config = load_config(config_path.as_deref())?;
    if notify && config.notify.is_empty() {
        anyhow::bail!("--notify needs [[notify]] sinks in the --config file (docs/notify.md)");
    }
    // An output that cannot be written fails now, not after the replay.
    if alerts != Path::new("-") {
        File::create(&alerts)
            .with_context(|| format!("cannot write --alerts {}", alerts.display()))?;
    }
    let shards = usize::from(shards);
    if shards > 1 && config.state.dir.is_some() {
        anyhow::bail!(
            "--shards keeps the state in temporary stores: remove [state] dir from the configuration, or replay with one shard"
        );
    }
    let budget = config.state.memory_budget.share(shards);
    let store = match state.or_else(|| config.state.dir.clone()) {
        Some(dir) => Store::open_with(&dir, budget)
            .with_context(|| format!("opening state {}", dir.display()))?,
        None => Store::temporary_with(budget)?,
    };
    let mut correlator = Correlator::new(Rules::from(&config), store);
    let kafka = match (since, until) {
        (Some(since), Some(until)) => {
            let mut config = config.clone();
            match (&mut config.kafka, brokers) {
                (Some(k), Some(b)) => k.brokers = b,
                (None, Some(b)) => {
                    config.kafka = Some(toml::from_str(&format!("brokers = {b:?}"))?)
                }
                (_, None) => {}
            }
            Some(KafkaRange {
                config,
                since,
                until,
            })
        }
        _ => None,
    };
    let input = ReplayInput {
        inputs: read.inputs(&inputs, &config),
        kafka,
        as_of,
        allowed_lateness: config.correlator.allowed_lateness,
        max_future_skew: config.correlator.max_future_skew,
        max_held_events: config.correlator.max_held_events,
        dead_letters,
        progress: std::io::stderr().is_terminal(),
        shards,
    };
    let started = Instant::now();
    let outcome = replay(&mut correlator, &input)?;
    let elapsed = started.elapsed();
    let counts = write_alerts(&alerts, &outcome.alerts, alerts_format, print)?;
    if notify {
        deliver(&config.notify, &outcome.alerts)?;
    }
    if !formats.is_empty() {
        correlator.store_mut().write_out_rows()?;
        let view = correlator.store_mut().view();
        let provenance = lockstep::report::Provenance {
            generated_at: Micros::now().to_string(),
            lockstep_version: env!("CARGO_PKG_VERSION").to_owned(),
            operator: operator
                .or_else(|| std::env::var("LOCKSTEP_OPERATOR").ok())
                .or_else(|| std::env::var("USER").ok())
                .or_else(|| std::env::var("LOGNAME").ok())
                .unwrap_or_else(|| "unknown".into()),
            config: config_path
                .as_deref()
                .map(FileDigest::of)
                .transpose()
                .context("hashing the configuration")?,
            inputs: input
                .inputs
                .iter()
                .map(|(p, _)| FileDigest::of(p).with_context(|| format!("hashing {}", p.display())))
                .collect::<Result<_>>()?,
            first_event: outcome.period.map(|(t, _)| t.to_string()),
            last_event: outcome.period.map(|(_, t)| t.to_string()),
        };
        let report = Report::build(
            &view,
            &outcome.alerts.collect()?,
            outcome.events_read,
            outcome.as_of,
            provenance,
            &config,
        )?;
        for (path, format) in formats {
            std::fs::write(&path, report.render(format))
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!("replay: report written to {}", path.display());
        }
    }
    summarize(&outcome, &counts, elapsed.as_secs_f64());
    Ok(())
}

/// How long `--notify` waits for the sinks.
const NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Delivers a replay's alerts to the `[[notify]]` sinks, as `run` does but without an
/// outbox (a replay is run again instead): fails when some were refused or not
/// delivered within [`NOTIFY_WAIT`].
fn deliver(sinks: &[NotifyConfig], log: &AlertLog) -> Result<()> {
    let metrics = std::sync::Arc::new(lockstep::telemetry::Metrics::new());
    let mut notifier = Notifier::spawn(sinks, "(none: replay)", &metrics);
    let mut sent = 0;
    log.for_each(|a| -> Result<()> {
        for record in notifier.records(a) {
            notifier.take(sent, record);
            sent += 1;
        }
        Ok(())
    })?;
    let refused = notifier.flush(NOTIFY_WAIT, &mut Vec::new()).len();
    let delivered: u64 = sinks
        .iter()
        .enumerate()
        .map(|(i, sink)| {
            let name = sink.name(i);
            metrics.notify_delivered.with_label_values(&[&name]).get()
        })
        .sum();
    tracing::info!(
        sent,
        delivered,
        refused,
        "replay: alerts delivered to the [[notify]] sinks"
    );
    if delivered != sent {
        anyhow::bail!(
            "{} of {sent} alerts were not delivered to the [[notify]] sinks (refused, dropped past max_backlog, or no answer within {NOTIFY_WAIT:?}): see the log",
            sent - delivered
        );
    }
    Ok(())
}

/// How many alerts a replay raised, of each kind.
type KindCounts = BTreeMap<AlertKind, u64>;

/// Alerts in the encoding of `--alerts-format`, written as they come.
enum Encoder<W: Write> {
    Avro(AlertContainer<W>),
    Ocsf(W),
    Json(W),
}

/// Writes a replay's alerts in `format` as they are read back (and, with `print`, each
/// readably on stdout): how many there were of each kind.
fn write_alerts(
    path: &Path,
    log: &AlertLog,
    format: AlertsFormat,
    print: bool,
) -> Result<KindCounts> {
    let target: Box<dyn Write> = if path == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
    };
    let out = BufWriter::new(target);
    let mut encoder = match format {
        AlertsFormat::Avro => Encoder::Avro(AlertContainer::new(out)),
        AlertsFormat::Ocsf => Encoder::Ocsf(out),
        AlertsFormat::Json => Encoder::Json(out),
    };
    let mut printed = print.then(|| BufWriter::new(std::io::stdout().lock()));
    let mut counts = KindCounts::new();
    log.for_each(|a| -> Result<()> {
        *counts.entry(a.kind).or_default() += 1;
        match &mut encoder {
            Encoder::Avro(avro) => avro.append(a)?,
            Encoder::Ocsf(out) => writeln!(out, "{}", lockstep::sink::ocsf_finding(a))?,
            Encoder::Json(out) => writeln!(out, "{}", serde_json::to_string(a)?)?,
        }
        if let Some(printed) = &mut printed {
            writeln!(printed, "{}", a.display_line())?;
        }
        Ok(())
    })?;
    if let Some(mut printed) = printed {
        printed.flush()?;
    }
    let mut out = match encoder {
        Encoder::Avro(avro) => avro.finish()?,
        Encoder::Ocsf(out) | Encoder::Json(out) => out,
    };
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(counts)
}

fn summarize(o: &ReplayOutcome, counts: &KindCounts, secs: f64) {
    let s = &o.stats;
    tracing::info!(
        "replay: {} events read, {} applied, {} redeliveries, {} late, {} dead letters; {} rows read from RocksDB (not in the caches); index: {} entities in {:.1} MiB ({} bytes each)",
        o.events_read,
        s.applied,
        s.redeliveries,
        s.late,
        o.dead_letter_count,
        s.row_reads,
        s.indexed,
        s.index_bytes as f64 / f64::from(1 << 20),
        s.index_bytes.checked_div(s.indexed).unwrap_or(0)
    );
    if !o.skipped.is_empty() {
        let total: u64 = o.skipped.values().sum();
        let mut kinds: Vec<(&String, &u64)> = o.skipped.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = kinds
            .iter()
            .take(5)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        tracing::info!(
            "replay: {total} native records of uncovered types skipped ({})",
            top.join(", ")
        );
    }
    for d in &o.dead_letters {
        tracing::info!(
            "replay: dead letter {}:{}: {}",
            d.input.display(),
            d.line,
            d.reason
        );
    }
    let more = o.dead_letter_count - o.dead_letters.len() as u64;
    if more > 0 {
        tracing::info!("replay: … and {more} more (see --dead-letters)");
    }
    let by_kind: Vec<String> = AlertKind::ALL
        .iter()
        .filter(|k| **k != AlertKind::SourceSilent)
        .map(|k| format!("{k} {}", counts.get(k).copied().unwrap_or(0)))
        .collect();
    tracing::info!(
        "replay: {} cases opened, {} superseded; {} deadlines evaluated up to {}; {} pending after it",
        s.cases_opened,
        s.cases_superseded,
        s.deadlines,
        o.as_of.map_or("-".to_owned(), |t| t.to_string()),
        o.pending
    );
    tracing::info!(
        "replay: alerts: {} ({})",
        counts.values().sum::<u64>(),
        by_kind.join(", ")
    );
    let rss = peak_rss_mib().map_or_else(String::new, |m| format!(", peak RSS {m} MiB"));
    tracing::info!(
        "replay: {:.2} s, {:.0} events/s{rss}",
        secs,
        o.events_read as f64 / secs.max(1e-9)
    );
}

/// The process's peak resident set size (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
