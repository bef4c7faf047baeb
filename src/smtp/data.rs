//! The message as it crosses the wire: line-ending normalisation, data
//! transparency (RFC 5321 §4.5.2) and the end-of-data mark.
//!
//! Both encoders are streaming state machines: they take the message in
//! chunks of any size and keep only two flags between chunks, so memory
//! stays constant for any message size. Every lone CR and every lone LF
//! becomes CRLF, so no bare CR or LF ever reaches the server (the SMTP
//! smuggling class, where servers disagree on what ends the data).

/// Streaming CRLF normaliser, optionally dot-stuffing for DATA.
#[derive(Debug, Clone)]
pub struct Encoder {
    stuff_dots: bool,
    at_line_start: bool,
    pending_cr: bool,
}

impl Encoder {
    /// For DATA: normalise and dot-stuff.
    pub fn for_data() -> Self {
        Encoder {
            stuff_dots: true,
            at_line_start: true,
            pending_cr: false,
        }
    }

    /// For BDAT (RFC 3030): normalise only; BDAT has no transparency.
    pub fn for_bdat() -> Self {
        Encoder {
            stuff_dots: false,
            ..Encoder::for_data()
        }
    }

    /// Appends the wire form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 32 + 4);
        let mut rest = input;
        while !rest.is_empty() {
            if self.pending_cr {
                // A CR ended the previous chunk or byte: it is a line end
                // either way; swallow the LF of a CRLF pair.
                self.pending_cr = false;
                self.newline(out);
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            if self.at_line_start && self.stuff_dots && rest[0] == b'.' {
                out.push(b'.');
            }
            match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
                None => {
                    out.extend_from_slice(rest);
                    self.at_line_start = false;
                    return;
                }
                Some(i) => {
                    out.extend_from_slice(&rest[..i]);
                    if rest[i] == b'\r' {
                        self.pending_cr = true;
                        self.at_line_start = false;
                    } else {
                        self.newline(out);
                    }
                    rest = &rest[i + 1..];
                }
            }
        }
    }

    fn newline(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        self.at_line_start = true;
    }

    /// Ends the message: a final line without a line ending gets CRLF, so
    /// the wire form always ends in exactly one CRLF.
    pub fn finish_lines(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            self.newline(out);
        }
        if !self.at_line_start {
            self.newline(out);
        }
    }

    /// Ends a DATA transfer: the last line's CRLF if missing, then the
    /// end-of-data mark, so the wire carries `CRLF.CRLF` exactly once.
    pub fn finish_data(&mut self, out: &mut Vec<u8>) {
        self.finish_lines(out);
        out.extend_from_slice(b".\r\n");
    }
}

/// What the engine must know about a message before MAIL FROM: its size on
/// the wire (for SIZE=) and whether it has 8-bit bytes (for BODY=8BITMIME).
/// Gathered in one pass, in chunks, while the message is spooled or read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyInfo {
    /// Size after CRLF normalisation, before dot-stuffing (RFC 1870 §6.1).
    pub size: u64,
    /// Any byte ≥ 0x80.
    pub eight_bit: bool,
}

/// Accumulates a [`BodyInfo`] over chunks.
#[derive(Debug, Clone, Default)]
pub struct BodyScanner {
    info: BodyInfo,
    pending_cr: bool,
    at_line_start: bool,
    started: bool,
}

