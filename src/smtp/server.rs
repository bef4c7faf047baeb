//! `-bs`: the server side of SMTP (RFC 5321 §4) spoken on standard input
//! and output, as sendmail offers it to MUAs and inetd-style callers.
//!
//! This owns the conversation: reading bounded command lines, the
//! transaction state (HELO/EHLO → MAIL → RCPT… → DATA), the replies, the
//! end of DATA and dot-unstuffing (RFC 5321 §4.5.2), and the limits. It
//! never delivers anything itself: each complete transaction is handed to
//! the caller's `deliver` callback, whose [`Verdict`] becomes the reply to
//! the final dot. It never holds a message in memory: the body is streamed
//! to the callback straight from the input. It never prints to the
//! terminal and never exits.
//!
//! What is offered is what is really done: PIPELINING (RFC 2920: replies
//! are held back until the input has nothing more buffered), 8BITMIME,
//! SMTPUTF8, SIZE, ENHANCEDSTATUSCODES, HELP. STARTTLS and AUTH are not
//! offered: the peer is a local process on our standard input.
//!
//! Replies are the engine's own [`Reply`] type, written in their wire
//! form by [`write_reply`]: what we send is what the client side parses.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::smtp::command::quoteaddr;
use crate::smtp::{EnhancedCode, Reply};

/// Longest command line accepted, line ending included (RFC 5321
/// §4.5.3.1.4 allows 512 for commands and §4.5.3.1.6 1000 for text lines;
/// ESMTP parameters make commands longer, so the larger one).
pub const MAX_COMMAND_LINE: usize = 1000;

/// Largest message accepted by default, in octets after dot-unstuffing;
/// advertised as `SIZE`.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 64 * 1024 * 1024;

/// Most recipients of one transaction by default; RFC 5321 §4.5.3.1.8
/// asks a server to take at least 100.
pub const DEFAULT_MAX_RECIPIENTS: usize = 1000;

/// Longest reply text we send (RFC 5321 §4.5.3.1.5: a reply line is at
/// most 512 octets with its code and CRLF).
const MAX_REPLY_TEXT: usize = 480;

/// Replies held back for PIPELINING are written out once they reach this
/// many bytes, whatever the input holds, so that a client that pipelines
/// without end costs bounded memory.
const MAX_PENDING_OUTPUT: usize = 64 * 1024;

/// One transaction, handed to the `deliver` callback at DATA.
pub struct Accepted<'a> {
    /// The reverse-path without angle brackets; `""` is the null sender.
    pub sender: String,
    /// The forward-paths without angle brackets (source routes dropped),
    /// in the order given; at least one.
    pub recipients: Vec<String>,
    /// The message after dot-unstuffing, with its line ends as received
    /// (CRLF or bare LF). It yields `Ok(0)` only after the end-of-data
    /// line: input that ends before it yields an
    /// [`io::ErrorKind::UnexpectedEof`] error, and a message over the size
    /// limit an [`io::ErrorKind::FileTooLarge`] error. The callback must
    /// read it to `Ok(0)` and must not deliver on an error.
    pub body: &'a mut dyn Read,
    /// The MAIL FROM parameters (`BODY=8BITMIME`, `SIZE=1234`,
    /// `SMTPUTF8`), keyword in upper case, value as given.
    pub mail_params: Vec<String>,
}

/// What became of one message. The text is the reply text after the code
/// (`"2.0.0 queued as X"`); an enhanced status code that is missing, or
/// whose class disagrees with the verdict, is supplied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered or safely queued: 250.
    Accepted(String),
    /// Not taken, may succeed later: 451.
    Temporary(String),
    /// Not taken, will not succeed as is: 554.
    Permanent(String),
}

/// What a session did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Messages received complete (up to their end-of-data line).
    pub messages: u64,
    /// Of those, answered 250.
    pub accepted: u64,
    /// Of those, answered 4xx or 5xx.
    pub refused: u64,
}

/// The bounds of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message, in octets after dot-unstuffing (advertised as
    /// `SIZE`).
    pub max_message_size: u64,
    /// Most recipients of one transaction; more get 452.
    pub max_recipients: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
        }
    }
}

/// The callback that delivers one message.
pub type Deliver<'d> = dyn FnMut(Accepted<'_>) -> Verdict + 'd;

/// Serves one SMTP session with the default [`Limits`]; see
/// [`serve_with`].
pub fn serve<R: Read + ?Sized>(
    input: &mut BufReader<R>,
    output: &mut dyn Write,
    hostname: &str,
    deliver: &mut Deliver<'_>,
) -> io::Result<Stats> {
    serve_with(input, output, hostname, Limits::default(), deliver)
}

