//! `/etc/aliases`: where mail for bare local names goes on a Debian
//! machine (aliases(5)), used when the configuration has no `[aliases]`.
//!
//! ```text
//! # comment
//! postmaster: root
//! root: admin@example.org, "ops team"@example.org
//! backup: alice,
//!     bob@example.org        <- a line starting with white space continues
//! ```
//!
//! Names are compared without case. A value is a comma-separated list of
//! addresses and alias names (double quotes protect commas). smtpsend
//! relays: it runs no programs and writes no files, so `|command`,
//! `/file`, `:include:/file` and `\name` (deliver to the local mailbox
//! without aliasing) targets are left out and listed in
//! [`SystemAliases::skipped`] with the reason, as is a malformed line;
//! the rest of the file still applies. A name whose every target was left
//! out is dropped, as is every name in an alias loop.
//!
//! Hand-written rather than taken from a crate: no crate parses
//! aliases(5), and the format is a few rules.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::Aliases;
use crate::config::aliases::check_name;

/// Where Debian keeps it.
pub const PATH: &str = "/etc/aliases";

/// The most that is read: Debian's file is a few hundred bytes; a site
/// with a large table keeps it in its relay, not here.
pub const MAX_LEN: u64 = 1024 * 1024;

/// Why `/etc/aliases` could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum AliasesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is longer than {MAX_LEN} bytes; move the table into [aliases] of the configuration or to the relay"
    )]
    TooLong { path: PathBuf },
}

/// A target or line of the file that is not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The 1-based line where its entry starts.
    pub line: usize,
    /// The alias name (empty when the line had none).
    pub name: String,
    /// The target left out (empty for a whole line).
    pub target: String,
    pub reason: String,
}

/// The usable part of an aliases file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemAliases {
    /// Lower-cased name → targets in file order.
    pub entries: BTreeMap<String, Vec<String>>,
    /// What was left out, in file order.
    pub skipped: Vec<Skipped>,
}

/// Reads `path` (normally [`PATH`]): `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<SystemAliases>, AliasesError> {
    let bytes = match super::read_bounded(path, MAX_LEN) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(source) => {
            return Err(AliasesError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    if bytes.len() as u64 > MAX_LEN {
        return Err(AliasesError::TooLong {
            path: path.to_owned(),
        });
    }
    Ok(Some(parse(&String::from_utf8_lossy(&bytes))))
}

/// Parses the text of an aliases file. Never fails: what cannot be used
/// is listed in [`SystemAliases::skipped`].
pub fn parse(text: &str) -> SystemAliases {
    let mut out = SystemAliases::default();
    for (line, entry) in logical_lines(text) {
        out.add_entry(line, &entry);
    }
    out.drop_loops();
    out
}

/// Joins continuation lines, drops comments and blank lines; yields
/// (first line number, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut last_was_entry = false;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            // A comment or blank line ends nothing: sendmail and Postfix
            // let continuations follow a comment line.
            continue;
        }
        let continues = raw.starts_with([' ', '\t']);
        match out.last_mut() {
            Some((_, entry)) if continues && last_was_entry => {
                entry.push(' ');
                entry.push_str(trimmed);
            }
            _ => out.push((i + 1, trimmed.to_owned())),
        }
        last_was_entry = true;
    }
    out
}

impl SystemAliases {
    fn skip(&mut self, line: usize, name: &str, target: &str, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            line,
            name: name.to_owned(),
            target: target.to_owned(),
            reason: reason.into(),
        });
    }

    fn add_entry(&mut self, line: usize, entry: &str) {
        let Some((name, value)) = entry.split_once(':') else {
            self.skip(line, "", "", "no ':' after the name");
            return;
        };
        let name = name.trim();
        let key = match check_name(name) {
            Ok(k) => k,
            Err(reason) => {
                self.skip(line, name, "", reason);
                return;
            }
        };
        if self.entries.contains_key(&key) {
            self.skip(
                line,
                name,
                "",
                "a second entry for this name; the first one is used",
            );
            return;
        }
        let mut targets = Vec::new();
        for piece in split_targets(value) {
            match check_target(&piece) {
                Ok(()) => targets.push(piece),
                Err(reason) => self.skip(line, name, &piece, reason),
            }
        }
        if !targets.is_empty() {
            self.entries.insert(key, targets);
        } else if !self.skipped.iter().any(|s| s.line == line) {
            self.skip(line, name, "", "no targets");
        }
    }

    /// Removes every name that is part of a loop, so the rest is usable.
    fn drop_loops(&mut self) {
        // Each pass removes at least one name: bounded by their number.
        while let Err(chain) = check_loops(&self.entries) {
            let name = chain.last().cloned().unwrap_or_default();
            let line = 0;
            self.entries.remove(&name);
            self.skip(
                line,
                &name,
                "",
                format!(
                    "an alias loop ({}); the name is not used",
                    chain.join(" -> ")
                ),
            );
        }
    }

    /// The table in the configuration's form, to resolve recipients with.
    pub fn to_aliases(&self) -> Aliases {
        Aliases::from_map(self.entries.clone())
    }
}

/// Returns the chain of the first loop found.
fn check_loops(entries: &BTreeMap<String, Vec<String>>) -> Result<(), Vec<String>> {
    let table = Aliases::from_map(entries.clone());
    for name in entries.keys() {
        if let Err(crate::config::ConfigError::AliasLoop { chain }) = table.resolve(name) {
            return Err(chain);
        }
    }
    Ok(())
}

