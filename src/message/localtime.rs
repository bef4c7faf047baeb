//! The local UTC offset for the Date field, found the way the C library
//! finds it (the `TZ` variable, else `/etc/localtime`), without calling
//! `localtime_r`: every libc function needs `unsafe`, which this crate
//! forbids. Running `date +%z` would cost a process and a PATH lookup.
//!
//! It reads nothing itself: the caller hands in the value of `TZ` and a
//! function that reads a zone file, so the rules here are pure and tested
//! on zone data the tests build. It understands TZif files (RFC 8536,
//! versions 1 to 4, including the POSIX TZ footer that slim files rely on
//! for present-day rules) and POSIX TZ strings (`CET-1CEST,M3.5.0,M10.5.0/3`).
//! When the zone cannot be found or read, the answer is `None`, and the
//! caller shows the time as UTC (`+0000`), which RFC 5322 allows.
//!
//! ```
//! use std::io::Read;
//! use smtpsend::message::DateStamp;
//! use smtpsend::message::localtime::{MAX_TZIF_BYTES, utc_offset};
//!
//! let read_zone = |path: &str| {
//!     let mut data = Vec::new();
//!     let file = std::fs::File::open(path).ok()?;
//!     file.take(MAX_TZIF_BYTES).read_to_end(&mut data).ok()?;
//!     Some(data)
//! };
//! let now = DateStamp::now(0).unix_seconds;
//! let tz = std::env::var("TZ").ok();
//! let offset = utc_offset(tz.as_deref(), read_zone, now).unwrap_or(0);
//! let date = DateStamp { unix_seconds: now, utc_offset_seconds: offset };
//! assert!(date.to_rfc5322().len() >= 30);
//! ```

/// Zone files are a few kilobytes; read at most this many bytes of one.
pub const MAX_TZIF_BYTES: u64 = 256 * 1024;

/// Where zone files named by `TZ` live.
pub const ZONEINFO_DIR: &str = "/usr/share/zoneinfo";

/// Seconds east of UTC at `unix_seconds`, as the C library would compute
/// it: `tz` is the value of the `TZ` variable (`None` if unset),
/// `read_zone` reads a zone file by path (return `None` on any failure,
/// and read at most [`MAX_TZIF_BYTES`]).
///
/// `TZ` unset: `/etc/localtime`. `TZ` empty: UTC. `TZ=:Area/City` or
/// `TZ=Area/City`: that file under [`ZONEINFO_DIR`] (an absolute path is
/// read as is), else the value as a POSIX TZ string.
pub fn utc_offset(
    tz: Option<&str>,
    read_zone: impl Fn(&str) -> Option<Vec<u8>>,
    unix_seconds: i64,
) -> Option<i32> {
    let Some(tz) = tz else {
        return tzif_offset(&read_zone("/etc/localtime")?, unix_seconds);
    };
    let name = tz.strip_prefix(':').unwrap_or(tz);
    if name.is_empty() {
        return Some(0);
    }
    let path = if name.starts_with('/') {
        Some(name.to_string())
    } else if name.split('/').any(|part| part == "..") {
        None
    } else {
        Some(format!("{ZONEINFO_DIR}/{name}"))
    };
    if let Some(offset) = path
        .and_then(|p| read_zone(&p))
        .and_then(|data| tzif_offset(&data, unix_seconds))
    {
        return Some(offset);
    }
    PosixTz::parse(name)?.offset_at(unix_seconds)
}

/// The UTC offset at `unix_seconds` according to TZif data (RFC 8536).
pub fn tzif_offset(data: &[u8], unix_seconds: i64) -> Option<i32> {
    let v1 = Header::parse(data)?;
    if v1.version < b'2' {
        return v1.offset_at(data.get(44..)?, 4, unix_seconds);
    }
    // Version 2+: skip the 32-bit block to the 64-bit one and its footer.
    let rest = data.get(44 + v1.block_len(4)?..)?;
    let v2 = Header::parse(rest)?;
    let block = rest.get(44..)?;
    let footer = block.get(v2.block_len(8)?..)?;
    if v2.timecnt > 0 {
        let last = v2.transition(block, 8, v2.timecnt - 1)?;
        if unix_seconds >= last
            && let Some(tz) = footer_tz(footer)
        {
            return tz.offset_at(unix_seconds);
        }
    } else if let Some(tz) = footer_tz(footer) {
        return tz.offset_at(unix_seconds);
    }
    v2.offset_at(block, 8, unix_seconds)
}

