//! LEB128 integers, seven bits a byte, low bits first: the lengths and numbers of the
//! store's packed rows and of the repartition topic's events
//! ([`crate::repartition::wire`]).

/// Appends `v`.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Takes an integer from the front of `bytes`; None when they end first or it runs on
/// past 64 bits.
pub fn take(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_reads_back_and_a_cut_or_endless_one_is_none() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put(&mut out, v);
            out.push(0xaa);
            let mut rest = &out[..];
            assert_eq!((take(&mut rest), rest), (Some(v), &[0xaa][..]));
            assert_eq!(take(&mut &out[..out.len() - 2]), None, "{v} cut short");
        }
        assert_eq!(take(&mut &[0xff; 12][..]), None);
    }
}
