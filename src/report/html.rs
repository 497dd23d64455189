//! The report as one self-contained HTML page: inline CSS and SVG, no script, no
//! network. Every number sits in a cell with a `data-metric="<system>.<metric>"`
//! attribute, the same names as the CSV's, so a test can hold them against each other.

use std::fmt::Write;

use super::{duration, Report, AGE_BUCKETS, BUCKETS, SIGN_OFF};
use crate::alert::AlertKind;

pub(super) fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLOURS: [(&str, &str); 4] = [
    ("on time", "#2e7d32"),
    ("late", "#f9a825"),
    ("never", "#c62828"),
    ("pending", "#90a4ae"),
];

/// Stacked bars of each system's obligations: on time, late, never, pending.
fn compliance_chart(r: &Report) -> String {
    let (width, bar, gap, left) = (640.0, 26.0, 14.0, 70.0);
    let height = r.systems.len() as f64 * (bar + gap) + 40.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="SLA compliance per system" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    for (i, s) in r.systems.iter().enumerate() {
        let y = 10.0 + i as f64 * (bar + gap);
        let total = (s.on_time + s.late + s.never + s.pending).max(1) as f64;
        let _ = write!(
            svg,
            r#"<text x="0" y="{}" class="label">{}</text>"#,
            y + bar * 0.7,
            esc(&s.system)
        );
        let mut x = left;
        for ((label, colour), n) in COLOURS.iter().zip([s.on_time, s.late, s.never, s.pending]) {
            let w = (width - left - 60.0) * n as f64 / total;
            if n > 0 {
                let _ = write!(
                    svg,
                    r#"<rect x="{x:.1}" y="{y}" width="{w:.1}" height="{bar}" fill="{colour}"><title>{} {label}: {n}</title></rect>"#,
                    esc(&s.system)
                );
            }
            x += w;
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="label">{:.1}%</text>"#,
            x + 6.0,
            y + bar * 0.7,
            s.compliance_pct
        );
    }
    let mut x = left;
    for (label, colour) in COLOURS {
        let y = height - 14.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}" class="small">{label}</text>"#,
            y - 10.0,
            x + 16.0,
            y
        );
        x += 90.0;
    }
    svg + "</svg>"
}

/// One small bar chart per system of its echo latencies by bucket.
fn latency_charts(r: &Report) -> String {
    let (width, height, top, bottom) = (300.0, 170.0, 16.0, 40.0);
    let mut out = String::new();
    for s in &r.systems {
        let max = s
            .latency
            .histogram
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let step = (width - 20.0) / BUCKETS.len() as f64;
        let mut svg = format!(
            r#"<figure><svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="echo latency of {0}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#,
            esc(&s.system)
        );
        for (i, (n, (_, label))) in s.latency.histogram.iter().zip(BUCKETS).enumerate() {
            let h = (height - top - bottom) * *n as f64 / max;
            let x = 10.0 + i as f64 * step;
            let y = height - bottom - h;
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="#1565c0"><title>{label}: {n}</title></rect><text x="{:.1}" y="{:.1}" class="small" text-anchor="middle">{n}</text><text x="{:.1}" y="{}" class="tiny" text-anchor="middle">{}</text>"##,
                x + 2.0,
                step - 4.0,
                x + step / 2.0,
                y - 3.0,
                x + step / 2.0,
                height - bottom + 14.0,
                esc(label)
            );
        }
        let _ = write!(
            svg,
            r#"</svg><figcaption>{}: {} echoes, p50 {}, p90 {}, max {}</figcaption></figure>"#,
            esc(&s.system),
            s.latency.count,
            duration(s.latency.p50_ms),
            duration(s.latency.p90_ms),
            duration(s.latency.max_ms)
        );
        out += &svg;
    }
    out
}

pub(super) fn cell(metric: String, value: impl std::fmt::Display) -> String {
    format!(
        r#"<td class="num" data-metric="{}">{value}</td>"#,
        esc(&metric)
    )
}