impl BodyScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.started = true;
        for &b in chunk {
            if self.pending_cr {
                self.pending_cr = false;
                self.info.size += 2;
                self.at_line_start = true;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    self.info.size += 2;
                    self.at_line_start = true;
                }
                _ => {
                    self.info.size += 1;
                    self.at_line_start = false;
                    self.info.eight_bit |= b >= 0x80;
                }
            }
        }
    }

    /// The totals, counting the CRLF the encoder adds to an unterminated
    /// last line.
    pub fn finish(&self) -> BodyInfo {
        let mut info = self.info;
        if self.pending_cr || (self.started && !self.at_line_start && info.size > 0) {
            info.size += 2;
        }
        info
    }

    /// Scans a whole in-memory message.
    pub fn scan(msg: &[u8]) -> BodyInfo {
        let mut s = BodyScanner::new();
        s.update(msg);
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(chunks: &[&[u8]]) -> Vec<u8> {
        let mut e = Encoder::for_data();
        let mut out = Vec::new();
        for c in chunks {
            e.encode(c, &mut out);
        }
        e.finish_data(&mut out);
        out
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a\n", b"a\r\n.\r\n"),
            (b"a\rb", b"a\r\nb\r\n.\r\n"),
            (b"a\n\nb", b"a\r\n\r\nb\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (b".\n", b"..\r\n.\r\n"),
            (b"x\n.\ny\n", b"x\r\n..\r\ny\r\n.\r\n"),
            (b"x\r\n.\r\n", b"x\r\n..\r\n.\r\n"),
            (b"..a\n", b"...a\r\n.\r\n"),
            (b"a.b\n", b"a.b\r\n.\r\n"),
            (b"\r\n.\r\n", b"\r\n..\r\n.\r\n"),
            (b"a\r", b"a\r\n.\r\n"),
            (b"a\r\r\n", b"a\r\n\r\n.\r\n"),
            (b"a\n\r.b", b"a\r\n\r\n..b\r\n.\r\n"),
            // The smuggling forms: "\n.\n" and "\r.\r" must not end data.
            (
                b"x\n.\nMAIL FROM:<e>\n",
                b"x\r\n..\r\nMAIL FROM:<e>\r\n.\r\n",
            ),
            (b"x\r.\rRSET\r", b"x\r\n..\r\nRSET\r\n.\r\n"),
        ];
        for (input, want) in cases {
            assert_eq!(
                String::from_utf8_lossy(&data(&[input])),
                String::from_utf8_lossy(want),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// Any split into chunks gives the same bytes as one chunk.
    #[test]
    fn chunking_invariant() {
        let msg: &[u8] = b"H: v\r\n\r\n.a\r\r\n\n.\r\n..\rb\n.";
        let whole = data(&[msg]);
        for i in 0..=msg.len() {
            for j in i..=msg.len() {
                assert_eq!(
                    data(&[&msg[..i], &msg[i..j], &msg[j..]]),
                    whole,
                    "split {i},{j}"
                );
            }
        }
    }

    /// The wire form never has a bare CR or LF, and ends CRLF.CRLF once.
    #[test]
    fn no_bare_line_endings_exhaustive_small() {
        let alphabet = [b'a', b'.', b'\r', b'\n'];
        for len in 0..=6 {
            for n in 0..alphabet.len().pow(len) {
                let mut msg = Vec::new();
                let mut k = n;
                for _ in 0..len {
                    msg.push(alphabet[k % 4]);
                    k /= 4;
                }
                let out = data(&[&msg]);
                for (i, &b) in out.iter().enumerate() {
                    if b == b'\r' {
                        assert_eq!(out.get(i + 1), Some(&b'\n'), "{msg:?}");
                    }
                    if b == b'\n' {
                        assert!(i > 0 && out[i - 1] == b'\r', "{msg:?}");
                    }
                }
                assert!(out.ends_with(b".\r\n"));
                let body = &out[..out.len() - 3];
                // The body must not contain the end mark.
                assert!(
                    !body.windows(5).any(|w| w == b"\r\n.\r\n"),
                    "{msg:?} -> {out:?}"
                );
                assert!(!body.starts_with(b".\r\n"), "{msg:?}");
                // Unstuffing gives back the normalised input.
                let unstuffed: Vec<u8> = String::from_utf8(body.to_vec())
                    .unwrap()
                    .split_inclusive("\r\n")
                    .map(|l| l.strip_prefix('.').unwrap_or(l).to_owned())
                    .collect::<String>()
                    .into_bytes();
                let mut e = Encoder::for_bdat();
                let mut norm = Vec::new();
                e.encode(&msg, &mut norm);
                e.finish_lines(&mut norm);
                assert_eq!(unstuffed, norm, "{msg:?}");
                assert_eq!(BodyScanner::scan(&msg).size, norm.len() as u64, "{msg:?}");
            }
        }
    }

    #[test]
    fn scanner_flags_eight_bit() {
        assert!(!BodyScanner::scan(b"plain\n").eight_bit);
        assert!(BodyScanner::scan("caf\u{e9}\n".as_bytes()).eight_bit);
        assert_eq!(BodyScanner::scan(b"ab\ncd").size, 8);
    }
}
