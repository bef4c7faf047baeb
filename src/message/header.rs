//! The header block of a message (RFC 5322 §2.2, §3.6): read once from the
//! message source, kept byte for byte, edited field by field.
//!
//! This module owns what a header line may look like. It reads up to and
//! including the empty line that ends the header block and never further,
//! so the body stays in the reader to be streamed; it never reads more than
//! [`MAX_HEADER_BYTES`] and never accepts a line the rest of the pipeline
//! could split differently than we did (a bare CR, a NUL).
//!
//! Decisions:
//! - A leading mbox `From ` line (line 1 only) is removed, as sendmail and
//!   Postfix's sendmail do: it is not a header field, and sent on it would
//!   make the receiver treat the whole header block as body. It stays
//!   available through [`HeaderBlock::mbox_from`].
//! - Input that ends without the empty line is a headers-only message
//!   (RFC 5322 allows an empty body) as long as every line was a header
//!   field or a continuation. Any other line in the block (body text that
//!   lost its separating empty line, binary garbage) is an error rather
//!   than the start of the body, because `-t` would otherwise silently miss
//!   recipients named after it.
//! - Field values may hold 8-bit bytes (RFC 6532 UTF-8, or legacy
//!   charsets that real scripts still produce); control characters other
//!   than TAB may not.
//! - A line holding only white space continues the field above it
//!   (RFC 5322 obs-FWS), as Python's email parser reads it.

use std::io::{self, BufRead};

use super::address::{Mailbox, parse_address_list};
use super::error::{MessageError, excerpt};

/// The most header bytes read (every line of the block, the mbox `From `
/// line and the ending empty line included). A real header block is a few
/// kilobytes; mailing-list traffic with long Received chains stays far
/// below this. Anything larger is an endless header block.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// RFC 5322 §2.1.1: a line is at most 998 characters, CRLF excluded.
pub const MAX_LINE_OCTETS: usize = 998;

/// One header field: its name, the colon, the value with any folded
/// continuation lines, and the line ending, exactly as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    raw: Vec<u8>,
    /// The name is `raw[..name_len]`; `raw[name_len]` is the colon.
    name_len: usize,
}

impl Field {
    /// Builds `Name: value` with a CRLF line ending. The value may be
    /// folded (CRLF followed by a space or TAB) but may hold no other line
    /// break and no control character, and no line may be longer than 998
    /// octets: a value can never smuggle in a second header field.
    pub fn new(name: &str, value: &str) -> Result<Field, MessageError> {
        let invalid = |reason: &str| MessageError::InvalidField {
            name: excerpt(name.as_bytes()),
            reason: reason.to_string(),
        };
        if !is_field_name(name.as_bytes()) {
            return Err(invalid("not a valid header field name"));
        }
        let mut raw = Vec::with_capacity(name.len() + value.len() + 4);
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value.as_bytes());
        raw.extend_from_slice(b"\r\n");
        check_generated(&raw).map_err(invalid)?;
        Ok(Field {
            raw,
            name_len: name.len(),
        })
    }

    /// The field name as written (its case kept).
    pub fn name(&self) -> &str {
        // Names are checked to be printable ASCII when the field is made.
        std::str::from_utf8(&self.raw[..self.name_len]).unwrap_or("")
    }

    /// Whether this field is called `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name().eq_ignore_ascii_case(name)
    }

    /// Everything after the colon up to the final line ending: folded
    /// continuation lines (with their line breaks) included.
    pub fn raw_value(&self) -> &[u8] {
        &self.raw[self.name_len + 1..self.raw.len() - self.eol_len()]
    }

    /// The whole field exactly as read, final line ending included (none
    /// if the input ended on this line).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The mailboxes this field's value names, groups expanded. An error
    /// names this field.
    pub fn addresses(&self) -> Result<Vec<Mailbox>, MessageError> {
        parse_address_list(self.raw_value()).map_err(|source| MessageError::Address {
            header: self.name().to_string(),
            source,
        })
    }

    /// The same field with a new raw value (everything after the colon),
    /// keeping the name and the line ending.
    pub(crate) fn with_raw_value(&self, value: &[u8]) -> Result<Field, MessageError> {
        let mut raw = Vec::with_capacity(self.raw.len() + value.len());
        raw.extend_from_slice(&self.raw[..=self.name_len]);
        raw.extend_from_slice(value);
        raw.extend_from_slice(&self.raw[self.raw.len() - self.eol_len()..]);
        check_generated(&raw).map_err(|reason| MessageError::InvalidField {
            name: self.name().to_string(),
            reason: reason.to_string(),
        })?;
        Ok(Field {
            raw,
            name_len: self.name_len,
        })
    }

    fn eol_len(&self) -> usize {
        if self.raw.ends_with(b"\r\n") {
            2
        } else if self.raw.ends_with(b"\n") {
            1
        } else {
            0
        }
    }
}