/// The credential hygiene section (SPEC §4b): counts per system and kind, the age
/// distribution, and every flagged credential, oldest first. Cells carry the CSV's names:
/// `<finding>.<system or kind or age bucket>`.
fn hygiene(r: &Report) -> String {
    let h = &r.hygiene;
    let mut body = String::from("<h2>Credential hygiene</h2><p class=\"small\">Credentials still active past their <code>max_age</code> without rotation (rotation_overdue: OWASP NHI7, CIS AWS 1.14) or past <code>unused_after</code> without activity (credential_unused: OWASP NHI1, CIS AWS 1.12).</p><table><tr><th>finding</th><th>group</th><th>count</th></tr>");
    for finding in [AlertKind::RotationOverdue, AlertKind::CredentialUnused] {
        let f = finding.to_string();
        let groups = h
            .by_system
            .get(&f)
            .into_iter()
            .flatten()
            .chain(h.by_kind.get(&f).into_iter().flatten());
        for (group, n) in groups {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td>{}</tr>",
                esc(&f),
                esc(group),
                cell(format!("{f}.{group}"), n)
            );
        }
    }
    body += "</table><table><tr><th>finding</th>";
    for (_, label) in AGE_BUCKETS {
        let _ = write!(body, "<th>{}</th>", esc(label));
    }
    body += "</tr>";
    for (finding, counts) in &h.ages {
        let _ = write!(body, "<tr><td>{}</td>", esc(finding));
        for (n, (_, label)) in counts.iter().zip(AGE_BUCKETS) {
            body += &cell(format!("{finding}.{label}"), n);
        }
        body += "</tr>";
    }
    body += "</table><table><tr><th>credential</th><th>kind</th><th>finding</th><th>active in</th><th>since</th><th>age (days)</th></tr>";
    for c in &h.credentials {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(&c.entity),
            esc(&c.entity_kind),
            esc(&c.finding),
            esc(&c.systems.join(", ")),
            esc(&c.since),
            c.age_days
        );
    }
    body + "</table>"
}

/// A latency cell: a duration for people, the exact milliseconds in `data-value`.
fn ms_cell(metric: String, ms: Option<i64>) -> String {
    format!(
        r#"<td class="num" data-metric="{}" data-value="{}">{}</td>"#,
        esc(&metric),
        ms.map_or(String::new(), |v| v.to_string()),
        duration(ms)
    )
}

/// Who generated the report, from what, over which period, and its scope.
fn provenance(r: &Report) -> String {
    let p = &r.provenance;
    let mut out = format!(
        "<p class=\"small\">Generated <b>{}</b> by <b>{}</b> with lockstep {}. Period covered: <b>{}</b> to <b>{}</b>.</p><p><b>Scope.</b> {}</p><table><tr><th>file</th><th>role</th><th>SHA-256</th></tr>",
        esc(&p.generated_at),
        esc(&p.operator),
        esc(&p.lockstep_version),
        esc(p.first_event.as_deref().unwrap_or("-")),
        esc(p.last_event.as_deref().unwrap_or("-")),
        esc(&r.scope)
    );
    let files = p
        .config
        .iter()
        .map(|f| (f, "configuration"))
        .chain(p.inputs.iter().map(|f| (f, "input")));
    for (f, role) in files {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{role}</td><td><code data-sha256=\"{}\">{}</code></td></tr>",
            esc(&f.name),
            esc(&f.name),
            esc(&f.sha256)
        );
    }
    out + "</table>"
}

fn sign_off(r: &Report) -> String {
    let mut out = String::from("<h2>Sign-off</h2><table class=\"signoff\">");
    for (i, what) in SIGN_OFF.iter().enumerate() {
        let filled = if i == 0 {
            esc(&r.provenance.operator)
        } else {
            String::new()
        };
        let _ = write!(out, "<tr><th>{what}</th><td>{filled}</td></tr>");
    }
    out + "</table>"
}

