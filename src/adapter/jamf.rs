//! Jamf Pro webhooks, in Jamf's camelCase or the snake_case some shippers rewrite to.
//!
//! A device is named by its serial number (else its UDID) — the id an asset inventory and
//! other MDMs share — with its user (email, else directory id, else username) as parent.
//! Jamf has no device-deleted webhook: a successful `RestAPIOperation` of type DELETE on a
//! computer or mobile device is its deletion, named `jamf:<object id>` since the webhook
//! carries no serial. Webhooks carry no event id, so the id is the webhook event, the
//! device and the timestamp: a redelivery gets the same id.

use serde_json::Value;

use super::fields::{at, text, time};
use super::Emitter;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind};

/// The text at `camelCase` path, or at its snake_case spelling.
fn get(v: &Value, camel: &str) -> Option<String> {
    text(v, camel).or_else(|| text(v, &snake(camel)))
}

fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Normalises one webhook delivery.
pub fn normalize(hook: &Value, out: &mut Emitter) -> Result<(), DecodeError> {
    let event = get(hook, "webhook.webhookEvent")
        .ok_or_else(|| DecodeError::new("missing webhook.webhookEvent"))?;
    let time = time(hook, &["webhook.eventTimestamp", "webhook.event_timestamp"])?;
    let e = at(hook, "event").ok_or_else(|| DecodeError::new("missing event"))?;
    use Action::*;
    let (entity, action) = match event.as_str() {
        "RestAPIOperation" => {
            let object = get(e, "objectTypeName").unwrap_or_default().to_lowercase();
            let delete =
                get(e, "restAPIOperationType").is_some_and(|t| t.eq_ignore_ascii_case("DELETE"));
            if !(delete && (object.contains("computer") || object.contains("mobile device"))) {
                out.skip(format!("RestAPIOperation {object}"));
                return Ok(());
            }
            (
                get(e, "objectID")
                    .or_else(|| get(e, "objectId"))
                    .map(|id| format!("jamf:{id}")),
                Deleted,
            )
        }
        "ComputerAdded" | "MobileDeviceEnrolled" => (device(e), Enrolled),
        "MobileDeviceUnEnrolled" => (device(e), Unenrolled),
        "ComputerCheckIn"
        | "ComputerInventoryCompleted"
        | "MobileDeviceCheckIn"
        | "MobileDeviceInventoryCompleted" => (device(e), Observed),
        _ => (None, Observed),
    };
    let Some(entity) = entity else {
        out.skip(event);
        return Ok(());
    };
    let failed = at(e, "operationSuccessful")
        .or_else(|| at(e, "operation_successful"))
        .and_then(Value::as_bool)
        == Some(false);
    let user = get(e, "emailAddress")
        .or_else(|| get(e, "userDirectoryID"))
        .or_else(|| get(e, "username"));
    let id = format!("{event}:{entity}:{}", time.0);
    out.emit(id, time, entity, EntityKind::Device, action)
        .parent(if action == Deleted { None } else { user })
        .actor(get(e, "authorizedUsername"))
        .failed(failed)
        .attr("jamf.event", Some(event))
        .attr("jamf.udid", get(e, "udid"))
        .attr("jamf.id", get(e, "jssID"))
        .attr("jamf.management_id", get(e, "managementId"))
        .attr("device.name", get(e, "deviceName"));
    Ok(())
}

fn device(e: &Value) -> Option<String> {
    get(e, "serialNumber").or_else(|| get(e, "udid"))
}
