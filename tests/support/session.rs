//! The scripted server's SMTP/LMTP engine: RFC 5321 commands, RFC 3207
//! STARTTLS, RFC 4954 AUTH, RFC 3030 BDAT, RFC 2033 LMTP, RFC 2920 pipelining
//! (replies are queued while more commands are buffered and flushed when
//! the server would block), with the script's overrides and faults applied
//! at each reply.
//!
//! Strict where a client bug should show up (commands out of order get 503,
//! bad syntax 501), lenient where a test may want to see what the client
//! sends (bare LF lines are accepted and flagged in the transcript).

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::conn::{MAX_BUFFER, RawConn};
use super::script::{Action, AuthMode, BUILTIN_AUTH_MECHANISMS, Hook, Script, Step};
use super::transcript::{Ending, LineKind, Message, starts_with_ignore_case, verb_of};

/// Serve one connection according to `script`; the ending is recorded in
/// the connection's transcript.
pub(crate) fn serve(conn: &mut RawConn, script: &Script) {
    let ending = {
        let mut s = Session {
            c: conn,
            s: script,
            refused: false,
            greeted: false,
            ehlo: false,
            authenticated: false,
            txn: None,
            counts: HashMap::new(),
            messages: 0,
        };
        match s.run() {
            Ok(()) => Ending::ServerClosed,
            Err(e) => e,
        }
    };
    conn.close_abruptly();
    conn.t.ending = conn.end.take().unwrap_or(ending);
}

/// The AUTH exchange handed to a [`Script::on_auth`] closure.
pub struct AuthExchange<'a> {
    conn: &'a mut RawConn,
    mechanism: String,
    initial: Option<String>,
}

impl AuthExchange<'_> {
    /// The mechanism the client asked for, upper-cased.
    pub fn mechanism(&self) -> &str {
        &self.mechanism
    }

    /// The initial response on the AUTH line, verbatim (`"="` means empty).
    pub fn initial_response(&self) -> Option<&str> {
        self.initial.as_deref()
    }

    /// Send `334 <text>` and return the client's answer line. `None` when
    /// the connection ended (the server then ends it).
    pub fn challenge(&mut self, text: &str) -> Option<String> {
        if self.conn.end.is_some() {
            return None;
        }
        let reply = if text.is_empty() {
            "334 \r\n".to_string()
        } else {
            format!("334 {text}\r\n")
        };
        self.conn.queue_reply(reply.as_bytes());
        let r = self.conn.client_line(LineKind::AuthResponse);
        self.conn.keep(r).map(|l| l.text)
    }

    /// Whether the exchange runs inside TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.is_tls()
    }

    /// Decode a base64 AUTH payload (`"="` is the empty payload).
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        if text == "=" {
            return Some(Vec::new());
        }
        B64.decode(text.trim()).ok()
    }

    /// Encode bytes as base64 for a challenge.
    pub fn encode(bytes: &[u8]) -> String {
        B64.encode(bytes)
    }
}

#[derive(Default)]
struct Txn {
    mail_from: String,
    rcpts: Vec<String>,
    refused: Vec<String>,
    /// BDAT: the message being received, index into the transcript.
    bdat_msg: Option<usize>,
    bdat_fired: HashSet<usize>,
}

/// Whether `respond` sent the normal reply or something replaced it.
#[derive(PartialEq, Eq)]
enum Sent {
    Normal,
    Replaced,
}

struct Session<'a> {
    c: &'a mut RawConn,
    s: &'a Script,
    refused: bool,
    greeted: bool,
    ehlo: bool,
    authenticated: bool,
    txn: Option<Txn>,
    counts: HashMap<String, usize>,
    messages: usize,
}

const OK: &str = "250 2.0.0 Ok";
const AUTH_OK: &str = "235 2.7.0 Authentication successful";
const AUTH_BAD: &str = "535 5.7.8 Authentication credentials invalid";
const AUTH_CANCELLED: &str = "501 5.7.0 Authentication cancelled";
const AUTH_UNDECODABLE: &str = "501 5.5.2 Cannot decode response";
const AUTH_UNKNOWN_MECH: &str = "504 5.5.4 Unrecognized authentication type";

