//! The spool: where the queue lives, how a message enters it, and what
//! happens to the debris a crash leaves.
//!
//! A message is written to `tmp/ID.eml` in chunks (scanned for its
//! [`BodyInfo`] on the way), synced, its metadata written to `tmp/ID.env`
//! and synced, then `ID.eml` is renamed into `msg/` (directory synced) and
//! `ID.env` last (directory synced). A message is queued once its
//! metadata is in `msg/`: runners list `*.env`. The spooler holds the
//! message's lock from the moment the file is created, so no runner can
//! take it while it is being written, nor while the caller makes its first
//! delivery attempt.
//!
//! On any error, everything this call created is removed again: nothing
//! half-written is ever left in `msg/`, and `tmp/` is cleaned. A crash
//! (kill -9, power loss) can leave `tmp/ID.*` or an `msg/ID.eml` without
//! metadata: [`Queue::orphans`] lists them and [`Queue::quarantine`]
//! moves old ones to `corrupt/` — never deletes a message body, since
//! it might be the only copy of someone's mail.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, Permissions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::error::QueueError;
use super::files;
use super::id::Id;
use super::lock::Locked;
use super::meta::{self, META_VERSION, Meta, Recipient, RecipientState};
use super::time;
use crate::smtp::data::BodyScanner;
use crate::smtp::{BodyInfo, Dsn};

/// The system-wide queue: made by an install step, group-writable and
/// setgid (e.g. `install -d -m 2770 -g smtpsend /var/spool/smtpsend`), so
/// every member of the group can queue there.
pub const SYSTEM_DIR: &str = "/var/spool/smtpsend";

/// How much of the message is held in memory while spooling.
pub const SPOOL_CHUNK: usize = 64 * 1024;

/// How old crash debris must be before [`Queue::quarantine`] moves it
/// (a suggestion for the runner; locks already protect work in progress,
/// this guards against file systems where locks do not work).
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Mode of the directories of a user's queue.
const USER_DIR_MODE: u32 = 0o700;
/// Mode of the files of a user's queue.
const USER_FILE_MODE: u32 = 0o600;
/// Mode of the files of a shared (group-writable, setgid) spool.
const SHARED_FILE_MODE: u32 = 0o660;

const SUBDIRS: [&str; 4] = ["tmp", "msg", "corrupt", "dead"];

/// An open queue directory.
///
/// ```text
/// DIR/tmp/ID.eml      a message being written (locked by its writer)
/// DIR/tmp/ID.env      metadata being written
/// DIR/msg/ID.eml      a queued message: exactly the bytes received
/// DIR/msg/ID.env      its metadata (see Meta): the entry exists once this does
/// DIR/corrupt/        orphans and damaged entries, moved aside, never deleted
/// DIR/dead/dead.letter  the dead.letter of last resort
/// DIR/run.lock        held by the one queue run at a time
/// ```
///
/// A user's queue is created with mode 0700 and files 0600. If `DIR`
/// already exists group-writable and setgid, it is a shared spool made
/// by an install step: its mode is kept, subdirectories get the same mode
/// and files are 0660, whatever the umask, so every group member's
/// runner can deliver every member's messages. The group is trusted:
/// members can read and alter each other's queued mail, as with any
/// shared spool.
#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
    shared: bool,
    file_mode: u32,
}

/// What [`Queue::spool`] needs besides the message itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMessage {
    /// The configuration profile to deliver it with.
    pub profile: String,
    /// The envelope sender; empty for `<>`.
    pub sender: String,
    /// The envelope recipients (at least one).
    pub recipients: Vec<String>,
    /// Extra ESMTP parameters for MAIL FROM, kept for retries.
    pub mail_options: Vec<String>,
    /// Extra ESMTP parameters for every RCPT TO, kept for retries.
    pub rcpt_options: Vec<String>,
    /// DSN requests, kept for retries.
    pub dsn: Option<Dsn>,
}

/// A message safely in the queue, still locked by this process so the
/// caller can make the first delivery attempt without a concurrent queue
/// run sending it too. Dropping it releases the lock and leaves the
/// message queued for the next run.
#[derive(Debug)]
pub struct Spooled {
    /// Its queue ID.
    pub id: Id,
    /// `DIR/msg/ID.eml`.
    pub path: PathBuf,
    /// Its size on the wire and 8-bit content, for MAIL FROM.
    pub info: BodyInfo,
    locked: Locked,
}

impl Spooled {
    /// A fresh reader from the start of the spooled message.
    pub fn open(&self) -> Result<File, QueueError> {
        self.locked.open()
    }

    /// The lock, to record the outcome of the first attempt.
    pub fn locked(&mut self) -> &mut Locked {
        &mut self.locked
    }

    /// The lock, to keep or to [`Locked::complete`].
    pub fn into_locked(self) -> Locked {
        self.locked
    }
}

