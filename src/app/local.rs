//! Local mail: which recipients stay on this machine (the one local/remote
//! rule every delivery path obeys) and delivering each into its own
//! mailbox.
//!
//! A recipient is local when the profile delivers only locally
//! (`transport = "maildir"`), when it has no domain, when its domain is
//! one of the profile's `local_domains` (by default `localhost`), or, with
//! no relay configured at all, when its domain is this machine's own name
//! (the profile's `domain`, /etc/mailname's, the host's fully qualified or
//! short name).
//! Every other recipient is remote: it goes to the relay, or, with none
//! configured, waits in the queue until one is.
//!
//! # Which mailbox
//!
//! A profile that names one Maildir (`maildir = "..."`, or
//! `transport = "maildir"`, which uses `maildir`, else `$MAILDIR`, else
//! `~/Maildir`) gets every local recipient's mail there, as msmtp's and
//! nullmailer's users expect of an explicit setting: one copy with a
//! `Delivered-To` header naming them all.
//!
//! Otherwise each local recipient's local part (aliases already applied)
//! is a user of this machine ([`crate::mta::mailbox`]): mail goes into
//! `~USER/Maildir` when that directory exists, else into the mbox
//! `/var/mail/USER` ([`crate::mta::mbox`]); one copy per user. A name
//! that is no user is refused for good (5.1.1, the message goes to
//! dead.letter like any permanent refusal). For the user running
//! smtpsend, `$MAILDIR` and `$HOME` are theirs to say where their mail
//! goes: `$MAILDIR` when set, else `$HOME/Maildir` when it exists.
//! [`MAIL_DIR_ENV`] replaces `/var/mail` (for tests).
//!
//! # Who writes
//!
//! A mailbox is written by a process running as its owner, never by
//! root in a user's directories and never by a setuid smtpsend:
//! - when the recipient is the user running smtpsend, it writes itself
//!   (an mbox only where it may make the dotlock; else as below);
//! - when root runs smtpsend (root's own mail, root's queue run), it
//!   starts `smtpsend --deliver-local USER ...` ([`deliver_local_main`])
//!   that becomes the recipient exactly as a queue owner's runner does
//!   ([`crate::queue::owner::command_as`], groups, gid, uid, clean
//!   environment, before anything else; for an mbox in a group-writable
//!   spool such as Debian's root:mail 2775 `/var/mail`, that group too,
//!   as a setgid-mail delivery agent has it, for the dotlock) and feeds
//!   it the message on its standard input;
//! - when another user sends to a local user, the recipient stays queued
//!   with the reason "waiting for root's queue run to deliver into
//!   USER's mailbox" (as `mailq` shows). Root's queue run starts the
//!   owner's own smtpsend for the owner's queue as always; that process
//!   (and only one started by root's runner, [`crate::queue::owner`])
//!   hands such a recipient to root over its standard output: a line
//!   naming the user and the envelope sender, then the message in
//!   length-prefixed chunks ([`HANDOFF_MAX`] in all). Root resolves the
//!   user in its own passwd file, writes the bytes as the recipient as
//!   above, and answers one line on the owner's standard input (`ok`,
//!   `temp` or `perm` with a reason). The owner records the outcome in its
//!   own queue entry. Root never opens the owner's files and never takes
//!   a profile, a relay or a credential from them: the bytes go into a
//!   local mailbox the owner could have mailed anyway.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use super::Failure;
use super::deliver::Body;
use crate::config::{Profile, Transport};
use crate::exit::Sysexit;
use crate::maildir;
use crate::mta::mailbox::{self, Mailbox, MailboxError, User};
use crate::mta::mbox;
use crate::queue::{files, owner};

/// The hidden first argument of the process that writes one mailbox as
/// its owner.
pub const DELIVER_LOCAL_FLAG: &str = "--deliver-local";

/// A variable naming the directory of mboxes instead of `/var/mail`
/// (tests use it; it changes only where the process's own writes go).
pub const MAIL_DIR_ENV: &str = "SMTPSEND_MAIL_DIR";

