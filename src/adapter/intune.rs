//! Intune audit events: the Azure Monitor diagnostic form (`IntuneAuditLogs` and the
//! operational enrolment/compliance logs) and the Graph `auditEvent` form.
//!
//! Devices are named by their Intune device id. `retire` and `wipe` of a managed device
//! are `unenrolled`, `delete` is `deleted`, a successful enrolment is `enrolled`, and a
//! compliance report proves the device is still there (`observed`). Other Intune objects
//! (apps, policies) are counted and skipped. A result other than success is a failure.

use serde_json::Value;

use super::fields::{array, first_text, id_or_content, text, time};
use super::Emitter;
use crate::error::DecodeError;
use crate::event::{Action, EntityKind};

/// Normalises one Intune audit or operational record.
pub fn normalize(r: &Value, out: &mut Emitter) -> Result<(), DecodeError> {
    let graph = r.get("activityDateTime").is_some();
    let operation = if graph {
        first_text(r, &["activityType", "activity", "displayName"])
    } else {
        first_text(r, &["operationName"])
    }
    .ok_or_else(|| DecodeError::new("missing operationName or activityType"))?;
    let time = time(
        r,
        &[
            "activityDateTime",
            "time",
            "properties.EnrollmentTimeUTC",
            "properties.StartTimeUtc",
        ],
    )?;
    let id = id_or_content(
        r,
        &["id", "properties.AuditEventId", "properties.MessageId"],
    );
    let result = first_text(r, &["activityResult", "resultType"]).unwrap_or_default();
    let failed = matches!(
        result.to_ascii_lowercase().as_str(),
        "fail" | "failure" | "failed" | "error"
    );
    let op = operation.to_ascii_lowercase();
    let device_target = if graph {
        array(r, "resources")
            .iter()
            .find_map(|res| text(res, "resourceId"))
    } else {
        array(r, "properties.TargetObjectIds")
            .first()
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    let (entity, action) = if op.contains("manageddevice") {
        let action = if op.contains("retire") || op.contains("wipe") {
            Some(Action::Unenrolled)
        } else if op.contains("delete") {
            Some(Action::Deleted)
        } else {
            None
        };
        (device_target, action)
    } else if op == "enrollment" {
        (text(r, "properties.IntuneDeviceId"), Some(Action::Enrolled))
    } else if op == "compliance" {
        (text(r, "properties.IntuneDeviceId"), Some(Action::Observed))
    } else {
        (None, None)
    };
    let (Some(entity), Some(action)) = (entity, action) else {
        out.skip(operation);
        return Ok(());
    };
    let user = first_text(r, &["properties.IntuneUserId", "properties.UserName"]);
    out.emit(id, time, entity, EntityKind::Device, action)
        .parent(user.filter(|_| action != Action::Deleted && action != Action::Unenrolled))
        .actor(first_text(
            r,
            &[
                "actor.userPrincipalName",
                "actor.applicationDisplayName",
                "properties.Actor.UPN",
                "identity",
            ],
        ))
        .failed(failed || (op == "enrollment" && result.is_empty()))
        .attr("intune.operation", Some(operation))
        .attr(
            "device.name",
            first_text(
                r,
                &["properties.DeviceName", "properties.TargetDisplayNames.0"],
            ),
        )
        .attr("entra.device_id", text(r, "properties.AADDeviceId"));
    Ok(())
}
