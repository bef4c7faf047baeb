//! The SMTP object: one client session with the semantics of Python's
//! `smtplib.SMTP` (and `SMTP_SSL`, `LMTP`).
//!
//! It owns the conversation state (greeting, HELO/EHLO replies, the
//! extension map) and the rules of each step: which reply each command
//! needs, when to fall back from EHLO to HELO, when to RSET so that the
//! session stays usable after a refusal, and how a transaction is
//! pipelined. It never prints and never exits: a transcript goes to the
//! writer given to [`Smtp::set_debuglevel`], failures are [`Error`]s. The
//! send path itself (MAIL, RCPT, DATA/BDAT, the replies) lives in
//! [`super::transaction`].
//!
//! ## Where it deliberately differs from smtplib
//!
//! - **Timeouts** are per step and bounded as a whole: one deadline per
//!   reply, per write, for the TLS handshake, and for resolving plus
//!   connecting across all of a host's addresses; smtplib's socket timeout
//!   restarts on every partial read or write. The reply to the end of the
//!   data waits [`SessionOptions::final_reply_timeout`] (10 minutes, RFC
//!   5321 §4.5.3.2.6) unless an explicit timeout caps it
//!   ([`SessionOptions::with_timeout`]); a zero timeout is refused as
//!   [`Error::InvalidInput`] (smtplib: `ValueError`).
//! - **Non-ASCII** in `mail`/`rcpt`/`verify`/`expn` is
//!   [`Error::NotSupported`] (smtplib: `UnicodeEncodeError`), before
//!   anything is sent. [`Smtp::send`] carries non-ASCII domains as A-labels
//!   to a server without SMTPUTF8, where `sendmail` would fail.
//! - **Replies**: text is UTF-8 when valid, else Latin-1, and stripped of
//!   blanks as `getreply` does; but a reply line must be well-formed
//!   (three digits 2-5, then space, hyphen or nothing): smtplib takes any
//!   three characters as a code, we call anything else
//!   [`Error::Protocol`] and close.
//! - **Pipelining**: [`Smtp::send`] pipelines (RFC 2920) and, when asked,
//!   uses BDAT; the outcome is the one lockstep gives, except that with BDAT
//!   a connection lost after the message went out is
//!   [`Error::MaybeDelivered`] rather than `SMTPServerDisconnected`.
//! - **452** to RCPT defers the recipient to a further transaction on the
//!   same connection instead of refusing it (smtplib reports it refused).
//! - **`send_message`** takes every `To`/`Cc`/`Bcc` field, not just the
//!   first of each; **`send_raw`** is smtplib's `send` (the name `send` is
//!   the typed, streaming `sendmail`); **`login_full`** carries smtplib's
//!   `initial_response_ok`; [`Smtp::quit_on_drop`] is the `with` block.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::command::{self, quoteaddr};
use super::data::BodyScanner;
use super::extension::Extensions;
use super::reply::{Reply, ReplyBuilder};
use super::stream::{Connection, Target, TlsInfo, TlsOptions, parse_target};
use super::transaction::{Framing, SendOptions};
use super::{Error, Refused};

/// The SMTP port (RFC 5321).
pub const SMTP_PORT: u16 = 25;
/// The submissions port, implicit TLS (RFC 8314).
pub const SMTPS_PORT: u16 = 465;
/// The LMTP port (RFC 2033).
pub const LMTP_PORT: u16 = 2003;
/// Default wait for any one step: a reply, a write, connecting.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default wait for the reply to the end of the message: RFC 5321
/// §4.5.3.2.6 asks for 10 minutes, so that content scanners can finish
/// (Postfix's `smtp_data_done_timeout`).
pub const DEFAULT_FINAL_REPLY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long to wait for the reply to QUIT: the message is already
/// delivered, so we do not hold the caller for long.
pub(super) const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which dialect to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// SMTP (RFC 5321).
    #[default]
    Smtp,
    /// LMTP (RFC 2033): LHLO, and one reply per recipient after the data.
    Lmtp,
}

