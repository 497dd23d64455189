//! The column families of the store, by name in one place: what each holds is in the
//! table of [`super`]'s header.

use rocksdb::{ColumnFamily, DB};

use crate::error::StoreError;

/// A column family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Entities,
    Lineage,
    Cases,
    Timers,
    Watches,
    Seen,
    Alerts,
    Meta,
    Positions,
    Outbox,
    History,
    AlertTimes,
}

impl Family {
    /// Every column family, in the order they are opened.
    pub const ALL: [Family; 12] = [
        Family::Entities,
        Family::Lineage,
        Family::Cases,
        Family::Timers,
        Family::Watches,
        Family::Seen,
        Family::Alerts,
        Family::Meta,
        Family::Positions,
        Family::Outbox,
        Family::History,
        Family::AlertTimes,
    ];

    /// Its name in RocksDB.
    pub const fn name(self) -> &'static str {
        match self {
            Family::Entities => "entities",
            Family::Lineage => "lineage",
            Family::Cases => "cases",
            Family::Timers => "timers",
            Family::Watches => "watches",
            Family::Seen => "seen",
            Family::Alerts => "alerts",
            Family::Meta => "meta",
            Family::Positions => "positions",
            Family::Outbox => "outbox",
            Family::History => "history",
            Family::AlertTimes => "alert_times",
        }
    }

    /// Written by appending and read only by scans.
    pub const fn append_only(self) -> bool {
        matches!(self, Family::History | Family::AlertTimes)
    }

    /// Read only by scans, never by key: its table files need no bloom filter.
    pub const fn scanned_only(self) -> bool {
        matches!(self, Family::Timers | Family::History | Family::AlertTimes)
    }

    /// Its handle in `db`.
    pub fn handle(self, db: &DB) -> Result<&ColumnFamily, StoreError> {
        db.cf_handle(self.name()).ok_or_else(|| {
            StoreError::Incompatible(format!("column family {} is missing", self.name()))
        })
    }
}
