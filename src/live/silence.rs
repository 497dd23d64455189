//! `source_silent` (SPEC §5): a source topic that has had no record for its
//! `silence_alert` is said once, as an alert, until a record comes again — an absent
//! echo from that system may be a dead feed, not a missed revocation.

use std::time::Instant;

use super::{Core, LiveError};
use crate::alert::{alert_id, Alert, AlertKind};
use crate::time::Micros;

/// What a core knows of one source's records.
pub(super) struct Silence {
    /// When the last record came.
    pub(super) last_record: Instant,
    /// The time of the last event.
    pub(super) since: Micros,
    /// Whether the silence since was said.
    pub(super) alerted: bool,
}

impl Core {
    /// Raises `source_silent` for each source quiet past its `silence_alert`.
    pub(super) fn check_silence(
        &mut self,
        now: Instant,
        wall: Micros,
        alerts: &mut Vec<Alert>,
    ) -> Result<(), LiveError> {
        if !self.judges_silence {
            return Ok(());
        }
        for (source, silence) in self.config.sources.iter().zip(&mut self.silence) {
            let Some(limit) = source.silence_alert else {
                continue;
            };
            if silence.alerted || now.duration_since(silence.last_record) < limit.to_std() {
                continue;
            }
            silence.alerted = true;
            let since = silence.since.to_string();
            let alert = Alert {
                alert_id: alert_id(
                    AlertKind::SourceSilent,
                    None,
                    source.system,
                    &source.topic,
                    Some(&since),
                ),
                kind: AlertKind::SourceSilent,
                severity: AlertKind::SourceSilent.severity(),
                case_id: None,
                root: source.topic.clone(),
                entity: Some(source.topic.clone()),
                entities: None,
                system: Some(source.system),
                systems: None,
                origin_system: None,
                revoked_at: None,
                issued_at: None,
                last_active_at: None,
                rotated_entity: None,
                rotated_at: None,
                first_seen: None,
                deadline: None,
                at: wall,
                latency_ms: None,
                event_id: None,
                detail: format!(
                    "no records on {} ({}) for {limit}: an absent echo from {} may be a dead feed",
                    source.topic, source.system, source.system
                ),
            };
            self.role.store_mut().record_alert(&alert)?;
            alerts.push(alert);
        }
        Ok(())
    }
}
