//! Times as Docker writes them: RFC 3339 in UTC, the fraction without
//! trailing zeros (Go's `RFC3339Nano`), and Go's zero time for "never".

use std::time::SystemTime;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// How Docker's inspect writes a time that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `2026-11-29T18:00:00.123456789Z`. Times before 1970 are written as 1970.
pub fn format_rfc3339(time: SystemTime) -> String {
    let time = time.max(SystemTime::UNIX_EPOCH);
    OffsetDateTime::from(time)
        .to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| ZERO_TIME.to_string())
}

/// Parses RFC 3339 with any fraction and offset; `None` for malformed text
/// or times before 1970.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let time = SystemTime::from(parsed);
    (time >= SystemTime::UNIX_EPOCH).then_some(time)
}

/// serde `with` module: a `SystemTime` as an RFC 3339 string.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {text:?}")))
    }
}

/// serde `with` module: `None` is Docker's zero time `0001-01-01T00:00:00Z`.
pub mod rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => s.serialize_str(&super::format_rfc3339(*time)),
            None => s.serialize_str(super::ZERO_TIME),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        if text.starts_with("0001-01-01T") {
            return Ok(None);
        }
        super::parse_rfc3339(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_are_written_as_docker_writes_them_by_hand_checked_dates() {
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(at(4_102_444_799)), "2099-12-31T23:59:59Z");
        let nanos = at(1_709_210_096) + Duration::from_nanos(123_456_789);
        assert_eq!(format_rfc3339(nanos), "2024-02-29T12:34:56.123456789Z");
        // Go's RFC3339Nano drops trailing zeros of the fraction.
        let half = at(1_800_000_000) + Duration::from_millis(500);
        assert_eq!(format_rfc3339(half), "2027-01-15T08:00:00.5Z");

        for time in [UNIX_EPOCH, nanos, half, at(951_782_400), SystemTime::now()] {
            assert_eq!(parse_rfc3339(&format_rfc3339(time)), Some(time));
        }
        assert_eq!(
            parse_rfc3339("2024-02-29T14:34:56.123456789+02:00"),
            Some(nanos)
        );
        for bad in [
            "",
            "2024-02-29",
            "2024-13-01T00:00:00Z",
            "2024-02-29T12:34:56",
            "x024-02-29T12:34:56Z",
            "2024-02-29T12:34:56.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn times_are_written_as_go_writes_rfc3339_nano() {
        let at = UNIX_EPOCH + Duration::new(1_764_439_200, 123_450_000);
        assert_eq!(format_rfc3339(at), "2025-11-29T18:00:00.12345Z");
        assert_eq!(
            format_rfc3339(UNIX_EPOCH + Duration::from_secs(1_764_439_200)),
            "2025-11-29T18:00:00Z"
        );
        assert_eq!(parse_rfc3339("2025-11-29T18:00:00.12345Z"), Some(at));
        assert_eq!(
            parse_rfc3339("2025-11-29T19:00:00.12345+01:00"),
            Some(at),
            "offsets"
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
    }
}
