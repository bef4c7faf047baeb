//! The TOML schema as serde sees it: the shape of each key (string,
//! integer, list), with `deny_unknown_fields` everywhere.
//!
//! These types only check shapes. What a value means (a port in range, a
//! fingerprint of 64 hex digits, a path to expand) is checked when a raw
//! table becomes a typed layer, in `profile.rs`, where the file's line for
//! each key is at hand. The profile keys themselves are one table in
//! `profile.rs`, which generates their schema (`RawProfile`).
//!
//! The top level carries `default_profile`, `[profile.NAME]`, `[aliases]`
//! and every profile key as a default for all profiles. serde's `flatten`
//! would express that but silently disables `deny_unknown_fields`, so the
//! loader splits the top-level table in two and deserializes each part on
//! its own (see `parse.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// Keys that may only stand at the top level.
pub(crate) const TOP_ONLY_KEYS: &[&str] = &[
    "default_profile",
    "profile",
    "aliases",
    // The system file's rules for restricted command lines (policy.rs).
    "restrict_args",
    "allow_args",
    "allow_config_dirs",
];

// The profile keys (`RawProfile`, `PROFILE_KEYS`) are defined once, in
// the table in `profile.rs`, with their types and defaults.
pub(crate) use super::profile::{PROFILE_KEYS, RawProfile};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP; no TLS at all (only for a trusted network or loopback).
    None,
    /// Plain connection upgraded with STARTTLS; refuses to go on without it.
    Starttls,
    /// TLS from the first byte (implicit TLS, port 465).
    Tls,
}

impl TlsMode {
    /// The port each mode uses by default.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }
    }
}

impl std::fmt::Display for TlsMode {
    /// As the configuration file writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::None => "none",
            TlsMode::Starttls => "starttls",
            TlsMode::Tls => "tls",
        })
    }
}

/// What a message is delivered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Submit to an SMTP relay (the default).
    #[default]
    Smtp,
    /// Deliver into a local Maildir.
    Maildir,
    /// Hand to an LMTP server.
    Lmtp,
}

/// The keys only the top level has.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTop {
    pub default_profile: Option<String>,
    pub profile: Option<Profiles>,
    pub aliases: Option<AliasTable>,
    pub restrict_args: Option<bool>,
    pub allow_args: Option<OneOrMany>,
    pub allow_config_dirs: Option<OneOrMany>,
}

/// `[profile.NAME]` tables by name.
pub(crate) struct Profiles(pub BTreeMap<String, RawProfile>);

/// `[aliases]`: name = value(s).
pub(crate) struct AliasTable(pub BTreeMap<String, OneOrMany>);

/// A password as written. Not `Debug`, so a raw table cannot print it.
pub(crate) struct RawSecret(pub String);

/// A string, or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// An integer, with an `expecting` that says so in words (serde's own
/// says "i64").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int(pub i64);

/// A duration: plain seconds, or a string such as "90s" or "5d".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IntOrText {
    Int(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for Profiles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named_tables(d, "[profile.NAME] tables").map(Profiles)
    }
}

impl<'de> Deserialize<'de> for AliasTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named_tables(d, "a table of aliases (name = \"address\")").map(AliasTable)
    }
}

/// A table whose keys are names the user chose, with an `expecting` that
/// says what it is in the file's terms (serde's own says "a map").
fn named_tables<'de, D, T>(d: D, expecting: &'static str) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(&'static str, PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = BTreeMap<String, T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = m.next_entry::<String, T>()? {
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V(expecting, PhantomData))
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde's invalid-type message would quote the value; the loader
        // replaces any error on this key with one that does not.
        String::deserialize(d).map(RawSecret)
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<Text>()? {
                    out.push(v.0);
                }
                Ok(OneOrMany::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list element that must be a string.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for IntOrText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a number of seconds or a duration such as \"90s\", \"15m\", \"2h\", \"5d\"",
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrText, E> {
                Ok(IntOrText::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrText, E> {
                i64::try_from(v)
                    .map(IntOrText::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrText, E> {
                Ok(IntOrText::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PROFILE_KEYS` drives suggestions and the example's completeness
    /// test: it must list exactly the fields serde accepts.
    #[test]
    fn profile_keys_match_the_struct() {
        let err = match toml::from_str::<RawProfile>("zzz = 1") {
            Err(e) => e,
            Ok(_) => panic!("unknown key accepted"),
        };
        let msg = err.message();
        let expected = msg
            .split_once("expected one of ")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("unexpected serde message: {msg}"));
        let fields: Vec<&str> = expected.split(", ").map(|f| f.trim_matches('`')).collect();
        assert_eq!(fields, PROFILE_KEYS);
    }

    #[test]
    fn shapes() {
        #[derive(Deserialize)]
        struct T {
            a: OneOrMany,
            b: OneOrMany,
            c: Int,
            d: IntOrText,
            e: IntOrText,
        }
        let t: T = toml::from_str("a = 'x'\nb = ['y', 'z']\nc = 5\nd = 7\ne = '2h'").unwrap();
        assert_eq!(t.a, OneOrMany::One("x".into()));
        assert_eq!(t.b, OneOrMany::Many(vec!["y".into(), "z".into()]));
        assert_eq!(t.c, Int(5));
        assert_eq!(t.d, IntOrText::Int(7));
        assert_eq!(t.e, IntOrText::Text("2h".into()));
        let e = toml::from_str::<T>("a = [1]").err().unwrap();
        assert!(e.message().contains("expected a list of strings"), "{e}");
        let e = toml::from_str::<T>("a = 'x'\nb = 'y'\nc = 'z'")
            .err()
            .unwrap();
        assert!(e.message().contains("expected an integer"), "{e}");
    }
}
