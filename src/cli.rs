//! The command line: `replay`, `simulate`, `check-config`. Errors are reported with their
//! cause chain and a non-zero exit code; configuration errors name the key and the fix.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use lockstep::adapter::{Format, Normalizer};
use lockstep::alert::{Alert, AlertKind};
use lockstep::config::Config;
use lockstep::correlate::{Correlator, Rules};
use lockstep::decode;
use lockstep::event::System;
use lockstep::live::{Control, Pipeline};
use lockstep::replay::{replay, ReplayInput, ReplayOutcome};
use lockstep::report::{FileDigest, Report, ReportFormat};
use lockstep::simulate::{generate, Scenario};
use lockstep::source::file::{self, Record};
use lockstep::source::range::KafkaRange;
use lockstep::store::view::StateView;
use lockstep::store::Store;
use lockstep::telemetry::Metrics;
use lockstep::time::{Micros, Span};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "lockstep",
    version,
    about = "Keeps IAM, vault, MDM and SIEM revocations of non-human identities in lockstep"
)]
struct Cli {
    /// Log lines as human-readable text or as JSON objects for log shippers (also
    /// `LOCKSTEP_LOG_FORMAT`); the level comes from `RUST_LOG` (default: info).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "LOCKSTEP_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// `time LEVEL target: message fields`, coloured only on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every message goes through `tracing` to stderr, in `format`.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,lockstep=info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Replay events from files and write the alerts (SPEC §4).
    Replay {
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
        alerts_format: lockstep::config::AlertsFormat,
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
    },
    /// Run the live pipeline: consume the source topics, produce alerts (SPEC §5, §6).
    Run {
        /// Configuration file with [kafka], [[sources]] and [sinks].
        #[arg(long)]
        config: PathBuf,
        /// Keep the state in this RocksDB directory (default: `[state] dir`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Also print every alert readably on stdout as it is raised.
        #[arg(long)]
        print: bool,
    },
    /// Generate a realistic scenario of canonical events.
    Simulate {
        /// Seed: the same seed gives the same events.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of service accounts.
        #[arg(long, default_value_t = 1000)]
        accounts: u32,
        /// Output file (`.avro` writes an Avro container; otherwise JSON lines; `-` is stdout).
        #[arg(long, default_value = "-")]
        out: PathBuf,
        /// Maximum delivery disorder, e.g. `20s` (keep it below allowed_lateness).
        #[arg(long, default_value = "20s", value_parser = parse_span)]
        disorder: Span,
        /// Fraction of events delivered twice, 0 to 1.
        #[arg(long, default_value_t = 0.01, value_parser = parse_fraction)]
        redelivery: f64,
        /// Mean number of usage records per API key.
        #[arg(long, default_value_t = 7)]
        uses_per_key: u32,
        /// Let the keys of accounts that stay live on for this many 30-day months:
        /// rotated (on time, late or never), used or left dormant — the stories of the
        /// hygiene alerts `rotation_overdue` and `credential_unused`. 0: one week only.
        #[arg(long, default_value_t = 0)]
        months: u32,
        /// Produce to the configured source topics instead of writing a file, with event
        /// times shifted so that the scenario ends now.
        #[arg(long)]
        live: bool,
        /// Configuration naming the topics (with --live): the first canonical source of
        /// each system.
        #[arg(long, requires = "live")]
        config: Option<PathBuf>,
        /// Bootstrap servers (with --live): overrides `[kafka] brokers`; without --config
        /// the topics are lockstep.iam, lockstep.vault, lockstep.mdm and lockstep.siem.
        #[arg(long, requires = "live")]
        brokers: Option<String>,
        /// Events per second to produce (with --live; 0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// Print the canonical events native records normalise into, as JSON lines: how
    /// lockstep reads your logs.
    Normalize {
        /// Configuration file (for `[mapping]`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Input file; repeat for several (`FORMAT=FILE` as for replay).
        #[arg(long = "input", required = true)]
        inputs: Vec<String>,
        #[command(flatten)]
        read: ReadArgs,
        /// Where to write the events (`-` for stdout).
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
    /// Serve the HTTP API over a state directory (read-only): browse a replay's cases,
    /// entities, lineage and alerts.
    Serve {
        /// The state directory (a replay's `--state`, or a stopped instance's).
        #[arg(long)]
        state: PathBuf,
        /// Where to listen; not loopback needs a token.
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: String,
        /// Configuration file (for `[api] token`; LOCKSTEP_API_TOKEN also works).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print an entity's lineage: where it came from, what it spawned, and each one's
    /// state per system.
    Lineage {
        /// The entity.
        entity: String,
        #[command(flatten)]
        from: StateSource,
        /// tree, json, dot (Graphviz) or mermaid.
        #[arg(long, value_enum, default_value = "tree")]
        format: lockstep::lineage::LineageFormat,
    },
    /// List cases: where each revocation's echoes stand.
    Cases {
        #[command(flatten)]
        from: StateSource,
        /// Only cases in this state: open, breached, complete or superseded.
        #[arg(long)]
        status: Option<String>,
        /// Only cases opened in or owed by this system.
        #[arg(long)]
        system: Option<String>,
        /// Only cases revoked at or after this RFC 3339 instant.
        #[arg(long)]
        since: Option<String>,
        /// At most this many (a page; the next page starts at the printed cursor).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after this cursor (printed at the end of the previous page).
        #[arg(long)]
        cursor: Option<String>,
        /// A table, or JSON lines.
        #[arg(long, value_enum, default_value = "table")]
        format: CasesFormat,
    },
    /// Validate a configuration file and print the effective settings.
    CheckConfig {
        /// The file.
        file: PathBuf,
        /// Also require what `lockstep run` needs ([kafka] and [[sources]]).
        #[arg(long)]
        run: bool,
    },
}

/// How `lockstep cases` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CasesFormat {
    /// One line per case.
    Table,
    /// One JSON object per line, as `/v1/cases` gives them.
    Json,
}

/// How input files are read.
#[derive(clap::Args)]
struct ReadArgs {
    /// The records' format: canonical-json, canonical-avro, or a native format
    /// (cloudtrail, gcp-audit, entra-audit, okta, vault-audit, jamf, intune, k8s-audit,
    /// github-audit, ocsf).
    #[arg(long, default_value = "canonical-json", value_parser = Format::parse)]
    format: Format,
    /// The lifecycle system native records stand for (default: the format's usual one).
    #[arg(long, value_parser = System::parse)]
    system: Option<System>,
}

impl ReadArgs {
    /// Each input with its normalizer: `FORMAT=FILE` names its own format, a bare file
    /// takes `--format`.
    fn inputs(&self, inputs: &[String], config: &Config) -> Vec<(PathBuf, Normalizer)> {
        let mapping = Arc::new(config.mapping.clone());
        inputs
            .iter()
            .map(|input| {
                let (format, path) = match input.split_once('=') {
                    Some((f, p)) => match Format::parse(f) {
                        Ok(format) => (format, p),
                        Err(_) => (self.format, input.as_str()),
                    },
                    None => (self.format, input.as_str()),
                };
                let normalizer = Normalizer::new(format, self.system, mapping.clone());
                (PathBuf::from(path), normalizer)
            })
            .collect()
    }
}

/// Where `lineage` and `cases` read from: a state directory or a running instance.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct StateSource {
    /// A state directory, opened read-only.
    #[arg(long)]
    state: Option<PathBuf>,
    /// A running instance's API, e.g. http://127.0.0.1:9464.
    #[arg(long)]
    api: Option<String>,
}

impl StateSource {
    /// GETs `path` from the API, or answers it from the state directory the same way.
    fn get(&self, path: &str) -> Result<serde_json::Value> {
        if let Some(api) = &self.api {
            let token = std::env::var("LOCKSTEP_API_TOKEN").ok();
            return lockstep::client::get_json(api, path, token.as_deref());
        }
        let dir = self.state.as_ref().context("--state or --api")?;
        if !dir.join("CURRENT").is_file() {
            anyhow::bail!(
                "no lockstep state in {}: give the directory a replay (--state) or run wrote",
                dir.display()
            );
        }
        let view = StateView::open_read_only(dir).context("opening the state read-only")?;
        lockstep::api::answer(&view, path)
    }
}

fn parse_instant(s: &str) -> Result<Micros, String> {
    Micros::parse(s)
}

fn parse_span(s: &str) -> Result<Span, String> {
    Span::parse(s)
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a fraction from 0 to 1, such as 0.01")),
    }
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("lockstep: {}", error_chain(&e));
            ExitCode::from(if e.is::<lockstep::error::ConfigError>() {
                2
            } else {
                1
            })
        }
    }
}

