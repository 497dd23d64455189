//! The encoding of every stored value: bincode with variable-length integers, so that
//! the rows written most (entity rows, rewritten whenever a busy key is used) carry small
//! numbers, enum tags and absent options in a byte each instead of four or eight.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
}

/// Encodes a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> bincode::Result<Vec<u8>> {
    options().serialize(value)
}

/// Decodes a value [`encode`] wrote.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> bincode::Result<T> {
    options().deserialize(bytes)
}

/// The bytes [`encode`] writes for a value, counted without writing them (0 for one it
/// cannot encode, which the write reports).
pub fn size<T: Serialize + ?Sized>(value: &T) -> usize {
    options()
        .serialized_size(value)
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
}
