//! File inputs for replay: canonical JSON lines or Avro object container files, told
//! apart by their first bytes (`Obj\x01` is an Avro container). Each record becomes an
//! event or a dead letter naming the file and line (or record number) and the reason.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::decode;
use crate::error::DecodeError;
use crate::event::IdentityEvent;

/// A record that could not be decoded: where it was and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The input file.
    pub input: PathBuf,
    /// 1-based line (JSON lines) or record number (Avro).
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The raw record, when it is text.
    pub raw: Option<String>,
}

/// One record of an input: an event, or a dead letter.
pub type Record = Result<IdentityEvent, DeadLetter>;

/// Streams the records of `path` into `sink`, calling `progress` with the bytes read so
/// far. Fails only when the file cannot be opened or read.
pub fn read(
    path: &Path,
    mut sink: impl FnMut(Record),
    mut progress: impl FnMut(u64),
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let is_avro = reader.fill_buf()?.starts_with(b"Obj\x01");
    let dead = |line: u64, e: DecodeError, raw: Option<String>| DeadLetter {
        input: path.to_path_buf(),
        line,
        reason: e.reason,
        raw,
    };
    if is_avro {
        let size = reader.get_ref().metadata()?.len();
        match decode::avro::read_container(reader) {
            Ok(records) => {
                for (i, rec) in records.enumerate() {
                    sink(rec.map_err(|e| dead(i as u64 + 1, e, None)));
                }
            }
            Err(e) => sink(Err(dead(0, e, None))),
        }
        progress(size);
        return Ok(());
    }
    let mut line = Vec::with_capacity(1024);
    let mut number = 0u64;
    let mut bytes = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        bytes += n as u64;
        if number % 8192 == 0 {
            progress(bytes);
        }
        let text = trim(&line);
        if text.is_empty() {
            continue;
        }
        sink(
            decode::json::decode(text)
                .map_err(|e| dead(number, e, Some(String::from_utf8_lossy(text).into_owned()))),
        );
    }
    progress(bytes);
    Ok(())
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
