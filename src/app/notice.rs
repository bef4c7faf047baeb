//! Bounce and delay notices to the local sender, like Postfix's: when a
//! queued message is returned for good (a 5xx refusal, or `queue_lifetime`
//! ran out) the user whose queue holds it gets "Undelivered Mail Returned
//! to Sender" in their own mailbox, besides the dead.letter copy; when it
//! has waited longer than `delay_warning_time`, one "Delayed Mail (still
//! being retried)" (recorded in the entry, so never twice).
//!
//! A notice is a `multipart/report` (RFC 6522) with a plain-text part, a
//! `message/delivery-status` part (RFC 3464) naming each recipient with
//! the relay's reply, and the original headers (`text/rfc822-headers`,
//! never the body). Its envelope sender is null (`<>`), and a message
//! whose own sender is null never gets one: no notice about a notice.
//!
//! It goes through the one local delivery ([`super::local::deliver`]) to
//! the running user's mailbox. If that fails, the caller gets a line
//! saying so and carries on: the original entry is never held up by its
//! notice.

use std::io::{Cursor, Read};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::Failure;
use super::deliver::Body;
use crate::config::Profile;
use crate::exit::Sysexit;
use crate::message::DateStamp;
use crate::queue::{Locked, files, owner};
use crate::smtp::{BodyInfo, Source};

/// The most of the original message's header a notice quotes.
pub const HEADERS_MAX: u64 = 64 * 1024;

/// Which notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Returned for good.
    Bounce,
    /// Still being retried.
    Delay,
}

/// What a notice says.
#[derive(Debug)]
pub struct Notice<'a> {
    pub kind: Kind,
    /// The user it goes to.
    pub to: &'a str,
    /// This machine's name.
    pub host: &'a str,
    pub queue_id: &'a str,
    /// When the message was queued.
    pub arrival: SystemTime,
    /// Each recipient concerned, with the reply or reason.
    pub recipients: &'a [(String, String)],
    /// Where the copy of the returned message is.
    pub dead_letter: Option<&'a Path>,
    /// Until when a delayed message is retried.
    pub retry_until: Option<SystemTime>,
    /// The original message's header.
    pub headers: &'a [u8],
    pub date: DateStamp,
}

fn stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DateStamp {
        unix_seconds: i64::try_from(secs).unwrap_or(i64::MAX),
        utc_offset_seconds: 0,
    }
    .to_rfc5322()
}

/// One line: no CR, LF or other control characters.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The enhanced status code (RFC 3463) in a reply, else the kind's
/// generic one.
fn status_of(reason: &str, kind: Kind) -> String {
    let found = reason.split_whitespace().find(|w| {
        let parts: Vec<&str> = w.split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    });
    match (found, kind) {
        (Some(s), _) => s.to_owned(),
        (None, Kind::Bounce) => "5.0.0".into(),
        (None, Kind::Delay) => "4.0.0".into(),
    }
}

impl Notice<'_> {
    /// The subject line.
    pub fn subject(&self) -> &'static str {
        match self.kind {
            Kind::Bounce => "Undelivered Mail Returned to Sender",
            Kind::Delay => "Delayed Mail (still being retried)",
        }
    }

    /// The whole message, LF line ends.
    pub fn render(&self) -> Vec<u8> {
        let boundary = format!("=_smtpsend_notice_{}", self.queue_id);
        let mut m = String::new();
        m.push_str(&format!(
            "From: Mail Delivery System <MAILER-DAEMON@{}>\n",
            self.host
        ));
        m.push_str(&format!("To: {}\n", self.to));
        m.push_str(&format!("Subject: {}\n", self.subject()));
        m.push_str(&format!("Date: {}\n", self.date.to_rfc5322()));
        m.push_str("Auto-Submitted: auto-replied\n");
        m.push_str("MIME-Version: 1.0\n");
        m.push_str(&format!(
            "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n\n"
        ));
        m.push_str("This is a MIME-encapsulated message.\n\n");
        m.push_str(&format!(
            "--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n"
        ));
        m.push_str(&format!("This is smtpsend on {}.\n\n", self.host));
        match self.kind {
            Kind::Bounce => m.push_str(&format!(
                "Your message (queue ID {}) could not be delivered to the\nrecipients below; it has been returned.\n",
                self.queue_id
            )),
            Kind::Delay => m.push_str(&format!(
                "Your message (queue ID {}) has not yet been delivered to the\nrecipients below. It is still being retried{}; no action is needed.\n",
                self.queue_id,
                self.retry_until
                    .map(|t| format!(" until {}", stamp(t)))
                    .unwrap_or_default()
            )),
        }
        m.push('\n');
        for (a, r) in self.recipients {
            m.push_str(&format!("<{}>: {}\n", one_line(a), one_line(r)));
        }
        if let Some(p) = self.dead_letter {
            m.push_str(&format!(
                "\nA copy of the whole message is in {}.\n",
                p.display()
            ));
        }
        m.push_str(&format!(
            "\n--{boundary}\nContent-Type: message/delivery-status\n\n"
        ));
        m.push_str(&format!("Reporting-MTA: dns; {}\n", self.host));
        m.push_str(&format!("X-Smtpsend-Queue-ID: {}\n", self.queue_id));
        m.push_str(&format!("Arrival-Date: {}\n", stamp(self.arrival)));
        for (a, r) in self.recipients {
            m.push_str(&format!(
                "\nFinal-Recipient: rfc822; {}\nAction: {}\nStatus: {}\nDiagnostic-Code: smtp; {}\n",
                one_line(a),
                match self.kind {
                    Kind::Bounce => "failed",
                    Kind::Delay => "delayed",
                },
                status_of(r, self.kind),
                one_line(r)
            ));
            if let Some(t) = self.retry_until.filter(|_| self.kind == Kind::Delay) {
                m.push_str(&format!("Will-Retry-Until: {}\n", stamp(t)));
            }
        }
        m.push_str(&format!(
            "\n--{boundary}\nContent-Type: text/rfc822-headers\n\n"
        ));
        let mut out = m.into_bytes();
        out.extend_from_slice(self.headers);
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
        out
    }
}

