//! File inputs for replay. Canonical input is JSON lines or an Avro object container
//! file, told apart by their first bytes (`Obj\x01` is an Avro container). Native input
//! (a declared adapter format) is JSON lines, or one JSON document — a record, an array
//! of records, or an envelope such as CloudTrail's `{"Records": […]}` — when the first
//! line is not a whole JSON value; a document that turns out broken is read on line by
//! line (from its start when nothing of it decoded), so one bad record costs only itself.
//! `-` is standard input. Each record becomes events, a skip (a record type the format
//! does not cover) or a dead letter naming the file, line (or record number) and reason.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::adapter::{Format, Normalized, Normalizer};
use crate::decode;
use crate::error::DecodeError;
use crate::event::IdentityEvent;

/// A record that could not be decoded: where it was and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The input file.
    pub input: PathBuf,
    /// 1-based line (JSON lines) or record number (Avro, JSON documents).
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The raw record, when it is text.
    pub raw: Option<String>,
}

/// One outcome of reading an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A canonical event.
    Event(IdentityEvent),
    /// A native record of a type its format does not cover.
    Skipped(String),
    /// A record that did not decode.
    Dead(DeadLetter),
}

/// Streams the records of `path` (`-`: standard input), read as `normalizer` says, into
/// `sink`, calling `progress` with the bytes read so far. Fails only when the input cannot
/// be read.
pub fn read(
    path: &Path,
    normalizer: &Normalizer,
    mut sink: impl FnMut(Record),
    mut progress: impl FnMut(u64),
) -> std::io::Result<()> {
    let stdin = path == Path::new("-");
    let (source, size): (Box<dyn Read>, u64) = if stdin {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        (Box::new(file), size)
    };
    let mut reader = BufReader::with_capacity(1 << 20, source);
    let dead = |line: u64, e: DecodeError, raw: Option<String>| DeadLetter {
        input: path.to_path_buf(),
        line,
        reason: e.reason,
        raw,
    };
    let head = reader.fill_buf()?;
    if head.starts_with(b"Obj\x01") {
        let mut number = 0u64;
        let read = decode::avro::read_container(reader, |rec| {
            number += 1;
            sink(rec.map_or_else(|e| Record::Dead(dead(number, e, None)), Record::Event));
        });
        if let Err(e) = read {
            sink(Record::Dead(dead(number, e, None)));
        }
        progress(size);
        return Ok(());
    }
    if normalizer.format() != Format::CanonicalJson && !first_line_is_whole(head) {
        let mut text = Vec::with_capacity(size as usize);
        reader.read_to_end(&mut text)?;
        let mut stream =
            serde_json::Deserializer::from_slice(&text).into_iter::<serde_json::Value>();
        let mut number = 0u64;
        while let Some(value) = stream.next() {
            number += 1;
            match value {
                Ok(v) => emit(
                    normalizer.normalize_value(&v),
                    number,
                    None,
                    &mut sink,
                    &dead,
                ),
                Err(e) => {
                    // Not one document after all (or a broken one): read the rest line
                    // by line — from the start when nothing decoded, else from the line
                    // after the error — so one bad record loses only itself.
                    let from = if number == 1 {
                        0
                    } else {
                        let reason =
                            DecodeError::new(format!("invalid {} JSON: {e}", normalizer.format()));
                        sink(Record::Dead(dead(number, reason, None)));
                        let at = stream.byte_offset().min(text.len());
                        text[at..]
                            .iter()
                            .position(|b| *b == b'\n')
                            .map_or(text.len(), |i| at + i + 1)
                    };
                    let line_base = text[..from].iter().filter(|b| **b == b'\n').count() as u64;
                    lines(
                        &text[from..],
                        line_base,
                        normalizer,
                        &mut sink,
                        &dead,
                        |_| {},
                    )?;
                    break;
                }
            }
        }
        progress(size.max(text.len() as u64));
        return Ok(());
    }
    lines(reader, 0, normalizer, &mut sink, &dead, progress)
}

/// Reads JSON lines (numbered from `line_base` + 1): each a record or a dead letter.
fn lines(
    mut reader: impl BufRead,
    line_base: u64,
    normalizer: &Normalizer,
    sink: &mut impl FnMut(Record),
    dead: &impl Fn(u64, DecodeError, Option<String>) -> DeadLetter,
    mut progress: impl FnMut(u64),
) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(1024);
    let mut number = line_base;
    let mut bytes = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        bytes += n as u64;
        if number.is_multiple_of(8192) {
            progress(bytes);
        }
        let text = trim(&line);
        if text.is_empty() {
            continue;
        }
        let raw = || Some(String::from_utf8_lossy(text).into_owned());
        if normalizer.format() == Format::CanonicalJson {
            sink(
                decode::json::decode(text)
                    .map_or_else(|e| Record::Dead(dead(number, e, raw())), Record::Event),
            );
        } else {
            emit(normalizer.normalize(text), number, raw(), sink, dead);
        }
    }
    progress(bytes);
    Ok(())
}

fn emit(
    result: Result<Normalized, DecodeError>,
    number: u64,
    raw: Option<String>,
    sink: &mut impl FnMut(Record),
    dead: &impl Fn(u64, DecodeError, Option<String>) -> DeadLetter,
) {
    match result {
        Ok(Normalized::Events(events)) => events.into_iter().map(Record::Event).for_each(sink),
        Ok(Normalized::Skipped(what)) => sink(Record::Skipped(what)),
        Err(e) => sink(Record::Dead(dead(number, e, raw))),
    }
}

/// True when the buffered start of a file holds a whole JSON value on its first line
/// (JSON lines), false for a document spread over lines.
fn first_line_is_whole(head: &[u8]) -> bool {
    let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = trim(first);
    first.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(first).is_ok()
}

fn trim(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let start = line[..end]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &line[start..end]
}