/// How to set up a session; the counterpart of smtplib's constructor
/// arguments.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The name sent with EHLO/HELO; default: this machine's fully
    /// qualified name, or an address literal of the local socket.
    pub local_hostname: Option<String>,
    /// Bind to this local address before connecting.
    pub source_address: Option<SocketAddr>,
    /// Budget for resolving the host name and connecting to it, across
    /// all its addresses.
    pub connect_timeout: Duration,
    /// Budget of each other step: each reply, each write (however many
    /// partial writes it takes), the TLS handshake.
    pub timeout: Duration,
    /// Budget for the reply to the end of the message (default
    /// [`DEFAULT_FINAL_REPLY_TIMEOUT`], 10 minutes). A timeout there is
    /// [`Error::MaybeDelivered`].
    pub final_reply_timeout: Duration,
    /// TLS from the first byte (smtplib's `SMTP_SSL`).
    pub implicit_tls: bool,
    /// TLS settings for implicit TLS and STARTTLS.
    pub tls: TlsOptions,
    /// SMTP or LMTP.
    pub protocol: Protocol,
    /// Use BDAT (RFC 3030) instead of DATA when the server offers
    /// CHUNKING and PIPELINING: the whole transaction (MAIL, RCPT, the
    /// message as `BDAT n LAST`, QUIT) then leaves in one flight, one
    /// round trip fewer than DATA. Off by default, as in smtplib; the
    /// smtpsend binary turns it on.
    pub chunking: bool,
    /// Where credentials may be sent without TLS.
    pub plaintext_auth: PlaintextAuth,
}

/// Where AUTH may send credentials over a connection without TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlaintextAuth {
    /// Never: TLS is required for every AUTH.
    Never,
    /// Only to this machine (a loopback address or a Unix socket), where
    /// nothing crosses a network. The default.
    #[default]
    Loopback,
    /// Anywhere: credentials cross the network in the clear. Only for a
    /// network the user trusts, and only when asked for explicitly.
    Always,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            local_hostname: None,
            source_address: None,
            connect_timeout: DEFAULT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            final_reply_timeout: DEFAULT_FINAL_REPLY_TIMEOUT,
            implicit_tls: false,
            tls: TlsOptions::new(),
            protocol: Protocol::Smtp,
            chunking: false,
            plaintext_auth: PlaintextAuth::default(),
        }
    }
}

impl SessionOptions {
    /// An explicit timeout (the user's `--timeout`): it bounds every step,
    /// connecting and the reply to the end of the message included.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        SessionOptions {
            connect_timeout: timeout,
            timeout,
            final_reply_timeout: timeout,
            ..self
        }
    }

    /// A zero timeout is a configuration mistake, refused before
    /// connecting (as smtplib refuses it) rather than reported later as a
    /// retryable time-out.
    fn check(&self) -> Result<(), Error> {
        for (name, t) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
            ("final_reply_timeout", self.final_reply_timeout),
        ] {
            if t.is_zero() {
                return Err(Error::InvalidInput(format!(
                    "{name} must be greater than zero (a non-blocking session is not supported)"
                )));
            }
        }
        Ok(())
    }
}

/// A session that sends QUIT when dropped: see [`Smtp::quit_on_drop`].
pub struct QuitOnDrop(Option<Smtp>);

impl QuitOnDrop {
    /// The session back, without sending QUIT.
    pub fn into_inner(mut self) -> Smtp {
        self.0.take().expect("present until dropped")
    }
}

