//! Address lists in header fields (RFC 5322 §3.4): a strict tokenizer and
//! parser that yields, for good input, the addresses Python's
//! `email.utils.getaddresses` yields, and refuses what it would mangle.
//!
//! Why not mail-parser's address parser: it never fails, and for broken
//! input (`<a@x`, `team: a@x` without `;`, `"open quote <a@x>`) it, like
//! Python, guesses. A guess in a `-t` recipient list sends mail to the
//! wrong place or drops it, so here such input is an error naming the
//! problem. mail-parser still decodes RFC 2047 encoded words, but only in
//! display names and only after the structure is known, so an encoded word
//! can never turn into an address.
//!
//! This module also records, for an address without a domain (`root`),
//! the byte offset where `@domain` belongs, so qualification can insert
//! it without touching any other byte of the field.
//!
//! Accepted beyond the strict RFC 5322 grammar, as Python does: empty list
//! elements (`a@x,,b@y`), obsolete routes (`<@r1,@r2:a@x>`), white space
//! and comments around dots (`a . b @ x`), dots in display names
//! (`John Q. Public <jqp@x>`), consecutive dots in local parts, 8-bit
//! (UTF-8) text.

use std::fmt;

use mail_parser::HeaderValue;
use mail_parser::parsers::MessageStream;

use super::error::excerpt;

/// One mailbox named in a header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, RFC 2047 decoded; a comment stands in for it when
    /// there is none (`root (Cron Daemon)`), as in Python.
    pub display_name: Option<String>,
    /// The addr-spec with comments and folding white space removed:
    /// `local@domain`, a bare `local`, or empty for `<>`. Quoted local
    /// parts keep their quotes (`"a b"@x`). This is what goes in the
    /// envelope.
    pub addr: String,
    /// For an address without a domain: the offset in the parsed value
    /// just after its local part, where `@domain` belongs.
    pub(crate) bare_end: Option<usize>,
}

impl Mailbox {
    /// Whether the address has no domain part (and is not empty).
    pub fn is_bare(&self) -> bool {
        self.bare_end.is_some()
    }
}

/// Why an address list does not parse. [`super::MessageError::Address`]
/// adds the name of the header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressError {
    UnterminatedQuote,
    UnterminatedComment,
    UnterminatedDomainLiteral,
    /// A `)` with no `(` before it.
    UnbalancedParen,
    /// A `<` with no `>` after the address.
    UnclosedAngle,
    /// A `>` with no `<` before it.
    StrayAngle,
    /// A `<` inside `<...>`.
    NestedAngle,
    UnterminatedGroup {
        name: String,
    },
    NestedGroup {
        name: String,
    },
    GroupWithoutName,
    /// A `;` outside a group.
    StraySemicolon,
    /// `@domain` with nothing before it.
    MissingLocalPart,
    MissingDomain {
        local: String,
    },
    /// Words with no address: `John Doe`, `John Doe@x`.
    NameWithoutAddress {
        name: String,
    },
    /// Two addresses with no comma between them.
    MissingComma {
        found: String,
    },
    Unexpected {
        found: String,
    },
    NotUtf8,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::UnterminatedQuote => {
                f.write_str("a quoted string is not closed with '\"'")
            }
            AddressError::UnterminatedComment => f.write_str("a comment is not closed with ')'"),
            AddressError::UnterminatedDomainLiteral => {
                f.write_str("a domain literal is not closed with ']'")
            }
            AddressError::UnbalancedParen => f.write_str("')' without a matching '('"),
            AddressError::UnclosedAngle => f.write_str("'<' without a matching '>'"),
            AddressError::StrayAngle => f.write_str("'>' without a matching '<'"),
            AddressError::NestedAngle => f.write_str("'<' inside '<...>'"),
            AddressError::UnterminatedGroup { name } => {
                write!(f, "group \"{name}\" is not closed with ';'")
            }
            AddressError::NestedGroup { name } => {
                write!(f, "group \"{name}\" is inside another group")
            }
            AddressError::GroupWithoutName => f.write_str("a group (':') has no name"),
            AddressError::StraySemicolon => f.write_str("';' outside a group"),
            AddressError::MissingLocalPart => f.write_str("an address starts with '@'"),
            AddressError::MissingDomain { local } => {
                write!(f, "address \"{local}@\" has no domain after '@'")
            }
            AddressError::NameWithoutAddress { name } => write!(
                f,
                "\"{name}\" is not an address (a name needs one in angle brackets: Name <user@domain>)"
            ),
            AddressError::MissingComma { found } => {
                write!(f, "expected ',' between addresses, found \"{found}\"")
            }
            AddressError::Unexpected { found } => write!(f, "unexpected \"{found}\""),
            AddressError::NotUtf8 => f.write_str("an address is not valid UTF-8"),
        }
    }
}

