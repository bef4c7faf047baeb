//! One message on a session (RFC 5321 §3.3): the MAIL and RCPT
//! parameters, the envelope in lockstep or pipelined (RFC 2920), the
//! message by DATA or BDAT (RFC 3030), the replies after it, and the
//! further transactions for recipients a server deferred with 452.
//!
//! **Pipelined = lockstep.** However the commands went out, their replies
//! are collected first (every reply the server sent, even when it closed
//! right after) and judged by one function, `judge`, in the order the
//! lockstep conversation would have met them. So the error variant and the
//! refused-recipient map never depend on PIPELINING.
//!
//! **Round trips.** With PIPELINING and DATA: EHLO | MAIL, RCPT…, DATA |
//! message, `.`, QUIT: three client flights. With CHUNKING the envelope is
//! not waited for: MAIL, RCPT…, `BDAT n LAST`, the message and QUIT leave
//! in one flight (RFC 3030 §4.2 lets a server refuse the chunk of a failed
//! envelope), so a send is two flights, the protocol minimum. When the size
//! is known (it is whenever [`SendOptions::info`] is given) the whole
//! message is one `BDAT n LAST` chunk streamed in [`WRITE_CHUNK`] writes,
//! in constant memory; otherwise it goes in [`BDAT_CHUNK`] chunks.
//!
//! **The end of the data.** The reply to the end of the message waits
//! [`SessionOptions::final_reply_timeout`](super::SessionOptions) (10
//! minutes by default, RFC 5321 §4.5.3.2.6), for content scanners. If the
//! connection closes or the wait times out there, the server has the whole
//! message and may have delivered it: [`Error::MaybeDelivered`], transient,
//! the at-least-once window.
//!
//! **452 too many recipients** (RFC 5321 §4.5.3.1.10): the recipients the
//! server deferred go in a further transaction on the same connection, as
//! Postfix sends them, when the message can be read again ([`Smtp::send`]
//! takes a [`Source`]); [`Smtp::send_stream`] returns them as refused with
//! their 452 (transient), for the caller to retry.

use std::io::Read;

use super::command;
use super::data::{BodyInfo, BodyScanner, Encoder};
use super::reply::Reply;
use super::session::{Envelope, Protocol, Smtp};
use super::stream::WRITE_CHUNK;
use super::{Error, Refused};

/// Size of one BDAT chunk when the message's size is not known in
/// advance. Chunks are pipelined and their replies read at the end, so the
/// count of chunks bounds what the server must buffer in replies; 1 MiB
/// keeps that small for any message size.
pub const BDAT_CHUNK: usize = 1024 * 1024;

/// RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients in one
/// transaction. Up to that many, QUIT may ride behind BDAT before the
/// envelope's replies are known; beyond, a 452 could defer some to a
/// further transaction, which needs the connection.
const MIN_RECIPIENT_LIMIT: usize = 100;

/// A message that can be read again from the start (for the further
/// transaction after a 452): any `Read + Seek`, such as a `File` or a
/// `Cursor`.
pub trait Source: Read + std::io::Seek {}

impl<T: Read + std::io::Seek + ?Sized> Source for T {}

/// What a transaction needs to know about the message beforehand, and
/// how to end the session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// Size and 8-bit content; `None` sends no SIZE= and no BODY=, and
    /// BDAT then goes in [`BDAT_CHUNK`] chunks instead of one.
    pub info: Option<BodyInfo>,
    /// Send QUIT right behind the end of data (one round trip fewer) when
    /// the server pipelines; the session is closed afterwards.
    pub quit_after: bool,
}

/// How the message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lockstep,
    Pipelined,
    Bdat,
}

/// How the body is framed on the wire.
#[derive(Debug, Clone, Copy)]
pub(super) enum Framing {
    /// DATA: dot-stuffed, ended by CRLF.CRLF.
    Data,
    /// BDAT: one `BDAT n LAST` when the size is known, else chunks.
    Bdat(Option<u64>),
}

