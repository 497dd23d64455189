//! The store's memory budget (`[state] memory_budget`): one number, split between the
//! places state is cached in memory, so that the caches are bounded by configuration and
//! not by the size of the estate.
//!
//! | share | holds | bounded by |
//! |---|---|---|
//! | 1/4, at least 1/16 | RocksDB block cache (the data blocks of every column family) | the cache's capacity |
//! | 1/4 | RocksDB memtables of every column family together | `db_write_buffer_size` (a flush when exceeded) |
//! | 1/2 − 1/32 − the index | the write-back caches of the tables (cases, watches, alerts), at least 1/16 | each table's share, in estimated bytes |
//! | 1/32 | the filters of the keys written (`key_filter`: watches, seen) | their fixed size |
//!
//! The in-memory index of entity and lineage rows (`super::index`, which grows with the
//! estate: ~110 bytes an identity, the replay prints it) is charged to the tables' half:
//! after each commit their caches shrink by what it holds, down to their floor of 1/16;
//! what they cannot give is taken from the block cache, down to its floor of 1/16 (the
//! rows every event reads are in the index: the block cache serves the colder ones).
//! Past that point (~3 million identities at the default 512 MiB) the index is held in
//! full beyond the budget — there is no cold path for its rows yet. Not in it: the events
//! held for ordering (`[correlator] max_held_events`), the
//! changes of the step being committed (see [`MemoryBudget::commit_every`]), and RocksDB's index and
//! filter blocks, held beside the cache (about 1% of the state on disk): counting them
//! in the cache made every lookup probe the cache for them, and was a third slower.

use std::fmt;

use super::family::Family;

/// A memory budget in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget(u64);

/// The tables with a filter of the keys they wrote, and their shares of the filters'
/// 1/32, in tenths.
const FILTER_SHARES: [(Family, u64); 2] = [(Family::Watches, 2), (Family::Seen, 8)];

/// The write-back tables and their shares of the tables' half (less the filters'), in
/// tenths.
const TABLE_SHARES: [(Family, u64); 3] = [
    (Family::Cases, 4),
    (Family::Watches, 2),
    (Family::Alerts, 4),
];

impl MemoryBudget {
    /// What `[state] memory_budget` is when unset.
    pub const DEFAULT: MemoryBudget = MemoryBudget(512 << 20);
    /// The least budget accepted: below it RocksDB flushes after every few writes.
    pub const MIN: MemoryBudget = MemoryBudget(32 << 20);

    /// A budget of `bytes`; an error naming the minimum when it is below it.
    pub fn new(bytes: u64) -> Result<MemoryBudget, String> {
        if bytes < Self::MIN.0 {
            return Err(format!(
                "{} is below the minimum of {}",
                MemoryBudget(bytes),
                Self::MIN
            ));
        }
        Ok(MemoryBudget(bytes))
    }

    /// Parses `512MiB`, `2GiB`, `65536KiB` or a number of bytes.
    pub fn parse(text: &str) -> Result<MemoryBudget, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let shift = match unit.trim() {
            "" | "B" => 0,
            "KiB" => 10,
            "MiB" => 20,
            "GiB" => 30,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {text:?}: write a size like \"512MiB\" or \"2GiB\" (units B, KiB, MiB, GiB)"
                ))
            }
        };
        let bytes = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift))
            .ok_or_else(|| format!("{text:?} is not a size: write e.g. \"512MiB\" or \"2GiB\""))?;
        Self::new(bytes)
    }

    /// One of `n` equal shares of the budget (no less than [`MemoryBudget::MIN`]).
    pub fn share(self, n: usize) -> MemoryBudget {
        let n = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
        MemoryBudget((self.0 / n).max(Self::MIN.0))
    }

    /// The budget in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The capacity of RocksDB's block cache.
    pub fn block_cache(self) -> usize {
        self.block_cache_beside(0)
    }

    /// The capacity of RocksDB's block cache once the in-memory index's `index` bytes are
    /// charged: what the tables' half cannot give of them (see
    /// [`MemoryBudget::table_beside`]) comes out of the cache's quarter, down to a
    /// sixteenth of the budget.
    pub fn block_cache_beside(self, index: usize) -> usize {
        let tables_give = (self.0 / 2 - self.filters()).saturating_sub(self.floor());
        let over = u64::try_from(index)
            .unwrap_or(u64::MAX)
            .saturating_sub(tables_give);
        usize::try_from((self.0 / 4).saturating_sub(over).max(self.floor())).unwrap_or(usize::MAX)
    }

    /// The memtables of all column families together.
    pub fn memtables(self) -> usize {
        self.quarter()
    }

    /// The share, in estimated bytes, of the write-back cache of table `cf` (0 for a
    /// table without one).
    pub fn table(self, cf: Family) -> usize {
        self.table_beside(cf, 0)
    }

    /// The share of table `cf` once the in-memory index's `index` bytes are charged to
    /// the tables' half: the caches give way as the estate grows, down to a sixteenth of
    /// the budget for all of them together (past that the index alone is over it).
    pub fn table_beside(self, cf: Family, index: usize) -> usize {
        let half = self.0 / 2 - self.filters();
        let index = u64::try_from(index).unwrap_or(u64::MAX);
        tenths(
            &TABLE_SHARES,
            cf,
            half.saturating_sub(index).max(self.floor()),
        )
    }

    /// The least the tables' caches, and the block cache, give way to: a sixteenth.
    fn floor(self) -> u64 {
        self.0 / 16
    }

    /// The size of the filter of the keys table `cf` wrote (0 for a table without one).
    pub fn key_filter(self, cf: Family) -> usize {
        tenths(&FILTER_SHARES, cf, self.filters())
    }

    fn filters(self) -> u64 {
        self.0 / 32
    }

    /// How many events a replay applies between two commits: the changes of a step are
    /// all in memory until they are committed, so a small budget commits more often
    /// (50,000 from 200 MiB up, 8,192 at the least).
    pub fn commit_every(self) -> u64 {
        (self.0 / (4 << 10)).clamp(8_192, 50_000)
    }

    fn quarter(self) -> usize {
        usize::try_from(self.0 / 4).unwrap_or(usize::MAX)
    }
}

