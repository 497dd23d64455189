//! What a Kubernetes liveness probe sees of a running `lockstep run` against a real
//! tansu broker: `/healthz` fails with the reason while the pipeline makes no progress
//! with work waiting (the broker frozen with an alert to send), and recovers with it.

mod support;

use std::time::Duration;

use support::http::*;
use support::*;

#[test]
fn healthz_fails_with_the_reason_while_a_frozen_broker_leaves_an_alert_unsent_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::memory(dir.path());
    broker.create_topics(&INPUTS, 1);
    broker.create_topics(&OUTPUTS, 1);
    let port = free_port();
    // The vault's feed stays silent: 6 s after the start lockstep raises source_silent,
    // an alert to send while the broker is frozen.
    let cfg = api_config(
        dir.path(),
        &broker,
        port,
        "stall_after = \"4s\"\n[correlator]\nallowed_lateness = \"1s\"\nidle_timeout = \"1s\"\n",
        &[(
            "topic = \"lockstep.vault\"\nformat = \"canonical-json\"\n",
            "topic = \"lockstep.vault\"\nformat = \"canonical-json\"\nsilence_alert = \"6s\"\n",
        )],
    );
    let log = dir.path().join("run.log");
    let child = run(&cfg, &dir.path().join("state"), &log);
    wait_for(port, "/readyz", Duration::from_secs(30), &log, |s, _| {
        s == 200
    });
    assert_eq!(
        get(port, "/healthz").map(|a| a.0),
        Some(200),
        "running: healthy"
    );

    broker.freeze();
    let frozen = std::time::Instant::now();
    let why = loop {
        match get(port, "/healthz") {
            Some((503, why)) => break why,
            answer => assert!(
                frozen.elapsed() < Duration::from_secs(30),
                "/healthz still {answer:?} with the broker frozen; /metrics:\n{}",
                get(port, "/metrics").map(|m| m.1).unwrap_or_default()
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(why.contains("no progress for"), "{why}");
    assert!(why.contains("1 outputs unacknowledged"), "{why}");
    assert!(why.contains("api.stall_after = 4s"), "{why}");

    broker.thaw();
    wait_for(port, "/healthz", Duration::from_secs(60), &log, |s, _| {
        s == 200
    });
    let alerts = read_until(
        &broker.brokers(),
        "lockstep.alerts",
        Duration::from_secs(30),
        |r| !r.is_empty(),
    );
    assert!(String::from_utf8_lossy(&alerts[0].1).contains("source_silent"));
    terminate(child, &log);
}
