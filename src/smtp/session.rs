//! The SMTP object: one client session with the semantics of Python's
//! `smtplib.SMTP` (and `SMTP_SSL`, `LMTP`).
//!
//! It owns the conversation state (greeting, HELO/EHLO replies, the
//! extension map) and the rules of each step: which reply each command
//! needs, when to fall back from EHLO to HELO, when to RSET so that the
//! session stays usable after a refusal, and how a transaction is
//! pipelined. It never prints and never exits: a transcript goes to the
//! writer given to [`Smtp::set_debuglevel`], failures are [`Error`]s.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::command::{self, quoteaddr};
use super::data::{BodyInfo, BodyScanner, Encoder};
use super::extension::Extensions;
use super::reply::{Reply, ReplyBuilder};
use super::stream::{Connection, Target, TlsInfo, TlsOptions, WRITE_CHUNK, parse_target};
use super::{Error, Refused};

/// The SMTP port (RFC 5321).
pub const SMTP_PORT: u16 = 25;
/// The submissions port, implicit TLS (RFC 8314).
pub const SMTPS_PORT: u16 = 465;
/// The LMTP port (RFC 2033).
pub const LMTP_PORT: u16 = 2003;
/// Default wait for any one reply, and for connecting.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for the reply to QUIT: the message is already
/// delivered, so we do not hold the caller for long.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Size of one BDAT chunk. Chunks are pipelined and their replies read at
/// the end, so the count of chunks bounds what the server must buffer in
/// replies; 1 MiB keeps that small for any message size.
const BDAT_CHUNK: usize = 1024 * 1024;

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
    /// Wait for the TCP connection at most this long.
    pub connect_timeout: Duration,
    /// Wait for each reply at most this long.
    pub timeout: Duration,
    /// TLS from the first byte (smtplib's `SMTP_SSL`).
    pub implicit_tls: bool,
    /// TLS settings for implicit TLS and STARTTLS.
    pub tls: TlsOptions,
    /// SMTP or LMTP.
    pub protocol: Protocol,
    /// Use BDAT (RFC 3030) instead of DATA when the server offers
    /// CHUNKING and PIPELINING.
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
            implicit_tls: false,
            tls: TlsOptions::new(),
            protocol: Protocol::Smtp,
            chunking: false,
            plaintext_auth: PlaintextAuth::default(),
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
    bdat_chunks: usize,
    /// The reply that accepted the last message (for logs: it usually
    /// names the relay's queue id).
    accepted_reply: Option<Reply>,
    /// QUIT has gone out behind the data: nothing more may be sent.
    quit_sent: bool,
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
    /// 2003 for LMTP. Returns the greeting; a greeting other than 220 is
    /// [`Error::Connect`] and the connection is closed.
    pub fn connect(&mut self, host: &str, port: Option<u16>) -> Result<Reply, Error> {
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

    fn conn(&mut self) -> Result<&mut Connection, Error> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::ServerDisconnected("please run connect() first".into()))
    }

    /// Queues one command line without sending it.
    fn queue_cmd(&mut self, cmd: &str, args: &str) -> Result<(), Error> {
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

    fn flush(&mut self) -> Result<(), Error> {
        let r = self.conn()?.flush();
        self.fail_on_broken(r)
    }

    /// An error that leaves the connection in an unknown state closes it,
    /// so the next call says "disconnected" instead of misreading replies.
    fn fail_on_broken<T>(&mut self, r: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &r
            && matches!(
                e,
                Error::ServerDisconnected(_)
                    | Error::Timeout(_)
                    | Error::Protocol(_)
                    | Error::Io { .. }
                    | Error::Tls(_)
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
        let r = self.read_reply();
        self.fail_on_broken(r)
    }

    fn read_reply(&mut self) -> Result<Reply, Error> {
        let enhanced = self.features.has("enhancedstatuscodes");
        let deadline: Instant = self.conn()?.deadline();
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

    /// VRFY (RFC 5321 §3.5): the reply, whatever its code.
    pub fn verify(&mut self, address: &str) -> Result<Reply, Error> {
        self.docmd("VRFY", &command::addr_only(address))
    }

    /// EXPN (RFC 5321 §3.5): the reply, whatever its code.
    pub fn expn(&mut self, address: &str) -> Result<Reply, Error> {
        self.docmd("EXPN", &command::addr_only(address))
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
    fn rset_quietly(&mut self) {
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
    }

    fn forget_esmtp(&mut self) {
        self.helo_resp = None;
        self.ehlo_resp = None;
        self.does_esmtp = false;
        self.features = Extensions::default();
    }

    /// MAIL FROM (RFC 5321 §4.1.1.2) with ESMTP parameters (sent only to
    /// an ESMTP server, as smtplib). SMTPUTF8 among the options when the
    /// server does not offer it is [`Error::NotSupported`]. Returns the
    /// reply whatever its code.
    pub fn mail(&mut self, sender: &str, options: &[&str]) -> Result<Reply, Error> {
        let args = self.mail_args(sender, options)?;
        self.docmd("MAIL", &args)
    }

    fn mail_args(&self, sender: &str, options: &[&str]) -> Result<String, Error> {
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
    pub fn rcpt(&mut self, recipient: &str, options: &[&str]) -> Result<Reply, Error> {
        let args = self.rcpt_args(recipient, options)?;
        self.docmd("RCPT", &args)
    }

    fn rcpt_args(&self, recipient: &str, options: &[&str]) -> Result<String, Error> {
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
        self.stream_body(msg, false, false)?;
        self.getreply()
    }

    /// Streams the message body in [`WRITE_CHUNK`]s, each leaving in one
    /// write; the end-of-data mark (and QUIT, when asked) rides in the
    /// last write.
    fn stream_body(&mut self, msg: &mut dyn Read, bdat: bool, quit: bool) -> Result<(), Error> {
        let r = self.stream_body_inner(msg, bdat, quit);
        self.fail_on_broken(r)
    }

    fn stream_body_inner(
        &mut self,
        msg: &mut dyn Read,
        bdat: bool,
        quit: bool,
    ) -> Result<(), Error> {
        let mut enc = if bdat {
            Encoder::for_bdat()
        } else {
            Encoder::for_data()
        };
        let mut chunk = vec![0u8; WRITE_CHUNK];
        let mut total: u64 = 0;
        let mut bdat_buf = Vec::with_capacity(if bdat {
            BDAT_CHUNK + 2 * WRITE_CHUNK
        } else {
            0
        });
        loop {
            let n = match msg.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The server is mid-data: without the end mark it will
                    // not take a partial message; the connection must go.
                    return Err(Error::io("cannot read the message", e))
                        .inspect_err(|_| self.close());
                }
            };
            let conn = self.conn()?;
            if bdat {
                enc.encode(&chunk[..n], &mut bdat_buf);
                if bdat_buf.len() >= BDAT_CHUNK {
                    conn.queue(format!("BDAT {}\r\n", bdat_buf.len()).as_bytes());
                    conn.queue(&bdat_buf);
                    bdat_buf.clear();
                    self.bdat_chunks += 1;
                }
            } else {
                enc.encode(&chunk[..n], conn.write_buffer());
            }
            total += n as u64;
            if self.conn()?.pending() >= WRITE_CHUNK {
                self.conn()?.flush()?;
            }
        }
        let conn = self.conn()?;
        if bdat {
            enc.finish_lines(&mut bdat_buf);
            conn.queue(format!("BDAT {} LAST\r\n", bdat_buf.len()).as_bytes());
            conn.queue(&bdat_buf);
            self.bdat_chunks += 1;
        } else {
            enc.finish_data(conn.write_buffer());
        }
        self.debug.log("C:", &format!("<message: {total} bytes>"));
        if quit {
            self.queue_cmd("QUIT", "")?;
            self.quit_sent = true;
        }
        self.conn()?.flush()
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

/// What a transaction needs to know about the message beforehand, and
/// how to end the session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// Size and 8-bit content; `None` sends no SIZE= and no BODY=.
    pub info: Option<BodyInfo>,
    /// Send QUIT right behind the end of data (one round trip fewer) when
    /// the server pipelines; the session is closed afterwards.
    pub quit_after: bool,
}

impl Smtp {
    /// Sends one message to the envelope (smtplib's `sendmail`, streaming
    /// and typed): EHLO/HELO if needed; SIZE=, BODY=8BITMIME, SMTPUTF8 and
    /// DSN parameters where offered; MAIL, RCPT and DATA in one write when
    /// the server offers PIPELINING. Returns the refused recipients with
    /// their replies (empty: all accepted).
    ///
    /// Errors, each after an RSET so the session can send the next message
    /// (or after closing, on a 421): [`Error::SenderRefused`],
    /// [`Error::RecipientsRefused`] when no recipient was accepted,
    /// [`Error::Data`] when the message was refused. A message larger than
    /// the advertised SIZE is refused before anything is sent
    /// ([`Error::MessageTooLarge`]); a non-ASCII address to a server
    /// without SMTPUTF8 is [`Error::NotSupported`].
    ///
    /// LMTP: one reply per accepted recipient after the data; recipients
    /// refused there are returned as refused like those refused at RCPT.
    pub fn send(
        &mut self,
        env: &Envelope,
        msg: &mut dyn Read,
        opts: SendOptions,
    ) -> Result<Refused, Error> {
        self.ehlo_or_helo_if_needed()?;
        if env.to.is_empty() {
            return Err(Error::InvalidInput("no recipients given".into()));
        }
        let international =
            command::needs_smtputf8(&env.from) || env.to.iter().any(|t| command::needs_smtputf8(t));
        if international && self.does_esmtp && !self.has_extn("smtputf8") {
            // Domains can travel as A-labels; refusals are reported under
            // the addresses the caller gave.
            let ascii = ascii_envelope(env)?;
            let refused = self.send_envelope(&ascii, msg, opts)?;
            return Ok(refused
                .into_iter()
                .map(|(a, r)| {
                    let i = ascii.to.iter().position(|t| *t == a);
                    (i.map_or(a, |i| env.to[i].clone()), r)
                })
                .collect());
        }
        self.send_envelope(env, msg, opts)
    }

    fn send_envelope(
        &mut self,
        env: &Envelope,
        msg: &mut dyn Read,
        opts: SendOptions,
    ) -> Result<Refused, Error> {
        let (mail_opts, rcpt_opts) = self.transaction_params(env, opts.info)?;
        let mail_opts: Vec<&str> = mail_opts.iter().map(String::as_str).collect();
        let mail_args = self.mail_args(&env.from, &mail_opts)?;
        let mut rcpt_args = Vec::with_capacity(env.to.len());
        for (to, extra) in env.to.iter().zip(&rcpt_opts) {
            let o: Vec<&str> = extra.iter().map(String::as_str).collect();
            rcpt_args.push(self.rcpt_args(to, &o)?);
        }
        let pipelining = self.has_extn("pipelining");
        let bdat = self.opts.chunking && pipelining && self.has_extn("chunking");
        self.bdat_chunks = 0;
        self.accepted_reply = None;

        let (refused, accepted) = if pipelining {
            self.envelope_pipelined(env, &mail_args, &rcpt_args, bdat)?
        } else {
            self.envelope_stepwise(env, &mail_args, &rcpt_args)?
        };

        let quit = opts.quit_after && pipelining;
        self.stream_body(msg, bdat, quit)?;
        let result = self
            .data_replies(bdat, refused, &accepted)
            .map_err(|e| match e {
                // RFC 1047: the whole message went out and the reply was
                // lost. The server may have taken it; the caller must know.
                Error::ServerDisconnected(m) => Error::ServerDisconnected(format!(
                    "{m} after the end of the message, before the server's reply: it may have been delivered"
                )),
                e => e,
            });
        if quit {
            // The QUIT reply is a courtesy; the outcome is already known.
            if self.conn.is_some() {
                let _ = self.getreply();
            }
            self.close();
        }
        result
    }

    /// The MAIL parameters and each recipient's RCPT parameters.
    fn transaction_params(
        &self,
        env: &Envelope,
        info: Option<BodyInfo>,
    ) -> Result<(Vec<String>, Vec<Vec<String>>), Error> {
        let mut mail = Vec::new();
        let mut rcpt: Vec<Vec<String>> = vec![Vec::new(); env.to.len()];
        if !self.does_esmtp {
            return Ok((mail, rcpt));
        }
        if let (Some(limit), Some(info)) = (self.features.size_limit(), info) {
            if limit > 0 && info.size > limit {
                return Err(Error::MessageTooLarge {
                    size: info.size,
                    limit,
                });
            }
            mail.push(format!("SIZE={}", info.size));
        }
        if info.is_some_and(|i| i.eight_bit) && self.has_extn("8bitmime") {
            mail.push("BODY=8BITMIME".into());
        }
        let utf8 =
            command::needs_smtputf8(&env.from) || env.to.iter().any(|t| command::needs_smtputf8(t));
        if utf8 {
            if !self.has_extn("smtputf8") {
                return Err(Error::NotSupported(
                    "the address is not ASCII and the server does not offer SMTPUTF8".into(),
                ));
            }
            mail.push("SMTPUTF8".into());
        }
        if let Some(dsn) = env.dsn.as_ref().filter(|_| self.has_extn("dsn")) {
            if let Some(ret) = &dsn.ret {
                mail.push(format!("RET={}", ret.to_ascii_uppercase()));
            }
            if let Some(id) = &dsn.envid {
                mail.push(format!("ENVID={}", xtext(id)));
            }
            for (i, to) in env.to.iter().enumerate() {
                if !dsn.notify.is_empty() {
                    rcpt[i].push(format!(
                        "NOTIFY={}",
                        dsn.notify.join(",").to_ascii_uppercase()
                    ));
                }
                if dsn.orcpt {
                    let addr = command::addr_only(to);
                    if utf8 {
                        rcpt[i].push(format!("ORCPT=utf-8;{}", utf8_addr_xtext(&addr)));
                    } else {
                        rcpt[i].push(format!("ORCPT=rfc822;{}", xtext(&addr)));
                    }
                }
            }
        }
        mail.extend(env.mail_options.iter().cloned());
        for r in &mut rcpt {
            r.extend(env.rcpt_options.iter().cloned());
        }
        Ok((mail, rcpt))
    }

    /// MAIL, every RCPT and DATA (or nothing, for BDAT) in one write; the
    /// replies are then matched in order, with the same outcomes as the
    /// step-by-step path.
    fn envelope_pipelined(
        &mut self,
        env: &Envelope,
        mail_args: &str,
        rcpt_args: &[String],
        bdat: bool,
    ) -> Result<(Refused, Vec<String>), Error> {
        self.queue_cmd("MAIL", mail_args)?;
        for a in rcpt_args {
            self.queue_cmd("RCPT", a)?;
        }
        if !bdat {
            self.queue_cmd("DATA", "")?;
        }
        self.flush()?;
        let mail_reply = self.getreply()?;
        let mut refused = Refused::new();
        let mut accepted = Vec::new();
        let mut closing = mail_reply.code() == 421;
        for to in &env.to {
            if closing {
                break;
            }
            let r = self.getreply()?;
            if r.code() == 421 {
                closing = true;
            }
            if r.code() == 250 || r.code() == 251 {
                accepted.push(to.clone());
            } else {
                refused.push((to.clone(), r));
            }
        }
        let data_reply = if bdat || closing {
            None
        } else {
            Some(self.getreply()?)
        };
        let data_ok = data_reply.as_ref().is_some_and(|r| r.code() == 354);
        let go = mail_reply.code() == 250 && !accepted.is_empty() && (bdat || data_ok);
        if go {
            return Ok((refused, accepted));
        }
        // Something failed. A server that said 354 anyway waits for data:
        // end it empty so the conversation stays in step (RFC 2920 §3.1).
        if data_ok {
            self.conn()?.queue(b".\r\n");
            self.flush()?;
            let _ = self.getreply()?;
        }
        if closing {
            self.close();
        } else {
            self.rset_quietly();
        }
        if mail_reply.code() != 250 {
            return Err(Error::SenderRefused {
                reply: mail_reply,
                sender: env.from.clone(),
            });
        }
        if accepted.is_empty() {
            return Err(Error::RecipientsRefused(refused));
        }
        Err(Error::Data(data_reply.unwrap_or_else(|| {
            Reply::new(421, vec!["connection closed by server".into()])
        })))
    }

    /// The same without PIPELINING: each command waits for its reply, and
    /// nothing is sent after a refusal that ends the transaction.
    fn envelope_stepwise(
        &mut self,
        env: &Envelope,
        mail_args: &str,
        rcpt_args: &[String],
    ) -> Result<(Refused, Vec<String>), Error> {
        let r = self.docmd("MAIL", mail_args)?;
        if r.code() != 250 {
            if r.code() == 421 {
                self.close();
            } else {
                self.rset_quietly();
            }
            return Err(Error::SenderRefused {
                reply: r,
                sender: env.from.clone(),
            });
        }
        let mut refused = Refused::new();
        let mut accepted = Vec::new();
        for (to, args) in env.to.iter().zip(rcpt_args) {
            let r = self.docmd("RCPT", args)?;
            if r.code() == 250 || r.code() == 251 {
                accepted.push(to.clone());
                continue;
            }
            let code = r.code();
            refused.push((to.clone(), r));
            if code == 421 {
                self.close();
                return Err(Error::RecipientsRefused(refused));
            }
        }
        if accepted.is_empty() {
            self.rset_quietly();
            return Err(Error::RecipientsRefused(refused));
        }
        let r = self.docmd("DATA", "")?;
        if r.code() != 354 {
            if r.code() == 421 {
                self.close();
            } else {
                self.rset_quietly();
            }
            return Err(Error::Data(r));
        }
        Ok((refused, accepted))
    }

    /// Reads what follows the message: the BDAT chunk replies, then the
    /// final reply (LMTP: one per accepted recipient).
    fn data_replies(
        &mut self,
        bdat: bool,
        mut refused: Refused,
        accepted: &[String],
    ) -> Result<Refused, Error> {
        if bdat {
            // Every chunk but the last gets its own reply; a failure there
            // means the whole message failed.
            for _ in 1..self.bdat_chunks {
                let r = self.getreply()?;
                if r.code() != 250 {
                    return self.data_failed(r);
                }
            }
        }
        if self.opts.protocol == Protocol::Lmtp {
            let mut delivered = 0;
            for to in accepted {
                let r = self.getreply()?;
                if r.is_positive() {
                    delivered += 1;
                } else {
                    refused.push((to.clone(), r));
                }
            }
            if delivered == 0 {
                self.rset_quietly();
                return Err(Error::RecipientsRefused(refused));
            }
            return Ok(refused);
        }
        let r = self.getreply()?;
        if r.code() != 250 {
            return self.data_failed(r);
        }
        self.accepted_reply = Some(r);
        Ok(refused)
    }

    /// The reply with which the server accepted the last message sent by
    /// [`Smtp::send`] (SMTP only; LMTP has one per recipient).
    pub fn accepted_reply(&self) -> Option<&Reply> {
        self.accepted_reply.as_ref()
    }

    fn data_failed(&mut self, r: Reply) -> Result<Refused, Error> {
        if r.code() == 421 {
            self.close();
        } else {
            self.rset_quietly();
        }
        Err(Error::Data(r))
    }

    /// smtplib's `sendmail` over an in-memory message: the recipients
    /// refused, or an error as [`Smtp::send`] describes.
    pub fn sendmail(
        &mut self,
        from_addr: &str,
        to_addrs: &[&str],
        msg: &[u8],
        mail_options: &[&str],
        rcpt_options: &[&str],
    ) -> Result<Refused, Error> {
        let env = Envelope {
            from: from_addr.to_owned(),
            to: to_addrs.iter().map(|s| (*s).to_owned()).collect(),
            mail_options: mail_options.iter().map(|s| (*s).to_owned()).collect(),
            rcpt_options: rcpt_options.iter().map(|s| (*s).to_owned()).collect(),
            dsn: None,
        };
        let opts = SendOptions {
            info: Some(BodyScanner::scan(msg)),
            quit_after: false,
        };
        self.send(&env, &mut &msg[..], opts)
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

/// The envelope with every non-ASCII domain as A-labels, for a server
/// without SMTPUTF8; a non-ASCII local part cannot be carried at all.
fn ascii_envelope(env: &Envelope) -> Result<Envelope, Error> {
    let convert = |a: &str| -> Result<String, Error> {
        if !command::needs_smtputf8(a) {
            return Ok(a.to_owned());
        }
        let bare = command::addr_only(a);
        super::idna::address_to_ascii(&bare).ok_or_else(|| {
            Error::NotSupported(format!(
                "the address <{bare}> has a non-ASCII local part and the server does not offer SMTPUTF8"
            ))
        })
    };
    Ok(Envelope {
        from: convert(&env.from)?,
        to: env
            .to
            .iter()
            .map(|t| convert(t))
            .collect::<Result<_, _>>()?,
        ..env.clone()
    })
}

/// xtext (RFC 3461 §4): `+`, `=`, controls, space and non-ASCII as `+HH`.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// utf-8-addr-xtext (RFC 6533 §3): non-ASCII stays, `+`, `=`, `\` and
/// controls as `\x{HH}`.
fn utf8_addr_xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() && (!c.is_ascii_graphic() || matches!(c, '+' | '=' | '\\')) {
            out.push_str(&format!("\\x{{{:X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
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
        self.send(&env, &mut std::io::Read::chain(&head[..], rest), opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_rfc3461() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext("plain@example.org"), "plain@example.org");
        assert_eq!(
            utf8_addr_xtext("j\u{f6}+x@example.org"),
            "j\u{f6}\\x{2B}x@example.org"
        );
    }

    #[test]
    fn param_check() {
        assert!(check_param("SIZE=100").is_ok());
        assert!(check_param("SIZE=1 X").is_err());
        assert!(check_param("").is_err());
    }
}
