//! The Kubernetes manifests of deploy/ as a cluster and its reviewers see them: every
//! resource passes the Kubernetes schemas (`kubernetes-validate --strict`), the
//! Prometheus Operator's resources the schemas of its CRDs, the pod the Pod Security
//! Standard "restricted", and the manifests and the Dockerfile a policy scanner
//! (`checkov`). The tools are pinned in scripts/requirements-test.txt and the Makefile;
//! each check is also run on a broken copy, which it must reject.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool installed beside the test Python.
fn tool(name: &str) -> PathBuf {
    python().with_file_name(name)
}

/// The core resources: every manifest but the Prometheus Operator's.
fn core_manifests() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["deploy/k8s", "deploy/k8s-examples"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".yaml")
                && !["servicemonitor.yaml", "prometheusrule.yaml"].contains(&name.as_str())
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn kubernetes_validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(tool("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", "1.30"])
        .args(files)
        .output()
        .expect("kubernetes-validate runs (make test installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && !text.contains("ERROR"), text)
}

#[test]
fn every_manifest_passes_the_kubernetes_schemas() {
    let files = core_manifests();
    assert!(files.len() >= 7, "{files:?}");
    let (ok, text) = kubernetes_validate(&files);
    assert!(ok, "{text}");
    for kind in [
        "statefulset",
        "service",
        "serviceaccount",
        "networkpolicy",
        "poddisruptionbudget",
        "configmap",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}/")),
            "{kind}: {text}"
        );
    }
    // A misspelt field is refused.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("statefulset.yaml");
    let text = std::fs::read_to_string(root().join("deploy/k8s/statefulset.yaml")).unwrap();
    std::fs::write(
        &broken,
        text.replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:"),
    )
    .unwrap();
    let (ok, text) = kubernetes_validate(&[broken]);
    assert!(!ok, "a misspelt field passed: {text}");
}

