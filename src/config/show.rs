//! The effective configuration as `lockstep check-config` prints it: every section with
//! its defaults filled in, per-kind SLA overrides shown as overrides, and secret values
//! (Kafka properties such as `sasl.password`, the API token) redacted.

use std::fmt::Write;

use super::env::is_secret_key;
use super::{AlertsFormat, Config};
use crate::event::{EntityKind, System};
use crate::time::Span;

fn shown(limit: Option<Span>) -> String {
    limit.map_or("off".to_owned(), |s| s.to_string())
}

/// Settings that are valid but probably not meant: zero durations where zero means
/// something other than "off".
pub fn notes(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let zero = Some(Span(0));
    for system in System::ALL {
        if c.sla.get(EntityKind::Other, *system) == zero {
            out.push(format!("sla.{system} = 0s: the echo is due at the revocation instant itself; \"off\" gives {system} no obligation"));
        }
    }
    for (kind, system, sla) in c.sla.overrides() {
        if sla == zero {
            out.push(format!("sla.{kind}.{system} = 0s: the echo is due at the revocation instant itself; \"off\" gives no obligation"));
        }
    }
    for kind in EntityKind::ALL {
        for (rule, limit) in [
            ("max_age", c.hygiene.max_age.get(*kind)),
            ("unused_after", c.hygiene.unused_after.get(*kind)),
        ] {
            if limit == zero {
                out.push(format!("hygiene.{rule}.{kind} = 0s: every such credential is flagged the moment it is armed; \"off\" disables the check"));
            }
        }
    }
    for kind in EntityKind::ALL {
        if c.consistency.register_within.get(*kind) == zero {
            out.push(format!("consistency.register_within.{kind} = 0s: every such identity first seen outside {} is flagged the moment it appears; \"off\" disables the check", c.consistency.system_of_record));
        }
    }
    out
}

