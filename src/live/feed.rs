//! Producing canonical events to the configured source topics (`simulate --live`), so
//! the live pipeline can be exercised, demonstrated and benchmarked. Records are keyed by
//! the lineage root of their entity, as `[kafka] assignment = "group"` without a
//! repartition topic needs (partition p of every topic is state shard p): the feed knows
//! each tree whole, so even events of a tree that gains its parent later go where the
//! tree ends up. [`Keys::Entity`] keys them by entity id instead, as most producers do.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::adapter::Format;
use crate::config::Config;
use crate::decode;
use crate::event::IdentityEvent;
use crate::source::kafka::client_config;

use super::LiveError;

/// Produces `events` in order to the first canonical source topic of each one's system,
/// keyed by lineage root, at `rate` events per second (0: as fast as the broker takes
/// them). Returns the count.
pub fn produce(config: &Config, events: &[IdentityEvent], rate: u64) -> Result<u64, LiveError> {
    produce_keyed(config, events, rate, Keys::Root)
}

/// How the feed keys its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// By the lineage root each entity ends up with: a tree's events share partitions.
    Root,
    /// By the event's own entity, as most producers do (SPEC §7: routed by root with
    /// `[kafka] repartition_topic`).
    Entity,
}

/// [`produce`], with records keyed as `keys` says.
pub fn produce_keyed(
    config: &Config,
    events: &[IdentityEvent],
    rate: u64,
    keys: Keys,
) -> Result<u64, LiveError> {
    let kafka = config.kafka.as_ref().ok_or_else(|| {
        LiveError::Config("simulate --live needs [kafka] brokers in the config".into())
    })?;
    let mut cfg = client_config(kafka);
    cfg.set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000");
    let producer: BaseProducer = cfg.create()?;
    let roots = match keys {
        Keys::Root => roots(events),
        Keys::Entity => HashMap::new(),
    };
    let started = Instant::now();
    let mut sent = 0u64;
    for ev in events {
        let Some(source) = config
            .sources
            .iter()
            .find(|s| s.system == ev.system && s.format.is_canonical())
        else {
            continue;
        };
        let payload = match source.format {
            Format::CanonicalAvro => {
                decode::avro::encode_datum(ev).map_err(|e| LiveError::Config(e.reason))?
            }
            _ => decode::json::encode(ev).into_bytes(),
        };
        // The record timestamp is the event time, as a shipper of audit logs would set
        // it: a replay of a time range seeks by it.
        let mut record = BaseRecord::to(&source.topic)
            .payload(&payload)
            .key(roots.get(ev.entity.as_str()).copied().unwrap_or(&ev.entity))
            .timestamp(ev.time.0.div_euclid(1000));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    tracing::debug!(error = %e, "producer queue full; waiting");
                    producer.poll(Duration::from_millis(5));
                    record = back;
                }
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
        if rate > 0 {
            let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    // As long as librdkafka keeps trying a record (`message.timeout.ms`, 5 minutes by
    // default): a broker that restarts meanwhile still gets the feed.
    producer.flush(Duration::from_secs(300))?;
    Ok(sent)
}

/// The lineage root of every entity with a parent in `events` (the first parent an entity
/// is given is its parent, as in the correlator; a cycle stops where it closes).
fn roots(events: &[IdentityEvent]) -> HashMap<&str, &str> {
    let mut parents: HashMap<&str, &str> = HashMap::new();
    for ev in events {
        if let Some(parent) = ev.parent.as_deref() {
            parents.entry(ev.entity.as_str()).or_insert(parent);
        }
    }
    parents
        .keys()
        .map(|&entity| {
            let mut root = entity;
            let mut steps = 0;
            while let Some(&up) = parents.get(root) {
                root = up;
                steps += 1;
                if up == entity || steps > parents.len() {
                    break;
                }
            }
            (entity, root)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_keyed_by_the_root_their_tree_ends_up_with() {
        let ev = |entity: &str, parent: Option<&str>| {
            let parent = parent.map_or(String::new(), |p| format!(r#","parent":"{p}""#));
            crate::decode::json::decode(format!(r#"{{"event_id":"{entity}","system":"iam","time":"2026-03-02T10:00:00Z","entity":"{entity}","action":"issued"{parent}}}"#).as_bytes()).unwrap()
        };
        // c is issued under b before b gains its parent a.
        let events = [
            ev("c", Some("b")),
            ev("b", None),
            ev("b", Some("a")),
            ev("a", None),
        ];
        let roots = roots(&events);
        assert_eq!(roots.get("c"), Some(&"a"));
        assert_eq!(roots.get("b"), Some(&"a"));
        assert_eq!(roots.get("a"), None, "a root keys by itself");
    }
}