/// What is wrong with an [`Orphan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `msg/ID.eml` without metadata: a crash between the two renames of
    /// spooling (never acknowledged to the sender), or during
    /// [`Locked::complete`] (already delivered).
    NoMeta,
    /// `msg/ID.env` without its message: removed by hand.
    NoBody,
    /// Metadata that cannot be read; the reason.
    BadMeta(String),
    /// A file in `tmp/` that no live process is writing: a crash while
    /// spooling or while updating metadata.
    Unfinished,
}

/// A file in the queue that is not part of a deliverable entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The file (for [`Problem::BadMeta`], the metadata).
    pub path: PathBuf,
    /// The ID in its name.
    pub id: Id,
    /// What is wrong.
    pub problem: Problem,
    /// Its modification time.
    pub modified: SystemTime,
}

/// The outcome of [`choose_dir`].
#[derive(Debug)]
pub struct Chosen {
    /// The first usable queue.
    pub queue: Queue,
    /// Why each earlier candidate was passed over, for a notice.
    pub skipped: Vec<QueueError>,
}

/// The user's queue: `$XDG_STATE_HOME/smtpsend/queue`, else
/// `~/.local/state/smtpsend/queue` (the data directory where there is no
/// state directory). `None` when there is no usable home: none at all, or
/// `/`, as daemons often have (their mail goes to [`SYSTEM_DIR`]).
pub fn default_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_STATE_HOME").is_some_and(|x| Path::new(&x).is_absolute());
    if !xdg {
        dirs::home_dir().filter(|h| h.is_absolute() && h.parent().is_some())?;
    }
    let base = dirs::state_dir().or_else(dirs::data_dir)?;
    base.is_absolute()
        .then(|| base.join("smtpsend").join("queue"))
}

/// Where to look for a queue, in order: the configured directory, the
/// user's ([`default_dir`]), the system's ([`SYSTEM_DIR`]). A queue run
/// should process each of these that exists, since [`choose_dir`] may
/// have fallen back to a later one.
pub fn candidate_dirs(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    for d in [
        configured.map(Path::to_path_buf),
        default_dir(),
        Some(PathBuf::from(SYSTEM_DIR)),
    ]
    .into_iter()
    .flatten()
    {
        if !v.contains(&d) {
            v.push(d);
        }
    }
    v
}

/// The first of [`candidate_dirs`] that can be opened (created if need
/// be) and written to. Never fails for want of a home directory; fails
/// only when every candidate does, with every reason.
pub fn choose_dir(configured: Option<&Path>) -> Result<Chosen, QueueError> {
    choose_from(candidate_dirs(configured))
}

fn choose_from(candidates: Vec<PathBuf>) -> Result<Chosen, QueueError> {
    let mut skipped = Vec::new();
    for dir in candidates {
        match Queue::open(&dir).and_then(|q| q.check_writable().map(|()| q)) {
            Ok(queue) => return Ok(Chosen { queue, skipped }),
            Err(e) => skipped.push(e),
        }
    }
    Err(QueueError::NoUsableDir(skipped))
}

