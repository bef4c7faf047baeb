//! The description of how a scripted server behaves: a builder of defaults
//! (a well-behaved ESMTP server) plus overrides and faults at named steps.
//!
//! Owns only data; [`super::session`] interprets it. Never does I/O.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use native_tls::{Identity, Protocol};

use super::conn::RawConn;
use super::session::AuthExchange;
use super::tls::TestPki;

/// Default bound on every wait inside the server (reads, writes, accept).
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The default EHLO capabilities of [`Script::new`].
pub const DEFAULT_CAPS: &[&str] = &[
    "PIPELINING",
    "SIZE 10485760",
    "8BITMIME",
    "SMTPUTF8",
    "ENHANCEDSTATUSCODES",
    "DSN",
    "HELP",
];

/// The mechanisms [`Script::auth_accept`] advertises and implements.
pub const BUILTIN_AUTH_MECHANISMS: &str = "AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2";

/// A point in the conversation where the server is about to answer (or, for
/// [`Step::AfterGreeting`] and [`Step::DataBytes`], about to read on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The greeting (implicit TLS: after the handshake).
    Greeting,
    /// Just after the greeting was sent, before reading anything.
    AfterGreeting,
    /// The reply to EHLO (or LHLO in LMTP mode).
    Ehlo,
    /// The reply to HELO.
    Helo,
    /// The reply to STARTTLS.
    StartTls,
    /// The final reply of an AUTH exchange (235/535/...).
    Auth,
    /// The reply to MAIL.
    Mail,
    /// The reply to RCPT.
    Rcpt,
    /// The reply to DATA (354 by default).
    Data,
    /// While receiving content, once at least this many content bytes of the
    /// current message have arrived (DATA or BDAT). `nth` counts messages.
    DataBytes(usize),
    /// After the final `.` (or the `BDAT ... LAST` chunk), before the reply.
    EndOfData,
    /// LMTP only: each per-recipient reply after the data.
    LmtpReply,
    /// The reply to a BDAT chunk that is not LAST.
    Bdat,
    /// The reply to RSET.
    Rset,
    /// The reply to NOOP.
    Noop,
    /// The reply to QUIT.
    Quit,
    /// The reply to any other command, by upper-case verb (`"VRFY"`, `"XYZZY"`).
    Other(String),
}

impl Step {
    /// Only the n-th time (1-based, per connection) this step is reached.
    pub fn nth(self, n: usize) -> At {
        At::from(self).nth(n)
    }

    /// Only when the connection is inside TLS.
    pub fn in_tls(self) -> At {
        At::from(self).in_tls()
    }

    /// Only when the connection is still plaintext.
    pub fn in_plain(self) -> At {
        At::from(self).in_plain()
    }

    /// Only on the connection with this 0-based index.
    pub fn on_connection(self, index: usize) -> At {
        At::from(self).on_connection(index)
    }
}

/// A [`Step`] narrowed by occurrence, TLS state and connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At {
    /// The step.
    pub step: Step,
    /// Only the n-th occurrence (1-based, per connection).
    pub nth: Option<usize>,
    /// Only inside (true) or outside (false) TLS.
    pub tls: Option<bool>,
    /// Only on this 0-based connection index.
    pub connection: Option<usize>,
}

impl At {
    /// See [`Step::nth`].
    pub fn nth(mut self, n: usize) -> At {
        self.nth = Some(n);
        self
    }

    /// See [`Step::in_tls`].
    pub fn in_tls(mut self) -> At {
        self.tls = Some(true);
        self
    }

    /// See [`Step::in_plain`].
    pub fn in_plain(mut self) -> At {
        self.tls = Some(false);
        self
    }

    /// See [`Step::on_connection`].
    pub fn on_connection(mut self, index: usize) -> At {
        self.connection = Some(index);
        self
    }

    pub(crate) fn matches(&self, step: &Step, occurrence: usize, tls: bool, conn: usize) -> bool {
        let step_ok = match (&self.step, step) {
            (Step::DataBytes(want), Step::DataBytes(have)) => have >= want,
            (Step::Other(a), Step::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        };
        step_ok
            && self.nth.is_none_or(|n| n == occurrence)
            && self.tls.is_none_or(|t| t == tls)
            && self.connection.is_none_or(|c| c == conn)
    }
}

impl From<Step> for At {
    fn from(step: Step) -> At {
        At {
            step,
            nth: None,
            tls: None,
            connection: None,
        }
    }
}

/// What a hook tells the server to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Send the reply the server would have sent anyway.
    SendReply,
    /// The hook wrote whatever it wanted; send nothing more for this step.
    Replied,
    /// Close the connection now.
    Close,
}

