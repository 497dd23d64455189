//! Entra ID (Azure AD) audit and sign-in logs: the Azure Monitor diagnostic form
//! (`properties.*`) and the Graph `directoryAudit` form.
//!
//! Service principals and applications are named by object id, users by object id;
//! credentials by their `KeyIdentifier` from the `KeyDescription` modified property
//! (`[KeyIdentifier=…,KeyType=Password|AsymmetricX509Cert,…]`), else
//! `<owner>/credential/<description>`, with the principal as parent. "Update application –
//! Certificates and secrets management" (en dash or hyphen) compares the old and new key
//! lists: added keys are issued, removed ones revoked. Sign-ins are `used` of the user or
//! service principal (and of the credential key when named). A result other than success
//! is a failure. Role and group membership changes are counted and skipped.

use serde_json::Value;

use super::fields::{array, at, first_text, id_or_content, text, time};
use super::Emitter;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind};

/// Normalises one audit or sign-in record.
pub fn normalize(r: &Value, out: &mut Emitter) -> Result<(), DecodeError> {
    let p = at(r, "properties").filter(|p| p.is_object()).unwrap_or(r);
    let activity = first_text(p, &["activityDisplayName", "operationName"])
        .or_else(|| text(r, "operationName"))
        .ok_or_else(|| DecodeError::new("missing activityDisplayName or operationName"))?;
    let time = time(p, &["activityDateTime", "createdDateTime"]).or_else(|_| time(r, &["time"]))?;
    let id = first_text(p, &["id"]).unwrap_or_else(|| id_or_content(r, &["id"]));
    let category = first_text(r, &["category"]).unwrap_or_default();
    let actor = first_text(
        p,
        &[
            "initiatedBy.user.userPrincipalName",
            "initiatedBy.app.displayName",
            "initiatedBy.app.servicePrincipalId",
        ],
    );
    let result = first_text(p, &["result"]).unwrap_or_else(|| "success".into());
    let signin =
        category.ends_with("SignInLogs") || activity.eq_ignore_ascii_case("Sign-in activity");
    let failed = if signin {
        at(p, "status.errorCode")
            .and_then(Value::as_i64)
            .is_some_and(|c| c != 0)
    } else {
        !result.eq_ignore_ascii_case("success")
    };
    let targets = if at(p, "targetResources").is_some() {
        array(p, "targetResources")
    } else {
        array(p, "targetResource")
    };
    let typed = |want: &[&str]| {
        targets.iter().find(|t| {
            first_text(t, &["type", "Type"])
                .is_some_and(|ty| want.iter().any(|w| ty.eq_ignore_ascii_case(w)))
        })
    };
    let principal = typed(&["ServicePrincipal", "Application"]);
    let principal_id = principal.and_then(|t| text(t, "id"));
    let user_id = typed(&["User"]).and_then(|t| text(t, "id"));
    let normalized = activity.replace('\u{2013}', "-").to_ascii_lowercase();
    use Action::*;
    use EntityKind as K;
    let mut facts: Vec<(String, EntityKind, Action, Option<String>)> = Vec::new();
    match normalized.as_str() {
        "add service principal" | "add application" => facts.extend(
            principal_id
                .clone()
                .map(|e| (e, K::ServiceAccount, Created, None)),
        ),
        "remove service principal"
        | "delete service principal"
        | "delete application"
        | "hard delete application"
        | "hard delete service principal" => facts.extend(
            principal_id
                .clone()
                .map(|e| (e, K::ServiceAccount, Deleted, None)),
        ),
        "disable service principal" => facts.extend(
            principal_id
                .clone()
                .map(|e| (e, K::ServiceAccount, Disabled, None)),
        ),
        "enable service principal" => facts.extend(
            principal_id
                .clone()
                .map(|e| (e, K::ServiceAccount, Enabled, None)),
        ),
        "add user" => facts.extend(user_id.clone().map(|e| (e, K::User, Created, None))),
        "delete user" | "hard delete user" => {
            facts.extend(user_id.clone().map(|e| (e, K::User, Deleted, None)))
        }
        "disable account" => facts.extend(user_id.clone().map(|e| (e, K::User, Disabled, None))),
        "enable account" => facts.extend(user_id.clone().map(|e| (e, K::User, Enabled, None))),
        "add service principal credentials"
        | "remove service principal credentials"
        | "update application - certificates and secrets management" => {
            if let Some(owner) = &principal_id {
                let (old, new) = key_lists(principal);
                for (key, kind) in &new {
                    if !old.iter().any(|(k, _)| k == key) {
                        facts.push((credential(owner, key), *kind, Issued, Some(owner.clone())));
                    }
                }
                for (key, kind) in &old {
                    if !new.iter().any(|(k, _)| k == key) {
                        facts.push((credential(owner, key), *kind, Revoked, Some(owner.clone())));
                    }
                }
            }
        }
        _ if signin => {
            let who = first_text(p, &["servicePrincipalId", "userId", "userPrincipalName"]);
            let kind = if text(p, "servicePrincipalId").is_some() {
                K::ServiceAccount
            } else {
                K::User
            };
            facts.extend(who.clone().map(|w| (w, kind, Used, None)));
            if let Some(key) = text(p, "servicePrincipalCredentialKeyId") {
                facts.push((key, K::Secret, Used, who));
            }
        }
        _ => {}
    }
    if facts.is_empty() {
        out.skip(activity);
        return Ok(());
    }
    for (n, (entity, kind, action, parent)) in facts.into_iter().enumerate() {
        let event_id = if n == 0 {
            id.clone()
        } else {
            format!("{id}/{n}")
        };
        out.emit(event_id, time, entity, kind, action)
            .parent(parent)
            .actor(actor.clone())
            .failed(failed)
            .attr("entra.activity", Some(activity.clone()))
            .attr(
                "entra.display_name",
                principal.and_then(|t| text(t, "displayName")),
            )
            .attr(
                "ip",
                first_text(r, &["callerIpAddress"]).or_else(|| text(p, "ipAddress")),
            );
    }
    Ok(())
}

