//! This machine's time zone, for Date headers and syslog lines.
//!
//! jiff's `TimeZone::system()` finds the zone's IANA name from the
//! `/etc/localtime` link and then opens its zoneinfo database, which walks
//! all of `/usr/share/zoneinfo` (about 120 system calls and 40% of a plain
//! send's instructions, measured in BENCHMARKS.md). A sendmail run needs
//! only the offset of one moment: with no `TZ` set, `/etc/localtime`'s own
//! TZif data gives it. `TZ` (rare for a mailer) still goes through jiff.
//! UTC when there is no zone at all; this never fails.

use jiff::tz::TimeZone;

/// Where the system's zone lives (glibc's and jiff's default).
const LOCALTIME: &str = "/etc/localtime";

/// The largest `/etc/localtime` read; real TZif files are a few KiB.
const MAX_TZIF: u64 = 1 << 20;

/// The local time zone: `TZ` as jiff reads it, else `/etc/localtime`'s
/// TZif data, else UTC.
pub fn local() -> TimeZone {
    if std::env::var_os("TZ").is_some() {
        return TimeZone::system();
    }
    read_tzif(LOCALTIME).unwrap_or(TimeZone::UTC)
}

fn read_tzif(path: &str) -> Option<TimeZone> {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_TZIF)
        .read_to_end(&mut data)
        .ok()?;
    TimeZone::tzif("localtime", &data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_systems_tzif_gives_the_same_offset_as_jiffs_lookup() {
        let Some(tz) = read_tzif(LOCALTIME) else {
            return; // no /etc/localtime on this machine: UTC, as jiff
        };
        let now = jiff::Timestamp::now();
        assert_eq!(
            tz.to_offset(now),
            TimeZone::try_system()
                .unwrap_or(TimeZone::UTC)
                .to_offset(now)
        );
    }

    #[test]
    fn garbage_or_a_missing_file_is_no_zone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("localtime");
        std::fs::write(&p, b"not a tzif file").unwrap();
        assert!(read_tzif(p.to_str().unwrap()).is_none());
        assert!(read_tzif("/nonexistent/localtime").is_none());
    }
}