impl std::ops::Deref for QuitOnDrop {
    type Target = Smtp;
    fn deref(&self) -> &Smtp {
        self.0.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for QuitOnDrop {
    fn deref_mut(&mut self) -> &mut Smtp {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for QuitOnDrop {
    fn drop(&mut self) {
        if let Some(s) = self.0.as_mut()
            && s.is_connected()
        {
            let _ = s.quit();
        }
    }
}

/// DSN requests (RFC 3461), sent only when the server offers DSN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dsn {
    /// NOTIFY: `NEVER`, or any of `SUCCESS`, `FAILURE`, `DELAY`.
    pub notify: Vec<String>,
    /// RET: `FULL` or `HDRS`.
    pub ret: Option<String>,
    /// ENVID (xtext-encoded on the wire).
    pub envid: Option<String>,
    /// Add ORCPT=rfc822;addr to every recipient.
    pub orcpt: bool,
}

/// One transaction: who from, who to, with which extra parameters.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// The reverse-path; empty for the null sender `<>`.
    pub from: String,
    /// The forward-paths.
    pub to: Vec<String>,
    /// Extra ESMTP parameters for MAIL FROM, as given.
    pub mail_options: Vec<String>,
    /// Extra ESMTP parameters for every RCPT TO, as given.
    pub rcpt_options: Vec<String>,
    /// Delivery status notification requests.
    pub dsn: Option<Dsn>,
}

impl Envelope {
    pub fn new(from: impl Into<String>, to: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Envelope {
            from: from.into(),
            to: to.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }
}

/// Where the transcript goes and how much of it.
struct Debug {
    level: u8,
    out: Option<Box<dyn Write + Send>>,
}

impl Debug {
    fn log(&mut self, dir: &str, text: &str) {
        if self.level == 0 {
            return;
        }
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let line = text.trim_end_matches(['\r', '\n']);
        let stamp = if self.level >= 2 {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            format!("{}.{:06} ", t.as_secs(), t.subsec_micros())
        } else {
            String::new()
        };
        let _ = writeln!(out, "{stamp}{dir} {}", line.escape_debug());
    }
}

/// An SMTP client session: Python's `smtplib.SMTP` object.
///
/// ```no_run
/// use smtpsend::smtp::{Smtp, SessionOptions};
///
/// let mut s = Smtp::new(SessionOptions::default());
/// s.connect("mail.example.org:25", None)?;
/// let refused = s.sendmail(
///     "alice@example.org",
///     &["bob@example.org"],
///     b"Subject: hello\r\n\r\nHi Bob.\r\n",
///     &[],
///     &[],
/// )?;
/// assert!(refused.is_empty());
/// s.quit()?;
/// # Ok::<(), smtpsend::smtp::Error>(())
/// ```
pub struct Smtp {
    opts: SessionOptions,
    conn: Option<Connection>,
    host: String,
    greeting: Option<Reply>,
    helo_resp: Option<Reply>,
    ehlo_resp: Option<Reply>,
    does_esmtp: bool,
    features: Extensions,
    debug: Debug,
    /// BDAT chunks sent in the current transaction, each owed a reply.
    pub(super) bdat_chunks: usize,
    /// The reply that accepted the last message (for logs: it usually
    /// names the relay's queue id).
    pub(super) accepted_reply: Option<Reply>,
    /// QUIT has gone out behind the data: nothing more may be sent.
    pub(super) quit_sent: bool,
    /// The last [`Smtp::mail`] declared SMTPUTF8 (smtplib's
    /// `command_encoding = 'utf-8'`).
    smtputf8_declared: bool,
}

impl Smtp {
    /// A session that is not connected yet.
    pub fn new(opts: SessionOptions) -> Self {
        Smtp {
            opts,
            conn: None,
            host: String::new(),
            greeting: None,
            helo_resp: None,
            ehlo_resp: None,
            does_esmtp: false,
            features: Extensions::default(),
            debug: Debug {
                level: 0,
                out: None,
            },
            bdat_chunks: 0,
            accepted_reply: None,
            quit_sent: false,
            smtputf8_declared: false,
        }
    }

    /// The options the session was made with.
    pub fn options(&self) -> &SessionOptions {
        &self.opts
    }

    /// Sets the transcript level (0 off, 1 commands and replies, 2 with
    /// timestamps) and where it goes. Secrets are never written: AUTH
    /// arguments and the client's AUTH continuation lines are redacted.
    pub fn set_debuglevel(&mut self, level: u8, out: Box<dyn Write + Send>) {
        self.debug = Debug {
            level,
            out: Some(out),
        };
    }

    /// Connects to `host` (smtplib's `connect`): `"host:port"` is split
    /// when `port` is `None`; `"[v6]:port"` literals work; a path starting
    /// with `/` is a Unix socket. Default port 25, 465 with implicit TLS,
    /// 2003 for LMTP. Returns the greeting. A well-formed greeting other
    /// than 220 is [`Error::Connect`]; a greeting that is not a reply at
    /// all (a code outside 200-599 such as 199, garbage) is
    /// [`Error::Protocol`]. Either way the connection is closed. A zero
    /// timeout in the options is [`Error::InvalidInput`], before any
    /// connection is made.
    pub fn connect(&mut self, host: &str, port: Option<u16>) -> Result<Reply, Error> {
        self.opts.check()?;
        let default_port = match (self.opts.protocol, self.opts.implicit_tls) {
            (_, true) => SMTPS_PORT,
            (Protocol::Lmtp, false) => LMTP_PORT,
            (Protocol::Smtp, false) => SMTP_PORT,
        };
        let target = parse_target(host, port, default_port)?;
        self.close();
        self.debug.log("*", &format!("connect: {target:?}"));
        let mut conn = Connection::open(
            &target,
            self.opts.source_address,
            self.opts.connect_timeout,
            self.opts.timeout,
        )?;
        self.host = match &target {
            Target::Inet { host, .. } => host.clone(),
            Target::Unix(_) => "localhost".into(),
        };
        if self.opts.implicit_tls {
            let tls = self.tls_options();
            conn.start_tls(&tls)?;
        }
        self.conn = Some(conn);
        let reply = self.getreply()?;
        if reply.code() != 220 {
            self.close();
            return Err(Error::Connect(reply));
        }
        self.greeting = Some(reply.clone());
        Ok(reply)
    }

    fn tls_options(&self) -> TlsOptions {
        let mut t = self.opts.tls.clone();
        if t.server_name.is_none() {
            t.server_name = Some(self.host.clone());
        }
        t
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Whether the connection is TLS-protected.
    pub fn is_tls(&self) -> bool {
        self.conn.as_ref().is_some_and(Connection::is_tls)
    }

    /// Whether the server is on this machine (loopback or Unix socket).
    pub fn is_local_peer(&self) -> bool {
        self.conn.as_ref().is_some_and(Connection::is_local)
    }

    /// What TLS negotiated, if the connection is TLS-protected.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.conn.as_ref().and_then(Connection::tls_info)
    }

    /// The server's greeting.
    pub fn greeting(&self) -> Option<&Reply> {
        self.greeting.as_ref()
    }

    /// The name this session gives in EHLO/HELO: the configured one, else
    /// this machine's fully qualified name, else (as smtplib does) an
    /// address literal of the local end of the connection.
    pub fn local_hostname(&self) -> String {
        if let Some(n) = &self.opts.local_hostname {
            return n.clone();
        }
        if let Some(fqdn) = crate::hostname::fqdn().filter(|n| n.contains('.')) {
            return fqdn;
        }
        match self.conn.as_ref().and_then(Connection::local_addr) {
            Some(SocketAddr::V4(a)) => format!("[{}]", a.ip()),
            Some(SocketAddr::V6(a)) => format!("[IPv6:{}]", a.ip()),
            None => "[127.0.0.1]".into(),
        }
    }

    pub(super) fn conn(&mut self) -> Result<&mut Connection, Error> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::ServerDisconnected("please run connect() first".into()))
    }

    /// Queues one command line without sending it.
    pub(super) fn queue_cmd(&mut self, cmd: &str, args: &str) -> Result<(), Error> {
        let line = command::line(cmd, args)?;
        if cmd.eq_ignore_ascii_case("AUTH") {
            let mech = args.split_whitespace().next().unwrap_or("");
            let shown = if args.split_whitespace().nth(1).is_some() {
                format!("AUTH {mech} <redacted>")
            } else {
                format!("AUTH {mech}")
            };
            self.debug.log("C:", &shown);
        } else {
            self.debug.log("C:", &line);
        }
        self.conn()?.queue(line.as_bytes());
        Ok(())
    }

    /// Sends a line that must not show in the transcript (an AUTH
    /// continuation response).
    pub fn putline_secret(&mut self, line: &str) -> Result<(), Error> {
        command::check_line_safe("AUTH response", line)?;
        self.debug.log("C:", "<redacted>");
        let conn = self.conn()?;
        conn.queue(line.as_bytes());
        conn.queue(b"\r\n");
        self.flush()
    }

    /// Queues bytes as they are (no command syntax), without sending them.
    pub(super) fn queue_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.conn()?.queue(bytes);
        Ok(())
    }

