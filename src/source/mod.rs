//! Where events come from. [`file`](mod@file) reads replay inputs (canonical JSON lines, Avro
//! container files); the Kafka source of the live pipeline joins it here.

pub mod continuity;
pub mod file;
pub mod kafka;
pub mod range;