/// The longest a writer process may take (its locks wait
/// [`mbox::LOCK_WAIT`]); then it is killed and the delivery retried.
pub const WRITER_TIMEOUT: Duration = Duration::from_secs(120);

/// The most of a message one hand-off to root carries.
pub const HANDOFF_MAX: u64 = 1 << 30;

/// The start of a hand-off request line.
const HANDOFF_TAG: &str = "smtpsend-handoff";

/// The longest line of the hand-off protocol, and of a writer's output.
const LINE_MAX: u64 = 8192;

/// The size of one hand-off chunk.
const CHUNK: usize = 64 * 1024;

/// The longest chunk-length line of a hand-off.
const CHUNK_LINE_MAX: u64 = 32;

/// Whether `addr` is delivered on this machine under profile `p`.
pub fn is_local(addr: &str, p: &Profile) -> bool {
    if p.transport == Transport::Maildir {
        return true;
    }
    let Some((_, domain)) = addr.rsplit_once('@') else {
        return true;
    };
    if p.local_domains
        .iter()
        .any(|l| l.eq_ignore_ascii_case(domain))
    {
        return true;
    }
    p.hosts.is_empty()
        && (domain.eq_ignore_ascii_case("localhost")
            || p.domain
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(domain))
            || crate::mta::system_domain().is_some_and(|d| d.eq_ignore_ascii_case(domain))
            || crate::hostname::fqdn().is_some_and(|d| d.eq_ignore_ascii_case(domain))
            || crate::hostname::short().is_some_and(|d| d.eq_ignore_ascii_case(domain)))
}

/// Whether the profile names one Maildir for all local mail.
pub fn one_maildir(p: &Profile) -> bool {
    p.maildir.is_some() || p.transport == Transport::Maildir
}

/// The Maildir local mail goes into when the profile names one.
pub fn maildir_root(p: &Profile) -> Option<PathBuf> {
    p.maildir.clone().or_else(maildir::default_path)
}

/// The directory of mboxes: [`MAIL_DIR_ENV`], else `/var/mail`.
pub fn mail_dir() -> PathBuf {
    std::env::var_os(MAIL_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(mbox::MAIL_DIR), PathBuf::from)
}

fn temp(exit: Sysexit, message: String) -> Failure {
    Failure::new(exit, message)
}

fn permanent(message: String) -> Failure {
    let mut f = Failure::new(Sysexit::NoUser, message);
    f.permanent = true;
    f
}

/// The mailbox of the local user `name`: the passwd file's, except that
/// the user running smtpsend has their `$MAILDIR` and `$HOME` honoured.
pub fn mailbox_for(name: &str) -> Result<Mailbox, Failure> {
    let mb =
        mailbox::resolve(name, Path::new(mailbox::PASSWD), &mail_dir()).map_err(|e| match e {
            MailboxError::UnknownUser { .. } => permanent(e.to_string()),
            MailboxError::Read { .. } => temp(
                Sysexit::TempFail,
                format!("{e}; delivery to {name:?} will be retried"),
            ),
        })?;
    let user = match &mb {
        Mailbox::Maildir { user, .. } | Mailbox::Mbox { user, .. } => user.clone(),
    };
    if user.uid != files::euid() {
        return Ok(mb);
    }
    if let Some(md) = std::env::var_os("MAILDIR").filter(|v| !v.is_empty()) {
        return Ok(Mailbox::Maildir {
            user,
            path: PathBuf::from(md),
        });
    }
    match dirs::home_dir() {
        Some(home) => Ok(mailbox::mailbox_of(User { home, ..user }, &mail_dir())),
        None => Ok(mb),
    }
}

fn user_of(mb: &Mailbox) -> &User {
    match mb {
        Mailbox::Maildir { user, .. } | Mailbox::Mbox { user, .. } => user,
    }
}

