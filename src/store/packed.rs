//! Entity rows as the in-memory index holds them: a compact encoding (most rows take
//! 15–35 bytes) in one arena of 8-byte granules, so ten million rows cost neither an
//! allocation nor a pointer each.
//!
//! A row without open cases and without a rotation round — nearly all of them — is
//! *packed*: a tag, the states in 2 bits each, both kinds in a byte, two bytes of flags,
//! `first_seen` in 8 bytes and every other instant as a zigzag varint from an instant
//! before it; the creator is an interned actor id. Any other row is kept as its stored
//! encoding ([`super::codec`]). Both decode to the same [`EntityRow`].

use std::collections::HashMap;

use super::codec;
use super::ids::{Id, Ids};
use super::paged::{Paged, PAGE};
use crate::event::EntityKind;
use crate::model::entity::{EchoState, EntityRow, HygieneClock};
use crate::model::round::Registration;
use crate::time::Micros;
use crate::varint;

const PACKED: u8 = 1;
const STORED: u8 = 2;
/// No row.
pub const NONE: u32 = u32::MAX;

/// Encodes `row`, interning its creator in `actors`.
pub fn encode(row: &EntityRow, actors: &mut Ids, out: &mut Vec<u8>) {
    out.clear();
    let actor = match &row.created_by {
        Some(Some(name)) => actors.intern(name),
        _ => None,
    };
    let interned = actor.is_some() || !matches!(row.created_by, Some(Some(_)));
    if !row.cases.is_empty() || row.round.is_some() || !interned {
        out.push(STORED);
        // A row of plain fields, vectors and options always encodes.
        out.extend(codec::encode(row).unwrap_or_default());
        return;
    }
    out.push(PACKED);
    let states = row
        .states
        .iter()
        .enumerate()
        .fold(0u8, |acc, (i, s)| acc | (state_bits(*s) << (2 * i)));
    out.push(states);
    out.push(kind_bits(row.kind) | (kind_bits(row.latest_kind) << 4));
    let mut flags = 0u16;
    for (i, since) in row.since.iter().enumerate() {
        if *since != Micros(0) {
            flags |= 1 << i;
        }
    }
    for (i, clock) in row.clocks.iter().enumerate() {
        if let Some(c) = clock {
            flags |= 1 << (4 + i);
            if c.timer.is_some() {
                flags |= 1 << (6 + i);
            }
        }
    }
    if row.first_seen.is_some() {
        flags |= 1 << 8;
    }
    match &row.created_by {
        None => {}
        Some(None) => flags |= 1 << 9,
        Some(Some(_)) => flags |= 3 << 9,
    }
    flags |= match row.registration {
        Registration::Unknown => 0,
        Registration::Registered => 1,
        Registration::Armed { .. } => 2,
        Registration::Evaluated { .. } => 3,
    } << 11;
    out.extend(flags.to_le_bytes());
    let base = row.first_seen.unwrap_or(Micros(0));
    if let Some(first) = row.first_seen {
        out.extend(first.0.to_le_bytes());
    }
    for since in row.since.iter().filter(|s| **s != Micros(0)) {
        delta(out, base, *since);
    }
    for clock in row.clocks.iter().flatten() {
        delta(out, base, clock.since);
        delta(out, clock.since, clock.deadline);
        if let Some(timer) = clock.timer {
            delta(out, clock.deadline, timer);
        }
    }
    match row.registration {
        Registration::Armed {
            first_seen,
            deadline,
        } => {
            delta(out, base, first_seen);
            delta(out, first_seen, deadline);
        }
        Registration::Evaluated { first_seen } => delta(out, base, first_seen),
        Registration::Unknown | Registration::Registered => {}
    }
    if let Some(actor) = actor {
        varint::put(out, u64::from(actor));
    }
}

