//! `lockstep run`: the live pipeline, with the HTTP API beside it, until SIGTERM or
//! Ctrl-C stops it after a final commit.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use lockstep::api::{Health, Served};
use lockstep::config::Assignment;
use lockstep::live::group::GroupPipeline;
use lockstep::live::{Control, LiveError, Pipeline};
use lockstep::store::Store;
use lockstep::telemetry::Metrics;

use super::{load_config, serve_api};

/// The arguments of `lockstep run`.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration file with [kafka], [[sources]] and [sinks].
    #[arg(long)]
    config: PathBuf,
    /// Keep the state in this RocksDB directory (default: `[state] dir`).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Also print every alert readably on stdout as it is raised.
    #[arg(long)]
    print: bool,
}

/// Runs `lockstep run`.
pub fn run(
    Args {
        config: path,
        state,
        print,
    }: Args,
) -> Result<()> {
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
    let group = config
        .kafka
        .as_ref()
        .is_some_and(|k| k.assignment == Assignment::Group);
    // With the group, each state shard is a directory of its own under `dir`.
    let store = if group {
        None
    } else {
        let store = Store::open_with(&dir, config.state.memory_budget)
            .with_context(|| format!("opening state {}", dir.display()))?;
        Some(store)
    };
    let metrics = Arc::new(Metrics::new());
    let control = Control::default();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, control.shutdown.clone())?;
    }
    // A group member's shards register themselves as they open.
    let _counted = store.as_ref().map(|s| control.stores.register(s.view()));
    let api = if config.api.listen != "off" {
        let served = Served {
            metrics: metrics.clone(),
            ready: control.ready.clone(),
            view: store.as_ref().map(Store::view),
            stores: control.stores.clone(),
            health: Health::new(config.api.stall_after.map(|s| s.to_std())),
            system_of_record: config.consistency.system_of_record,
        };
        let (addr, _) = serve_api(&config, &config.api.listen, served)?;
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
    let ran = match store {
        Some(store) => Pipeline::start(config, store, metrics, print, &control).and_then(|p| {
            tracing::info!("lockstep: running; Ctrl-C or SIGTERM stops after a final commit");
            p.run(&control)
        }),
        None => GroupPipeline::start(config, dir, metrics, print, &control).and_then(|p| {
            tracing::info!(
                "lockstep: running in the group; Ctrl-C or SIGTERM stops after a final commit"
            );
            p.run(&control)
        }),
    };
    match ran {
        Err(LiveError::Reopen) => return Err(start_over()),
        // Stopped while the start waited for the broker: nothing was consumed.
        Err(LiveError::Stopped) => tracing::info!("lockstep: stopped before the broker answered"),
        other => {
            other?;
            tracing::info!("lockstep: stopped cleanly");
        }
    }
    Ok(())
}

/// Starts `lockstep run` over in place, with the same arguments: after the state
/// directory refused a write, RocksDB takes writes again only once reopened, and a
/// restart resumes from the last commit as after `kill -9`. Returns only if it could
/// not.
fn start_over() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    tracing::info!("lockstep: starting over in place to reopen the state directory");
    let error = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(e) => e,
    };
    anyhow::Error::new(error).context("starting lockstep run over to reopen the state directory")
}