/// The header of a message: up to the first empty line, at most
/// [`HEADERS_MAX`] bytes, LF line ends.
pub fn header_of(r: impl Read) -> Vec<u8> {
    let mut raw = Vec::new();
    if r.take(HEADERS_MAX).read_to_end(&mut raw).is_err() {
        return raw;
    }
    let text: Vec<u8> = raw.into_iter().filter(|&b| b != b'\r').collect();
    let end = text
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(text.len(), |i| i + 1);
    text[..end].to_vec()
}

/// A notice as a [`Body`] for local delivery.
struct Text(Vec<u8>);

impl Body for Text {
    fn info(&self) -> BodyInfo {
        BodyInfo {
            size: self.0.len() as u64,
            eight_bit: !self.0.is_ascii(),
        }
    }
    fn reader(&mut self) -> Result<Box<dyn Source + '_>, Failure> {
        Ok(Box::new(Cursor::new(&self.0[..])))
    }
}

/// Delivers a notice for `msg` to the running user's own mailbox, with
/// the null sender. `None` when it was delivered or is not due (the
/// message's sender is null); else a line saying why it was not.
fn send(
    p: &Profile,
    msg: &Locked,
    kind: Kind,
    recipients: &[(String, String)],
    dead_letter: Option<&Path>,
) -> Option<String> {
    let meta = msg.meta();
    if meta.sender.is_empty() || recipients.is_empty() {
        return None;
    }
    let user = match owner::account(files::euid()) {
        Ok(a) => a.name,
        Err(e) => return Some(format!("no notice sent: this user is unknown ({e})")),
    };
    let host = crate::hostname::fqdn()
        .or_else(crate::hostname::short)
        .unwrap_or_else(|| "localhost".into());
    let headers = msg.open().map(header_of).unwrap_or_default();
    let notice = Notice {
        kind,
        to: &user,
        host: &host,
        queue_id: msg.id().as_str(),
        arrival: meta.created,
        recipients,
        dead_letter,
        retry_until: meta.created.checked_add(p.queue_lifetime),
        headers: &headers,
        date: DateStamp::now_local(),
    };
    let mut body = Text(notice.render());
    let to = [user.clone()];
    match super::local::deliver(p, "", &to, &mut body)
        .into_iter()
        .next()
    {
        Some((_, Ok(_))) => None,
        Some((_, Err(f))) => Some(format!(
            "the {} notice to {user} was not delivered: {}",
            match kind {
                Kind::Bounce => "bounce",
                Kind::Delay => "delay",
            },
            f.message
        )),
        None => Some(Failure::new(Sysexit::Software, "no notice delivered").message),
    }
}

/// The bounce notice for recipients returned to dead.letter (`path`).
pub fn bounced(
    p: &Profile,
    msg: &Locked,
    failed: &[(String, String)],
    path: &Path,
) -> Option<String> {
    send(p, msg, Kind::Bounce, failed, Some(path))
}

/// Whether a deferred message is due its one delay notice.
pub fn delay_due(p: &Profile, msg: &Locked, now: SystemTime) -> bool {
    let meta = msg.meta();
    let Some(after) = p.delay_warning_time else {
        return false;
    };
    !meta.sender.is_empty()
        && meta.delay_notice.is_none()
        && now.duration_since(meta.created).unwrap_or(Duration::ZERO) >= after
}