/// Delivers the message to the local `recipients` under `p`, with a
/// `Return-Path` and a `Delivered-To` header in front; what became of
/// each recipient, in order: the mailbox written, or why not (a failure
/// that says whether trying again can help).
pub fn deliver(
    p: &Profile,
    sender: &str,
    recipients: &[String],
    body: &mut dyn Body,
) -> Vec<(String, Result<PathBuf, Failure>)> {
    let prefix =
        |to: &[String]| format!("Return-Path: <{sender}>\nDelivered-To: {}\n", to.join(", "));
    if one_maildir(p) {
        let r = body
            .reader()
            .and_then(|mut r| into_maildir(p, prefix(recipients).as_bytes(), &mut r));
        return recipients.iter().map(|a| (a.clone(), r.clone())).collect();
    }
    // One copy per user, in the order of first mention.
    let mut results: BTreeMap<usize, Result<PathBuf, Failure>> = BTreeMap::new();
    let mut groups: Vec<(Mailbox, Vec<usize>)> = Vec::new();
    for (i, a) in recipients.iter().enumerate() {
        let name = a.rsplit_once('@').map_or(a.as_str(), |(l, _)| l);
        match mailbox_for(name) {
            Ok(mb) => match groups
                .iter_mut()
                .find(|(m, _)| user_of(m).uid == user_of(&mb).uid && *m == mb)
            {
                Some((_, v)) => v.push(i),
                None => groups.push((mb, vec![i])),
            },
            Err(f) => {
                results.insert(i, Err(f));
            }
        }
    }
    for (mb, idx) in groups {
        let to: Vec<String> = idx.iter().map(|&i| recipients[i].clone()).collect();
        let r = body
            .reader()
            .and_then(|mut r| to_user(&mb, sender, prefix(&to).as_bytes(), &mut r));
        for i in idx {
            results.insert(i, r.clone());
        }
    }
    recipients
        .iter()
        .cloned()
        .zip(results.into_values())
        .collect()
}

/// The profile's one Maildir.
fn into_maildir(p: &Profile, prefix: &[u8], body: &mut dyn Read) -> Result<PathBuf, Failure> {
    let root = maildir_root(p).ok_or_else(|| {
        Failure::new(
            Sysexit::CantCreate,
            "cannot deliver locally: no home directory for ~/Maildir (set MAILDIR, or configure a relay)",
        )
    })?;
    maildir::deliver(&root, prefix, body).map_err(|e| {
        Failure::new(
            Sysexit::CantCreate,
            format!(
                "cannot deliver locally into {}: {e} (set MAILDIR to a writable Maildir, or configure a relay)",
                root.display()
            ),
        )
    })
}

/// Writes into `mb` as its owner: here, through a process that becomes
/// the owner (root), through root's queue run (an owner's runner), or
/// not yet (queued, with the reason).
fn to_user(
    mb: &Mailbox,
    sender: &str,
    prefix: &[u8],
    body: &mut dyn Read,
) -> Result<PathBuf, Failure> {
    let user = user_of(mb);
    let euid = files::euid();
    if user.uid == euid && can_write_here(mb) {
        write_here(mb, sender, prefix, body)
    } else if euid == 0 {
        write_as(mb, sender, prefix, body)
    } else if owner::requested_spool().is_some() {
        handoff(&user.name, sender, prefix, body)
    } else {
        Err(temp(
            Sysexit::TempFail,
            format!(
                "waiting for root's queue run to deliver into {}'s mailbox",
                user.name
            ),
        ))
    }
}

/// Whether the user running this process can write its own mailbox: a
/// Maildir, yes; an mbox only where it may make the dotlock (Debian's
/// `/var/mail` is root:mail 2775: a user outside group mail waits for
/// root's queue run, whose writer has that group).
fn can_write_here(mb: &Mailbox) -> bool {
    match mb {
        Mailbox::Maildir { .. } => true,
        Mailbox::Mbox { dir, .. } => {
            files::euid() == 0 || rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_ok()
        }
    }
}

