//! The domain's records, shared by the correlator that changes them and the store that
//! keeps them: cases with their obligations, the rows kept per entity, and the rotation
//! rounds and registration marks of SPEC §4c.

pub mod case;
pub mod entity;
pub mod round;
