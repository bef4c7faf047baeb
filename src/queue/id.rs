//! Queue IDs: `20261123T193000.123456-1a2b3c4d`.
//!
//! The UTC time of spooling to the microsecond, then 32 random bits. The
//! fixed width makes the names sort in spooling order; the random part
//! keeps two processes spooling in the same microsecond apart (a clash is
//! also caught: the temporary file is created exclusively). Only digits,
//! `T`, `.`, `-` and lower-case hex: safe in a file name and in a shell,
//! and an ID read from the command line can never name a path outside
//! the queue.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use super::error::QueueError;
use super::time;

/// The length of every ID.
const LEN: usize = 31;

/// A queue ID, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(String);

impl Id {
    /// A new ID for a message spooled at `now`.
    pub(crate) fn generate(now: SystemTime) -> Id {
        Id(format!("{}-{:08x}", time::id_stamp(now), random_u32()))
    }

    /// Checks that `s` has the shape of an ID.
    pub fn parse(s: &str) -> Result<Id, QueueError> {
        if is_id(s.as_bytes()) {
            Ok(Id(s.to_owned()))
        } else {
            Err(QueueError::BadId(s.chars().take(64).collect()))
        }
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ID of a file in `msg/` or `tmp/` named `ID.ext`.
    /// `ID.ext`: the name of one of its files.
    pub(crate) fn file_name(&self, ext: &str) -> String {
        format!("{}.{ext}", self.as_str())
    }

    pub(crate) fn from_file_name(name: &str, ext: &str) -> Option<Id> {
        let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
        Id::parse(stem).ok()
    }
}

/// `DDDDDDDDTDDDDDD.DDDDDD-hhhhhhhh`.
fn is_id(b: &[u8]) -> bool {
    b.len() == LEN
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 => c == b'T',
            15 => c == b'.',
            22 => c == b'-',
            23.. => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            _ => c.is_ascii_digit(),
        })
}

/// 32 random bits from the OS; should that fail, the process ID and a
/// counter still keep this process's IDs apart, and the exclusive create
/// catches the rest.
fn random_u32() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => u32::from_le_bytes(b),
        Err(_) => std::process::id().rotate_left(16) ^ COUNTER.fetch_add(1, Ordering::Relaxed),
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Id {
    type Err = QueueError;
    fn from_str(s: &str) -> Result<Id, QueueError> {
        Id::parse(s)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn generated_ids_parse_and_sort_by_time() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_462_200);
        let a = Id::generate(t);
        let b = Id::generate(t + Duration::from_micros(1));
        let c = Id::generate(t + Duration::from_secs(3600));
        assert!(a.as_str().starts_with("20261123T193000.000000-"), "{a}");
        assert_eq!(Id::parse(a.as_str()).unwrap(), a);
        assert!(a < b && b < c);
        assert_ne!(Id::generate(t), Id::generate(t));
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "20261123T193000.123456-1a2b3c4",
            "20261123T193000.123456-1a2b3c4dd",
            "20261123T193000.123456-1A2B3C4D",
            "20261123T193000.123456/1a2b3c4d",
            "../../../../etc/passwd/aaaaaaaaa",
            "20261123T193000.123456-1a2b3c4\n",
            "2026112xT193000.123456-1a2b3c4d",
        ] {
            assert!(
                matches!(Id::parse(bad), Err(QueueError::BadId(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn file_names() {
        let id = "20261123T193000.123456-1a2b3c4d";
        assert_eq!(
            Id::from_file_name(&format!("{id}.eml"), "eml")
                .unwrap()
                .as_str(),
            id
        );
        assert!(Id::from_file_name(&format!("{id}.eml"), "env").is_none());
        assert!(Id::from_file_name(&format!("{id}.eml~"), "eml").is_none());
        assert!(Id::from_file_name("x.eml", "eml").is_none());
    }
}
