//! deploy/: the compose and Kubernetes configurations pass `lockstep check-config`,
//! every metric the Grafana dashboard queries is one lockstep exports, and the image's
//! toolchain, Cargo.toml's `rust-version` and what Cargo.lock needs agree.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check_config(path: &Path) {
    // The Secret's password, as the pod's environment gives it: characters that broke
    // the old `sed` templating.
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .arg("check-config")
        .arg(path)
        .env("LOCKSTEP_KAFKA_PASSWORD", r#"p&|"$/\w"#)
        .env("LOCKSTEP_API_TOKEN", "t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn deployment_configs_are_valid() {
    check_config(&root().join("deploy/compose/lockstep.toml"));
    check_config(&root().join("deploy/container.toml"));
    check_config_map("deploy/k8s/configmap.yaml", "[[sources]]");
    check_config_map(
        "deploy/k8s-examples/scale-out.yaml",
        "repartition_topic = \"lockstep.repartition\"",
    );
}

/// The lockstep.toml of the ConfigMap in `path` (the indented block after
/// `lockstep.toml: |`) holds `needle` and passes `check-config`.
fn check_config_map(path: &str, needle: &str) {
    let map = std::fs::read_to_string(root().join(path)).unwrap();
    let block: String = map
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("lockstep.toml: |"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l).to_owned() + "\n")
        .collect();
    assert!(block.contains(needle), "{path}: {block}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("configmap.toml");
    std::fs::write(&file, block).unwrap();
    check_config(&file);
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/lockstep.json")).unwrap(),
    )
    .unwrap();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for piece in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if piece.starts_with("lockstep_") {
                    queried.insert(piece.trim_end_matches("_bucket").to_owned());
                }
            }
        }
    }
    let m = lockstep::telemetry::Metrics::new();
    // Labelled families appear once they have a child.
    m.events.with_label_values(&["iam", "t", "success"]).inc();
    m.cases.with_label_values(&["open"]).set(1);
    m.consumer_lag.with_label_values(&["t", "0"]).set(1);
    m.dead_letters.with_label_values(&["t"]).inc();
    m.skipped_records.with_label_values(&["t"]).inc();
    m.alerts.with_label_values(&["echo_missing"]).inc();
    m.echo_latency.with_label_values(&["iam"]).observe(1.0);
    m.assigned_partitions.with_label_values(&["t"]).set(2);
    m.rebalances.with_label_values(&["assigned"]).inc();
    m.tree_moves.with_label_values(&["in"]).inc();
    let exported: BTreeSet<String> = m
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics lockstep does not export: {missing:?}"
    );
    assert!(
        queried.len() >= 12,
        "the dashboard covers the operators' questions: {queried:?}"
    );
}

/// A Rust version as (major, minor): patch releases do not change what builds.
fn minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => panic!("{version:?} is not a Rust version"),
    }
}

/// The oldest Rust every package of Cargo.lock builds with (its highest `rust-version`),
/// and the package that sets it, as `cargo metadata` reads the lock.
fn lock_floor() -> ((u32, u32), String) {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] != "lockstep")
        .filter_map(|p| {
            let needs = minor(p["rust_version"].as_str()?);
            Some((
                needs,
                format!("{} {}", p["name"].as_str()?, p["version"].as_str()?),
            ))
        })
        .max()
        .expect("packages with a rust-version")
}

#[test]
fn the_image_toolchain_and_rust_version_are_what_the_lock_file_needs() {
    let (floor, package) = lock_floor();
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let declared = minor(manifest["package"]["rust-version"].as_str().unwrap());
    assert_eq!(
        declared, floor,
        "Cargo.toml rust-version is {declared:?}; Cargo.lock needs {floor:?} ({package})"
    );
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let image = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FROM "))
        .find_map(|from| from.trim().strip_prefix("rust:"))
        .expect("a build stage FROM rust:<version>-…");
    let tag = image.split_whitespace().next().unwrap();
    let toolchain = minor(tag.split('-').next().unwrap());
    assert_eq!(
        toolchain, floor,
        "deploy/Dockerfile builds with rust:{tag}; Cargo.lock needs {floor:?} ({package}) and Cargo.toml says {declared:?}"
    );
}