/// Serves one SMTP session: greets, answers commands until QUIT or the end
/// of the input, and hands each complete message to `deliver`.
///
/// The input is a [`BufReader`] (not any `BufRead`) because PIPELINING
/// needs to know, without blocking, whether more input is already
/// buffered: replies are written only when it is not (RFC 2920 §3.2).
///
/// Returns an error only when reading the input or writing the output
/// fails; at the end of the input it returns what was done, and a message
/// whose end-of-data line never came is neither answered nor counted.
pub fn serve_with<R: Read + ?Sized>(
    input: &mut BufReader<R>,
    output: &mut dyn Write,
    hostname: &str,
    limits: Limits,
    deliver: &mut Deliver<'_>,
) -> io::Result<Stats> {
    let mut s = Session {
        out: output,
        pending: Vec::new(),
        host: clean_hostname(hostname),
        limits,
        greeted: None,
        mail: None,
        recipients: Vec::new(),
        stats: Stats::default(),
    };
    s.reply(220, &format!("{} smtpsend ESMTP", s.host));
    loop {
        if input.buffer().is_empty() || s.pending.len() >= MAX_PENDING_OUTPUT {
            s.flush()?;
        }
        let line = match read_command(input)? {
            Line::Eof => {
                // The peer is gone; what it may still read is a courtesy.
                let _ = s.flush();
                return Ok(s.stats);
            }
            Line::TooLong => {
                s.reply(500, "5.5.2 line too long");
                continue;
            }
            Line::Text(l) => l,
        };
        match s.command(&line) {
            Flow::Next => {}
            Flow::Quit => {
                s.flush()?;
                return Ok(s.stats);
            }
            Flow::Data => {
                if !s.data(input, deliver)? {
                    let _ = s.flush();
                    return Ok(s.stats);
                }
            }
        }
    }
}

/// The MAIL FROM of the open transaction.
struct Mail {
    sender: String,
    params: Vec<String>,
    smtputf8: bool,
}

struct Session<'o> {
    out: &'o mut dyn Write,
    /// Replies not yet written (PIPELINING).
    pending: Vec<u8>,
    host: String,
    limits: Limits,
    /// `None` before HELO/EHLO; `Some(true)` after EHLO (extensions on).
    greeted: Option<bool>,
    mail: Option<Mail>,
    recipients: Vec<String>,
    stats: Stats,
}

enum Flow {
    Next,
    Data,
    Quit,
}

