//! `lockstep simulate`: a generated scenario, to a file or produced live to the source
//! topics.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

use lockstep::config::Config;
use lockstep::decode;
use lockstep::live::feed::Keys;
use lockstep::simulate::{generate, Scenario};
use lockstep::time::{Micros, Span};

use super::{parse_fraction, parse_span, write_lines};

/// The arguments of `lockstep simulate`.
#[derive(clap::Args)]
pub struct Args {
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
    /// Also the stories of SPEC §4c: keys rotated with and without their vault secrets
    /// (`rotation_missed`), and shadow identities only MDM, the SIEM or the vault know,
    /// registered in IAM in time, late or never, or decommissioned
    /// (`unregistered_identity`).
    #[arg(long)]
    consistency: bool,
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
    /// Key records by their own entity id, as most producers do (a group then routes them
    /// by lineage root through `[kafka] repartition_topic`), not by lineage root.
    #[arg(long, requires = "live")]
    keyed_by_entity: bool,
}

/// Runs `lockstep simulate`.
pub fn run(
    Args {
        seed,
        accounts,
        out,
        disorder,
        redelivery,
        uses_per_key,
        months,
        consistency,
        live,
        config,
        brokers,
        rate,
        keyed_by_entity,
    }: Args,
) -> Result<()> {
    let scenario = Scenario {
        disorder,
        redelivery,
        uses_per_key,
        months,
        consistency,
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
        let keys = if keyed_by_entity {
            Keys::Entity
        } else {
            Keys::Root
        };
        let sent = lockstep::live::feed::produce_keyed(&config, &events, rate, keys)?;
        tracing::info!(
            "simulate: produced {sent} events for {accounts} service accounts (seed {seed})"
        );
        return Ok(());
    }
    if out.extension().is_some_and(|e| e == "avro") {
        let file = File::create(&out).with_context(|| format!("creating {}", out.display()))?;
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
