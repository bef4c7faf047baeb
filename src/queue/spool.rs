//! The spool: where the queue lives, who owns it, how a message enters
//! it, and what happens to the debris a crash leaves.
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
//!
//! Every operation goes through directory descriptors opened once in
//! [`Queue::open`] and checked there (see the module docs of `files`):
//! a directory renamed or swapped for a symlink afterwards is never
//! followed.

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::error::QueueError;
use super::files;
use super::id::Id;
use super::lock::Locked;
use super::meta::{self, META_VERSION, Meta, Recipient, RecipientState};
use super::time;
use crate::smtp::data::BodyScanner;
use crate::smtp::{BodyInfo, Dsn};

/// The system spool: root-owned, sticky, writable by all but listable by
/// root alone (`install -d -o root -g root -m 1733 /var/spool/smtpsend`).
/// It holds one 0700 directory per uid, named by the number, made by
/// smtpsend on that uid's first use and owned by it; see [`Queue`].
pub const SYSTEM_DIR: &str = "/var/spool/smtpsend";

/// How much of the message is held in memory while spooling.
pub const SPOOL_CHUNK: usize = 64 * 1024;

/// How old crash debris must be before [`Queue::quarantine`] moves it
/// (a suggestion for the runner; locks already protect work in progress,
/// this guards against file systems where locks do not work).
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The default free-space floor of the spool's file system
/// ([`Queue::with_min_free`]): 20 MiB. Below it nothing is spooled, so a
/// queue never fills its disk to the last block: the metadata updates of
/// the mail already queued (a few hundred bytes each), dead.letter and
/// the rest of the system keep room. Postfix's `queue_minfree` reasoning:
/// room for 1.5 of the largest message expected (10 MB, the common relay
/// limit), rounded up.
pub const DEFAULT_MIN_FREE: u64 = 20 << 20;

/// How often, in bytes written, spooling checks the free-space floor
/// again: a message that would take the disk below it is abandoned
/// part-way, with nothing left behind.
const FREE_CHECK_EVERY: u64 = 1 << 20;

/// Mode of the directories of a queue.
const DIR_MODE: u32 = 0o700;
/// Mode of the files of a queue.
pub(crate) const FILE_MODE: u32 = 0o600;
/// The sticky bit: set on the system spool.
const STICKY: u32 = 0o1000;

const SUBDIRS: [&str; 5] = ["tmp", "msg", "corrupt", "dead", "hint"];

/// An open queue directory, owned by one uid.
///
/// ```text
/// DIR/tmp/ID.eml      a message being written (locked by its writer)
/// DIR/tmp/ID.env      metadata being written
/// DIR/msg/ID.eml      a queued message: exactly the bytes received
/// DIR/msg/ID.env      its metadata (see Meta): the entry exists once this does
/// DIR/corrupt/        orphans and damaged entries, moved aside, never deleted
/// DIR/dead/dead.letter  the dead.letter of last resort
/// DIR/hint/           per-profile "something may be due" times (hint.rs)
/// DIR/run.lock        held by the one queue run at a time
/// ```
///
/// # Owners
///
/// Every directory is 0700 and every file 0600, set with `fchmod`
/// whatever the umask, and everything must belong to the queue's uid:
/// a directory or file owned by anyone else, or a directory writable by
/// group or others, is refused (a file: the entry is reported damaged
/// and never sent). So one user's entries can be read, changed, removed
/// or forged only by that user and root.
///
/// `DIR` is either a user's own queue (owned by the caller, not writable
/// by others: `~/.local/state/smtpsend/queue` by default) or the system
/// spool: a root-owned directory with the sticky bit (mode 1733, see
/// [`SYSTEM_DIR`]), in which each uid gets its own queue `DIR/UID`,
/// created on first use (mode 0700, owned by that uid). The sticky bit
/// keeps anyone from removing or renaming another's directory; 1733
/// (rather than 1777) keeps users from listing who has mail queued. A
/// name squatted by another user (a directory they made with my uid's
/// number) is refused, and smtpsend falls back to the next queue.
///
/// Root may list and remove other users' entries ([`crate::queue::owner`])
/// but never delivers them as itself: a queue run started by root runs
/// each uid's queue in a process that has become that uid.
#[derive(Debug, Clone)]
pub struct Queue {
    dirs: Arc<Dirs>,
    min_free: u64,
    /// The hint book of the run working through this handle.
    pub(crate) book: Option<Arc<std::sync::Mutex<super::hint::BookInner>>>,
}

