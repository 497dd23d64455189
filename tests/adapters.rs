//! Golden tests of the adapters: every sample under tests/fixtures/samples (copied from
//! ../shared/samples with its provenance README) that an adapter covers is read as its
//! format and compared with tests/fixtures/golden/<sample>.expected — one line per outcome:
//! a canonical JSON event, `skipped <record type>`, or `dead <line>: <reason>`. The
//! expected files were checked line by line against the vendors' documentation; a
//! mismatch writes `<sample>.actual` next to the expected file for review.
//!
//! The named tests below pin the lifecycle meaning of the records that matter most,
//! written from the vendor documentation rather than from the output.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lockstep::adapter::{Format, Mapping, Normalizer};
use lockstep::decode;
use lockstep::event::{Action, EntityKind, IdentityEvent, Outcome};
use lockstep::source::file::{self, Record};

/// Every covered sample and the format it is read as.
const GOLDEN: &[(&str, &str)] = &[
    (
        "aws_cloudtrail/awsdocs_CreateUser_AddUserToGroup.jsonl",
        "cloudtrail",
    ),
    (
        "aws_cloudtrail/awsdocs_iam_sts_examples.jsonl",
        "cloudtrail",
    ),
    ("aws_cloudtrail/beats_CreateUser.json", "cloudtrail"),
    ("aws_cloudtrail/beats_DeleteAccessKey.json", "cloudtrail"),
    ("aws_cloudtrail/beats_DeleteUser.json", "cloudtrail"),
    (
        "aws_cloudtrail/beats_UpdateAccessKey_Inactive.json",
        "cloudtrail",
    ),
    ("aws_cloudtrail/panther_AssumeRole.jsonl", "cloudtrail"),
    ("aws_cloudtrail/panther_CreateAccessKey.jsonl", "cloudtrail"),
    ("aws_cloudtrail/panther_CreateUser.jsonl", "cloudtrail"),
    (
        "aws_cloudtrail/panther_GetCallerIdentity.jsonl",
        "cloudtrail",
    ),
    ("aws_cloudtrail/panther_GetSessionToken.jsonl", "cloudtrail"),
    (
        "aws_cloudtrail/panther_PutUserPolicy_AWSCompromisedKeyQuarantine.jsonl",
        "cloudtrail",
    ),
    (
        "aws_cloudtrail/stratus_aws.credential-access.ec2-steal-instance-credentials.json",
        "cloudtrail",
    ),
    (
        "aws_cloudtrail/stratus_aws.initial-access.console-login-without-mfa.json",
        "cloudtrail",
    ),
    (
        "aws_cloudtrail/stratus_aws.persistence.iam-backdoor-user.json",
        "cloudtrail",
    ),
    (
        "aws_cloudtrail/stratus_aws.persistence.iam-create-admin-user.json",
        "cloudtrail",
    ),
    (
        "aws_cloudtrail/stratus_aws.persistence.iam-create-backdoor-role.json",
        "cloudtrail",
    ),
    (
        "aws_cloudtrail/stratus_aws.persistence.iam-create-user-login-profile.json",
        "cloudtrail",
    ),
    (
        "aws_cloudtrail/stratus_aws.persistence.sts-federation-token.json",
        "cloudtrail",
    ),
    (
        "aws_cloudtrail/stratus_aws.privilege-escalation.iam-update-user-login-profile.json",
        "cloudtrail",
    ),
    (
        "azure_entra/msgraphdocs_directoryAudit_get_example.json",
        "entra-audit",
    ),
    (
        "azure_entra/panther_Add_service_principal_credentials.jsonl",
        "entra-audit",
    ),
    (
        "azure_entra/panther_add_member_to_role.jsonl",
        "entra-audit",
    ),
    (
        "azure_entra/panther_signin_activity_usage.jsonl",
        "entra-audit",
    ),
    (
        "gcp_audit/alertlogic_Disable_Enable_ServiceAccount.jsonl",
        "gcp-audit",
    ),
    (
        "gcp_audit/panther_CreateServiceAccount_and_Key.jsonl",
        "gcp-audit",
    ),
    ("gcp_audit/panther_GenerateAccessToken.jsonl", "gcp-audit"),
    ("gcp_audit/panther_SignJwt.jsonl", "gcp-audit"),
    (
        "github_audit/panther_integration_installation.create.jsonl",
        "github-audit",
    ),
    (
        "github_audit/panther_org.add_remove_member.jsonl",
        "github-audit",
    ),
    (
        "github_audit/panther_public_key.create_delete.jsonl",
        "github-audit",
    ),
    (
        "github_audit/panther_repo.add_remove_member.jsonl",
        "github-audit",
    ),
    (
        "github_audit/panther_secret_scanning_alert.create.jsonl",
        "github-audit",
    ),
    ("kubernetes_audit/falco_create_secret.json", "k8s-audit"),
    (
        "kubernetes_audit/falco_create_service_account_token_secret.json",
        "k8s-audit",
    ),
    (
        "kubernetes_audit/falco_create_serviceaccount.json",
        "k8s-audit",
    ),
    ("kubernetes_audit/falco_delete_secret.json", "k8s-audit"),
    (
        "kubernetes_audit/falco_delete_serviceaccount.json",
        "k8s-audit",
    ),
    (
        "kubernetes_audit/panther_secrets_get_list_watch_create.jsonl",
        "k8s-audit",
    ),
    (
        "kubernetes_audit/panther_serviceaccount_token_and_create.jsonl",
        "k8s-audit",
    ),
    (
        "mdm_intune/msgraphdocs_intune_auditEvent_get_schema_example.json",
        "intune",
    ),
    ("mdm_intune/panther_intune_audit_mobileapp.jsonl", "intune"),
    (
        "mdm_intune/panther_intune_device_compliance_enrollment.jsonl",
        "intune",
    ),
    ("mdm_jamf/elastic_jamf_ComputerAdded_native.json", "jamf"),
    ("mdm_jamf/elastic_jamf_snakecase_webhooks.jsonl", "jamf"),
    ("okta/oktadocs_user.lifecycle.deactivate.json", "okta"),
    ("okta/panther_app.oauth2.token.detect_reuse.jsonl", "okta"),
    ("okta/panther_system.api_token.create.jsonl", "okta"),
    ("okta/panther_system.api_token.revoke.jsonl", "okta"),
    ("okta/panther_user.account.privilege.grant.jsonl", "okta"),
    ("okta/panther_user.authentication.sso.jsonl", "okta"),
    ("okta/panther_user.session.start.jsonl", "okta"),
    (
        "vault_audit/elastic_vault_audit_kv_read_and_denied.jsonl",
        "vault-audit",
    ),
    ("ocsf/lockstep_ocsf_identity_events.jsonl", "ocsf"),
];

