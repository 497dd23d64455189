//! Criterion benchmark of the adapters: records per second each native format
//! normalises, on the records of its golden samples (tests/fixtures) repeated to about
//! 1,000 records, raw bytes in, canonical events out.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use lockstep::adapter::{Format, Normalizer};

/// A representative sample file of each format (JSON lines, or one record per file).
const SAMPLES: &[(&str, &[&str])] = &[
    (
        "cloudtrail",
        &[
            "aws_cloudtrail/panther_CreateAccessKey.jsonl",
            "aws_cloudtrail/awsdocs_iam_sts_examples.jsonl",
        ],
    ),
    (
        "gcp-audit",
        &[
            "gcp_audit/alertlogic_Disable_Enable_ServiceAccount.jsonl",
            "gcp_audit/panther_CreateServiceAccount_and_Key.jsonl",
        ],
    ),
    (
        "entra-audit",
        &[
            "azure_entra/panther_Add_service_principal_credentials.jsonl",
            "azure_entra/panther_signin_activity_usage.jsonl",
        ],
    ),
    (
        "okta",
        &[
            "okta/panther_system.api_token.create.jsonl",
            "okta/panther_system.api_token.revoke.jsonl",
        ],
    ),
    (
        "vault-audit",
        &["vault_audit/elastic_vault_audit_kv_read_and_denied.jsonl"],
    ),
    ("jamf", &["mdm_jamf/elastic_jamf_snakecase_webhooks.jsonl"]),
    (
        "intune",
        &["mdm_intune/panther_intune_device_compliance_enrollment.jsonl"],
    ),
    (
        "k8s-audit",
        &[
            "kubernetes_audit/falco_create_serviceaccount.json",
            "kubernetes_audit/falco_delete_secret.json",
        ],
    ),
    (
        "github-audit",
        &[
            "github_audit/panther_repo.add_remove_member.jsonl",
            "github_audit/panther_secret_scanning_alert.create.jsonl",
        ],
    ),
    ("ocsf", &["ocsf/lockstep_ocsf_identity_events.jsonl"]),
];

fn records(files: &[&str]) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for file in files {
        let path = [root.join("samples").join(file), root.join(file)]
            .into_iter()
            .find(|p| p.exists())
            .expect("sample exists");
        let text = std::fs::read(path).expect("readable sample");
        if file.ends_with(".jsonl") {
            out.extend(
                text.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        } else {
            out.push(text);
        }
    }
    let n = out.len();
    out.into_iter().cycle().take(1000 / n * n).collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("adapters");
    group.sample_size(20);
    for (format, files) in SAMPLES {
        let normalizer = Normalizer::new(Format::parse(format).unwrap(), None, Default::default());
        let records = records(files);
        group.throughput(Throughput::Elements(records.len() as u64));
        group.bench_function(*format, |b| {
            b.iter(|| {
                records
                    .iter()
                    .filter(|r| normalizer.normalize(r).is_ok())
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
