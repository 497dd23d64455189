//! Avro object container files, read block by block so that damage costs only what it
//! touches: a record that does not decode is a dead letter and the rest of its block is
//! counted as skipped; a block whose sync marker is not where its size says (a corrupt
//! count or size, a torn write) is skipped by scanning for the next sync marker, and the
//! bytes skipped are reported. A block claiming more than [`MAX_BLOCK_BYTES`] is damage,
//! not an allocation: memory stays bounded whatever the header says. Codecs other than
//! `null` (what lockstep writes) are read by `apache_avro`'s reader, which stops at the
//! first error.

use std::io::{BufRead, Read};

use apache_avro::Schema;

use super::avro::from_value;
use crate::error::DecodeError;
use crate::event::IdentityEvent;

/// The largest block accepted (a block is normally well under a megabyte).
pub const MAX_BLOCK_BYTES: usize = 64 << 20;

/// Reads the container `input` (after its magic, which the caller checked): one result
/// per record, dead letters included, in file order.
pub fn read(
    mut input: impl BufRead,
    mut sink: impl FnMut(Result<IdentityEvent, DecodeError>),
) -> Result<(), DecodeError> {
    let header = Header::read(&mut input)?;
    if header.codec != "null" {
        let mut rest = Vec::new();
        input
            .read_to_end(&mut rest)
            .map_err(|e| DecodeError::new(format!("reading the container: {e}")))?;
        let whole = [header.raw.as_slice(), &rest].concat();
        let reader = apache_avro::Reader::new(&whole[..])
            .map_err(|e| DecodeError::new(format!("not an avro container: {e}")))?;
        for value in reader {
            sink(
                value
                    .map_err(|e| DecodeError::new(format!("invalid avro record: {e}")))
                    .and_then(from_value),
            );
        }
        return Ok(());
    }
    let mut data = Vec::new();
    loop {
        let Some(count) = read_long(&mut input).map_err(io)? else {
            return Ok(());
        };
        let size = read_long(&mut input).map_err(io)?.unwrap_or(-1);
        let plausible =
            count >= 0 && size >= 0 && (size as usize) <= MAX_BLOCK_BYTES && count <= size.max(1);
        if !plausible {
            sink(Err(DecodeError::new(format!(
                "avro block claims {count} records in {size} bytes: damaged; skipped to the next sync marker{}",
                resync(&mut input, &header.sync)?
            ))));
            continue;
        }
        data.resize(size as usize, 0);
        let mut marker = [0u8; 16];
        let complete = input.read_exact(&mut data).is_ok() && input.read_exact(&mut marker).is_ok();
        if !complete {
            sink(Err(DecodeError::new(format!(
                "avro block of {count} records cut short: the file ends inside it"
            ))));
            return Ok(());
        }
        if marker != header.sync {
            sink(Err(DecodeError::new(format!(
                "avro block of {count} records does not end with the sync marker: damaged; skipped to the next sync marker{}",
                resync(&mut input, &header.sync)?
            ))));
            continue;
        }
        let mut rest = &data[..];
        for i in 0..count {
            match apache_avro::from_avro_datum(&header.schema, &mut rest, None) {
                Ok(value) => sink(from_value(value)),
                Err(e) => {
                    sink(Err(DecodeError::new(format!("invalid avro record: {e}"))));
                    let lost = count - i - 1;
                    if lost > 0 {
                        sink(Err(DecodeError::new(format!(
                            "{lost} more records of the same avro block skipped: they cannot be found after an undecodable one"
                        ))));
                    }
                    break;
                }
            }
        }
    }
}

struct Header {
    schema: Schema,
    codec: String,
    sync: [u8; 16],
    /// The header's bytes, for a reader that needs the whole file.
    raw: Vec<u8>,
}

impl Header {
    fn read(input: &mut impl BufRead) -> Result<Header, DecodeError> {
        let mut raw = Vec::new();
        let mut taken = Recording {
            inner: input,
            raw: &mut raw,
        };
        let mut magic = [0u8; 4];
        taken.read_exact(&mut magic).map_err(io)?;
        if &magic != b"Obj\x01" {
            return Err(DecodeError::new("not an avro container: no Obj\\x01 magic"));
        }
        let (mut schema, mut codec) = (None, "null".to_owned());
        loop {
            let mut count = read_long(&mut taken).map_err(io)?.unwrap_or(0);
            if count == 0 {
                break;
            }
            if count < 0 {
                count = -count;
                read_long(&mut taken).map_err(io)?;
            }
            for _ in 0..count {
                let key = read_bytes(&mut taken)?;
                let value = read_bytes(&mut taken)?;
                match key.as_slice() {
                    b"avro.schema" => {
                        let text = String::from_utf8_lossy(&value);
                        schema = Some(Schema::parse_str(&text).map_err(|e| {
                            DecodeError::new(format!("the container's schema does not parse: {e}"))
                        })?);
                    }
                    b"avro.codec" => codec = String::from_utf8_lossy(&value).into_owned(),
                    _ => {}
                }
            }
        }
        let mut sync = [0u8; 16];
        taken.read_exact(&mut sync).map_err(io)?;
        Ok(Header {
            schema: schema.ok_or_else(|| DecodeError::new("the container has no avro.schema"))?,
            codec,
            sync,
            raw,
        })
    }
}