impl Session<'_> {
    fn reply(&mut self, code: u16, text: &str) {
        write_reply(&mut self.pending, &Reply::new(code, vec![text.to_owned()]));
    }

    fn reply_lines(&mut self, code: u16, lines: &[String]) {
        write_reply(&mut self.pending, &Reply::new(code, lines.to_vec()));
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.out.write_all(&self.pending)?;
            self.pending.clear();
        }
        self.out.flush()
    }

    fn reset(&mut self) {
        self.mail = None;
        self.recipients.clear();
    }

    /// One command line, without its line ending.
    fn command(&mut self, line: &[u8]) -> Flow {
        if line.iter().any(|&b| b == b'\r' || b == 0) {
            self.reply(501, "5.5.2 bare CR or NUL in the command line");
            return Flow::Next;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            self.reply(501, "5.5.2 the command line is not UTF-8");
            return Flow::Next;
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v, a.trim()),
            None => (line.trim_end(), ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if arg.is_empty() => {
                self.reply(501, &format!("5.5.4 {verb} needs the client's name"));
            }
            "EHLO" => {
                self.reset();
                self.greeted = Some(true);
                let lines = [
                    self.host.clone(),
                    "PIPELINING".into(),
                    "8BITMIME".into(),
                    "SMTPUTF8".into(),
                    format!("SIZE {}", self.limits.max_message_size),
                    "ENHANCEDSTATUSCODES".into(),
                    "HELP".into(),
                ];
                self.reply_lines(250, &lines);
            }
            "HELO" => {
                self.reset();
                self.greeted = Some(false);
                let text = self.host.clone();
                self.reply(250, &text);
            }
            "MAIL" => self.mail_from(arg),
            "RCPT" => self.rcpt_to(arg),
            "DATA" => {
                if !arg.is_empty() {
                    self.reply(501, "5.5.4 DATA takes no arguments");
                } else if self.mail.is_none() {
                    self.reply(503, "5.5.1 need MAIL command");
                } else if self.recipients.is_empty() {
                    self.reply(554, "5.5.1 no valid recipients");
                } else {
                    return Flow::Data;
                }
            }
            "RSET" if !arg.is_empty() => self.reply(501, "5.5.4 RSET takes no arguments"),
            "RSET" => {
                self.reset();
                self.reply(250, "2.0.0 Ok");
            }
            "NOOP" => self.reply(250, "2.0.0 Ok"),
            "VRFY" if arg.is_empty() => self.reply(501, "5.5.4 VRFY needs an argument"),
            "VRFY" => self.reply(
                252,
                "2.0.0 cannot verify, but will accept the message and attempt delivery",
            ),
            "HELP" => self.reply(
                214,
                "2.0.0 commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
            ),
            "QUIT" => {
                let text = format!("2.0.0 {} closing", self.host);
                self.reply(221, &text);
                return Flow::Quit;
            }
            "EXPN" | "STARTTLS" | "AUTH" | "BDAT" | "ETRN" | "TURN" => {
                self.reply(502, "5.5.1 command not implemented");
            }
            _ => self.reply(500, "5.5.2 command not recognized"),
        }
        Flow::Next
    }

    /// MAIL FROM:<reverse-path> [params] (RFC 5321 §4.1.1.2).
    fn mail_from(&mut self, arg: &str) {
        let Some(esmtp) = self.greeted else {
            return self.reply(503, "5.5.1 send EHLO or HELO first");
        };
        if self.mail.is_some() {
            return self.reply(503, "5.5.1 nested MAIL command");
        }
        let Some(rest) = strip_keyword(arg, "FROM:") else {
            return self.reply(501, "5.5.4 syntax: MAIL FROM:<address>");
        };
        let (sender, params) = match parse_path(rest) {
            Ok(p) => p,
            Err(why) => return self.reply(501, &format!("5.1.7 bad sender address: {why}")),
        };
        if !params.is_empty() && !esmtp {
            return self.reply(555, "5.5.4 parameters need EHLO");
        }
        let mut kept = Vec::new();
        let mut smtputf8 = false;
        for p in params {
            let (key, value) = match p.split_once('=') {
                Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
                None => (p.to_ascii_uppercase(), None),
            };
            if kept
                .iter()
                .any(|k: &String| k.split('=').next() == Some(key.as_str()))
            {
                return self.reply(501, &format!("5.5.4 {key} given twice"));
            }
            match (key.as_str(), value) {
                ("SIZE", Some(v)) => match parse_size(v) {
                    Some(n) if n > self.limits.max_message_size => {
                        let text = format!(
                            "5.3.4 the message is larger than the limit of {} bytes",
                            self.limits.max_message_size
                        );
                        return self.reply(552, &text);
                    }
                    Some(_) => {}
                    None => return self.reply(501, "5.5.4 SIZE needs a number"),
                },
                ("BODY", Some(v))
                    if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {}
                ("BODY", _) => return self.reply(501, "5.5.4 BODY is 7BIT or 8BITMIME"),
                ("SMTPUTF8", None) => smtputf8 = true,
                _ => {
                    return self.reply(555, "5.5.4 MAIL parameter not recognized");
                }
            }
            kept.push(match value {
                Some(v) => format!("{key}={v}"),
                None => key,
            });
        }
        if !sender.is_ascii() && !smtputf8 {
            return self.reply(553, "5.6.7 a non-ASCII address needs SMTPUTF8");
        }
        self.mail = Some(Mail {
            sender,
            params: kept,
            smtputf8,
        });
        self.reply(250, "2.1.0 Ok");
    }

    /// RCPT TO:<forward-path> (RFC 5321 §4.1.1.3); no parameters.
    fn rcpt_to(&mut self, arg: &str) {
        let Some(mail) = &self.mail else {
            return self.reply(503, "5.5.1 need MAIL command");
        };
        let smtputf8 = mail.smtputf8;
        let Some(rest) = strip_keyword(arg, "TO:") else {
            return self.reply(501, "5.5.4 syntax: RCPT TO:<address>");
        };
        let (rcpt, params) = match parse_path(rest) {
            Ok(p) => p,
            Err(why) => return self.reply(501, &format!("5.1.3 bad recipient address: {why}")),
        };
        if rcpt.is_empty() {
            return self.reply(501, "5.1.3 empty recipient address");
        }
        if !params.is_empty() {
            return self.reply(555, "5.5.4 RCPT parameters not recognized");
        }
        if !rcpt.is_ascii() && !smtputf8 {
            return self.reply(553, "5.6.7 a non-ASCII address needs SMTPUTF8");
        }
        if self.recipients.len() >= self.limits.max_recipients {
            return self.reply(452, "4.5.3 too many recipients");
        }
        self.recipients.push(rcpt);
        self.reply(250, "2.1.5 Ok");
    }

    /// DATA (RFC 5321 §4.1.1.4): 354, the body to the callback, the
    /// verdict. Returns `false` when the input ended before the end of
    /// the data.
    fn data<R: Read + ?Sized>(
        &mut self,
        input: &mut BufReader<R>,
        deliver: &mut Deliver<'_>,
    ) -> io::Result<bool> {
        let Some(mail) = self.mail.take() else {
            self.reply(503, "5.5.1 need MAIL command");
            return Ok(true);
        };
        self.reply(354, "End data with <CR><LF>.<CR><LF>");
        // Delivery may take long: the client must have every reply so far.
        self.flush()?;
        let recipients = std::mem::take(&mut self.recipients);
        let mut body = Body::new(input, self.limits.max_message_size);
        let verdict = deliver(Accepted {
            sender: mail.sender,
            recipients,
            body: &mut body,
            mail_params: mail.params,
        });
        let read_to_end = body.done;
        if !body.drain()? {
            return Ok(false);
        }
        self.stats.messages += 1;
        let (code, text) = if body.over_limit {
            (
                552,
                format!(
                    "5.3.4 the message is larger than the limit of {} bytes",
                    self.limits.max_message_size
                ),
            )
        } else {
            match verdict {
                Verdict::Accepted(_) if !read_to_end => (
                    451,
                    "4.3.0 internal error: the message was not read to its end".into(),
                ),
                Verdict::Accepted(t) => (250, reply_text(&t, 2, "Ok")),
                Verdict::Temporary(t) => (451, reply_text(&t, 4, "try again later")),
                Verdict::Permanent(t) => (554, reply_text(&t, 5, "refused")),
            }
        };
        if code == 250 {
            self.stats.accepted += 1;
        } else {
            self.stats.refused += 1;
        }
        self.reply(code, &text);
        Ok(true)
    }
}