/// Writes into a mailbox of the user running this process.
fn write_here(
    mb: &Mailbox,
    sender: &str,
    prefix: &[u8],
    body: &mut dyn Read,
) -> Result<PathBuf, Failure> {
    match mb {
        Mailbox::Maildir { path, .. } => maildir::deliver(path, prefix, body).map_err(|e| {
            temp(
                Sysexit::CantCreate,
                format!(
                    "cannot deliver locally into {}: {e}; will retry",
                    path.display()
                ),
            )
        }),
        Mailbox::Mbox { user, dir } => {
            let d = mbox::Delivery {
                dir,
                user: &user.name,
                sender,
                received: SystemTime::now(),
                prefix,
                lock_wait: mbox::LOCK_WAIT,
            };
            match mbox::deliver(&d, body) {
                Ok(_) => Ok(dir.join(&user.name)),
                Err(e @ mbox::MboxError::BadName { .. }) => {
                    Err(permanent(format!("cannot deliver locally: {e}")))
                }
                Err(e) => Err(temp(
                    Sysexit::CantCreate,
                    format!("cannot deliver locally: {e}"),
                )),
            }
        }
    }
}

/// Root's delivery into another user's mailbox: `smtpsend
/// --deliver-local USER KIND PATH SENDER` as that user, the message on
/// its standard input, the path written on its standard output.
fn write_as(
    mb: &Mailbox,
    sender: &str,
    prefix: &[u8],
    body: &mut dyn Read,
) -> Result<PathBuf, Failure> {
    let user = user_of(mb);
    let fail = |m: String| temp(Sysexit::TempFail, m);
    let (kind, path) = match mb {
        Mailbox::Maildir { path, .. } => ("maildir", path),
        Mailbox::Mbox { dir, .. } => ("mbox", dir),
    };
    let path_arg = path
        .to_str()
        .ok_or_else(|| fail(format!("{} is not UTF-8", path.display())))?;
    let account = owner::account(user.uid)
        .map_err(|e| fail(format!("cannot deliver into {}'s mailbox: {e}", user.name)))?;
    let mut cmd = owner::command_as(
        &account,
        Path::new(""),
        &[DELIVER_LOCAL_FLAG, &user.name, kind, path_arg, sender],
    )
    .map_err(|e| fail(format!("cannot start the mailbox writer: {e}")))?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{}'s mailbox", user.name);
    let (status, out, err) = run_writer(cmd, prefix, body)
        .map_err(|e| fail(format!("cannot deliver into {what}: {e}; will retry")))?;
    if status.success() {
        let line = out.lines().next().unwrap_or_default();
        return Ok(PathBuf::from(line));
    }
    let reason = err
        .lines()
        .last()
        .map(|l| l.trim_start_matches("smtpsend: ").to_owned())
        .unwrap_or_else(|| format!("the writer ended with {status}"));
    if status.code() == Some(i32::from(Sysexit::NoUser.code())) {
        Err(permanent(reason))
    } else {
        Err(fail(format!("{reason} (writing {what}); will retry")))
    }
}

/// Starts `cmd`, writes `prefix` and `body` to its standard input, and
/// waits at most [`WRITER_TIMEOUT`] in all (a writer that stalls is
/// killed); its standard output and error (bounded).
fn run_writer(
    mut cmd: Command,
    prefix: &[u8],
    body: &mut dyn Read,
) -> io::Result<(ExitStatus, String, String)> {
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    let child = Arc::new(Mutex::new(child));
    let (done, waiting) = mpsc::channel::<()>();
    let killer = {
        let child = Arc::clone(&child);
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = waiting.recv_timeout(WRITER_TIMEOUT)
                && let Ok(mut c) = child.lock()
            {
                let _ = c.kill();
            }
        })
    };
    let fed = stdin.map_or(Ok(()), |mut s| {
        s.write_all(prefix)?;
        io::copy(body, &mut s).map(drop)
    });
    let _ = done.send(());
    let _ = killer.join();
    let mut child: Child = match Arc::try_unwrap(child) {
        Ok(m) => m
            .into_inner()
            .map_err(|_| io::Error::other("lock poisoned"))?,
        Err(_) => return Err(io::Error::other("writer still shared")),
    };
    let status = owner::wait_with_timeout(&mut child, WRITER_TIMEOUT)?;
    let read = |r: Option<&mut dyn Read>| {
        let mut s = String::new();
        if let Some(r) = r {
            let _ = r.take(LINE_MAX).read_to_string(&mut s);
        }
        s
    };
    let out = read(child.stdout.as_mut().map(|r| r as &mut dyn Read));
    let err = read(child.stderr.as_mut().map(|r| r as &mut dyn Read));
    // A writer that could not read all of its input says why on stderr.
    if let Err(e) = fed
        && status.success()
    {
        return Err(e);
    }
    Ok((status, out, err))
}