/// A reader that keeps what it read.
struct Recording<'a, R> {
    inner: &'a mut R,
    raw: &'a mut Vec<u8>,
}

impl<R: Read> Read for Recording<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.raw.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn io(e: std::io::Error) -> DecodeError {
    DecodeError::new(format!("reading the container: {e}"))
}

/// An Avro zig-zag varint long; `None` at a clean end of input.
fn read_long(input: &mut impl Read) -> std::io::Result<Option<i64>> {
    let mut value: u64 = 0;
    let mut shift = 0;
    let mut byte = [0u8; 1];
    loop {
        if input.read(&mut byte)? == 0 {
            return if shift == 0 {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        value |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            return Ok(Some((value >> 1) as i64 ^ -((value & 1) as i64)));
        }
        shift += 7;
        if shift > 63 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

fn read_bytes(input: &mut impl Read) -> Result<Vec<u8>, DecodeError> {
    let len = read_long(input).map_err(io)?.unwrap_or(-1);
    if !(0..=MAX_BLOCK_BYTES as i64).contains(&len) {
        return Err(DecodeError::new(format!(
            "container header field of {len} bytes"
        )));
    }
    let mut out = vec![0u8; len as usize];
    input.read_exact(&mut out).map_err(io)?;
    Ok(out)
}

/// Skips to just after the next `sync` marker: how many bytes were skipped, said for the
/// dead letter ("" at the end of the input).
fn resync(input: &mut impl BufRead, sync: &[u8; 16]) -> Result<String, DecodeError> {
    let mut window: Vec<u8> = Vec::with_capacity(16);
    let mut skipped = 0u64;
    let mut byte = [0u8; 1];
    loop {
        if input.read(&mut byte).map_err(io)? == 0 {
            return Ok(format!(" ({skipped} bytes skipped to the end of the file)"));
        }
        skipped += 1;
        if window.len() == 16 {
            window.remove(0);
        }
        window.push(byte[0]);
        if window.as_slice() == sync {
            return Ok(format!(" ({} bytes skipped)", skipped - 16));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::avro::write_container;

    fn events(n: usize) -> Vec<IdentityEvent> {
        (0..n)
            .map(|i| {
                crate::decode::json::decode(format!(r#"{{"event_id":"e{i}","system":"vault","time":"2026-03-02T10:31:29Z","entity":"tok-{i}","action":"revoked"}}"#).as_bytes()).unwrap()
            })
            .collect()
    }

    fn read_all(bytes: &[u8]) -> (Vec<IdentityEvent>, Vec<String>) {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        read(bytes, |r| match r {
            Ok(ev) => good.push(ev),
            Err(e) => bad.push(e.reason),
        })
        .unwrap();
        (good, bad)
    }

    /// A container of three blocks (one per `write_container` call joined by hand).
    fn three_blocks() -> (Vec<u8>, [u8; 16]) {
        let one = write_container(&events(3), Vec::new()).unwrap();
        // Header ends with the sync marker, which also ends the only block.
        let sync: [u8; 16] = one[one.len() - 16..].try_into().unwrap();
        let header_end = one.windows(16).position(|w| w == sync).unwrap() + 16;
        let block = &one[header_end..];
        let mut file = one[..header_end].to_vec();
        for _ in 0..3 {
            file.extend_from_slice(block);
        }
        (file, sync)
    }

    /// The length of the two varints (count, size) that open the block at `block`.
    fn block_header_len(block: &[u8]) -> usize {
        let first = block.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        first + block[first..].iter().position(|b| b & 0x80 == 0).unwrap() + 1
    }

    #[test]
    fn a_clean_file_reads_whole() {
        let (file, _) = three_blocks();
        let (good, bad) = read_all(&file);
        assert_eq!(good.len(), 9);
        assert!(bad.is_empty());
    }

    #[test]
    fn a_damaged_block_costs_only_itself() {
        let (file, sync) = three_blocks();
        let header_end = file.windows(16).position(|w| w == sync).unwrap() + 16;
        // The second block's size field claims 500 MB.
        let block_len = (file.len() - header_end) / 3;
        let second = header_end + block_len;
        let mut damaged = file[..second].to_vec();
        damaged.push(6); // count 3
        damaged.extend_from_slice(&[0x80, 0x94, 0xeb, 0xdc, 0x03]); // size 500,000,000
        damaged.extend_from_slice(&file[second + block_header_len(&file[second..])..]);
        let (good, bad) = read_all(&damaged);
        assert_eq!(good.len(), 6, "first and third blocks: {bad:?}");
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].contains("500000000 bytes") && bad[0].contains("bytes skipped"),
            "{bad:?}"
        );
    }

    #[test]
    fn an_undecodable_record_loses_the_rest_of_its_block_counted() {
        let (mut file, sync) = three_blocks();
        let header_end = file.windows(16).position(|w| w == sync).unwrap() + 16;
        // Break the first record of the first block: its event_id length becomes huge.
        let first_record = header_end + block_header_len(&file[header_end..]);
        file[first_record] = 0xff;
        file[first_record + 1] = 0xff;
        let (good, bad) = read_all(&file);
        assert_eq!(good.len(), 6, "{bad:?}");
        assert!(bad[0].contains("invalid avro record"), "{bad:?}");
        assert!(bad[1].contains("2 more records"), "{bad:?}");
    }
}
