//! Units in the policy file: durations (`500ms`, `2s`, `5m`, `1h`), byte sizes (plain bytes,
//! `KB`/`MB`/`GB` = powers of 1000, `KiB`/`MiB`/`GiB` = powers of 1024) and dates (a UTC day
//! such as `2026-12-01`, meaning 00:00:00Z, or an RFC 3339 timestamp).
//!
//! The serde newtypes ([`DurationSpec`], [`ByteSize`], [`DateSpec`]) accept any scalar and keep
//! its text; the compiler parses it with the functions here, so one bad value becomes one
//! diagnostic with its path instead of aborting the whole parse.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// `500ms`, `2s`, `5m`, `1h`: a whole number and a unit, nothing else.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("invalid duration {text:?}: a unit is required (ms, s, m or h)"))?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "invalid duration {text:?}: expected a whole number and a unit, like 500ms, 2s, 5m or 1h"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    let ms = n
        .checked_mul(per_unit_ms)
        .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
    Ok(Duration::from_millis(ms))
}

/// Plain bytes (`1048576`) or a number with `KB`/`MB`/`GB` (×1000) or `KiB`/`MiB`/`GiB` (×1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a whole number of bytes, optionally with KB, MB, GB, KiB, MiB or GiB"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}: number too large"))?;
    let multiplier: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {other:?} (use KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// A UTC day (`2026-12-01` = 00:00:00Z that day) or an RFC 3339 timestamp, as Unix seconds.
pub fn parse_date(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.contains('T') || text.contains('t') || text.contains(' ') {
        let ts: jiff::Timestamp = text
            .parse()
            .map_err(|e| format!("invalid date {text:?}: {e}"))?;
        return Ok(ts.as_second());
    }
    let day: jiff::civil::Date = text
        .parse()
        .map_err(|e| format!("invalid date {text:?}: {e}"))?;
    let ts = day
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| format!("invalid date {text:?}: {e}"))?
        .timestamp();
    Ok(ts.as_second())
}

/// A scalar kept as text; integers and floats are written back as YAML spelled them.
struct ScalarText(&'static str);

impl Visitor<'_> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $expecting:literal, $parsed:ty, $parse:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl $name {
            /// The value in its runtime unit, or why the text is not one.
            pub fn parse(&self) -> Result<$parsed, String> {
                $parse(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ScalarText($expecting)).map($name)
            }
        }
    };
}

text_newtype!(
    /// A duration as written (`500ms`, `2s`, `5m`, `1h`).
    DurationSpec,
    "a duration such as 500ms, 2s, 5m or 1h",
    Duration,
    parse_duration
);
text_newtype!(
    /// A byte size as written (`1048576`, `5MB`, `5MiB`).
    ByteSize,
    "a size such as 1048576, 5MB or 5MiB",
    u64,
    parse_size
);
text_newtype!(
    /// A date as written (`2026-12-01` or an RFC 3339 timestamp).
    DateSpec,
    "a date such as 2026-12-01 or 2026-12-01T12:00:00Z",
    i64,
    parse_date
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_ms_s_m_and_h() {
        let table = [
            ("500ms", Duration::from_millis(500)),
            ("2s", Duration::from_secs(2)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("0s", Duration::ZERO),
            ("300s", Duration::from_secs(300)),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn durations_without_a_known_unit_are_refused() {
        for text in ["2", "", "s", "2 sec", "1.5s", "-1s", "2d", "10S"] {
            assert!(parse_duration(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn sizes_use_powers_of_1000_and_1024() {
        let table = [
            ("1048576", 1_048_576),
            ("5MB", 5_000_000),
            ("5MiB", 5_242_880),
            ("1KB", 1_000),
            ("1KiB", 1_024),
            ("2GB", 2_000_000_000),
            ("1GiB", 1_073_741_824),
            ("1MB", 1_000_000),
        ];
        for (text, want) in table {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn sizes_with_unknown_units_or_no_number_are_refused() {
        for text in ["", "MB", "5mb", "5 TB", "1.5MB", "-1", "5Mi"] {
            assert!(parse_size(text).is_err(), "{text} should be refused");
        }
        assert!(parse_size("99999999999999999999GB").is_err());
    }

    #[test]
    fn a_day_means_midnight_utc_and_rfc3339_is_exact() {
        assert_eq!(parse_date("2026-12-01"), Ok(1_796_083_200));
        assert_eq!(parse_date("2026-12-01T00:00:00Z"), Ok(1_796_083_200));
        assert_eq!(parse_date("2026-12-01T02:00:00+02:00"), Ok(1_796_083_200));
    }

    #[test]
    fn impossible_dates_are_refused() {
        for text in [
            "2026-13-01",
            "2026-02-30",
            "tomorrow",
            "2026-12-01T25:00:00Z",
            "",
        ] {
            assert!(parse_date(text).is_err(), "{text} should be refused");
        }
    }
}