/// Decodes what [`encode`] wrote; None for bytes it did not write.
pub fn decode(bytes: &[u8], actors: &Ids) -> Option<EntityRow> {
    let (&tag, rest) = bytes.split_first()?;
    if tag == STORED {
        return codec::decode(rest).ok();
    }
    if tag != PACKED {
        return None;
    }
    let mut r = Reader(rest);
    let states = r.byte()?;
    let kinds = r.byte()?;
    let flags = u16::from_le_bytes([r.byte()?, r.byte()?]);
    let mut row = EntityRow {
        kind: kind_of(kinds & 15)?,
        latest_kind: kind_of(kinds >> 4)?,
        ..EntityRow::default()
    };
    for (i, state) in row.states.iter_mut().enumerate() {
        *state = state_of((states >> (2 * i)) & 3)?;
    }
    if flags & (1 << 8) != 0 {
        row.first_seen = Some(Micros(i64::from_le_bytes(r.array()?)));
    }
    let base = row.first_seen.unwrap_or(Micros(0));
    for (i, since) in row.since.iter_mut().enumerate() {
        if flags & (1 << i) != 0 {
            *since = r.delta(base)?;
        }
    }
    for (i, clock) in row.clocks.iter_mut().enumerate() {
        if flags & (1 << (4 + i)) != 0 {
            let since = r.delta(base)?;
            let deadline = r.delta(since)?;
            let timer = if flags & (1 << (6 + i)) != 0 {
                Some(r.delta(deadline)?)
            } else {
                None
            };
            *clock = Some(HygieneClock {
                since,
                deadline,
                timer,
            });
        }
    }
    row.registration = match (flags >> 11) & 3 {
        0 => Registration::Unknown,
        1 => Registration::Registered,
        2 => {
            let first_seen = r.delta(base)?;
            Registration::Armed {
                first_seen,
                deadline: r.delta(first_seen)?,
            }
        }
        _ => Registration::Evaluated {
            first_seen: r.delta(base)?,
        },
    };
    row.created_by = match (flags >> 9) & 3 {
        0 => None,
        1 => Some(None),
        _ => {
            let actor = Id::try_from(r.varint()?).ok()?;
            (actor < actors.len() as u32).then(|| Some(actors.name(actor).to_owned()))
        }
    };
    Some(row)
}

/// The state of a row in system `index` and when it last changed, read from what
/// [`encode`] wrote without decoding the rest (the hot read of the echo checks); None for
/// bytes it did not write.
pub fn state_since(bytes: &[u8], index: usize, actors: &Ids) -> Option<(EchoState, Micros)> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != PACKED {
        let row = decode(bytes, actors)?;
        return Some((*row.states.get(index)?, *row.since.get(index)?));
    }
    let mut r = Reader(rest);
    let state = state_of((r.byte()? >> (2 * index)) & 3)?;
    r.byte()?;
    let flags = u16::from_le_bytes([r.byte()?, r.byte()?]);
    if flags & (1 << index) == 0 {
        return Some((state, Micros(0)));
    }
    let base = match flags & (1 << 8) != 0 {
        true => Micros(i64::from_le_bytes(r.array()?)),
        false => Micros(0),
    };
    let mut since = base;
    for i in 0..=index {
        if flags & (1 << i) != 0 {
            since = r.delta(base)?;
        }
    }
    Some((state, since))
}

/// Whether the row has open cases (only a stored row can); None for bytes [`encode`]
/// did not write.
pub fn has_cases(bytes: &[u8], actors: &Ids) -> Option<bool> {
    match bytes.first()? {
        &PACKED => Some(false),
        _ => decode(bytes, actors).map(|row| !row.cases.is_empty()),
    }
}

fn state_bits(state: EchoState) -> u8 {
    match state {
        EchoState::None => 0,
        EchoState::Active => 1,
        EchoState::Revoked => 2,
    }
}

fn state_of(bits: u8) -> Option<EchoState> {
    [EchoState::None, EchoState::Active, EchoState::Revoked]
        .get(usize::from(bits))
        .copied()
}

fn kind_bits(kind: Option<EntityKind>) -> u8 {
    // Ten kinds: 1..=10, 0 for none.
    kind.map_or(0, |k| k.index() as u8 + 1)
}

fn kind_of(bits: u8) -> Option<Option<EntityKind>> {
    match bits {
        0 => Some(None),
        b => EntityKind::ALL.get(usize::from(b) - 1).copied().map(Some),
    }
}

/// Writes `to - from` as a zigzag varint (wrapping: every pair of instants round-trips).
fn delta(out: &mut Vec<u8>, from: Micros, to: Micros) {
    let d = to.0.wrapping_sub(from.0);
    varint::put(out, ((d << 1) ^ (d >> 63)) as u64);
}

/// Writes `v` in 7-bit groups, least significant first.
/// Reads what [`encode`] and [`varint::put`] write, from the front.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    pub(super) fn varint(&mut self) -> Option<u64> {
        varint::take(&mut self.0)
    }

    fn delta(&mut self, from: Micros) -> Option<Micros> {
        let z = self.varint()?;
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        Some(Micros(from.0.wrapping_add(d)))
    }
}

/// Byte strings by slot: each in a run of 8-byte granules of one arena, rewritten in
/// place while it fits, moved (its run reused by a string of the same size) when not.
/// The arena grows a page at a time and no run crosses a page; a string longer than a
/// page is kept on its own. Where a slot's run starts (its *start*: [`NONE`] when it
/// has none) is kept by the caller, beside what else it keeps of the slot.
#[derive(Default)]
pub struct Arena {
    granules: Paged<[u8; 8]>,
    /// Free runs by their length in granules.
    free: HashMap<u32, Vec<u32>>,
    large: HashMap<Id, Box<[u8]>>,
}