/// The POSIX TZ string between the newlines of a TZif footer, if any.
fn footer_tz(footer: &[u8]) -> Option<PosixTz> {
    let inner = footer.strip_prefix(b"\n")?;
    let end = inner.iter().position(|&b| b == b'\n')?;
    PosixTz::parse(std::str::from_utf8(&inner[..end]).ok()?)
}

struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    fn parse(data: &[u8]) -> Option<Header> {
        if data.get(..4)? != b"TZif" {
            return None;
        }
        let count = |i: usize| -> Option<usize> {
            let b: [u8; 4] = data.get(20 + 4 * i..24 + 4 * i)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(b)).ok()
        };
        let header = Header {
            version: *data.get(4)?,
            isutcnt: count(0)?,
            isstdcnt: count(1)?,
            leapcnt: count(2)?,
            timecnt: count(3)?,
            typecnt: count(4)?,
            charcnt: count(5)?,
        };
        (header.typecnt > 0).then_some(header)
    }

    /// Length of the data block with `time_size`-byte times.
    fn block_len(&self, time_size: usize) -> Option<usize> {
        let parts = [
            self.timecnt.checked_mul(time_size + 1)?,
            self.typecnt.checked_mul(6)?,
            self.charcnt,
            self.leapcnt.checked_mul(time_size + 4)?,
            self.isstdcnt,
            self.isutcnt,
        ];
        parts.iter().try_fold(0usize, |sum, &p| sum.checked_add(p))
    }

    fn transition(&self, block: &[u8], time_size: usize, i: usize) -> Option<i64> {
        let at = i.checked_mul(time_size)?;
        let bytes = block.get(at..at + time_size)?;
        Some(if time_size == 8 {
            i64::from_be_bytes(bytes.try_into().ok()?)
        } else {
            i64::from(i32::from_be_bytes(bytes.try_into().ok()?))
        })
    }

    fn offset_at(&self, block: &[u8], time_size: usize, unix_seconds: i64) -> Option<i32> {
        // Number of transitions at or before the instant.
        let (mut lo, mut hi) = (0usize, self.timecnt);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.transition(block, time_size, mid)? <= unix_seconds {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let type_index = if lo == 0 {
            0 // before the first transition: type 0 (RFC 8536 §3.2)
        } else {
            let indices = self.timecnt.checked_mul(time_size)?;
            usize::from(*block.get(indices + lo - 1)?)
        };
        if type_index >= self.typecnt {
            return None;
        }
        let ttinfo = self.timecnt * (time_size + 1) + 6 * type_index;
        let utoff: [u8; 4] = block.get(ttinfo..ttinfo + 4)?.try_into().ok()?;
        Some(i32::from_be_bytes(utoff))
    }
}

