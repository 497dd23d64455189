//! HashiCorp Vault audit device entries (file or socket device, JSON).
//!
//! Vault writes a `request` entry and a `response` entry per request, with the same
//! `request.id`; the response repeats the whole request, so the pair is read from the
//! response and the request entry is counted as skipped — one event per pair, keyed by
//! `request.id`. Tokens are named by their accessor, leases by lease id, KV secrets by
//! their logical path (`<mount>/<path>`, KV v2's `data/`, `metadata/`, `delete/` and
//! `destroy/` segments folded), certificates by serial number. HMAC'd values are opaque
//! ids; a token that is not HMAC'd (`log_raw`) is never copied. Every authenticated
//! request is also `used` of the calling token.

use serde_json::Value;

use super::fields::{at, required, str_at, text, time};
use super::Emitter;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind};

/// One event of a request/response pair, before it is emitted.
struct Fact {
    entity: String,
    kind: EntityKind,
    action: Action,
    parent: Option<String>,
}

/// Normalises one audit entry (only `response` entries yield events).
pub fn normalize(entry: &Value, out: &mut Emitter) -> Result<(), DecodeError> {
    let entry_type = required(entry, "type")?;
    let id = required(entry, "request.id")?;
    let time = time(entry, &["time"])?;
    if entry_type != "response" {
        out.skip(format!("{entry_type} (read from its response)"));
        return Ok(());
    }
    let path = required(entry, "request.path")?;
    let op = required(entry, "request.operation")?;
    let failed = str_at(entry, "error").is_some();
    let caller = text(entry, "auth.accessor");
    let facts = facts(entry, &path, &op, caller.as_deref());
    let actor = text(entry, "auth.display_name").or_else(|| text(entry, "auth.entity_id"));
    let mut emitted = 0;
    for fact in facts {
        let event_id = if emitted == 0 {
            id.clone()
        } else {
            format!("{id}/{emitted}")
        };
        out.emit(event_id, time, fact.entity, fact.kind, fact.action)
            .parent(fact.parent)
            .actor(actor.clone())
            .failed(failed)
            .attr("vault.path", Some(path.clone()))
            .attr("vault.operation", Some(op.clone()))
            .attr("ip", text(entry, "request.remote_address"));
        emitted += 1;
    }
    // The audit device resolves the caller's accessor only for a live token, so its use
    // is a success even when the request itself was refused.
    if let Some(token) = caller.filter(|_| !path.starts_with("auth/token/revoke-self")) {
        let event_id = if emitted == 0 {
            id
        } else {
            format!("{id}/token")
        };
        out.emit(event_id, time, token, EntityKind::Token, Action::Used)
            .actor(actor)
            .attr("vault.path", Some(path));
        emitted += 1;
    }
    if emitted == 0 {
        out.skip(format!("{op} {}", mount_type(entry)));
    }
    Ok(())
}

fn mount_type(entry: &Value) -> String {
    text(entry, "request.mount_type").unwrap_or_else(|| "unknown mount".into())
}

/// The lifecycle facts of one request/response pair.
fn facts(entry: &Value, path: &str, op: &str, caller: Option<&str>) -> Vec<Fact> {
    use Action::*;
    use EntityKind as K;
    let fact = |entity: String, kind, action, parent: Option<&str>| Fact {
        entity,
        kind,
        action,
        parent: parent.map(str::to_owned),
    };
    let opaque = |p: &str| text(entry, p).filter(|v| v.starts_with("hmac-"));
    let mut facts = Vec::new();
    if let Some(lease) = text(entry, "response.secret.lease_id") {
        facts.push(fact(lease, K::Secret, Issued, caller));
    }
    if let Some(token) = text(entry, "response.auth.accessor") {
        if path.starts_with("auth/token/create") {
            let orphan = path.starts_with("auth/token/create-orphan");
            facts.push(fact(
                token,
                K::Token,
                Issued,
                if orphan { None } else { caller },
            ));
        } else {
            let principal = text(entry, "response.auth.entity_id")
                .or_else(|| text(entry, "response.auth.display_name"));
            if let Some(p) = &principal {
                facts.push(fact(p.clone(), K::ServiceAccount, Used, None));
            }
            facts.push(fact(token, K::Token, Issued, principal.as_deref()));
        }
        return facts;
    }
    let rest = |prefix: &str| path.strip_prefix(prefix).filter(|r| !r.is_empty());
    match path {
        "auth/token/revoke-accessor" => facts
            .extend(text(entry, "request.data.accessor").map(|a| fact(a, K::Token, Revoked, None))),
        "auth/token/revoke" | "auth/token/revoke-orphan" => {
            facts.extend(opaque("request.data.token").map(|t| fact(t, K::Token, Revoked, None)))
        }
        "auth/token/revoke-self" => {
            facts.extend(caller.map(|c| fact(c.to_owned(), K::Token, Revoked, None)))
        }
        _ if path.starts_with("sys/leases/revoke") || path.starts_with("sys/revoke") => {
            let lease = text(entry, "request.data.lease_id").or_else(|| {
                [
                    "sys/leases/revoke-prefix/",
                    "sys/leases/revoke-force/",
                    "sys/leases/revoke/",
                    "sys/revoke-prefix/",
                    "sys/revoke/",
                ]
                .iter()
                .find_map(|p| rest(p))
                .map(str::to_owned)
            });
            facts.extend(lease.map(|l| fact(l, K::Secret, Revoked, None)));
        }
        _ => match text(entry, "request.mount_type").as_deref() {
            Some("kv") => facts.extend(kv(path, op).map(|(p, a)| fact(p, K::Secret, a, None))),
            Some("pki") => facts.extend(pki(entry, path, caller)),
            _ => {}
        },
    }
    facts
}

/// A KV operation: the secret's logical path and what happened to it.
fn kv(path: &str, op: &str) -> Option<(String, Action)> {
    let mut parts = path.splitn(3, '/');
    let mount = parts.next()?;
    let (segment, rest) = match (parts.next(), parts.next()) {
        (Some(s @ ("data" | "metadata" | "delete" | "destroy" | "undelete")), Some(rest)) => {
            (Some(s), rest.to_owned())
        }
        (Some(first), Some(rest)) => (None, format!("{first}/{rest}")),
        (Some(first), None) => (None, first.to_owned()),
        _ => return None,
    };
    let action = match (segment, op) {
        (Some("undelete"), _) => Action::Enabled,
        (Some("delete" | "destroy"), _) | (_, "delete") => Action::Deleted,
        (Some("metadata"), _) => return None,
        (_, "create" | "update") => Action::Created,
        (_, "read") => Action::Used,
        _ => return None,
    };
    Some((format!("{mount}/{rest}"), action))
}

/// PKI certificate issue and revoke.
fn pki(entry: &Value, path: &str, caller: Option<&str>) -> Option<Fact> {
    let issue = path.contains("/issue/") || path.contains("/sign/");
    let (entity, action) = if issue {
        let serial = text(entry, "response.data.serial_number");
        (serial.unwrap_or_else(|| path.to_owned()), Action::Issued)
    } else if path.ends_with("/revoke") {
        (text(entry, "request.data.serial_number")?, Action::Revoked)
    } else {
        return None;
    };
    let parent = at(entry, "response.data.serial_number").and(caller.map(str::to_owned));
    Some(Fact {
        entity,
        kind: EntityKind::Certificate,
        action,
        parent,
    })
}