/// Splits a value at commas outside double quotes; trims each piece and
/// drops empty ones (a trailing comma is common).
fn split_targets(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                cur.push(c);
                quoted = !quoted;
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether a target is an address or name smtpsend can send to.
fn check_target(t: &str) -> Result<(), String> {
    let bare = t.trim_matches('"');
    if bare.starts_with('|') {
        return Err("programs are not run: smtpsend relays mail".into());
    }
    if bare.starts_with('/') {
        return Err("files are not written: smtpsend relays mail".into());
    }
    if bare.to_ascii_lowercase().starts_with(":include:") {
        return Err(":include: files are not read".into());
    }
    if bare.starts_with('\\') {
        return Err(
            "\\name (the local mailbox without aliasing) is not supported; give an address".into(),
        );
    }
    if t.chars().any(char::is_control) || (!t.starts_with('"') && t.contains(char::is_whitespace)) {
        return Err("not an address: spaces or control characters".into());
    }
    if t.starts_with('@') || t.ends_with('@') {
        return Err("not an address: an empty local part or domain".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Target;

    const DEBIAN: &str = "\
# /etc/aliases
mailer-daemon: postmaster
postmaster: root
nobody: root
hostmaster: root
usenet: root
news: root
webmaster: root
www: root
ftp: root
abuse: root
noc: root
security: root
root: admin@example.org
";

    #[test]
    fn debians_default_file_routes_everything_to_root_and_roots_address() {
        let a = parse(DEBIAN);
        assert!(a.skipped.is_empty(), "{:?}", a.skipped);
        let t = a.to_aliases();
        for name in ["MAILER-DAEMON", "postmaster", "www", "root"] {
            assert_eq!(
                t.resolve(name).unwrap(),
                vec![Target::Address("admin@example.org".into())],
                "{name}"
            );
        }
        assert_eq!(
            t.resolve("alice").unwrap(),
            vec![Target::Unqualified("alice".into())]
        );
    }

    #[test]
    fn continuations_comments_quotes_and_trailing_commas() {
        let a = parse(
            "ops: alice@example.org,\n\
             \tbob@example.org,\n\
             # a comment between continuation lines\n\
             \x20   \"carol, the boss\"@example.org,\n\
             Team : ops , dave\n",
        );
        assert_eq!(
            a.entries["ops"],
            vec![
                "alice@example.org",
                "bob@example.org",
                "\"carol, the boss\"@example.org",
            ]
        );
        assert_eq!(a.entries["team"], vec!["ops", "dave"]);
        assert!(a.skipped.is_empty(), "{:?}", a.skipped);
    }

    #[test]
    fn programs_files_includes_and_backslash_names_are_left_out_with_reasons() {
        let a = parse(
            "list: |/usr/bin/mailman post list, alice@example.org\n\
             log: /var/log/mail.archive\n\
             inc: :include:/etc/mail/staff\n\
             quoted: \"|/bin/sh -c evil\"\n\
             root: \\root, admin@example.org\n",
        );
        assert_eq!(a.entries["list"], vec!["alice@example.org"]);
        assert_eq!(a.entries["root"], vec!["admin@example.org"]);
        for gone in ["log", "inc", "quoted"] {
            assert!(!a.entries.contains_key(gone), "{gone}");
        }
        let reasons: Vec<_> = a
            .skipped
            .iter()
            .map(|s| (s.line, s.reason.as_str()))
            .collect();
        assert!(reasons[0].1.contains("programs"), "{reasons:?}");
        assert!(reasons[1].1.contains("files"), "{reasons:?}");
        assert!(reasons[2].1.contains(":include:"), "{reasons:?}");
        assert!(reasons[3].1.contains("programs"), "{reasons:?}");
        assert!(reasons[4].1.contains("\\name"), "{reasons:?}");
        assert_eq!(
            reasons.iter().map(|r| r.0).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn malformed_lines_duplicates_and_loops_are_skipped_not_fatal() {
        let a = parse(
            "no colon here\n\
             : nothing\n\
             a@b: c\n\
             x: y@example.org\n\
             X: z@example.org\n\
             loop1: loop2\n\
             loop2: loop1\n\
             empty:\n\
             ok: fine@example.org\n",
        );
        assert_eq!(a.entries["x"], vec!["y@example.org"]);
        assert_eq!(a.entries["ok"], vec!["fine@example.org"]);
        assert!(!a.entries.contains_key("a@b"));
        assert!(!a.entries.contains_key("empty"));
        assert!(!a.entries.contains_key("loop1") || !a.entries.contains_key("loop2"));
        // What remains resolves without a loop error.
        let t = a.to_aliases();
        for name in a.entries.keys() {
            t.resolve(name).unwrap();
        }
        let text: Vec<_> = a.skipped.iter().map(|s| s.reason.clone()).collect();
        assert!(text.iter().any(|r| r.contains("no ':'")), "{text:?}");
        assert!(text.iter().any(|r| r.contains("second entry")), "{text:?}");
        assert!(text.iter().any(|r| r.contains("loop")), "{text:?}");
        assert!(text.iter().any(|r| r.contains("no targets")), "{text:?}");
    }

    #[test]
    fn read_missing_is_none_and_too_long_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        assert!(read(&path).unwrap().is_none());
        std::fs::write(&path, "root: a@example.org\n").unwrap();
        assert_eq!(read(&path).unwrap().unwrap().entries.len(), 1);
        std::fs::write(&path, vec![b'#'; MAX_LEN as usize + 1]).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("[aliases]"),
            "{e}"
        );
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "\u{0}:\u{0}",
            ":::",
            "\t\t\n\t",
            "\"",
            "a: \"",
            "a: \\",
            "a:,,,,",
            "é: ü",
        ] {
            let _ = parse(text);
        }
    }
}
