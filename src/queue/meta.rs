//! The metadata of a queued message (`msg/ID.env`): its envelope and its
//! delivery state, as TOML a person can read and, with care, edit. The
//! format is documented on [`Meta`].
//!
//! The file is never modified in place: every change is written to
//! `tmp/ID.env`, synced, and renamed over the old one, so a reader sees
//! the old state or the new one, never a mix.

use std::fs::File;
use std::io::Write;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::error::QueueError;
use super::files;
use super::id::Id;
use super::spool::{FILE_MODE, Queue};
use super::time::{toml_time, toml_time_opt};
use crate::smtp::{BodyInfo, Dsn, Envelope};

/// The metadata format this code writes and reads.
pub const META_VERSION: u32 = 1;

/// The largest metadata file read: room for tens of thousands of
/// recipients, and a bound on what a damaged file can make us allocate.
pub const MAX_META_SIZE: u64 = 8 * 1024 * 1024;

/// Longest error or reply text kept (longer ones are cut, with `…`).
pub const MAX_TEXT: usize = 1000;

/// Most distinct hosts remembered in `hosts_tried` (the most recent).
pub const MAX_HOSTS: usize = 16;

/// Where one recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientState {
    /// Not yet accepted by a server: a queue run tries it.
    Pending,
    /// Accepted by a server: never sent again.
    Done,
    /// Refused permanently, and the failure has been reported.
    Failed,
}

/// One envelope recipient and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// The address, as given to RCPT TO.
    pub address: String,
    /// Its delivery state.
    pub state: RecipientState,
    /// The last server reply about it (a refusal), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

/// The contents of `msg/ID.env`: TOML a person can read and, with care,
/// edit (while no queue run is going).
///
/// ```toml
/// # smtpsend queue entry 20261123T193000.123456-1a2b3c4d: ...
/// version = 1
/// created = 2026-11-23T19:30:00Z
/// profile = "default"
/// sender = "me@example.org"
/// size = 1234
/// eight_bit = false
/// attempts = 2
/// next_attempt = 2026-11-23T19:36:00Z
/// last_attempt = 2026-11-23T19:31:00Z
/// last_error = "relay smtp.example.org: 451 4.3.0 try again later"
/// hosts_tried = ["smtp.example.org"]
///
/// [[recipient]]
/// address = "you@example.org"
/// state = "pending"
/// reply = "451 4.3.0 try again later"
/// ```
///
/// Times are UTC, to the second. `size` and `eight_bit` are the
/// [`BodyInfo`] of `ID.eml`, kept so a retry need not rescan the message.
/// Optional: `mail_options`, `rcpt_options` and a `[dsn]` table (`notify`,
/// `ret`, `envid`, `orcpt`), the envelope's ESMTP parameters. Unknown keys
/// are refused (a typo in a hand edit must not silently change delivery),
/// and a `version` other than [`META_VERSION`] is reported as damage
/// rather than half-understood. Every save replaces the file whole (write
/// to `tmp/`, sync, rename), so a reader never sees a mix of two states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// The format version, [`META_VERSION`].
    pub version: u32,
    /// When the message was spooled.
    #[serde(with = "toml_time")]
    pub created: SystemTime,
    /// The configuration profile to deliver it with.
    pub profile: String,
    /// The envelope sender (reverse-path); empty for `<>`.
    pub sender: String,
    /// The size on the wire ([`BodyInfo::size`]).
    pub size: u64,
    /// Whether the message has 8-bit bytes ([`BodyInfo::eight_bit`]).
    pub eight_bit: bool,
    /// Delivery attempts that ended in a temporary failure.
    pub attempts: u32,
    /// Not to be tried before this time.
    #[serde(with = "toml_time")]
    pub next_attempt: SystemTime,
    /// When the last attempt ended.
    #[serde(
        default,
        with = "toml_time_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_attempt: Option<SystemTime>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the sender was sent a delay notice (at most one per message);
    /// absent in entries written before notices existed.
    #[serde(
        default,
        with = "toml_time_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay_notice: Option<SystemTime>,
    /// The hosts attempts went to, oldest first, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts_tried: Vec<String>,
    /// Extra ESMTP parameters for MAIL FROM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mail_options: Vec<String>,
    /// Extra ESMTP parameters for every RCPT TO.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rcpt_options: Vec<String>,
    /// DSN requests.
    #[serde(default, with = "dsn_table", skip_serializing_if = "Option::is_none")]
    pub dsn: Option<Dsn>,
    /// The recipients, in the order given.
    #[serde(rename = "recipient")]
    pub recipients: Vec<Recipient>,
}

