//! `lockstep inventory`: what exists, where, since when and who created it — one line per
//! entity as a table, JSON lines or CSV, streamed from a state directory (constant
//! memory, the first line at once) or paged from a running instance's `/v1/inventory`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use lockstep::event::{EntityKind, System};
use lockstep::report::csv_field;
use lockstep::store::view::{InventoryFilter, StateView};

use super::inspect::StateSource;
use super::load_config;

/// How `lockstep inventory` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum InventoryFormat {
    /// Aligned columns, for a person.
    Table,
    /// One JSON object per line, as `/v1/inventory` gives them.
    Json,
    /// CSV with a header, a column per system.
    Csv,
}

/// The arguments of `lockstep inventory`.
#[derive(clap::Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    from: StateSource,
    /// Configuration file (for `[consistency] system_of_record`, with --state).
    #[arg(long)]
    config: Option<PathBuf>,
    /// table, json (lines) or csv.
    #[arg(long, value_enum, default_value = "table")]
    format: InventoryFormat,
    /// Only entities active in one system and revoked in another.
    #[arg(long)]
    drift: bool,
    /// Only entities that neither they nor an ancestor have a state in the system of record.
    #[arg(long)]
    unregistered: bool,
    /// Only entities active in some system.
    #[arg(long)]
    active: bool,
    /// Only entities of this kind.
    #[arg(long, value_parser = EntityKind::parse)]
    kind: Option<EntityKind>,
    /// Only entities with a state in this system.
    #[arg(long, value_parser = System::parse)]
    system: Option<System>,
}

/// The page size read from an instance's API.
const PAGE: usize = lockstep::api::v1::MAX_LIMIT;

/// Runs `lockstep inventory`.
pub fn inventory(args: InventoryArgs) -> Result<()> {
    let out = BufWriter::new(std::io::stdout().lock());
    let mut printer = Printer {
        out,
        format: args.format,
        flushed: Instant::now(),
    };
    match printer.all(&args) {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// How long printed lines may wait in the buffer: a sparse filter's lines, and the
/// first of any, come out at once; a dense stream in a few writes a second.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

struct Printer<W: Write> {
    out: W,
    format: InventoryFormat,
    /// When the buffer was last written out.
    flushed: Instant,
}

impl<W: Write> Printer<W> {
    fn all(&mut self, args: &InventoryArgs) -> Result<()> {
        self.header()?;
        self.out.flush()?;
        match (&args.from.state, &args.from.api) {
            (Some(dir), _) => {
                let config = load_config(args.config.as_deref())?;
                if !dir.join("CURRENT").is_file() {
                    anyhow::bail!(
                        "no lockstep state in {}: give the directory a replay (--state) or run wrote",
                        dir.display()
                    );
                }
                let view = StateView::open_read_only(dir).context("opening the state read-only")?;
                let filter = InventoryFilter {
                    drift: args.drift,
                    unregistered: args.unregistered,
                    active: args.active,
                    kind: args.kind,
                    system: args.system,
                    system_of_record: config.consistency.system_of_record,
                };
                for entry in view.inventory(filter, None)? {
                    self.line(&serde_json::to_value(entry?)?)?;
                }
            }
            (None, _) => self.pages(args)?,
        }
        self.out.flush()?;
        Ok(())
    }

    /// Every page of a running instance's `/v1/inventory`.
    fn pages(&mut self, args: &InventoryArgs) -> Result<()> {
        if args.config.is_some() {
            tracing::info!("inventory: with --api the instance's own [consistency] applies; --config is not read");
        }
        let mut query = vec![format!("limit={PAGE}")];
        for (flag, set) in [
            ("drift", args.drift),
            ("unregistered", args.unregistered),
            ("active", args.active),
        ] {
            if set {
                query.push(format!("{flag}=true"));
            }
        }
        if let Some(k) = args.kind {
            query.push(format!("kind={k}"));
        }
        if let Some(s) = args.system {
            query.push(format!("system={s}"));
        }
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/inventory?{}", query.join("&"));
            if let Some(c) = &cursor {
                path += &format!("&cursor={}", lockstep::api::encode_path(c));
            }
            let page = args.from.get(&path)?;
            for entry in page["entities"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                self.line(entry)?;
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(()),
            }
        }
    }

    fn header(&mut self) -> Result<()> {
        match self.format {
            InventoryFormat::Json => {}
            InventoryFormat::Csv => {
                let mut columns = vec!["entity", "entity_kind", "root", "parent"];
                columns.extend(System::ALL.iter().map(|s| s.as_str()));
                columns.extend([
                    "first_seen",
                    "issued_at",
                    "last_active_at",
                    "created_by",
                    "open_case",
                    "registered",
                ]);
                writeln!(self.out, "{}", columns.join(","))?;
            }
            InventoryFormat::Table => writeln!(
                self.out,
                "{:<40}  {:<15}  {:<34}  {:<27}  {:<16}  ROOT / OPEN CASE",
                "ENTITY", "KIND", "STATES", "FIRST SEEN", "CREATED BY"
            )?,
        }
        Ok(())
    }

    fn line(&mut self, e: &Value) -> Result<()> {
        let text = |field: &str| e[field].as_str().unwrap_or("").to_owned();
        match self.format {
            InventoryFormat::Json => write!(self.out, "{e}")?,
            InventoryFormat::Csv => {
                let mut fields: Vec<String> = ["entity", "entity_kind", "root", "parent"]
                    .iter()
                    .map(|f| text(f))
                    .collect();
                fields.extend(
                    System::ALL
                        .iter()
                        .map(|s| e["states"][s.as_str()].as_str().unwrap_or("").to_owned()),
                );
                fields.extend(
                    [
                        "first_seen",
                        "issued_at",
                        "last_active_at",
                        "created_by",
                        "open_case",
                    ]
                    .iter()
                    .map(|f| text(f)),
                );
                fields.push(e["registered"].to_string());
                let fields: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                write!(self.out, "{}", fields.join(","))?;
            }
            InventoryFormat::Table => {
                let states: Vec<String> = System::ALL
                    .iter()
                    .filter_map(|s| {
                        e["states"][s.as_str()]
                            .as_str()
                            .map(|state| format!("{s}={state}"))
                    })
                    .collect();
                let or_dash = |field: &str| {
                    let t = text(field);
                    if t.is_empty() {
                        "-".to_owned()
                    } else {
                        t
                    }
                };
                let case = match e["open_case"].as_str() {
                    Some(c) => format!("  case {c}"),
                    None => String::new(),
                };
                write!(
                    self.out,
                    "{:<40}  {:<15}  {:<34}  {:<27}  {:<16}  {}{case}",
                    text("entity"),
                    or_dash("entity_kind"),
                    states.join(" "),
                    or_dash("first_seen"),
                    or_dash("created_by"),
                    text("root"),
                )?;
            }
        }
        writeln!(self.out)?;
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.out.flush()?;
            self.flushed = Instant::now();
        }
        Ok(())
    }
}