/// Hook closure type: gets the raw connection at a step.
pub type HookFn = Arc<dyn Fn(&mut RawConn) -> Hook + Send + Sync>;
/// Whole-connection handler type for [`Script::raw`].
pub type RawFn = Arc<dyn Fn(&mut RawConn) + Send + Sync>;
/// Custom AUTH handler: runs the exchange, returns the final reply line.
pub type AuthFn = Arc<dyn Fn(&mut AuthExchange) -> String + Send + Sync>;
/// Line predicate type for [`Matcher::Pred`].
pub type PredFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What happens at a step (see [`Script::at`]).
#[derive(Clone)]
pub enum Action {
    /// Answer with this text instead (`"550 5.1.1 no"`; `\n` separates lines
    /// of a multi-line reply; CRLFs are added). The reply's code decides the
    /// command's effect, as for [`Script::reply_to`].
    Reply(String),
    /// Send these bytes verbatim instead of the reply (the command's effect
    /// is still decided by the reply that would have been sent).
    Raw(Vec<u8>),
    /// Close the connection instead of answering (pending replies to earlier
    /// pipelined commands are flushed first).
    Disconnect,
    /// Send the reply (and anything queued before it), then close.
    DisconnectAfter,
    /// Say nothing for this long (reading nothing either), then go on. Ends
    /// early if the client closes or the test calls `finish()`.
    Stall(Duration),
    /// Send the reply one byte at a time, this long between bytes.
    Drip(Duration),
    /// Hand the raw connection to a closure.
    Hook(HookFn),
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Reply(r) => f.debug_tuple("Reply").field(r).finish(),
            Action::Raw(b) => write!(f, "Raw({} bytes)", b.len()),
            Action::Disconnect => f.write_str("Disconnect"),
            Action::DisconnectAfter => f.write_str("DisconnectAfter"),
            Action::Stall(d) => f.debug_tuple("Stall").field(d).finish(),
            Action::Drip(d) => f.debug_tuple("Drip").field(d).finish(),
            Action::Hook(_) => f.write_str("Hook(..)"),
        }
    }
}

/// Selects client command lines for [`Script::reply_to`].
#[derive(Clone)]
pub enum Matcher {
    /// The line's verb equals this (ASCII case-insensitive).
    Verb(String),
    /// The line starts with this (ASCII case-insensitive).
    Prefix(String),
    /// The line contains this (exact case).
    Contains(String),
    /// Any predicate on the line (without CRLF).
    Pred(PredFn),
}

impl Matcher {
    /// See [`Matcher::Verb`].
    pub fn verb(v: &str) -> Matcher {
        Matcher::Verb(v.to_string())
    }

    /// See [`Matcher::Prefix`].
    pub fn prefix(p: &str) -> Matcher {
        Matcher::Prefix(p.to_string())
    }

    /// See [`Matcher::Contains`].
    pub fn contains(s: &str) -> Matcher {
        Matcher::Contains(s.to_string())
    }

    /// See [`Matcher::Pred`].
    pub fn pred(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Matcher {
        Matcher::Pred(Arc::new(f))
    }

    /// Whether `line` (a command line without CRLF) is selected.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Matcher::Verb(v) => super::transcript::verb_of(line).eq_ignore_ascii_case(v),
            Matcher::Prefix(p) => super::transcript::starts_with_ignore_case(line, p),
            Matcher::Contains(s) => line.contains(s.as_str()),
            Matcher::Pred(f) => f(line),
        }
    }
}

/// A single word (`"RCPT"`) matches the verb; anything with a space or colon
/// (`"RCPT TO:<bad@x>"`) matches as a case-insensitive prefix.
impl From<&str> for Matcher {
    fn from(s: &str) -> Matcher {
        if s.contains([' ', ':']) {
            Matcher::prefix(s)
        } else {
            Matcher::verb(s)
        }
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Verb(v) => write!(f, "Verb({v:?})"),
            Matcher::Prefix(p) => write!(f, "Prefix({p:?})"),
            Matcher::Contains(s) => write!(f, "Contains({s:?})"),
            Matcher::Pred(_) => f.write_str("Pred(..)"),
        }
    }
}