/// The page.
pub fn page(r: &Report) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>lockstep evidence report</h1><p>Deadlines evaluated up to <b>{}</b>. {} events, {} cases ({} superseded), {} alerts.</p>",
        esc(r.as_of.as_deref().unwrap_or("-")),
        cell("all.events".into(), r.events),
        cell("all.cases".into(), r.cases),
        cell("all.cases_superseded".into(), r.cases_superseded),
        r.alerts.len()
    );
    body = body
        .replace("<td class=\"num\"", "<span class=\"num\"")
        .replace("</td>", "</span>");
    body += &provenance(r);
    body += "<h2>SLA compliance per system</h2>";
    body += &compliance_chart(r);
    body += "<table><tr><th>system</th><th>evaluated</th><th>on time</th><th>late</th><th>never</th><th>pending</th><th>superseded</th><th>compliance %</th><th>SLA target</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>";
    for (s, target) in r.systems.iter().zip(&r.sla_targets) {
        let m = |metric: &str| format!("{}.{metric}", s.system);
        let _ = write!(
            body,
            "<tr><th>{}</th>{}{}{}{}{}{}{}<td>{}</td>{}{}{}{}</tr>",
            esc(&s.system),
            cell(m("evaluated"), s.evaluated),
            cell(m("on_time"), s.on_time),
            cell(m("late"), s.late),
            cell(m("never"), s.never),
            cell(m("pending"), s.pending),
            cell(m("superseded"), s.superseded),
            cell(m("compliance_pct"), format!("{:.1}", s.compliance_pct)),
            esc(&target.text()),
            ms_cell(m("p50_ms"), s.latency.p50_ms),
            ms_cell(m("p90_ms"), s.latency.p90_ms),
            ms_cell(m("p99_ms"), s.latency.p99_ms),
            ms_cell(m("max_ms"), s.latency.max_ms),
        );
    }
    let _ = write!(
        body,
        "</table><p class=\"small\">{}. Latencies: from the revocation to the last entity the system revoked (on-time and late echoes).</p>",
        esc(super::COMPLIANCE_DEFINITION)
    );
    let _ = write!(
        body,
        "<h2>Echo latency distribution per system</h2><p class=\"small\">{}: {}.</p><div class=\"charts\">",
        esc(super::LATENCY_NOTE),
        r.systems
            .iter()
            .map(|s| format!("{} {} evaluated, {} latencies", s.system, s.evaluated, s.latency.count))
            .collect::<Vec<_>>()
            .join("; ")
    );
    body += &latency_charts(r);
    body += "</div>";
    body += "<h2>Slowest echoes</h2><table><tr><th>case</th><th>root</th><th>system</th><th>latency</th><th>entities</th></tr>";
    for c in &r.slowest {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.case_id),
            esc(&c.root),
            esc(&c.system),
            duration(c.latency_ms),
            esc(&c.entities.join(", "))
        );
    }
    body += "</table><h2>Never echoed</h2><table><tr><th>case</th><th>root</th><th>revoked at</th><th>system</th><th>still active</th></tr>";
    for c in &r.never_echoed {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.case_id),
            esc(&c.root),
            esc(&c.revoked_at),
            esc(&c.system),
            esc(&c.entities.join(", "))
        );
    }
    body += "</table>";
    body += &hygiene(r);
    body += &r.consistency.html(esc);
    body += &r.inventory.html();
    body += "<h2>Findings and frameworks</h2><table><tr><th>finding</th><th>count</th><th>OWASP NHI Top 10</th><th>NIST CSF 2.0</th><th>CIS AWS Foundations</th><th>SOC 2</th><th>ISO/IEC 27001:2022</th></tr>";
    for m in &r.frameworks {
        let _ = write!(
            body,
            "<tr><td>{}</td>{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.kind),
            cell(format!("alerts.{}", m.kind), m.count),
            esc(&m.owasp_nhi.join("; ")),
            esc(&m.nist_csf.join("; ")),
            esc(&m.cis_aws.join("; ")),
            esc(&m.soc2.join("; ")),
            esc(&m.iso27001.join("; "))
        );
    }
    body += "</table><h2>Alerts</h2><table><tr><th>at</th><th>kind</th><th>severity</th><th>system</th><th>root</th><th>entities</th><th>detail</th></tr>";
    for a in &r.alerts {
        let who = a.subject();
        let _ = write!(
            body,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.severity, a.at, a.kind, a.severity, a.systems_text(), esc(&a.root), esc(&who), esc(&a.detail)
        );
    }
    body += "</table>";
    body += &sign_off(r);
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lockstep evidence report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#1b1b1b;max-width:1200px}}
h1{{font-size:1.6rem}} h2{{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}}
table{{border-collapse:collapse;margin:.5rem 0;font-size:13px}} th,td{{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}}
td.num,span.num{{text-align:right;font-variant-numeric:tabular-nums}}
tr.critical td{{background:#fde7e9}} tr.high td{{background:#fff4e5}}
.label{{font-size:13px}} .small{{font-size:11px;color:#555}} .tiny{{font-size:9px;fill:#555}}
.charts{{display:flex;flex-wrap:wrap;gap:1rem}} figure{{margin:0}} figcaption{{font-size:12px}}
</style></head><body>
{body}
</body></html>
"#
    )
}
