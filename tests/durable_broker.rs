//! The broker under the chaos run: does the durable (sqlite) tansu keep what it
//! acknowledged across `kill -9` restarts? 60,000 records produced at 300/s (acks=all,
//! librdkafka's default) while the broker is killed and started again three times; then
//! every acknowledged (partition, offset) must be read back holding the record it was
//! acknowledged for. It measures the broker, not lockstep (so it is not in `make test`):
//!
//! ```sh
//! cargo test --release --locked --test durable_broker -- --ignored --nocapture
//! ```

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use support::*;

/// Delivery reports: every acknowledged (partition, offset) with its record, and the
/// count of failed deliveries.
#[derive(Default)]
struct Acks(Arc<Mutex<Acked>>);

/// The acknowledged records by (partition, offset), and the failed deliveries.
type Acked = (BTreeMap<(i32, i64), Vec<u8>>, u64);
impl ClientContext for Acks {}
impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        let mut g = self.0.lock().unwrap();
        match r {
            Ok(m) => {
                if let Some(old) =
                    g.0.insert((m.partition(), m.offset()), m.payload().unwrap().to_vec())
                {
                    eprintln!(
                        "offset acked twice: {} {} {:?}",
                        m.partition(),
                        m.offset(),
                        String::from_utf8_lossy(&old)
                    );
                }
            }
            Err(_) => g.1 += 1,
        }
    }
}

#[test]
#[ignore = "measures the broker (3.5 min), not lockstep"]
fn the_durable_broker_keeps_what_it_acknowledged_across_kill_9_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::durable(dir.path());
    broker.create_topics(&["t"], 3);
    let acks = Arc::new(Mutex::new((BTreeMap::new(), 0)));
    let producer: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("linger.ms", "20")
        .create_with_context(Acks(acks.clone()))
        .unwrap();
    let n = 60_000u64;
    let feeder = std::thread::spawn(move || {
        let started = Instant::now();
        for i in 0..n {
            let payload = format!("record-{i}");
            let key = format!("k{}", i % 97);
            let mut rec = BaseRecord::to("t").payload(&payload).key(&key);
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        rec = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            let due = started + Duration::from_secs_f64(i as f64 / 300.0);
            if let Some(w) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
        }
        producer.flush(Duration::from_secs(300)).unwrap();
    });
    for k in 0..3 {
        std::thread::sleep(Duration::from_secs(15));
        let before = high_watermarks(&broker.brokers());
        eprintln!("restart {k}: highs before {before:?}");
        broker.restart();
        let after = high_watermarks(&broker.brokers());
        eprintln!("restart {k}: highs after {after:?}");
    }
    feeder.join().unwrap();
    let (acked, failed) = {
        let g = acks.lock().unwrap();
        (g.0.clone(), g.1)
    };
    eprintln!("acked {} failed {}", acked.len(), failed);
    // read everything back
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("group.id", "check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("t", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut read: BTreeMap<(i32, i64), Vec<u8>> = BTreeMap::new();
    let started = Instant::now();
    let mut quiet = Instant::now();
    while started.elapsed() < Duration::from_secs(120) && quiet.elapsed() < Duration::from_secs(10)
    {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            read.insert((m.partition(), m.offset()), m.payload().unwrap().to_vec());
            quiet = Instant::now();
        }
    }
    eprintln!(
        "read {}; highs {:?}",
        read.len(),
        high_watermarks(&broker.brokers())
    );
    let missing: Vec<_> = acked
        .iter()
        .filter(|(k, _)| !read.contains_key(k))
        .collect();
    let changed: Vec<_> = acked
        .iter()
        .filter(|(k, v)| read.get(k).is_some_and(|r| r != *v))
        .collect();
    let payloads: std::collections::BTreeSet<&Vec<u8>> = read.values().collect();
    let lost: Vec<_> = acked.values().filter(|v| !payloads.contains(v)).collect();
    eprintln!(
        "acked offsets not read back: {}, acked offsets now holding another record: {}, acked records nowhere in the topic: {}",
        missing.len(),
        changed.len(),
        lost.len()
    );
    assert_eq!(failed, 0, "deliveries failed");
    for (k, v) in changed.iter().take(5) {
        eprintln!(
            "  changed {k:?}: acked {:?} now {:?}",
            String::from_utf8_lossy(v),
            String::from_utf8_lossy(&read[k])
        );
    }
    for v in lost.iter().take(5) {
        eprintln!("  lost {:?}", String::from_utf8_lossy(v));
    }
    assert!(
        missing.is_empty() && changed.is_empty() && lost.is_empty(),
        "the broker lost acknowledged records"
    );
}

/// The low and high watermarks of the three partitions of `t`.
fn high_watermarks(brokers: &str) -> Vec<(i64, i64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    (0..3)
        .map(|p| {
            c.fetch_watermarks("t", p, Duration::from_secs(10))
                .unwrap_or((-1, -1))
        })
        .collect()
}
