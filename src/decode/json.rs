//! Canonical JSON: one [`IdentityEvent`] object per line.

use crate::error::DecodeError;
use crate::event::IdentityEvent;

/// Decodes one canonical JSON line.
pub fn decode(line: &[u8]) -> Result<IdentityEvent, DecodeError> {
    // One UTF-8 check of the whole line is cheaper than serde_json's of each string.
    let text = std::str::from_utf8(line)
        .map_err(|e| DecodeError::new(format!("invalid canonical JSON: not UTF-8: {e}")))?;
    let ev: IdentityEvent = serde_json::from_str(text)
        .map_err(|e| DecodeError::new(format!("invalid canonical JSON: {e}")))?;
    ev.validate().map_err(DecodeError::new)?;
    Ok(ev)
}

/// Encodes one event as a canonical JSON line (without the newline).
pub fn encode(ev: &IdentityEvent) -> String {
    // Serialising a struct of strings, enums and a string map cannot fail.
    serde_json::to_string(ev).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Outcome, System};

    #[test]
    fn decodes_with_defaults_and_round_trips() {
        let ev = decode(br#"{"event_id":"e1","system":"iam","time":"2026-03-02T10:31:29.552037Z","entity":"sa-1","action":"disabled"}"#).unwrap();
        assert_eq!(ev.system, System::Iam);
        assert_eq!(ev.action, Action::Disabled);
        assert_eq!(ev.outcome, Outcome::Success);
        assert_eq!(decode(encode(&ev).as_bytes()).unwrap(), ev);
    }

    #[test]
    fn rejects_with_reason() {
        for (line, needle) in [
            (&br#"{"event_id":"e1"#[..], "EOF"),
            (b"{\"event_id\":\"\xff\"}", "not UTF-8"),
            (br#"{"event_id":"e1","system":"ldap","time":"2026-03-02T10:31:29Z","entity":"x","action":"used"}"#, "ldap"),
            (br#"{"event_id":"e1","system":"iam","time":"noon","entity":"x","action":"used"}"#, "noon"),
            (br#"{"event_id":"","system":"iam","time":"2026-03-02T10:31:29Z","entity":"x","action":"used"}"#, "event_id is empty"),
            (br#"{"event_id":"e","system":"iam","time":"2026-03-02T10:31:29Z","entity":"victim\u0000forged","action":"used"}"#, "entity contains a NUL"),
            (br#"{"event_id":"e","system":"iam","time":"2026-03-02T10:31:29Z","entity":"x","parent":"p\u0000","action":"used"}"#, "parent contains a NUL"),
            (br#"{"event_id":"e","system":"iam","time":"2026-03-02T10:31:29Z","entity":"x","action":"used","colour":"red"}"#, "colour"),
        ] {
            let err = decode(line).unwrap_err();
            assert!(err.reason.contains(needle), "{err}");
        }
    }
}
