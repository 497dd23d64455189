//! Rendering a lineage (the JSON of `/v1/lineage/{id}`) for incident responders: an
//! indented tree with each entity's kind and state per system, JSON, Graphviz dot, or a
//! Mermaid flowchart. Where a credential came from is above the tree; what it spawned,
//! where each one is still alive, and (SPEC §4b) how old each credential is since its
//! issue or last rotation and how long since it was last active, in it; for a rotated
//! credential (SPEC §4c), which holders followed its latest rotation and which did not.
//! Cuts are said: a chain longer than the API gives starts with a line saying so, a node
//! with children not shown says so, and below `MAX_INDENT` levels lines stop moving
//! right (they say their depth instead), so no line grows with the depth of a chain.

use std::fmt::Write;

use serde_json::Value;

use crate::time::{Micros, Span};

/// The output formats of `lockstep lineage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LineageFormat {
    /// An indented tree.
    Tree,
    /// The API's JSON.
    Json,
    /// Graphviz dot.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

/// Renders `lineage` in `format`.
pub fn render(lineage: &Value, format: LineageFormat) -> String {
    match format {
        LineageFormat::Tree => tree(lineage),
        LineageFormat::Json => serde_json::to_string_pretty(lineage).unwrap_or_default(),
        LineageFormat::Dot => dot(lineage),
        LineageFormat::Mermaid => mermaid(lineage),
    }
}

fn label(node: &Value) -> String {
    let kind = node["kind"].as_str().unwrap_or("?");
    let more = if node["truncated"] == true {
        " … more below: ask for its own lineage"
    } else {
        ""
    };
    format!("{} ({kind}){more}", node["entity"].as_str().unwrap_or("?"))
}

/// Age since issue or rotation and time since the last activity, as of the lineage's
/// `as_of` (the latest event applied).
fn ages(node: &Value, as_of: Option<Micros>) -> String {
    let mut parts = Vec::new();
    for (field, what) in [("issued_at", "issued"), ("last_active_at", "last active")] {
        let Some(t) = node[field].as_str().and_then(|t| Micros::parse(t).ok()) else {
            continue;
        };
        parts.push(match as_of {
            Some(now) if now >= t => format!("{what} {} ago", Span(now.0 - t.0)),
            _ => format!("{what} {t}"),
        });
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" · {}", parts.join(" · "))
    }
}

