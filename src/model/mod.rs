//! The domain's records, shared by the correlator that changes them and the store that
//! keeps them: cases with their obligations, and the rows kept per entity.

pub mod case;
pub mod entity;
