//! Decoding raw records into canonical events: canonical JSON lines ([`json`]) and
//! canonical Avro — raw datum, Confluent wire format, object container file ([`avro`]) —
//! with writer schemas from a Schema Registry ([`registry`]).
//! A record that does not decode is a [`DecodeError`](crate::error::DecodeError) with the
//! reason; it is dead-lettered by the caller, never dropped.

pub mod avro;
pub mod container;
pub mod json;
pub mod registry;
