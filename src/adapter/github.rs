//! GitHub audit log (organization or enterprise; REST API or streaming).
//!
//! Users are named by login; tokens by `token_id` (else `hashed_token`, which GitHub
//! already hashes); SSH and deploy keys by fingerprint or id (else `<repo>/deploy-key`,
//! `<login>/ssh-key` when the record names neither); app installations as
//! `github-app:<org>/<app>`. Organization membership is granted and revoked on the user,
//! repository access on `<login>|<repo>`. Any record authenticated with a token
//! (`programmatic_access_type`) is also `used` of that token. Records carry no event id
//! when not streamed (`_document_id`): the id is then the action, actor, time and subject.

use serde_json::Value;

use super::fields::{first_text, required, text, time};
use super::Emitter;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind};

/// Normalises one audit log entry.
pub fn normalize(r: &Value, out: &mut Emitter) -> Result<(), DecodeError> {
    let action = required(r, "action")?;
    let time = time(r, &["@timestamp", "created_at", "at_sign_timestamp"])?;
    let actor = text(r, "actor");
    let user = text(r, "user").or_else(|| text(r, "data.user"));
    let org = text(r, "org").unwrap_or_default();
    let token = first_text(
        r,
        &[
            "token_id",
            "data.token_id",
            "hashed_token",
            "oauth_access_id",
        ],
    );
    let key = first_text(
        r,
        &[
            "fingerprint",
            "data.fingerprint",
            "key_id",
            "data.key_id",
            "public_key_id",
        ],
    );
    let (category, verb) = action.split_once('.').unwrap_or((action.as_str(), ""));
    use Action::*;
    use EntityKind as K;
    let owner = user.clone().or_else(|| actor.clone());
    let fact = match (category, verb) {
        ("public_key" | "deploy_key", "create" | "delete") => {
            let entity = key.clone().or_else(|| match (category, text(r, "repo")) {
                ("deploy_key", Some(repo)) | ("public_key", Some(repo)) => {
                    Some(format!("{repo}/deploy-key"))
                }
                _ => actor.as_ref().map(|a| format!("{a}/ssh-key")),
            });
            let act = if verb == "create" { Issued } else { Deleted };
            entity.map(|e| (e, K::ApiKey, act, owner.clone()))
        }
        ("personal_access_token", v) => {
            let act = match v {
                "access_granted" | "create" => Some(Granted),
                "access_revoked" | "credential_revoked" | "destroy" => Some(Revoked),
                "credential_regenerated" => Some(Rotated),
                _ => None,
            };
            act.zip(token.clone())
                .map(|(a, t)| (t, K::Token, a, owner.clone()))
        }
        ("oauth_access" | "oauth_authorization", v) => {
            let act = match v {
                "create" => Some(Issued),
                "destroy" | "revoke" => Some(Revoked),
                _ => None,
            };
            act.zip(token.clone())
                .map(|(a, t)| (t, K::Token, a, owner.clone()))
        }
        ("integration_installation", v) => {
            let act = match v {
                "create" => Some(Created),
                "destroy" => Some(Deleted),
                "suspend" => Some(Disabled),
                "unsuspend" => Some(Enabled),
                _ => None,
            };
            let app = first_text(r, &["integration", "name", "data.integration"]);
            act.zip(app).map(|(a, app)| {
                (
                    format!("github-app:{org}/{app}"),
                    K::ServiceAccount,
                    a,
                    None,
                )
            })
        }
        ("org", "add_member" | "remove_member") => {
            let act = if verb == "add_member" {
                Granted
            } else {
                Revoked
            };
            user.clone().map(|u| (u, K::User, act, None))
        }
        ("repo", "add_member" | "remove_member") => {
            let act = if verb == "add_member" {
                Granted
            } else {
                Revoked
            };
            user.clone()
                .zip(text(r, "repo"))
                .map(|(u, repo)| (format!("{u}|{repo}"), K::Other, act, Some(u)))
        }
        _ => None,
    };
    let id = text(r, "_document_id").unwrap_or_else(|| {
        let subject = fact.as_ref().map_or("", |f| f.0.as_str());
        format!(
            "{action}:{}:{}:{subject}",
            actor.as_deref().unwrap_or(""),
            time.0
        )
    });
    let mut emitted = false;
    if let Some((entity, kind, act, parent)) = fact {
        out.emit(id.clone(), time, entity, kind, act)
            .parent(parent)
            .actor(actor.clone())
            .attr("github.action", Some(action.clone()))
            .attr("github.org", text(r, "org"))
            .attr("github.repo", text(r, "repo"))
            .attr("ip", text(r, "actor_ip"));
        emitted = true;
    }
    if let Some(t) = token.filter(|_| text(r, "programmatic_access_type").is_some()) {
        let event_id = if emitted { format!("{id}/used") } else { id };
        out.emit(event_id, time, t, K::Token, Used)
            .parent(actor.clone())
            .actor(actor)
            .attr("github.action", Some(action.clone()))
            .attr("github.access", text(r, "programmatic_access_type"))
            .attr("ip", text(r, "actor_ip"));
        emitted = true;
    }
    if !emitted {
        out.skip(action);
    }
    Ok(())
}
