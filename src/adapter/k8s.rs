//! Kubernetes audit events (`audit.k8s.io/v1` Event), bare or inside an AKS diagnostic
//! record (`properties.log` holds the event as a JSON string).
//!
//! Service accounts are named as Kubernetes names them when they authenticate,
//! `system:serviceaccount:<namespace>:<name>`, so a request made by one is `used` of the
//! same entity. A TokenRequest (`serviceaccounts/token` create) issues a token whose
//! parent is the account; a `kubernetes.io/service-account-token` secret is a token too.
//! Secrets are `secret:<namespace>/<name>`; reading one is `used`. Only the
//! `ResponseComplete` stage counts; a response code of 400 or more is a failure (401
//! also fails the `used`, 403 does not: the caller did authenticate).

use serde_json::Value;

use super::fields::{at, id_or_content, required, str_at, text, time};
use super::Emitter;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind};

const SA_PREFIX: &str = "system:serviceaccount:";

/// Normalises one audit event.
pub fn normalize(r: &Value, out: &mut Emitter) -> Result<(), DecodeError> {
    if let Some(log) = str_at(r, "properties.log") {
        let inner: Value = serde_json::from_str(log)
            .map_err(|e| DecodeError::new(format!("properties.log is not an audit event: {e}")))?;
        return normalize(&inner, out);
    }
    if str_at(r, "kind") == Some("EventList") {
        for item in super::fields::array(r, "items") {
            normalize(item, out)?;
        }
        return Ok(());
    }
    let verb = required(r, "verb")?;
    if let Some(stage) = str_at(r, "stage").filter(|s| *s != "ResponseComplete") {
        out.skip(format!("stage {stage}"));
        return Ok(());
    }
    let id = id_or_content(r, &["auditID"]);
    let time = time(r, &["stageTimestamp", "requestReceivedTimestamp"])?;
    let code = at(r, "responseStatus.code")
        .and_then(Value::as_i64)
        .unwrap_or(200);
    let failed = code >= 400;
    let username = text(r, "user.username");
    let resource = str_at(r, "objectRef.resource").unwrap_or_default();
    let subresource = str_at(r, "objectRef.subresource");
    let namespace = str_at(r, "objectRef.namespace").unwrap_or("default");
    let name = text(r, "objectRef.name");
    use Action::*;
    use EntityKind as K;
    let sa = |n: &str| format!("{SA_PREFIX}{namespace}:{n}");
    let fact = match (resource, subresource, verb.as_str(), name.as_deref()) {
        ("serviceaccounts", None, "create", Some(n)) => {
            Some((sa(n), K::ServiceAccount, Created, None))
        }
        ("serviceaccounts", None, "delete", Some(n)) => {
            Some((sa(n), K::ServiceAccount, Deleted, None))
        }
        ("serviceaccounts", Some("token"), "create", Some(n)) => Some((
            format!("{}/token/{id}", sa(n)),
            K::Token,
            Issued,
            Some(sa(n)),
        )),
        ("secrets", None, verb @ ("create" | "delete" | "get"), Some(n)) => {
            let owner = token_secret_owner(r).map(|o| sa(&o));
            let kind = if owner.is_some() { K::Token } else { K::Secret };
            let action = match verb {
                "create" => Created,
                "delete" => Deleted,
                _ => Used,
            };
            Some((format!("secret:{namespace}/{n}"), kind, action, owner))
        }
        _ => None,
    };
    let mut emitted = false;
    if let Some((entity, kind, action, parent)) = fact {
        out.emit(id.clone(), time, entity, kind, action)
            .parent(parent)
            .actor(username.clone())
            .failed(failed)
            .attr("k8s.verb", Some(verb.clone()))
            .attr("k8s.code", Some(code.to_string()))
            .attr("ip", text(r, "sourceIPs.0"));
        emitted = true;
    }
    if let Some(user) = username.filter(|u| u.starts_with(SA_PREFIX)) {
        let event_id = if emitted { format!("{id}/used") } else { id };
        out.emit(event_id, time, user, K::ServiceAccount, Used)
            .failed(code == 401)
            .attr("k8s.verb", Some(verb.clone()))
            .attr("k8s.resource", Some(resource.to_owned()))
            .attr("ip", text(r, "sourceIPs.0"));
        emitted = true;
    }
    if !emitted {
        out.skip(format!(
            "{verb} {resource}{}",
            subresource.map(|s| format!("/{s}")).unwrap_or_default()
        ));
    }
    Ok(())
}

/// The account a service-account token secret belongs to, from its annotations.
fn token_secret_owner(r: &Value) -> Option<String> {
    ["requestObject", "responseObject"].iter().find_map(|o| {
        let obj = at(r, o)?;
        (str_at(obj, "type") == Some("kubernetes.io/service-account-token"))
            .then(|| {
                at(obj, "metadata.annotations")?
                    .get("kubernetes.io/service-account.name")?
                    .as_str()
                    .map(str::to_owned)
            })
            .flatten()
    })
}