impl Meta {
    /// The [`BodyInfo`] the engine needs before MAIL FROM.
    pub fn info(&self) -> BodyInfo {
        BodyInfo {
            size: self.size,
            eight_bit: self.eight_bit,
        }
    }

    /// The recipients still to deliver to.
    pub fn pending(&self) -> impl Iterator<Item = &str> {
        self.with_state(RecipientState::Pending)
    }

    /// The recipients in `state`.
    pub fn with_state(&self, state: RecipientState) -> impl Iterator<Item = &str> {
        self.recipients
            .iter()
            .filter(move |r| r.state == state)
            .map(|r| r.address.as_str())
    }

    /// The engine's envelope for the pending recipients.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            from: self.sender.clone(),
            to: self.pending().map(str::to_owned).collect(),
            mail_options: self.mail_options.clone(),
            rcpt_options: self.rcpt_options.clone(),
            dsn: self.dsn.clone(),
        }
    }

    /// Remembers `host` in `hosts_tried` (once; the most recent
    /// [`MAX_HOSTS`] are kept).
    pub(crate) fn note_host(&mut self, host: &str) {
        let host = clean_text(host);
        self.hosts_tried.retain(|h| *h != host);
        self.hosts_tried.push(host);
        let excess = self.hosts_tried.len().saturating_sub(MAX_HOSTS);
        self.hosts_tried.drain(..excess);
    }

    /// The file's text: a comment that says what it is, then the TOML.
    pub fn to_text(&self, id: &Id) -> Result<String, String> {
        let body = toml::to_string(self).map_err(|e| e.to_string())?;
        Ok(format!(
            "# smtpsend queue entry {id}: the envelope and delivery state of {id}.eml.\n\
             # Times are UTC. Edit only while no queue run is going; states are\n\
             # pending, done or failed.\n{body}"
        ))
    }

    /// Parses a file's text, as the queue reads it (the fuzz target
    /// `queue_meta` drives this with arbitrary input).
    pub fn from_text(text: &str) -> Result<Meta, String> {
        #[derive(Deserialize)]
        struct Version {
            version: Option<u32>,
        }
        let v: Version = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        match v.version {
            Some(META_VERSION) => {}
            Some(n) => {
                return Err(format!(
                    "format version {n} is not {META_VERSION}: written by another smtpsend version"
                ));
            }
            None => return Err("no format version".into()),
        }
        let m: Meta = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        if m.recipients.is_empty() {
            return Err("no recipients".into());
        }
        Ok(m)
    }
}

/// Why a metadata file could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Opening or reading failed (`NotFound`: the entry is gone).
    Io(std::io::Error),
    /// The file is there but damaged ([`QueueError::Corrupt`]).
    Damaged(QueueError),
}

/// Reads and parses the metadata of `id` in `queue`'s `msg/`; a file
/// not owned by the queue's owner is damage, never trusted.
pub(crate) fn read(queue: &Queue, id: &Id) -> Result<Meta, ReadError> {
    let path = queue.env_path(id);
    let damaged = |r: String| ReadError::Damaged(QueueError::corrupt(&path, r));
    // InvalidData: a symlink, not a regular file, too large, not ours.
    let io = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            damaged(e.to_string())
        } else {
            ReadError::Io(e)
        }
    };
    let mut f =
        files::open_owned_at(queue.msg_fd(), &id.file_name("env"), queue.owner()).map_err(io)?;
    let bytes = files::read_limited(&mut f, MAX_META_SIZE).map_err(io)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| damaged("not UTF-8".into()))?;
    Meta::from_text(text).map_err(damaged)
}

