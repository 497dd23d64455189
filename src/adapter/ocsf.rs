//! OCSF events in: Account Change (3001), Authentication (3002), Entity Management (3004)
//! and API Activity (6003). The class is `class_uid` (or `type_uid` / 100), the verb
//! `activity_id`; `status_id` 2 (Failure) makes the event a failure; `time` is epoch
//! milliseconds and `metadata.uid` the event id.
//!
//! 3001: the account (`user.uid`, else `user.name`) is created, enabled, disabled, deleted;
//! a password change or reset rotates its credential; an attached or detached policy is a
//! grant `<user>|<policy>`. 3002: a logon is `used` of the user. 3004: the managed entity
//! is created, deleted, enrolled, unenrolled, enabled or disabled. 6003: the call is `used`
//! of the credential that made it (`actor.user.credential_uid`, else the user).

use serde_json::Value;

use super::fields::{at, first_text, text, time};
use super::Emitter;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind};

/// Normalises one OCSF event.
pub fn normalize(r: &Value, out: &mut Emitter) -> Result<(), DecodeError> {
    let int = |p: &str| at(r, p).and_then(Value::as_i64);
    let class = int("class_uid")
        .or_else(|| int("type_uid").map(|t| t / 100))
        .ok_or_else(|| DecodeError::new("missing class_uid"))?;
    let activity = int("activity_id")
        .or_else(|| int("type_uid").map(|t| t % 100))
        .ok_or_else(|| DecodeError::new("missing activity_id"))?;
    let id = first_text(r, &["metadata.uid", "uid"])
        .ok_or_else(|| DecodeError::new("missing metadata.uid"))?;
    let time = time(r, &["time", "time_dt"])?;
    let failed = int("status_id") == Some(2);
    let user = first_text(r, &["user.uid", "user.name"]);
    let user_kind = match int("user.type_id") {
        Some(3) => EntityKind::ServiceAccount,
        _ => EntityKind::User,
    };
    use Action::*;
    let fact = match (class, activity) {
        (3001, a) => {
            let action = match a {
                1 => Some(Created),
                2 => Some(Enabled),
                3 | 4 => Some(Rotated),
                5 => Some(Disabled),
                6 => Some(Deleted),
                7 => Some(Granted),
                8 => Some(Revoked),
                _ => None,
            };
            match action {
                Some(Granted | Revoked) => {
                    let policy = first_text(r, &["policy.uid", "policy.name"]);
                    user.clone()
                        .zip(policy)
                        .zip(action)
                        .map(|((u, p), act)| (format!("{u}|{p}"), EntityKind::Other, act, Some(u)))
                }
                Some(act) => user.clone().map(|u| (u, user_kind, act, None)),
                None => None,
            }
        }
        (3002, 1) => user.clone().map(|u| (u, user_kind, Used, None)),
        (3004, a) => {
            let action = match a {
                1 => Some(Created),
                4 => Some(Deleted),
                6 => Some(Enrolled),
                7 => Some(Unenrolled),
                8 | 10 | 13 => Some(Enabled),
                9 | 11 | 12 => Some(Disabled),
                _ => None,
            };
            let entity = ["entity", "managed_entity"].iter().find_map(|o| {
                first_text(r, &[&format!("{o}.uid"), &format!("{o}.name")]).map(|e| (e, *o))
            });
            action.zip(entity).map(|(act, (e, obj))| {
                let kind = match text(r, &format!("{obj}.type"))
                    .map(|t| t.to_ascii_lowercase())
                    .as_deref()
                {
                    Some("device") => EntityKind::Device,
                    Some("user") => EntityKind::User,
                    Some("service account" | "service_account") => EntityKind::ServiceAccount,
                    _ => EntityKind::Other,
                };
                (e, kind, act, None)
            })
        }
        (6003, _) => {
            let credential = text(r, "actor.user.credential_uid");
            let owner = first_text(r, &["actor.user.uid", "actor.user.name"]);
            match credential {
                Some(c) => Some((c, EntityKind::ApiKey, Used, owner)),
                None => owner.map(|o| (o, EntityKind::User, Used, None)),
            }
        }
        _ => None,
    };
    let Some((entity, kind, action, parent)) = fact else {
        out.skip(format!("class {class} activity {activity}"));
        return Ok(());
    };
    out.emit(id, time, entity, kind, action)
        .parent(parent)
        .actor(first_text(
            r,
            &["actor.user.name", "actor.user.uid", "actor.app_name"],
        ))
        .failed(failed)
        .attr("ocsf.class_uid", Some(class.to_string()))
        .attr("ocsf.product", text(r, "metadata.product.name"))
        .attr("ip", text(r, "src_endpoint.ip"));
    Ok(())
}