/// The share of `cf` in `shares` (tenths) of `bytes`.
fn tenths(shares: &[(Family, u64)], cf: Family, bytes: u64) -> usize {
    shares
        .iter()
        .find(|(name, _)| *name == cf)
        .map_or(0, |(_, tenths)| {
            usize::try_from(bytes * tenths / 10).unwrap_or(usize::MAX)
        })
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b if b % (1 << 30) == 0 => write!(f, "{}GiB", b >> 30),
            b if b % (1 << 20) == 0 => write!(f, "{}MiB", b >> 20),
            b if b % (1 << 10) == 0 => write!(f, "{}KiB", b >> 10),
            b => write!(f, "{b}B"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units_and_print_back() {
        for (text, bytes) in [
            ("512MiB", 512u64 << 20),
            ("2GiB", 2 << 30),
            ("65536KiB", 64 << 20),
            ("33554432", 32 << 20),
            (" 1 GiB ", 1 << 30),
        ] {
            let budget = MemoryBudget::parse(text).unwrap();
            assert_eq!(budget.bytes(), bytes, "{text}");
            assert_eq!(MemoryBudget::parse(&budget.to_string()), Ok(budget));
        }
    }

    #[test]
    fn bad_sizes_say_how_to_write_one() {
        for text in ["", "MiB", "512MB", "1.5GiB", "-1GiB", "99999999999GiB"] {
            assert!(MemoryBudget::parse(text).is_err(), "{text}");
        }
        let err = MemoryBudget::parse("16MiB").unwrap_err();
        assert!(err.contains("minimum of 32MiB"), "{err}");
        assert!(MemoryBudget::parse("512MB")
            .unwrap_err()
            .contains("\"512MiB\""));
    }

    #[test]
    fn the_shares_add_up_to_the_budget() {
        let b = MemoryBudget::parse("1GiB").unwrap();
        let tables: usize = TABLE_SHARES.iter().map(|&(cf, _)| b.table(cf)).sum();
        let filters: usize = FILTER_SHARES.iter().map(|&(cf, _)| b.key_filter(cf)).sum();
        let total = b.block_cache() + b.memtables() + tables + filters;
        assert!(total <= 1 << 30 && total > (1 << 30) - 10, "{total}");
        assert_eq!(b.table(Family::Seen), 0);
        // The index is charged to the tables, down to their floor.
        let tables = |index: usize| -> usize {
            TABLE_SHARES
                .iter()
                .map(|&(cf, _)| b.table_beside(cf, index))
                .sum()
        };
        assert!(tables(100 << 20) + (100 << 20) <= tables(0) + 10);
        assert!((tables(2 << 30) as i64 - (64 << 20)).abs() < 10);
        assert_eq!(b.key_filter(Family::Cases), 0);
        // Then to the block cache, down to its floor.
        let half = (1 << 29) - (1 << 25);
        let tables_give = half - (64 << 20);
        assert_eq!(b.block_cache_beside(tables_give), b.block_cache());
        assert_eq!(
            b.block_cache_beside(tables_give + (100 << 20)),
            b.block_cache() - (100 << 20)
        );
        assert_eq!(b.block_cache_beside(2 << 30), 64 << 20);
    }
}
