//! A server reply (RFC 5321 §4.2) and its strict, bounded parser.
//!
//! The parser owns the rules for what a reply line may look like and how
//! many of them one reply may have. It never reads from a socket itself: the
//! stream hands it one line at a time, already bounded by
//! [`MAX_LINE_LEN`], so a hostile server can cost at most
//! `MAX_LINE_LEN * MAX_REPLY_LINES` bytes and one timeout.

use std::fmt;

/// Longest reply line accepted, CRLF included. RFC 5321 §4.5.3.1.5 allows
/// 512; real servers exceed it in HELP and banner texts, so we take
/// smtplib's limit.
pub const MAX_LINE_LEN: usize = 8192;

/// Most lines one reply may have. The longest legitimate replies (EHLO,
/// HELP) have a few dozen.
pub const MAX_REPLY_LINES: usize = 512;

/// An enhanced status code (RFC 3463), e.g. `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl EnhancedCode {
    /// Parses the `x.y.z` that starts `text`, followed by a space or the
    /// end of the text; returns the code and the remaining text.
    pub fn parse_prefix(text: &str) -> Option<(EnhancedCode, &str)> {
        let end = text.find(' ').unwrap_or(text.len());
        let mut parts = text[..end].split('.');
        let class: u8 = parse_digits(parts.next()?, 1)?;
        let subject: u16 = parse_digits(parts.next()?, 3)?;
        let detail: u16 = parse_digits(parts.next()?, 3)?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
            return None;
        }
        let rest = text[end..].strip_prefix(' ').unwrap_or(&text[end..]);
        Some((
            EnhancedCode {
                class,
                subject,
                detail,
            },
            rest,
        ))
    }
}

fn parse_digits<T: std::str::FromStr>(s: &str, max: usize) -> Option<T> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One complete reply: a three-digit code and its text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    lines: Vec<String>,
    enhanced: Option<EnhancedCode>,
}

impl Reply {
    /// Builds a reply from parts (tests, synthetic replies).
    pub fn new(code: u16, lines: Vec<String>) -> Self {
        Reply {
            code,
            lines,
            enhanced: None,
        }
    }