fn code(reply: &str) -> u16 {
    reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn positive(reply: &str) -> bool {
    (200..300).contains(&code(reply))
}

/// A reply text as wire bytes: lines separated by `\n` become CRLF lines.
fn wire(reply: &str) -> Vec<u8> {
    if reply.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(reply.len() + 2);
    for line in reply.trim_end_matches(['\r', '\n']).split('\n') {
        out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn step_key(step: &Step) -> String {
    let key = match step {
        Step::Greeting => "greeting",
        Step::AfterGreeting => "after-greeting",
        Step::Ehlo => "ehlo",
        Step::Helo => "helo",
        Step::StartTls => "starttls",
        Step::Auth => "auth",
        Step::Mail => "mail",
        Step::Rcpt => "rcpt",
        Step::Data => "data",
        Step::DataBytes(_) => "data-bytes",
        Step::EndOfData => "end-of-data",
        Step::LmtpReply => "lmtp-reply",
        Step::Bdat => "bdat",
        Step::Rset => "rset",
        Step::Noop => "noop",
        Step::Quit => "quit",
        Step::Other(verb) => return format!("other:{}", verb.to_ascii_uppercase()),
    };
    key.to_string()
}

fn step_for(verb: &str) -> Step {
    match verb {
        "EHLO" | "LHLO" => Step::Ehlo,
        "HELO" => Step::Helo,
        "STARTTLS" => Step::StartTls,
        "AUTH" => Step::Auth,
        "MAIL" => Step::Mail,
        "RCPT" => Step::Rcpt,
        "DATA" => Step::Data,
        "BDAT" => Step::Bdat,
        "RSET" => Step::Rset,
        "NOOP" => Step::Noop,
        "QUIT" => Step::Quit,
        other => Step::Other(other.to_string()),
    }
}

/// The value of `SIZE=` among ESMTP parameters, if any.
fn size_param(args: &str) -> Option<u64> {
    args.split_whitespace()
        .find(|p| starts_with_ignore_case(p, "SIZE="))
        .and_then(|p| p[5..].parse().ok())
}

impl Session<'_> {
    fn run(&mut self) -> Result<(), Ending> {
        if self.s.tls_on_connect {
            self.c.handshake()?;
        }
        if let Some(raw) = self.s.raw.clone() {
            raw(self.c);
            return Err(self.c.end.take().unwrap_or(Ending::ServerClosed));
        }
        let greeting = self.step_reply(Step::Greeting, self.s.greeting.clone());
        self.refused = !positive(&greeting);
        self.respond(Step::Greeting, &greeting)?;
        self.respond(Step::AfterGreeting, "")?;
        loop {
            let line = self.c.client_line(LineKind::Command)?;
            self.command(&line.text)?;
        }
    }

    /// The next occurrence number (1-based) of `step` on this connection.
    fn next_occurrence(&self, step: &Step) -> usize {
        match step {
            Step::DataBytes(_) => self.messages,
            _ => self.counts.get(&step_key(step)).copied().unwrap_or(0) + 1,
        }
    }

    fn matching(&self, step: &Step) -> Vec<Action> {
        let n = self.next_occurrence(step);
        let tls = self.c.is_tls();
        self.s
            .actions
            .iter()
            .filter(|(at, _)| at.matches(step, n, tls, self.c.index))
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// `default`, unless an `Action::Reply` at this step replaces it.
    fn step_reply(&self, step: Step, default: String) -> String {
        self.matching(&step)
            .into_iter()
            .rev()
            .find_map(|a| match a {
                Action::Reply(r) => Some(r),
                _ => None,
            })
            .unwrap_or(default)
    }

    /// Answer at `step` with `reply`, applying the step's faults.
    fn respond(&mut self, step: Step, reply: &str) -> Result<Sent, Ending> {
        let actions = self.matching(&step);
        *self.counts.entry(step_key(&step)).or_insert(0) += 1;
        self.apply(&actions, wire(reply))
    }

    fn apply(&mut self, actions: &[Action], bytes: Vec<u8>) -> Result<Sent, Ending> {
        for a in actions {
            if let Action::Stall(d) = a {
                self.c.stall(*d)?;
            }
        }
        if actions.iter().any(|a| matches!(a, Action::Disconnect)) {
            self.c.close_abruptly();
            return Err(Ending::ServerClosed);
        }
        for a in actions {
            if let Action::Hook(f) = a {
                let next = f(self.c);
                if let Some(end) = self.c.end.take() {
                    return Err(end);
                }
                match next {
                    Hook::SendReply => {}
                    Hook::Replied => return Ok(Sent::Replaced),
                    Hook::Close => {
                        self.c.close_abruptly();
                        return Err(Ending::ServerClosed);
                    }
                }
            }
        }
        let raw = actions.iter().rev().find_map(|a| match a {
            Action::Raw(b) => Some(b.clone()),
            _ => None,
        });
        let sent = if raw.is_some() {
            Sent::Replaced
        } else {
            Sent::Normal
        };
        let bytes = raw.unwrap_or(bytes);
        let drip = actions.iter().find_map(|a| match a {
            Action::Drip(d) => Some(*d),
            _ => None,
        });
        match drip {
            _ if bytes.is_empty() => {}
            Some(d) => self.c.drip(&bytes, d)?,
            None => self.c.queue_reply(&bytes),
        }
        let close_after = actions.iter().any(|a| matches!(a, Action::DisconnectAfter));
        if close_after {
            self.c.close_abruptly();
            return Err(Ending::ServerClosed);
        }
        Ok(sent)
    }

    /// Faults at `Step::DataBytes(n)` once `received` content bytes are in.
    fn data_progress(&mut self, received: usize, fired: &mut HashSet<usize>) -> Result<(), Ending> {
        let tls = self.c.is_tls();
        let due: Vec<(usize, Action)> = self
            .s
            .actions
            .iter()
            .enumerate()
            .filter(|(i, (at, _))| {
                matches!(at.step, Step::DataBytes(_))
                    && !fired.contains(i)
                    && at.matches(&Step::DataBytes(received), self.messages, tls, self.c.index)
            })
            .map(|(i, (_, a))| (i, a.clone()))
            .collect();
        for (i, action) in due {
            fired.insert(i);
            self.apply(&[action], Vec::new())?;
            self.c.flush()?;
        }
        Ok(())
    }

    fn command(&mut self, line: &str) -> Result<(), Ending> {
        let verb = verb_of(line);
        let step = step_for(&verb);
        let over = self
            .s
            .rules
            .iter()
            .find(|r| r.take(line))
            .map(|r| r.reply.clone());
        if self.refused && verb != "QUIT" {
            let r = self.step_reply(
                step.clone(),
                over.unwrap_or("503 5.5.1 Error: no service".into()),
            );
            self.respond(step, &r)?;
            return Ok(());
        }
        let arg = line.get(verb.len()..).unwrap_or("").trim();
        match verb.as_str() {
            "EHLO" | "LHLO" | "HELO" => self.hello(&verb, arg, over),
            "STARTTLS" => self.starttls(over),
            "AUTH" => self.auth(arg, over),
            "MAIL" => self.mail(line, over),
            "RCPT" => self.rcpt(line, over),
            "DATA" => self.data(over),
            "BDAT" => self.bdat(arg, over),
            "QUIT" => {
                let r = self.step_reply(Step::Quit, over.unwrap_or("221 2.0.0 Bye".into()));
                self.respond(Step::Quit, &r)?;
                self.c.close_gracefully();
                Err(Ending::Quit)
            }
            _ => {
                let default = match verb.as_str() {
                    "RSET" => {
                        self.txn = None;
                        OK
                    }
                    "NOOP" => OK,
                    "VRFY" => "252 2.1.5 Cannot VRFY user, but will accept message",
                    "EXPN" => "502 5.5.1 EXPN not supported",
                    "HELP" => "214 2.0.0 scripted test server, see RFC 5321",
                    _ => "500 5.5.2 Error: command not recognized",
                };
                let r = self.step_reply(step.clone(), over.unwrap_or(default.into()));
                self.respond(step, &r)?;
                Ok(())
            }
        }
    }

    /// The EHLO/LHLO capability lines for the current state.
    fn caps(&self) -> Vec<String> {
        let tls = self.c.is_tls();
        let hide_auth = self.s.require_tls_for_auth && !tls;
        let mut caps: Vec<String> = self
            .s
            .caps
            .iter()
            .filter(|c| !(tls && c.eq_ignore_ascii_case("STARTTLS")))
            .filter(|c| !(hide_auth && starts_with_ignore_case(c, "AUTH")))
            .cloned()
            .collect();
        if self.s.starttls && !tls && !caps.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")) {
            caps.push("STARTTLS".into());
        }
        let has_auth = self
            .s
            .caps
            .iter()
            .any(|c| starts_with_ignore_case(c, "AUTH "));
        if matches!(self.s.auth, Some(AuthMode::Accept { .. })) && !has_auth && !hide_auth {
            caps.push(BUILTIN_AUTH_MECHANISMS.into());
        }
        caps
    }

    /// Mechanisms currently advertised.
    fn mechanisms(&self) -> Vec<String> {
        self.caps()
            .iter()
            .filter(|c| starts_with_ignore_case(c, "AUTH "))
            .flat_map(|c| c[5..].split_whitespace().map(|m| m.to_ascii_uppercase()))
            .collect()
    }

    fn hello(&mut self, verb: &str, arg: &str, over: Option<String>) -> Result<(), Ending> {
        let step = step_for(verb);
        let default = if self.s.lmtp != (verb == "LHLO") {
            if self.s.lmtp {
                "500 5.5.1 Error: this is LMTP, use LHLO".to_string()
            } else {
                "500 5.5.2 Error: command not recognized".to_string()
            }
        } else if arg.is_empty() {
            format!("501 5.5.4 Syntax: {verb} hostname")
        } else if verb == "HELO" {
            "250 scripted".to_string()
        } else if let Some(r) = &self.s.ehlo_reply {
            r.clone()
        } else {
            let mut lines = vec![format!("scripted greets {arg}")];
            lines.extend(self.caps());
            let last = lines.len() - 1;
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let r = self.step_reply(step.clone(), over.unwrap_or(default));
        if positive(&r) {
            self.greeted = true;
            self.ehlo = verb != "HELO";
            self.txn = None;
        }
        self.respond(step, &r)?;
        Ok(())
    }

    fn starttls(&mut self, over: Option<String>) -> Result<(), Ending> {
        let tls = self.c.is_tls();
        let default = if !self.s.starttls {
            "502 5.5.1 Error: command not implemented"
        } else if tls {
            "554 5.5.1 Error: TLS already active"
        } else {
            "220 2.0.0 Ready to start TLS"
        };
        let r = self.step_reply(Step::StartTls, over.unwrap_or(default.into()));
        let upgrade = code(&r) == 220 && !tls;
        if upgrade {
            let early = self.c.discard_buffered();
            self.c.t.discarded_after_starttls.extend(early);
        }
        self.respond(Step::StartTls, &r)?;
        if upgrade {
            let inject = self.s.inject_after_starttls.clone();
            if !inject.is_empty() {
                self.c.queue(&inject);
            }
            self.c.handshake()?;
            self.greeted = false;
            self.ehlo = false;
            self.authenticated = false;
            self.txn = None;
        }
        Ok(())
    }

    fn auth(&mut self, arg: &str, over: Option<String>) -> Result<(), Ending> {
        let mut parts = arg.split_whitespace();
        let mech = parts.next().unwrap_or("").to_ascii_uppercase();
        let initial = parts.next().map(str::to_string);
        let refusal = if !self.ehlo {
            Some("503 5.5.1 Error: send EHLO first")
        } else if self.authenticated {
            Some("503 5.5.1 Error: already authenticated")
        } else if self.txn.is_some() {
            Some("503 5.5.1 Error: MAIL transaction in progress")
        } else if self.s.auth.is_none() {
            Some("502 5.5.1 Error: authentication not enabled")
        } else if self.s.require_tls_for_auth && !self.c.is_tls() {
            Some("530 5.7.0 Must issue a STARTTLS command first")
        } else if mech.is_empty() {
            Some("501 5.5.4 Syntax: AUTH mechanism")
        } else if !self.mechanisms().contains(&mech) {
            Some(AUTH_UNKNOWN_MECH)
        } else {
            None
        };
        let result = match (over, refusal) {
            (Some(o), _) => o,
            (None, Some(r)) => r.to_string(),
            (None, None) => {
                let mode = self.s.auth.clone().expect("checked above");
                let mut ex = AuthExchange {
                    conn: &mut *self.c,
                    mechanism: mech,
                    initial,
                };
                let r = match mode {
                    AuthMode::Accept { user, pass } => builtin_auth(&mut ex, &user, &pass),
                    AuthMode::Custom(f) => f(&mut ex),
                };
                if let Some(end) = self.c.end.take() {
                    return Err(end);
                }
                r
            }
        };
        let r = self.step_reply(Step::Auth, result);
        if code(&r) == 235 {
            self.authenticated = true;
            self.c.t.authenticated = true;
        }
        self.respond(Step::Auth, &r)?;
        Ok(())
    }

    fn mail(&mut self, line: &str, over: Option<String>) -> Result<(), Ending> {
        let arg = line.get(10..).unwrap_or("");
        let limit = self.size_limit();
        let default = if !self.greeted {
            "503 5.5.1 Error: send HELO/EHLO first"
        } else if self.txn.is_some() {
            "503 5.5.1 Error: nested MAIL command"
        } else if !starts_with_ignore_case(line, "MAIL FROM:") || !arg.trim_start().starts_with('<')
        {
            "501 5.5.4 Syntax: MAIL FROM:<address>"
        } else if limit.is_some_and(|l| size_param(arg).is_some_and(|s| s > l)) {
            "552 5.3.4 Message size exceeds fixed limit"
        } else {
            "250 2.1.0 Ok"
        };
        let r = self.step_reply(Step::Mail, over.unwrap_or(default.into()));
        if positive(&r) {
            self.txn = Some(Txn {
                mail_from: arg.to_string(),
                ..Txn::default()
            });
        }
        self.respond(Step::Mail, &r)?;
        Ok(())
    }

    fn rcpt(&mut self, line: &str, over: Option<String>) -> Result<(), Ending> {
        let arg = line.get(8..).unwrap_or("");
        let default = if self.txn.is_none() {
            "503 5.5.1 Error: need MAIL command"
        } else if !starts_with_ignore_case(line, "RCPT TO:") || !arg.trim_start().starts_with('<') {
            "501 5.5.4 Syntax: RCPT TO:<address>"
        } else {
            "250 2.1.5 Ok"
        };
        let r = self.step_reply(Step::Rcpt, over.unwrap_or(default.into()));
        if let Some(txn) = &mut self.txn {
            if positive(&r) {
                txn.rcpts.push(arg.to_string());
            } else {
                txn.refused.push(arg.to_string());
            }
        }
        self.respond(Step::Rcpt, &r)?;
        Ok(())
    }

    /// The SIZE limit advertised in the caps (`None`: no limit).
    fn size_limit(&self) -> Option<u64> {
        self.s
            .caps
            .iter()
            .find(|c| starts_with_ignore_case(c, "SIZE"))
            .and_then(|c| c[4..].trim().parse().ok())
            .filter(|&l| l > 0)
    }

    fn no_valid_txn(&self) -> Option<&'static str> {
        match &self.txn {
            None => Some("503 5.5.1 Error: need MAIL command"),
            Some(t) if t.rcpts.is_empty() => Some("554 5.5.1 Error: no valid recipients"),
            _ => None,
        }
    }

    fn new_message(&mut self, txn: &Txn, bdat: bool) -> usize {
        self.c.t.messages.push(Message {
            mail_from: txn.mail_from.clone(),
            rcpt_to: txn.rcpts.clone(),
            rcpt_refused: txn.refused.clone(),
            bdat_chunks: bdat.then(Vec::new),
            tls: self.c.is_tls(),
            ..Message::default()
        });
        self.messages += 1;
        self.c.t.messages.len() - 1
    }

    fn note_flight(&mut self, idx: usize) {
        let f = self.c.flight();
        let m = &mut self.c.t.messages[idx];
        if !m.data_flights.contains(&f) {
            m.data_flights.push(f);
        }
    }

    fn data(&mut self, over: Option<String>) -> Result<(), Ending> {
        let default = self
            .no_valid_txn()
            .unwrap_or("354 End data with <CR><LF>.<CR><LF>");
        let r = self.step_reply(Step::Data, over.unwrap_or(default.into()));
        self.respond(Step::Data, &r)?;
        if !(300..400).contains(&code(&r)) {
            return Ok(());
        }
        let txn = self.txn.take().unwrap_or_default();
        let idx = self.new_message(&txn, false);
        let mut fired = HashSet::new();
        let mut at_line_start = true;
        loop {
            let line = self.c.raw_line(MAX_BUFFER)?;
            self.note_flight(idx);
            if at_line_start && line == b".\r\n" {
                break;
            }
            let m = &mut self.c.t.messages[idx];
            m.wire.extend_from_slice(&line);
            let unstuffed = if at_line_start && line.starts_with(b".") {
                &line[1..]
            } else {
                &line[..]
            };
            m.content.extend_from_slice(unstuffed);
            at_line_start = line.ends_with(b"\r\n");
            let received = m.wire.len();
            if received > MAX_BUFFER {
                return Err(Ending::Error(format!("message over {MAX_BUFFER} bytes")));
            }
            self.data_progress(received, &mut fired)?;
        }
        self.c.t.messages[idx].completed = true;
        self.end_of_data(idx, &txn, None)
    }

    fn bdat(&mut self, arg: &str, over: Option<String>) -> Result<(), Ending> {
        let mut words = arg.split_whitespace();
        let size = words.next().and_then(|n| n.parse::<usize>().ok());
        let last = match words.next() {
            None => Some(false),
            Some(w) if w.eq_ignore_ascii_case("LAST") => Some(true),
            Some(_) => None,
        };
        let (Some(size), Some(last), None) = (size, last, words.next()) else {
            let r = self.step_reply(
                Step::Bdat,
                over.unwrap_or("501 5.5.4 Syntax: BDAT count [LAST]".into()),
            );
            self.respond(Step::Bdat, &r)?;
            return Ok(());
        };
        if size > MAX_BUFFER {
            return Err(Ending::Error(format!("BDAT chunk over {MAX_BUFFER} bytes")));
        }
        let refusal = self.no_valid_txn();
        // The chunk follows the command at once (RFC 3030), accepted or not.
        let idx = match (refusal, self.txn.as_ref().and_then(|t| t.bdat_msg)) {
            (Some(_), _) => None,
            (None, Some(idx)) => Some(idx),
            (None, None) => {
                let txn = self.txn.take().unwrap_or_default();
                let idx = self.new_message(&txn, true);
                self.txn = Some(Txn {
                    bdat_msg: Some(idx),
                    ..txn
                });
                Some(idx)
            }
        };
        let mut fired = self
            .txn
            .as_mut()
            .map(|t| std::mem::take(&mut t.bdat_fired))
            .unwrap_or_default();
        let mut remaining = size;
        while remaining > 0 {
            let piece = self.c.take_up_to(remaining)?;
            remaining -= piece.len();
            if let Some(idx) = idx {
                self.note_flight(idx);
                let m = &mut self.c.t.messages[idx];
                m.wire.extend_from_slice(&piece);
                m.content.extend_from_slice(&piece);
                let received = m.wire.len();
                if received > MAX_BUFFER {
                    return Err(Ending::Error(format!("message over {MAX_BUFFER} bytes")));
                }
                self.data_progress(received, &mut fired)?;
            }
        }
        if let Some(t) = self.txn.as_mut() {
            t.bdat_fired = fired;
        }
        let Some(idx) = idx else {
            let r = self.step_reply(Step::Bdat, over.unwrap_or(refusal.unwrap_or(OK).into()));
            self.respond(Step::Bdat, &r)?;
            return Ok(());
        };
        if let Some(chunks) = &mut self.c.t.messages[idx].bdat_chunks {
            chunks.push(size);
        }
        if last {
            let txn = self.txn.take().unwrap_or_default();
            self.c.t.messages[idx].completed = true;
            return self.end_of_data(idx, &txn, over);
        }
        let default = format!("250 2.0.0 {size} octets received");
        let r = self.step_reply(Step::Bdat, over.unwrap_or(default));
        self.respond(Step::Bdat, &r)?;
        if !positive(&r) {
            // A refused chunk ends the transaction; later chunks get 503.
            self.txn = None;
            self.c.t.messages[idx].replies.push(r);
        }
        Ok(())
    }

    /// The reply (SMTP) or replies (LMTP) after the end of the data.
    fn end_of_data(&mut self, idx: usize, txn: &Txn, over: Option<String>) -> Result<(), Ending> {
        let too_big = self
            .size_limit()
            .is_some_and(|l| self.c.t.messages[idx].content.len() as u64 > l);
        let default = if too_big {
            "552 5.3.4 Message size exceeds fixed limit".to_string()
        } else if self.s.lmtp {
            String::new()
        } else {
            format!("250 2.0.0 Ok: queued as S{}", self.messages)
        };
        let r = self.step_reply(Step::EndOfData, over.unwrap_or(default));
        if !self.s.lmtp {
            self.respond(Step::EndOfData, &r)?;
            let m = &mut self.c.t.messages[idx];
            m.accepted = positive(&r);
            m.replies.push(r);
            return Ok(());
        }
        // LMTP: the EndOfData faults first, then one reply per recipient.
        if self.respond(Step::EndOfData, "")? == Sent::Replaced {
            return Ok(());
        }
        for rcpt in &txn.rcpts {
            let addr = rcpt.split_whitespace().next().unwrap_or("");
            let default = self
                .s
                .lmtp_replies
                .iter()
                .find(|(m, _)| m.matches(rcpt))
                .map(|(_, reply)| reply.clone())
                .unwrap_or_else(|| {
                    if r.is_empty() {
                        format!("250 2.1.5 {addr} delivered")
                    } else {
                        r.clone()
                    }
                });
            let reply = self.step_reply(Step::LmtpReply, default);
            self.respond(Step::LmtpReply, &reply)?;
            let m = &mut self.c.t.messages[idx];
            m.accepted |= positive(&reply);
            m.replies.push(reply);
        }
        Ok(())
    }
}

/// The built-in PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195) and XOAUTH2
/// exchanges, accepting exactly `user`/`pass`.
fn builtin_auth(ex: &mut AuthExchange, user: &str, pass: &str) -> String {
    builtin_exchange(ex, user, pass).unwrap_or_else(|refusal| refusal)
}

/// Send a challenge and decode the answer; `Err` is the reply that ends
/// the exchange (cancelled or undecodable).
fn ask(ex: &mut AuthExchange, text: &str) -> Result<Vec<u8>, String> {
    let line = ex.challenge(text).ok_or(AUTH_CANCELLED)?;
    if line == "*" {
        return Err(AUTH_CANCELLED.into());
    }
    AuthExchange::decode(&line).ok_or_else(|| AUTH_UNDECODABLE.into())
}

/// The initial response if the client sent one, else ask with an empty 334.
fn first_response(ex: &mut AuthExchange) -> Result<Vec<u8>, String> {
    match ex.initial_response().map(str::to_string) {
        Some(i) if i == "*" => Err(AUTH_CANCELLED.into()),
        Some(i) => AuthExchange::decode(&i).ok_or_else(|| AUTH_UNDECODABLE.into()),
        None => ask(ex, ""),
    }
}

fn verdict(ok: bool) -> String {
    if ok { AUTH_OK } else { AUTH_BAD }.to_string()
}

fn builtin_exchange(ex: &mut AuthExchange, user: &str, pass: &str) -> Result<String, String> {
    match ex.mechanism().to_string().as_str() {
        "PLAIN" => {
            let resp = first_response(ex)?;
            let parts: Vec<&[u8]> = resp.split(|&b| b == 0).collect();
            Ok(verdict(
                parts.len() == 3 && parts[1] == user.as_bytes() && parts[2] == pass.as_bytes(),
            ))
        }
        "LOGIN" => {
            let u = match ex.initial_response() {
                Some(_) => first_response(ex)?,
                None => ask(ex, "VXNlcm5hbWU6")?,
            };
            let p = ask(ex, "UGFzc3dvcmQ6")?;
            Ok(verdict(u == user.as_bytes() && p == pass.as_bytes()))
        }
        "CRAM-MD5" => {
            if ex.initial_response().is_some() {
                return Err(AUTH_UNDECODABLE.into());
            }
            let nonce = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let challenge = format!("<{}.{nonce}@scripted>", std::process::id());
            let resp = ask(ex, &AuthExchange::encode(challenge.as_bytes()))?;
            let resp = String::from_utf8_lossy(&resp).into_owned();
            let (u, digest) = resp.rsplit_once(' ').unwrap_or(("", ""));
            Ok(verdict(u == user && digest == cram_md5(pass, &challenge)))
        }
        "XOAUTH2" => {
            let resp = first_response(ex)?;
            let expected = format!("user={user}\x01auth=Bearer {pass}\x01\x01");
            if resp == expected.as_bytes() {
                return Ok(AUTH_OK.into());
            }
            // RFC-less Google convention: a 334 with a JSON error, then the
            // client's empty line, then the failure.
            let error =
                br#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
            ex.challenge(&AuthExchange::encode(error));
            Ok(AUTH_BAD.into())
        }
        _ => Ok(AUTH_UNKNOWN_MECH.into()),
    }
}

/// Lowercase hex HMAC-MD5 of `challenge` keyed with `secret` (RFC 2195).
pub fn cram_md5(secret: &str, challenge: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<md5::Md5>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(challenge.as_bytes());
    super::tls::hex(&mac.finalize().into_bytes())
}