/// The header block: its fields in order, plus how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    mbox_from: Option<Vec<u8>>,
    fields: Vec<Field>,
    /// The empty line that ended the block, as read; empty if the input
    /// ended without one.
    end: Vec<u8>,
}

impl HeaderBlock {
    /// The fields, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Every field called `name` (ASCII case ignored), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.fields.iter().filter(move |f| f.is(name))
    }

    /// The first field called `name`.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.is(name))
    }

    /// Whether a field called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Removes every field called `name`, with its continuation lines;
    /// returns how many were removed. Every other field stays as it was.
    pub fn remove_all(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|f| !f.is(name));
        before - self.fields.len()
    }

    /// Adds `name: value` before every other field. See [`Field::new`].
    pub fn prepend(&mut self, name: &str, value: &str) -> Result<(), MessageError> {
        self.fields.insert(0, Field::new(name, value)?);
        Ok(())
    }

    /// Adds `name: value` after every other field. See [`Field::new`].
    pub fn append(&mut self, name: &str, value: &str) -> Result<(), MessageError> {
        self.fields.push(Field::new(name, value)?);
        Ok(())
    }

    /// The mbox `From ` line that preceded the header fields and was
    /// removed from them, if there was one.
    pub fn mbox_from(&self) -> Option<&[u8]> {
        self.mbox_from.as_deref()
    }

    /// The header block to send: every field's bytes as they are (a field
    /// the input ended in gets a CRLF), then the empty line that ends the
    /// block (CRLF if the input had none). The mbox `From ` line is not
    /// part of it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.fields.iter().map(|f| f.raw.len() + 2).sum());
        for field in &self.fields {
            out.extend_from_slice(&field.raw);
            if !field.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
        if self.end.is_empty() {
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&self.end);
        }
        out
    }

    pub(crate) fn fields_mut(&mut self) -> &mut [Field] {
        &mut self.fields
    }
}

/// Reads the header block from `reader`: every line up to and including
/// the empty line that ends it, and not one byte more, so the body can be
/// streamed from the same reader. Accepts CRLF and bare LF line endings.
///
/// Fails with a [`MessageError`] naming the line on a NUL byte, a bare CR,
/// a control character, a line over 998 octets, a line that is neither a
/// header field nor a continuation, or an invalid field name; with
/// [`MessageError::TooLarge`] once more than `max_bytes` have been read
/// without the block ending (pass [`MAX_HEADER_BYTES`]).
pub fn read_header_block<R: BufRead + ?Sized>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<HeaderBlock, MessageError> {
    let mut block = HeaderBlock::default();
    let mut total = 0usize;
    let mut line = Vec::new();
    for line_no in 1usize.. {
        let remaining = max_bytes - total;
        // One byte more than the longest legal line (998 + CRLF) tells a
        // too-long line from a full one; one byte over the budget tells an
        // overrun.
        let cap = remaining.saturating_add(1).min(MAX_LINE_OCTETS + 3);
        line.clear();
        read_line(reader, &mut line, cap)?;
        if line.len() > remaining {
            return Err(MessageError::TooLarge { limit: max_bytes });
        }
        if line.is_empty() {
            break; // end of input: a headers-only message
        }
        total += line.len();

        let content = line_content(&line);
        if content.len() > MAX_LINE_OCTETS {
            return Err(MessageError::LineTooLong { line: line_no });
        }
        check_line_bytes(content, line_no)?;

        if content.is_empty() {
            block.end = line.clone();
            break;
        }
        if line_no == 1 && content.starts_with(b"From ") {
            block.mbox_from = Some(line.clone());
            continue;
        }
        if content[0] == b' ' || content[0] == b'\t' {
            match block.fields.last_mut() {
                Some(field) => {
                    field.raw.extend_from_slice(&line);
                    continue;
                }
                None => {
                    return Err(MessageError::NotAHeader {
                        line: line_no,
                        excerpt: excerpt(content),
                    });
                }
            }
        }
        let Some(colon) = content.iter().position(|&b| b == b':') else {
            return Err(MessageError::NotAHeader {
                line: line_no,
                excerpt: excerpt(content),
            });
        };
        let name = &content[..colon];
        if !is_field_name(name) {
            // Words with spaces before a colon are text, not a bad name.
            if name.iter().any(|&b| b == b' ' || b == b'\t') {
                return Err(MessageError::NotAHeader {
                    line: line_no,
                    excerpt: excerpt(content),
                });
            }
            return Err(MessageError::BadFieldName {
                line: line_no,
                name: excerpt(name),
            });
        }
        block.fields.push(Field {
            raw: line.clone(),
            name_len: colon,
        });
    }
    Ok(block)
}

