//! GCP Cloud Audit Logs: IAM service accounts and their keys, and the IAM Credentials
//! API (access tokens, ID tokens, JWT and blob signing).
//!
//! A service account is named by its email (`resource.labels.email_id`, else the email or
//! unique id in `resourceName`), a key by its key id, with the account as parent. Minting
//! a token or signing with a service account is `used` of the account; any call
//! authenticated with a service-account key (`authenticationInfo.serviceAccountKeyName`)
//! is also `used` of that key. A non-zero `status.code` or an authorization that was not
//! granted makes the event a failure.

use serde_json::Value;

use super::fields::{array, at, first_text, last_segment, required, str_at, text, time};
use super::Emitter;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind};

/// Normalises one `LogEntry` whose `protoPayload` is an `AuditLog`.
pub fn normalize(entry: &Value, out: &mut Emitter) -> Result<(), DecodeError> {
    let p = at(entry, "protoPayload").ok_or_else(|| DecodeError::new("missing protoPayload"))?;
    let method = required(p, "methodName")?;
    let id = required(entry, "insertId")?;
    let time = time(entry, &["timestamp", "receiveTimestamp"])?;
    let failed = at(p, "status.code")
        .and_then(Value::as_i64)
        .is_some_and(|c| c != 0)
        || array(p, "authorizationInfo")
            .iter()
            .any(|a| a.get("granted").and_then(Value::as_bool) == Some(false));
    let actor = first_text(
        p,
        &[
            "authenticationInfo.principalEmail",
            "authenticationInfo.principalSubject",
        ],
    );
    let account = account(entry, p);
    let short = last_segment(&method)
        .rsplit('.')
        .next()
        .unwrap_or(&method)
        .to_owned();
    use Action::*;
    use EntityKind as K;
    let (entity, kind, action, parent) = match short.as_str() {
        "CreateServiceAccount" => (
            text(p, "response.email").or_else(|| account.clone()),
            K::ServiceAccount,
            Created,
            None,
        ),
        "DeleteServiceAccount" => (account.clone(), K::ServiceAccount, Deleted, None),
        "DisableServiceAccount" => (account.clone(), K::ServiceAccount, Disabled, None),
        "EnableServiceAccount" | "UndeleteServiceAccount" => {
            (account.clone(), K::ServiceAccount, Enabled, None)
        }
        "CreateServiceAccountKey" | "UploadServiceAccountKey" => (
            key_id(p, "response.name"),
            K::ApiKey,
            Issued,
            account.clone(),
        ),
        "DeleteServiceAccountKey" => (key(p), K::ApiKey, Deleted, account.clone()),
        "DisableServiceAccountKey" => (key(p), K::ApiKey, Disabled, account.clone()),
        "EnableServiceAccountKey" => (key(p), K::ApiKey, Enabled, account.clone()),
        "GenerateAccessToken" | "GenerateIdToken" | "SignJwt" | "SignBlob" => {
            (account.clone(), K::ServiceAccount, Used, None)
        }
        _ => (None, K::Other, Used, None),
    };
    let mut emitted = false;
    if let Some(entity) = entity {
        out.emit(id.clone(), time, entity, kind, action)
            .parent(parent)
            .actor(actor.clone())
            .failed(failed)
            .attr("gcp.method", Some(method.clone()))
            .attr("gcp.project", text(entry, "resource.labels.project_id"))
            .attr("ip", text(p, "requestMetadata.callerIp"));
        emitted = true;
    }
    if let Some(key) = key_id(p, "authenticationInfo.serviceAccountKeyName") {
        let owner = text(p, "authenticationInfo.principalEmail");
        let event_id = if emitted { format!("{id}/used") } else { id };
        // Refused authorization still proves the key authenticated; 16 is UNAUTHENTICATED.
        let unauthenticated = at(p, "status.code").and_then(Value::as_i64) == Some(16);
        out.emit(event_id, time, key, K::ApiKey, Used)
            .parent(owner)
            .actor(actor)
            .failed(unauthenticated)
            .attr("gcp.method", Some(method.clone()));
        emitted = true;
    }
    if !emitted {
        out.skip(method);
    }
    Ok(())
}

/// The service account a record is about: its email when known, else its unique id.
fn account(entry: &Value, p: &Value) -> Option<String> {
    if let Some(email) = text(entry, "resource.labels.email_id") {
        return Some(email);
    }
    let name = str_at(p, "resourceName").or_else(|| str_at(p, "request.name"))?;
    let mut parts = name.split('/');
    parts
        .position(|s| s == "serviceAccounts")
        .and_then(|_| parts.next())
        .map(str::to_owned)
}

/// The key a key operation names (`…/keys/<id>` in `resourceName` or `request.name`).
fn key(p: &Value) -> Option<String> {
    key_id(p, "resourceName").or_else(|| key_id(p, "request.name"))
}

fn key_id(p: &Value, path: &str) -> Option<String> {
    let name = str_at(p, path)?;
    let (_, id) = name.rsplit_once("/keys/")?;
    (!id.is_empty()).then(|| id.to_owned())
}