/// `key = value` lines of the whole effective configuration.
pub fn effective(c: &Config) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "  {key} = {value}");
    };
    for system in System::ALL {
        line(
            &format!("sla.{system}"),
            &shown(c.sla.get(EntityKind::Other, *system)),
        );
    }
    for (kind, system, sla) in c.sla.overrides() {
        line(
            &format!("sla.{kind}.{system}"),
            &format!("{} (override for {kind})", shown(sla)),
        );
    }
    for kind in EntityKind::ALL {
        if let Some(limit) = c.hygiene.max_age.get(*kind) {
            line(&format!("hygiene.max_age.{kind}"), &limit);
        }
        if let Some(limit) = c.hygiene.unused_after.get(*kind) {
            line(&format!("hygiene.unused_after.{kind}"), &limit);
        }
    }
    line(
        "consistency.system_of_record",
        &c.consistency.system_of_record,
    );
    let rotation = c
        .consistency
        .rotation_slas(&c.sla, c.correlator.reporting_system);
    for system in System::ALL {
        let value = if *system == c.correlator.reporting_system {
            "off (the reporting system)".to_owned()
        } else {
            shown(rotation[system.index()])
        };
        line(&format!("consistency.rotation_sla.{system}"), &value);
    }
    for kind in EntityKind::ALL {
        if let Some(limit) = c.consistency.register_within.get(*kind) {
            line(&format!("consistency.register_within.{kind}"), &limit);
        }
    }
    let k = &c.correlator;
    line("correlator.use_grace", &k.use_grace);
    line("correlator.allowed_lateness", &k.allowed_lateness);
    line("correlator.idle_timeout", &k.idle_timeout);
    line("correlator.reporting_system", &k.reporting_system);
    line("correlator.max_held_events", &k.max_held_events);
    line(
        "state.dir",
        &c.state.dir.as_ref().map_or(
            "(unset: --state, or a temporary store for replay)".into(),
            |d| d.display().to_string(),
        ),
    );
    line("state.memory_budget", &c.state.memory_budget);
    match &c.kafka {
        Some(kafka) => {
            line("kafka.brokers", &kafka.brokers);
            line("kafka.group_id", &kafka.group_id);
            line(
                "kafka.assignment",
                &format!("{:?}", kafka.assignment).to_lowercase(),
            );
            if let Some(topic) = &kafka.repartition_topic {
                line("kafka.repartition_topic", topic);
            }
            for (key, value) in &kafka.properties {
                let value = if is_secret_key(key) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                line(&format!("kafka.properties.\"{key}\""), &value);
            }
        }
        None => line(
            "kafka",
            &"(none: replay only; `lockstep run` needs [kafka])",
        ),
    }
    for (i, s) in c.sources.iter().enumerate() {
        let mut text = format!(
            "system {}, topic {:?}, format {}",
            s.system, s.topic, s.format
        );
        if let Some(limit) = s.silence_alert {
            let _ = write!(text, ", silence_alert {limit}");
        }
        if let Some(url) = &s.schema_registry {
            let _ = write!(text, ", schema_registry {url}");
        }
        line(&format!("sources[{i}]"), &text);
    }
    let format = match c.sinks.alerts_format {
        AlertsFormat::Json => "json",
        AlertsFormat::Avro => "avro",
        AlertsFormat::Ocsf => "ocsf",
    };
    line("sinks.alerts_topic", &c.sinks.alerts_topic);
    line("sinks.alerts_format", &format);
    line("sinks.cases_topic", &c.sinks.cases_topic);
    line("sinks.dead_letter_topic", &c.sinks.dead_letter_topic);
    for (i, n) in c.notify.iter().enumerate() {
        let mut text = format!("type {}, name {:?}", n.sink.as_str(), n.name(i));
        if let Some(min) = n.min_severity {
            let _ = write!(text, ", min_severity {min}");
        }
        if let Some(kinds) = &n.kinds {
            let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            let _ = write!(text, ", kinds {}", kinds.join(" "));
        }
        // The URL is not shown: a Slack webhook's URL is its credential.
        let _ = write!(text, ", max_backlog {}", n.max_backlog);
        line(&format!("notify[{i}]"), &text);
    }
    line("api.listen", &c.api.listen);
    line(
        "api.token",
        &match (&c.api.token, std::env::var_os("LOCKSTEP_API_TOKEN")) {
            (Some(_), _) => "<redacted>",
            (None, Some(_)) => "<redacted> (from LOCKSTEP_API_TOKEN)",
            (None, None) => "(none)",
        },
    );
    line("api.metrics_auth", &c.api.metrics_auth);
    line("api.stall_after", &shown(c.api.stall_after));
    let m = &c.mapping;
    line(
        "mapping",
        &format!(
            "{} aliases, {} rewrites, {} lineage hints",
            m.aliases.len(),
            m.rewrite.len(),
            m.lineage.len()
        ),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_stay_overrides_and_secrets_are_redacted() {
        let c = Config::parse(
            "[sla.service_account]\nmdm = \"off\"\n[kafka]\nbrokers = \"b:9092\"\n[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n\"client.id\" = \"lockstep-1\"\n[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"cloudtrail\"\n[api]\ntoken = \"s3cret\"\n[[notify]]\ntype = \"slack\"\nurl = \"https://hooks.slack.com/services/T0/B0/XYZ\"\nmin_severity = \"high\"\n",
        )
        .unwrap();
        let text = effective(&c);
        assert!(text.contains("  sla.mdm = 4h\n"), "{text}");
        assert!(
            text.contains("  sla.service_account.mdm = off (override for service_account)"),
            "{text}"
        );
        assert!(
            text.contains("kafka.properties.\"client.id\" = lockstep-1"),
            "{text}"
        );
        assert!(
            text.contains("kafka.properties.\"sasl.password\" = <redacted>"),
            "{text}"
        );
        assert!(text.contains("api.token = <redacted>"), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("s3cret"),
            "{text}"
        );
        assert!(text.contains("hygiene.max_age.api_key = 90d"), "{text}");
        assert!(
            text.contains(
                "notify[0] = type slack, name \"slack-0\", min_severity high, max_backlog 10000"
            ) && !text.contains("hooks.slack.com"),
            "{text}"
        );
        assert!(
            text.contains("sources[0] = system iam, topic \"t\", format cloudtrail"),
            "{text}"
        );
        assert!(notes(&c).is_empty());
        let zero =
            Config::parse("[sla]\nvault = \"0s\"\n[hygiene.max_age]\ntoken = \"0s\"\n").unwrap();
        let notes = notes(&zero);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("sla.vault = 0s"), "{notes:?}");
        assert!(
            notes[1].starts_with("hygiene.max_age.token = 0s"),
            "{notes:?}"
        );
    }
}