impl std::error::Error for AddressError {}

/// Parses an address list (a header field's raw value: folding line breaks
/// allowed) into its mailboxes, in order, groups expanded to their
/// members. Elements without an address (`undisclosed-recipients:;`, empty
/// list elements, a lone comment) yield nothing; `<>` yields a mailbox with
/// an empty address, as in Python (the null sender).
pub fn parse_address_list(raw_value: &[u8]) -> Result<Vec<Mailbox>, AddressError> {
    let tokens = tokenize(raw_value)?;
    let mut parser = Parser {
        src: raw_value,
        tokens,
        pos: 0,
        comments: Vec::new(),
    };
    parser.list(None)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Atom,
    Quoted,
    DomainLiteral,
    Comment,
    Special(u8),
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    /// White space or a comment came before it.
    space_before: bool,
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

fn tokenize(s: &[u8]) -> Result<Vec<Token>, AddressError> {
    let mut tokens = Vec::new();
    let mut space = false;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let start = i;
        let kind = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                space = true;
                i += 1;
                continue;
            }
            b'(' => {
                let mut depth = 0usize;
                loop {
                    match s.get(i) {
                        None => return Err(AddressError::UnterminatedComment),
                        Some(b'\\') => {
                            i += 1;
                            if s.get(i).is_some_and(|&c| is_bad_control(c)) {
                                return Err(unexpected(&s[i..=i]));
                            }
                        }
                        Some(b'(') => depth += 1,
                        Some(b')') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Some(&c) if is_bad_control(c) => return Err(unexpected(&[c])),
                        Some(_) => {}
                    }
                    i += 1;
                }
                i += 1;
                Kind::Comment
            }
            b'"' => {
                i = close_quoted(s, i + 1, b'"').ok_or(AddressError::UnterminatedQuote)??;
                Kind::Quoted
            }
            b'[' => {
                i = close_quoted(s, i + 1, b']')
                    .ok_or(AddressError::UnterminatedDomainLiteral)??;
                Kind::DomainLiteral
            }
            b')' => return Err(AddressError::UnbalancedParen),
            b'<' | b'>' | b'@' | b',' | b';' | b':' | b'.' => {
                i += 1;
                Kind::Special(b)
            }
            _ if is_atext(b) => {
                while i < s.len() && is_atext(s[i]) {
                    i += 1;
                }
                Kind::Atom
            }
            // `]`, `\` outside quotes, control characters.
            _ => return Err(unexpected(&[b])),
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
            space_before: space,
        });
        space = kind == Kind::Comment;
    }
    Ok(tokens)
}

/// Finds the end (one past `close`) of a quoted string or domain literal
/// whose content starts at `i`: `None` if it is not closed.
fn close_quoted(s: &[u8], mut i: usize, close: u8) -> Option<Result<usize, AddressError>> {
    loop {
        match *s.get(i)? {
            b'\\' => match *s.get(i + 1)? {
                c if is_bad_control(c) => return Some(Err(unexpected(&[c]))),
                _ => i += 2,
            },
            c if c == close => return Some(Ok(i + 1)),
            b'[' if close == b']' => return Some(Err(unexpected(b"["))),
            c if is_bad_control(c) => return Some(Err(unexpected(&[c]))),
            _ => i += 1,
        }
    }
}

/// Control characters other than folding white space.
fn is_bad_control(c: u8) -> bool {
    (c < 0x20 && !matches!(c, b'\t' | b'\r' | b'\n')) || c == 0x7f
}

fn unexpected(bytes: &[u8]) -> AddressError {
    AddressError::Unexpected {
        found: excerpt(bytes),
    }
}

struct Parser<'a> {
    src: &'a [u8],
    tokens: Vec<Token>,
    pos: usize,
    /// Comments skipped since the current address began.
    comments: Vec<Token>,
}

