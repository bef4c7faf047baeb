//! What the scripted server saw: the record tests assert on.
//!
//! Owns the data types only; the server fills them in. Nothing here is
//! redacted: AUTH payloads appear verbatim because redaction is the client's
//! job and tests check it on the client side.

use std::fmt;

/// Everything the server saw, one entry per accepted connection.
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    /// Per-connection records, in the order the connections were accepted.
    pub connections: Vec<Connection>,
}

impl Transcript {
    /// How many connections the server accepted.
    pub fn accepted(&self) -> usize {
        self.connections.len()
    }

    /// The only connection; panics (printing the transcript) unless exactly
    /// one connection was accepted.
    pub fn conn(&self) -> &Connection {
        assert_eq!(
            self.connections.len(),
            1,
            "expected exactly one connection, transcript: {self:#?}"
        );
        &self.connections[0]
    }

    /// Every message from every connection, in order.
    pub fn messages(&self) -> Vec<&Message> {
        self.connections
            .iter()
            .flat_map(|c| c.messages.iter())
            .collect()
    }

    /// Every client line (commands and AUTH responses) from every connection.
    pub fn lines(&self) -> Vec<&str> {
        self.connections.iter().flat_map(|c| c.lines()).collect()
    }
}

/// One connection, from accept to close.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// Every line the client sent outside message content, in order:
    /// commands and AUTH responses (verbatim, not redacted).
    pub lines: Vec<ClientLine>,
    /// Each transaction that reached DATA or BDAT, complete or not.
    pub messages: Vec<Message>,
    /// Client flights (see [`ClientLine::flight`]); 0 if the client never sent a byte.
    pub flights: usize,
    /// How the connection ended.
    pub ending: Ending,
    /// True once a TLS handshake succeeded (implicit TLS or STARTTLS).
    pub tls: bool,
    /// True once an AUTH exchange ended in 235.
    pub authenticated: bool,
    /// Client bytes already buffered when STARTTLS was answered: plaintext the
    /// client pipelined after STARTTLS. Discarded, never executed.
    pub discarded_after_starttls: Vec<u8>,
    /// What the server sent, one entry per reply in order (raw replies are
    /// abbreviated to `<raw: N bytes>` when over 4 KiB).
    pub replies: Vec<String>,
}

impl Connection {
    /// The text of every client line, in order.
    pub fn lines(&self) -> Vec<&str> {
        self.lines.iter().map(|l| l.text.as_str()).collect()
    }

    /// Only the command lines (no AUTH responses).
    pub fn commands(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|l| l.kind == LineKind::Command)
            .map(|l| l.text.as_str())
            .collect()
    }

    /// The upper-cased verb of every command line, e.g. `["EHLO", "MAIL", ...]`.
    pub fn verbs(&self) -> Vec<String> {
        self.commands().iter().map(|l| verb_of(l)).collect()
    }

    /// The flight of the first line starting with `prefix` (ASCII
    /// case-insensitive), if any.
    pub fn flight_of(&self, prefix: &str) -> Option<usize> {
        self.lines
            .iter()
            .find(|l| starts_with_ignore_case(&l.text, prefix))
            .map(|l| l.flight)
    }

    /// Command verbs grouped by the flight they arrived in, e.g.
    /// `[(1, ["EHLO"]), (2, ["MAIL", "RCPT", "RCPT", "DATA"]), (4, ["QUIT"])]`.
    /// Flights that carried only message content or AUTH responses are absent.
    pub fn verbs_by_flight(&self) -> Vec<(usize, Vec<String>)> {
        let mut out: Vec<(usize, Vec<String>)> = Vec::new();
        for l in self.lines.iter().filter(|l| l.kind == LineKind::Command) {
            match out.last_mut() {
                Some((f, v)) if *f == l.flight => v.push(verb_of(&l.text)),
                _ => out.push((l.flight, vec![verb_of(&l.text)])),
            }
        }
        out
    }

    /// True when the client sent QUIT.
    pub fn closed_cleanly(&self) -> bool {
        self.ending == Ending::Quit
    }
}

/// One line from the client, without its line ending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLine {
    /// The line, lossily decoded as UTF-8, without CRLF/LF.
    pub text: String,
    /// Whether it arrived inside TLS.
    pub tls: bool,
    /// Which client flight it arrived in (1-based, per connection). A flight
    /// begins when the server reads while its input buffer is empty *and* it
    /// has written to the client since its previous read, i.e. the client may
    /// have been waiting for that output. Bytes arriving while the server has
    /// said nothing since its last read continue the current flight, so TCP
    /// segmentation of one burst never splits it.
    pub flight: usize,
    /// Command or AUTH response.
    pub kind: LineKind,
    /// The line ended in a bare LF instead of CRLF.
    pub bare_lf: bool,
}

