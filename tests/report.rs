//! Replay reports: JSON, CSV, Markdown and HTML written from one replay agree in their
//! numbers; the HTML page is self-contained and opens in headless Chromium without a
//! console error, leaving a screenshot as a test artefact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn lockstep() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
}

/// A replayed simulation with all four reports; the directory keeps them.
fn reports() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    assert!(lockstep()
        .args(["simulate", "--seed", "31", "--accounts", "300", "--out"])
        .arg(&events)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success());
    let base = dir.path().join("report");
    let mut replay = lockstep();
    replay
        .args([
            "replay",
            "--config",
            "config/lockstep.toml",
            "--operator",
            "Jane Auditor",
            "--alerts",
        ])
        .arg(dir.path().join("alerts.ndjson"))
        .arg("--input")
        .arg(&events);
    for ext in ["json", "csv", "md", "html"] {
        replay.arg("--report").arg(base.with_extension(ext));
    }
    let out = replay.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, base)
}

fn csv(path: &Path) -> BTreeMap<(String, String, String), String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ',').collect();
            (
                (f[0].into(), f[1].into(), f[2].into()),
                f[3].trim_matches('"').into(),
            )
        })
        .collect()
}

/// Every `data-metric` cell of the page.
fn html_metrics(html: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for piece in html.split("data-metric=\"").skip(1) {
        let (name, rest) = piece.split_once('"').unwrap();
        // A duration shows people a rounded value and keeps the exact one in data-value.
        let value = match rest.strip_prefix(" data-value=\"") {
            Some(exact) => exact.split('"').next().unwrap(),
            None => rest[1..].split('<').next().unwrap(),
        };
        out.insert(name.to_owned(), value.to_owned());
    }
    out
}

#[test]
fn csv_json_markdown_and_html_agree() {
    let (_dir, base) = reports();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(base.with_extension("json")).unwrap())
            .unwrap();
    let csv = csv(&base.with_extension("csv"));
    let html = std::fs::read_to_string(base.with_extension("html")).unwrap();
    let cells = html_metrics(&html);
    let md = std::fs::read_to_string(base.with_extension("md")).unwrap();

    let at = |s: &str, k: &str, m: &str| csv[&(s.to_owned(), k.to_owned(), m.to_owned())].clone();
    assert_eq!(at("replay", "all", "events"), json["events"].to_string());
    assert_eq!(cells["all.events"], json["events"].to_string());
    assert_eq!(cells["all.cases"], json["cases"].to_string());
    let systems = json["systems"].as_array().unwrap();
    assert_eq!(systems.len(), 4);
    for s in systems {
        let name = s["system"].as_str().unwrap();
        for metric in [
            "evaluated",
            "on_time",
            "late",
            "never",
            "pending",
            "superseded",
        ] {
            let v = s[metric].to_string();
            assert_eq!(at("sla", name, metric), v, "{name}.{metric} csv");
            assert_eq!(
                cells[&format!("{name}.{metric}")],
                v,
                "{name}.{metric} html"
            );
        }
        let pct = format!("{:.1}", s["compliance_pct"].as_f64().unwrap());
        assert_eq!(at("sla", name, "compliance_pct"), pct);
        assert_eq!(cells[&format!("{name}.compliance_pct")], pct);
        assert!(
            md.contains(&format!(
                "| {name} | {} | {} |",
                s["evaluated"], s["on_time"]
            )),
            "{name} in markdown"
        );
        for metric in ["p50_ms", "p90_ms", "p99_ms", "max_ms"] {
            let v = s["latency"][metric]
                .as_i64()
                .map_or(String::new(), |v| v.to_string());
            assert_eq!(at("latency", name, metric), v);
            assert_eq!(cells[&format!("{name}.{metric}")], v);
        }
        let histogram: u64 = s["latency"]["histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(histogram, s["latency"]["count"].as_u64().unwrap());
        let evaluated = s["evaluated"].as_u64().unwrap();
        let parts: u64 = ["on_time", "late", "never"]
            .iter()
            .map(|m| s[*m].as_u64().unwrap())
            .sum();
        assert_eq!(evaluated, parts);
    }
    let alerts: Vec<Value> = std::fs::read_to_string(base.with_file_name("alerts.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (kind, n) in json["alerts_by_kind"].as_object().unwrap() {
        let raised = alerts.iter().filter(|a| a["kind"] == kind.as_str()).count();
        assert_eq!(n.as_u64().unwrap() as usize, raised, "{kind}");
        assert_eq!(at("alerts", kind, "count"), n.to_string());
        assert_eq!(cells[&format!("alerts.{kind}")], n.to_string());
    }
    assert_eq!(json["alerts"].as_array().unwrap().len(), alerts.len());
    let never = json["never_echoed"].as_array().unwrap().len() as u64;
    let missing: u64 = systems.iter().map(|s| s["never"].as_u64().unwrap()).sum();
    assert_eq!(never, missing);
    assert!(md.contains("NHI1 Improper Offboarding") && html.contains("PR.AA-05"));

    // What an auditor hands over: who, when, from what (hashes as sha256sum gives them),
    // the period, the SLA targets, the frameworks, a sign-off.
    let sha256sum = |path: &Path| {
        let out = Command::new("sha256sum").arg(path).output().unwrap();
        String::from_utf8(out.stdout).unwrap()[..64].to_owned()
    };
    let events = base.with_file_name("events.jsonl");
    let input_hash = sha256sum(&events);
    let config_hash = sha256sum(Path::new("config/lockstep.toml"));
    let p = &json["provenance"];
    assert_eq!(p["inputs"][0]["sha256"], input_hash.as_str());
    assert_eq!(p["config"]["sha256"], config_hash.as_str());
    assert_eq!(p["operator"], "Jane Auditor");
    assert_eq!(p["lockstep_version"], env!("CARGO_PKG_VERSION"));
    let first = p["first_event"].as_str().unwrap();
    assert!(first < p["last_event"].as_str().unwrap());
    let events_name = events.display().to_string();
    assert_eq!(at("provenance", &events_name, "input_sha256"), input_hash);
    assert_eq!(at("provenance", "report", "operator"), "Jane Auditor");
    assert_eq!(at("provenance", "report", "first_event"), first);
    assert!(html.contains(&format!("data-sha256=\"{events_name}\">{input_hash}<")));
    assert!(md.contains(&format!("`{input_hash}`")) && md.contains(&format!("`{config_hash}`")));
    for text in [&md, &html] {
        for needle in [
            "CC6.2 Registration and removal of access",
            "A.5.18 Access rights",
            "Sign-off",
            "Reviewed by",
            "Jane Auditor",
            "on time ÷ evaluated",
            first,
            "Scope.",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
    }
    assert_eq!(at("sla_target", "vault", "sla"), "15m");
    assert!(md.contains("| 15m |") && html.contains("<td>4h</td>"));
    let raw = std::fs::read(base.with_extension("csv")).unwrap();
    assert!(
        raw.starts_with("\u{feff}".as_bytes()),
        "CSV starts with a BOM"
    );
}

/// Opens `page` in headless Chromium: the screenshot, and Chromium's log.
fn chromium(page: &Path, screenshot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--log-level=0",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (make chromium installs Debian's package)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn console_messages(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[test]
fn the_html_report_opens_in_chromium_without_console_errors() {
    let (dir, base) = reports();
    let page = base.with_extension("html");
    let html = std::fs::read_to_string(&page).unwrap();
    for forbidden in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
    ] {
        assert!(
            !html.contains(forbidden),
            "the page must be self-contained: {forbidden}"
        );
    }
    assert!(
        html.matches("<svg").count() >= 5,
        "compliance chart and one latency chart per system"
    );

    let artefacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&artefacts).unwrap();
    let screenshot = artefacts.join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    let log = chromium(&page, &screenshot);
    assert!(
        console_messages(&log).is_empty(),
        "console output: {:?}",
        console_messages(&log)
    );
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    std::fs::copy(&page, artefacts.join("report.html")).unwrap();
    eprintln!("report screenshot: {}", screenshot.display());

    // The check can fail: a page that logs an error is caught.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><body><script>console.error('broken chart')</script></body></html>",
    )
    .unwrap();
    let log = chromium(&bad, &dir.path().join("bad.png"));
    assert!(
        !console_messages(&log).is_empty(),
        "a console error is detected:\n{log}"
    );
}