impl Parser<'_> {
    /// The next token that is not a comment, without taking it.
    fn peek(&mut self) -> Option<Token> {
        while let Some(&t) = self.tokens.get(self.pos) {
            if t.kind != Kind::Comment {
                return Some(t);
            }
            self.comments.push(t);
            self.pos += 1;
        }
        None
    }

    fn peek_kind(&mut self) -> Option<Kind> {
        self.peek().map(|t| t.kind)
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn text(&self, t: &Token) -> &[u8] {
        &self.src[t.start..t.end]
    }

    /// `address-list`, or a group's `group-list` up to and including its
    /// `;` when `group` names the group being read.
    fn list(&mut self, group: Option<&str>) -> Result<Vec<Mailbox>, AddressError> {
        let mut out = Vec::new();
        loop {
            match self.peek_kind() {
                None => {
                    return match group {
                        Some(name) => Err(AddressError::UnterminatedGroup {
                            name: name.to_string(),
                        }),
                        None => Ok(out),
                    };
                }
                Some(Kind::Special(b',')) => self.bump(),
                Some(Kind::Special(b';')) => {
                    if group.is_none() {
                        return Err(AddressError::StraySemicolon);
                    }
                    self.bump();
                    return Ok(out);
                }
                Some(_) => {
                    self.address(group.is_some(), &mut out)?;
                    match self.peek() {
                        None => {}
                        Some(t) if matches!(t.kind, Kind::Special(b',' | b';')) => {}
                        Some(t) if t.kind == Kind::Special(b'>') => {
                            return Err(AddressError::StrayAngle);
                        }
                        Some(t) => {
                            return Err(AddressError::MissingComma {
                                found: excerpt(self.text(&t)),
                            });
                        }
                    }
                }
            }
        }
    }

    /// One `address`: a mailbox, or a group whose members are appended.
    fn address(&mut self, in_group: bool, out: &mut Vec<Mailbox>) -> Result<(), AddressError> {
        self.comments.clear();
        let phrase = self.words();
        match self.peek_kind() {
            Some(Kind::Special(b'<')) => {
                self.bump();
                let mut mailbox = self.angle_addr()?;
                mailbox.display_name = self.display_name(&phrase);
                out.push(mailbox);
            }
            Some(Kind::Special(b':')) => {
                let name = self.display_name(&phrase).unwrap_or_default();
                if in_group {
                    return Err(AddressError::NestedGroup { name });
                }
                if phrase.is_empty() {
                    return Err(AddressError::GroupWithoutName);
                }
                self.bump();
                out.extend(self.list(Some(&name))?);
            }
            Some(Kind::Special(b'@')) => {
                let mut mailbox = self.addr_spec(&phrase)?;
                mailbox.display_name = self.display_name(&[]);
                out.push(mailbox);
            }
            None | Some(Kind::Special(b',' | b';')) => {
                if !phrase.is_empty() {
                    let mut mailbox = self.addr_spec(&phrase)?;
                    mailbox.display_name = self.display_name(&[]);
                    out.push(mailbox);
                }
            }
            Some(Kind::Special(b'>')) => return Err(AddressError::StrayAngle),
            Some(_) => {
                // A domain literal where a name or address should start.
                let found = self.peek().map(|t| self.text(&t).to_vec());
                return Err(unexpected(&found.unwrap_or_default()));
            }
        }
        Ok(())
    }

    /// Takes the run of words and dots that may be a display name or a
    /// local part.
    fn words(&mut self) -> Vec<Token> {
        let mut words = Vec::new();
        while let Some(t) = self.peek() {
            if !matches!(t.kind, Kind::Atom | Kind::Quoted | Kind::Special(b'.')) {
                break;
            }
            words.push(t);
            self.bump();
        }
        words
    }

    /// After `<`: `[obs-route] [addr-spec] >`.
    fn angle_addr(&mut self) -> Result<Mailbox, AddressError> {
        // obs-route: `@a,@b:` before the address; dropped, as RFC 5321 says.
        let routed = self.peek_kind() == Some(Kind::Special(b'@'));
        if routed {
            loop {
                match self.peek_kind() {
                    Some(Kind::Special(b':')) => {
                        self.bump();
                        break;
                    }
                    Some(Kind::Special(b'@' | b',' | b'.') | Kind::Atom | Kind::DomainLiteral) => {
                        self.bump()
                    }
                    Some(Kind::Special(b'>')) => return Err(AddressError::MissingLocalPart),
                    _ => return Err(AddressError::UnclosedAngle),
                }
            }
        }
        let local = self.words();
        let mailbox = if local.is_empty() && self.peek_kind() == Some(Kind::Special(b'>')) {
            if routed {
                return Err(unexpected(b">"));
            }
            Mailbox {
                display_name: None,
                addr: String::new(),
                bare_end: None,
            }
        } else {
            self.addr_spec(&local)?
        };
        match self.peek_kind() {
            Some(Kind::Special(b'>')) => {
                self.bump();
                Ok(mailbox)
            }
            Some(Kind::Special(b'<')) => Err(AddressError::NestedAngle),
            _ => Err(AddressError::UnclosedAngle),
        }
    }

    /// `local-part ["@" domain]`, the local part already taken as `local`;
    /// the parser stands at `@` or after the local part.
    fn addr_spec(&mut self, local: &[Token]) -> Result<Mailbox, AddressError> {
        if local.is_empty() {
            return Err(if self.peek_kind() == Some(Kind::Special(b'@')) {
                AddressError::MissingLocalPart
            } else {
                let found = self.peek().map(|t| excerpt(self.text(&t)));
                unexpected(found.unwrap_or_default().as_bytes())
            });
        }
        let is_word = |t: &Token| matches!(t.kind, Kind::Atom | Kind::Quoted);
        let adjacent_words = local.windows(2).any(|w| is_word(&w[0]) && is_word(&w[1]));
        if adjacent_words || !local.iter().any(is_word) {
            let name = self.display_name(local).unwrap_or_default();
            return Err(AddressError::NameWithoutAddress { name });
        }
        let mut addr = Vec::new();
        for t in local {
            push_unfolded(&mut addr, self.text(t));
        }
        let local_end = local.last().map_or(0, |t| t.end);
        if self.peek_kind() != Some(Kind::Special(b'@')) {
            return Ok(Mailbox {
                display_name: None,
                addr: String::from_utf8(addr).map_err(|_| AddressError::NotUtf8)?,
                bare_end: Some(local_end),
            });
        }
        self.bump();
        addr.push(b'@');
        let mut has_domain = false;
        match self.peek() {
            Some(t) if t.kind == Kind::DomainLiteral => {
                push_unfolded(&mut addr, self.text(&t));
                self.bump();
                has_domain = true;
            }
            _ => {
                let mut last_was_atom = false;
                while let Some(t) = self.peek() {
                    match t.kind {
                        Kind::Atom if !last_was_atom => last_was_atom = true,
                        Kind::Special(b'.') => last_was_atom = false,
                        _ => break,
                    }
                    has_domain |= t.kind == Kind::Atom;
                    addr.extend_from_slice(self.text(&t));
                    self.bump();
                }
            }
        }
        let addr = String::from_utf8(addr).map_err(|_| AddressError::NotUtf8)?;
        if !has_domain {
            let local = addr.trim_end_matches('@').to_string();
            return Err(AddressError::MissingDomain { local });
        }
        Ok(Mailbox {
            display_name: None,
            addr,
            bare_end: None,
        })
    }

    /// The display name made of `phrase`, or of the comments seen in this
    /// address if the phrase is empty; RFC 2047 decoded.
    fn display_name(&self, phrase: &[Token]) -> Option<String> {
        let mut name = Vec::new();
        if phrase.is_empty() {
            for t in &self.comments {
                if !name.is_empty() {
                    name.push(b' ');
                }
                // Without the outer parentheses.
                push_unquoted(&mut name, &self.src[t.start + 1..t.end - 1]);
            }
        } else {
            for (i, t) in phrase.iter().enumerate() {
                if i > 0 && t.space_before {
                    name.push(b' ');
                }
                match t.kind {
                    Kind::Quoted => push_unquoted(&mut name, &self.src[t.start + 1..t.end - 1]),
                    _ => name.extend_from_slice(self.text(t)),
                }
            }
        }
        if name.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&name).into_owned();
        Some(decode_encoded_words(text))
    }
}

