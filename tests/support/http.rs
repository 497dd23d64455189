//! The API of a `lockstep run` under test: a config with the API on a port, GETs, and
//! the samples of a `/metrics` page.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{config, Broker};

/// `config`'s file for `broker` with the API on `port` and `edits` made to its text.
pub fn api_config(
    dir: &Path,
    broker: &Broker,
    port: u16,
    extra: &str,
    edits: &[(&str, &str)],
) -> PathBuf {
    let path = config(dir, broker, extra);
    let mut text = std::fs::read_to_string(&path).unwrap().replace(
        "listen = \"off\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    for (from, to) in edits {
        assert!(text.contains(from), "{from} in {text}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// GET `path` of the API on `port`: status and body (None while nothing answers).
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    match agent.get(&format!("http://127.0.0.1:{port}{path}")).call() {
        Ok(r) => Some((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(code, r)) => Some((code, r.into_string().unwrap_or_default())),
        Err(_) => None,
    }
}

/// Polls `path` until `done` accepts its answer, or fails after `timeout` with the log.
pub fn wait_for(
    port: u16,
    path: &str,
    timeout: Duration,
    log: &Path,
    done: impl Fn(u16, &str) -> bool,
) -> String {
    let started = Instant::now();
    let mut last = None;
    loop {
        if let Some((status, body)) = get(port, path) {
            if done(status, &body) {
                return body;
            }
            last = Some((status, body));
        }
        assert!(
            started.elapsed() < timeout,
            "{path} never answered as expected; last {last:?}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The value of the sample `name` (with its labels, as rendered) in a /metrics page.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
