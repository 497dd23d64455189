//! Reading a state: `lockstep serve` (the HTTP API over a state directory), `lineage`
//! and `cases` (from a state directory or a running instance's API).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use lockstep::api::{Health, Served, Stores};
use lockstep::store::view::StateView;
use lockstep::telemetry::Metrics;

use super::{load_config, serve_api};

/// How `lockstep cases` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum CasesFormat {
    /// One line per case.
    Table,
    /// One JSON object per line, as `/v1/cases` gives them.
    Json,
}

/// Where `lineage`, `cases` and `inventory` read from: a state directory or a running instance.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct StateSource {
    /// A state directory, opened read-only.
    #[arg(long)]
    pub(super) state: Option<PathBuf>,
    /// A running instance's API, e.g. http://127.0.0.1:9464.
    #[arg(long)]
    pub(super) api: Option<String>,
}

impl StateSource {
    /// GETs `path` from the API, or answers it from the state directory the same way.
    pub(super) fn get(&self, path: &str) -> Result<serde_json::Value> {
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

/// The arguments of `lockstep serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The state directory (a replay's `--state`, or a stopped instance's).
    #[arg(long)]
    state: PathBuf,
    /// Where to listen; not loopback needs a token.
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: String,
    /// Configuration file (for `[api] token`; LOCKSTEP_API_TOKEN also works).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs `lockstep serve`.
pub fn serve(
    ServeArgs {
        state,
        listen,
        config,
    }: ServeArgs,
) -> Result<()> {
    let config = load_config(config.as_deref())?;
    let view = StateView::open_read_only(&state)
        .with_context(|| format!("opening state {} read-only", state.display()))?;
    let stores = Stores::default();
    let _counted = stores.register(view.clone());
    let served = Served {
        metrics: Arc::new(Metrics::new()),
        ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        view: Some(view),
        stores,
        health: Health::new(None),
        system_of_record: config.consistency.system_of_record,
    };
    let (addr, api) = serve_api(&config, &listen, served)?;
    tracing::info!("lockstep: serving {} on http://{addr}", state.display());
    api.join()
        .map_err(|_| anyhow::anyhow!("the API thread panicked"))?;
    Ok(())
}

/// The arguments of `lockstep lineage`.
#[derive(clap::Args)]
pub struct LineageArgs {
    /// The entity.
    entity: String,
    #[command(flatten)]
    from: StateSource,
    /// tree, json, dot (Graphviz) or mermaid.
    #[arg(long, value_enum, default_value = "tree")]
    format: lockstep::lineage::LineageFormat,
}

/// Runs `lockstep lineage`.
pub fn lineage(
    LineageArgs {
        entity,
        from,
        format,
    }: LineageArgs,
) -> Result<()> {
    let lineage = from.get(&format!(
        "/v1/lineage/{}",
        lockstep::api::encode_path(&entity)
    ))?;
    print!("{}", lockstep::lineage::render(&lineage, format));
    Ok(())
}

/// The arguments of `lockstep cases`.
#[derive(clap::Args)]
pub struct CasesArgs {
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
}

/// Runs `lockstep cases`.
pub fn cases(
    CasesArgs {
        from,
        status,
        system,
        since,
        limit,
        cursor,
        format,
    }: CasesArgs,
) -> Result<()> {
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