#[test]
fn the_inventory_section_counts_every_entity_and_lists_drift_bounded_in_every_format() {
    let (_dir, base) = reports();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(base.with_extension("json")).unwrap())
            .unwrap();
    let csv = csv(&base.with_extension("csv"));
    let html = std::fs::read_to_string(base.with_extension("html")).unwrap();
    let cells = html_metrics(&html);
    let md = std::fs::read_to_string(base.with_extension("md")).unwrap();
    let inv = &json["inventory"];
    assert_eq!(inv["system_of_record"], "iam");
    let at = |s: &str, k: &str, m: &str| csv[&(s.to_owned(), k.to_owned(), m.to_owned())].clone();
    assert_eq!(
        at("inventory", "all", "entities"),
        inv["entities"].to_string()
    );
    let mut total = 0;
    for (kind, counts) in inv["by_kind"].as_object().unwrap() {
        for (metric, n) in counts.as_object().unwrap() {
            assert_eq!(at("inventory_kind", kind, metric), n.to_string());
            assert_eq!(cells[&format!("{kind}.{metric}")], n.to_string());
        }
        let entities = counts["entities"].as_u64().unwrap();
        total += entities;
        // Each entity stands in at most one state per system.
        for system in ["iam", "vault", "mdm", "siem"] {
            let n = |state: &str| counts[format!("{system}.{state}")].as_u64().unwrap_or(0);
            assert!(n("active") + n("revoked") <= entities, "{kind} {system}");
        }
        assert!(md.contains(&format!("| {kind} | {entities} |")), "{kind}");
    }
    assert_eq!(total, inv["entities"].as_u64().unwrap());
    assert!(total > 1000, "{total}");
    for (list, title) in [("drift", "Drift"), ("unregistered", "Unregistered")] {
        let count = inv[list]["count"].as_u64().unwrap();
        let shown = inv[list]["entities"].as_array().unwrap();
        assert_eq!(shown.len() as u64, count.min(50), "{list}");
        assert_eq!(at("inventory", "all", list), count.to_string());
        assert!(md.contains(&format!("### {title}: {count}")), "{list}");
        assert!(
            html.contains(&format!("<h3>{title}: {count}</h3>")),
            "{list}"
        );
        let more = format!("… and {} more", count.saturating_sub(50));
        assert_eq!(md.contains(&more), count > 50, "{list}");
        for e in shown {
            let states = e["states"].as_str().unwrap();
            if list == "drift" {
                assert!(states.contains("active") && states.contains("revoked"));
            } else {
                assert!(!states.contains("iam:"), "{states}");
            }
        }
    }
    assert!(
        inv["drift"]["count"].as_u64().unwrap() > 0,
        "the simulation drifts"
    );
}