#[derive(Debug)]
struct Dirs {
    path: PathBuf,
    uid: u32,
    system: bool,
    root: OwnedFd,
    tmp: OwnedFd,
    msg: OwnedFd,
    corrupt: OwnedFd,
    dead: OwnedFd,
    hint: OwnedFd,
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
    /// Metadata that cannot be read, or a file not owned by the queue's
    /// owner; the reason.
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
    /// Opens the queue in `dir` for this process's effective uid, creating
    /// it and its subdirectories as needed (see [`Queue`] for the owners
    /// and modes). A root-owned sticky `dir` is a system spool: the queue
    /// is `dir/UID`. Does not prove the queue is writable:
    /// [`Queue::check_writable`] does.
    pub fn open(dir: &Path) -> Result<Queue, QueueError> {
        let uid = files::euid();
        let create_err = |path: &Path, source| QueueError::CreateDir {
            path: path.to_owned(),
            source,
        };
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(dir)
                    .map_err(|e| create_err(dir, e))?;
            }
            _ => {}
        }
        let top = files::open_dir_at(None, dir, None).map_err(|e| create_err(dir, e))?;
        let st = rustix::fs::fstat(&top).map_err(|e| create_err(dir, e.into()))?;
        if st.st_uid == 0 && st.st_mode & STICKY != 0 {
            return Queue::open_in(top.as_fd(), dir, uid, true);
        }
        files::verify_dir(top.as_fd(), uid, dir).map_err(|e| {
            create_err(
                dir,
                io::Error::new(
                    e.kind(),
                    format!(
                        "{e}; a queue shared by several users must be the system spool \
                         (chown root:root {0} && chmod 1733 {0})",
                        dir.display()
                    ),
                ),
            )
        })?;
        Queue::from_root(top, dir.to_owned(), uid, false, true)
    }

    /// Opens the queue of `uid` in the system spool whose directory is
    /// open as `spool` (at `spool_path`): `UID`, created if `create`
    /// (only ever by that uid itself). The directory must belong to
    /// `uid` and be 0700.
    pub(crate) fn open_in(
        spool: BorrowedFd<'_>,
        spool_path: &Path,
        uid: u32,
        create: bool,
    ) -> Result<Queue, QueueError> {
        let name = uid.to_string();
        let path = spool_path.join(&name);
        let create_err = |source| QueueError::CreateDir {
            path: path.clone(),
            source,
        };
        let fd = files::open_dir_at(Some(spool), Path::new(&name), create.then_some(DIR_MODE))
            .map_err(create_err)?;
        let st = files::verify_dir(fd.as_fd(), uid, &path).map_err(create_err)?;
        if st.st_mode & 0o077 != 0 {
            return Err(create_err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is readable by others (mode {:o}); chmod 700 it",
                    path.display(),
                    st.st_mode & 0o7777
                ),
            )));
        }
        Queue::from_root(fd, path, uid, true, create)
    }

    fn from_root(
        root: OwnedFd,
        path: PathBuf,
        uid: u32,
        system: bool,
        create: bool,
    ) -> Result<Queue, QueueError> {
        let sub = |name: &str| -> Result<OwnedFd, QueueError> {
            let p = path.join(name);
            let fd = files::open_dir_at(
                Some(root.as_fd()),
                Path::new(name),
                create.then_some(DIR_MODE),
            )
            .map_err(|source| QueueError::CreateDir {
                path: p.clone(),
                source,
            })?;
            files::verify_dir(fd.as_fd(), uid, &p)
                .map_err(|source| QueueError::CreateDir { path: p, source })?;
            Ok(fd)
        };
        let [tmp, msg, corrupt, dead, hint] = SUBDIRS;
        Ok(Queue {
            dirs: Arc::new(Dirs {
                tmp: sub(tmp)?,
                msg: sub(msg)?,
                corrupt: sub(corrupt)?,
                dead: sub(dead)?,
                hint: sub(hint)?,
                root,
                path,
                uid,
                system,
            }),
            min_free: DEFAULT_MIN_FREE,
            book: None,
        })
    }

    /// The same queue with a free-space floor of `bytes` (default
    /// [`DEFAULT_MIN_FREE`]; 0 turns it off): [`Queue::spool`] refuses
    /// with [`QueueError::LowSpace`] (EX_TEMPFAIL) when the spool's file
    /// system has less free, before reading the message or part-way.
    pub fn with_min_free(mut self, bytes: u64) -> Queue {
        self.min_free = bytes;
        self
    }

    /// The free-space floor ([`Queue::with_min_free`]).
    pub fn min_free(&self) -> u64 {
        self.min_free
    }

    /// The queue directory (for a system spool, `SPOOL/UID`).
    pub fn dir(&self) -> &Path {
        &self.dirs.path
    }

    /// The uid that owns this queue.
    pub fn owner(&self) -> u32 {
        self.dirs.uid
    }

    /// Whether this is a uid's directory in a system spool.
    pub fn is_system(&self) -> bool {
        self.dirs.system
    }

    /// Proves the queue can be written by creating and removing a file in
    /// `tmp/` (permission bits say nothing to root, and nothing about a
    /// read-only mount or a full disk).
    pub fn check_writable(&self) -> Result<(), QueueError> {
        let mut rnd = [0u8; 8];
        let _ = getrandom::fill(&mut rnd);
        let name = format!(
            ".probe-{:016x}-{}",
            u64::from_le_bytes(rnd),
            std::process::id()
        );
        let tmp = self.tmp_fd();
        files::create_at(tmp, &name, FILE_MODE)
            .and_then(|_| files::unlink_at(tmp, &name))
            .map_err(|e| QueueError::write(self.tmp_dir(), e))
    }

    /// Fails with [`QueueError::LowSpace`] when the spool's file system
    /// has less than the floor free.
    fn check_free(&self) -> Result<(), QueueError> {
        if self.min_free == 0 {
            return Ok(());
        }
        let free = files::free_bytes(self.tmp_fd()).map_err(|e| QueueError::read(self.dir(), e))?;
        if free < self.min_free {
            return Err(QueueError::LowSpace {
                path: self.dir().to_owned(),
                free,
                floor: self.min_free,
            });
        }
        Ok(())
    }

    /// Spools a message: streams `body` in [`SPOOL_CHUNK`]s to the queue,
    /// computing its [`BodyInfo`], then writes its metadata; both synced
    /// to disk before this returns. The message is due at once, and is
    /// returned locked (see [`Spooled`]).
    ///
    /// Errors: [`QueueError::Input`] if reading `body` failed,
    /// [`QueueError::Empty`] for a message of no bytes,
    /// [`QueueError::NoRecipients`], [`QueueError::LowSpace`] below the
    /// free-space floor, and [`QueueError::Write`] (or `Lock`) if the
    /// queue could not take it: full disk, quota, unwritable or read-only
    /// spool. Whatever the error, nothing is left behind.
    ///
    /// Whether `body` can still be used for a direct delivery depends on
    /// when it failed: an unwritable, read-only or missing spool, or one
    /// already below the floor, fails before `body` is read at all; a disk
    /// that fills up fails part-way, with `body` partly read. A caller that
    /// must fall back in that case too needs a source it can read again
    /// (a file), or answers EX_TEMPFAIL as sendmail does when its queue
    /// disk is full, so that its own caller retries.
    pub fn spool(&self, body: &mut dyn Read, msg: NewMessage) -> Result<Spooled, QueueError> {
        if msg.recipients.is_empty() {
            return Err(QueueError::NoRecipients);
        }
        self.check_free()?;
        let now = SystemTime::now();
        let (id, mut file) = self.create_tmp_body(now)?;
        let now = time::whole_seconds(now);
        let (eml, env) = (id.file_name("eml"), id.file_name("env"));
        // Removes what this call created on every early return; the lock
        // keeps everyone else off it meanwhile. Metadata first.
        let mut cleanup = Cleanup {
            queue: self,
            names: vec![(Sub::Tmp, env.clone()), (Sub::Tmp, eml.clone())],
        };
        let tmp_eml = self.tmp_path(&id, "eml");
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
        let info = self.copy_scanning(body, &mut file, &tmp_eml)?;
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
            delay_notice: None,
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
        meta::write_tmp(self, &id, &meta)?;
        let (tmp, msg_fd) = (self.tmp_fd(), self.msg_fd());
        // Never rename over another message: IDs differ in time or in 32
        // random bits, so this only guards against the impossible.
        for name in [&eml, &env] {
            if files::stat_at(msg_fd, name)
                .map_err(|e| QueueError::read(self.msg_dir(), e))?
                .is_some()
            {
                return Err(QueueError::write(
                    self.msg_dir().join(name),
                    io::Error::new(io::ErrorKind::AlreadyExists, "queue ID already in use"),
                ));
            }
        }
        // The body first, made durable before the metadata that makes it
        // an entry, so no crash can leave metadata without its body.
        files::rename_at(tmp, &eml, msg_fd, &eml)
            .map_err(|e| QueueError::write(self.eml_path(&id), e))?;
        cleanup.names.insert(0, (Sub::Msg, eml.clone()));
        files::sync_dir(msg_fd).map_err(|e| QueueError::write(self.msg_dir(), e))?;
        files::rename_at(tmp, &env, msg_fd, &env)
            .map_err(|e| QueueError::write(self.env_path(&id), e))?;
        // Until the directory is synced the entry may not survive a crash:
        // an error here must not leave it to be sent a second time.
        cleanup.names.insert(0, (Sub::Msg, env));
        files::sync_dir(msg_fd).map_err(|e| QueueError::write(self.msg_dir(), e))?;
        cleanup.names.clear();
        Ok(Spooled {
            path: self.eml_path(&id),
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
            match files::create_at(self.tmp_fd(), &id.file_name("eml"), FILE_MODE) {
                Ok(f) => return Ok((id, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(QueueError::write(self.tmp_path(&id, "eml"), e)),
            }
        }
        Err(QueueError::write(
            self.tmp_dir(),
            last.unwrap_or_else(|| io::Error::other("no free queue ID")),
        ))
    }

    /// Copies `src` to `dst` in [`SPOOL_CHUNK`]s, scanning as it goes and
    /// checking the free-space floor every [`FREE_CHECK_EVERY`] bytes.
    fn copy_scanning(
        &self,
        src: &mut dyn Read,
        dst: &mut File,
        path: &Path,
    ) -> Result<BodyInfo, QueueError> {
        let mut buf = vec![0u8; SPOOL_CHUNK];
        let mut scanner = BodyScanner::new();
        let mut since_check = 0u64;
        loop {
            let n = files::read_some(src, &mut buf).map_err(QueueError::Input)?;
            if n == 0 {
                break;
            }
            scanner.update(&buf[..n]);
            dst.write_all(&buf[..n])
                .map_err(|e| QueueError::write(path, e))?;
            since_check += n as u64;
            if since_check >= FREE_CHECK_EVERY {
                since_check = 0;
                self.check_free()?;
            }
        }
        Ok(scanner.finish())
    }

    /// Every file in the queue that is not part of a deliverable entry,
    /// oldest first. Files another process holds locked (being spooled,
    /// being completed) are not orphans and are left out. Nothing is
    /// changed.
    pub fn orphans(&self) -> Result<Vec<Orphan>, QueueError> {
        let mut out = Vec::new();
        for (id, f) in self.scan(Sub::Msg)? {
            let (problem, ext) = match (f.eml, f.env) {
                (true, false) => {
                    if self.probe(Sub::Msg, &id.file_name("eml")) != Probe::Free {
                        continue;
                    }
                    (Problem::NoMeta, "eml")
                }
                (false, true) => (Problem::NoBody, "env"),
                (true, true) => match meta::read(self, &id) {
                    Err(meta::ReadError::Damaged(QueueError::Corrupt { reason, .. })) => {
                        (Problem::BadMeta(reason), "env")
                    }
                    _ => continue,
                },
                (false, false) => continue,
            };
            self.push_orphan(&mut out, Sub::Msg, id, ext, problem);
        }
        for (id, f) in self.scan(Sub::Tmp)? {
            // A writer holds the lock on the body (in tmp/ while it is
            // spooled, in msg/ while its metadata is updated).
            if self.probe(Sub::Tmp, &id.file_name("eml")) == Probe::Held
                || (f.env && self.probe(Sub::Msg, &id.file_name("eml")) == Probe::Held)
            {
                continue;
            }
            for (present, ext) in [(f.eml, "eml"), (f.env, "env")] {
                if present {
                    self.push_orphan(&mut out, Sub::Tmp, id.clone(), ext, Problem::Unfinished);
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
        let corrupt = self.corrupt_fd();
        let mut done = Vec::new();
        for o in self.orphans()? {
            if o.modified.checked_add(older_than).is_none_or(|t| t > now) {
                continue;
            }
            let aside = |sub: Sub, name: &str| {
                files::move_aside(self.fd(sub), name, corrupt)
                    .map(drop)
                    .map_err(|e| QueueError::write(self.sub_path(sub).join(name), e))
            };
            let (eml, env) = (o.id.file_name("eml"), o.id.file_name("env"));
            match &o.problem {
                Problem::NoBody => aside(Sub::Msg, &env)?,
                Problem::NoMeta | Problem::BadMeta(_) => {
                    // Under its lock, and only if still what it was.
                    let Some(_lock) = self.try_lock_name(Sub::Msg, &eml)? else {
                        continue;
                    };
                    let still = match o.problem {
                        Problem::NoMeta => files::stat_at(self.msg_fd(), &env)
                            .map_err(|e| QueueError::read(self.env_path(&o.id), e))?
                            .is_none(),
                        _ => matches!(meta::read(self, &o.id), Err(meta::ReadError::Damaged(_))),
                    };
                    if !still {
                        continue;
                    }
                    if matches!(o.problem, Problem::BadMeta(_)) {
                        aside(Sub::Msg, &env)?;
                    }
                    aside(Sub::Msg, &eml)?;
                }
                Problem::Unfinished if o.path.extension().is_some_and(|e| e == "env") => {
                    files::unlink_at(self.tmp_fd(), &env)
                        .map_err(|e| QueueError::write(&o.path, e))?;
                }
                Problem::Unfinished => {
                    let Some(_lock) = self.try_lock_name(Sub::Tmp, &eml)? else {
                        continue;
                    };
                    aside(Sub::Tmp, &eml)?;
                }
            }
            done.push(o);
        }
        if !done.is_empty() {
            for sub in [Sub::Corrupt, Sub::Msg, Sub::Tmp] {
                files::sync_dir(self.fd(sub))
                    .map_err(|e| QueueError::write(self.sub_path(sub), e))?;
            }
        }
        Ok(done)
    }

    /// The entries of `msg/` or `tmp/` named like queue files, by ID.
    pub(crate) fn scan(&self, sub: Sub) -> Result<BTreeMap<Id, Present>, QueueError> {
        let mut out: BTreeMap<Id, Present> = BTreeMap::new();
        let names =
            files::names_at(self.fd(sub)).map_err(|e| QueueError::read(self.sub_path(sub), e))?;
        for name in names {
            if let Some(id) = Id::from_file_name(&name, "eml") {
                out.entry(id).or_default().eml = true;
            } else if let Some(id) = Id::from_file_name(&name, "env") {
                out.entry(id).or_default().env = true;
            }
        }
        Ok(out)
    }

    /// Whether `msg/` holds anything at all: reads one block of the
    /// directory, whatever the queue's size.
    pub fn is_empty(&self) -> Result<bool, QueueError> {
        files::has_entries_besides(self.msg_fd(), &[])
            .map(|any| !any)
            .map_err(|e| QueueError::read(self.msg_dir(), e))
    }

    pub(crate) fn fd(&self, sub: Sub) -> BorrowedFd<'_> {
        match sub {
            Sub::Tmp => self.dirs.tmp.as_fd(),
            Sub::Msg => self.dirs.msg.as_fd(),
            Sub::Corrupt => self.dirs.corrupt.as_fd(),
            Sub::Dead => self.dirs.dead.as_fd(),
            Sub::Hint => self.dirs.hint.as_fd(),
        }
    }

    pub(crate) fn sub_path(&self, sub: Sub) -> PathBuf {
        self.dirs.path.join(match sub {
            Sub::Tmp => "tmp",
            Sub::Msg => "msg",
            Sub::Corrupt => "corrupt",
            Sub::Dead => "dead",
            Sub::Hint => "hint",
        })
    }

    pub(crate) fn root_fd(&self) -> BorrowedFd<'_> {
        self.dirs.root.as_fd()
    }

    pub(crate) fn tmp_fd(&self) -> BorrowedFd<'_> {
        self.fd(Sub::Tmp)
    }

    pub(crate) fn msg_fd(&self) -> BorrowedFd<'_> {
        self.fd(Sub::Msg)
    }

    pub(crate) fn corrupt_fd(&self) -> BorrowedFd<'_> {
        self.fd(Sub::Corrupt)
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.sub_path(Sub::Tmp)
    }

    pub(crate) fn msg_dir(&self) -> PathBuf {
        self.sub_path(Sub::Msg)
    }

    #[cfg(test)]
    pub(crate) fn corrupt_dir(&self) -> PathBuf {
        self.sub_path(Sub::Corrupt)
    }

    pub(crate) fn eml_path(&self, id: &Id) -> PathBuf {
        self.msg_dir().join(id.file_name("eml"))
    }

    pub(crate) fn env_path(&self, id: &Id) -> PathBuf {
        self.msg_dir().join(id.file_name("env"))
    }

    pub(crate) fn tmp_path(&self, id: &Id, ext: &str) -> PathBuf {
        self.tmp_dir().join(id.file_name(ext))
    }

    /// Whether someone holds the lock on `name` in `sub` (taking and at
    /// once releasing it if not).
    fn probe(&self, sub: Sub, name: &str) -> Probe {
        match files::open_existing_at(self.fd(sub), name) {
            Ok(f) => match f.try_lock() {
                Ok(()) => Probe::Free,
                Err(TryLockError::WouldBlock) => Probe::Held,
                Err(TryLockError::Error(_)) => Probe::Free,
            },
            Err(_) => Probe::Gone,
        }
    }

    /// Locks `name` in `sub` if nobody holds it: `None` if somebody does
    /// or it is gone.
    fn try_lock_name(&self, sub: Sub, name: &str) -> Result<Option<File>, QueueError> {
        let path = self.sub_path(sub).join(name);
        let f = match files::open_existing_at(self.fd(sub), name) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(QueueError::read(path, e)),
        };
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(QueueError::Lock { path, source }),
        }
    }

    fn push_orphan(&self, out: &mut Vec<Orphan>, sub: Sub, id: Id, ext: &str, problem: Problem) {
        let name = id.file_name(ext);
        // Gone since the scan: someone else dealt with it.
        let Ok(Some(st)) = files::stat_at(self.fd(sub), &name) else {
            return;
        };
        out.push(Orphan {
            modified: SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(st.st_mtime).unwrap_or(0)),
            path: self.sub_path(sub).join(name),
            id,
            problem,
        });
    }
}