/// A reply override for command lines (see [`Script::reply_to`]).
#[derive(Clone, Debug)]
pub(crate) struct ReplyRule {
    pub matcher: Matcher,
    pub reply: String,
    /// `None`: every time; `Some(n)`: the first n matches across the whole
    /// server (all connections).
    pub limit: Option<usize>,
    pub used: Arc<AtomicUsize>,
}

impl ReplyRule {
    /// Whether this rule applies to `line`; counts a use when it does.
    pub fn take(&self, line: &str) -> bool {
        if !self.matcher.matches(line) {
            return false;
        }
        match self.limit {
            None => true,
            Some(limit) => self.used.fetch_add(1, Ordering::SeqCst) < limit,
        }
    }
}

/// How AUTH is handled.
#[derive(Clone)]
pub(crate) enum AuthMode {
    /// Built-in PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 (password = bearer token).
    Accept { user: String, pass: String },
    /// A test-provided exchange.
    Custom(AuthFn),
}

/// How a scripted server behaves. [`Script::new`] is a well-behaved ESMTP
/// server; every builder method changes one thing.
///
/// Replies given as text may be multi-line with `\n` between lines
/// (`"250-first\n250 last"`); line endings are normalised to CRLF. A reply's
/// code decides the command's effect: MAIL/RCPT/EHLO/HELO take effect on 2xx,
/// DATA on 3xx, STARTTLS on 220, AUTH on 235, end-of-data accepts on 2xx.
///
/// Precedence for a command's reply: the built-in default, then the first
/// matching [`reply_to`](Script::reply_to) rule, then the last matching
/// [`Action::Reply`] at that step. Then, in this order: stalls, a disconnect,
/// a hook, raw bytes or drip, a disconnect after the reply.
#[derive(Clone)]
pub struct Script {
    pub(crate) greeting: String,
    pub(crate) caps: Vec<String>,
    pub(crate) ehlo_reply: Option<String>,
    pub(crate) lmtp: bool,
    pub(crate) lmtp_replies: Vec<(Matcher, String)>,
    pub(crate) rules: Vec<ReplyRule>,
    pub(crate) actions: Vec<(At, Action)>,
    pub(crate) starttls: bool,
    pub(crate) tls_on_connect: bool,
    pub(crate) identity: Option<Identity>,
    pub(crate) tls_min: Option<Protocol>,
    pub(crate) tls_max: Option<Protocol>,
    pub(crate) inject_after_starttls: Vec<u8>,
    pub(crate) require_tls_for_auth: bool,
    pub(crate) auth: Option<AuthMode>,
    pub(crate) raw: Option<RawFn>,
    pub(crate) max_connections: usize,
    pub(crate) io_timeout: Duration,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("greeting", &self.greeting)
            .field("caps", &self.caps)
            .field("lmtp", &self.lmtp)
            .field("rules", &self.rules)
            .field("actions", &self.actions)
            .field("starttls", &self.starttls)
            .field("tls_on_connect", &self.tls_on_connect)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Default for Script {
    fn default() -> Self {
        Script::new()
    }
}

impl Script {
    /// A well-behaved ESMTP server: greeting `220 scripted ESMTP`, EHLO with
    /// [`DEFAULT_CAPS`], HELO, MAIL, RCPT, DATA, BDAT, RSET, NOOP, VRFY (252),
    /// EXPN (502), HELP (214), QUIT; no STARTTLS, no AUTH; one connection;
    /// every wait bounded by [`DEFAULT_IO_TIMEOUT`].
    pub fn new() -> Script {
        Script {
            greeting: "220 scripted ESMTP".to_string(),
            caps: DEFAULT_CAPS.iter().map(|c| c.to_string()).collect(),
            ehlo_reply: None,
            lmtp: false,
            lmtp_replies: Vec::new(),
            rules: Vec::new(),
            actions: Vec::new(),
            starttls: false,
            tls_on_connect: false,
            identity: None,
            tls_min: None,
            tls_max: None,
            inject_after_starttls: Vec::new(),
            require_tls_for_auth: false,
            auth: None,
            raw: None,
            max_connections: 1,
            io_timeout: DEFAULT_IO_TIMEOUT,
        }
    }

    /// Replace the greeting line(s), e.g. `"554 go away"`. After a non-2xx
    /// greeting every command but QUIT gets `503 5.5.1`.
    pub fn greeting(mut self, text: &str) -> Script {
        self.greeting = text.to_string();
        self
    }