    /// Writes a transcript line.
    pub(super) fn debug_log(&mut self, dir: &str, text: &str) {
        self.debug.log(dir, text);
    }

    /// Changes the budget of each later step on this connection.
    pub(super) fn set_step_timeout(&mut self, t: Duration) {
        let t = t.min(self.opts.timeout);
        if let Some(c) = self.conn.as_mut() {
            c.set_timeout(t);
        }
    }

    /// Sends bytes as they are, without adding a line ending or checking
    /// anything (smtplib's `send`): the caller owns what goes on the wire.
    /// The transcript shows them.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.debug.log("C:", &String::from_utf8_lossy(bytes));
        self.conn()?.queue(bytes);
        self.flush()
    }

    pub(super) fn flush(&mut self) -> Result<(), Error> {
        let r = self.conn()?.flush();
        self.fail_on_broken(r)
    }

    /// An error that leaves the connection in an unknown state closes it,
    /// so the next call says "disconnected" instead of misreading replies.
    pub(super) fn fail_on_broken<T>(&mut self, r: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &r
            && matches!(
                e,
                Error::ServerDisconnected(_)
                    | Error::Timeout(_)
                    | Error::Protocol(_)
                    | Error::Io { .. }
                    | Error::Tls(_)
                    | Error::TlsCertificate(_)
                    | Error::TlsMismatch(_)
                    | Error::MaybeDelivered(_)
            )
        {
            self.close();
        }
        r
    }

    /// Sends `cmd args` (smtplib's `putcmd`). A CR or LF in either is
    /// refused before anything is sent.
    pub fn putcmd(&mut self, cmd: &str, args: &str) -> Result<(), Error> {
        self.queue_cmd(cmd, args)?;
        self.flush()
    }

    /// Reads one complete reply (smtplib's `getreply`), within the timeout.
    pub fn getreply(&mut self) -> Result<Reply, Error> {
        let r = self.conn().map(Connection::deadline);
        let r = r.and_then(|d| self.read_reply(d));
        self.fail_on_broken(r)
    }

    /// [`Smtp::getreply`] with its own budget.
    pub(super) fn getreply_within(&mut self, budget: Duration) -> Result<Reply, Error> {
        let r = self.conn().map(|c| c.deadline_in(budget));
        let r = r.and_then(|d| self.read_reply(d));
        self.fail_on_broken(r)
    }

    fn read_reply(&mut self, deadline: Instant) -> Result<Reply, Error> {
        let enhanced = self.features.has("enhancedstatuscodes");
        let mut builder = ReplyBuilder::new();
        loop {
            let line = self.conn()?.read_line(deadline)?;
            self.debug.log("S:", &String::from_utf8_lossy(&line));
            match builder.push(&line) {
                Ok(Some(reply)) if enhanced => return Ok(reply.with_enhanced_code()),
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => return Err(Error::Protocol(e.0)),
            }
        }
    }

    /// Sends a command and returns its reply (smtplib's `docmd`).
    pub fn docmd(&mut self, cmd: &str, args: &str) -> Result<Reply, Error> {
        self.putcmd(cmd, args)?;
        self.getreply()
    }

    /// Sends HELO (RFC 5321 §4.1.1.1) and records the reply
    /// (`helo_resp`). Returns the reply whatever its code, as smtplib.
    pub fn helo(&mut self, name: Option<&str>) -> Result<Reply, Error> {
        let name = name.map_or_else(|| self.local_hostname(), str::to_owned);
        let r = self.docmd("HELO", &name)?;
        self.helo_resp = Some(r.clone());
        Ok(r)
    }

    /// Sends EHLO (or LHLO for LMTP), records the reply (`ehlo_resp`) and,
    /// on 250, the extension map. Returns the reply whatever its code.
    pub fn ehlo(&mut self, name: Option<&str>) -> Result<Reply, Error> {
        let name = name.map_or_else(|| self.local_hostname(), str::to_owned);
        let verb = match self.opts.protocol {
            Protocol::Smtp => "EHLO",
            Protocol::Lmtp => "LHLO",
        };
        self.features = Extensions::default();
        let r = self.docmd(verb, &name)?;
        self.ehlo_resp = Some(r.clone());
        if r.code() == 250 {
            self.does_esmtp = true;
            self.features = Extensions::from_ehlo(&r);
        }
        Ok(r)
    }

    /// EHLO, falling back to HELO when EHLO is refused, unless either has
    /// already succeeded. Both refused is [`Error::Helo`]. LMTP has no
    /// HELO to fall back to.
    pub fn ehlo_or_helo_if_needed(&mut self) -> Result<(), Error> {
        if self.helo_resp.is_some() || self.ehlo_resp.is_some() {
            return Ok(());
        }
        let r = self.ehlo(None)?;
        if r.is_positive() {
            return Ok(());
        }
        if self.opts.protocol == Protocol::Lmtp {
            return Err(Error::Helo(r));
        }
        let r = self.helo(None)?;
        if !r.is_positive() {
            return Err(Error::Helo(r));
        }
        Ok(())
    }

    /// The reply to the last HELO, if any.
    pub fn helo_resp(&self) -> Option<&Reply> {
        self.helo_resp.as_ref()
    }

    /// The reply to the last EHLO/LHLO, if any.
    pub fn ehlo_resp(&self) -> Option<&Reply> {
        self.ehlo_resp.as_ref()
    }

    /// Whether the server accepted EHLO (speaks ESMTP).
    pub fn does_esmtp(&self) -> bool {
        self.does_esmtp
    }

    /// The extensions advertised in the last EHLO reply.
    pub fn extensions(&self) -> &Extensions {
        &self.features
    }

    /// Whether the server advertised `name` (case-insensitive).
    pub fn has_extn(&self, name: &str) -> bool {
        self.features.has(name)
    }

    /// VRFY (RFC 5321 §3.5): the reply, whatever its code. A non-ASCII
    /// address is [`Error::NotSupported`] unless the server offers
    /// SMTPUTF8; nothing is sent then.
    pub fn verify(&mut self, address: &str) -> Result<Reply, Error> {
        let addr = command::addr_only(address);
        self.check_ascii_or_smtputf8(&addr)?;
        self.docmd("VRFY", &addr)
    }

    /// smtplib's alias of [`Smtp::verify`].
    pub fn vrfy(&mut self, address: &str) -> Result<Reply, Error> {
        self.verify(address)
    }

    /// EXPN (RFC 5321 §3.5): the reply, whatever its code. Non-ASCII as
    /// for [`Smtp::verify`].
    pub fn expn(&mut self, address: &str) -> Result<Reply, Error> {
        let addr = command::addr_only(address);
        self.check_ascii_or_smtputf8(&addr)?;
        self.docmd("EXPN", &addr)
    }

    /// smtplib encodes commands as ASCII unless SMTPUTF8 is in force: a
    /// non-ASCII argument to a server without it is refused before
    /// anything is sent.
    fn check_ascii_or_smtputf8(&self, s: &str) -> Result<(), Error> {
        if command::needs_smtputf8(s) && !self.has_extn("smtputf8") {
            return Err(Error::NotSupported(format!(
                "<{s}> is not ASCII and the server does not offer SMTPUTF8"
            )));
        }
        Ok(())
    }

    /// HELP: the reply (smtplib returns only its text; `reply.text()`).
    pub fn help(&mut self, args: &str) -> Result<Reply, Error> {
        self.docmd("HELP", args)
    }

    /// NOOP.
    pub fn noop(&mut self) -> Result<Reply, Error> {
        self.docmd("NOOP", "")
    }

    /// RSET: abandons the current transaction.
    pub fn rset(&mut self) -> Result<Reply, Error> {
        self.docmd("RSET", "")
    }

    /// RSET after a refusal, ignoring a lost connection as smtplib's
    /// `_rset` does: the refusal is what the caller needs to hear.
    pub(super) fn rset_quietly(&mut self) {
        if self.conn.is_some() && !self.quit_sent {
            let _ = self.rset();
        }
    }

    /// QUIT, then close. Returns the reply; the session may `connect`
    /// again afterwards.
    pub fn quit(&mut self) -> Result<Reply, Error> {
        if let Some(c) = self.conn.as_mut() {
            c.set_timeout(QUIT_TIMEOUT.min(self.opts.timeout));
        }
        let r = self.docmd("QUIT", "");
        self.close();
        r
    }

    /// Closes the connection without QUIT and forgets all server state.
    pub fn close(&mut self) {
        if let Some(mut c) = self.conn.take() {
            c.shutdown();
        }
        self.forget_esmtp();
        self.greeting = None;
        self.quit_sent = false;
        self.smtputf8_declared = false;
    }

    /// This session as a scope that sends QUIT when it ends (smtplib's
    /// `with SMTP(...) as s:`): dropping the guard sends QUIT if still
    /// connected (within the QUIT timeout, its errors ignored) and closes.
    ///
    /// ```no_run
    /// # use smtpsend::smtp::{SessionOptions, Smtp};
    /// let mut s = Smtp::new(SessionOptions::default()).quit_on_drop();
    /// s.connect("mail.example.org", None)?;
    /// s.sendmail("a@example.org", &["b@example.org"], b"Subject: x\r\n\r\nx\r\n", &[], &[])?;
    /// // QUIT goes out here, also when `?` returned early.
    /// # Ok::<(), smtpsend::smtp::Error>(())
    /// ```
    pub fn quit_on_drop(self) -> QuitOnDrop {
        QuitOnDrop(Some(self))
    }

    fn forget_esmtp(&mut self) {
        self.helo_resp = None;
        self.ehlo_resp = None;
        self.does_esmtp = false;
        self.features = Extensions::default();
    }

    /// MAIL FROM (RFC 5321 §4.1.1.2) with ESMTP parameters (sent only to
    /// an ESMTP server, as smtplib). SMTPUTF8 among the options when the
    /// server does not offer it is [`Error::NotSupported`], and so is a
    /// non-ASCII sender without SMTPUTF8 among the options (smtplib
    /// refuses both before sending). Returns the reply whatever its code.
    pub fn mail(&mut self, sender: &str, options: &[&str]) -> Result<Reply, Error> {
        let args = self.mail_args(sender, options)?;
        self.smtputf8_declared = options.iter().any(|o| o.eq_ignore_ascii_case("smtputf8"));
        if command::needs_smtputf8(sender) && !self.smtputf8_declared {
            return Err(Error::NotSupported(format!(
                "the sender <{}> is not ASCII: give the SMTPUTF8 option (the server must offer it)",
                command::addr_only(sender)
            )));
        }
        self.docmd("MAIL", &args)
    }

    pub(super) fn mail_args(&self, sender: &str, options: &[&str]) -> Result<String, Error> {
        if options.iter().any(|o| o.eq_ignore_ascii_case("smtputf8")) && !self.has_extn("smtputf8")
        {
            return Err(Error::NotSupported(
                "SMTPUTF8 not supported by server".into(),
            ));
        }
        self.with_params(format!("FROM:{}", quoteaddr(sender)?), options)
    }

    /// Appends ESMTP parameters to a MAIL or RCPT argument; only an ESMTP
    /// server gets them, as smtplib does.
    fn with_params(&self, mut args: String, options: &[&str]) -> Result<String, Error> {
        if self.does_esmtp {
            for o in options {
                check_param(o)?;
                args.push(' ');
                args.push_str(o);
            }
        }
        Ok(args)
    }

    /// RCPT TO (RFC 5321 §4.1.1.3). Returns the reply whatever its code.
    /// A non-ASCII recipient is [`Error::NotSupported`] unless the last
    /// [`Smtp::mail`] declared SMTPUTF8; nothing is sent then.
    pub fn rcpt(&mut self, recipient: &str, options: &[&str]) -> Result<Reply, Error> {
        let args = self.rcpt_args(recipient, options)?;
        if command::needs_smtputf8(recipient) && !self.smtputf8_declared {
            return Err(Error::NotSupported(format!(
                "the recipient <{}> is not ASCII and MAIL did not declare SMTPUTF8",
                command::addr_only(recipient)
            )));
        }
        self.docmd("RCPT", &args)
    }

    pub(super) fn rcpt_args(&self, recipient: &str, options: &[&str]) -> Result<String, Error> {
        self.with_params(format!("TO:{}", quoteaddr(recipient)?), options)
    }

    /// DATA (RFC 5321 §4.1.1.4): sends the message, streamed from `msg`,
    /// with every line ending made CRLF and dot-stuffing applied; ends it
    /// with CRLF.CRLF exactly once. A reply other than 354 to DATA is
    /// [`Error::Data`]. Returns the final reply whatever its code (for
    /// LMTP, the first recipient's; use [`Smtp::send`] for all of them).
    pub fn data(&mut self, msg: &mut dyn Read) -> Result<Reply, Error> {
        let r = self.docmd("DATA", "")?;
        if r.code() != 354 {
            return Err(Error::Data(r));
        }
        self.stream_body(msg, Framing::Data, false)?;
        self.final_reply()
    }
}