/// The longest length prefix of a run: a varint of up to 21 bits, enough for a page.
const LONGEST_HEADER: usize = 3;
/// The start of a slot whose string does not fit in a page.
const LARGE: u32 = u32::MAX - 1;

impl Arena {
    /// The bytes of `slot`, whose start is `start`.
    pub fn get(&self, slot: Id, start: u32) -> Option<&[u8]> {
        match start {
            NONE => None,
            LARGE => self.large.get(&slot).map(|b| &b[..]),
            start => {
                let (page, offset) = self.granules.place(start as usize);
                let mut run = Reader(page.get(offset..)?.as_flattened());
                let len = run.varint()?;
                run.0.get(..usize::try_from(len).ok()?)
            }
        }
    }

    /// Starts bringing in the first line of the run at `start`.
    pub fn prefetch(&self, start: u32) {
        if start != NONE && start != LARGE && (start as usize) < self.granules.len() {
            let (page, offset) = self.granules.place(start as usize);
            super::prefetch::line(&page[offset]);
        }
    }

    /// Puts `bytes` in `slot`, whose start is `start` (updated).
    pub fn put(&mut self, slot: Id, start: &mut u32, bytes: &[u8]) {
        let need = runs(bytes.len());
        let old = *start;
        if need as usize > PAGE {
            self.release(slot, old);
            self.large.insert(slot, bytes.into());
            *start = LARGE;
            return;
        }
        if old == NONE || old == LARGE || self.run_len(old) != need {
            self.release(slot, old);
            *start = self.allocate(need);
        }
        let (page, offset) = self.granules.place_mut(*start as usize);
        let run = page[offset..offset + need as usize].as_flattened_mut();
        let header = write_header(run, bytes.len());
        run[header..header + bytes.len()].copy_from_slice(bytes);
    }

    /// Empties `slot`, whose start is `start` (set to [`NONE`]).
    pub fn remove(&mut self, slot: Id, start: &mut u32) {
        let old = std::mem::replace(start, NONE);
        self.release(slot, old);
    }

    /// The bytes it holds.
    pub fn heap_bytes(&self) -> usize {
        self.granules.heap_bytes() + self.large.values().map(|b| b.len() + 32).sum::<usize>()
    }