    /// Replace the EHLO capability list (one keyword line each, without the
    /// `250-`). STARTTLS and AUTH are still added when enabled, unless the
    /// list already has them.
    pub fn ehlo_caps(mut self, caps: &[&str]) -> Script {
        self.caps = caps.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Add one capability line (e.g. `"CHUNKING"`).
    pub fn with_cap(mut self, cap: &str) -> Script {
        self.caps.push(cap.to_string());
        self
    }

    /// Answer EHLO (LHLO) with `code text` instead, e.g. `(502, "5.5.1 no
    /// EHLO")` to force a HELO fallback.
    pub fn ehlo_reply(mut self, code: u16, text: &str) -> Script {
        self.ehlo_reply = Some(format!("{code} {text}"));
        self
    }

    /// LMTP mode (RFC 2033): greeting `220 scripted LMTP`, LHLO instead of
    /// EHLO/HELO, and after the data one reply per accepted recipient.
    pub fn lhlo(mut self) -> Script {
        self.lmtp = true;
        if self.greeting == "220 scripted ESMTP" {
            self.greeting = "220 scripted LMTP".to_string();
        }
        self
    }

    /// LMTP: the post-data reply for recipients whose `RCPT TO:` argument
    /// contains `rcpt` (first match wins; default `250 2.1.5 <addr> delivered`).
    pub fn lmtp_reply(mut self, rcpt: &str, reply: &str) -> Script {
        self.lmtp_replies
            .push((Matcher::contains(rcpt), reply.to_string()));
        self
    }

    /// Answer client lines selected by `matcher` with `reply`, every time.
    /// `"RCPT"` selects a verb; `"RCPT TO:<bad@x>"` a prefix; see [`Matcher`].
    pub fn reply_to(mut self, matcher: impl Into<Matcher>, reply: &str) -> Script {
        self.rules.push(ReplyRule {
            matcher: matcher.into(),
            reply: reply.to_string(),
            limit: None,
            used: Arc::new(AtomicUsize::new(0)),
        });
        self
    }

    /// Like [`reply_to`](Script::reply_to) but only for the first `times`
    /// matching lines across all connections (e.g. 451 once, then accept).
    pub fn reply_to_times(
        mut self,
        matcher: impl Into<Matcher>,
        reply: &str,
        times: usize,
    ) -> Script {
        self.rules.push(ReplyRule {
            matcher: matcher.into(),
            reply: reply.to_string(),
            limit: Some(times),
            used: Arc::new(AtomicUsize::new(0)),
        });
        self
    }

    /// The reply after the end of data (SMTP), or the default per-recipient
    /// reply (LMTP). Default `250 2.0.0 Ok: queued`.
    pub fn after_data(self, reply: &str) -> Script {
        self.at(Step::EndOfData, Action::Reply(reply.to_string()))
    }

    /// Answer with `reply` at `at`, e.g. `.reply_at(Step::Rcpt.nth(2), "452
    /// 4.5.3 too many recipients")`.
    pub fn reply_at(self, at: impl Into<At>, reply: &str) -> Script {
        self.at(at, Action::Reply(reply.to_string()))
    }

    /// Do `action` at `at` (a [`Step`] or a narrowed [`At`]).
    pub fn at(mut self, at: impl Into<At>, action: Action) -> Script {
        self.actions.push((at.into(), action));
        self
    }

    /// Close the socket at `at` instead of answering.
    pub fn disconnect_at(self, at: impl Into<At>) -> Script {
        self.at(at, Action::Disconnect)
    }

    /// Answer at `at`, then close the socket (e.g. right after the EHLO
    /// reply).
    pub fn disconnect_after(self, at: impl Into<At>) -> Script {
        self.at(at, Action::DisconnectAfter)
    }

    /// Stop answering (and reading) for `how_long` at `at`, then go on.
    pub fn stall_at(self, at: impl Into<At>, how_long: Duration) -> Script {
        self.at(at, Action::Stall(how_long))
    }

    /// Send the reply at `at` one byte per `interval`.
    pub fn drip(self, at: impl Into<At>, interval: Duration) -> Script {
        self.at(at, Action::Drip(interval))
    }

    /// Send `bytes` verbatim instead of the reply at `at` (see [`raw`](super::raw)
    /// for ready-made garbage).
    pub fn raw_reply_at(self, at: impl Into<At>, bytes: impl Into<Vec<u8>>) -> Script {
        self.at(at, Action::Raw(bytes.into()))
    }

    /// Hand the raw connection to `f` at `at`.
    pub fn hook_at(
        self,
        at: impl Into<At>,
        f: impl Fn(&mut RawConn) -> Hook + Send + Sync + 'static,
    ) -> Script {
        self.at(at, Action::Hook(Arc::new(f)))
    }

    /// Advertise and accept STARTTLS (with [`pki`](Script::pki) or the default
    /// valid test certificate). Without this, STARTTLS gets `502 5.5.1`.
    pub fn starttls(mut self) -> Script {
        self.starttls = true;
        self
    }

    /// Implicit TLS: handshake from the first byte, then the greeting.
    pub fn tls_on_connect(mut self) -> Script {
        self.tls_on_connect = true;
        self
    }

    /// Use this PKI's server identity for TLS (default: `TestPki::new()`'s).
    pub fn pki(mut self, pki: &TestPki) -> Script {
        self.identity = Some(pki.identity.clone());
        self
    }

    /// Restrict the server's TLS versions (default: native-tls defaults).
    pub fn tls_versions(mut self, min: Option<Protocol>, max: Option<Protocol>) -> Script {
        self.tls_min = min;
        self.tls_max = max;
        self
    }

    /// Write `bytes` in the same write as the STARTTLS 220, before the
    /// handshake (the CVE-2011-0411 class). The handshake still happens if
    /// the client starts it.
    pub fn inject_after_starttls_220(mut self, bytes: impl Into<Vec<u8>>) -> Script {
        self.inject_after_starttls = bytes.into();
        self
    }

    /// Advertise AUTH only inside TLS; AUTH outside TLS gets `530 5.7.0`.
    pub fn require_tls_for_auth(mut self) -> Script {
        self.require_tls_for_auth = true;
        self
    }

    /// Accept exactly this user and password with the built-in PLAIN, LOGIN,
    /// CRAM-MD5 and XOAUTH2 (password used as the bearer token), advertised
    /// as [`BUILTIN_AUTH_MECHANISMS`] unless the caps already have an AUTH
    /// line (then only those mechanisms are accepted). Success is
    /// `235 2.7.0`, wrong credentials `535 5.7.8`, `*` cancels with `501`.
    pub fn auth_accept(mut self, user: &str, pass: &str) -> Script {
        self.auth = Some(AuthMode::Accept {
            user: user.to_string(),
            pass: pass.to_string(),
        });
        self
    }

    /// Run AUTH exchanges with `f`, which returns the final reply line. The
    /// advertised AUTH line must come from the caps (e.g. `.with_cap("AUTH
    /// SCRAM-SHA-256")`); unadvertised mechanisms get `504`.
    pub fn on_auth(
        mut self,
        f: impl Fn(&mut AuthExchange) -> String + Send + Sync + 'static,
    ) -> Script {
        self.auth = Some(AuthMode::Custom(Arc::new(f)));
        self
    }

    /// Replace the whole SMTP engine: `f` gets each connection (after the
    /// handshake when `tls_on_connect`) and talks to it directly. The
    /// connection closes when `f` returns.
    pub fn raw(mut self, f: impl Fn(&mut RawConn) + Send + Sync + 'static) -> Script {
        self.raw = Some(Arc::new(f));
        self
    }

    /// Serve up to `n` connections, one after another (default 1).
    pub fn max_connections(mut self, n: usize) -> Script {
        self.max_connections = n;
        self
    }

    /// Bound every wait (client reads and writes, waiting for a connection)
    /// by `d` instead of [`DEFAULT_IO_TIMEOUT`].
    pub fn io_timeout(mut self, d: Duration) -> Script {
        self.io_timeout = d;
        self
    }
}

/// Ready-made hostile reply bytes for [`Script::raw_reply_at`].
pub mod raw {
    /// Not a reply at all.
    pub fn garbage() -> Vec<u8> {
        b"HTTP/1.1 400 Bad Request\r\n\x00\xff\xfe garbage\r\n".to_vec()
    }

    /// A multi-line reply whose lines disagree on the code.
    pub fn mismatched_multiline() -> Vec<u8> {
        b"250-first line\r\n451-second line\r\n250 last line\r\n".to_vec()
    }

    /// `len` bytes starting with `250 ` and no line ending at all.
    pub fn endless_line(len: usize) -> Vec<u8> {
        let mut v = b"250 ".to_vec();
        v.resize(len.max(4), b'x');
        v
    }

    /// A reply of `count` lines (`code-` continuation lines, then `code `).
    pub fn many_lines(code: u16, count: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(count * 16);
        for i in 1..count {
            v.extend_from_slice(format!("{code}-line {i}\r\n").as_bytes());
        }
        v.extend_from_slice(format!("{code} last\r\n").as_bytes());
        v
    }
}
