//! One delivery, whatever the path: the direct send (`--no-queue`, an
//! unwritable spool), the first attempt after spooling, every try of a
//! queue run (`-q`) and each message of `-bs` all call [`deliver`].
//!
//! It splits the recipients into local and remote by the one rule in
//! [`super::local`], delivers the local ones into their mailboxes ([`local::deliver`]), and
//! hands the remote ones to the relay over a session from [`Sessions`]
//! (opened on first use with failover across the profile's hosts, kept
//! for the next message of the same profile). What becomes of each
//! recipient is an [`Outcome`]: delivered, refused by the relay with its
//! reply, or failed with a [`Failure`] that says whether trying again can
//! help ([`Failure::permanent`]).
//!
//! It decides nothing about keeping the message: the caller that spooled
//! it records the outcome in the queue ([`super::queued`]), the caller
//! that did not turns it into an exit status ([`Outcome::into_result`]).

use std::collections::HashMap;
use std::path::PathBuf;

use super::input::TempMessage;
use super::{DebugSink, Failure, Report, SharedSink, local, relay};
use crate::config::Profile;
use crate::exit::Sysexit;
use crate::log::Status;
use crate::queue::Locked;
use crate::smtp::{BodyInfo, Envelope, Error, Reply, SendOptions, Smtp, Source};

/// A message that can be read from the start as often as needed: a
/// temporary copy, or a queue entry.
pub trait Body {
    fn info(&self) -> BodyInfo;
    /// A reader positioned at the first byte, that can seek back: the
    /// engine rereads it for a further transaction when the relay defers
    /// recipients with 452 (too many recipients).
    fn reader(&mut self) -> Result<Box<dyn Source + '_>, Failure>;
}

impl Body for TempMessage {
    fn info(&self) -> BodyInfo {
        self.info
    }
    fn reader(&mut self) -> Result<Box<dyn Source + '_>, Failure> {
        let r = TempMessage::reader(self)
            .map_err(|e| Failure::new(Sysexit::IoErr, format!("cannot reread the message: {e}")))?;
        Ok(Box::new(r))
    }
}

impl Body for Locked {
    fn info(&self) -> BodyInfo {
        Locked::info(self)
    }
    fn reader(&mut self) -> Result<Box<dyn Source + '_>, Failure> {
        Ok(Box::new(self.open()?))
    }
}

/// An open session to a relay.
struct Session {
    smtp: Smtp,
    host: String,
}

/// The relay sessions of one run, by profile name, kept open across
/// messages; every one still open gets its QUIT when this is dropped.
pub struct Sessions {
    open: HashMap<String, Session>,
    debug_level: u8,
    sink: SharedSink,
}

impl Sessions {
    /// `debug_level` 1 shows the conversation on `sink`, 2 with times.
    pub fn new(debug_level: u8, sink: DebugSink) -> Sessions {
        Sessions {
            open: HashMap::new(),
            debug_level,
            sink: SharedSink::new(sink),
        }
    }

    /// Whether a session for this profile is open (a queue run uses it
    /// to drain older messages).
    pub fn is_open(&self, profile: &Profile) -> bool {
        self.open
            .get(&profile.name)
            .is_some_and(|s| s.smtp.is_connected())
    }

    fn get(&mut self, p: &Profile) -> Result<&mut Session, Failure> {
        if !self.is_open(p) {
            self.open.remove(&p.name);
            let debug: Option<DebugSink> =
                (self.debug_level > 0).then(|| Box::new(self.sink.clone()) as DebugSink);
            let (smtp, host) = relay::open_session(p, self.debug_level, debug)?;
            self.open.insert(p.name.clone(), Session { smtp, host });
        }
        self.open
            .get_mut(&p.name)
            .ok_or_else(|| Failure::new(Sysexit::Software, "session lost"))
    }

    /// A writer for a transcript that is not a delivery (`--serverinfo`).
    pub(crate) fn sink(&self) -> SharedSink {
        self.sink.clone()
    }

    /// Drops the profile's session without a QUIT: after an internal
    /// error its state is unknown.
    pub fn discard(&mut self, p: &Profile) {
        if let Some(mut s) = self.open.remove(&p.name) {
            s.smtp.close();
        }
    }

    /// Sends QUIT on every open session.
    pub fn close(&mut self) {
        for (_, mut s) in self.open.drain() {
            if s.smtp.is_connected() {
                let _ = s.smtp.quit();
            }
        }
    }
}

impl Drop for Sessions {
    fn drop(&mut self) {
        self.close();
    }
}

/// What became of one recipient.
#[derive(Debug, Clone)]
pub enum Fate {
    Delivered,
    /// Refused by the relay at RCPT (or, in LMTP, after the data); the
    /// reply says whether for good.
    Refused(Reply),
    /// Not delivered: the relay could not be reached or refused the whole
    /// message, no relay is configured, the Maildir failed.
    Failed(Failure),
}