impl Queue {
    /// Opens the queue in `dir`, creating it and its subdirectories as
    /// needed (see [`Queue`] for modes). Does not prove the queue is
    /// writable: [`Queue::check_writable`] does.
    pub fn open(dir: &Path) -> Result<Queue, QueueError> {
        let create_err = |path: &Path, source| QueueError::CreateDir {
            path: path.to_owned(),
            source,
        };
        let (shared, dir_mode) = match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {
                let mode = m.permissions().mode() & 0o7777;
                let shared = mode & 0o2000 != 0 && mode & 0o020 != 0;
                (shared, if shared { mode } else { USER_DIR_MODE })
            }
            Ok(_) => return Err(create_err(dir, not_a_dir())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(USER_DIR_MODE)
                    .create(dir)
                    .map_err(|e| create_err(dir, e))?;
                (false, USER_DIR_MODE)
            }
            Err(e) => return Err(create_err(dir, e)),
        };
        for sub in SUBDIRS {
            let path = dir.join(sub);
            match DirBuilder::new().mode(dir_mode).create(&path) {
                Ok(()) if shared => fs::set_permissions(&path, Permissions::from_mode(dir_mode))
                    .map_err(|e| create_err(&path, e))?,
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // A real directory, not a symlink planted in a shared
                    // spool to send our renames elsewhere.
                    let m = fs::symlink_metadata(&path).map_err(|e| create_err(&path, e))?;
                    if !m.is_dir() {
                        return Err(create_err(&path, not_a_dir()));
                    }
                }
                Err(e) => return Err(create_err(&path, e)),
            }
        }
        Ok(Queue {
            dir: dir.to_owned(),
            shared,
            file_mode: if shared {
                SHARED_FILE_MODE
            } else {
                USER_FILE_MODE
            },
        })
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this is a shared (group-writable, setgid) spool.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Proves the queue can be written by creating and removing a file in
    /// `tmp/` (permission bits say nothing to root, and nothing about a
    /// read-only mount or a full disk).
    pub fn check_writable(&self) -> Result<(), QueueError> {
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix(".probe-")
            .tempfile_in(&tmp)
            .map(drop)
            .map_err(|e| QueueError::write(tmp, e))
    }

    /// Spools a message: streams `body` in [`SPOOL_CHUNK`]s to the queue,
    /// computing its [`BodyInfo`], then writes its metadata; both synced
    /// to disk before this returns. The message is due at once, and is
    /// returned locked (see [`Spooled`]).
    ///
    /// Errors: [`QueueError::Input`] if reading `body` failed,
    /// [`QueueError::Empty`] for a message of no bytes,
    /// [`QueueError::NoRecipients`], and [`QueueError::Write`] (or `Lock`)
    /// if the queue could not take it: full disk, quota, unwritable or
    /// read-only spool. Whatever the error, nothing is left behind.
    ///
    /// Whether `body` can still be used for a direct delivery depends on
    /// when it failed: an unwritable, read-only or missing spool fails when
    /// the temporary file is created, before `body` is read at all; a disk
    /// that fills up fails part-way, with `body` partly read. A caller that
    /// must fall back in that case too needs a source it can read again
    /// (a file), or answers EX_TEMPFAIL as sendmail does when its queue
    /// disk is full, so that its own caller retries.
    pub fn spool(&self, body: &mut dyn Read, msg: NewMessage) -> Result<Spooled, QueueError> {
        if msg.recipients.is_empty() {
            return Err(QueueError::NoRecipients);
        }
        let now = SystemTime::now();
        let (id, mut file) = self.create_tmp_body(now)?;
        let now = time::whole_seconds(now);
        let tmp_eml = self.tmp_path(&id, "eml");
        let tmp_env = self.tmp_path(&id, "env");
        let msg_eml = self.eml_path(&id);
        let msg_env = self.env_path(&id);
        // Removes what this call created on every early return; the lock
        // keeps everyone else off it meanwhile. Metadata first.
        let mut cleanup = Cleanup(vec![tmp_env.clone(), tmp_eml.clone()]);
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(QueueError::Lock {
                    path: tmp_eml,
                    source: io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "a file created a moment ago is locked by someone else",
                    ),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(QueueError::Lock {
                    path: tmp_eml,
                    source,
                });
            }
        }
        let info = copy_scanning(body, &mut file, &tmp_eml)?;
        if info.size == 0 {
            return Err(QueueError::Empty);
        }
        file.sync_all()
            .map_err(|e| QueueError::write(&tmp_eml, e))?;
        let meta = Meta {
            version: META_VERSION,
            created: now,
            profile: msg.profile,
            sender: msg.sender,
            size: info.size,
            eight_bit: info.eight_bit,
            attempts: 0,
            next_attempt: now,
            last_attempt: None,
            last_error: None,
            hosts_tried: Vec::new(),
            mail_options: msg.mail_options,
            rcpt_options: msg.rcpt_options,
            dsn: msg.dsn,
            recipients: msg
                .recipients
                .into_iter()
                .map(|address| Recipient {
                    address,
                    state: RecipientState::Pending,
                    reply: None,
                })
                .collect(),
        };
        meta::write_tmp(&tmp_env, &id, &meta, self.file_mode)?;
        let msg_dir = self.msg_dir();
        // Never rename over another message: IDs differ in time or in 32
        // random bits, so this only guards against the impossible.
        for p in [&msg_eml, &msg_env] {
            if fs::symlink_metadata(p).is_ok() {
                return Err(QueueError::write(
                    p,
                    io::Error::new(io::ErrorKind::AlreadyExists, "queue ID already in use"),
                ));
            }
        }
        // The body first, made durable before the metadata that makes it
        // an entry, so no crash can leave metadata without its body.
        fs::rename(&tmp_eml, &msg_eml).map_err(|e| QueueError::write(&msg_eml, e))?;
        cleanup.0.insert(0, msg_eml.clone());
        files::sync_dir(&msg_dir).map_err(|e| QueueError::write(&msg_dir, e))?;
        fs::rename(&tmp_env, &msg_env).map_err(|e| QueueError::write(&msg_env, e))?;
        // Until the directory is synced the entry may not survive a crash:
        // an error here must not leave it to be sent a second time.
        cleanup.0.insert(0, msg_env.clone());
        files::sync_dir(&msg_dir).map_err(|e| QueueError::write(&msg_dir, e))?;
        cleanup.0.clear();
        Ok(Spooled {
            path: msg_eml,
            info,
            locked: Locked::new(self.clone(), id.clone(), file, meta),
            id,
        })
    }

    /// Creates `tmp/ID.eml` for a new ID (exclusively: a clash with
    /// another process's ID draws a new one).
    fn create_tmp_body(&self, now: SystemTime) -> Result<(Id, File), QueueError> {
        let mut last = None;
        for _ in 0..8 {
            let id = Id::generate(now);
            let path = self.tmp_path(&id, "eml");
            match files::create_new(&path, self.file_mode) {
                Ok(f) => return Ok((id, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    // create_new may have made the file before failing to
                    // set its mode.
                    let _ = fs::remove_file(&path);
                    return Err(QueueError::write(path, e));
                }
            }
        }
        Err(QueueError::write(
            self.tmp_dir(),
            last.unwrap_or_else(|| io::Error::other("no free queue ID")),
        ))
    }

    /// Every file in the queue that is not part of a deliverable entry,
    /// oldest first. Files another process holds locked (being spooled,
    /// being completed) are not orphans and are left out. Nothing is
    /// changed.
    pub fn orphans(&self) -> Result<Vec<Orphan>, QueueError> {
        let mut out = Vec::new();
        for (id, f) in self.scan(&self.msg_dir())? {
            let (path, problem) = match (f.eml, f.env) {
                (true, false) => {
                    let path = self.eml_path(&id);
                    if probe(&path) != Probe::Free {
                        continue;
                    }
                    (path, Problem::NoMeta)
                }
                (false, true) => (self.env_path(&id), Problem::NoBody),
                (true, true) => {
                    let path = self.env_path(&id);
                    match meta::read(&path) {
                        Err(meta::ReadError::Damaged(QueueError::Corrupt { reason, .. })) => {
                            (path, Problem::BadMeta(reason))
                        }
                        _ => continue,
                    }
                }
                (false, false) => continue,
            };
            push_orphan(&mut out, path, id, problem);
        }
        for (id, f) in self.scan(&self.tmp_dir())? {
            // A writer holds the lock on the body (in tmp/ while it is
            // spooled, in msg/ while its metadata is updated).
            if probe(&self.tmp_path(&id, "eml")) == Probe::Held
                || (f.env && probe(&self.eml_path(&id)) == Probe::Held)
            {
                continue;
            }
            for (present, ext) in [(f.eml, "eml"), (f.env, "env")] {
                if present {
                    push_orphan(
                        &mut out,
                        self.tmp_path(&id, ext),
                        id.clone(),
                        Problem::Unfinished,
                    );
                }
            }
        }
        out.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
        Ok(out)
    }

    /// Moves each [`orphan`](Queue::orphans) last modified at least
    /// `older_than` before `now` into `corrupt/` (under a free name), for
    /// a person to look at; a damaged entry moves with its message. The
    /// one thing deleted is an unfinished `tmp/ID.env`: metadata never
    /// holds mail, and the entry it belonged to is intact or was never
    /// acknowledged. Returns what was handled (with the paths it had).
    pub fn quarantine(
        &self,
        older_than: Duration,
        now: SystemTime,
    ) -> Result<Vec<Orphan>, QueueError> {
        let corrupt = self.corrupt_dir();
        let mut done = Vec::new();
        for o in self.orphans()? {
            if o.modified.checked_add(older_than).is_none_or(|t| t > now) {
                continue;
            }
            let aside = |p: &Path| {
                files::move_aside(p, &corrupt)
                    .map(drop)
                    .map_err(|e| QueueError::write(p, e))
            };
            let eml = self.eml_path(&o.id);
            match &o.problem {
                Problem::NoBody => aside(&o.path)?,
                Problem::NoMeta | Problem::BadMeta(_) => {
                    // Under its lock, and only if still what it was.
                    let Some(_lock) = try_lock_path(&eml)? else {
                        continue;
                    };
                    let env = self.env_path(&o.id);
                    let still = match o.problem {
                        Problem::NoMeta => fs::symlink_metadata(&env).is_err(),
                        _ => matches!(meta::read(&env), Err(meta::ReadError::Damaged(_))),
                    };
                    if !still {
                        continue;
                    }
                    if matches!(o.problem, Problem::BadMeta(_)) {
                        aside(&env)?;
                    }
                    aside(&eml)?;
                }
                Problem::Unfinished if o.path.extension().is_some_and(|e| e == "env") => {
                    match fs::remove_file(&o.path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(QueueError::write(&o.path, e)),
                    }
                }
                Problem::Unfinished => {
                    let Some(_lock) = try_lock_path(&o.path)? else {
                        continue;
                    };
                    aside(&o.path)?;
                }
            }
            done.push(o);
        }
        if !done.is_empty() {
            for d in [corrupt, self.msg_dir(), self.tmp_dir()] {
                files::sync_dir(&d).map_err(|e| QueueError::write(&d, e))?;
            }
        }
        Ok(done)
    }

    /// The entries of `msg/` or `tmp/` named like queue files, by ID.
    pub(crate) fn scan(&self, dir: &Path) -> Result<BTreeMap<Id, Present>, QueueError> {
        let mut out: BTreeMap<Id, Present> = BTreeMap::new();
        let rd = fs::read_dir(dir).map_err(|e| QueueError::read(dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| QueueError::read(dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = Id::from_file_name(name, "eml") {
                out.entry(id).or_default().eml = true;
            } else if let Some(id) = Id::from_file_name(name, "env") {
                out.entry(id).or_default().env = true;
            }
        }
        Ok(out)
    }

    pub(crate) fn file_mode(&self) -> u32 {
        self.file_mode
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub(crate) fn msg_dir(&self) -> PathBuf {
        self.dir.join("msg")
    }

    pub(crate) fn corrupt_dir(&self) -> PathBuf {
        self.dir.join("corrupt")
    }

    pub(crate) fn eml_path(&self, id: &Id) -> PathBuf {
        self.msg_dir().join(format!("{id}.eml"))
    }

    pub(crate) fn env_path(&self, id: &Id) -> PathBuf {
        self.msg_dir().join(format!("{id}.env"))
    }

    pub(crate) fn tmp_path(&self, id: &Id, ext: &str) -> PathBuf {
        self.tmp_dir().join(format!("{id}.{ext}"))
    }
}

/// Which of a message's two files a directory holds.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Present {
    pub eml: bool,
    pub env: bool,
}

/// Removes the listed paths when dropped, unless emptied first.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

/// Copies `src` to `dst` in [`SPOOL_CHUNK`]s, scanning as it goes.
fn copy_scanning(src: &mut dyn Read, dst: &mut File, path: &Path) -> Result<BodyInfo, QueueError> {
    let mut buf = vec![0u8; SPOOL_CHUNK];
    let mut scanner = BodyScanner::new();
    loop {
        let n = files::read_some(src, &mut buf).map_err(QueueError::Input)?;
        if n == 0 {
            break;
        }
        scanner.update(&buf[..n]);
        dst.write_all(&buf[..n])
            .map_err(|e| QueueError::write(path, e))?;
    }
    Ok(scanner.finish())
}

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Free,
    Held,
    Gone,
}

/// Whether someone holds the lock on `path` (taking and at once
/// releasing it if not).
fn probe(path: &Path) -> Probe {
    match files::open_existing(path) {
        Ok(f) => match f.try_lock() {
            Ok(()) => Probe::Free,
            Err(TryLockError::WouldBlock) => Probe::Held,
            Err(TryLockError::Error(_)) => Probe::Free,
        },
        Err(_) => Probe::Gone,
    }
}

/// Locks `path` if nobody holds it: `None` if somebody does or it is gone.
fn try_lock_path(path: &Path) -> Result<Option<File>, QueueError> {
    let f = match files::open_existing(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(QueueError::read(path, e)),
    };
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(source)) => Err(QueueError::Lock {
            path: path.to_owned(),
            source,
        }),
    }
}