/// What a [`ClientLine`] was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// An SMTP/LMTP command.
    Command,
    /// A line sent in answer to a 334 AUTH challenge.
    AuthResponse,
}

/// How a connection ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Ending {
    /// Still open (only seen in a transcript of a connection that never ran).
    #[default]
    Open,
    /// The client sent QUIT (the server answered 221 and closed).
    Quit,
    /// The client closed or reset the connection without QUIT.
    ClientDropped,
    /// The script closed the connection (`disconnect_at`, a hook, or a raw
    /// connection handler returning).
    ServerClosed,
    /// The client sent nothing for the script's I/O timeout.
    Timeout,
    /// The test called `finish()` while the client was still connected and
    /// idle, or while the server was stalling or dripping.
    Abandoned,
    /// The TLS handshake failed; the text is the server-side error.
    TlsFailed(String),
    /// A limit or I/O error ended the connection; the text says which.
    Error(String),
}

/// One mail transaction that reached DATA (354) or its first BDAT chunk.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// What followed `MAIL FROM:`, verbatim, parameters included
    /// (e.g. `<a@example.org> SIZE=123 BODY=8BITMIME`).
    pub mail_from: String,
    /// What followed `RCPT TO:` for each accepted recipient, with parameters.
    pub rcpt_to: Vec<String>,
    /// The same for each refused recipient.
    pub rcpt_refused: Vec<String>,
    /// Content bytes exactly as on the wire: for DATA everything between the
    /// 354 and the terminating `.` line (that line excluded, the CRLF before it
    /// included); for BDAT the chunks concatenated.
    pub wire: Vec<u8>,
    /// `wire` after dot-unstuffing (identical to `wire` for BDAT).
    pub content: Vec<u8>,
    /// `Some(sizes)` when sent with BDAT, one entry per chunk.
    pub bdat_chunks: Option<Vec<usize>>,
    /// The terminating `.` line (or `BDAT ... LAST` chunk) arrived.
    pub completed: bool,
    /// Whether the transaction was accepted (2xx after the data; for LMTP, at
    /// least one recipient got a 2xx).
    pub accepted: bool,
    /// The reply(ies) given after the data: one for SMTP, one per accepted
    /// recipient for LMTP (the scripted text, even where a raw reply or hook
    /// replaced the bytes). Empty if the server closed or stalled out first.
    /// A refused non-LAST BDAT chunk's reply also lands here.
    pub replies: Vec<String>,
    /// Whether the content arrived inside TLS.
    pub tls: bool,
    /// The distinct flights in which content bytes arrived.
    pub data_flights: Vec<usize>,
}

impl Message {
    /// The reverse-path inside `<...>` of `mail_from` (empty for `<>`).
    pub fn sender_addr(&self) -> &str {
        angle_addr(&self.mail_from)
    }

    /// The forward-paths inside `<...>` of the accepted recipients.
    pub fn rcpt_addrs(&self) -> Vec<&str> {
        self.rcpt_to.iter().map(|r| angle_addr(r)).collect()
    }

    /// `content` as UTF-8 (lossy), for readable assertions.
    pub fn content_str(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }

    /// `wire` contains an LF not preceded by CR.
    pub fn wire_has_bare_lf(&self) -> bool {
        self.wire
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\n' && (i == 0 || self.wire[i - 1] != b'\r'))
    }

    /// `wire` contains a CR not followed by LF.
    pub fn wire_has_bare_cr(&self) -> bool {
        self.wire
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\r' && self.wire.get(i + 1) != Some(&b'\n'))
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("mail_from", &self.mail_from)
            .field("rcpt_to", &self.rcpt_to)
            .field("rcpt_refused", &self.rcpt_refused)
            .field("wire", &String::from_utf8_lossy(&self.wire))
            .field("content", &String::from_utf8_lossy(&self.content))
            .field("bdat_chunks", &self.bdat_chunks)
            .field("completed", &self.completed)
            .field("accepted", &self.accepted)
            .field("replies", &self.replies)
            .field("tls", &self.tls)
            .field("data_flights", &self.data_flights)
            .finish()
    }
}

/// The upper-cased first word of a command line.
pub fn verb_of(line: &str) -> String {
    line.split([' ', ':'])
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// ASCII case-insensitive `starts_with`.
pub fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn angle_addr(arg: &str) -> &str {
    let arg = arg.trim_start();
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => &arg[a + 1..b],
        _ => arg.split(' ').next().unwrap_or(""),
    }
}
