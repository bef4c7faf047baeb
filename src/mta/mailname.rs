//! `/etc/mailname`: the one line naming the domain this machine's mail
//! comes from (Debian policy 11.6; written by the installer and read by
//! every Debian MTA). smtpsend uses it as the default `domain` when the
//! configuration names none.
//!
//! The file is small and root's: more than [`MAX_LEN`] bytes, or a first
//! line that is not a domain name, is an error naming the file, never a
//! guess.

use std::io;
use std::path::{Path, PathBuf};

/// Where Debian keeps it.
pub const PATH: &str = "/etc/mailname";

/// The most that is read: a domain name is at most 253 octets.
pub const MAX_LEN: u64 = 4096;

/// Why `/etc/mailname` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MailnameError {
    /// It exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Its first line is not a domain name.
    #[error(
        "{path}: {reason}; write this machine's mail domain on its first line (e.g. `echo example.org > {path}`)"
    )]
    Invalid { path: PathBuf, reason: String },
}

/// Reads `path` (normally [`PATH`]): `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<String>, MailnameError> {
    let bytes = match super::read_bounded(path, MAX_LEN) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(source) => {
            return Err(MailnameError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let invalid = |reason: String| MailnameError::Invalid {
        path: path.to_owned(),
        reason,
    };
    if bytes.len() as u64 > MAX_LEN {
        return Err(invalid(format!("longer than {MAX_LEN} bytes")));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
    parse(text).map(Some).map_err(invalid)
}

/// The domain on the first line of the file's text, lower-cased, without
/// a trailing dot. The error says what is wrong with it.
pub fn parse(text: &str) -> Result<String, String> {
    let line = text.lines().next().unwrap_or("").trim();
    let name = line.strip_suffix('.').unwrap_or(line);
    check_domain(name)?;
    Ok(name.to_ascii_lowercase())
}

/// A host or domain name as RFC 1123 allows it: dot-separated labels of
/// letters, digits and hyphens, no label empty, longer than 63 octets or
/// starting or ending with a hyphen, at most 253 octets in all.
fn check_domain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the first line is empty".into());
    }
    if name.len() > 253 {
        let start: String = name.chars().take(32).collect();
        return Err(format!("{start:?}... is longer than 253 octets"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("{name:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("{name:?} has a label longer than 63 octets"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("{name:?} has a label starting or ending with '-'"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!("{name:?} is not a domain name (it contains {c:?})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn first_line_lowercased_without_trailing_dot() {
        assert_eq!(parse("Mail.Example.ORG.\n").unwrap(), "mail.example.org");
        assert_eq!(parse("  example.org  \nignored\n").unwrap(), "example.org");
        assert_eq!(parse("localhost").unwrap(), "localhost");
        assert_eq!(
            parse("xn--bcher-kva.example\n").unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn what_is_not_a_domain_is_refused_with_a_reason() {
        for (text, needle) in [
            ("", "empty"),
            ("\nexample.org\n", "empty"),
            ("example..org", "empty label"),
            ("exa mple.org", "' '"),
            ("root@example.org", "'@'"),
            ("-bad.example", "'-'"),
            ("bücher.example", "'ü'"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let long = format!("{}.org", "a".repeat(64));
        assert!(parse(&long).unwrap_err().contains("63"));
        let longer = ["abcdefgh"; 40].join(".");
        assert!(parse(&longer).unwrap_err().contains("253"));
        // Multi-byte characters at the cut do not panic.
        assert!(parse(&"ü".repeat(200)).unwrap_err().contains("253"));
    }

    #[test]
    fn read_missing_is_none_and_errors_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mailname");
        assert!(read(&path).unwrap().is_none());

        std::fs::write(&path, "host.example.net\n").unwrap();
        assert_eq!(read(&path).unwrap().as_deref(), Some("host.example.net"));

        std::fs::write(&path, "not a name\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("echo example.org >"), "{e}");

        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&vec![b'a'; MAX_LEN as usize + 1]).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("longer than"));

        std::fs::write(&path, b"\xffexample.org\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("UTF-8"));
    }

    #[test]
    fn a_directory_in_its_place_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path()).unwrap_err();
        assert!(matches!(e, MailnameError::Read { .. }), "{e}");
    }
}