    fn run_len(&self, start: u32) -> u32 {
        let (page, offset) = self.granules.place(start as usize);
        let len = Reader(page[offset..].as_flattened()).varint().unwrap_or(0);
        runs(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// A free run of `need` granules: a freed one of that length, else the next in the
    /// last page (the rest of a page too short for it is freed as one run).
    fn allocate(&mut self, need: u32) -> u32 {
        if let Some(start) = self.free.get_mut(&need).and_then(Vec::pop) {
            return start;
        }
        let end = self.granules.len();
        let room = PAGE - end % PAGE;
        if (need as usize) > room && room < PAGE {
            // The rest of the page, as a run whose header says its length.
            let rest = end as u32;
            self.granules.grow(end + room, [0; 8]);
            let (page, offset) = self.granules.place_mut(end);
            write_header(page[offset..].as_flattened_mut(), room * 8 - LONGEST_HEADER);
            self.free.entry(room as u32).or_default().push(rest);
        }
        let start = self.granules.len();
        self.granules.grow(start + need as usize, [0; 8]);
        start as u32
    }

    fn release(&mut self, slot: Id, start: u32) {
        match start {
            NONE => {}
            LARGE => {
                self.large.remove(&slot);
            }
            start => {
                let len = self.run_len(start);
                self.free.entry(len).or_default().push(start);
            }
        }
    }
}

/// The granules a string of `len` bytes takes with its header.
fn runs(len: usize) -> u32 {
    u32::try_from((header_len(len) + len).div_ceil(8)).unwrap_or(u32::MAX)
}

/// The bytes of the length prefix of a string of `len` bytes (one below 128), for
/// strings of up to 2 MiB: [`varint::put`]'s size for them.
pub(super) fn header_len(len: usize) -> usize {
    match len {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        _ => LONGEST_HEADER,
    }
}

/// Writes the length prefix of a string of `len` bytes at the start of `run`; its size.
fn write_header(run: &mut [u8], len: usize) -> usize {
    let size = header_len(len);
    for (i, byte) in run[..size].iter_mut().enumerate() {
        let more = if i + 1 < size { 0x80 } else { 0 };
        *byte = (len >> (7 * i)) as u8 & 0x7f | more;
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::round::Round;

    fn rows() -> Vec<EntityRow> {
        let t = Micros(1_772_409_600_000_000);
        vec![
            EntityRow::default(),
            EntityRow {
                states: [
                    EchoState::Active,
                    EchoState::Revoked,
                    EchoState::None,
                    EchoState::Active,
                ],
                since: [t, Micros(t.0 + 5), Micros(0), Micros(-7)],
                kind: Some(EntityKind::ApiKey),
                latest_kind: Some(EntityKind::Other),
                clocks: [
                    Some(HygieneClock {
                        since: t,
                        deadline: Micros(t.0 + 90 * 86_400_000_000),
                        timer: Some(Micros(t.0 + 3)),
                    }),
                    Some(HygieneClock {
                        since: Micros::MIN,
                        deadline: Micros::MAX,
                        timer: None,
                    }),
                ],
                registration: Registration::Armed {
                    first_seen: t,
                    deadline: Micros(t.0 + 1),
                },
                first_seen: Some(Micros(t.0 - 1)),
                created_by: Some(Some("terraform".into())),
                ..EntityRow::default()
            },
            EntityRow {
                registration: Registration::Evaluated { first_seen: t },
                created_by: Some(None),
                kind: Some(EntityKind::Other),
                ..EntityRow::default()
            },
            EntityRow {
                registration: Registration::Registered,
                cases: vec!["case-1".into()],
                created_by: Some(Some("ops".into())),
                ..EntityRow::default()
            },
            EntityRow {
                round: Some(Box::new(Round {
                    rotated_at: t,
                    origin: crate::event::System::Vault,
                    obligations: vec![],
                })),
                ..EntityRow::default()
            },
        ]
    }

    #[test]
    fn every_row_decodes_to_itself_and_plain_rows_pack_small() {
        let mut actors = Ids::default();
        let mut bytes = Vec::new();
        for row in rows() {
            encode(&row, &mut actors, &mut bytes);
            for i in 0..4 {
                let read = state_since(&bytes, i, &actors);
                assert_eq!(read, Some((row.states[i], row.since[i])), "{row:?} {i}");
            }
            assert_eq!(has_cases(&bytes, &actors), Some(!row.cases.is_empty()));
            assert_eq!(decode(&bytes, &actors), Some(row));
        }
        let key = EntityRow {
            states: [
                EchoState::None,
                EchoState::Active,
                EchoState::None,
                EchoState::None,
            ],
            since: [
                Micros(0),
                Micros(1_772_409_600_000_000),
                Micros(0),
                Micros(0),
            ],
            kind: Some(EntityKind::ApiKey),
            latest_kind: Some(EntityKind::ApiKey),
            first_seen: Some(Micros(1_772_409_600_000_000)),
            created_by: Some(Some("terraform".into())),
            ..EntityRow::default()
        };
        encode(&key, &mut actors, &mut bytes);
        assert!(bytes.len() <= 16, "{} bytes", bytes.len());
        assert_eq!(decode(&[9, 9], &actors), None);
        assert_eq!(decode(&bytes[..6], &actors), None);
    }

    #[test]
    fn an_arena_reuses_the_runs_it_frees_and_keeps_every_slot_apart() {
        let mut arena = Arena::default();
        let mut starts = [NONE; 6];
        arena.put(3, &mut starts[3], b"abc");
        arena.put(0, &mut starts[0], &[7; 20]);
        assert_eq!(arena.get(3, starts[3]), Some(&b"abc"[..]));
        assert_eq!(arena.get(1, starts[1]), None);
        let used = arena.granules.len();
        arena.put(3, &mut starts[3], b"abcd");
        assert_eq!(arena.granules.len(), used, "rewritten in place");
        arena.put(3, &mut starts[3], &[1; 40]);
        arena.put(5, &mut starts[5], b"xy");
        assert_eq!(arena.granules.len(), used + 6, "the freed run was reused");
        assert_eq!(arena.get(5, starts[5]), Some(&b"xy"[..]));
        assert_eq!(arena.get(3, starts[3]), Some(&[1; 40][..]));
        assert_eq!(arena.get(0, starts[0]), Some(&[7; 20][..]));
        arena.remove(0, &mut starts[0]);
        assert_eq!(arena.get(0, starts[0]), None);
        let large = vec![9; 8 * PAGE];
        arena.put(4, &mut starts[4], &large);
        assert_eq!(arena.get(4, starts[4]), Some(&large[..]));
        arena.put(4, &mut starts[4], b"small again");
        assert_eq!(arena.get(4, starts[4]), Some(&b"small again"[..]));
        assert!(arena.large.is_empty());
        // Length prefixes of one, two and three bytes; a run filling a page's rest.
        for (slot, len) in [
            (0, 126),
            (1, 127),
            (2, 128),
            (5, 16_383),
            (0, 16_384),
            (1, 300_000),
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            arena.put(slot, &mut starts[slot as usize], &bytes);
            assert_eq!(
                arena.get(slot, starts[slot as usize]),
                Some(&bytes[..]),
                "{len}"
            );
            assert_eq!(arena.run_len(starts[slot as usize]), runs(len), "{len}");
        }
        assert_eq!(runs(127), 16);
        assert_eq!(runs(128), 17, "a second byte of length");
    }
}
