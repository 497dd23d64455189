//! Event time: microseconds since the Unix epoch ([`Micros`]) and durations
//! ([`Span`]), with the text forms users see — RFC 3339 UTC with microseconds
//! (`2026-03-02T10:31:29.552037Z`) and `"90s"`, `"15m"`, `"4h"`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant: microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub i64);

impl Micros {
    /// The earliest representable instant.
    pub const MIN: Micros = Micros(i64::MIN);
    /// The latest representable instant.
    pub const MAX: Micros = Micros(i64::MAX);

    /// This instant plus a span, saturating at the ends of time.
    pub fn plus(self, span: Span) -> Micros {
        Micros(self.0.saturating_add(span.0))
    }

    /// Whether the instant is a calendar time RFC 3339 can write (years 0001–9999).
    pub fn is_calendar(self) -> bool {
        use chrono::Datelike;
        DateTime::<Utc>::from_timestamp_micros(self.0)
            .is_some_and(|t| (1..=9999).contains(&t.year()))
    }

    /// This instant minus a span, saturating.
    pub fn minus(self, span: Span) -> Micros {
        Micros(self.0.saturating_sub(span.0))
    }

    /// Whole milliseconds from `earlier` to `self`.
    pub fn millis_since(self, earlier: Micros) -> i64 {
        self.0.saturating_sub(earlier.0).div_euclid(1000)
    }

    /// The wall clock now.
    pub fn now() -> Micros {
        Micros(Utc::now().timestamp_micros())
    }

    /// Parses RFC 3339 with any offset and up to nanosecond precision (truncated to µs).
    pub fn parse(s: &str) -> Result<Micros, String> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| Micros(t.timestamp_micros()))
            .map_err(|e| format!("invalid RFC 3339 time {s:?}: {e}"))
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::<Utc>::from_timestamp_micros(self.0) {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            None => write!(f, "@{}us", self.0),
        }
    }
}

impl FromStr for Micros {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Micros::parse(s)
    }
}

/// Text (RFC 3339) in human-readable formats such as JSON; a plain `i64` in binary
/// formats such as the store's bincode values.
impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            Micros::parse(&text).map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(d).map(Micros)
        }
    }
}

/// A non-negative duration in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

impl Span {
    /// A span of whole seconds.
    pub const fn secs(n: i64) -> Span {
        Span(n * 1_000_000)
    }

    /// A span of whole minutes.
    pub const fn mins(n: i64) -> Span {
        Span::secs(n * 60)
    }

    /// A span of whole hours.
    pub const fn hours(n: i64) -> Span {
        Span::mins(n * 60)
    }

    /// A span of whole days.
    pub const fn days(n: i64) -> Span {
        Span::hours(n * 24)
    }

    /// As a std duration (for wall-clock waits).
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_micros(self.0.max(0) as u64)
    }

    /// Parses `"250ms"`, `"90s"`, `"15m"`, `"4h"`, `"2d"`, or a sum such as `"1h30m"`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let bad = || {
            format!("invalid duration {text:?}: expected a number with a unit, e.g. \"90s\", \"15m\", \"4h\", \"1h30m\" (units: ms, s, m, h, d)")
        };
        let s = text.trim();
        if s.is_empty() {
            return Err(bad());
        }
        let mut total: i64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let per_unit: i64 = match &rest[..unit_len] {
                "ms" => 1_000,
                "s" => 1_000_000,
                "m" => 60_000_000,
                "h" => 3_600_000_000,
                "d" => 86_400_000_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total = n
                .checked_mul(per_unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
        }
        Ok(Span(total))
    }
}

/// Compound and parseable: `4h23m46s`, `15m`, `1m30s`, `250ms` (microseconds dropped).
impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 / 1_000;
        if ms == 0 {
            return f.write_str("0s");
        }
        let (d, h, m, s, rest) = (
            ms / 86_400_000,
            ms / 3_600_000 % 24,
            ms / 60_000 % 60,
            ms / 1_000 % 60,
            ms % 1_000,
        );
        let mut out = String::new();
        for (n, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s"), (rest, "ms")] {
            if n != 0 {
                out.push_str(&format!("{n}{unit}"));
            }
        }
        f.pad(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_micros() {
        let t = Micros::parse("2026-03-02T10:31:29.552037Z").unwrap();
        assert_eq!(t.to_string(), "2026-03-02T10:31:29.552037Z");
        let offset = Micros::parse("2026-03-02T11:31:29.552037+01:00").unwrap();
        assert_eq!(offset, t);
        assert_eq!(
            Micros::parse("2026-03-02T10:31:29Z").unwrap().to_string(),
            "2026-03-02T10:31:29.000000Z"
        );
        assert!(Micros::parse("yesterday").is_err());
    }

    #[test]
    fn durations_parse_and_reject() {
        assert_eq!(Span::parse("90s"), Ok(Span::secs(90)));
        assert_eq!(Span::parse("15m"), Ok(Span::mins(15)));
        assert_eq!(Span::parse("4h"), Ok(Span::hours(4)));
        assert_eq!(Span::parse("1h30m"), Ok(Span::mins(90)));
        assert_eq!(Span::parse("250ms"), Ok(Span(250_000)));
        assert_eq!(Span::parse("0s"), Ok(Span(0)));
        for bad in ["", "15", "m", "15 minutes", "-5s", "1.5h"] {
            let err = Span::parse(bad).unwrap_err();
            assert!(err.contains("expected"), "{bad}: {err}");
        }
        for text in ["4h", "15m", "1m30s", "4h23m46s", "250ms", "0s", "2h0m1s"] {
            let span = Span::parse(text).unwrap();
            assert_eq!(Span::parse(&span.to_string()), Ok(span), "{text}");
        }
        assert_eq!(Span::secs(90).to_string(), "1m30s");
        assert_eq!(Span::hours(4).to_string(), "4h");
        assert_eq!(Span::days(90).to_string(), "90d");
        assert_eq!(Span::hours(50).to_string(), "2d2h");
    }

    #[test]
    fn millis_truncate() {
        assert_eq!(Micros(2_999).millis_since(Micros(0)), 2);
    }
}