/// Validates `resources` against the Prometheus Operator's CRD schemas.
fn crd_validate(resources: &[serde_json::Value]) -> (bool, String) {
    let modules = std::env::var("LOCKSTEP_NODE_MODULES").unwrap_or_else(|_| {
        format!(
            "{}/.cache/lockstep-npm/node_modules",
            std::env::var("HOME").unwrap()
        )
    });
    let mut child = Command::new("node")
        .arg(root().join("scripts/validate-crds.mjs"))
        .env("NODE_PATH", modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (make test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(resources).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_service_monitor_and_the_alert_rules_pass_their_crd_schemas() {
    let mut resources = yaml_documents("deploy/k8s-examples/servicemonitor.yaml");
    resources.extend(yaml_documents("deploy/k8s-examples/prometheusrule.yaml"));
    let (ok, text) = crd_validate(&resources);
    assert!(ok, "{text}");
    assert!(
        text.contains("ok ServiceMonitor/lockstep") && text.contains("ok PrometheusRule/lockstep"),
        "{text}"
    );
    let mut broken = resources[1].clone();
    broken["spec"]["groups"][0]["rules"][0]["for"] = serde_json::json!(5);
    let (ok, text) = crd_validate(&[broken]);
    assert!(!ok, "a rule with a numeric `for` passed: {text}");
}

#[test]
fn the_pod_meets_the_restricted_pod_security_standard() {
    let docs = yaml_documents("deploy/k8s/statefulset.yaml");
    let pod = &docs[0]["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["serviceAccountName"], "lockstep");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let writable: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("emptyDir").is_some())
        .filter_map(|v| v["name"].as_str())
        .collect();
    for container in pod["containers"].as_array().unwrap() {
        let sc = &container["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{container}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{container}"
        );
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{container}");
        assert_eq!(sc["runAsNonRoot"], true, "{container}");
        assert_eq!(
            sc["seccompProfile"]["type"], "RuntimeDefault",
            "{container}"
        );
        let mounts = container["volumeMounts"].as_array().unwrap();
        let mounted = |path: &str| {
            mounts
                .iter()
                .find(|m| m["mountPath"] == path)
                .and_then(|m| m["name"].as_str())
        };
        assert_eq!(
            mounted("/var/lib/lockstep"),
            Some("state"),
            "RocksDB writes to the state volume"
        );
        assert!(
            mounted("/tmp").is_some_and(|v| writable.contains(&v)),
            "/tmp is writable"
        );
    }
    let accounts = yaml_documents("deploy/k8s/serviceaccount.yaml");
    assert_eq!(accounts[0]["automountServiceAccountToken"], false);
}

fn checkov(dir: &Path) -> (bool, String) {
    let out = Command::new(tool("checkov"))
        .arg("--directory")
        .arg(dir)
        .args([
            "--framework",
            "kubernetes",
            "dockerfile",
            "--compact",
            "--quiet",
            "--skip-download",
        ])
        // The manifests name no namespace on purpose: `kubectl apply -n NS` places them.
        .args(["--skip-check", "CKV_K8S_21"])
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .expect("checkov runs (make test installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_manifests_and_the_image_pass_the_policy_scan() {
    let (ok, text) = checkov(&root().join("deploy"));
    assert!(ok, "{text}");
    assert!(
        text.contains("kubernetes scan results") && text.contains("dockerfile scan results"),
        "{text}"
    );
    // Without the container's securityContext, the scan fails (checkov skips hidden
    // directories: the copy's has a plain name).
    let dir = tempfile::Builder::new()
        .prefix("checkov")
        .tempdir()
        .unwrap();
    let text = std::fs::read_to_string(root().join("deploy/k8s/statefulset.yaml")).unwrap();
    let start = text.find("          securityContext:\n").unwrap();
    let end = text[start..].find("          readinessProbe:").unwrap() + start;
    std::fs::write(
        dir.path().join("statefulset.yaml"),
        format!("{}{}", &text[..start], &text[end..]),
    )
    .unwrap();
    let (ok, text) = checkov(dir.path());
    assert!(
        !ok && text.contains("CKV_K8S_20"),
        "a container without securityContext passed: {text}"
    );
}

fn hadolint(dockerfile: &Path) -> (bool, String) {
    let out = Command::new(tool("hadolint"))
        .args(["--no-color"])
        .arg(dockerfile)
        .output()
        .expect("hadolint runs (make test installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let (ok, text) = hadolint(&root().join("deploy/Dockerfile"));
    assert!(ok, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("Dockerfile");
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    std::fs::write(
        &broken,
        text.replace("FROM debian:bookworm-slim", "FROM debian:latest"),
    )
    .unwrap();
    let (ok, text) = hadolint(&broken);
    assert!(!ok, "an image FROM a :latest tag passed: {text}");
}

#[test]
fn the_compose_demo_creates_every_topic_its_configuration_reads_and_writes_first() {
    let compose = &yaml_documents("deploy/compose/compose.yaml")[0];
    let services = compose["services"].as_object().unwrap();
    let mut created = std::collections::BTreeSet::new();
    let mut creators = Vec::new();
    for (name, service) in services {
        let command: Vec<&str> = service["command"]
            .as_array()
            .map(|c| c.iter().filter_map(|a| a.as_str()).collect())
            .unwrap_or_default();
        if command.starts_with(&["topic", "create"]) {
            created.insert(command[2].to_owned());
            creators.push(name.clone());
        }
    }
    let config =
        lockstep::config::Config::load(&root().join("deploy/compose/lockstep.toml")).unwrap();
    let mut used: std::collections::BTreeSet<String> =
        config.sources.iter().map(|s| s.topic.clone()).collect();
    let sinks = &config.sinks;
    used.extend([
        sinks.alerts_topic.clone(),
        sinks.cases_topic.clone(),
        sinks.dead_letter_topic.clone(),
    ]);
    assert_eq!(
        created, used,
        "topics created by compose against those lockstep uses"
    );
    let waits = services["lockstep"]["depends_on"].as_object().unwrap();
    for creator in &creators {
        assert_eq!(
            waits[creator]["condition"], "service_completed_successfully",
            "lockstep waits for {creator}"
        );
    }
    assert_eq!(services["lockstep"]["read_only"], true);
    assert_eq!(services["lockstep"]["cap_drop"], serde_json::json!(["ALL"]));
}
