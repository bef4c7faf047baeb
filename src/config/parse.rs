//! From TOML text to raw tables, with every error placed at FILE:LINE and
//! named by its key.
//!
//! The document is parsed once into toml's spanned tree. A [`SpanIndex`]
//! records, for every key, where the key and its value stand; serde then
//! deserializes the same tree. toml's errors carry only a byte range, so
//! the index turns that range back into the key and table it belongs to,
//! and the byte offset into a line number.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::ConfigError;
use super::schema::{PROFILE_KEYS, RawProfile, RawTop, TOP_ONLY_KEYS};

/// Where one key stands in the file.
#[derive(Debug, Clone)]
struct Entry {
    /// The table path and the key, e.g. `["profile", "work", "port"]`.
    path: Vec<String>,
    key: Range<usize>,
    value: Range<usize>,
}

/// Every key of the document with its position, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct SpanIndex {
    entries: Vec<Entry>,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
}

impl SpanIndex {
    fn new(text: &str, root: &DeTable<'_>) -> Self {
        let mut entries = Vec::new();
        walk(root, &mut Vec::new(), &mut entries);
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SpanIndex {
            entries,
            line_starts,
        }
    }

    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).max(1)
    }

    /// The line of a key, given its full path.
    pub fn key_line(&self, path: &[&str]) -> Option<usize> {
        self.find(path).map(|e| self.line_of(e.key.start))
    }

    /// The names of the keys of one table, in file order.
    pub fn keys_in_order(&self, table: &[&str]) -> Vec<String> {
        let mut found: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.path.len() == table.len() + 1 && e.path[..table.len()] == *table)
            .collect();
        found.sort_by_key(|e| e.key.start);
        found
            .into_iter()
            .map(|e| e.path[table.len()].clone())
            .collect()
    }

    fn find(&self, path: &[&str]) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// The innermost key an error's byte range belongs to: the key itself
    /// (an unknown key) or the key whose value holds it (a bad value).
    fn owner(&self, span: &Range<usize>) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| {
                e.key == *span
                    || (e.value.start <= span.start
                        && (span.start < e.value.end || e.value == *span))
            })
            .max_by_key(|e| e.path.len())
    }
}

fn walk(table: &DeTable<'_>, prefix: &mut Vec<String>, out: &mut Vec<Entry>) {
    for (k, v) in table.iter() {
        prefix.push(k.get_ref().to_string());
        out.push(Entry {
            path: prefix.clone(),
            key: k.span(),
            value: v.span(),
        });
        if let DeValue::Table(t) = v.get_ref() {
            walk(t, prefix, out);
        }
        prefix.pop();
    }
}

/// The raw document: the top level's own keys, its profile-key defaults,
/// and the index to place later errors with.
pub(crate) struct RawDocument {
    pub top: RawTop,
    pub defaults: RawProfile,
    pub index: SpanIndex,
}

/// Parses and shape-checks a document. `path` only names the file in
/// errors.
pub(crate) fn parse_document(text: &str, path: &Path) -> Result<RawDocument, ConfigError> {
    let root = DeTable::parse(text).map_err(|e| syntax_error(text, path, &e))?;
    let index = SpanIndex::new(text, root.get_ref());
    let span = root.span();
    let mut rest = root.into_inner();
    let mut own = DeTable::new();
    for key in TOP_ONLY_KEYS {
        if let Some((k, v)) = rest.remove_entry(*key) {
            own.insert(k, v);
        }
    }
    let top = RawTop::deserialize(deserializer(span.clone(), own))
        .map_err(|e| shape_error(&index, path, &e))?;
    let defaults = RawProfile::deserialize(deserializer(span, rest))
        .map_err(|e| shape_error(&index, path, &e))?;
    Ok(RawDocument {
        top,
        defaults,
        index,
    })
}

fn deserializer(span: Range<usize>, table: DeTable<'_>) -> toml::de::Deserializer<'_> {
    Spanned::new(span, table).into()
}

/// Makes errors about a key at its line.
pub(crate) struct Locator<'a> {
    pub path: &'a Path,
    pub index: &'a SpanIndex,
}

impl Locator<'_> {
    /// An error about `key` in the table at `table` (empty for the top
    /// level). `message` follows "bad value for "KEY" in [TABLE]: ".
    pub fn bad_value(
        &self,
        table: &[&str],
        key: &str,
        message: impl std::fmt::Display,
    ) -> ConfigError {
        self.at(
            table,
            key,
            format!(
                "bad value for \"{key}\" {}: {message}",
                describe_table(table)
            ),
        )
    }

    /// An error about `key` whose whole text is `message`.
    pub fn at(&self, table: &[&str], key: &str, message: String) -> ConfigError {
        let mut full: Vec<&str> = table.to_vec();
        full.push(key);
        let line = self
            .index
            .key_line(&full)
            .or_else(|| self.index.key_line(table))
            .unwrap_or(1);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            key: Some(key.to_owned()),
            message,
        }
    }
}

/// "in [profile.work]", "at the top level".
pub(crate) fn describe_table(table: &[&str]) -> String {
    if table.is_empty() {
        "at the top level".into()
    } else {
        format!("in [{}]", table_name(table))
    }
}