fn push_orphan(out: &mut Vec<Orphan>, path: PathBuf, id: Id, problem: Problem) {
    // Gone since the scan: someone else dealt with it.
    let Ok(m) = fs::symlink_metadata(&path) else {
        return;
    };
    out.push(Orphan {
        modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        path,
        id,
        problem,
    });
}

fn not_a_dir() -> io::Error {
    io::Error::new(io::ErrorKind::NotADirectory, "not a directory")
}

/// Shared by the tests of the spool, the locks and the listing.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fresh queue in a temporary directory.
    pub fn queue() -> (tempfile::TempDir, Queue) {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::open(&d.path().join("queue")).unwrap();
        (d, q)
    }

    pub fn message(recipients: &[&str]) -> NewMessage {
        NewMessage {
            profile: "default".into(),
            sender: "me@example.org".into(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }

    /// Spools `body` to `recipients` and releases the lock.
    pub fn spool(q: &Queue, body: &[u8], recipients: &[&str]) -> Id {
        q.spool(&mut &body[..], message(recipients)).unwrap().id
    }

    /// Whether the tests run as root, for whom permission bits do not
    /// block writes (the owner of a file we create is our euid).
    pub fn is_root() -> bool {
        use std::os::unix::fs::MetadataExt;
        tempfile::tempfile().unwrap().metadata().unwrap().uid() == 0
    }

    /// The names in a directory, sorted.
    pub fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::exit::Sysexit;

    #[test]
    fn round_trip_is_byte_exact() {
        let (_d, q) = queue();
        let body: &[u8] =
            b"Subject: x\r\n\r\nNUL\0here\rbare CR\nbare LF\r\n.\r\n\xff\xfe no final newline";
        let s = q
            .spool(&mut &body[..], message(&["a@example.org", "b@example.org"]))
            .unwrap();
        assert_eq!(s.info, BodyScanner::scan(body));
        assert!(s.info.eight_bit);
        assert_eq!(s.path, q.msg_dir().join(format!("{}.eml", s.id)));
        assert_eq!(fs::read(&s.path).unwrap(), body);
        let mut back = Vec::new();
        s.open().unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, body);
        // A second reader starts from the start again.
        let mut again = Vec::new();
        s.open().unwrap().read_to_end(&mut again).unwrap();
        assert_eq!(again, body);
        assert_eq!(
            names(&q.msg_dir()),
            [format!("{}.eml", s.id), format!("{}.env", s.id)]
        );
        assert!(names(&q.tmp_dir()).is_empty());
    }

    #[test]
    fn metadata_is_human_readable_and_survives_reopening() {
        let (d, q) = queue();
        let mut msg = message(&["a@example.org", "b@example.org"]);
        msg.profile = "work".into();
        msg.mail_options = vec!["RET=HDRS".into()];
        let id = q.spool(&mut &b"x\n"[..], msg).unwrap().id;
        let text = fs::read_to_string(q.env_path(&id)).unwrap();
        for line in [
            "version = 1",
            "profile = \"work\"",
            "sender = \"me@example.org\"",
            "size = 3",
            "eight_bit = false",
            "attempts = 0",
            "mail_options = [\"RET=HDRS\"]",
            "[[recipient]]",
            "address = \"a@example.org\"",
            "address = \"b@example.org\"",
            "state = \"pending\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        drop(q);
        let q = Queue::open(&d.path().join("queue")).unwrap();
        let l = q.lock(&id).unwrap().unwrap();
        assert_eq!(l.meta().profile, "work");
        assert_eq!(l.pending(), ["a@example.org", "b@example.org"]);
        assert_eq!(l.envelope().mail_options, ["RET=HDRS"]);
        assert_eq!(l.info().size, 3);
    }

    /// A body far larger than any buffer, delivered by a reader that hands
    /// out a few KiB at a time, arrives intact.
    #[test]
    fn huge_body_streams_in_chunks() {
        struct Gen {
            left: u64,
            state: u64,
            max: usize,
        }
        impl Read for Gen {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.max).min(self.left as usize);
                for b in &mut buf[..n] {
                    self.state = self
                        .state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    *b = (self.state >> 56) as u8;
                }
                self.left -= n as u64;
                Ok(n)
            }
        }
        let gen_ = || Gen {
            left: 40 << 20,
            state: 7,
            max: 4093,
        };
        let (_d, q) = queue();
        let s = q.spool(&mut gen_(), message(&["a@example.org"])).unwrap();
        assert_eq!(fs::metadata(&s.path).unwrap().len(), 40 << 20);
        let mut want = gen_();
        let mut scanner = BodyScanner::new();
        let mut got = s.open().unwrap();
        let (mut a, mut b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
        loop {
            let n = got.read(&mut a).unwrap();
            if n == 0 {
                break;
            }
            want.read_exact(&mut b[..n]).unwrap();
            assert!(a[..n] == b[..n]);
            scanner.update(&b[..n]);
        }
        assert_eq!(want.left, 0);
        assert_eq!(s.info, scanner.finish());
    }

    #[test]
    fn user_queue_modes() {
        let (_d, q) = queue();
        assert!(!q.is_shared());
        let id = spool(&q, b"x\n", &["a@b"]);
        for sub in SUBDIRS {
            let m = fs::metadata(q.dir().join(sub))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o7777, 0o700, "{sub}");
        }
        for p in [q.eml_path(&id), q.env_path(&id)] {
            let m = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(m & 0o7777, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn shared_spool_keeps_its_mode_and_writes_group_files() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("spool");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o2770)).unwrap();
        let q = Queue::open(&dir).unwrap();
        assert!(q.is_shared());
        let id = spool(&q, b"x\n", &["a@b"]);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o2770);
        for sub in SUBDIRS {
            assert_eq!(mode(&dir.join(sub)), 0o2770, "{sub}");
        }
        assert_eq!(mode(&q.eml_path(&id)), 0o660);
        assert_eq!(mode(&q.env_path(&id)), 0o660);
        // Mere group-write without setgid is not a shared spool.
        let other = d.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::set_permissions(&other, Permissions::from_mode(0o770)).unwrap();
        assert!(!Queue::open(&other).unwrap().is_shared());
    }

    #[test]
    fn open_refuses_files_where_directories_belong() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("file");
        fs::write(&file, b"").unwrap();
        let e = Queue::open(&file).unwrap_err();
        assert!(matches!(e, QueueError::CreateDir { .. }), "{e}");
        assert_eq!(e.kind(), Sysexit::CantCreate);
        let e = Queue::open(&file.join("queue")).unwrap_err();
        assert_eq!(e.kind(), Sysexit::CantCreate, "{e}");

        let dir = d.path().join("q");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("msg"), b"").unwrap();
        let e = Queue::open(&dir).unwrap_err();
        assert!(e.to_string().contains("msg"), "{e}");
        // A symlinked subdirectory is refused too.
        fs::remove_file(dir.join("msg")).unwrap();
        std::os::unix::fs::symlink(d.path(), dir.join("msg")).unwrap();
        assert!(Queue::open(&dir).is_err());
    }

    #[test]
    fn failed_spools_leave_nothing() {
        struct FailsAfter(usize);
        impl Read for FailsAfter {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("stdin went away"));
                }
                self.0 -= 1;
                buf.fill(b'x');
                Ok(buf.len())
            }
        }
        let (_d, q) = queue();
        let keep = spool(&q, b"kept\n", &["a@b"]);
        let before = names(&q.msg_dir());
        let check = |q: &Queue| {
            assert_eq!(names(&q.msg_dir()), before);
            assert!(names(&q.tmp_dir()).is_empty(), "{:?}", names(&q.tmp_dir()));
        };

        let e = q.spool(&mut FailsAfter(3), message(&["a@b"])).unwrap_err();
        assert!(matches!(e, QueueError::Input(_)), "{e}");
        assert_eq!(e.kind(), Sysexit::IoErr);
        check(&q);

        let e = q.spool(&mut &b""[..], message(&["a@b"])).unwrap_err();
        assert!(matches!(e, QueueError::Empty), "{e}");
        check(&q);

        let e = q.spool(&mut &b"x"[..], message(&[])).unwrap_err();
        assert!(matches!(e, QueueError::NoRecipients), "{e}");
        check(&q);

        // msg/ replaced by a file: the renames fail after both files were
        // written to tmp/.
        let msg = q.msg_dir();
        let aside = q.dir().join("msg.real");
        fs::rename(&msg, &aside).unwrap();
        fs::write(&msg, b"").unwrap();
        let e = q.spool(&mut &b"x\n"[..], message(&["a@b"])).unwrap_err();
        assert!(matches!(e, QueueError::Write { .. }), "{e}");
        assert_eq!(e.kind(), Sysexit::CantCreate);
        assert!(names(&q.tmp_dir()).is_empty());
        fs::remove_file(&msg).unwrap();
        fs::rename(&aside, &msg).unwrap();
        check(&q);

        // tmp/ replaced by a file: nothing can be created.
        let tmp = q.tmp_dir();
        fs::remove_dir(&tmp).unwrap();
        fs::write(&tmp, b"").unwrap();
        let e = q.spool(&mut &b"x\n"[..], message(&["a@b"])).unwrap_err();
        assert_eq!(e.kind(), Sysexit::CantCreate, "{e}");
        assert!(q.check_writable().is_err());
        fs::remove_file(&tmp).unwrap();
        fs::create_dir(&tmp).unwrap();
        check(&q);

        // Unwritable tmp/: only meaningful when permissions bind us.
        if !is_root() {
            fs::set_permissions(&tmp, Permissions::from_mode(0o500)).unwrap();
            let e = q.spool(&mut &b"x\n"[..], message(&["a@b"])).unwrap_err();
            assert_eq!(e.kind(), Sysexit::CantCreate, "{e}");
            assert!(q.check_writable().is_err());
            fs::set_permissions(&tmp, Permissions::from_mode(0o700)).unwrap();
            check(&q);
        }
        assert_eq!(fs::read(q.eml_path(&keep)).unwrap(), b"kept\n");
    }

    #[test]
    fn choose_falls_back_in_order() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("file");
        fs::write(&file, b"").unwrap();
        let good = d.path().join("good");
        let c = choose_from(vec![file.join("q"), good.clone(), d.path().join("later")]).unwrap();
        assert_eq!(c.queue.dir(), good);
        assert_eq!(c.skipped.len(), 1);
        assert!(!d.path().join("later").exists());
        let e = choose_from(vec![file.join("a"), file.join("b")]).unwrap_err();
        let QueueError::NoUsableDir(all) = &e else {
            panic!("{e}")
        };
        assert_eq!(all.len(), 2);
        assert_eq!(e.kind(), Sysexit::CantCreate);
        assert!(matches!(
            choose_from(vec![]),
            Err(QueueError::NoUsableDir(v)) if v.is_empty()
        ));
    }

    #[test]
    fn candidates_end_with_the_system_spool() {
        let c = candidate_dirs(Some(Path::new("/etc/x")));
        assert_eq!(c.first().unwrap(), Path::new("/etc/x"));
        assert_eq!(c.last().unwrap(), Path::new(SYSTEM_DIR));
        let c = candidate_dirs(Some(Path::new(SYSTEM_DIR)));
        assert_eq!(c.iter().filter(|p| *p == Path::new(SYSTEM_DIR)).count(), 1);
        if let Some(d) = default_dir() {
            assert!(d.is_absolute() && d.ends_with("smtpsend/queue"), "{d:?}");
        }
    }

    #[test]
    fn spooled_message_stays_locked_until_dropped() {
        let (_d, q) = queue();
        let s = q.spool(&mut &b"x\n"[..], message(&["a@b"])).unwrap();
        let id = s.id.clone();
        assert_eq!(q.due(SystemTime::now()).unwrap().len(), 1);
        assert!(q.lock(&id).unwrap().is_none());
        assert!(q.orphans().unwrap().is_empty());
        drop(s);
        assert!(q.lock(&id).unwrap().is_some());

        // The caller's first attempt goes through the same guard.
        let mut s = q.spool(&mut &b"y\n"[..], message(&["a@b"])).unwrap();
        let next = s
            .locked()
            .defer("451 later", None, SystemTime::now())
            .unwrap();
        assert!(q.due(next - Duration::from_secs(1)).unwrap().len() == 1);
        let second = s.id.clone();
        s.into_locked().complete().unwrap();
        assert!(q.lock(&second).unwrap_err().is_not_found());
        assert_eq!(q.list().unwrap().len(), 1);
    }

    #[test]
    fn orphans_are_found_and_quarantined() {
        let (_d, q) = queue();
        let good = spool(&q, b"good\n", &["a@b"]);
        let no_meta = spool(&q, b"no meta\n", &["a@b"]);
        let no_body = spool(&q, b"no body\n", &["a@b"]);
        let bad = spool(&q, b"bad meta\n", &["a@b"]);
        fs::remove_file(q.env_path(&no_meta)).unwrap();
        fs::remove_file(q.eml_path(&no_body)).unwrap();
        fs::write(q.env_path(&bad), "version = 1\nnonsense").unwrap();
        let crashed = Id::generate(SystemTime::now());
        fs::write(q.tmp_path(&crashed, "eml"), b"half a mess").unwrap();
        fs::write(q.tmp_path(&crashed, "env"), b"version").unwrap();
        // Not queue files: ignored.
        fs::write(q.msg_dir().join("README"), b"").unwrap();

        let mut found: Vec<(Id, Problem)> = q
            .orphans()
            .unwrap()
            .into_iter()
            .map(|o| (o.id, o.problem))
            .collect();
        found.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(format!("{:?}", a.1).cmp(&format!("{:?}", b.1)))
        });
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(found.contains(&(no_meta.clone(), Problem::NoMeta)));
        assert!(found.contains(&(no_body.clone(), Problem::NoBody)));
        assert!(
            found
                .iter()
                .any(|(i, p)| *i == bad && matches!(p, Problem::BadMeta(_)))
        );
        assert_eq!(
            found
                .iter()
                .filter(|(i, p)| *i == crashed && *p == Problem::Unfinished)
                .count(),
            2
        );
        // Only the sound entry is listed, and damage is no error.
        let listed: Vec<Id> = q.list().unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(listed, std::slice::from_ref(&good));
        assert!(matches!(q.lock(&bad), Err(QueueError::Corrupt { .. })));
        assert!(q.lock(&no_meta).unwrap_err().is_not_found());

        // A locked orphan is someone's work in progress: left alone.
        let busy = File::open(q.eml_path(&no_meta)).unwrap();
        busy.lock().unwrap();
        assert!(!q.orphans().unwrap().iter().any(|o| o.id == no_meta));

        let now = SystemTime::now();
        assert!(q.quarantine(STALE_AFTER, now).unwrap().is_empty());
        let later = now + STALE_AFTER + Duration::from_secs(1);
        let moved = q.quarantine(STALE_AFTER, later).unwrap();
        assert_eq!(moved.len(), 4, "{moved:?}");
        assert_eq!(
            names(&q.msg_dir()),
            [
                format!("{good}.eml"),
                format!("{good}.env"),
                format!("{no_meta}.eml"),
                "README".into()
            ]
        );
        drop(busy);
        assert_eq!(q.quarantine(STALE_AFTER, later).unwrap().len(), 1);
        assert!(names(&q.tmp_dir()).is_empty());
        assert_eq!(
            names(&q.corrupt_dir()),
            [
                format!("{crashed}.eml"),
                format!("{no_body}.env"),
                format!("{no_meta}.eml"),
                format!("{bad}.eml"),
                format!("{bad}.env"),
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        assert_eq!(
            fs::read(q.corrupt_dir().join(format!("{no_meta}.eml"))).unwrap(),
            b"no meta\n"
        );
        assert!(q.orphans().unwrap().is_empty());
    }
}