/// The latest rotation round: `⟳ rotated in iam at T: secret in vault followed, …`.
fn round(node: &Value) -> String {
    let Some(round) = node.get("rotation").filter(|r| r.is_object()) else {
        return String::new();
    };
    let holders: Vec<String> = round["holders"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|h| {
            format!(
                "{} in {} {}",
                h["entity"].as_str().unwrap_or("?"),
                h["system"].as_str().unwrap_or("?"),
                h["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    format!(
        " · ⟳ rotated in {} at {}: {}",
        round["origin"].as_str().unwrap_or("?"),
        round["rotated_at"].as_str().unwrap_or("?"),
        holders.join(", ")
    )
}

fn states(node: &Value) -> String {
    let parts: Vec<String> = node["states"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let since = s["since"]
                .as_str()
                .map(|t| format!(" since {t}"))
                .unwrap_or_default();
            format!(
                "{}: {}{since}",
                s["system"].as_str().unwrap_or("?"),
                s["state"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if parts.is_empty() {
        "no state".into()
    } else {
        parts.join(" · ")
    }
}

/// The deepest level the text tree indents: lines below it keep that indentation and say
/// their depth, so that no line grows with the length of a chain.
const MAX_INDENT: usize = 12;

/// The indentation of an ancestor `depth` levels below the topmost one shown.
fn ancestor_indent(depth: usize) -> String {
    if depth <= MAX_INDENT {
        "  ".repeat(depth)
    } else {
        format!("{}[depth {depth}] ", "  ".repeat(MAX_INDENT))
    }
}

fn tree(lineage: &Value) -> String {
    let mut out = String::new();
    let ancestors = lineage["ancestors"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if lineage["ancestors_truncated"] == true {
        let _ = writeln!(
            out,
            "↑ … more ancestors above these {}: ask for the lineage of the topmost one",
            ancestors.len()
        );
    }
    for (depth, a) in ancestors.iter().rev().enumerate() {
        let _ = writeln!(
            out,
            "{}↑ {}  [{}]",
            ancestor_indent(depth),
            label(a),
            states(a)
        );
    }
    let root = &lineage["tree"];
    let as_of = lineage["as_of"]
        .as_str()
        .and_then(|t| Micros::parse(t).ok());
    let cases = root["cases"].as_array().map(|c| c.len()).unwrap_or(0);
    let open = if cases > 0 {
        format!("  · {cases} open case(s)")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{}  [{}]{}{}{open}",
        label(root),
        states(root),
        ages(root, as_of),
        round(root)
    );
    branch(root, "", 1, as_of, &mut out);
    out
}

/// The children of `node`, which are `depth` levels below the tree's entity.
fn branch(node: &Value, prefix: &str, depth: usize, as_of: Option<Micros>, out: &mut String) {
    let children = node["children"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let deep = if depth > MAX_INDENT {
        format!("[depth {depth}] ")
    } else {
        String::new()
    };
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let _ = writeln!(
            out,
            "{prefix}{}{deep}{}  [{}]{}{}",
            if last { "└── " } else { "├── " },
            label(child),
            states(child),
            ages(child, as_of),
            round(child)
        );
        let below = if depth >= MAX_INDENT {
            prefix.to_owned()
        } else {
            format!("{prefix}{}", if last { "    " } else { "│   " })
        };
        branch(child, &below, depth + 1, as_of, out);
    }
}

/// Every (parent, child) edge and every node, ancestors included.
fn graph(lineage: &Value) -> (Vec<&Value>, Vec<(String, String)>) {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let ancestors = lineage["ancestors"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut below = lineage["entity"].as_str().unwrap_or("").to_owned();
    for a in ancestors {
        let id = a["entity"].as_str().unwrap_or("").to_owned();
        edges.push((id.clone(), below));
        nodes.push(a);
        below = id;
    }
    fn walk<'a>(n: &'a Value, nodes: &mut Vec<&'a Value>, edges: &mut Vec<(String, String)>) {
        nodes.push(n);
        for c in n["children"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            edges.push((
                n["entity"].as_str().unwrap_or("").into(),
                c["entity"].as_str().unwrap_or("").into(),
            ));
            walk(c, nodes, edges);
        }
    }
    walk(&lineage["tree"], &mut nodes, &mut edges);
    (nodes, edges)
}

fn alive(node: &Value) -> bool {
    node["states"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["state"] == "active"))
}

fn dot(lineage: &Value) -> String {
    let (nodes, edges) = graph(lineage);
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from(
        "digraph lineage {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for n in nodes {
        let id = n["entity"].as_str().unwrap_or("");
        let colour = if alive(n) { "red" } else { "gray40" };
        let _ = writeln!(
            out,
            "  {} [label={}, color={colour}];",
            q(id),
            q(&format!("{}\n{}", label(n), states(n)))
        );
    }
    for (from, to) in edges {
        let _ = writeln!(out, "  {} -> {};", q(&from), q(&to));
    }
    out.push_str("}\n");
    out
}

fn mermaid(lineage: &Value) -> String {
    let (nodes, edges) = graph(lineage);
    let mut ids = std::collections::HashMap::new();
    let mut out = String::from("flowchart TD\n");
    for n in nodes {
        let entity = n["entity"].as_str().unwrap_or("");
        let next = ids.len();
        let id = *ids.entry(entity.to_owned()).or_insert(next);
        let text = format!("{}<br/>{}", label(n), states(n)).replace('"', "#quot;");
        let _ = writeln!(out, "  n{id}[\"{text}\"]");
        if alive(n) {
            let _ = writeln!(out, "  style n{id} stroke:#c00,stroke-width:2px");
        }
    }
    for (from, to) in edges {
        if let (Some(a), Some(b)) = (ids.get(&from), ids.get(&to)) {
            let _ = writeln!(out, "  n{a} --> n{b}");
        }
    }
    out
}