    /// The three-digit code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The text of each line, without code, separator or line ending.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The text lines joined with "\n", as smtplib's `getreply` returns them.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The enhanced status code, when the server advertised
    /// ENHANCEDSTATUSCODES and the first line starts with one.
    pub fn enhanced_code(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// Reads the enhanced status code from the first line. Called by the
    /// session when ENHANCEDSTATUSCODES is in force; a code whose class
    /// disagrees with the reply code's first digit is ignored.
    pub(crate) fn with_enhanced_code(mut self) -> Self {
        self.enhanced = self
            .lines
            .first()
            .and_then(|l| EnhancedCode::parse_prefix(l))
            .map(|(c, _)| c)
            .filter(|c| u16::from(c.class) == self.code / 100);
        self
    }

    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx: the server waits for more (DATA's 354, AUTH's 334).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: will not succeed as is.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

impl fmt::Display for Reply {
    /// The reply as one line, as a user should see it: "550 5.1.1 no such
    /// user"; the lines of a multi-line reply are joined with " / ".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        let mut first = true;
        for l in &self.lines {
            let l = l.trim();
            if l.is_empty() {
                continue;
            }
            f.write_str(if first { " " } else { " / " })?;
            first = false;
            // Control characters from the server never reach a terminal.
            for c in l.chars() {
                if c.is_control() {
                    f.write_str("?")?;
                } else {
                    write!(f, "{c}")?;
                }
            }
        }
        Ok(())
    }
}

/// What a single reply line says.
#[derive(Debug, PartialEq, Eq)]
pub struct ReplyLine {
    /// The three-digit code.
    pub code: u16,
    /// `false` for `ddd-text`: more lines follow.
    pub last: bool,
    /// The text after the separator, decoded and stripped of surrounding
    /// spaces and tabs.
    pub text: String,
}

/// Why a line is not a valid reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses one line (with or without its CRLF/LF) strictly: three digits,
/// the first 2 to 5, then a space, a hyphen, or nothing.
pub fn parse_line(raw: &[u8]) -> Result<ReplyLine, ParseError> {
    let line = raw
        .strip_suffix(b"\n")
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .unwrap_or(raw);
    let shown = || String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return Err(ParseError(format!(
            "malformed reply line (no 3-digit code): {:?}",
            shown()
        )));
    }
    let code = u16::from(line[0] - b'0') * 100
        + u16::from(line[1] - b'0') * 10
        + u16::from(line[2] - b'0');
    if !(200..600).contains(&code) {
        return Err(ParseError(format!("reply code {code} out of range")));
    }
    let (last, rest) = match line.get(3) {
        None => (true, &line[3..3]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => {
            return Err(ParseError(format!(
                "malformed reply line (bad separator after code): {:?}",
                shown()
            )));
        }
    };
    // Reply text is for people: UTF-8 when it is, else Latin-1 (as
    // smtplib reads it), so odd bytes in a banner never stop a send. The
    // blanks around it go, as smtplib's `getreply` strips them.
    let text = decode_text(rest);
    Ok(ReplyLine { code, last, text })
}

/// Reply text as a string: UTF-8 when valid, else each byte as the
/// Latin-1 character of that value; surrounding spaces and tabs removed.
fn decode_text(bytes: &[u8]) -> String {
    let trimmed = trim_blanks(bytes);
    match std::str::from_utf8(trimmed) {
        Ok(s) => s.to_owned(),
        Err(_) => trimmed.iter().map(|&b| char::from(b)).collect(),
    }
}

fn trim_blanks(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Collects the lines of one reply and enforces the cross-line rules.
#[derive(Debug, Default)]
pub struct ReplyBuilder {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one raw line; returns the reply when it was the last line.
    pub fn push(&mut self, raw: &[u8]) -> Result<Option<Reply>, ParseError> {
        if raw.len() > MAX_LINE_LEN {
            return Err(ParseError(format!(
                "reply line longer than {MAX_LINE_LEN} bytes"
            )));
        }
        let line = parse_line(raw)?;
        match self.code {
            Some(c) if c != line.code => {
                return Err(ParseError(format!(
                    "reply codes differ within one reply ({c} then {})",
                    line.code
                )));
            }
            _ => self.code = Some(line.code),
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ParseError(format!(
                "reply has more than {MAX_REPLY_LINES} lines"
            )));
        }
        self.lines.push(line.text);
        if line.last {
            let code = line.code;
            self.code = None;
            Ok(Some(Reply::new(code, std::mem::take(&mut self.lines))))
        } else {
            Ok(None)
        }
    }
}

/// Parses a complete reply from bytes (tests and fuzzing): every line must
/// belong to exactly one reply.
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, ParseError> {
    let mut b = ReplyBuilder::new();
    let mut lines = bytes.split_inclusive(|&c| c == b'\n').peekable();
    while let Some(l) = lines.next() {
        if let Some(r) = b.push(l)? {
            if lines.peek().is_some() {
                return Err(ParseError("data after the last reply line".into()));
            }
            return Ok(r);
        }
    }
    Err(ParseError("reply ended before its last line".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        let r = parse_reply(b"250 OK\r\n").unwrap();
        assert_eq!(r.code(), 250);
        assert_eq!(r.text(), "OK");
        assert!(r.is_positive());
    }

    #[test]
    fn rfc5321_ehlo_example_multiline_joined_with_newline() {
        let r = parse_reply(
            b"250-foo.com greets bar.com\r\n250-8BITMIME\r\n250-SIZE\r\n250-DSN\r\n250 HELP\r\n",
        )
        .unwrap();
        assert_eq!(r.code(), 250);
        assert_eq!(r.lines().len(), 5);
        assert_eq!(
            r.text(),
            "foo.com greets bar.com\n8BITMIME\nSIZE\nDSN\nHELP"
        );
    }

    #[test]
    fn bare_code_and_bare_lf_accepted() {
        let r = parse_reply(b"354\n").unwrap();
        assert_eq!((r.code(), r.text().as_str()), (354, ""));
    }

    #[test]
    fn table_of_malformed_lines() {
        for bad in [
            &b"25 OK\r\n"[..],
            b"abc OK\r\n",
            b"250_OK\r\n",
            b"150 too low\r\n",
            b"600 too high\r\n",
            b"\r\n",
            b"2500 OK\r\n",
            b"\xc3\xa9250 OK\r\n",
            b"25\xc3\xa9 OK\r\n",
        ] {
            assert!(
                parse_reply(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn text_is_utf8_else_latin1_and_stripped() {
        let r = parse_reply(b"250-\xe9\xe9 latin\r\n250 caf\xc3\xa9\r\n").unwrap();
        assert_eq!(r.lines(), ["\u{e9}\u{e9} latin", "caf\u{e9}"]);
        // smtplib's getreply strips blanks around each line.
        let r = parse_reply(b"250  OK  \t\r\n").unwrap();
        assert_eq!(r.text(), "OK");
        let r = parse_reply(b"250 \xff\xfe\r\n").unwrap();
        assert_eq!(r.text(), "\u{ff}\u{fe}");
    }

    #[test]
    fn mismatched_codes_rejected() {
        let e = parse_reply(b"250-first\r\n550 second\r\n").unwrap_err();
        assert!(e.0.contains("differ"), "{e}");
    }

    #[test]
    fn line_and_count_limits() {
        let long = format!("250 {}\r\n", "x".repeat(MAX_LINE_LEN));
        assert!(parse_reply(long.as_bytes()).is_err());
        let mut many = String::new();
        for _ in 0..MAX_REPLY_LINES + 1 {
            many.push_str("250-x\r\n");
        }
        many.push_str("250 end\r\n");
        let e = parse_reply(many.as_bytes()).unwrap_err();
        assert!(e.0.contains("more than"), "{e}");
    }

    #[test]
    fn incomplete_and_trailing() {
        assert!(parse_reply(b"250-more coming\r\n").is_err());
        assert!(parse_reply(b"250 one\r\n250 two\r\n").is_err());
    }

    #[test]
    fn enhanced_codes() {
        let r = Reply::new(550, vec!["5.1.1 <x@y>: no such user".into()]).with_enhanced_code();
        assert_eq!(r.enhanced_code().unwrap().to_string(), "5.1.1");
        // Class must agree with the reply code.
        let r = Reply::new(250, vec!["5.1.1 odd".into()]).with_enhanced_code();
        assert_eq!(r.enhanced_code(), None);
        // Not a code.
        let r = Reply::new(250, vec!["2.0 OK".into()]).with_enhanced_code();
        assert_eq!(r.enhanced_code(), None);
        let r = Reply::new(250, vec!["2.0.0".into()]).with_enhanced_code();
        assert_eq!(r.enhanced_code().unwrap().to_string(), "2.0.0");
    }

    #[test]
    fn display_is_one_safe_line() {
        let r = Reply::new(
            550,
            vec!["5.7.1 denied\x1b[31m".into(), "see policy".into()],
        );
        assert_eq!(r.to_string(), "550 5.7.1 denied?[31m / see policy");
    }

    #[test]
    fn classes() {
        assert!(Reply::new(421, vec![]).is_transient());
        assert!(Reply::new(554, vec![]).is_permanent());
        assert!(Reply::new(334, vec![]).is_intermediate());
    }
}
