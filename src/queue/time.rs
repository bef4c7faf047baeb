//! Times in UTC for the queue: queue IDs, the times in the metadata, and
//! mbox separator lines. The calendar is jiff's.
//!
//! Everything is UTC: a spool that is read by `mailq` on one machine and a
//! cron job on another is clearer in one zone. Times before 1970 are
//! clamped to 1970.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::tz::{Offset as JiffOffset, TimeZone};

use toml::value::{Date, Datetime, Offset, Time};

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

pub(crate) fn civil(t: SystemTime) -> Civil {
    let t = t.max(UNIX_EPOCH);
    let ts = Timestamp::try_from(t).unwrap_or(Timestamp::MAX);
    let dt = TimeZone::UTC.to_datetime(ts);
    Civil {
        year: i64::from(dt.year()),
        month: u32::from(dt.month().unsigned_abs()),
        day: u32::from(dt.day().unsigned_abs()),
        hour: u32::from(dt.hour().unsigned_abs()),
        minute: u32::from(dt.minute().unsigned_abs()),
        second: u32::from(dt.second().unsigned_abs()),
        micros: dt.subsec_nanosecond().unsigned_abs() / 1000,
        weekday: u32::from(dt.weekday().to_sunday_zero_offset().unsigned_abs()),
    }
}

/// `t` without its fraction of a second: the precision of the metadata,
/// applied when a time is recorded so that memory and disk agree.
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => UNIX_EPOCH,
    }
}

/// `2026-11-23T19:30:00Z`: a time as the metadata and `mailq` show it.
pub fn rfc3339(t: SystemTime) -> String {
    let c = civil(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `20261123T193000.123456`: the time part of a queue ID.
pub(crate) fn id_stamp(t: SystemTime) -> String {
    let c = civil(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.micros
    )
}

/// `Mon Nov 23 19:30:00 2026`: asctime(3) format, for mbox `From ` lines.
pub(crate) fn asctime(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(t);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[c.weekday as usize % 7],
        MONTHS[(c.month as usize + 11) % 12],
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.year
    )
}

/// A time as a TOML offset date-time in UTC, to the second.
pub(crate) fn to_toml(t: SystemTime) -> Datetime {
    let c = civil(t);
    Datetime {
        date: Some(Date {
            year: c.year.clamp(0, 9999) as u16,
            month: c.month as u8,
            day: c.day as u8,
        }),
        time: Some(Time {
            hour: c.hour as u8,
            minute: c.minute as u8,
            second: c.second as u8,
            nanosecond: 0,
        }),
        offset: Some(Offset::Z),
    }
}

/// A TOML date-time back to a time. A local date-time (no offset, as a
/// hand edit might leave it) is read as UTC; a date alone is midnight UTC.
/// `None` for a time alone or a value out of range.
pub(crate) fn from_toml(dt: &Datetime) -> Option<SystemTime> {
    let date = dt.date?;
    if !(1..=12).contains(&date.month) || !(1..=31).contains(&date.day) {
        return None;
    }
    let (h, m, s, ns) = match dt.time {
        Some(t) if t.hour < 24 && t.minute < 60 && t.second <= 60 => {
            (t.hour, t.minute, t.second.min(59), t.nanosecond)
        }
        Some(_) => return None,
        None => (0, 0, 0, 0),
    };
    let offset = match dt.offset {
        Some(Offset::Custom { minutes }) => i32::from(minutes) * 60,
        Some(Offset::Z) | None => 0,
        // `Offset` may grow; an unknown offset is not a time we can trust.
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    let civil = jiff::civil::DateTime::new(
        i16::try_from(date.year).ok()?,
        i8::try_from(date.month).ok()?,
        i8::try_from(date.day).ok()?,
        i8::try_from(h).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(s).ok()?,
        i32::try_from(ns.min(999_999_999)).ok()?,
    )
    .ok()?;
    let tz = TimeZone::fixed(JiffOffset::from_seconds(offset).ok()?);
    let ts = tz.to_timestamp(civil).ok()?;
    let t = SystemTime::try_from(ts).ok()?;
    (t >= UNIX_EPOCH).then_some(t)
}

/// `#[serde(with)]` for a `SystemTime` stored as a TOML date-time.
pub(crate) mod toml_time {
    use std::time::SystemTime;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use toml::value::Datetime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        super::to_toml(*t).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let dt = Datetime::deserialize(d)?;
        super::from_toml(&dt)
            .ok_or_else(|| D::Error::custom(format!("{dt} is not a usable date and time")))
    }
}

/// `#[serde(with)]` for an optional `SystemTime`.
pub(crate) mod toml_time_opt {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::toml_time::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::toml_time")] SystemTime);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        // date -u -d @1795462200
        assert_eq!(rfc3339(at(1_795_462_200)), "2026-11-23T19:30:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(asctime(at(0)), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(at(1_795_462_200)), "Mon Nov 23 19:30:00 2026");
        assert_eq!(
            id_stamp(at(1_795_462_200) + Duration::from_micros(42)),
            "20261123T193000.000042"
        );
        // Before the epoch: clamped.
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn toml_round_trip_to_the_second() {
        for s in [0, 59, 86_399, 951_782_400, 1_795_462_200, 4_102_444_800] {
            let t = at(s) + Duration::from_millis(999);
            assert_eq!(from_toml(&to_toml(t)), Some(at(s)), "{s}");
        }
    }

    #[test]
    fn toml_offsets_and_local_times() {
        let dt: Datetime = "2026-11-23T20:30:00+01:00".parse().unwrap();
        assert_eq!(from_toml(&dt), Some(at(1_795_462_200)));
        let dt: Datetime = "2026-11-23T19:30:00".parse().unwrap();
        assert_eq!(from_toml(&dt), Some(at(1_795_462_200)));
        let dt: Datetime = "19:30:00".parse().unwrap();
        assert_eq!(from_toml(&dt), None);
        let dt: Datetime = "1969-12-31T23:59:59Z".parse().unwrap();
        assert_eq!(from_toml(&dt), None);
    }
}
