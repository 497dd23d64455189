//! Producing canonical events to the configured source topics (`simulate --live`), so
//! the live pipeline can be exercised, demonstrated and benchmarked.

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::adapter::Format;
use crate::config::Config;
use crate::decode;
use crate::event::IdentityEvent;
use crate::source::kafka::client_config;

use super::LiveError;

/// Produces `events` in order to the first canonical source topic of each one's system, at
/// `rate` events per second (0: as fast as the broker takes them). Returns the count.
pub fn produce(config: &Config, events: &[IdentityEvent], rate: u64) -> Result<u64, LiveError> {
    let kafka = config.kafka.as_ref().ok_or_else(|| {
        LiveError::Config("simulate --live needs [kafka] brokers in the config".into())
    })?;
    let mut cfg = client_config(kafka);
    cfg.set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000");
    let producer: BaseProducer = cfg.create()?;
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
            .key(&ev.entity)
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
    producer.flush(Duration::from_secs(30))?;
    Ok(sent)
}