/// Appends to `line` up to and including the next LF, stopping early at
/// end of input or once `line` holds `cap` bytes. Never consumes past
/// what it appends.
fn read_line<R: BufRead + ?Sized>(
    reader: &mut R,
    line: &mut Vec<u8>,
    cap: usize,
) -> io::Result<()> {
    while line.len() < cap {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let avail = &buf[..buf.len().min(cap - line.len())];
        let (taken, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        line.extend_from_slice(&avail[..taken]);
        reader.consume(taken);
        if done {
            break;
        }
    }
    Ok(())
}

/// The line without its LF or CRLF ending.
fn line_content(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(rest) => rest.strip_suffix(b"\r").unwrap_or(rest),
        None => line,
    }
}

/// Rejects NUL, CR and other control characters (TAB is allowed) in a
/// line's content.
fn check_line_bytes(content: &[u8], line: usize) -> Result<(), MessageError> {
    for &b in content {
        match b {
            0 => return Err(MessageError::NulByte { line }),
            b'\r' => return Err(MessageError::BareCr { line }),
            b'\t' => {}
            0x01..=0x1f | 0x7f => return Err(MessageError::ControlChar { line, byte: b }),
            _ => {}
        }
    }
    Ok(())
}

/// RFC 5322 §3.6.8: `field-name = 1*ftext`, printable ASCII but the colon.
fn is_field_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':')
}