/// Writes `meta` to `tmp/ID.env` (created 0600) and syncs it. The
/// caller renames it into place.
pub(crate) fn write_tmp(queue: &Queue, id: &Id, meta: &Meta) -> Result<(), QueueError> {
    let tmp = queue.tmp_path(id, "env");
    let name = id.file_name("env");
    let text = meta
        .to_text(id)
        .map_err(|e| QueueError::write(&tmp, std::io::Error::other(e)))?;
    // A leftover from a crash during an earlier update of this ID: we hold
    // the ID's lock, so nobody else writes this name.
    files::unlink_at(queue.tmp_fd(), &name).map_err(|e| QueueError::write(&tmp, e))?;
    let result = (|| {
        let mut f: File = files::create_at(queue.tmp_fd(), &name, FILE_MODE)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    result.map_err(|e| {
        let _ = files::unlink_at(queue.tmp_fd(), &name);
        QueueError::write(&tmp, e)
    })
}

/// One line, no control characters, at most [`MAX_TEXT`] bytes: what a
/// server or an error said, made safe to store and to show.
pub(crate) fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_TEXT + 3));
    for c in s.chars() {
        if out.len() + c.len_utf8() > MAX_TEXT {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out.trim().to_owned()
}

/// TOML errors span lines (with a caret under the spot); a queue error is
/// one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `[dsn]` as a table; the engine's [`Dsn`] has no serde of its own.
mod dsn_table {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::smtp::Dsn;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Table {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notify: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ret: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        envid: Option<String>,
        #[serde(default)]
        orcpt: bool,
    }

    pub fn serialize<S: Serializer>(d: &Option<Dsn>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => Table {
                notify: d.notify.clone(),
                ret: d.ret.clone(),
                envid: d.envid.clone(),
                orcpt: d.orcpt,
            }
            .serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dsn>, D::Error> {
        Ok(Option::<Table>::deserialize(d)?.map(|t| Dsn {
            notify: t.notify,
            ret: t.ret,
            envid: t.envid,
            orcpt: t.orcpt,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample() -> Meta {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_462_200);
        Meta {
            version: META_VERSION,
            created: t,
            profile: "work".into(),
            sender: "me@example.org".into(),
            size: 1234,
            eight_bit: true,
            attempts: 2,
            next_attempt: t + Duration::from_secs(360),
            last_attempt: Some(t + Duration::from_secs(60)),
            last_error: Some("451 4.3.0 \"try\" later".into()),
            delay_notice: None,
            hosts_tried: vec!["smtp.example.org".into()],
            mail_options: vec!["RET=HDRS".into()],
            rcpt_options: vec![],
            dsn: Some(Dsn {
                notify: vec!["FAILURE".into(), "DELAY".into()],
                ret: Some("HDRS".into()),
                envid: None,
                orcpt: true,
            }),
            recipients: vec![
                Recipient {
                    address: "a@example.org".into(),
                    state: RecipientState::Pending,
                    reply: Some("451 later".into()),
                },
                Recipient {
                    address: "b@example.org".into(),
                    state: RecipientState::Done,
                    reply: None,
                },
                Recipient {
                    address: "c@example.org".into(),
                    state: RecipientState::Failed,
                    reply: Some("550 5.1.1 no such user".into()),
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_human_readable() {
        let id = Id::parse("20261123T193000.000000-1a2b3c4d").unwrap();
        let m = sample();
        let text = m.to_text(&id).unwrap();
        assert_eq!(Meta::from_text(&text).unwrap(), m);
        for line in [
            "version = 1",
            "created = 2026-11-23T19:30:00Z",
            "profile = \"work\"",
            "sender = \"me@example.org\"",
            "attempts = 2",
            "next_attempt = 2026-11-23T19:36:00Z",
            "[[recipient]]",
            "state = \"pending\"",
            "state = \"done\"",
            "state = \"failed\"",
            "reply = \"550 5.1.1 no such user\"",
            "[dsn]",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(text.starts_with("# smtpsend queue entry 20261123T193000.000000-1a2b3c4d"));
    }

    #[test]
    fn minimal_hand_written_file() {
        let m = Meta::from_text(
            "version = 1\ncreated = 2026-11-23T19:30:00Z\nprofile = \"\"\nsender = \"\"\n\
             size = 3\neight_bit = false\nattempts = 0\nnext_attempt = 2026-11-23T19:30:00Z\n\
             [[recipient]]\naddress = \"x@y\"\nstate = \"pending\"\n",
        )
        .unwrap();
        assert_eq!(m.pending().collect::<Vec<_>>(), ["x@y"]);
        assert_eq!(m.envelope().to, ["x@y"]);
        assert!(m.dsn.is_none() && m.last_error.is_none());
    }

    #[test]
    fn the_delay_notice_mark_is_optional_and_round_trips() {
        let id = Id::parse("20261123T193000.000000-1a2b3c4d").unwrap();
        let mut m = sample();
        // Entries written before notices existed have no such key.
        let old = m.to_text(&id).unwrap();
        assert!(!old.contains("delay_notice"), "{old}");
        assert_eq!(Meta::from_text(&old).unwrap().delay_notice, None);
        m.delay_notice = Some(m.created + Duration::from_secs(4 * 3600));
        let text = m.to_text(&id).unwrap();
        assert!(text.contains("delay_notice = 2026-"), "{text}");
        assert_eq!(Meta::from_text(&text).unwrap(), m);
    }

    #[test]
    fn refuses_damage() {
        let good = sample()
            .to_text(&Id::parse("20261123T193000.000000-1a2b3c4d").unwrap())
            .unwrap();
        let cases = [
            (
                good.replace("version = 1", "version = 2"),
                "format version 2",
            ),
            (good.replace("version = 1\n", ""), "no format version"),
            (good.replace("attempts", "atempts"), "atempts"),
            (good.replace("\"done\"", "\"sent\""), "sent"),
            (good[..good.len() / 2].to_owned(), ""),
            (
                good.replace("created = 2026-11-23T19:30:00Z", "created = \"yesterday\""),
                "",
            ),
        ];
        for (text, want) in cases {
            let e = Meta::from_text(&text).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let mut none = sample();
        none.recipients.clear();
        let text = none
            .to_text(&Id::parse("20261123T193000.000000-1a2b3c4d").unwrap())
            .unwrap();
        assert_eq!(Meta::from_text(&text).unwrap_err(), "no recipients");
    }

    #[test]
    fn envelope_has_only_pending() {
        let env = sample().envelope();
        assert_eq!(env.from, "me@example.org");
        assert_eq!(env.to, ["a@example.org"]);
        assert_eq!(env.mail_options, ["RET=HDRS"]);
        assert!(env.dsn.unwrap().orcpt);
    }

    #[test]
    fn text_is_cleaned_and_bounded() {
        assert_eq!(clean_text("a\r\nb\x1b[31m "), "a  b [31m");
        let long = "é".repeat(MAX_TEXT);
        let c = clean_text(&long);
        assert!(c.len() <= MAX_TEXT + '…'.len_utf8() && c.ends_with('…'));
        let mut m = sample();
        for i in 0..40 {
            m.note_host(&format!("h{i}"));
        }
        m.note_host("h39");
        assert_eq!(m.hosts_tried.len(), MAX_HOSTS);
        assert_eq!(m.hosts_tried.last().unwrap(), "h39");
        m.note_host("h30");
        assert_eq!(m.hosts_tried.last().unwrap(), "h30");
        assert_eq!(m.hosts_tried.len(), MAX_HOSTS);
    }
}