/// Sends the delay notice when due and records it in the entry; a line
/// when it could not be sent (it is tried again on the next attempt).
pub fn delayed(p: &Profile, msg: &mut Locked, now: SystemTime) -> Option<String> {
    if !delay_due(p, msg, now) {
        return None;
    }
    let reason = msg.meta().last_error.clone().unwrap_or_default();
    let pending: Vec<(String, String)> = msg
        .meta()
        .recipients
        .iter()
        .filter(|r| r.state == crate::queue::RecipientState::Pending)
        .map(|r| {
            let why = r.reply.clone().unwrap_or_else(|| reason.clone());
            (r.address.clone(), why)
        })
        .collect();
    if let Some(n) = send(p, msg, Kind::Delay, &pending, None) {
        return Some(n);
    }
    msg.note_delay_notice(now)
        .err()
        .map(|e| format!("the delay notice was sent but not recorded: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: Kind) -> Vec<u8> {
        let recipients = vec![(
            "gone@example.org".to_owned(),
            "550 5.1.1 <gone@example.org>: no such user".to_owned(),
        )];
        Notice {
            kind,
            to: "alice",
            host: "box.example",
            queue_id: "ABC123",
            arrival: SystemTime::UNIX_EPOCH,
            recipients: &recipients,
            dead_letter: (kind == Kind::Bounce).then_some(Path::new("/home/alice/dead.letter")),
            retry_until: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(86400)),
            headers: b"From: alice@box.example\nSubject: hello\n",
            date: DateStamp {
                unix_seconds: 0,
                utc_offset_seconds: 0,
            },
        }
        .render()
    }

    #[test]
    fn a_bounce_names_the_recipient_reply_queue_id_and_dead_letter() {
        let t = String::from_utf8(sample(Kind::Bounce)).unwrap();
        assert!(
            t.starts_with("From: Mail Delivery System <MAILER-DAEMON@box.example>\nTo: alice\nSubject: Undelivered Mail Returned to Sender\n"),
            "{t}"
        );
        assert!(t.contains("report-type=delivery-status"), "{t}");
        assert!(
            t.contains("<gone@example.org>: 550 5.1.1 <gone@example.org>: no such user\n"),
            "{t}"
        );
        assert!(t.contains("queue ID ABC123"), "{t}");
        assert!(t.contains("/home/alice/dead.letter"), "{t}");
        assert!(t.contains("Action: failed\nStatus: 5.1.1\n"), "{t}");
        assert!(
            t.contains(
                "Content-Type: text/rfc822-headers\n\nFrom: alice@box.example\nSubject: hello\n"
            ),
            "{t}"
        );
        assert!(t.ends_with("\n--=_smtpsend_notice_ABC123--\n"), "{t}");
        assert!(!t.contains("Will-Retry-Until"), "{t}");
    }

    #[test]
    fn a_delay_notice_says_it_is_still_retried() {
        let t = String::from_utf8(sample(Kind::Delay)).unwrap();
        assert!(
            t.contains("Subject: Delayed Mail (still being retried)\n"),
            "{t}"
        );
        assert!(t.contains("Action: delayed\n"), "{t}");
        assert!(
            t.contains("Will-Retry-Until: Fri, 02 Jan 1970 00:00:00 +0000"),
            "{t}"
        );
        assert!(!t.contains("dead.letter"), "{t}");
    }

    #[test]
    fn status_codes_come_from_the_reply_or_the_kind() {
        assert_eq!(status_of("550 5.7.1 denied", Kind::Bounce), "5.7.1");
        assert_eq!(status_of("550 denied", Kind::Bounce), "5.0.0");
        assert_eq!(status_of("connection refused", Kind::Delay), "4.0.0");
        assert_eq!(status_of("version 1.2.3", Kind::Delay), "4.0.0");
    }

    #[test]
    fn recipients_and_replies_cannot_inject_lines() {
        let recipients = vec![("a@x".to_owned(), "550 no\r\nBcc: evil@x".to_owned())];
        let n = Notice {
            kind: Kind::Bounce,
            to: "alice",
            host: "h",
            queue_id: "Q",
            arrival: SystemTime::UNIX_EPOCH,
            recipients: &recipients,
            dead_letter: None,
            retry_until: None,
            headers: b"",
            date: DateStamp {
                unix_seconds: 0,
                utc_offset_seconds: 0,
            },
        };
        let t = String::from_utf8(n.render()).unwrap();
        assert!(!t.lines().any(|l| l.starts_with("Bcc:")), "{t}");
    }

    #[test]
    fn only_the_header_is_quoted() {
        let h = header_of(&b"From: a@x\r\nSubject: s\r\n\r\nsecret body\r\n"[..]);
        assert_eq!(h, b"From: a@x\nSubject: s\n");
        let h = header_of(&b"Subject: no body"[..]);
        assert_eq!(h, b"Subject: no body");
    }
}