/// `smtpsend --deliver-local USER maildir|mbox PATH SENDER`, started by
/// `write_as`: becomes the user root asked for (before anything else),
/// then appends standard input to the mailbox. Returns the path written.
///
/// Only a process root started this way may use it: anyone else (a
/// caller that slipped the flag into a sendmail command line, root by
/// hand) is refused before anything is read or written.
pub fn deliver_local_main(args: &[OsString]) -> Result<PathBuf, Failure> {
    let usage = || {
        Failure::new(
            Sysexit::Usage,
            format!(
                "{DELIVER_LOCAL_FLAG} is smtpsend's own (root's mailbox writer): not for use on a command line"
            ),
        )
    };
    // An mbox spool writable by its group (Debian: root:mail 2775) is
    // written with that group, as a setgid-mail delivery agent would: it
    // is needed for the dotlock. Looked at while still root.
    let spool_group = match (args.get(1), args.get(2)) {
        (Some(kind), Some(path)) if kind == "mbox" && files::euid() == 0 => std::fs::metadata(path)
            .ok()
            .filter(|m| {
                use std::os::unix::fs::MetadataExt;
                m.is_dir() && m.mode() & 0o020 != 0 && m.gid() != 0
            })
            .map(|m| std::os::unix::fs::MetadataExt::gid(&m)),
        _ => None,
    };
    match owner::become_requested_owner_with(spool_group.as_slice()) {
        Ok(Some(_)) => {}
        Ok(None) => return Err(usage()),
        Err(e) => return Err(Failure::new(Sysexit::NoPerm, e)),
    }
    let args: Vec<&str> = args
        .iter()
        .map(|a| a.to_str())
        .collect::<Option<_>>()
        .ok_or_else(usage)?;
    let [name, kind, path, sender] = args[..] else {
        return Err(usage());
    };
    let euid = files::euid();
    if euid == 0 {
        return Err(Failure::new(
            Sysexit::NoPerm,
            format!("{DELIVER_LOCAL_FLAG} writes as the recipient, never as root"),
        ));
    }
    let user = User {
        name: name.to_owned(),
        uid: euid,
        gid: rustix::process::getegid().as_raw(),
        home: PathBuf::new(),
    };
    let mb = match kind {
        "maildir" => Mailbox::Maildir {
            user,
            path: PathBuf::from(path),
        },
        "mbox" => Mailbox::Mbox {
            user,
            dir: PathBuf::from(path),
        },
        _ => return Err(usage()),
    };
    write_here(&mb, sender, b"", &mut io::stdin().lock())
}

/// In an owner's runner started by root: asks root to write the message
/// into `name`'s mailbox, and waits for the answer.
fn handoff(
    name: &str,
    sender: &str,
    prefix: &[u8],
    body: &mut dyn Read,
) -> Result<PathBuf, Failure> {
    let fail = |e: io::Error| {
        temp(
            Sysexit::TempFail,
            format!("waiting for root's queue run to deliver into {name}'s mailbox ({e})"),
        )
    };
    let mut out = io::stdout().lock();
    send_request(&mut out, name, sender, prefix, body).map_err(fail)?;
    // The wait is root's to bound: it answers every request, and kills
    // this runner after owner::USER_RUN_TIMEOUT (its stdin then ends).
    let mut line = String::new();
    io::stdin()
        .lock()
        .take(LINE_MAX)
        .read_line(&mut line)
        .map_err(fail)?;
    match line.trim_end().split_once(' ') {
        Some(("ok", path)) => Ok(PathBuf::from(path)),
        Some(("perm", why)) => Err(permanent(why.to_owned())),
        Some(("temp", why)) => Err(temp(Sysexit::TempFail, why.to_owned())),
        _ => Err(fail(io::Error::other("no answer from root's queue run"))),
    }
}

