//! What a Kubernetes liveness probe sees of a running `lockstep run` against a real
//! tansu broker: `/healthz` fails with the reason while the pipeline makes no progress
//! with work waiting (the broker frozen under load), and recovers with it.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use support::http::*;
use support::*;

#[test]
fn healthz_fails_with_the_reason_while_a_frozen_broker_leaves_work_waiting_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 1);
    broker.create_topics(&OUTPUTS, 1);
    let port = free_port();
    // Outputs linger a second in the producer: while records flow, some are always in
    // flight when the broker freezes.
    let cfg = api_config(
        dir.path(),
        &broker,
        port,
        "stall_after = \"4s\"\n[correlator]\nallowed_lateness = \"1s\"\nidle_timeout = \"1s\"\n",
        &[(
            "[kafka.properties]\n",
            "[kafka.properties]\n\"linger.ms\" = \"1000\"\n",
        )],
    );
    let log = dir.path().join("run.log");
    let child = run(&cfg, &dir.path().join("state"), &log);
    wait_for(port, "/healthz", Duration::from_secs(30), &log, |s, _| {
        s == 200
    });

    // A feed of records lockstep cannot decode: each one is a dead letter to send.
    let flowing = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (flowing, brokers) = (flowing.clone(), broker.brokers());
        std::thread::spawn(move || {
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .set("message.timeout.ms", "120000")
                .create()
                .unwrap();
            let mut n = 0u64;
            while flowing.load(Ordering::Relaxed) {
                let payload = format!("{{not json {n}");
                let _ = producer.send(BaseRecord::to("lockstep.iam").key("k").payload(&payload));
                producer.poll(Duration::ZERO);
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            producer.flush(Duration::from_secs(60)).ok();
        })
    };
    wait_for(port, "/metrics", Duration::from_secs(30), &log, |_, m| {
        sample(m, "lockstep_dead_letters_total{topic=\"lockstep.iam\"}").unwrap_or(0.0) >= 200.0
    });
    assert_eq!(
        get(port, "/healthz").map(|a| a.0),
        Some(200),
        "flowing: healthy"
    );

    broker.freeze();
    let why = wait_for(port, "/healthz", Duration::from_secs(30), &log, |s, _| {
        s == 503
    });
    assert!(why.contains("no progress for"), "{why}");
    assert!(why.contains("outputs unacknowledged"), "{why}");
    assert!(why.contains("api.stall_after = 4s"), "{why}");

    broker.thaw();
    wait_for(port, "/healthz", Duration::from_secs(60), &log, |s, _| {
        s == 200
    });
    flowing.store(false, Ordering::Relaxed);
    feeder.join().unwrap();
    terminate(child, &log);
}
