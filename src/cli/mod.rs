//! The command line: parses it, sets up logging and hands each command to its file
//! (`replay`, `run`, `simulate`, `normalize`, `check-config`, `inventory`; `serve`,
//! `lineage` and `cases` in `inspect`). Errors are reported with their cause chain and a non-zero exit
//! code; configuration errors name the key and the fix.

mod check;
mod inspect;
mod inventory;
mod normalize;
mod replay;
mod run;
mod simulate;

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use lockstep::adapter::{Format, Normalizer};
use lockstep::config::Config;
use lockstep::event::System;
use lockstep::time::{Micros, Span};

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
    Replay(replay::Args),
    /// Run the live pipeline: consume the source topics, produce alerts (SPEC §5, §6).
    Run(run::Args),
    /// Generate a realistic scenario of canonical events.
    Simulate(simulate::Args),
    /// Print the canonical events native records normalise into, as JSON lines: how
    /// lockstep reads your logs.
    Normalize(normalize::Args),
    /// Serve the HTTP API over a state directory (read-only): browse a replay's cases,
    /// entities, lineage and alerts.
    Serve(inspect::ServeArgs),
    /// Print an entity's lineage: where it came from, what it spawned, and each one's
    /// state per system.
    Lineage(inspect::LineageArgs),
    /// List cases: where each revocation's echoes stand.
    Cases(inspect::CasesArgs),
    /// List every entity: its kind, tree, state per system, first sight and creator;
    /// drift between systems and identities the system of record does not know.
    Inventory(inventory::InventoryArgs),
    /// Validate a configuration file and print the effective settings.
    CheckConfig(check::Args),
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

/// Starts the HTTP API on `listen` over `view` (`/v1` answers 503 without one), with the token of `[api] token` or
/// `LOCKSTEP_API_TOKEN` (required unless `listen` is loopback).
fn serve_api(
    config: &Config,
    listen: &str,
    served: lockstep::api::Served,
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
    let api = lockstep::api::spawn(addr, access, served)
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

fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::Run(args) => run::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Normalize(args) => normalize::run(args),
        Command::Serve(args) => inspect::serve(args),
        Command::Lineage(args) => inspect::lineage(args),
        Command::Cases(args) => inspect::cases(args),
        Command::Inventory(args) => inventory::inventory(args),
        Command::CheckConfig(args) => check::run(args),
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