fn send_request(
    out: &mut dyn Write,
    name: &str,
    sender: &str,
    prefix: &[u8],
    body: &mut dyn Read,
) -> io::Result<()> {
    writeln!(out, "\n{HANDOFF_TAG} {} {}", hex(name), hex(sender))?;
    let mut chunk = |b: &[u8]| -> io::Result<()> {
        writeln!(out, "{}", b.len())?;
        out.write_all(b)
    };
    if !prefix.is_empty() {
        chunk(prefix)?;
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = files::read_some(body, &mut buf)?;
        if n == 0 {
            break;
        }
        chunk(&buf[..n])?;
    }
    writeln!(out, "0")?;
    out.flush()
}

fn hex(s: &str) -> String {
    if s.is_empty() {
        return "-".into();
    }
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if s == "-" {
        return Some(String::new());
    }
    let b: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(b?).ok()
}

/// The body of one hand-off request: its chunks, at most [`HANDOFF_MAX`].
struct Chunks<'a> {
    from: &'a mut dyn BufRead,
    left: u64,
    total: u64,
    done: bool,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.from.take(CHUNK_LINE_MAX).read_line(&mut line)?;
            let n: u64 = line
                .trim_end()
                .parse()
                .map_err(|_| io::Error::other("bad hand-off chunk"))?;
            self.total += n;
            if self.total > HANDOFF_MAX {
                return Err(io::Error::other("hand-off larger than HANDOFF_MAX"));
            }
            if n == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = n;
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.from.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Root's side of the hand-off, for one owner's runner: reads its
/// requests from `from`, writes each message as its recipient, answers
/// on `to`. Other output is dropped. Ends at end of
/// input or at a request that breaks the protocol.
pub fn serve_handoffs(from: impl Read, mut to: impl Write) -> io::Result<()> {
    let mut from = BufReader::new(from);
    loop {
        let mut line = String::new();
        if (&mut from).take(LINE_MAX).read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        if words.next() != Some(HANDOFF_TAG) {
            // Anything else a queue run prints (nothing, normally).
            continue;
        }
        let (Some(name), Some(sender)) =
            (words.next().and_then(unhex), words.next().and_then(unhex))
        else {
            return Err(io::Error::other("bad hand-off request"));
        };
        let mut body = Chunks {
            from: &mut from,
            left: 0,
            total: 0,
            done: false,
        };
        let r = mailbox_for(&name).and_then(|mb| to_user(&mb, &sender, b"", &mut body));
        // What the writer did not take, so the next request lines up.
        io::copy(&mut body, &mut io::sink())?;
        let answer = match r {
            Ok(p) => format!("ok {}", p.display()),
            Err(f) if f.permanent => format!("perm {}", f.message),
            Err(f) => format!("temp {}", f.message),
        };
        writeln!(to, "{}", answer.replace('\n', " "))?;
        to.flush()?;
    }
}

