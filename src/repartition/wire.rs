//! The repartition topic's encoding of events: compact binary, because the router
//! writes every event once more and a shard reads it once more, and canonical JSON
//! cost them more than routing it (issue 30).
//!
//! A payload is the byte [`FORMAT`] and then each event in turn:
//!
//! - strings as a LEB128 length and their UTF-8 bytes; an option as a byte 0 (none) or 1
//!   followed by the value;
//! - `event_id`, the system, `source`, the time (8 bytes, little-endian microseconds),
//!   `entity`, the entity kind, the action, the outcome, `parent`, `actor`, the number of
//!   attributes and each name and value, and last the top of the tree the event awaits;
//! - a word of the vocabulary (system, kind, action, outcome) as one byte: its place in
//!   the vocabulary's list ([`crate::event`]: words are only ever appended).
//!
//! Reading checks every length, every word and the event itself ([`IdentityEvent::validate`]):
//! a payload that is not one gives a [`DecodeError`], never a panic.

use crate::error::DecodeError;
use crate::event::{Action, EntityKind, IdentityEvent, Outcome, System};
use crate::time::Micros;
use crate::varint;

/// The first byte of a payload in this encoding (canonical JSON starts with `{`).
pub const FORMAT: u8 = 1;

/// An empty payload, with room for `bytes`.
pub fn payload(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes);
    out.push(FORMAT);
    out
}

/// Appends `ev`, awaiting the tree whose top is `awaits` (if any), to a [`payload`].
pub fn encode_into(out: &mut Vec<u8>, ev: &IdentityEvent, awaits: Option<&str>) {
    text(out, &ev.event_id);
    out.push(ev.system as u8);
    text(out, &ev.source);
    out.extend_from_slice(&ev.time.0.to_le_bytes());
    text(out, &ev.entity);
    out.push(ev.entity_kind as u8);
    out.push(ev.action as u8);
    out.push(ev.outcome as u8);
    option(out, ev.parent.as_deref());
    option(out, ev.actor.as_deref());
    length(out, ev.attributes.len());
    for (name, value) in &ev.attributes {
        text(out, name);
        text(out, value);
    }
    option(out, awaits);
}

/// Reads a payload: each event, with the top of the tree it awaits.
pub fn decode(payload: &[u8]) -> Result<Vec<(IdentityEvent, Option<String>)>, DecodeError> {
    let mut r = Reader(payload);
    if r.byte()? != FORMAT {
        return Err(r.error("not in the repartition topic's binary encoding"));
    }
    let mut events = Vec::new();
    while !r.0.is_empty() {
        let ev = IdentityEvent {
            event_id: r.string()?,
            system: r.word(System::ALL)?,
            source: r.string()?,
            time: Micros(r.time()?),
            entity: r.string()?,
            entity_kind: r.word(EntityKind::ALL)?,
            action: r.word(Action::ALL)?,
            outcome: r.word(Outcome::ALL)?,
            parent: r.option()?,
            actor: r.option()?,
            attributes: (0..r.length()?)
                .map(|_| Ok((r.string()?, r.string()?)))
                .collect::<Result<_, DecodeError>>()?,
        };
        ev.validate()
            .map_err(|why| r.error(&format!("an event that is not valid: {why}")))?;
        events.push((ev, r.option()?));
    }
    Ok(events)
}

fn length(out: &mut Vec<u8>, n: usize) {
    varint::put(out, n as u64);
}

fn text(out: &mut Vec<u8>, s: &str) {
    length(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn option(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            text(out, s);
        }
    }
}

/// What is left of a payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn error(&self, what: &str) -> DecodeError {
        DecodeError::new(format!(
            "repartition payload: {what} ({} bytes before its end)",
            self.0.len()
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.0.len() {
            return Err(self.error(&format!("{n} bytes expected: truncated")));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn length(&mut self) -> Result<usize, DecodeError> {
        varint::take(&mut self.0)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.error("a length cut short, or past 64 bits"))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.length()?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| self.error(&format!("a string that is not UTF-8: {e}")))
    }

    fn option(&mut self) -> Result<Option<String>, DecodeError> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            b => Err(self.error(&format!("an option marked {b}, not 0 or 1"))),
        }
    }

    fn word<T: Copy>(&mut self, words: &[T]) -> Result<T, DecodeError> {
        let b = self.byte()?;
        words
            .get(usize::from(b))
            .copied()
            .ok_or_else(|| self.error(&format!("word {b} of a list of {}", words.len())))
    }

    fn time(&mut self) -> Result<i64, DecodeError> {
        let bytes = self.take(8)?;
        let mut le = [0; 8];
        le.copy_from_slice(bytes);
        Ok(i64::from_le_bytes(le))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event() -> IdentityEvent {
        let mut ev = IdentityEvent::new(
            "e-1",
            System::Vault,
            Micros::parse("2026-03-02T10:31:29.552037Z").unwrap(),
            "k-ü",
            EntityKind::Token,
            Action::Revoked,
        );
        ev.outcome = Outcome::Failure;
        ev.parent = Some("sa-1".into());
        ev.source = "hashicorp.vault".into();
        ev.attributes
            .insert("path".into(), "auth/token/revoke".into());
        ev.attributes.insert("x".repeat(200), String::new());
        ev
    }

    #[test]
    fn every_field_reads_back_and_so_does_what_an_event_awaits() {
        let (first, mut second) = (event(), event());
        second.parent = None;
        second.actor = Some("ci".into());
        second.attributes.clear();
        let mut payload = super::payload(0);
        encode_into(&mut payload, &first, None);
        encode_into(&mut payload, &second, Some("top"));
        assert_eq!(payload[0], FORMAT);
        let got = decode(&payload).unwrap();
        assert_eq!(got, vec![(first, None), (second, Some("top".into()))]);
    }

    #[test]
    fn a_payload_that_is_not_one_is_an_error_naming_why() {
        let mut payload = super::payload(0);
        encode_into(&mut payload, &event(), None);
        let cut = decode(&payload[..payload.len() - 3]).unwrap_err().reason;
        assert!(cut.contains("truncated"), "{cut}");
        let json = decode(br#"{"event_id":"e"}"#).unwrap_err().reason;
        assert!(json.contains("binary encoding"), "{json}");
        // The system's byte: past the end of the list.
        let mut word = payload.clone();
        word[1 + 1 + "e-1".len()] = 9;
        let why = decode(&word).unwrap_err().reason;
        assert!(why.contains("word 9 of a list of 4"), "{why}");
        let mut empty = super::payload(0);
        encode_into(&mut empty, &event(), None);
        empty[1] = 0; // event_id of no bytes, then garbage: never a panic
        assert!(decode(&empty).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_to_events_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut payload = vec![FORMAT];
            payload.extend(bytes);
            let _ = decode(&payload);
        }
    }
}