/// An ESMTP parameter must be one word of printable ASCII.
fn check_param(p: &str) -> Result<(), Error> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidInput(format!(
            "invalid ESMTP parameter {:?}",
            p.escape_debug().to_string()
        )));
    }
    Ok(())
}

impl Smtp {
    /// The reply with which the server accepted the last message sent by
    /// [`Smtp::send`] (SMTP only; LMTP has one per recipient).
    pub fn accepted_reply(&self) -> Option<&Reply> {
        self.accepted_reply.as_ref()
    }

    /// STARTTLS (RFC 3207): only when advertised
    /// ([`Error::NotSupported`] otherwise). After the 220, every byte
    /// already received is discarded before the handshake, so plaintext a
    /// server or attacker pipelined behind the 220 is never read as a
    /// reply; the certificate is verified as the TLS options say (by
    /// default against the system store and the host name, TLS 1.2 at
    /// least). Afterwards all ESMTP state is forgotten, so the next command
    /// sends EHLO again. Another reply is [`Error::Response`].
    pub fn starttls(&mut self) -> Result<Reply, Error> {
        self.ehlo_or_helo_if_needed()?;
        if !self.has_extn("starttls") {
            return Err(Error::NotSupported(
                "STARTTLS extension not supported by server".into(),
            ));
        }
        let r = self.docmd("STARTTLS", "")?;
        if r.code() != 220 {
            return Err(Error::Response(r));
        }
        let tls = self.tls_options();
        let res = self.conn()?.start_tls(&tls);
        self.fail_on_broken(res)?;
        self.debug.log("*", "TLS established");
        self.forget_esmtp();
        Ok(r)
    }
}