/// The subdirectories of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    Tmp,
    Msg,
    Corrupt,
    Dead,
    Hint,
}

/// Which of a message's two files a directory holds.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Present {
    pub eml: bool,
    pub env: bool,
}

/// Removes the listed names when dropped, unless emptied first.
struct Cleanup<'a> {
    queue: &'a Queue,
    names: Vec<(Sub, String)>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for (sub, name) in &self.names {
            let _ = files::unlink_at(self.queue.fd(*sub), name);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Free,
    Held,
    Gone,
}

/// Shared by the tests of the spool, the locks and the listing.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::fs;

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
    use std::fs::{self, Permissions};
    use std::os::unix::fs::PermissionsExt;

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
        assert!(!q.is_system());
        assert_eq!(q.owner(), files::euid());
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

    /// The old shared spool (group-writable, setgid) is refused, with the
    /// fix named: group members could forge each other's entries there.
    #[test]
    fn a_group_writable_queue_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("spool");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o2770)).unwrap();
        let e = Queue::open(&dir).unwrap_err();
        assert_eq!(e.kind(), Sysexit::CantCreate);
        let text = e.to_string();
        assert!(
            text.contains("writable by group") && text.contains("chmod 1733"),
            "{text}"
        );
        // A subdirectory made group-writable is refused too.
        let (_d2, q) = queue();
        fs::set_permissions(q.msg_dir(), Permissions::from_mode(0o770)).unwrap();
        assert!(Queue::open(q.dir()).is_err());
    }

    /// A root-owned sticky directory is a system spool: each uid gets its
    /// own 0700 directory in it. Only root can make one to test with.
    #[test]
    fn system_spool_gives_each_uid_its_own_directory() {
        if !is_root() {
            eprintln!("not root: a root-owned system spool cannot be made; skipped");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("spool");
        fs::create_dir(&sys).unwrap();
        fs::set_permissions(&sys, Permissions::from_mode(0o1733)).unwrap();
        let q = Queue::open(&sys).unwrap();
        assert!(q.is_system());
        assert_eq!(q.dir(), sys.join("0"));
        let id = spool(&q, b"x\n", &["a@b"]);
        assert!(sys.join("0/msg").join(format!("{id}.env")).exists());
        let mode = fs::metadata(sys.join("0")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o700);
        // A squatted directory (owned by someone else) is refused.
        fs::remove_dir_all(sys.join("0")).unwrap();
        fs::create_dir(sys.join("0")).unwrap();
        rustix::fs::chown(sys.join("0"), Some(rustix::fs::Uid::from_raw(4242)), None).unwrap();
        let e = Queue::open(&sys).unwrap_err();
        assert!(e.to_string().contains("owned by uid 4242"), "{e}");
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

        // Below the free-space floor: refused before anything is made.
        let low = q.clone().with_min_free(u64::MAX);
        let e = low.spool(&mut &b"x\n"[..], message(&["a@b"])).unwrap_err();
        assert!(matches!(e, QueueError::LowSpace { .. }), "{e}");
        assert_eq!(e.kind(), Sysexit::TempFail);
        check(&q);

        // msg/ and tmp/ swapped for a file and a symlink after the queue
        // was opened: the descriptors still name the real directories, so
        // nothing is written through the swapped names.
        let (msg, tmp) = (q.msg_dir(), q.tmp_dir());
        let (msg_real, tmp_real) = (q.dir().join("msg.real"), q.dir().join("tmp.real"));
        let canary = tempfile::tempdir().unwrap();
        fs::rename(&msg, &msg_real).unwrap();
        fs::write(&msg, b"").unwrap();
        fs::rename(&tmp, &tmp_real).unwrap();
        std::os::unix::fs::symlink(canary.path(), &tmp).unwrap();
        let id = q.spool(&mut &b"x\n"[..], message(&["a@b"])).unwrap().id;
        assert!(msg_real.join(format!("{id}.env")).exists());
        assert!(names(canary.path()).is_empty());
        assert!(names(&tmp_real).is_empty());
        q.lock(&id).unwrap().unwrap().complete().unwrap();
        fs::remove_file(&msg).unwrap();
        fs::rename(&msg_real, &msg).unwrap();
        fs::remove_file(&tmp).unwrap();
        fs::rename(&tmp_real, &tmp).unwrap();
        check(&q);
        // Reopened now, the swap is refused.
        fs::rename(&tmp, &tmp_real).unwrap();
        std::os::unix::fs::symlink(canary.path(), &tmp).unwrap();
        assert!(Queue::open(q.dir()).is_err());
        fs::remove_file(&tmp).unwrap();
        fs::rename(&tmp_real, &tmp).unwrap();

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