/// Splits an addr-spec as [`Mailbox::addr`] holds it into its local part
/// and its domain (`None` for a bare local part): at the first `@` outside
/// a quoted local part.
pub(crate) fn split_addr(addr: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in addr.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '@' if !quoted => return (&addr[..i], Some(&addr[i + 1..])),
            _ => {}
        }
    }
    (addr, None)
}

/// Appends `bytes` without CR and LF: a folded quoted string or domain
/// literal is unfolded, so no line break can reach an envelope address.
fn push_unfolded(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend(bytes.iter().filter(|&&b| b != b'\r' && b != b'\n'));
}

/// Appends the content of a quoted string or comment with its quoted
/// pairs resolved and unfolded.
fn push_unquoted(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut escaped = false;
    for &b in bytes {
        if b == b'\r' || b == b'\n' {
            continue;
        }
        if b == b'\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(b);
    }
}

/// Decodes RFC 2047 encoded words in a display name with mail-parser.
fn decode_encoded_words(text: String) -> String {
    if !text.contains("=?") {
        return text;
    }
    let mut input = text.clone().into_bytes();
    input.push(b'\n');
    match MessageStream::new(&input).parse_unstructured() {
        HeaderValue::Text(decoded) => decoded.into_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(value: &str) -> Vec<String> {
        parse_address_list(value.as_bytes())
            .unwrap_or_else(|e| panic!("{value:?}: {e}"))
            .into_iter()
            .map(|m| m.addr)
            .collect()
    }

    fn names(value: &str) -> Vec<Option<String>> {
        parse_address_list(value.as_bytes())
            .unwrap()
            .into_iter()
            .map(|m| m.display_name)
            .collect()
    }

    /// Good input: the addresses Python 3.11's
    /// `email.utils.getaddresses([value])` yields, less the empty entries
    /// it makes for empty list elements and groups.
    #[test]
    fn matches_python_getaddresses_on_good_input() {
        let cases: &[(&str, &[&str])] = &[
            ("a@x, b@y", &["a@x", "b@y"]),
            ("\"Doe, John\" <j@x>", &["j@x"]),
            ("Doe, John <j@x>", &["Doe", "j@x"]),
            ("root (Cron Daemon)", &["root"]),
            ("mdadm monitoring <root>", &["root"]),
            ("team: a@x, b@y;", &["a@x", "b@y"]),
            ("undisclosed-recipients:;", &[]),
            ("=?utf-8?q?a=40b.com?= <c@d>", &["c@d"]),
            ("\"a b\"@x", &["\"a b\"@x"]),
            ("a . b @ x", &["a.b@x"]),
            ("a@x,,b@y", &["a@x", "b@y"]),
            ("<>", &[""]),
            ("a@[1.2.3.4]", &["a@[1.2.3.4]"]),
            ("x (c1 (nested) c2) <a@b>", &["a@b"]),
            ("a@x (Name)", &["a@x"]),
            ("Name <a@x> (comment)", &["a@x"]),
            ("a@x\r\n\t, b@y", &["a@x", "b@y"]),
            ("a@x\n , b@y", &["a@x", "b@y"]),
            ("\"a\\\"b\"@x", &["\"a\\\"b\"@x"]),
            ("g1: a@x;, b@y", &["a@x", "b@y"]),
            ("a@b.c.", &["a@b.c."]),
            ("a..b@x", &["a..b@x"]),
            (" ", &[]),
            ("", &[]),
            ("root", &["root"]),
            ("A <a@x>, B <b@y>", &["a@x", "b@y"]),
            ("ä@x", &["ä@x"]),
            ("John Q. Public <jqp@x.example>", &["jqp@x.example"]),
            (
                "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
                &["pete@silly.test"],
            ),
            ("<@r1,@r2:a@x>", &["a@x"]),
            ("(only a comment)", &[]),
            (
                " \"Joe Q. Public\" <john.q.public@example.com>",
                &["john.q.public@example.com"],
            ),
            (
                "Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
                &["mary@x.test", "jdoe@example.org", "one@y.test"],
            ),
            (
                "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
                &["c@a.test", "joe@where.test", "jdoe@one.test"],
            ),
        ];
        for (value, want) in cases {
            assert_eq!(addrs(value), *want, "{value:?}");
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(names("\"Doe, John\" <j@x>"), [Some("Doe, John".into())]);
        assert_eq!(names("root (Cron Daemon)"), [Some("Cron Daemon".into())]);
        assert_eq!(
            names("mdadm monitoring <root>"),
            [Some("mdadm monitoring".into())]
        );
        assert_eq!(
            names("John Q. Public <a@x>"),
            [Some("John Q. Public".into())]
        );
        assert_eq!(names("a@x"), [None]);
        assert_eq!(names("=?utf-8?q?J=C3=B6rg?= <j@x>"), [Some("Jörg".into())]);
        assert_eq!(
            names("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@x>"),
            [Some("Keld Jørn Simonsen".into())]
        );
    }

    #[test]
    fn encoded_words_never_become_addresses() {
        // Decodes to "evil@x.example, other@y" but stays a name.
        let list = parse_address_list(b"=?utf-8?q?evil=40x.example=2C_other=40y?= <c@d>").unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].addr, "c@d");
        assert_eq!(
            list[0].display_name.as_deref(),
            Some("evil@x.example, other@y")
        );
    }

    #[test]
    fn split_addr_at_the_domain() {
        assert_eq!(split_addr("a@x"), ("a", Some("x")));
        assert_eq!(split_addr("root"), ("root", None));
        assert_eq!(split_addr("\"a@b\"@x"), ("\"a@b\"", Some("x")));
        assert_eq!(split_addr("\"a@b\""), ("\"a@b\"", None));
        assert_eq!(split_addr("\"a\\\"@b\"@x"), ("\"a\\\"@b\"", Some("x")));
        assert_eq!(split_addr("a@[1@2]"), ("a", Some("[1@2]")));
        assert_eq!(split_addr(""), ("", None));
    }

    #[test]
    fn folded_quoted_strings_are_unfolded_in_addresses() {
        assert_eq!(addrs("\"a\r\n b\"@x"), ["\"a b\"@x"]);
    }

    #[test]
    fn bare_addresses_know_where_the_domain_goes() {
        let value = "mdadm monitoring <root>, (c) bin (x), \"a b\", u@x";
        let list = parse_address_list(value.as_bytes()).unwrap();
        let ends: Vec<_> = list.iter().map(|m| m.bare_end).collect();
        assert_eq!(
            ends,
            [
                Some(value.find("root").unwrap() + 4),
                Some(value.find("bin").unwrap() + 3),
                Some(value.find("b\"").unwrap() + 2),
                None
            ]
        );
        assert!(list[0].is_bare() && !list[3].is_bare());
    }

    /// Bad input: Python guesses; we refuse and say why.
    #[test]
    fn bad_input_table() {
        let cases: &[(&str, &str)] = &[
            ("team: a@x, b@y", "group \"team\" is not closed with ';'"),
            (
                "undisclosed-recipients:",
                "group \"undisclosed-recipients\" is not closed",
            ),
            ("foo: bar", "group \"foo\" is not closed"),
            ("<a@x", "'<' without a matching '>'"),
            ("Name <a@x, b@y>", "'<' without a matching '>'"),
            ("a@x>", "'>' without a matching '<'"),
            ("Name a@x>", "is not an address"),
            ("a <b <c@d>>", "'<' inside '<...>'"),
            ("\"unterminated <a@x>", "quoted string is not closed"),
            ("(comment a@x", "comment is not closed"),
            ("a@x)", "')' without a matching '('"),
            ("a@[1.2.3.4", "domain literal is not closed"),
            ("a@", "address \"a@\" has no domain"),
            ("a@, b@y", "address \"a@\" has no domain"),
            ("@x", "an address starts with '@'"),
            ("John Doe@x", "\"John Doe\" is not an address"),
            ("John Doe", "\"John Doe\" is not an address"),
            ("Name a@x", "\"Name a\" is not an address"),
            (
                "\"quoted name\" root",
                "\"quoted name root\" is not an address",
            ),
            ("a@x y@z", "expected ',' between addresses, found \"y\""),
            ("a@x b", "expected ',' between addresses, found \"b\""),
            (
                "x <a@b> y <c@d>",
                "expected ',' between addresses, found \"y\"",
            ),
            ("<a@x> <b@y>", "expected ',' between addresses, found \"<\""),
            ("g: h: a@x;;", "group \"h\" is inside another group"),
            ("a@x;b@y", "';' outside a group"),
            (": a@x;", "a group (':') has no name"),
            ("a\\b@x", "unexpected \"\\\\\""),
            ("a]@x", "unexpected \"]\""),
            ("a\0b@x", "unexpected \"\\x00\""),
            ("\"a\x01\"@x", "unexpected \"\\x01\""),
            ("\"a\\\0\"@x", "unexpected \"\\x00\""),
            ("(a\\\0) b@x", "unexpected \"\\x00\""),
            ("[1.2] @x", "unexpected \"[1.2]\""),
            ("<@r1:>", "unexpected \">\""),
            ("<@r1", "'<' without a matching '>'"),
            ("...", "\"...\" is not an address"),
        ];
        for (value, want) in cases {
            let got = parse_address_list(value.as_bytes())
                .map(|l| format!("Ok({l:?})"))
                .unwrap_or_else(|e| e.to_string());
            assert!(got.contains(want), "{value:?}: got {got:?}, want {want:?}");
        }
        assert_eq!(
            parse_address_list(b"a\xff@x").unwrap_err(),
            AddressError::NotUtf8
        );
    }
}