impl Smtp {
    /// smtplib's `send_message`: the envelope comes from the message when
    /// not given. The sender is `Sender` if present, else `From`; the
    /// recipients are every `To`, `Bcc` and `Cc` (smtplib reads only the
    /// first of each and loses the rest). If the message has one block of
    /// `Resent-` fields, only `Resent-Sender`/`Resent-From` and
    /// `Resent-To`/`Resent-Bcc`/`Resent-Cc` count; more than one block is
    /// [`Error::InvalidInput`] and nothing is sent. `Bcc` and `Resent-Bcc`
    /// are never transmitted. Returns the refused recipients, as
    /// [`Smtp::sendmail`].
    ///
    /// ```
    /// # use std::io::{BufRead, BufReader, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let port = listener.local_addr().unwrap().port();
    /// # let server = std::thread::spawn(move || {
    /// #     let (s, _) = listener.accept().unwrap();
    /// #     let mut r = BufReader::new(s.try_clone().unwrap());
    /// #     let mut w = s;
    /// #     let mut seen = Vec::new();
    /// #     w.write_all(b"220 test ESMTP\r\n").unwrap();
    /// #     let (mut line, mut in_data) = (String::new(), false);
    /// #     while { line.clear(); r.read_line(&mut line).unwrap() > 0 } {
    /// #         let cmd = line.trim_end().to_string();
    /// #         seen.push(cmd.clone());
    /// #         if in_data {
    /// #             if cmd == "." { in_data = false; w.write_all(b"250 queued\r\n").unwrap(); }
    /// #             continue;
    /// #         }
    /// #         let reply: &[u8] = match cmd.get(..4).unwrap_or("") {
    /// #             "EHLO" => b"250-test\r\n250 PIPELINING\r\n",
    /// #             "DATA" => { in_data = true; b"354 go\r\n" }
    /// #             "QUIT" => { w.write_all(b"221 bye\r\n").unwrap(); break }
    /// #             _ => b"250 ok\r\n",
    /// #         };
    /// #         w.write_all(reply).unwrap();
    /// #     }
    /// #     seen
    /// # });
    /// use smtpsend::smtp::{SessionOptions, Smtp};
    ///
    /// let mut s = Smtp::new(SessionOptions::default());
    /// s.connect(&format!("127.0.0.1:{port}"), None)?;
    /// let msg = b"From: Alice <alice@example.org>\r\n\
    ///             To: bob@example.org\r\n\
    ///             To: carol@example.org\r\n\
    ///             Bcc: dave@example.org\r\n\
    ///             Subject: hi\r\n\r\nHello.\r\n";
    /// let refused = s.send_message(msg, None, None, &[], &[])?;
    /// assert!(refused.is_empty());
    /// s.quit()?;
    /// # let seen = server.join().unwrap();
    /// # assert!(seen.contains(&"MAIL FROM:<alice@example.org>".to_string()), "{seen:?}");
    /// # assert!(seen.contains(&"RCPT TO:<carol@example.org>".to_string()));
    /// # assert!(seen.contains(&"RCPT TO:<dave@example.org>".to_string()));
    /// # assert!(!seen.iter().any(|l| l.starts_with("Bcc")));
    /// # Ok::<(), smtpsend::smtp::Error>(())
    /// ```
    pub fn send_message(
        &mut self,
        msg: &[u8],
        from_addr: Option<&str>,
        to_addrs: Option<&[&str]>,
        mail_options: &[&str],
        rcpt_options: &[&str],
    ) -> Result<Refused, Error> {
        use crate::message;
        let bad = |e: message::MessageError| Error::InvalidInput(e.to_string());
        let mut rest = msg;
        let mut headers =
            message::read_header_block(&mut rest, message::MAX_HEADER_BYTES).map_err(bad)?;
        let extracted = message::extract_envelope(&headers).map_err(bad)?;
        let from = match from_addr {
            Some(f) => f.to_owned(),
            None => extracted.sender.clone().ok_or_else(|| {
                Error::InvalidInput(
                    "the message has no Sender or From to take the envelope sender from".into(),
                )
            })?,
        };
        let to: Vec<String> = match to_addrs {
            Some(t) => t.iter().map(|s| (*s).to_owned()).collect(),
            None => extracted.recipients.clone(),
        };
        message::strip_bcc(&mut headers);
        let head = headers.to_bytes();
        let mut scanner = BodyScanner::new();
        scanner.update(&head);
        scanner.update(rest);
        let env = Envelope {
            from,
            to,
            mail_options: mail_options.iter().map(|s| (*s).to_owned()).collect(),
            rcpt_options: rcpt_options.iter().map(|s| (*s).to_owned()).collect(),
            dsn: None,
        };
        let opts = SendOptions {
            info: Some(scanner.finish()),
            quit_after: false,
        };
        let mut whole = head;
        whole.extend_from_slice(rest);
        self.send(&env, &mut std::io::Cursor::new(whole), opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_check() {
        assert!(check_param("SIZE=100").is_ok());
        assert!(check_param("SIZE=1 X").is_err());
        assert!(check_param("").is_err());
    }
}