/// Appends the wire form of `reply` (RFC 5321 §4.2.1): `ddd-text` for
/// every line but the last, `ddd text` for the last, each ending in CRLF.
/// The texts are ours, already free of CR and LF.
pub fn write_reply(out: &mut Vec<u8>, reply: &Reply) {
    let lines = reply.lines();
    let last = lines.len().saturating_sub(1);
    for (i, l) in lines.iter().enumerate() {
        let sep = if i == last { ' ' } else { '-' };
        out.extend_from_slice(format!("{}{sep}{l}\r\n", reply.code()).as_bytes());
    }
    if lines.is_empty() {
        out.extend_from_slice(format!("{}\r\n", reply.code()).as_bytes());
    }
}

/// `FROM:` / `TO:` at the start, in any case, then optional spaces.
fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| arg[keyword.len()..].trim_start())
}

/// Splits `<path> params…` into the bare address and the parameters. A
/// path without angle brackets is taken up to the first space, as
/// sendmail does; a source route (`<@a,@b:user@c>`) is dropped (RFC 5321
/// §4.1.1.3). The address is checked as the client side checks it.
fn parse_path(s: &str) -> Result<(String, Vec<&str>), &'static str> {
    let (path, rest) = if s.starts_with('<') {
        let close = closing_bracket(s).ok_or("no closing '>'")?;
        (&s[..=close], &s[close + 1..])
    } else {
        s.split_at(s.find(' ').unwrap_or(s.len()))
    };
    if path.is_empty() {
        return Err("no address");
    }
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err("text after the address");
    }
    let inner = path.strip_prefix('<').and_then(|p| p.strip_suffix('>'));
    let inner = inner.unwrap_or(path);
    let inner = match inner.strip_prefix('@') {
        Some(route) => route.split_once(':').ok_or("bad source route")?.1,
        None => inner,
    };
    // quoteaddr refuses control characters, stray brackets and unquoted
    // white space; anything it would drop (a display name, a comment) has
    // no place in a path either.
    let quoted = quoteaddr(inner).map_err(|_| "not a valid address")?;
    let addr = &quoted[1..quoted.len() - 1];
    if addr != inner {
        return Err("not a valid address");
    }
    Ok((addr.to_owned(), rest.split_whitespace().collect()))
}

/// The index of the `>` that closes the `<` at the start of `s`, outside
/// quoted strings.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '>' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_size(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// The callback's text as one safe reply line: control characters become
/// spaces (a CRLF in it would forge replies), non-ASCII `?`, the length is
/// bounded, and an enhanced status code of the right class (RFC 3463,
/// RFC 2034) is in front.
fn reply_text(text: &str, class: u8, fallback: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if !c.is_ascii() => '?',
            c => c,
        })
        .collect();
    let clean = clean.trim();
    let rest = match EnhancedCode::parse_prefix(clean) {
        Some((_, rest)) => rest.trim(),
        None => clean,
    };
    let code = match EnhancedCode::parse_prefix(clean) {
        Some((c, _)) if c.class == class => c.to_string(),
        _ => format!("{class}.0.0"),
    };
    let rest = if rest.is_empty() { fallback } else { rest };
    let mut line = format!("{code} {rest}");
    line.truncate(MAX_REPLY_TEXT);
    line
}

/// The name in our greeting: printable ASCII without spaces.
fn clean_hostname(h: &str) -> String {
    let h: String = h
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if h.is_empty() { "localhost".into() } else { h }
}

enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

/// Reads one command line (LF or CRLF ended) of at most
/// [`MAX_COMMAND_LINE`] octets; a longer one is read to its end and
/// discarded. An unterminated last line counts as the end of the input.
fn read_command<R: Read + ?Sized>(input: &mut BufReader<R>) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, ended) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if !too_long && line.len() + take > MAX_COMMAND_LINE {
            too_long = true;
            line = Vec::new();
        }
        if !too_long {
            line.extend_from_slice(&buf[..take]);
        }
        input.consume(take);
        if ended {
            break;
        }
    }
    if too_long {
        return Ok(Line::TooLong);
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Line::Text(line))
}

/// Where the body reader stands in the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the start of a line.
    LineStart,
    /// Inside a line.
    Middle,
    /// After a "." at the start of a line.
    Dot,
    /// After ".\r" at the start of a line.
    DotCr,
}