/// `profile.work`, quoting parts that are not bare keys.
pub(crate) fn table_name(table: &[&str]) -> String {
    table
        .iter()
        .map(|p| {
            let bare = !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if bare {
                (*p).to_owned()
            } else {
                format!("{p:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn syntax_error(text: &str, path: &Path, e: &toml::de::Error) -> ConfigError {
    let span = e.span().unwrap_or(0..0);
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut message = format!("invalid TOML: {}", e.message());
    if e.message() == "duplicate key"
        && let Some(k) = text.get(span.clone()).filter(|k| !k.is_empty())
    {
        let k = k.trim_matches(|c| c == '"' || c == '\'');
        message = format!("invalid TOML: duplicate key \"{k}\"");
    }
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        key: None,
        message,
    }
}

fn shape_error(index: &SpanIndex, path: &Path, e: &toml::de::Error) -> ConfigError {
    let owner = e.span().and_then(|s| index.owner(&s));
    let Some(owner) = owner else {
        return ConfigError::Invalid {
            path: path.to_path_buf(),
            line: e.span().map_or(1, |s| index.line_of(s.start)),
            key: None,
            message: e.message().to_owned(),
        };
    };
    let (key, table) = owner.path.split_last().expect("index paths are not empty");
    let table: Vec<&str> = table.iter().map(String::as_str).collect();
    let line = index.line_of(owner.key.start);
    let message = if e.message().starts_with("unknown field `") {
        unknown_key(&table, key)
    } else if key == "password" {
        // serde quotes the value it did not expect: never for this key.
        format!(
            "bad value for \"password\" {}: expected a string",
            describe_table(&table)
        )
    } else if table == ["profile"] {
        format!(
            "bad value for \"{key}\" in [profile]: {} (each profile is a [profile.NAME] table)",
            e.message()
        )
    } else {
        format!(
            "bad value for \"{key}\" {}: {}",
            describe_table(&table),
            e.message()
        )
    };
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        key: Some(key.clone()),
        message,
    }
}

fn unknown_key(table: &[&str], key: &str) -> String {
    let mut message = format!("unknown key \"{key}\" {}", describe_table(table));
    let in_profile = table.len() == 2 && table[0] == "profile";
    if in_profile && TOP_ONLY_KEYS.contains(&key) {
        message.push_str(&format!(" (\"{key}\" belongs at the top level)"));
        return message;
    }
    let known: Vec<&str> = if table.is_empty() {
        TOP_ONLY_KEYS.iter().chain(PROFILE_KEYS).copied().collect()
    } else {
        PROFILE_KEYS.to_vec()
    };
    if let Some(s) = suggest(key, &known) {
        message.push_str(&format!(" (did you mean \"{s}\"?)"));
    }
    message
}

/// The known key closest to a misspelt one, if it is close enough to be
/// what was meant.
fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    worth_comparing(&key, known)
        .map(|k| (edit_distance(&key, k), k))
        .filter(|(d, k)| *d <= max_typos(k))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// How many edits a misspelling of `known` may have.
fn max_typos(known: &str) -> usize {
    (known.len() / 3).max(1)
}

/// The known keys whose length is within [`max_typos`] of the key's: the
/// distance is at least the difference in length, so no other could be
/// suggested. This also keeps a huge unknown key (a 1 MiB file of one
/// name) from costing a table of its length per known key (it took 90 s
/// and 200 MB before).
fn worth_comparing<'a, 'k>(
    key: &'k str,
    known: &'k [&'a str],
) -> impl Iterator<Item = &'a str> + 'k {
    let len = key.chars().count();
    known
        .iter()
        .copied()
        .filter(move |k| len.abs_diff(k.chars().count()) <= max_typos(k))
}

/// Levenshtein distance, with a transposition costing one (so "hots"
/// is one step from "host").
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("hots", "host"), 1);
        assert_eq!(edit_distance("prot", "port"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(suggest("hots", PROFILE_KEYS), Some("host"));
        assert_eq!(suggest("passwd", PROFILE_KEYS), Some("password"));
        assert_eq!(suggest("TLS", PROFILE_KEYS), Some("tls"));
        assert_eq!(suggest("colour", PROFILE_KEYS), None);
    }

    #[test]
    fn a_huge_unknown_key_is_compared_with_nothing() {
        let huge = "x".repeat(100_000);
        assert_eq!(worth_comparing(&huge, PROFILE_KEYS).count(), 0);
        assert_eq!(suggest(&huge, PROFILE_KEYS), None);
        assert!(worth_comparing("hots", PROFILE_KEYS).any(|k| k == "host"));
    }

    #[test]
    fn lines() {
        let text = "a = 1\n\nb = 2\n";
        let root = DeTable::parse(text).unwrap();
        let index = SpanIndex::new(text, root.get_ref());
        assert_eq!(index.line_of(0), 1);
        assert_eq!(index.line_of(5), 1);
        assert_eq!(index.line_of(6), 2);
        assert_eq!(index.line_of(7), 3);
        assert_eq!(index.key_line(&["b"]), Some(3));
        assert_eq!(index.keys_in_order(&[]), ["a", "b"]);
    }

    #[test]
    fn table_names() {
        assert_eq!(table_name(&["profile", "work"]), "profile.work");
        assert_eq!(table_name(&["profile", "my work"]), "profile.\"my work\"");
        assert_eq!(describe_table(&[]), "at the top level");
    }
}