/// A POSIX TZ string: standard time, and optionally daylight saving time
/// with the rules for when it starts and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PosixTz {
    /// Seconds east of UTC (the string says west).
    std_offset: i32,
    dst: Option<Dst>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Dst {
    offset: i32,
    start: (Rule, i32),
    end: (Rule, i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// `Jn`: day 1..=365, February 29 never counted.
    Julian1(u16),
    /// `n`: day 0..=365, February 29 counted.
    Julian0(u16),
    /// `Mm.w.d`: day `d` (0 = Sunday) of week `w` (5 = last) of month `m`.
    MonthWeekDay(u8, u8, u8),
}

impl PosixTz {
    fn parse(s: &str) -> Option<PosixTz> {
        let mut rest = s.as_bytes();
        skip_name(&mut rest)?;
        let std_offset = -parse_hms(&mut rest)?;
        if rest.is_empty() {
            return Some(PosixTz {
                std_offset,
                dst: None,
            });
        }
        skip_name(&mut rest)?;
        let offset = if rest.is_empty() || rest[0] == b',' {
            std_offset + 3600
        } else {
            -parse_hms(&mut rest)?
        };
        let (start, end) = if rest.is_empty() {
            // glibc's default: the United States' rules.
            (
                (Rule::MonthWeekDay(3, 2, 0), 7200),
                (Rule::MonthWeekDay(11, 1, 0), 7200),
            )
        } else {
            rest = rest.strip_prefix(b",")?;
            let start = parse_rule(&mut rest)?;
            rest = rest.strip_prefix(b",")?;
            let end = parse_rule(&mut rest)?;
            (start, end)
        };
        if !rest.is_empty() {
            return None;
        }
        Some(PosixTz {
            std_offset,
            dst: Some(Dst { offset, start, end }),
        })
    }

    fn offset_at(&self, unix_seconds: i64) -> Option<i32> {
        let Some(dst) = &self.dst else {
            return Some(self.std_offset);
        };
        let local_days = unix_seconds
            .checked_add(i64::from(self.std_offset))?
            .div_euclid(86_400);
        let year = super::complete::civil_from_days(local_days).0;
        // Transition times are local: the start in standard time, the end
        // in daylight saving time.
        let instant = |(rule, time): (Rule, i32), offset: i32| {
            rule_day(rule, year)?
                .checked_mul(86_400)?
                .checked_add(i64::from(time) - i64::from(offset))
        };
        let start = instant(dst.start, self.std_offset)?;
        let end = instant(dst.end, dst.offset)?;
        let in_dst = if start < end {
            start <= unix_seconds && unix_seconds < end
        } else {
            !(end <= unix_seconds && unix_seconds < start)
        };
        Some(if in_dst { dst.offset } else { self.std_offset })
    }
}

/// Skips a zone abbreviation: 3+ letters, or `<...>`.
fn skip_name(s: &mut &[u8]) -> Option<()> {
    if let Some(quoted) = s.strip_prefix(b"<") {
        let end = quoted.iter().position(|&b| b == b'>')?;
        *s = &quoted[end + 1..];
        return (end >= 3).then_some(());
    }
    let len = s.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    *s = &s[len..];
    (len >= 3).then_some(())
}

/// `[+-]hh[:mm[:ss]]` in seconds (hours up to 167, as POSIX times allow).
fn parse_hms(s: &mut &[u8]) -> Option<i32> {
    let sign = match s.first() {
        Some(b'-') => {
            *s = &s[1..];
            -1
        }
        Some(b'+') => {
            *s = &s[1..];
            1
        }
        _ => 1,
    };
    let mut total = 0;
    for (i, scale) in [3600, 60, 1].into_iter().enumerate() {
        if i > 0 {
            match s.strip_prefix(b":") {
                Some(rest) => *s = rest,
                None => break,
            }
        }
        let value = parse_number(s, if i == 0 { 167 } else { 59 })?;
        total += i32::from(value) * scale;
    }
    Some(sign * total)
}

fn parse_number(s: &mut &[u8], max: u16) -> Option<u16> {
    let len = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 3 {
        return None;
    }
    let value: u16 = std::str::from_utf8(&s[..len]).ok()?.parse().ok()?;
    *s = &s[len..];
    (value <= max).then_some(value)
}

/// `date[/time]`; the time defaults to 02:00.
fn parse_rule(s: &mut &[u8]) -> Option<(Rule, i32)> {
    let rule = if let Some(rest) = s.strip_prefix(b"J") {
        *s = rest;
        let n = parse_number(s, 365)?;
        (n >= 1).then_some(Rule::Julian1(n))?
    } else if let Some(rest) = s.strip_prefix(b"M") {
        *s = rest;
        let m = parse_number(s, 12)?;
        *s = s.strip_prefix(b".")?;
        let w = parse_number(s, 5)?;
        *s = s.strip_prefix(b".")?;
        let d = parse_number(s, 6)?;
        (m >= 1 && w >= 1).then_some(Rule::MonthWeekDay(m as u8, w as u8, d as u8))?
    } else {
        Rule::Julian0(parse_number(s, 365)?)
    };
    let time = match s.strip_prefix(b"/") {
        Some(rest) => {
            *s = rest;
            parse_hms(s)?
        }
        None => 7200,
    };
    Some((rule, time))
}

/// Days since 1970-01-01 of the day a rule names in `year`.
fn rule_day(rule: Rule, year: i64) -> Option<i64> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let jan1 = days_from_civil(year, 1, 1);
    Some(match rule {
        Rule::Julian1(n) => jan1 + i64::from(n) - 1 + i64::from(leap && n >= 60),
        Rule::Julian0(n) => jan1 + i64::from(n),
        Rule::MonthWeekDay(m, w, d) => {
            let first = days_from_civil(year, u32::from(m), 1);
            let weekday = (first + 4).rem_euclid(7); // 1970-01-01 was a Thursday
            let mut day = first + (i64::from(d) - weekday).rem_euclid(7) + 7 * (i64::from(w) - 1);
            let next_month = if m == 12 {
                days_from_civil(year + 1, 1, 1)
            } else {
                days_from_civil(year, u32::from(m) + 1, 1)
            };
            while day >= next_month {
                day -= 7;
            }
            day
        }
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads a zone file from the file system, bounded by [`MAX_TZIF_BYTES`]:
/// the `read_zone` to hand to [`utc_offset`] outside tests.
pub fn read_zone_file(path: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    let file = std::fs::File::open(path).ok()?;
    file.take(MAX_TZIF_BYTES).read_to_end(&mut data).ok()?;
    Some(data)
}

/// This process's UTC offset at `unix_seconds`, from `$TZ` and the zone
/// files; 0 (UTC) when it cannot be found.
pub fn local_offset(unix_seconds: i64) -> i32 {
    let tz = std::env::var("TZ").ok();
    utc_offset(tz.as_deref(), read_zone_file, unix_seconds).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-31T00:59:59Z, a second before Berlin's switch to CEST.
    const BEFORE_CEST_2024: i64 = 1_711_846_799;
    /// 2024-07-01T00:00:00Z.
    const JULY_2024: i64 = 1_719_792_000;
    /// 2024-01-15T00:00:00Z.
    const JAN_2024: i64 = 1_705_276_800;

    /// A TZif file: `types` are UTC offsets, `transitions` are
    /// (time, type index); version 2 blocks carry `footer`.
    fn tzif(version: u8, types: &[i32], transitions: &[(i64, u8)], footer: &str) -> Vec<u8> {
        fn header(version: u8, timecnt: usize, typecnt: usize) -> Vec<u8> {
            let mut h = b"TZif".to_vec();
            h.push(version);
            h.extend_from_slice(&[0; 15]);
            for count in [0, 0, 0, timecnt, typecnt, 4] {
                h.extend_from_slice(&(count as u32).to_be_bytes());
            }
            h
        }
        fn block(types: &[i32], transitions: &[(i64, u8)], wide: bool) -> Vec<u8> {
            let mut b = Vec::new();
            for &(t, _) in transitions {
                if wide {
                    b.extend_from_slice(&t.to_be_bytes());
                } else {
                    b.extend_from_slice(&(t as i32).to_be_bytes());
                }
            }
            b.extend(transitions.iter().map(|&(_, i)| i));
            for &off in types {
                b.extend_from_slice(&off.to_be_bytes());
                b.extend_from_slice(&[0, 0]);
            }
            b.extend_from_slice(b"ABC\0");
            b
        }
        let mut data = header(version, transitions.len(), types.len());
        data.extend(block(types, transitions, false));
        if version >= b'2' {
            data.extend(header(version, transitions.len(), types.len()));
            data.extend(block(types, transitions, true));
            data.extend_from_slice(format!("\n{footer}\n").as_bytes());
        }
        data
    }

    #[test]
    fn posix_tz_strings() {
        let cases: &[(&str, i64, i32)] = &[
            ("UTC0", JULY_2024, 0),
            ("EST5", JULY_2024, -5 * 3600),
            ("<+0530>-5:30", JULY_2024, 19_800),
            ("CET-1CEST,M3.5.0,M10.5.0/3", JAN_2024, 3600),
            ("CET-1CEST,M3.5.0,M10.5.0/3", JULY_2024, 7200),
            ("CET-1CEST,M3.5.0,M10.5.0/3", BEFORE_CEST_2024, 3600),
            ("CET-1CEST,M3.5.0,M10.5.0/3", BEFORE_CEST_2024 + 1, 7200),
            // 2024-10-27T00:59:59Z and one second later: back to CET.
            ("CET-1CEST,M3.5.0,M10.5.0/3", 1_729_990_799, 7200),
            ("CET-1CEST,M3.5.0,M10.5.0/3", 1_729_990_800, 3600),
            ("EST5EDT", JULY_2024, -4 * 3600),
            ("EST5EDT", JAN_2024, -5 * 3600),
            // Southern hemisphere: DST across the new year.
            ("AEST-10AEDT,M10.1.0,M4.1.0/3", JAN_2024, 11 * 3600),
            ("AEST-10AEDT,M10.1.0,M4.1.0/3", JULY_2024, 10 * 3600),
            ("XXX3YYY,J60,300", JULY_2024, -2 * 3600),
            ("XXX3YYY,0/0,365/25", JAN_2024, -2 * 3600),
        ];
        for &(tz, t, want) in cases {
            assert_eq!(
                PosixTz::parse(tz).and_then(|p| p.offset_at(t)),
                Some(want),
                "{tz} at {t}"
            );
        }
        // Instants at the ends of time answer or give up, never panic.
        let berlin = PosixTz::parse("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        for t in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
            let _ = berlin.offset_at(t);
        }
        for bad in [
            "",
            "X5",
            "CET",
            "CET-1CEST,M3.5.0",
            "CET-1CEST,M13.5.0,M10.5.0",
            "EST5x",
        ] {
            assert_eq!(PosixTz::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn tzif_versions_and_footer() {
        // Version 1: transitions only.
        let v1 = tzif(0, &[3600, 7200], &[(BEFORE_CEST_2024 + 1, 1)], "");
        assert_eq!(tzif_offset(&v1, JAN_2024), Some(3600));
        assert_eq!(tzif_offset(&v1, JULY_2024), Some(7200));
        // Version 2, "slim": no transitions, the footer does the work.
        let slim = tzif(b'2', &[3600], &[], "CET-1CEST,M3.5.0,M10.5.0/3");
        assert_eq!(tzif_offset(&slim, JAN_2024), Some(3600));
        assert_eq!(tzif_offset(&slim, JULY_2024), Some(7200));
        // Version 2 with transitions before the footer takes over.
        let fat = tzif(b'2', &[0, 3600], &[(0, 1), (JAN_2024, 0)], "EST5EDT");
        assert_eq!(tzif_offset(&fat, -1), Some(0));
        assert_eq!(tzif_offset(&fat, 100), Some(3600));
        assert_eq!(tzif_offset(&fat, JULY_2024), Some(-4 * 3600));
        // UTC as Debian ships it.
        let utc = tzif(b'2', &[0], &[], "UTC0");
        assert_eq!(tzif_offset(&utc, JULY_2024), Some(0));
    }

    #[test]
    fn broken_tzif_gives_none() {
        let good = tzif(b'2', &[0, 3600], &[(0, 1)], "EST5EDT");
        for len in 0..good.len() - 1 {
            // Any truncation either still answers (the footer is optional)
            // or answers nothing; it never panics.
            let _ = tzif_offset(&good[..len], JULY_2024);
        }
        assert_eq!(tzif_offset(b"not a zone file", 0), None);
        let mut bad_index = tzif(0, &[0], &[(0, 7)], "");
        assert_eq!(tzif_offset(&bad_index, 1), None);
        bad_index[4] = b'2';
        assert_eq!(tzif_offset(&bad_index, 1), None);
    }

    #[test]
    fn tz_variable_resolution() {
        let berlin = tzif(b'2', &[3600], &[], "CET-1CEST,M3.5.0,M10.5.0/3");
        let files = |path: &str| match path {
            "/etc/localtime" => Some(tzif(b'2', &[0], &[], "UTC0")),
            "/usr/share/zoneinfo/Europe/Berlin" | "/opt/zones/berlin" => Some(berlin.clone()),
            _ => None,
        };
        assert_eq!(utc_offset(None, files, JULY_2024), Some(0));
        assert_eq!(utc_offset(Some(""), files, JULY_2024), Some(0));
        assert_eq!(
            utc_offset(Some("Europe/Berlin"), files, JULY_2024),
            Some(7200)
        );
        assert_eq!(
            utc_offset(Some(":Europe/Berlin"), files, JAN_2024),
            Some(3600)
        );
        assert_eq!(
            utc_offset(Some("/opt/zones/berlin"), files, JULY_2024),
            Some(7200)
        );
        assert_eq!(
            utc_offset(Some("EST5EDT"), files, JULY_2024),
            Some(-4 * 3600)
        );
        assert_eq!(utc_offset(Some("Nowhere/City"), files, JULY_2024), None);
        assert_eq!(utc_offset(Some("../../etc/Berlin"), files, JULY_2024), None);
        assert_eq!(utc_offset(None, |_| None, JULY_2024), None);
    }

    /// The system's own zone files, where they are installed.
    #[test]
    fn system_zoneinfo_if_present() {
        let read = |p: &str| std::fs::read(p).ok();
        if read("/usr/share/zoneinfo/Europe/Berlin").is_none() {
            return;
        }
        let at = |tz, t| utc_offset(Some(tz), read, t);
        assert_eq!(at("Europe/Berlin", JAN_2024), Some(3600));
        assert_eq!(at("Europe/Berlin", JULY_2024), Some(7200));
        assert_eq!(at("America/New_York", JULY_2024), Some(-4 * 3600));
        assert_eq!(at("Asia/Kolkata", JULY_2024), Some(19_800));
        assert_eq!(at("Australia/Sydney", JAN_2024), Some(11 * 3600));
        // Far past the last transition: the footer rule.
        assert_eq!(
            at("Europe/Berlin", 4_102_444_800 + 180 * 86_400),
            Some(7200)
        );
        // Before 1970: 1960-01-01 in New York.
        assert_eq!(at("America/New_York", -315_619_200), Some(-5 * 3600));
    }

    #[test]
    fn calendar_round_trip() {
        for days in [-800_000, -1, 0, 59, 60, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = crate::message::complete::civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        // Last Sunday of March 2024 is the 31st; of October, the 27th.
        assert_eq!(
            rule_day(Rule::MonthWeekDay(3, 5, 0), 2024),
            Some(days_from_civil(2024, 3, 31))
        );
        assert_eq!(
            rule_day(Rule::MonthWeekDay(10, 5, 0), 2024),
            Some(days_from_civil(2024, 10, 27))
        );
        // Second Sunday of March 2024 is the 10th.
        assert_eq!(
            rule_day(Rule::MonthWeekDay(3, 2, 0), 2024),
            Some(days_from_civil(2024, 3, 10))
        );
        assert_eq!(
            rule_day(Rule::Julian1(60), 2024),
            Some(days_from_civil(2024, 3, 1))
        );
        assert_eq!(
            rule_day(Rule::Julian0(59), 2024),
            Some(days_from_civil(2024, 2, 29))
        );
    }
}