/// The DATA body as a reader: yields the input up to the end-of-data line
/// (`.` alone on a line, CRLF or LF ended), with the leading dot of every
/// other line that has one removed. Memory is the caller's buffer.
struct Body<'i, R: ?Sized> {
    input: &'i mut BufReader<R>,
    at: At,
    /// The end-of-data line has been read.
    done: bool,
    /// The input ended first.
    eof: bool,
    size: u64,
    max: u64,
    over_limit: bool,
}

impl<'i, R: Read + ?Sized> Body<'i, R> {
    fn new(input: &'i mut BufReader<R>, max: u64) -> Self {
        Body {
            input,
            at: At::LineStart,
            done: false,
            eof: false,
            size: 0,
            max,
            over_limit: false,
        }
    }

    /// The next unstuffed bytes, without the size limit: `Ok(0)` only at
    /// the end of the data.
    fn next_chunk(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n == 0 && !self.done && !out.is_empty() {
            if self.eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the input ended before the end of the data",
                ));
            }
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                self.eof = true;
                continue;
            }
            let mut used = 0;
            while used < buf.len() && n < out.len() && !self.done {
                let b = buf[used];
                match self.at {
                    At::Middle => {
                        let avail = &buf[used..];
                        let room = out.len() - n;
                        let take = match avail.iter().position(|&c| c == b'\n') {
                            Some(i) if i < room => i + 1,
                            _ => avail.len().min(room),
                        };
                        out[n..n + take].copy_from_slice(&avail[..take]);
                        n += take;
                        used += take;
                        if out[n - 1] == b'\n' {
                            self.at = At::LineStart;
                        }
                    }
                    At::LineStart if b == b'.' => {
                        used += 1;
                        self.at = At::Dot;
                    }
                    At::LineStart => self.at = At::Middle,
                    At::Dot | At::DotCr if b == b'\n' => {
                        used += 1;
                        self.done = true;
                    }
                    At::Dot if b == b'\r' => {
                        used += 1;
                        self.at = At::DotCr;
                    }
                    // A stuffed dot: dropped; the byte is read again.
                    At::Dot => self.at = At::Middle,
                    // ".\r" then not LF: the dot goes, the CR stays.
                    At::DotCr => {
                        out[n] = b'\r';
                        n += 1;
                        self.at = At::Middle;
                    }
                }
            }
            self.input.consume(used);
        }
        Ok(n)
    }

    /// Reads what the callback left, up to the end of the data: `Ok(true)`
    /// when its end came, `Ok(false)` when the input ended first.
    fn drain(&mut self) -> io::Result<bool> {
        let mut scratch = [0u8; 8192];
        loop {
            match self.next_chunk(&mut scratch) {
                Ok(0) => return Ok(true),
                Ok(_) => {}
                Err(_) if self.eof => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read + ?Sized> Read for Body<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.over_limit {
            let n = self.next_chunk(out)?;
            self.size += n as u64;
            if self.size <= self.max {
                return Ok(n);
            }
            self.over_limit = true;
        }
        Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("the message is larger than the limit of {} bytes", self.max),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::io::Cursor;

    /// What the callback saw of one message.
    #[derive(Debug, Default)]
    struct Seen {
        sender: String,
        recipients: Vec<String>,
        params: Vec<String>,
        body: Vec<u8>,
        error: Option<io::ErrorKind>,
    }

    /// Runs a session on `input`, reading every body to its end and
    /// answering with `verdict`.
    fn session_with(
        input: &[u8],
        limits: Limits,
        mut verdict: impl FnMut(&Seen) -> Verdict,
    ) -> (String, Vec<Seen>, Stats) {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        let mut reader = BufReader::new(Cursor::new(input.to_vec()));
        let stats = serve_with(&mut reader, &mut out, "mx.test", limits, &mut |a| {
            let mut s = Seen {
                sender: a.sender,
                recipients: a.recipients,
                params: a.mail_params,
                ..Seen::default()
            };
            if let Err(e) = a.body.read_to_end(&mut s.body) {
                s.error = Some(e.kind());
            }
            let v = verdict(&s);
            seen.push(s);
            v
        })
        .unwrap();
        (String::from_utf8(out).unwrap(), seen, stats)
    }

    fn session(input: &[u8]) -> (String, Vec<Seen>, Stats) {
        session_with(input, Limits::default(), |s| match s.error {
            None => Verdict::Accepted("2.0.0 queued as Q1".into()),
            Some(_) => Verdict::Temporary("cannot read the message".into()),
        })
    }

    /// The reply codes in order.
    fn codes(out: &str) -> Vec<&str> {
        out.lines()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| &l[..3])
            .collect()
    }

    #[test]
    fn full_session_with_two_messages() {
        let (out, seen, stats) = session(
            b"EHLO client.test\r\n\
              MAIL FROM:<alice@example.org>\r\n\
              RCPT TO:<bob@example.org>\r\n\
              RCPT TO:<carol@example.org>\r\n\
              DATA\r\n\
              Subject: one\r\n\r\nfirst\r\n.\r\n\
              MAIL FROM:<>\r\n\
              RCPT TO:<Dave@Example.org>\r\n\
              DATA\r\n\
              Subject: two\r\n\r\nsecond\r\n.\r\n\
              QUIT\r\n",
        );
        assert!(out.starts_with("220 mx.test smtpsend ESMTP\r\n"), "{out}");
        assert!(out.contains("250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"));
        assert!(out.contains("250-SIZE 67108864\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n"));
        assert_eq!(
            codes(&out),
            [
                "220", "250", "250", "250", "250", "354", "250", "250", "250", "354", "250", "221"
            ]
        );
        assert!(out.contains("250 2.0.0 queued as Q1\r\n"));
        assert!(out.ends_with("221 2.0.0 mx.test closing\r\n"));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].sender, "alice@example.org");
        assert_eq!(seen[0].recipients, ["bob@example.org", "carol@example.org"]);
        assert_eq!(seen[0].body, b"Subject: one\r\n\r\nfirst\r\n");
        assert_eq!(seen[1].sender, "");
        assert_eq!(seen[1].recipients, ["Dave@Example.org"]);
        assert_eq!(seen[1].body, b"Subject: two\r\n\r\nsecond\r\n");
        assert_eq!(
            stats,
            Stats {
                messages: 2,
                accepted: 2,
                refused: 0
            }
        );
    }

    /// Input that arrives in the given segments, one per read; output
    /// that records each write.
    struct Segments(VecDeque<Vec<u8>>);

    impl Read for Segments {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let Some(seg) = self.0.front_mut() else {
                return Ok(0);
            };
            let n = out.len().min(seg.len());
            out[..n].copy_from_slice(&seg[..n]);
            seg.drain(..n);
            if seg.is_empty() {
                self.0.pop_front();
            }
            Ok(n)
        }
    }

    #[derive(Default)]
    struct Writes(Vec<String>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(String::from_utf8_lossy(buf).into_owned());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn segmented(segments: &[&[u8]]) -> (Vec<String>, Vec<Seen>) {
        let mut reader = BufReader::new(Segments(segments.iter().map(|s| s.to_vec()).collect()));
        let mut out = Writes::default();
        let mut seen = Vec::new();
        serve(&mut reader, &mut out, "mx.test", &mut |a| {
            let mut body = Vec::new();
            let error = a.body.read_to_end(&mut body).err().map(|e| e.kind());
            seen.push(Seen {
                body,
                error,
                ..Seen::default()
            });
            Verdict::Accepted("queued".into())
        })
        .unwrap();
        (out.0, seen)
    }

    #[test]
    fn pipelined_replies_are_written_once_the_input_is_drained() {
        let (writes, seen) = segmented(&[
            b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n",
            b"hello\r\n.\r\nQUIT\r\n",
        ]);
        assert_eq!(writes.len(), 3, "{writes:#?}");
        assert_eq!(writes[0], "220 mx.test smtpsend ESMTP\r\n");
        assert_eq!(codes(&writes[1]), ["250", "250", "250", "250", "354"]);
        assert_eq!(
            writes[2],
            "250 2.0.0 queued\r\n221 2.0.0 mx.test closing\r\n"
        );
        assert_eq!(seen[0].body, b"hello\r\n");
    }

    #[test]
    fn unpipelined_commands_get_their_replies_at_once() {
        let (writes, _) = segmented(&[b"HELO c\r\n", b"NOOP\r\n", b"RSET\r\n", b"QUIT\r\n"]);
        assert_eq!(writes.len(), 5, "{writes:#?}");
        assert_eq!(writes[1], "250 mx.test\r\n");
        assert_eq!(writes[2], "250 2.0.0 Ok\r\n");
    }

    #[test]
    fn endless_pipelining_costs_bounded_memory() {
        let noops = b"NOOP\r\n".repeat(50_000);
        let (writes, _) = segmented(&[&noops, b"QUIT\r\n"]);
        assert!(writes.len() > 2);
        assert!(writes.iter().all(|w| w.len() < MAX_PENDING_OUTPUT + 100));
        assert_eq!(writes.concat().matches("250 2.0.0 Ok").count(), 50_000);
    }

    #[test]
    fn dot_unstuffing_and_the_end_mark() {
        let (out, seen, _) = session(
            b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n\
              ..leading\r\n.b\r\n...\r\n.\rx\r\nmid.dle\r\n. \r\n.\r\nQUIT\r\n",
        );
        assert_eq!(
            seen[0].body,
            b".leading\r\nb\r\n..\r\n\rx\r\nmid.dle\r\n \r\n"
        );
        assert!(out.ends_with("250 2.0.0 queued as Q1\r\n221 2.0.0 mx.test closing\r\n"));
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let text: &[u8] = b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n\
                            ..x\r\n.\ry\r\nz\n.\r\nQUIT\r\n";
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        let (writes, seen) = segmented(&bytes);
        assert_eq!(seen[0].body, b".x\r\n\ry\r\nz\n");
        assert!(writes.concat().ends_with("221 2.0.0 mx.test closing\r\n"));
    }

    #[test]
    fn bare_lf_is_a_line_end() {
        let (out, seen, stats) =
            session(b"EHLO c\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\nline1\n..dot\n.\nQUIT\n");
        assert_eq!(seen[0].body, b"line1\n.dot\n");
        assert_eq!(stats.accepted, 1);
        assert!(out.ends_with("221 2.0.0 mx.test closing\r\n"));
    }

    #[test]
    fn commands_out_of_sequence() {
        let (out, seen, _) = session(
            b"MAIL FROM:<a@b>\r\nEHLO c\r\nRCPT TO:<c@d>\r\nDATA\r\n\
              MAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nDATA\r\nRSET\r\nRCPT TO:<c@d>\r\nQUIT\r\n",
        );
        assert_eq!(
            codes(&out),
            [
                "220", "503", "250", "503", "503", "250", "503", "554", "250", "503", "221"
            ]
        );
        assert!(seen.is_empty());
    }

    #[test]
    fn syntax_errors() {
        for (line, code) in [
            ("MAIL FROM:<a@b", "501"),
            ("MAIL FROM:<a b@c>", "501"),
            ("MAIL FROM:<a@b>SIZE=1", "501"),
            ("MAIL FROM:", "501"),
            ("MAIL FROM:<a@b (comment)>", "501"),
            ("MAIL FROM:<Name <a@b>>", "501"),
            ("MAIL FROM:a@b<c@d>", "501"),
            ("MAIL TO:<a@b>", "501"),
            ("MAIL FROM:<a@b> FOO=1", "555"),
            ("MAIL FROM:<a@b> SIZE=x", "501"),
            ("MAIL FROM:<a@b> SIZE=99999999999", "552"),
            ("MAIL FROM:<a@b> BODY=BINARYMIME", "501"),
            ("MAIL FROM:<a@b> BODY=7BIT BODY=7BIT", "501"),
            ("MAIL FROM:<\u{fc}@b>", "553"),
            ("MAIL FROM:<a@b>\rRCPT TO:<x@y>", "501"),
            ("NOOP \0", "501"),
            ("EHLO", "501"),
            ("DATA x", "501"),
            ("VRFY", "501"),
            ("VRFY bob", "252"),
            ("HELP", "214"),
            ("EXPN list", "502"),
            ("STARTTLS", "502"),
            ("AUTH PLAIN AGFAYg==", "502"),
            ("FROB", "500"),
        ] {
            let input = format!("EHLO c\r\n{line}\r\nQUIT\r\n");
            let (out, _, _) = session(input.as_bytes());
            assert_eq!(codes(&out)[2], code, "{line:?}: {out}");
        }
        let (out, _, _) = session(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<>\r\nQUIT\r\n");
        assert_eq!(codes(&out)[3], "501");
        let (out, _, _) = session(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d> NOTIFY=NEVER\r\n");
        assert_eq!(codes(&out)[3], "555");
    }

    #[test]
    fn parameters_and_addresses_reach_the_callback() {
        let (out, seen, _) = session(
            "EHLO c\r\nMAIL FROM: <\u{fc}@b.example> BODY=8bitmime size=12 SMTPUTF8\r\n\
             RCPT TO:<@relay.example,@r2.example:bob@example.org>\r\nRCPT TO:Postmaster\r\n\
             RCPT TO:<\"a b\"@example.org>\r\nDATA\r\nx\r\n.\r\n"
                .as_bytes(),
        );
        assert_eq!(codes(&out)[..6], ["220", "250", "250", "250", "250", "250"]);
        assert_eq!(seen[0].sender, "\u{fc}@b.example");
        assert_eq!(seen[0].params, ["BODY=8bitmime", "SIZE=12", "SMTPUTF8"]);
        assert_eq!(
            seen[0].recipients,
            ["bob@example.org", "Postmaster", "\"a b\"@example.org"]
        );
        // HELO has no extensions, so no parameters.
        let (out, _, _) = session(b"HELO c\r\nMAIL FROM:<a@b> BODY=7BIT\r\n");
        assert_eq!(codes(&out)[2], "555");
    }

    #[test]
    fn too_many_recipients() {
        let limits = Limits {
            max_recipients: 2,
            ..Limits::default()
        };
        let (out, seen, _) = session_with(
            b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<1@x>\r\nRCPT TO:<2@x>\r\nRCPT TO:<3@x>\r\n\
              DATA\r\nx\r\n.\r\n",
            limits,
            |_| Verdict::Accepted(String::new()),
        );
        assert_eq!(codes(&out)[3..], ["250", "250", "452", "354", "250"]);
        assert!(out.contains("452 4.5.3 too many recipients\r\n"));
        assert_eq!(seen[0].recipients, ["1@x", "2@x"]);
    }

    #[test]
    fn eof_in_the_data_delivers_nothing() {
        let mut delivered = false;
        let (out, seen, stats) = session_with(
            b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhello\r\n.",
            Limits::default(),
            |s| {
                delivered = s.error.is_none();
                Verdict::Accepted("would be a lie".into())
            },
        );
        assert!(!delivered);
        assert_eq!(seen[0].error, Some(io::ErrorKind::UnexpectedEof));
        assert!(
            out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"),
            "{out}"
        );
        assert_eq!(stats, Stats::default());
    }

    #[test]
    fn eof_mid_command_ends_the_session() {
        let (out, _, stats) = session(b"EHLO c\r\nNOOP");
        assert_eq!(codes(&out), ["220", "250"]);
        assert_eq!(stats, Stats::default());
    }

    #[test]
    fn verdicts_map_to_codes() {
        for (verdict, want) in [
            (
                Verdict::Accepted("2.0.0 queued as X".into()),
                "250 2.0.0 queued as X",
            ),
            (Verdict::Accepted(String::new()), "250 2.0.0 Ok"),
            (
                Verdict::Temporary("try later".into()),
                "451 4.0.0 try later",
            ),
            (
                Verdict::Temporary("4.4.1 no answer from relay".into()),
                "451 4.4.1 no answer from relay",
            ),
            (
                Verdict::Permanent("5.7.1 relay says no".into()),
                "554 5.7.1 relay says no",
            ),
            (
                Verdict::Permanent("2.0.0 confused".into()),
                "554 5.0.0 confused",
            ),
            (
                Verdict::Permanent("5.1.1 no\r\n250 2.0.0 forged".into()),
                "554 5.1.1 no  250 2.0.0 forged",
            ),
        ] {
            let mut v = Some(verdict);
            let (out, _, stats) = session_with(
                b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n",
                Limits::default(),
                |_| v.take().unwrap(),
            );
            assert!(out.ends_with(&format!("{want}\r\n")), "{want}: {out}");
            let accepted = want.starts_with("250");
            assert_eq!(stats.accepted, u64::from(accepted));
            assert_eq!(stats.refused, u64::from(!accepted));
        }
    }

    #[test]
    fn a_body_left_unread_is_drained_and_not_acknowledged() {
        let mut out = Vec::new();
        let mut reader = BufReader::new(Cursor::new(
            b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nline\r\n.\r\nNOOP\r\n".to_vec(),
        ));
        let stats = serve(&mut reader, &mut out, "mx.test", &mut |_| {
            Verdict::Accepted("never read".into())
        })
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.ends_with(
                "451 4.3.0 internal error: the message was not read to its end\r\n250 2.0.0 Ok\r\n"
            ),
            "{out}"
        );
        assert_eq!(stats.refused, 1);
    }

    #[test]
    fn oversized_message_is_refused_and_the_session_goes_on() {
        let limits = Limits {
            max_message_size: 10,
            ..Limits::default()
        };
        let (out, seen, stats) = session_with(
            b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n0123456789abcdef\r\n.\r\n\
              MAIL FROM:<a@b> SIZE=11\r\nMAIL FROM:<a@b> SIZE=10\r\nQUIT\r\n",
            limits,
            |_| Verdict::Accepted("ignored".into()),
        );
        assert_eq!(seen[0].error, Some(io::ErrorKind::FileTooLarge));
        assert!(seen[0].body.len() <= 10);
        assert!(out.contains("552 5.3.4 the message is larger than the limit of 10 bytes\r\n"));
        assert_eq!(codes(&out)[5..], ["552", "552", "250", "221"]);
        assert_eq!(stats.refused, 1);
    }

    #[test]
    fn oversized_line_is_refused() {
        let mut input = b"EHLO c\r\nNOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let (out, _, _) = session(&input);
        assert_eq!(codes(&out), ["220", "250", "500", "250"]);
        assert!(out.contains("500 5.5.2 line too long\r\n"));
        // Exactly at the limit is fine.
        let mut input = b"NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_COMMAND_LINE - 7));
        input.extend_from_slice(b"\r\n");
        let (out, _, _) = session(&input);
        assert_eq!(codes(&out), ["220", "250"]);
        input.insert(0, b'x');
        let (out, _, _) = session(&input);
        assert_eq!(codes(&out), ["220", "500"]);
    }

    #[test]
    fn hostname_cannot_break_the_greeting() {
        let mut out = Vec::new();
        let mut reader = BufReader::new(Cursor::new(b"QUIT\r\n".to_vec()));
        serve(&mut reader, &mut out, "evil\r\n250 x", &mut |_| {
            Verdict::Accepted(String::new())
        })
        .unwrap();
        assert!(out.starts_with(b"220 evil250x smtpsend ESMTP\r\n"));
    }

    #[test]
    fn replies_are_written_as_the_client_parses_them() {
        let r = Reply::new(
            250,
            vec!["host".into(), "PIPELINING".into(), "SIZE 10".into()],
        );
        let mut out = Vec::new();
        write_reply(&mut out, &r);
        assert_eq!(out, b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
        let back = crate::smtp::reply::parse_reply(&out).unwrap();
        assert_eq!(back.code(), 250);
        assert_eq!(back.lines(), r.lines());
    }
}