/// What became of one message.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every recipient, in envelope order, with its fate.
    pub recipients: Vec<(String, Fate)>,
    /// The mailboxes local recipients got (Maildir files, mboxes).
    pub mailboxes: Vec<PathBuf>,
    /// The relay that took it.
    pub relay: Option<String>,
    /// The relay's reply to the end of the data.
    pub reply: Option<String>,
    /// With no relay configured: the configuration file to set one in.
    pub no_relay: Option<String>,
}

impl Outcome {
    pub fn delivered(&self) -> Vec<String> {
        self.with(|f| matches!(f, Fate::Delivered))
    }

    /// The recipients the relay refused, with its replies.
    pub fn refused(&self) -> Vec<(String, Reply)> {
        self.recipients
            .iter()
            .filter_map(|(a, f)| match f {
                Fate::Refused(r) => Some((a.clone(), r.clone())),
                _ => None,
            })
            .collect()
    }

    /// The recipients that were tried (delivered or refused).
    pub fn attempted(&self) -> Vec<String> {
        self.with(|f| !matches!(f, Fate::Failed(_)))
    }

    /// The failures and whom they concern, the first failure first.
    pub fn failures(&self) -> Vec<(Vec<String>, Failure)> {
        let mut out: Vec<(Vec<String>, Failure)> = Vec::new();
        for (a, f) in &self.recipients {
            if let Fate::Failed(f) = f {
                match out.iter_mut().find(|(_, g)| g.message == f.message) {
                    Some((addrs, _)) => addrs.push(a.clone()),
                    None => out.push((vec![a.clone()], f.clone())),
                }
            }
        }
        out
    }

