//! The ESMTP service extensions a server advertised in its EHLO reply
//! (RFC 5321 §4.1.1.1), parsed the way smtplib parses them: names
//! lower-cased, parameters kept as one string, repeated AUTH lines and the
//! old `AUTH=` form merged.

use super::reply::Reply;

/// The extension map of one EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    features: Vec<(String, String)>,
}

impl Extensions {
    /// Parses the lines after the first of a 250 EHLO (or LHLO) reply.
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut ext = Extensions::default();
        for line in reply.lines().iter().skip(1) {
            // Lines are already stripped of blanks (see `reply`), and text
            // may hold any character: only ASCII bytes are looked at, so no
            // index can fall inside a multi-byte character.
            let bytes = line.as_bytes();
            // Old-style "AUTH=LOGIN PLAIN" (pre-RFC 2554 servers).
            if bytes.len() >= 5 && bytes[..5].eq_ignore_ascii_case(b"auth=") {
                ext.append_auth(line.get(5..).unwrap_or(""));
                continue;
            }
            let name_len = bytes
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
                .count();
            // A keyword is strict: it starts with a letter or digit and
            // ends at a blank or the end of the line ("SIZE\u{e9}" is not
            // an extension).
            let ends_well = bytes
                .get(name_len)
                .is_none_or(|b| *b == b' ' || *b == b'\t');
            if name_len == 0 || !bytes[0].is_ascii_alphanumeric() || !ends_well {
                continue;
            }
            let (name, params) = line.split_at(name_len);
            let name = name.to_ascii_lowercase();
            let params = params.trim();
            if name == "auth" {
                ext.append_auth(params);
            } else {
                ext.set(name, params.to_owned());
            }
        }
        ext
    }

    fn set(&mut self, name: String, params: String) {
        match self.features.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = params,
            None => self.features.push((name, params)),
        }
    }

    fn append_auth(&mut self, params: &str) {
        let prev = self.get("auth").unwrap_or("").to_owned();
        self.set("auth".into(), format!("{prev} {}", params.trim()));
    }

    /// Whether the extension was advertised (case-insensitive).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The extension's parameters, if advertised.
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.features
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.as_str())
    }

    /// Every advertised extension with its parameters, in reply order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.features.iter().map(|(n, p)| (n.as_str(), p.as_str()))
    }

    /// Whether nothing was advertised (HELO, or an EHLO reply of one line).
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The SIZE limit (RFC 1870): `Some(0)` when SIZE is advertised with no
    /// limit, `None` when SIZE is not advertised.
    pub fn size_limit(&self) -> Option<u64> {
        self.get("size").map(|p| {
            p.split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
    }

    /// The SASL mechanisms offered, upper-cased, without duplicates.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in self.get("auth").unwrap_or("").split_whitespace() {
            let m = m.to_ascii_uppercase();
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::parse_reply;

    fn ext(s: &str) -> Extensions {
        Extensions::from_ehlo(&parse_reply(s.as_bytes()).unwrap())
    }

    #[test]
    fn rfc5321_appendix_d_ehlo() {
        let e = ext(
            "250-foo.com greets bar.com\r\n250-8BITMIME\r\n250-SIZE\r\n250-DSN\r\n250 HELP\r\n",
        );
        assert!(e.has("8bitmime") && e.has("8BITMIME") && e.has("dsn") && e.has("help"));
        assert_eq!(e.size_limit(), Some(0));
        assert!(!e.has("pipelining"));
    }

    #[test]
    fn parameters_and_auth_merging() {
        let e = ext(
            "250-mx.example\r\n250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=LOGIN CRAM-MD5\r\n250-auth xoauth2\r\n250 STARTTLS\r\n",
        );
        assert_eq!(e.size_limit(), Some(10_240_000));
        assert_eq!(
            e.auth_mechanisms(),
            ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]
        );
        assert_eq!(e.get("StartTLS"), Some(""));
    }

    #[test]
    fn junk_lines_ignored() {
        // smtplib strips the blanks around each line first, so
        // "250- leading space" is the feature "leading".
        let e = ext("250-x\r\n250- leading space\r\n250--dash\r\n250 X-EXT a b\r\n");
        assert_eq!(
            e.iter().collect::<Vec<_>>(),
            [("leading", "space"), ("x-ext", "a b")]
        );
        assert!(ext("250 only greeting\r\n").is_empty());
    }

    /// Server bytes can be anything: non-ASCII text never panics (it once
    /// did: `line[..5]` on "\u{e9}\u{e9}\u{e9}") and never makes a keyword.
    #[test]
    fn non_ascii_lines_never_panic_nor_count() {
        for raw in [
            &b"250-x\r\n250-\xc3\xa9\xc3\xa9\xc3\xa9\r\n250 OK\r\n"[..],
            b"250-x\r\n250-\xe9\xe9\r\n250 8BITMIME\r\n",
            b"250-x\r\n250-AUTH\xc3\xa9 PLAIN\r\n250-SIZE\xe9 10\r\n250 au\xc3\xa9\r\n",
            b"250-x\r\n250-auth=\xc3\xa9\r\n250 a\r\n",
        ] {
            let e = Extensions::from_ehlo(&parse_reply(raw).unwrap());
            assert!(!e.has("size"));
            for (name, _) in e.iter() {
                assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            }
        }
    }
}
