//! `lockstep normalize`: the canonical events native records normalise into, as JSON
//! lines — how lockstep reads an organisation's own logs.

use std::path::PathBuf;

use anyhow::{Context, Result};

use lockstep::decode;
use lockstep::source::file::{self, Record};

use super::{load_config, write_lines, ReadArgs};

/// The arguments of `lockstep normalize`.
#[derive(clap::Args)]
pub struct Args {
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
}

/// Runs `lockstep normalize`.
pub fn run(
    Args {
        config,
        inputs,
        read,
        out,
    }: Args,
) -> Result<()> {
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
    tracing::info!("normalize: {count} events, {skipped} records skipped, {dead} dead letters");
    Ok(())
}