fn credential(owner: &str, key: &str) -> String {
    if key.starts_with('[') || key.contains(' ') {
        format!(
            "{owner}/credential/{}",
            key.trim_matches(|c| c == '[' || c == ']' || c == '"')
        )
    } else {
        key.to_owned()
    }
}

/// The keys in the old and new values of the `KeyDescription` property.
/// Credentials by key id, with their kind.
type Keys = Vec<(String, EntityKind)>;

fn key_lists(target: Option<&Value>) -> (Keys, Keys) {
    let Some(prop) = target.and_then(|t| {
        array(t, "modifiedProperties")
            .iter()
            .find(|m| m.get("displayName").and_then(Value::as_str) == Some("KeyDescription"))
    }) else {
        return (Vec::new(), Vec::new());
    };
    let keys = |field: &str| {
        prop.get(field)
            .and_then(Value::as_str)
            .map(parse_keys)
            .unwrap_or_default()
    };
    (keys("oldValue"), keys("newValue"))
}

/// `["[KeyIdentifier=a,KeyType=Password,…]", …]` (a JSON string in the log) → ids and
/// kinds; a description without a `KeyIdentifier` stands for itself.
fn parse_keys(value: &str) -> Keys {
    let items: Vec<String> = match serde_json::from_str::<Value>(value) {
        Ok(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Ok(Value::String(s)) => vec![s],
        _ => vec![value.to_owned()],
    };
    items
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let field = |name: &str| {
                item.trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .find_map(|kv| {
                        kv.trim()
                            .strip_prefix(name)?
                            .strip_prefix('=')
                            .map(str::to_owned)
                    })
            };
            let kind = match field("KeyType").as_deref() {
                Some("AsymmetricX509Cert") => EntityKind::Certificate,
                _ => EntityKind::Secret,
            };
            (field("KeyIdentifier").unwrap_or(item.clone()), kind)
        })
        .collect()
}