enum Body<'a> {
    Seekable(&'a mut dyn Source),
    Stream(&'a mut dyn Read),
}

/// The envelope's outcome when at least one recipient was accepted.
#[derive(Debug, Default)]
struct Accepted {
    accepted: Vec<String>,
    refused: Refused,
    deferred: Refused,
}

/// The judgment of an envelope: go on with the data, or fail (closing the
/// session first when the server is going away).
enum Verdict {
    Go(Accepted),
    Fail { error: Error, close: bool },
}

/// Judges MAIL's reply and the RCPT replies as smtplib's `sendmail` meets
/// them in lockstep. `rcpts` may be shorter than `to`: after `broken` (no
/// more replies came), or after a 452 in lockstep (nothing more was sent;
/// the rest is deferred with it).
fn judge(
    from: &str,
    to: &[String],
    mail: Option<Reply>,
    rcpts: Vec<Reply>,
    broken: Option<&Error>,
) -> Verdict {
    let gone = |broken: Option<&Error>| Verdict::Fail {
        error: broken
            .map(clone_error)
            .unwrap_or_else(|| Error::ServerDisconnected("connection unexpectedly closed".into())),
        close: true,
    };
    let Some(mail) = mail else {
        return gone(broken);
    };
    if mail.code() != 250 {
        return Verdict::Fail {
            close: mail.code() == 421,
            error: Error::SenderRefused {
                reply: mail,
                sender: from.to_owned(),
            },
        };
    }
    // Every recipient that was not accepted, in order, and whether it was
    // deferred (452) rather than refused.
    let mut not_taken: Vec<(String, Reply, bool)> = Vec::new();
    let mut accepted = Vec::new();
    let mut replies = rcpts.into_iter();
    let mut last_452: Option<Reply> = None;
    for addr in to {
        let r = match replies.next() {
            Some(r) => r,
            None if broken.is_none() && last_452.is_some() => {
                let r = last_452
                    .clone()
                    .unwrap_or_else(|| Reply::new(452, Vec::new()));
                not_taken.push((addr.clone(), r, true));
                continue;
            }
            None => return gone(broken),
        };
        match r.code() {
            250 | 251 => accepted.push(addr.clone()),
            421 => {
                not_taken.push((addr.clone(), r, false));
                let refused = not_taken.into_iter().map(|(a, r, _)| (a, r)).collect();
                return Verdict::Fail {
                    error: Error::RecipientsRefused(refused),
                    close: true,
                };
            }
            452 => {
                last_452 = Some(r.clone());
                not_taken.push((addr.clone(), r, true));
            }
            _ => not_taken.push((addr.clone(), r, false)),
        }
    }
    if accepted.is_empty() {
        // Nothing to defer to: every recipient counts as refused.
        let refused = not_taken.into_iter().map(|(a, r, _)| (a, r)).collect();
        return Verdict::Fail {
            error: Error::RecipientsRefused(refused),
            close: false,
        };
    }
    let mut out = Accepted {
        accepted,
        ..Accepted::default()
    };
    for (a, r, deferred) in not_taken {
        if deferred {
            out.deferred.push((a, r));
        } else {
            out.refused.push((a, r));
        }
    }
    Verdict::Go(out)
}

/// The recipients of a further transaction that failed, each with the
/// reply that failed it (a synthetic 451/554 naming the cause when the
/// server gave none: the first transaction's recipients already have the
/// message, so the outcome must stay per recipient).
fn refused_by(to: &[String], e: Error) -> Refused {
    if let Error::RecipientsRefused(m) = e {
        return m;
    }
    let reply = e.reply().cloned().unwrap_or_else(|| {
        let code = if e.is_transient() { 451 } else { 554 };
        Reply::new(code, vec![format!("in a further transaction: {e}")])
    });
    to.iter().map(|a| (a.clone(), reply.clone())).collect()
}

impl Smtp {
    /// Sends one message to the envelope (smtplib's `sendmail`, streaming
    /// and typed): EHLO/HELO if needed; SIZE=, BODY=8BITMIME, SMTPUTF8 and
    /// DSN parameters where offered (unless the envelope's options already
    /// carry them); MAIL, RCPT and DATA in one write when the server offers
    /// PIPELINING, or the whole transaction in one write with BDAT when
    /// [`SessionOptions::chunking`](super::SessionOptions) is on and the
    /// server offers CHUNKING too. Returns the refused recipients with
    /// their replies (empty: all accepted).
    ///
    /// Errors, each after an RSET so the session can send the next message
    /// (or after closing, on a 421): [`Error::SenderRefused`],
    /// [`Error::RecipientsRefused`] when no recipient was accepted,
    /// [`Error::Data`] when the message was refused,
    /// [`Error::MaybeDelivered`] when the reply to the end of the data
    /// never came. A message larger than the advertised SIZE is refused
    /// before anything is sent ([`Error::MessageTooLarge`]); a non-ASCII
    /// address to a server without SMTPUTF8 travels with its domain as
    /// A-labels, and a non-ASCII local part is [`Error::NotSupported`].
    ///
    /// Recipients deferred with 452 (too many recipients) go in further
    /// transactions on the same connection, reading `msg` again from its
    /// start; if one of those fails, its recipients are returned as refused
    /// with the reply that failed them.
    ///
    /// LMTP: one reply per accepted recipient after the data; recipients
    /// refused there are returned as refused like those refused at RCPT.
    pub fn send(
        &mut self,
        env: &Envelope,
        msg: &mut dyn Source,
        opts: SendOptions,
    ) -> Result<Refused, Error> {
        self.send_body(env, &mut Body::Seekable(msg), opts)
    }

    /// [`Smtp::send`] from a stream that cannot be read twice (a pipe):
    /// recipients deferred with 452 are returned as refused with their
    /// 452 reply (transient), for the caller to send again later.
    pub fn send_stream(
        &mut self,
        env: &Envelope,
        msg: &mut dyn Read,
        opts: SendOptions,
    ) -> Result<Refused, Error> {
        self.send_body(env, &mut Body::Stream(msg), opts)
    }

    fn send_body(
        &mut self,
        env: &Envelope,
        body: &mut Body<'_>,
        opts: SendOptions,
    ) -> Result<Refused, Error> {
        self.ehlo_or_helo_if_needed()?;
        if env.to.is_empty() {
            return Err(Error::InvalidInput("no recipients given".into()));
        }
        let international =
            command::needs_smtputf8(&env.from) || env.to.iter().any(|t| command::needs_smtputf8(t));
        if international && self.does_esmtp() && !self.has_extn("smtputf8") {
            // Domains can travel as A-labels; refusals are reported under
            // the addresses the caller gave.
            let ascii = ascii_envelope(env)?;
            let refused = self.transactions(&ascii, body, opts)?;
            return Ok(refused
                .into_iter()
                .map(|(a, r)| {
                    let i = ascii.to.iter().position(|t| *t == a);
                    (i.map_or(a, |i| env.to[i].clone()), r)
                })
                .collect());
        }
        self.transactions(env, body, opts)
    }

    /// The first transaction, then one more for each group of recipients
    /// the server deferred, while it accepts some each time.
    fn transactions(
        &mut self,
        env: &Envelope,
        body: &mut Body<'_>,
        opts: SendOptions,
    ) -> Result<Refused, Error> {
        let mut refused = Refused::new();
        let mut this = env.clone();
        let mut first = true;
        loop {
            let rereadable = matches!(body, Body::Seekable(_));
            let reader: &mut dyn Read = match body {
                Body::Seekable(s) => {
                    if !first {
                        s.rewind()
                            .map_err(|e| Error::io("cannot read the message again", e))?;
                    }
                    &mut **s
                }
                Body::Stream(s) => &mut **s,
            };
            let done = match self.transaction(&this, reader, opts, rereadable) {
                Ok(done) => done,
                Err(e) if first => return Err(e),
                Err(e) => {
                    refused.extend(refused_by(&this.to, e));
                    return Ok(refused);
                }
            };
            first = false;
            refused.extend(done.refused);
            if done.deferred.is_empty() {
                return Ok(refused);
            }
            if !rereadable || !self.is_connected() {
                refused.extend(done.deferred);
                return Ok(refused);
            }
            this.to = done.deferred.into_iter().map(|(a, _)| a).collect();
        }
    }

    /// One transaction: the envelope, the message, the replies.
    fn transaction(
        &mut self,
        env: &Envelope,
        msg: &mut dyn Read,
        opts: SendOptions,
        rereadable: bool,
    ) -> Result<Accepted, Error> {
        let (mail_opts, rcpt_opts) = self.transaction_params(env, opts.info)?;
        let mail_opts: Vec<&str> = mail_opts.iter().map(String::as_str).collect();
        let mail_args = self.mail_args(&env.from, &mail_opts)?;
        let mut rcpt_args = Vec::with_capacity(env.to.len());
        for (to, extra) in env.to.iter().zip(&rcpt_opts) {
            let o: Vec<&str> = extra.iter().map(String::as_str).collect();
            rcpt_args.push(self.rcpt_args(to, &o)?);
        }
        let pipelining = self.has_extn("pipelining");
        let mode = if self.options().chunking
            && pipelining
            && self.has_extn("chunking")
            && self.options().protocol == Protocol::Smtp
        {
            Mode::Bdat
        } else if pipelining {
            Mode::Pipelined
        } else {
            Mode::Lockstep
        };
        self.bdat_chunks = 0;
        self.accepted_reply = None;
        if mode == Mode::Bdat {
            let quit = opts.quit_after && (env.to.len() <= MIN_RECIPIENT_LIMIT || !rereadable);
            return self.transaction_bdat(env, &mail_args, &rcpt_args, msg, opts.info, quit);
        }
        let ok = if mode == Mode::Pipelined {
            self.envelope_pipelined(env, &mail_args, &rcpt_args)?
        } else {
            self.envelope_lockstep(env, &mail_args, &rcpt_args)?
        };
        let quit = opts.quit_after && pipelining && (ok.deferred.is_empty() || !rereadable);
        self.stream_body(msg, Framing::Data, quit)?;
        let result = self.final_replies(ok);
        if quit {
            self.end_after_quit();
        }
        result
    }

    /// The MAIL parameters and each recipient's RCPT parameters. A
    /// parameter the caller already gave (`BODY=`, `SMTPUTF8`, `SIZE=`,
    /// DSN's) is not added a second time.
    fn transaction_params(
        &self,
        env: &Envelope,
        info: Option<BodyInfo>,
    ) -> Result<(Vec<String>, Vec<Vec<String>>), Error> {
        let mut mail = Vec::new();
        let mut rcpt: Vec<Vec<String>> = vec![Vec::new(); env.to.len()];
        if !self.does_esmtp() {
            return Ok((mail, rcpt));
        }
        let given = |key: &str| has_param(&env.mail_options, key);
        let rcpt_given = |key: &str| has_param(&env.rcpt_options, key);
        if let (Some(limit), Some(info)) = (self.extensions().size_limit(), info) {
            if limit > 0 && info.size > limit {
                return Err(Error::MessageTooLarge {
                    size: info.size,
                    limit,
                });
            }
            if !given("SIZE") {
                mail.push(format!("SIZE={}", info.size));
            }
        }
        if info.is_some_and(|i| i.eight_bit) && self.has_extn("8bitmime") && !given("BODY") {
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
            if !given("SMTPUTF8") {
                mail.push("SMTPUTF8".into());
            }
        }
        if let Some(dsn) = env.dsn.as_ref().filter(|_| self.has_extn("dsn")) {
            if let Some(ret) = dsn.ret.as_ref().filter(|_| !given("RET")) {
                mail.push(format!("RET={}", ret.to_ascii_uppercase()));
            }
            if let Some(id) = dsn.envid.as_ref().filter(|_| !given("ENVID")) {
                mail.push(format!("ENVID={}", xtext(id)));
            }
            for (i, to) in env.to.iter().enumerate() {
                if !dsn.notify.is_empty() && !rcpt_given("NOTIFY") {
                    rcpt[i].push(format!(
                        "NOTIFY={}",
                        dsn.notify.join(",").to_ascii_uppercase()
                    ));
                }
                if dsn.orcpt && !rcpt_given("ORCPT") {
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

    /// Reads up to `n` replies of a pipelined group: stops early after a
    /// 421 (the server is closing) or when no more come, with the reason.
    /// After the whole message went out, each wait is the final-reply wait.
    fn read_group(&mut self, n: usize, after_data: bool) -> (Vec<Reply>, Option<Error>) {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let r = if after_data {
                self.final_reply()
            } else {
                self.getreply()
            };
            match r {
                Ok(r) => {
                    let closing = r.code() == 421;
                    out.push(r);
                    if closing {
                        break;
                    }
                }
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    /// MAIL, every RCPT and DATA in one write; the replies are then judged
    /// as the lockstep path judges them.
    fn envelope_pipelined(
        &mut self,
        env: &Envelope,
        mail_args: &str,
        rcpt_args: &[String],
    ) -> Result<Accepted, Error> {
        self.queue_cmd("MAIL", mail_args)?;
        for a in rcpt_args {
            self.queue_cmd("RCPT", a)?;
        }
        self.queue_cmd("DATA", "")?;
        self.flush()?;
        let n = rcpt_args.len();
        let (mut replies, broken) = self.read_group(n + 2, false);
        let data = (replies.len() == n + 2).then(|| replies.pop()).flatten();
        let mut replies = replies.into_iter();
        let mail = replies.next();
        let verdict = judge(&env.from, &env.to, mail, replies.collect(), broken.as_ref());
        let data_ok = data.as_ref().is_some_and(|r| r.code() == 354);
        match verdict {
            Verdict::Go(ok) if data_ok => Ok(ok),
            Verdict::Go(_) => match data {
                Some(r) => self.refused_data(r),
                None => {
                    self.close();
                    Err(broken.unwrap_or_else(|| {
                        Error::ServerDisconnected(
                            "connection unexpectedly closed before the reply to DATA".into(),
                        )
                    }))
                }
            },
            Verdict::Fail { error, close } => {
                // A server that said 354 anyway waits for data: end it
                // empty so the conversation stays in step (RFC 2920 §3.1).
                if data_ok {
                    self.queue_raw(b".\r\n")?;
                    self.flush()?;
                    let _ = self.getreply();
                }
                self.end_failed(close);
                Err(error)
            }
        }
    }

    /// The same without PIPELINING: each command waits for its reply, and
    /// nothing is sent after a reply that ends the transaction (a refused
    /// MAIL, a 421, a 452 that defers the rest).
    fn envelope_lockstep(
        &mut self,
        env: &Envelope,
        mail_args: &str,
        rcpt_args: &[String],
    ) -> Result<Accepted, Error> {
        let mail = self.docmd("MAIL", mail_args)?;
        let mut rcpts = Vec::new();
        let mut broken = None;
        if mail.code() == 250 {
            for a in rcpt_args {
                match self.docmd("RCPT", a) {
                    Ok(r) => {
                        let stop = matches!(r.code(), 421 | 452);
                        rcpts.push(r);
                        if stop {
                            break;
                        }
                    }
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                }
            }
        }
        match judge(&env.from, &env.to, Some(mail), rcpts, broken.as_ref()) {
            Verdict::Go(ok) => {
                let r = self.docmd("DATA", "")?;
                if r.code() != 354 {
                    return self.refused_data(r);
                }
                Ok(ok)
            }
            Verdict::Fail { error, close } => {
                self.end_failed(close);
                Err(error)
            }
        }
    }

    /// MAIL, every RCPT, the message as BDAT chunks and (when asked) QUIT,
    /// all in one flight; then every reply, judged as in lockstep.
    fn transaction_bdat(
        &mut self,
        env: &Envelope,
        mail_args: &str,
        rcpt_args: &[String],
        msg: &mut dyn Read,
        info: Option<BodyInfo>,
        quit: bool,
    ) -> Result<Accepted, Error> {
        self.queue_cmd("MAIL", mail_args)?;
        for a in rcpt_args {
            self.queue_cmd("RCPT", a)?;
        }
        let sent = self.stream_body_inner(msg, Framing::Bdat(info.map(|i| i.size)), quit);
        if let Err(e) = &sent
            && !matches!(e, Error::ServerDisconnected(_))
        {
            self.close();
            return Err(sent.unwrap_err());
        }
        let n = rcpt_args.len();
        let chunks = self.bdat_chunks;
        // A server that refused the envelope and hung up while we were
        // still writing may have said why: read what it sent.
        let (mut replies, broken) = self.read_group(1 + n + chunks, sent.is_ok());
        let chunk_replies = if replies.len() > 1 + n {
            replies.split_off(1 + n)
        } else {
            Vec::new()
        };
        let mut replies = replies.into_iter();
        let mail = replies.next();
        let verdict = judge(&env.from, &env.to, mail, replies.collect(), broken.as_ref());
        let result = match verdict {
            Verdict::Fail { error, close } => {
                self.end_failed(close);
                Err(error)
            }
            Verdict::Go(_) if sent.is_err() => {
                self.close();
                Err(sent.unwrap_err())
            }
            Verdict::Go(ok) => self.judge_chunks(ok, chunk_replies, chunks, broken),
        };
        if quit {
            self.end_after_quit();
        }
        result
    }

    /// The replies to the BDAT chunks: each must be 250; the last one
    /// accepts the message.
    fn judge_chunks(
        &mut self,
        ok: Accepted,
        replies: Vec<Reply>,
        chunks: usize,
        broken: Option<Error>,
    ) -> Result<Accepted, Error> {
        let got = replies.len();
        for r in replies {
            if r.code() != 250 {
                return self.refused_data(r);
            }
            self.accepted_reply = Some(r);
        }
        if got < chunks {
            self.close();
            self.accepted_reply = None;
            return Err(broken.unwrap_or_else(|| maybe_delivered("connection closed")));
        }
        Ok(ok)
    }

    /// Reads what follows the end of DATA: the final reply (LMTP: one per
    /// accepted recipient).
    fn final_replies(&mut self, ok: Accepted) -> Result<Accepted, Error> {
        if self.options().protocol == Protocol::Lmtp {
            let mut ok = ok;
            let mut delivered = 0;
            for to in ok.accepted.clone() {
                let r = self.final_reply()?;
                if r.is_positive() {
                    delivered += 1;
                } else {
                    ok.refused.push((to, r));
                }
            }
            if delivered == 0 {
                self.rset_quietly();
                return Err(Error::RecipientsRefused(ok.refused));
            }
            return Ok(ok);
        }
        let r = self.final_reply()?;
        if r.code() != 250 {
            return self.refused_data(r);
        }
        self.accepted_reply = Some(r);
        Ok(ok)
    }

    /// One reply after the whole message went out: its own, longer wait
    /// (RFC 5321 §4.5.3.2.6), and a lost reply means the message may have
    /// been delivered.
    pub(super) fn final_reply(&mut self) -> Result<Reply, Error> {
        let budget = self.options().final_reply_timeout;
        match self.getreply_within(budget) {
            Err(e @ (Error::ServerDisconnected(_) | Error::Timeout(_) | Error::Io { .. })) => {
                Err(maybe_delivered(&e.to_string()))
            }
            r => r,
        }
    }

    /// A refusal of the message (DATA, a BDAT chunk, the final reply).
    fn refused_data<T>(&mut self, r: Reply) -> Result<T, Error> {
        self.end_failed(r.code() == 421);
        Err(Error::Data(r))
    }

    /// After a refusal: close on 421, else RSET so the session stays
    /// usable (smtplib's `_rset`, which ignores a lost connection).
    fn end_failed(&mut self, close: bool) {
        if close {
            self.close();
        } else {
            self.rset_quietly();
        }
    }

    /// QUIT went out behind the data: its reply is a courtesy, the outcome
    /// is already known. The session is closed either way.
    fn end_after_quit(&mut self) {
        if self.is_connected() {
            self.set_step_timeout(super::session::QUIT_TIMEOUT);
            let _ = self.getreply();
        }
        self.close();
    }

    /// Streams the message body in [`WRITE_CHUNK`]s, each leaving in one
    /// write; the end-of-data mark (and QUIT, when asked) rides in the
    /// last write.
    pub(super) fn stream_body(
        &mut self,
        msg: &mut dyn Read,
        framing: Framing,
        quit: bool,
    ) -> Result<(), Error> {
        let r = self.stream_body_inner(msg, framing, quit);
        self.fail_on_broken(r)
    }

    fn stream_body_inner(
        &mut self,
        msg: &mut dyn Read,
        framing: Framing,
        quit: bool,
    ) -> Result<(), Error> {
        let mut enc = match framing {
            Framing::Data => Encoder::for_data(),
            Framing::Bdat(_) => Encoder::for_bdat(),
        };
        // Known size: one chunk, announced before the bytes. Unknown: a
        // buffer of one chunk at a time.
        let announced = match framing {
            Framing::Bdat(Some(size)) => {
                self.queue_raw(format!("BDAT {size} LAST\r\n").as_bytes())?;
                self.bdat_chunks = 1;
                Some(size)
            }
            _ => None,
        };
        let chunked = matches!(framing, Framing::Bdat(None));
        let mut chunk = vec![0u8; WRITE_CHUNK];
        let mut read_total: u64 = 0;
        let mut wire_total: u64 = 0;
        let mut bdat_buf = Vec::with_capacity(if chunked {
            BDAT_CHUNK + 2 * WRITE_CHUNK
        } else {
            0
        });
        let mut finished = false;
        while !finished {
            let n = match msg.read(&mut chunk) {
                Ok(0) => {
                    finished = true;
                    0
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The server is mid-data: without the end mark it will
                    // not take a partial message; the connection must go.
                    self.close();
                    return Err(Error::io("cannot read the message", e));
                }
            };
            read_total += n as u64;
            let conn = self.conn()?;
            if chunked {
                enc.encode(&chunk[..n], &mut bdat_buf);
                if finished {
                    enc.finish_lines(&mut bdat_buf);
                }
                if bdat_buf.len() >= BDAT_CHUNK || finished {
                    let last = if finished { " LAST" } else { "" };
                    conn.queue(format!("BDAT {}{last}\r\n", bdat_buf.len()).as_bytes());
                    conn.queue(&bdat_buf);
                    bdat_buf.clear();
                    self.bdat_chunks += 1;
                }
            } else {
                let buf = conn.write_buffer();
                let before = buf.len();
                enc.encode(&chunk[..n], buf);
                if finished {
                    match framing {
                        Framing::Data => enc.finish_data(buf),
                        Framing::Bdat(_) => enc.finish_lines(buf),
                    }
                }
                if let Some(size) = announced {
                    wire_total += (buf.len() - before) as u64;
                    let short = finished && wire_total < size;
                    if wire_total > size || short {
                        // Never let a byte beyond the announced chunk reach
                        // the server, where it would be read as a command.
                        buf.clear();
                        self.close();
                        return Err(Error::InvalidInput(format!(
                            "the message is {} {wire_total} bytes on the wire, not the {size} announced (it changed while being sent?)",
                            if short { "only" } else { "at least" }
                        )));
                    }
                }
            }
            if finished {
                break;
            }
            if self.conn()?.pending() >= WRITE_CHUNK {
                self.conn()?.flush()?;
            }
        }
        self.debug_log("C:", &format!("<message: {read_total} bytes>"));
        if quit {
            self.queue_cmd("QUIT", "")?;
            self.quit_sent = true;
        }
        self.conn()?.flush()
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
        self.send(&env, &mut std::io::Cursor::new(msg), opts)
    }
}

/// Whether the options hold the ESMTP parameter `key` (`KEY` or `KEY=…`).
fn has_param(options: &[String], key: &str) -> bool {
    options
        .iter()
        .any(|o| o.split('=').next().unwrap_or("").eq_ignore_ascii_case(key))
}

/// The error for a reply lost after the whole message went out.
fn maybe_delivered(cause: &str) -> Error {
    Error::MaybeDelivered(format!(
        "{cause} after the end of the message, before the server's reply"
    ))
}

/// A copy of a read failure (errors are not `Clone`: they may hold an
/// `io::Error`), for judging a group while keeping the original.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Timeout(s) => Error::Timeout(*s),
        Error::ServerDisconnected(m) => Error::ServerDisconnected(m.clone()),
        Error::MaybeDelivered(m) => Error::MaybeDelivered(m.clone()),
        Error::Protocol(m) => Error::Protocol(m.clone()),
        other => Error::ServerDisconnected(other.to_string()),
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

    fn r(code: u16) -> Reply {
        Reply::new(code, vec![format!("{code} text")])
    }

    fn to(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i}@x")).collect()
    }

    #[test]
    fn judge_like_lockstep() {
        let e = Error::ServerDisconnected("x".into());
        let gone = || Some(&e);
        // 451 to MAIL, then the server hung up: the 451 is the outcome.
        match judge("a@x", &to(1), Some(r(451)), vec![], gone()) {
            Verdict::Fail {
                error: Error::SenderRefused { reply, .. },
                close: false,
            } => assert_eq!(reply.code(), 451),
            _ => panic!(),
        }
        // 421 to a RCPT: RecipientsRefused with it, and close.
        match judge("a@x", &to(2), Some(r(250)), vec![r(250), r(421)], None) {
            Verdict::Fail {
                error: Error::RecipientsRefused(m),
                close: true,
            } => assert_eq!(m[0].1.code(), 421),
            _ => panic!(),
        }
        // No reply to MAIL at all: the read failure.
        assert!(matches!(
            judge("a@x", &to(1), None, vec![], gone()),
            Verdict::Fail {
                error: Error::ServerDisconnected(_),
                close: true
            }
        ));
        // 452 defers (lockstep stops sending after it); nothing accepted
        // makes every one refused.
        match judge("a@x", &to(3), Some(r(250)), vec![r(250), r(452)], None) {
            Verdict::Go(ok) => {
                assert_eq!(ok.accepted, ["r0@x"]);
                assert_eq!(ok.deferred.len(), 2);
                assert!(ok.refused.is_empty());
            }
            _ => panic!(),
        }
        match judge("a@x", &to(2), Some(r(250)), vec![r(452), r(550)], None) {
            Verdict::Fail {
                error: Error::RecipientsRefused(m),
                close: false,
            } => assert_eq!(m.len(), 2),
            _ => panic!(),
        }
    }
}