/// Sample files that are not records of any adapter's format.
const NOT_RECORDS: &[&str] = &[
    "README.md",
    "okta/okta_event_types_catalog_identity_subset.json",
    "ocsf/schema_1.9.0-dev",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn sample_path(sample: &str) -> PathBuf {
    let shared = fixtures().join("samples").join(sample);
    if shared.exists() {
        shared
    } else {
        fixtures().join(sample)
    }
}

fn normalizer(format: &str) -> Normalizer {
    Normalizer::new(
        Format::parse(format).unwrap(),
        None,
        Arc::new(Mapping::default()),
    )
}

fn records(sample: &str, format: &str) -> Vec<Record> {
    let mut out = Vec::new();
    file::read(
        &sample_path(sample),
        &normalizer(format),
        |r| out.push(r),
        |_| {},
    )
    .unwrap();
    out
}

fn events(sample: &str, format: &str) -> Vec<IdentityEvent> {
    records(sample, format)
        .into_iter()
        .filter_map(|r| match r {
            Record::Event(ev) => Some(ev),
            _ => None,
        })
        .collect()
}

fn render(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records {
        match r {
            Record::Event(ev) => out.push_str(&decode::json::encode(ev)),
            Record::Skipped(what) => out.push_str(&format!("skipped {what}")),
            Record::Dead(d) => out.push_str(&format!("dead {}: {}", d.line, d.reason)),
        }
        out.push('\n');
    }
    out
}

#[test]
fn every_sample_matches_its_golden_file() {
    let mut failures = Vec::new();
    for (sample, format) in GOLDEN {
        let got = render(&records(sample, format));
        let expected = fixtures().join("golden").join(format!("{sample}.expected"));
        let want = std::fs::read_to_string(&expected).unwrap_or_default();
        if got != want {
            let actual = expected.with_extension("actual");
            std::fs::create_dir_all(actual.parent().unwrap()).unwrap();
            std::fs::write(&actual, &got).unwrap();
            failures.push(format!("{sample} ({format}): see {}", actual.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_shared_sample_file_is_a_golden_test() {
    let root = fixtures().join("samples");
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        let entries: Vec<PathBuf> = if dir.is_dir() {
            std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        } else {
            vec![dir]
        };
        for path in entries {
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(
                GOLDEN.iter().any(|(s, _)| *s == rel) || NOT_RECORDS.contains(&rel.as_str()),
                "{rel} is neither a golden test nor listed as not records"
            );
        }
    }
}

fn one<'a>(events: &'a [IdentityEvent], entity: &str, action: Action) -> &'a IdentityEvent {
    events
        .iter()
        .find(|e| e.entity == entity && e.action == action)
        .unwrap_or_else(|| panic!("no {action} of {entity} in {events:#?}"))
}

#[test]
fn cloudtrail_offboarding_calls_mean_what_aws_documents() {
    // DeleteUser: requestParameters.userName is the deleted user (IAM API reference).
    let evs = events("aws_cloudtrail/beats_DeleteUser.json", "cloudtrail");
    let del = one(&evs, "arn:aws:iam::123456789012:user/Bob", Action::Deleted);
    assert_eq!(del.entity_kind, EntityKind::User);
    assert_eq!(del.time.to_string(), "2020-01-03T15:50:52.000000Z");
    // UpdateAccessKey with status Inactive disables the key; the key belongs to userName.
    let evs = events(
        "aws_cloudtrail/beats_UpdateAccessKey_Inactive.json",
        "cloudtrail",
    );
    let dis = one(&evs, "EXAMPLE_KEY_ID", Action::Disabled);
    // (this Beats fixture writes a 13-digit account id)
    assert_eq!(
        dis.parent.as_deref(),
        Some("arn:aws:iam::0123456789012:user/Bob")
    );
    // CreateAccessKey: the new key is responseElements.accessKey.accessKeyId, for userName.
    let evs = events(
        "aws_cloudtrail/stratus_aws.persistence.iam-backdoor-user.json",
        "cloudtrail",
    );
    let key = one(&evs, "AKIAL80DWDVKKM0UXEER", Action::Issued);
    assert_eq!(key.entity_kind, EntityKind::ApiKey);
    assert!(key
        .parent
        .as_deref()
        .unwrap()
        .ends_with(":user/stratus-red-team-backdoor-u-user"));
    // A call signed by an access key is a use of that key (userIdentity.accessKeyId).
    assert_eq!(
        one(&evs, "AKIA30BEZSJBVKOFKZW0", Action::Used).outcome,
        Outcome::Success
    );
    // errorCode means the call did not take effect.
    let evs = events(
        "aws_cloudtrail/stratus_aws.persistence.iam-create-user-login-profile.json",
        "cloudtrail",
    );
    let del = one(
        &evs,
        "arn:aws:iam::070411556318:user/stratus-red-team-login-profile-user/login-profile",
        Action::Deleted,
    );
    assert_eq!(del.outcome, Outcome::Failure);
    // GetFederationToken issues ASIA credentials that the next call is signed with.
    let evs = events(
        "aws_cloudtrail/stratus_aws.persistence.sts-federation-token.json",
        "cloudtrail",
    );
    one(&evs, "ASIASTJKC5GCM7ZE6LUP", Action::Issued);
    assert_eq!(
        one(&evs, "ASIASTJKC5GCM7ZE6LUP", Action::Used).entity_kind,
        EntityKind::Token
    );
}

#[test]
fn gcp_disable_then_enable_of_one_service_account() {
    let evs = events(
        "gcp_audit/alertlogic_Disable_Enable_ServiceAccount.jsonl",
        "gcp-audit",
    );
    let sa = "im-service-account-private@imran-49253.iam.gserviceaccount.com";
    let actions: Vec<(Action, &str)> = evs.iter().map(|e| (e.action, e.entity.as_str())).collect();
    assert_eq!(actions, [(Action::Disabled, sa), (Action::Enabled, sa)]);
    assert_eq!(
        evs[0].time.to_string(),
        "2024-04-02T08:17:37.433885Z",
        "ns truncated to µs"
    );
}

#[test]
fn okta_deactivate_disables_the_target_user() {
    let evs = events("okta/oktadocs_user.lifecycle.deactivate.json", "okta");
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].action, Action::Disabled);
    assert_eq!(evs[0].entity_kind, EntityKind::User);
    assert_eq!(evs[0].actor.as_deref(), Some("okta.trainer@okta.com"));
    let evs = events("okta/panther_system.api_token.revoke.jsonl", "okta");
    assert_eq!(
        (evs[0].entity.as_str(), evs[0].action),
        ("00Tpki36zlWjhjQ1u2p4", Action::Revoked)
    );
}

#[test]
fn kubernetes_service_account_delete_and_jamf_unenrol() {
    let evs = events(
        "kubernetes_audit/falco_delete_serviceaccount.json",
        "k8s-audit",
    );
    one(
        &evs,
        "system:serviceaccount:default:myacct",
        Action::Deleted,
    );
    let evs = events("mdm_jamf/elastic_jamf_snakecase_webhooks.jsonl", "jamf");
    let un = one(&evs, "1763596", Action::Unenrolled);
    assert_eq!(un.entity_kind, EntityKind::Device);
    assert_eq!(
        un.time.to_string(),
        "2024-09-04T09:57:52.001000Z",
        "epoch ms"
    );
}

#[test]
fn vault_pairs_request_and_response_and_copies_no_secret() {
    let recs = records(
        "vault_audit/elastic_vault_audit_kv_read_and_denied.jsonl",
        "vault-audit",
    );
    let skipped = recs
        .iter()
        .filter(|r| matches!(r, Record::Skipped(_)))
        .count();
    assert_eq!(skipped, 2, "request entries are read from their responses");
    let text = render(&recs);
    assert!(
        !text.contains("hmac-sha256:95b624915ff8dd55"),
        "client tokens are never copied"
    );
}

/// The offboarding story of tests/fixtures/scenario, replayed by the binary from three
/// native formats: CloudTrail creates ci-deployer and its key, the CI vault stores the key
/// at secret/ci/aws/<key> (a lineage hint makes the secret the key's child), CloudTrail
/// deletes the user at 10:00 but never the key, the SIEM reports the deletion at 10:05,
/// the key signs a call at 10:20, and the vault secret is deleted only at 10:45.
///
/// SPEC §4, by hand: DeleteUser opens case (root user, 10:00:00, iam); the key and the
/// secret descend from the user. At 10:15 (iam, 15m) the key is still ACTIVE in iam →
/// echo_missing iam [key]; at 10:15 (vault, 15m) the secret is ACTIVE in vault →
/// echo_missing vault [secret]. The call at 10:20 is a success `used` of the key, covered
/// by the user's case, later than 10:00 + 60s → revoked_entity_used (iam, root user). The
/// vault delete at 10:45 leaves the missing set non-ACTIVE → echo_late vault, 45 min. At
/// 11:00 (siem, 1h) the root is REVOKED in the SIEM → nothing.
#[test]
fn a_multi_format_offboarding_story_raises_the_alerts_spec_prescribes() {
    let dir = fixtures().join("scenario");
    let input = |format: &str, file: &str| format!("{format}={}", dir.join(file).display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["replay", "--config"])
        .arg(dir.join("lockstep.toml"))
        .args(["--as-of", "2026-03-02T12:00:00Z"])
        .args(["--input", &input("cloudtrail", "cloudtrail.jsonl")])
        .args(["--input", &input("vault-audit", "vault_audit.log")])
        .args(["--input", &input("ocsf", "siem_ocsf.jsonl")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let user = "arn:aws:iam::111122223333:user/ci-deployer";
    let key = "AKIACIDEPLOYEREXAMPLE";
    let secret = "secret/ci/aws/AKIACIDEPLOYEREXAMPLE";
    let got: Vec<(String, String, String, String, String)> = alerts
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            let who = a["entities"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .map(|x| x.as_str().unwrap())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| s("entity"));
            (s("kind"), s("system"), s("root"), who, s("at"))
        })
        .collect();
    let row = |k: &str, s: &str, w: &str, at: &str| {
        (
            k.to_owned(),
            s.to_owned(),
            user.to_owned(),
            w.to_owned(),
            at.to_owned(),
        )
    };
    assert_eq!(
        got,
        [
            row("echo_missing", "iam", key, "2026-03-02T10:15:00.000000Z"),
            row(
                "echo_missing",
                "vault",
                secret,
                "2026-03-02T10:15:00.000000Z"
            ),
            row(
                "revoked_entity_used",
                "iam",
                key,
                "2026-03-02T10:20:00.000000Z"
            ),
            row("echo_late", "vault", secret, "2026-03-02T10:45:00.003000Z"),
        ],
        "{alerts:#?}"
    );
    let late = alerts.iter().find(|a| a["kind"] == "echo_late").unwrap();
    assert_eq!(late["latency_ms"], 2_700_003);
}

mod robustness {
    //! Truncated and mutated samples: every adapter returns events, a skip or a dead
    //! letter with a reason — never a panic, never an event that breaks the canonical
    //! invariants.
    use super::*;
    use proptest::prelude::*;

    fn raw_records() -> &'static [(Vec<u8>, &'static str)] {
        static RECORDS: std::sync::OnceLock<Vec<(Vec<u8>, &'static str)>> =
            std::sync::OnceLock::new();
        RECORDS.get_or_init(|| {
            GOLDEN
                .iter()
                .flat_map(|(sample, format)| {
                    let text = std::fs::read(sample_path(sample)).unwrap();
                    let lines: Vec<Vec<u8>> = if text.trim_ascii_start().starts_with(b"[")
                        || !sample.ends_with(".jsonl")
                    {
                        vec![text]
                    } else {
                        text.split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .map(<[u8]>::to_vec)
                            .collect()
                    };
                    lines.into_iter().map(move |l| (l, *format))
                })
                .collect()
        })
    }

    fn check(raw: &[u8], format: &str) {
        if let Ok(lockstep::adapter::Normalized::Events(events)) = normalizer(format).normalize(raw)
        {
            for ev in events {
                ev.validate().unwrap();
                assert_ne!(ev.parent.as_deref(), Some(ev.entity.as_str()));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn truncated_records_never_panic(pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
            let records = raw_records();
            let (raw, format) = &records[pick.index(records.len())];
            check(&raw[..cut.index(raw.len() + 1)], format);
        }

        #[test]
        fn mutated_records_never_panic(
            pick in any::<prop::sample::Index>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let records = raw_records();
            let (raw, format) = &records[pick.index(records.len())];
            let mut raw = raw.clone();
            for (at, byte) in edits {
                let i = at.index(raw.len());
                raw[i] = byte;
            }
            check(&raw, format);
        }

        #[test]
        fn values_of_the_wrong_type_never_panic(
            pick in any::<prop::sample::Index>(),
            field in any::<prop::sample::Index>(),
            replacement in prop_oneof![
                Just(serde_json::Value::Null),
                Just(serde_json::json!(-1)),
                Just(serde_json::json!(1e308)),
                Just(serde_json::json!([])),
                Just(serde_json::json!({})),
                Just(serde_json::json!("")),
                Just(serde_json::json!(true)),
            ],
        ) {
            let records = raw_records();
            let (raw, format) = &records[pick.index(records.len())];
            let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(raw) else { return Ok(()); };
            let mut paths = Vec::new();
            collect_paths(&value, String::new(), &mut paths);
            if paths.is_empty() { return Ok(()); }
            let path = &paths[field.index(paths.len())];
            if let Some(slot) = value.pointer_mut(path) { *slot = replacement; }
            check(&serde_json::to_vec(&value).unwrap(), format);
        }
    }

    fn collect_paths(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, child) in m {
                    let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.push(p.clone());
                    collect_paths(child, p, out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    let p = format!("{at}/{i}");
                    out.push(p.clone());
                    collect_paths(child, p, out);
                }
            }
            _ => {}
        }
    }
}
