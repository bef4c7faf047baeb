//! Arbitrary bytes as zone data and TZ strings: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::message::localtime::{tzif_offset, utc_offset};

fuzz_target!(|data: &[u8]| {
    let (time, zone) = data.split_at(data.len().min(8));
    let mut t = [0u8; 8];
    t[..time.len()].copy_from_slice(time);
    let unix_seconds = i64::from_le_bytes(t);
    if let Some(offset) = tzif_offset(zone, unix_seconds) {
        let _ = offset;
    }
    if let Ok(tz) = std::str::from_utf8(zone) {
        let _ = utc_offset(Some(tz), |_| None, unix_seconds);
    }
});