/// Runs an owner's runner (from [`owner::command_as`]) for at most
/// `timeout`, serving its hand-offs meanwhile.
pub fn run_serving_handoffs(mut command: Command, timeout: Duration) -> io::Result<ExitStatus> {
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = command.spawn()?;
    let (out, inp) = (child.stdout.take(), child.stdin.take());
    let (done, finished) = mpsc::channel::<()>();
    if let (Some(out), Some(inp)) = (out, inp) {
        std::thread::spawn(move || {
            let _ = serve_handoffs(out, inp);
            let _ = done.send(());
        });
    }
    let status = owner::wait_with_timeout(&mut child, timeout)?;
    // Served requests end with the runner; a descendant holding its
    // output open is not waited for long.
    let _ = finished.recv_timeout(WRITER_TIMEOUT);
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_rule() {
        let relay = Profile {
            hosts: vec!["relay.example".into()],
            domain: Some("client.example".into()),
            local_domains: vec!["localhost".into(), "lan.example".into()],
            ..Profile::default()
        };
        assert!(is_local("root", &relay));
        assert!(is_local("root@localhost", &relay));
        assert!(is_local("ops@LAN.example", &relay));
        assert!(!is_local("root@client.example", &relay));
        assert!(!is_local("a@example.org", &relay));

        let none = Profile {
            hosts: vec![],
            ..relay.clone()
        };
        assert!(is_local("root@client.example", &none));
        assert!(is_local("root@localhost", &none));
        assert!(!is_local("a@example.org", &none));

        let maildir = Profile {
            transport: Transport::Maildir,
            ..relay
        };
        assert!(is_local("a@example.org", &maildir));
    }

    fn body(text: &[u8]) -> super::super::input::TempMessage {
        super::super::input::TempMessage::from_reader(&mut &text[..]).unwrap()
    }

    #[test]
    fn maildir_errors_are_reported_not_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let p = Profile {
            maildir: Some(file.clone()),
            ..Profile::default()
        };
        let r = deliver(&p, "a@x", &["b@y".into()], &mut body(b"Subject: x\n\nx\n"));
        let f = r[0].1.clone().unwrap_err();
        assert_eq!(f.exit, Sysexit::CantCreate);
        assert!(
            f.message.contains(&file.display().to_string()),
            "{}",
            f.message
        );

        let md = dir.path().join("Maildir");
        let p = Profile {
            maildir: Some(md.clone()),
            ..Profile::default()
        };
        let r = deliver(
            &p,
            "a@x",
            &["b@y".into(), "c@z".into()],
            &mut body(b"Subject: x\n\nx\n"),
        );
        let path = r[0].1.clone().unwrap();
        assert_eq!(r[1].1.clone().unwrap(), path);
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.starts_with("Return-Path: <a@x>\nDelivered-To: b@y, c@z\nSubject: x\n"));
    }

    #[test]
    fn unknown_users_are_refused_for_good() {
        let p = Profile::default();
        let r = deliver(
            &p,
            "a@x",
            &["no-such-user-smtpsend-test@localhost".into()],
            &mut body(b"x\n"),
        );
        let f = r[0].1.clone().unwrap_err();
        assert!(f.permanent, "{}", f.message);
        assert!(f.message.contains("5.1.1 no local user"), "{}", f.message);
    }

    #[test]
    fn the_hand_off_protocol_round_trips_framing() {
        let mut wire = Vec::new();
        send_request(&mut wire, "bob", "a b@x", b"P: 1\n", &mut &b"hello\n"[..]).unwrap();
        let text = String::from_utf8_lossy(&wire).into_owned();
        let mut lines = text.lines().skip_while(|l| l.is_empty());
        let head: Vec<&str> = lines.next().unwrap().split(' ').collect();
        assert_eq!(head[0], HANDOFF_TAG);
        assert_eq!(unhex(head[1]).unwrap(), "bob");
        assert_eq!(unhex(head[2]).unwrap(), "a b@x");
        assert_eq!(unhex(&hex("")).unwrap(), "");
        let at = wire.iter().position(|&b| b == b'f').unwrap();
        let start = wire[at..].iter().position(|&b| b == b'\n').unwrap() + at + 1;
        let mut from = std::io::Cursor::new(wire[start..].to_vec());
        let mut c = Chunks {
            from: &mut from,
            left: 0,
            total: 0,
            done: false,
        };
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"P: 1\nhello\n");
        // A chunk claiming more than the limit is refused.
        let mut big = std::io::Cursor::new(format!("{}\n", HANDOFF_MAX + 1).into_bytes());
        let mut c = Chunks {
            from: &mut big,
            left: 0,
            total: 0,
            done: false,
        };
        assert!(c.read_to_end(&mut Vec::new()).is_err());
    }
}