/// Starts the HTTP API on `listen` over `view`, with the token of `[api] token` or
/// `LOCKSTEP_API_TOKEN` (required unless `listen` is loopback).
fn serve_api(
    config: &Config,
    listen: &str,
    metrics: Arc<Metrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
    view: StateView,
) -> Result<(std::net::SocketAddr, std::thread::JoinHandle<()>)> {
    let token = api_token(config);
    let addr = lockstep::api::bind_address(listen, token.as_deref()).map_err(|message| {
        lockstep::error::ConfigError::Invalid {
            path: None,
            message,
        }
    })?;
    let access = lockstep::api::Access {
        token,
        metrics_need_token: config.api.metrics_auth,
    };
    let api = lockstep::api::spawn(addr, access, metrics, ready, Some(view))
        .with_context(|| format!("listening on {addr}"))?;
    Ok((addr, api))
}

/// The API token: `[api] token`, or `LOCKSTEP_API_TOKEN`.
fn api_token(config: &Config) -> Option<String> {
    config
        .api
        .token
        .clone()
        .or_else(|| std::env::var("LOCKSTEP_API_TOKEN").ok())
}

/// A configuration with the default canonical topics on `brokers`.
fn default_topics(brokers: &str) -> String {
    let mut text = format!("[kafka]\nbrokers = {brokers:?}\n");
    for system in lockstep::event::System::ALL {
        text += &format!(
            "[[sources]]\nsystem = \"{system}\"\ntopic = \"lockstep.{system}\"\nformat = \"canonical-json\"\n"
        );
    }
    text
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Replay {
            config,
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
            reports,
            operator,
            shards,
        } => {
            let formats = reports
                .iter()
                .map(|r| ReportFormat::of(r).map(|f| (r.clone(), f)))
                .collect::<Result<Vec<_>, String>>()
                .map_err(anyhow::Error::msg)?;
            let config_path = config;
            let config = load_config(config_path.as_deref())?;
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
            write_alerts(&alerts, &outcome.alerts, alerts_format)?;
            if print {
                print_alerts(&outcome.alerts)?;
            }
            if !formats.is_empty() {
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
                        .map(|(p, _)| {
                            FileDigest::of(p).with_context(|| format!("hashing {}", p.display()))
                        })
                        .collect::<Result<_>>()?,
                    first_event: outcome.period.map(|(t, _)| t.to_string()),
                    last_event: outcome.period.map(|(_, t)| t.to_string()),
                };
                let report = Report::build(
                    &view,
                    &outcome.alerts,
                    outcome.events_read,
                    outcome.as_of,
                    provenance,
                    &config.sla,
                )?;
                for (path, format) in formats {
                    std::fs::write(&path, report.render(format))
                        .with_context(|| format!("writing {}", path.display()))?;
                    tracing::info!("replay: report written to {}", path.display());
                }
            }
            summarize(&outcome, elapsed.as_secs_f64());
            Ok(())
        }
        Command::Simulate {
            seed,
            accounts,
            out,
            disorder,
            redelivery,
            uses_per_key,
            months,
            live,
            config,
            brokers,
            rate,
        } => {
            let scenario = Scenario {
                disorder,
                redelivery,
                uses_per_key,
                months,
                ..Scenario::new(seed, accounts)
            };
            tracing::info!(accounts, seed, months, "simulate: generating");
            let mut events = generate(&scenario);
            tracing::info!(events = events.len(), "simulate: generated; writing");
            if live {
                let config = match (config, brokers) {
                    (Some(path), None) => Config::load(&path)?,
                    (path, Some(brokers)) => {
                        let mut config = match path {
                            Some(p) => Config::load(&p)?,
                            None => Config::parse(&default_topics(&brokers))?,
                        };
                        if let Some(kafka) = &mut config.kafka {
                            kafka.brokers = brokers;
                        }
                        config
                    }
                    (None, None) => anyhow::bail!("simulate --live needs --brokers or --config"),
                };
                shift_to_now(&mut events);
                let sent = lockstep::live::feed::produce(&config, &events, rate)?;
                tracing::info!("simulate: produced {sent} events for {accounts} service accounts (seed {seed})");
                return Ok(());
            }
            if out.extension().is_some_and(|e| e == "avro") {
                let file =
                    File::create(&out).with_context(|| format!("creating {}", out.display()))?;
                decode::avro::write_container(&events, BufWriter::new(file))?
                    .flush()
                    .with_context(|| format!("writing {}", out.display()))?;
            } else {
                write_lines(&out, events.iter().map(decode::json::encode))?;
            }
            tracing::info!(
                "simulate: {} events for {accounts} service accounts (seed {seed})",
                events.len()
            );
            Ok(())
        }
        Command::Run {
            config,
            state,
            print,
        } => {
            let path = config;
            let config = load_config(Some(&path))?;
            config
                .runnable()
                .map_err(|message| lockstep::error::ConfigError::Invalid {
                    path: Some(path.clone()),
                    message,
                })?;
            let dir = state
                .or_else(|| config.state.dir.clone())
                .context("lockstep run needs a state directory: --state DIR or [state] dir")?;
            let store = Store::open_with(&dir, config.state.memory_budget)
                .with_context(|| format!("opening state {}", dir.display()))?;
            let metrics = Arc::new(Metrics::new());
            let control = Control::default();
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(signal, control.shutdown.clone())?;
            }
            let api = if config.api.listen != "off" {
                let (addr, _) = serve_api(
                    &config,
                    &config.api.listen,
                    metrics.clone(),
                    control.ready.clone(),
                    store.view(),
                )?;
                format!("http://{addr}")
            } else {
                "off".to_owned()
            };
            let sources: Vec<String> = config
                .sources
                .iter()
                .map(|s| format!("{} ({}, {})", s.topic, s.system, s.format))
                .collect();
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                config = %path.display(),
                state = %dir.display(),
                api = %api,
                sources = %sources.join(", "),
                "lockstep run starting"
            );
            let pipeline = Pipeline::start(config, store, metrics, print, &control)?;
            tracing::info!("lockstep: running; Ctrl-C or SIGTERM stops after a final commit");
            pipeline.run(&control)?;
            tracing::info!("lockstep: stopped cleanly");
            Ok(())
        }
        Command::Normalize {
            config,
            inputs,
            read,
            out,
        } => {
            let config = load_config(config.as_deref())?;
            let (mut events, mut skipped, mut dead) = (Vec::new(), 0u64, 0u64);
            for (path, normalizer) in read.inputs(&inputs, &config) {
                let format = normalizer.format();
                file::read(
                    &path,
                    &normalizer,
                    |record| match record {
                        Record::Event(ev) => events.push(decode::json::encode(&ev)),
                        Record::Skipped(what) => {
                            skipped += 1;
                            tracing::info!("normalize: {}: skipped a record of type {what:?} ({format} does not cover it)", path.display());
                        }
                        Record::Dead(d) => {
                            dead += 1;
                            tracing::info!("normalize: dead letter {}:{}: {}", path.display(), d.line, d.reason);
                        }
                    },
                    |_| {},
                )
                .with_context(|| format!("reading {}", path.display()))?;
            }
            let count = events.len();
            write_lines(&out, events.into_iter())?;
            tracing::info!(
                "normalize: {count} events, {skipped} records skipped, {dead} dead letters"
            );
            Ok(())
        }
        Command::Serve {
            state,
            listen,
            config,
        } => {
            let config = load_config(config.as_deref())?;
            let view = StateView::open_read_only(&state)
                .with_context(|| format!("opening state {} read-only", state.display()))?;
            let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let (addr, api) = serve_api(&config, &listen, Arc::new(Metrics::new()), ready, view)?;
            tracing::info!("lockstep: serving {} on http://{addr}", state.display());
            api.join()
                .map_err(|_| anyhow::anyhow!("the API thread panicked"))?;
            Ok(())
        }
        Command::Lineage {
            entity,
            from,
            format,
        } => {
            let lineage = from.get(&format!(
                "/v1/lineage/{}",
                lockstep::api::encode_path(&entity)
            ))?;
            print!("{}", lockstep::lineage::render(&lineage, format));
            Ok(())
        }
        Command::Cases {
            from,
            status,
            system,
            since,
            limit,
            cursor,
            format,
        } => {
            let limit = limit.clamp(1, lockstep::api::v1::MAX_LIMIT);
            let mut query = vec![format!("limit={limit}")];
            for (key, value) in [
                ("state", status),
                ("system", system),
                ("since", since),
                ("cursor", cursor),
            ] {
                if let Some(v) = value {
                    query.push(format!("{key}={}", lockstep::api::encode_path(&v)));
                }
            }
            let page = from.get(&format!("/v1/cases?{}", query.join("&")))?;
            let cases = page["cases"].as_array().cloned().unwrap_or_default();
            let mut out = BufWriter::new(std::io::stdout().lock());
            for c in &cases {
                if format == CasesFormat::Json {
                    writeln!(out, "{c}")?;
                    continue;
                }
                let echoes: Vec<String> = c["obligations"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|o| {
                        format!(
                            "{} {}",
                            o["system"].as_str().unwrap_or("?"),
                            o["status"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                writeln!(
                    out,
                    "{}  {:<10}  {}  {} revoked in {}  [{}]",
                    c["case_id"].as_str().unwrap_or("?"),
                    c["state"].as_str().unwrap_or("?"),
                    c["revoked_at"].as_str().unwrap_or("?"),
                    c["root"].as_str().unwrap_or("?"),
                    c["origin_system"].as_str().unwrap_or("?"),
                    echoes.join(", ")
                )?;
            }
            out.flush()?;
            if let Some(next) = page["next_cursor"].as_str() {
                tracing::info!(
                    "cases: this page holds {limit}; more follow: add --cursor {next} (or narrow the filters)"
                );
            }
            Ok(())
        }
        Command::CheckConfig { file, run } => {
            let config = Config::load(&file)?;
            let invalid = |message: String| lockstep::error::ConfigError::Invalid {
                path: Some(file.clone()),
                message,
            };
            if run {
                config.runnable().map_err(invalid)?;
            }
            if config.api.listen != "off" {
                lockstep::api::bind_address(&config.api.listen, api_token(&config).as_deref())
                    .map_err(invalid)?;
            }
            println!("{}: ok", file.display());
            print!("{}", lockstep::config::show::effective(&config));
            for note in lockstep::config::show::notes(&config) {
                println!("  note: {note}");
            }
            Ok(())
        }
    }
}

/// Shifts event times so that the latest is now (relative times are kept).
fn shift_to_now(events: &mut [lockstep::event::IdentityEvent]) {
    let Some(latest) = events.iter().map(|e| e.time).max() else {
        return;
    };
    let delta = Micros::now().0 - latest.0;
    for e in events {
        e.time = Micros(e.time.0 + delta);
    }
}

/// Writes a replay's alerts in `format`.
fn write_alerts(
    path: &Path,
    alerts: &[Alert],
    format: lockstep::config::AlertsFormat,
) -> Result<()> {
    use lockstep::config::AlertsFormat;
    match format {
        AlertsFormat::Json => write_lines(
            path,
            alerts
                .iter()
                .map(|a| serde_json::to_string(a).unwrap_or_default()),
        ),
        AlertsFormat::Ocsf => write_lines(
            path,
            alerts
                .iter()
                .map(|a| lockstep::sink::ocsf_finding(a).to_string()),
        ),
        AlertsFormat::Avro => {
            let bytes = lockstep::sink::alerts_container(alerts)?;
            if path == Path::new("-") {
                std::io::stdout().lock().write_all(&bytes)?;
                Ok(())
            } else {
                std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
            }
        }
    }
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> Result<()> {
    let target: Box<dyn Write> = if path == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
    };
    let mut out = BufWriter::new(target);
    for line in lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

fn print_alerts(alerts: &[Alert]) -> Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    for a in alerts {
        writeln!(out, "{}", a.display_line())?;
    }
    Ok(out.flush()?)
}

fn summarize(o: &ReplayOutcome, secs: f64) {
    let s = &o.stats;
    tracing::info!(
        "replay: {} events read, {} applied, {} redeliveries, {} late, {} dead letters",
        o.events_read,
        s.applied,
        s.redeliveries,
        s.late,
        o.dead_letter_count
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
        .map(|k| format!("{k} {}", o.alerts.iter().filter(|a| a.kind == *k).count()))
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
        o.alerts.len(),
        by_kind.join(", ")
    );
    let rss = peak_rss_mib().map_or_else(String::new, |m| format!(", peak RSS {m} MiB"));
    tracing::info!(
        "replay: {:.2} s, {:.0} events/s{rss}",
        secs,
        o.events_read as f64 / secs.max(1e-9)
    );
}

/// An error and its causes, each said once: a cause whose text the message before it
/// already contains is left out.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// The process's peak resident set size (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
