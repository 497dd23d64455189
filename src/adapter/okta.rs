//! Okta System Log events (also a batch in an event hook's `data.events`).
//!
//! Users are named by their Okta id (the login is kept as `okta.login`), API tokens and
//! OAuth tokens by the target's id. An API token acts with its creator's rights, so its
//! parent is the actor that created it; an OAuth token's parent is the client app. Sign-on
//! events are `used` of the user who signed on; token reuse detection is `used` of the
//! token. `outcome.result` other than SUCCESS (or ALLOW) is a failure. Keys are read in
//! Okta's camelCase or in the lower case some log shippers write.

use serde_json::Value;

use super::fields::{array, at, first_text, text, time};
use super::Emitter;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind};

/// Normalises one System Log event, or every event of an event-hook delivery.
pub fn normalize(record: &Value, out: &mut Emitter) -> Result<(), DecodeError> {
    if let Some(events) = at(record, "data.events").and_then(Value::as_array) {
        for ev in events {
            normalize(ev, out)?;
        }
        return Ok(());
    }
    let get = |camel: &str| first_text(record, &[camel, &camel.to_lowercase()]);
    let event_type = get("eventType").ok_or_else(|| DecodeError::new("missing eventType"))?;
    let id = get("uuid").ok_or_else(|| DecodeError::new("missing uuid"))?;
    let time = time(record, &["published"])?;
    let result = text(record, "outcome.result").unwrap_or_else(|| "SUCCESS".into());
    let failed = !matches!(result.as_str(), "SUCCESS" | "ALLOW");
    let actor_id = text(record, "actor.id").filter(|a| a != "unknown");
    let target = |types: &[&str]| {
        array(record, "target").iter().find(|t| {
            t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|ty| types.iter().any(|want| ty.eq_ignore_ascii_case(want)))
        })
    };
    use Action::*;
    use EntityKind as K;
    let user_action = match event_type.as_str() {
        "user.lifecycle.create" => Some(Created),
        "user.lifecycle.activate" | "user.lifecycle.reactivate" | "user.lifecycle.unsuspend" => {
            Some(Enabled)
        }
        "user.lifecycle.deactivate" | "user.lifecycle.suspend" => Some(Disabled),
        "user.lifecycle.delete.initiated" | "user.lifecycle.delete.completed" => Some(Deleted),
        _ => None,
    };
    let token_action = match event_type.as_str() {
        "system.api_token.create" => Some((Issued, K::ApiKey)),
        "system.api_token.enable" => Some((Enabled, K::ApiKey)),
        "system.api_token.revoke" => Some((Revoked, K::ApiKey)),
        t if t.starts_with("app.oauth2.as.token.revoke")
            || t.starts_with("app.oauth2.token.revoke") =>
        {
            Some((Revoked, K::Token))
        }
        t if t.starts_with("app.oauth2.as.token.grant")
            || t.starts_with("app.oauth2.token.grant") =>
        {
            Some((Issued, K::Token))
        }
        t if t.ends_with("token.detect_reuse") => Some((Used, K::Token)),
        _ => None,
    };
    let (entity, kind, action, parent) = if let Some(action) = user_action {
        let user = target(&["User"]);
        (user.and_then(|t| text(t, "id")), K::User, action, None)
    } else if let Some((action, kind)) = token_action {
        let token = target(&["Token", "access_token", "refresh_token", "id_token"]);
        let client = target(&["AppInstance", "PublicClientApp"]);
        let parent = if kind == K::ApiKey {
            actor_id.clone()
        } else {
            client
                .and_then(|c| text(c, "id"))
                .or_else(|| text(record, "client.id"))
        };
        (token.and_then(|t| text(t, "id")), kind, action, parent)
    } else if event_type == "user.session.start" || event_type.starts_with("user.authentication.") {
        (actor_id.clone(), K::User, Used, None)
    } else {
        (None, K::Other, Used, None)
    };
    let Some(entity) = entity else {
        out.skip(event_type);
        return Ok(());
    };
    let login = array(record, "target")
        .iter()
        .find(|t| text(t, "id").as_deref() == Some(entity.as_str()))
        .and_then(|t| text(t, "alternateId"))
        .or_else(|| {
            (action == Used && kind == K::User)
                .then(|| text(record, "actor.alternateId"))
                .flatten()
        })
        .filter(|l| l != "unknown");
    out.emit(id, time, entity, kind, action)
        .parent(parent)
        .actor(text(record, "actor.alternateId").or(actor_id))
        .failed(failed)
        .attr("okta.event", Some(event_type))
        .attr("okta.login", login)
        .attr("ip", text(record, "client.ipAddress"));
    Ok(())
}