/// Checks a field we built: every line break is a CRLF that folds (is
/// followed by a space or TAB) or ends the field, no control characters,
/// no line over 998 octets.
fn check_generated(raw: &[u8]) -> Result<(), &'static str> {
    let body = raw
        .strip_suffix(b"\r\n")
        .or_else(|| raw.strip_suffix(b"\n"))
        .unwrap_or(raw);
    let mut line_len = 0usize;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b == b'\r' || b == b'\n' {
            let crlf = b == b'\r' && body.get(i + 1) == Some(&b'\n');
            let next = if crlf {
                body.get(i + 2)
            } else {
                body.get(i + 1)
            };
            if !matches!(next, Some(b' ' | b'\t')) {
                return Err("a line break in the value that does not fold the line");
            }
            i += if crlf { 2 } else { 1 };
            line_len = 0;
            continue;
        }
        if b != b'\t' && (b < 0x20 || b == 0x7f) {
            return Err("a control character in the value");
        }
        line_len += 1;
        if line_len > MAX_LINE_OCTETS {
            return Err("a line longer than 998 octets");
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read(input: &[u8]) -> Result<HeaderBlock, MessageError> {
        read_header_block(&mut &input[..], MAX_HEADER_BYTES)
    }

    fn err(input: &[u8]) -> String {
        read(input).unwrap_err().to_string()
    }

    #[test]
    fn reads_fields_and_leaves_the_body() {
        let input = b"From: a@x\r\nTo: b@y,\r\n c@z\r\nSubject: hi\r\n\r\nbody\r\nmore: body\r\n";
        let mut reader = &input[..];
        let block = read_header_block(&mut reader, MAX_HEADER_BYTES).unwrap();
        let names: Vec<_> = block.fields().iter().map(Field::name).collect();
        assert_eq!(names, ["From", "To", "Subject"]);
        assert_eq!(block.fields()[1].raw_value(), b" b@y,\r\n c@z");
        assert_eq!(block.fields()[1].raw(), b"To: b@y,\r\n c@z\r\n");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"body\r\nmore: body\r\n");
        assert_eq!(block.to_bytes(), &input[..input.len() - rest.len()]);
    }

    #[test]
    fn body_stays_in_a_small_buffered_reader() {
        let input = b"A: 1\nB: 2\n\nbody line\n".to_vec();
        let mut reader = io::BufReader::with_capacity(3, &input[..]);
        let block = read_header_block(&mut reader, MAX_HEADER_BYTES).unwrap();
        assert_eq!(block.fields().len(), 2);
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "body line\n");
    }

    #[test]
    fn bare_lf_and_mixed_endings_are_kept() {
        let input = b"A: 1\nB: 2\r\n\tcont\n\n";
        let block = read(input).unwrap();
        assert_eq!(block.to_bytes(), input);
        assert_eq!(block.fields()[1].raw_value(), b" 2\r\n\tcont");
    }

    #[test]
    fn headers_only_message_without_blank_line() {
        let block = read(b"Subject: x\nTo: a@b").unwrap();
        assert_eq!(block.fields().len(), 2);
        assert_eq!(block.fields()[1].raw_value(), b" a@b");
        assert_eq!(block.to_bytes(), b"Subject: x\nTo: a@b\r\n\r\n");
    }

    #[test]
    fn empty_input_and_empty_header_block() {
        assert_eq!(read(b"").unwrap().fields().len(), 0);
        let mut reader = &b"\nbody\n"[..];
        let block = read_header_block(&mut reader, MAX_HEADER_BYTES).unwrap();
        assert!(block.fields().is_empty());
        assert_eq!(reader, b"body\n");
        assert_eq!(block.to_bytes(), b"\n");
    }

    #[test]
    fn leading_mbox_from_line_is_removed() {
        let block = read(b"From root  Mon Jan  1 00:00:00 2024\nFrom: a@x\n\n").unwrap();
        assert_eq!(
            block.mbox_from(),
            Some(&b"From root  Mon Jan  1 00:00:00 2024\n"[..])
        );
        assert_eq!(block.to_bytes(), b"From: a@x\n\n");
        // Only on the first line.
        assert!(err(b"From: a@x\nFrom root x\n\n").contains("line 2 is not a header field"));
    }

    #[test]
    fn whitespace_only_line_continues_the_field() {
        let block = read(b"A: 1\n \nB: 2\n\n").unwrap();
        assert_eq!(block.fields()[0].raw(), b"A: 1\n \n");
    }

    #[test]
    fn get_all_remove_all_prepend_append() {
        let mut block = read(b"To: a@x\nBCC: s@x,\n  t@x\nto: b@y\nBcc: u@x\nX: y\n\n").unwrap();
        assert_eq!(block.get_all("TO").count(), 2);
        assert_eq!(block.remove_all("bcc"), 2);
        assert_eq!(block.to_bytes(), b"To: a@x\nto: b@y\nX: y\n\n");
        block.prepend("Date", "now").unwrap();
        block.append("Message-ID", "<1@x>").unwrap();
        assert_eq!(
            block.to_bytes(),
            b"Date: now\r\nTo: a@x\nto: b@y\nX: y\nMessage-ID: <1@x>\r\n\n"
        );
    }

    #[test]
    fn added_fields_cannot_smuggle_lines() {
        let mut block = HeaderBlock::default();
        for (name, value) in [
            ("X", "a\r\nBcc: evil@x"),
            ("X", "a\nBcc: evil@x"),
            ("X", "a\rb"),
            ("X", "a\0b"),
            ("X", "a\r\n"),
            ("Bad Name", "v"),
            ("", "v"),
            ("A:B", "v"),
        ] {
            let e = block.append(name, value).unwrap_err();
            assert!(
                e.to_string().starts_with("cannot add the "),
                "{name:?} {value:?}: {e}"
            );
        }
        assert!(block.append("X", &"a".repeat(996)).is_err());
        block.append("X", &"a".repeat(995)).unwrap();
        block.append("X", "a\r\n b").unwrap();
        block.append("X", "").unwrap();
        assert_eq!(block.fields().len(), 3);
    }

    /// Bad input: each must fail, and the message must name the problem.
    #[test]
    fn bad_input_table() {
        let long = [&b"X: "[..], &[b'a'; 996], b"\r\n\r\n"].concat();
        let long_lf = [&b"X: "[..], &[b'a'; 996], b"\n\n"].concat();
        let endless_line = [&b"X: "[..], &[b'a'; 100_000]].concat();
        let cases: Vec<(&[u8], &str)> = vec![
            (b"Subject: a\0b\n\n", "line 1 contains a NUL byte"),
            (b"A: 1\nB: \0\n\n", "line 2 contains a NUL byte"),
            (
                b"A: 1\rBcc: x\n\n",
                "line 1 contains a carriage return that does not end the line",
            ),
            (
                b"A: 1\r",
                "line 1 contains a carriage return that does not end the line",
            ),
            (
                b"A: \x1b[31m\n\n",
                "line 1 contains the control character 0x1B",
            ),
            (&long, "line 1 is longer than 998 octets"),
            (&long_lf, "line 1 is longer than 998 octets"),
            (&endless_line, "line 1 is longer than 998 octets"),
            (b"hello world\n\n", "line 1 is not a header field"),
            (b"A: 1\nbody text\n\n", "line 2 is not a header field"),
            (
                b"A: 1\nbody text: no blank\n\n",
                "line 2 is not a header field",
            ),
            (b" leading space\n\n", "line 1 is not a header field"),
            (b"Subject : x\n\n", "line 1 is not a header field"),
            (b": x\n\n", "line 1 has an invalid field name \"\""),
            (
                b"Sub\xc3\xa9: x\n\n",
                "invalid field name \"Sub\\xc3\\xa9\"",
            ),
            (
                b"\x7fELF\x02\x01\x01\0\0\0",
                "line 1 contains the control character 0x7F",
            ),
            (b"\x89PNG\r\n\x1a\n", "line 1 is not a header field"),
            (b"\xff\xfe\xfd: x\n", "line 1 has an invalid field name"),
        ];
        for (input, want) in cases {
            let got = err(input);
            assert!(
                got.contains(want),
                "{:?}: got {got:?}",
                input.escape_ascii()
            );
        }
    }

    #[test]
    fn longest_legal_line() {
        let ok = [&b"X: "[..], &[b'a'; 995], b"\r\n\r\n"].concat();
        assert_eq!(read(&ok).unwrap().to_bytes(), ok);
        let ok_lf = [&b"X: "[..], &[b'a'; 995], b"\n\n"].concat();
        assert_eq!(read(&ok_lf).unwrap().to_bytes(), ok_lf);
    }

    #[test]
    fn endless_header_block_hits_the_limit() {
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let input: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(MAX_HEADER_BYTES + 4096)
            .collect();
        let mut reader = &input[..];
        let e = read_header_block(&mut reader, MAX_HEADER_BYTES).unwrap_err();
        assert!(matches!(e, MessageError::TooLarge { limit } if limit == MAX_HEADER_BYTES));
        assert!(e.to_string().contains("longer than 1048576 bytes"));
        // It stopped at the limit instead of reading everything.
        assert!(reader.len() >= 4096 - 1);
        // Exactly at the limit is fine.
        let small = b"A: 1\nB: 2\n\n";
        assert!(read_header_block(&mut &small[..], small.len()).is_ok());
        assert!(read_header_block(&mut &small[..], small.len() - 1).is_err());
    }

    #[test]
    fn io_errors_are_reported() {
        struct Failing;
        impl io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let e = read_header_block(&mut io::BufReader::new(Failing), 100).unwrap_err();
        assert_eq!(e.to_string(), "reading the message failed: disk on fire");
        assert_eq!(e.kind(), super::super::error::Kind::Io);
    }

    #[test]
    fn round_trip_of_to_bytes() {
        let input = b"From x\nA: 1\n\tb\nB:2\n\n";
        let block = read(input).unwrap();
        let again = read(&block.to_bytes()).unwrap();
        assert_eq!(again.fields(), block.fields());
    }
}