    fn with(&self, keep: impl Fn(&Fate) -> bool) -> Vec<String> {
        self.recipients
            .iter()
            .filter(|(_, f)| keep(f))
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// The outcome for a caller that keeps nothing (direct delivery, no
    /// spool): a report when every recipient was delivered or refused by
    /// the relay while some got it, else the failure. With `strict`, any
    /// refusal fails (EX_NOUSER).
    pub fn into_result(self, strict: bool) -> Result<Report, Failure> {
        let delivered = self.delivered();
        if let Some((_, f)) = self.failures().into_iter().next() {
            let mut f = f;
            if !delivered.is_empty() {
                f.message.push_str(&format!(
                    " (delivered to {})",
                    delivered
                        .iter()
                        .map(|a| format!("<{a}>"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            return Err(f);
        }
        let refused = self.refused();
        let notes = refusal_notes(&refused, self.relay.as_deref());
        if let Some(f) = refusal_failure(
            delivered.len(),
            &refused,
            &notes,
            strict,
            self.recipients.len(),
        ) {
            return Err(f);
        }
        let mut report = self.report();
        report.notices.extend(notes);
        Ok(report)
    }

    /// "delivered locally to ..." when some local recipient got it.
    pub fn local_notice(&self) -> Option<String> {
        (!self.mailboxes.is_empty()).then(|| {
            let places: Vec<String> = self
                .mailboxes
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let mut line = format!("delivered locally to {}", places.join(", "));
            if let Some(file) = &self.no_relay {
                line.push_str(&format!(
                    " (no relay configured: set host in {file} to send elsewhere)"
                ));
            }
            line
        })
    }

    /// The report of what was delivered (no refusals).
    pub fn report(&self) -> Report {
        let mut notices = Vec::new();
        notices.extend(self.local_notice());
        Report {
            notices,
            status: Some(if self.relay.is_some() {
                Status::Sent
            } else {
                Status::Local
            }),
            relay: self.relay.clone(),
            reply: self
                .reply
                .clone()
                .or_else(|| self.mailboxes.first().map(|p| p.display().to_string())),
            ..Report::default()
        }
    }
}

/// One line per refused recipient.
pub fn refusal_notes(refused: &[(String, Reply)], relay: Option<&str>) -> Vec<String> {
    refused
        .iter()
        .map(|(a, r)| match relay {
            Some(h) => format!("recipient <{a}> refused by {h}: {r}"),
            None => format!("recipient <{a}> refused: {r}"),
        })
        .collect()
}

/// The refusal rules, the same on every path: when nobody got the message
/// and the relay refused someone, EX_NOUSER (EX_TEMPFAIL when every
/// refusal was temporary); with `--strict-recipients` (`strict`), any
/// refusal is EX_NOUSER. `notes` describe the refusals.
pub fn refusal_failure(
    delivered: usize,
    refused: &[(String, Reply)],
    notes: &[String],
    strict: bool,
    total: usize,
) -> Option<Failure> {
    if refused.is_empty() {
        return None;
    }
    if delivered == 0 {
        let exit = if refused.iter().all(|(_, r)| r.is_transient()) {
            Sysexit::TempFail
        } else {
            Sysexit::NoUser
        };
        return Some(Failure::new(
            exit,
            format!("all recipients refused: {}", notes.join("; ")),
        ));
    }
    strict.then(|| {
        Failure::new(
            Sysexit::NoUser,
            format!(
                "{} of {total} recipients refused (--strict-recipients): {}",
                refused.len(),
                notes.join("; ")
            ),
        )
    })
}

/// Whether an error of a transaction (MAIL, RCPT, the data) refuses this
/// message for good, so that it is returned rather than kept: decided by
/// the error's variant, and only for the transaction (a session that
/// cannot be set up is a configuration or network matter: kept).
fn refuses_the_message(e: &Error) -> bool {
    !e.is_transient()
        && matches!(
            e,
            Error::SenderRefused { .. }
                | Error::RecipientsRefused(_)
                | Error::Data(_)
                | Error::MessageTooLarge { .. }
                | Error::InvalidInput(_)
                // Raised by send() only for what the message needs and the
                // relay lacks (SMTPUTF8, a non-ASCII local part).
                | Error::NotSupported(_)
        )
}

/// Delivers `body` to the envelope's recipients under profile `p`: local
/// ones into their mailboxes, remote ones through the relay. `quit_after`:
/// nothing else will be sent on this profile's session, so QUIT may ride
/// with the end of the data.
pub fn deliver(
    p: &Profile,
    envelope: &Envelope,
    body: &mut dyn Body,
    sessions: &mut Sessions,
    quit_after: bool,
) -> Outcome {
    let mut out = Outcome::default();
    let (local, remote): (Vec<String>, Vec<String>) = envelope
        .to
        .iter()
        .cloned()
        .partition(|a| local::is_local(a, p));
    let mut fates: HashMap<String, Fate> = HashMap::new();
    if p.hosts.is_empty() {
        out.no_relay = Some(crate::config::config_to_edit(
            &crate::config::LookupEnv::from_process(),
            dirs::home_dir().as_deref(),
        ));
    }

    for (a, r) in local::deliver(p, &envelope.from, &local, body) {
        let fate = match r {
            Ok(path) => {
                if !out.mailboxes.contains(&path) {
                    out.mailboxes.push(path);
                }
                Fate::Delivered
            }
            Err(f) => Fate::Failed(f),
        };
        fates.insert(a, fate);
    }

    if !remote.is_empty() {
        let mut fail = |f: Failure| {
            fates.extend(remote.iter().map(|a| (a.clone(), Fate::Failed(f.clone()))));
        };
        if p.hosts.is_empty() {
            fail(Failure::new(
                Sysexit::TempFail,
                "no relay configured: it is delivered by smtpsend -q once a relay is configured",
            ));
        } else {
            match relay_send(p, envelope, &remote, body, sessions, quit_after) {
                Ok((host, reply, refused)) => {
                    out.relay = Some(host);
                    out.reply = reply;
                    let refused: HashMap<String, Reply> = refused.into_iter().collect();
                    for a in &remote {
                        let fate = match refused.get(a) {
                            Some(r) => Fate::Refused(r.clone()),
                            None => Fate::Delivered,
                        };
                        fates.insert(a.clone(), fate);
                    }
                }
                Err((host, f)) => {
                    out.relay = host;
                    fail(f);
                }
            }
        }
    }
    out.recipients = envelope
        .to
        .iter()
        .map(|a| {
            let fate = fates.remove(a).unwrap_or_else(|| {
                Fate::Failed(Failure::new(Sysexit::Software, "recipient not tried"))
            });
            (a.clone(), fate)
        })
        .collect();
    out
}

type Sent = (String, Option<String>, Vec<(String, Reply)>);

/// The relay part: the remote recipients over the profile's session.
fn relay_send(
    p: &Profile,
    envelope: &Envelope,
    remote: &[String],
    body: &mut dyn Body,
    sessions: &mut Sessions,
    quit_after: bool,
) -> Result<Sent, (Option<String>, Failure)> {
    let session = sessions.get(p).map_err(|f| (None, f))?;
    let host = session.host.clone();
    let ctx = format!("relay {host}");
    let env = Envelope {
        to: remote.to_vec(),
        ..envelope.clone()
    };
    let info = body.info();
    let mut reader = body.reader().map_err(|f| (Some(host.clone()), f))?;
    let result = session.smtp.send(
        &env,
        &mut reader,
        SendOptions {
            info: Some(info),
            quit_after,
        },
    );
    let accepted = session.smtp.accepted_reply().map(Reply::to_string);
    match result {
        Ok(refused) => Ok((host, accepted, refused)),
        Err(Error::RecipientsRefused(refused)) => Ok((host, None, refused)),
        Err(e) => {
            let mut f = Failure::smtp(&ctx, &e);
            f.permanent = refuses_the_message(&e);
            Err((Some(host), f))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(code: u16) -> Reply {
        Reply::new(code, vec!["x".into()])
    }

    fn outcome(fates: &[(&str, Fate)]) -> Outcome {
        Outcome {
            recipients: fates
                .iter()
                .map(|(a, f)| (a.to_string(), f.clone()))
                .collect(),
            relay: Some("relay".into()),
            ..Outcome::default()
        }
    }

    #[test]
    fn all_delivered_is_a_report() {
        let o = outcome(&[("a", Fate::Delivered), ("b", Fate::Delivered)]);
        let rep = o.into_result(true).unwrap();
        assert_eq!(rep.status, Some(Status::Sent));
        assert!(rep.notices.is_empty());
    }

    #[test]
    fn a_partial_refusal_is_a_notice_or_with_strict_ex_nouser() {
        let fates = [("a", Fate::Delivered), ("b", Fate::Refused(r(550)))];
        let rep = outcome(&fates).into_result(false).unwrap();
        assert_eq!(rep.notices, ["recipient <b> refused by relay: 550 x"]);
        let f = outcome(&fates).into_result(true).unwrap_err();
        assert_eq!(f.exit, Sysexit::NoUser);
        assert!(f.message.contains("1 of 2"), "{}", f.message);
    }

    #[test]
    fn every_recipient_refused() {
        let f = outcome(&[("a", Fate::Refused(r(550))), ("b", Fate::Refused(r(450)))])
            .into_result(false)
            .unwrap_err();
        assert_eq!(f.exit, Sysexit::NoUser);
        let f = outcome(&[("a", Fate::Refused(r(450)))])
            .into_result(false)
            .unwrap_err();
        assert_eq!(f.exit, Sysexit::TempFail);
    }

    #[test]
    fn a_failure_wins_and_names_who_got_it() {
        let down = Failure::new(Sysexit::TempFail, "relay down");
        let f = outcome(&[("a", Fate::Delivered), ("b", Fate::Failed(down))])
            .into_result(false)
            .unwrap_err();
        assert_eq!(f.exit, Sysexit::TempFail);
        assert_eq!(f.message, "relay down (delivered to <a>)");
    }

    #[test]
    fn failures_are_grouped() {
        let down = Failure::new(Sysexit::TempFail, "relay down");
        let md = Failure::new(Sysexit::CantCreate, "maildir");
        let o = outcome(&[
            ("a", Fate::Failed(md.clone())),
            ("b", Fate::Failed(down.clone())),
            ("c", Fate::Failed(down)),
            ("d", Fate::Refused(r(550))),
        ]);
        let g = o.failures();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0, ["a"]);
        assert_eq!(g[1].0, ["b", "c"]);
        assert_eq!(o.attempted(), ["d"]);
    }

    #[test]
    fn what_refuses_a_message_is_decided_by_variant() {
        assert!(refuses_the_message(&Error::Data(r(554))));
        assert!(!refuses_the_message(&Error::Data(r(451))));
        assert!(refuses_the_message(&Error::SenderRefused {
            reply: r(553),
            sender: "a".into()
        }));
        assert!(refuses_the_message(&Error::NotSupported("SMTPUTF8".into())));
        assert!(refuses_the_message(&Error::MessageTooLarge {
            size: 2,
            limit: 1
        }));
        assert!(!refuses_the_message(&Error::Timeout(5)));
        assert!(!refuses_the_message(&Error::Protocol("x".into())));
        assert!(!refuses_the_message(&Error::Tls("x".into())));
    }

    #[test]
    fn no_relay_fails_remote_and_delivers_local() {
        let dir = tempfile::tempdir().unwrap();
        let p = Profile {
            maildir: Some(dir.path().join("Maildir")),
            ..Profile::default()
        };
        let env = Envelope {
            from: "a@x".into(),
            to: vec![
                "root".into(),
                "root@localhost".into(),
                "far@example.net".into(),
            ],
            ..Envelope::default()
        };
        let mut body = TempMessage::from_reader(&mut &b"Subject: x\n\nx\n"[..]).unwrap();
        let mut sessions = Sessions::new(0, Box::new(std::io::sink()));
        let o = deliver(&p, &env, &mut body, &mut sessions, true);
        assert_eq!(o.delivered(), ["root", "root@localhost"]);
        let f = o.failures();
        assert_eq!(f[0].0, ["far@example.net"]);
        assert_eq!(f[0].1.exit, Sysexit::TempFail);
        assert!(!f[0].1.permanent);
        assert_eq!(o.mailboxes.len(), 1);
    }
}
