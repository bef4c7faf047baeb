//! Appending a message to a user's mbox (`/var/mail/USER`) the way
//! Debian's mail readers expect: mboxrd format, a dotlock and an fcntl
//! lock held together, nothing left half-written.
//!
//! # Format (mboxrd)
//!
//! Each message starts with a `From SENDER DATE` line (asctime date, UTC;
//! `MAILER-DAEMON` for the null sender) and ends with an empty line. Lines
//! end in LF (CRLF is turned into LF). A body line matching `>*From ` gets
//! one more `>`, so that it can be unquoted exactly (mboxrd, as mutt,
//! Thunderbird and Python's `mailbox` read it). Hand-written: the quoting
//! has to stream (messages can be large), and it is a few lines.
//!
//! # Locking
//!
//! Both locks Debian's readers use (mutt, bsd-mailx through liblockfile's
//! `dotlockfile`, s-nail), taken in the order liblockfile takes them:
//!
//! 1. the dotlock `DIR/USER.lock`, created with `O_CREAT|O_EXCL|O_NOFOLLOW`
//!    holding our pid in ASCII. A lock whose pid no longer runs, or older
//!    than [`STALE_LOCK`], is stale and removed (liblockfile's rule);
//! 2. an fcntl (POSIX record) write lock on the whole mailbox.
//!
//! Both are retried until the caller's deadline ([`LOCK_WAIT`] by
//! default); then the error is temporary and the message stays queued.
//!
//! # Paths and privileges
//!
//! Everything happens relative to a descriptor of the mail directory
//! opened with `O_DIRECTORY|O_NOFOLLOW` and checked (a directory owned by
//! root or by us, and not writable by others unless sticky). The mailbox
//! is opened with `O_NOFOLLOW` and must be a regular file with one link,
//! owned by the recipient: a symlink or hard link planted in its place is
//! refused. A new mailbox is made mode 0600 whatever the umask.
//!
//! This module writes as whoever runs it. Writing another user's mailbox
//! takes a process running as that user (on Debian, with group `mail` as
//! its group so it may create the dotlock in the `root:mail 2775`
//! directory), never a setuid smtpsend.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, Stat};
use rustix::io::Errno;

/// Debian's mail spool.
pub const MAIL_DIR: &str = "/var/mail";

/// How long locks are retried by default.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// A dotlock this old is stale whatever pid it names (liblockfile: 5 min).
pub const STALE_LOCK: Duration = Duration::from_secs(300);

/// The pause between two tries of a lock.
const LOCK_RETRY: Duration = Duration::from_millis(100);

/// The size of the write buffer.
const WRITE_BUF: usize = 64 * 1024;

/// The most read from a dotlock to find its pid.
const LOCK_CONTENT_MAX: usize = 32;

/// Why a message could not be appended. [`MboxError::is_temporary`] says
/// whether to keep it queued.
#[derive(Debug, thiserror::Error)]
pub enum MboxError {
    /// The mail directory is missing or unsafe.
    #[error("mail directory {path}: {reason}")]
    Dir { path: PathBuf, reason: String },
    /// A user name that cannot be a file name in the mail directory.
    #[error("{user:?} cannot name a mailbox: {reason}")]
    BadName { user: String, reason: String },
    /// The mailbox is not a file the recipient owns alone.
    #[error("mailbox {path}: {reason}; fix or remove it (the recipient must own a plain file)")]
    Unsafe { path: PathBuf, reason: String },
    /// Another program held a lock for the whole wait.
    #[error("mailbox {path} is locked ({which}) by another program; will retry")]
    Locked { path: PathBuf, which: &'static str },
    /// A system call failed.
    #[error("mailbox {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl MboxError {
    /// Whether trying again later may succeed (locks, I/O) rather than
    /// needing someone to fix something (names, ownership, modes).
    pub fn is_temporary(&self) -> bool {
        matches!(self, MboxError::Locked { .. } | MboxError::Io { .. })
    }
}

/// What [`deliver`] needs besides the message.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// The mail directory, normally [`MAIL_DIR`].
    pub dir: &'a Path,
    /// The recipient's login name: the mailbox's file name.
    pub user: &'a str,
    /// The envelope sender; empty for the null sender.
    pub sender: &'a str,
    /// When the message arrived (for the `From ` line).
    pub received: SystemTime,
    /// Header lines to put first (`Return-Path:`, `Delivered-To:`), LF or
    /// CRLF ended.
    pub prefix: &'a [u8],
    /// How long to wait for the locks.
    pub lock_wait: Duration,
}

/// Appends one message to `DIR/USER`, holding the dotlock and an fcntl
/// lock, and syncs it. Returns the number of bytes appended. On failure
/// the mailbox is truncated back to its former size: a reader never sees
/// half a message.
pub fn deliver(d: &Delivery<'_>, message: &mut dyn Read) -> Result<u64, MboxError> {
    check_user(d.user)?;
    let dir = open_dir(d.dir)?;
    let path = d.dir.join(d.user);
    let deadline = deadline(d.lock_wait);
    let _dotlock = DotLock::take(&dir, d.dir, d.user, deadline)?;
    let file = open_mailbox(&dir, &path, d.user)?;
    let io_err = |op| {
        let path = path.clone();
        move |source| MboxError::Io { path, op, source }
    };
    lock_fcntl(&file, &path, deadline)?;
    let before = rustix::fs::fstat(&file)
        .map_err(io::Error::from)
        .map_err(io_err("fstat"))?
        .st_size as u64;
    let written = append(&file, d, message);
    let result = written.and_then(|n| file.sync_all().map(|()| n));
    match result {
        Ok(n) => Ok(n),
        Err(source) => {
            // Leave the mailbox as it was. The error that matters is the
            // write's; a failed truncate cannot be reported better.
            let _ = rustix::fs::ftruncate(&file, before);
            let _ = file.sync_all();
            Err(io_err("append")(source))
        }
    }
}

fn deadline(wait: Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(wait).unwrap_or(now)
}

/// A mailbox name: a plain login name, never a path.
fn check_user(user: &str) -> Result<(), MboxError> {
    let bad = |reason: &str| {
        Err(MboxError::BadName {
            user: user.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if user.is_empty() || user.len() > 64 {
        return bad("empty or longer than 64 characters");
    }
    if user.starts_with(['.', '-']) {
        return bad("starts with '.' or '-'");
    }
    if !user
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'$'))
    {
        return bad("only letters, digits, '.', '_', '-' and '$' may be used");
    }
    Ok(())
}

/// Opens the mail directory without following a symlink and checks it.
fn open_dir(path: &Path) -> Result<OwnedFd, MboxError> {
    let dir_err = |reason: String| MboxError::Dir {
        path: path.to_owned(),
        reason,
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        dir_err(format!(
            "cannot open it as a directory ({e}); it must be a real directory, not a symlink"
        ))
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| dir_err(e.to_string()))?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != 0 && st.st_uid != me {
        return Err(dir_err(format!(
            "owned by uid {}, not root: `chown root {}`",
            st.st_uid,
            path.display()
        )));
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(dir_err(format!(
            "mode {mode:04o} lets anyone replace mailboxes: `chmod o-w {}` (Debian: root:mail 2775)",
            path.display()
        )));
    }
    Ok(fd)
}

/// The dotlock `USER.lock`, removed on drop if it is still ours.
struct DotLock<'a> {
    dir: &'a OwnedFd,
    name: String,
    ino: u64,
}

impl<'a> DotLock<'a> {
    fn take(
        dir: &'a OwnedFd,
        dir_path: &Path,
        user: &str,
        deadline: std::time::Instant,
    ) -> Result<DotLock<'a>, MboxError> {
        let name = format!("{user}.lock");
        let path = dir_path.join(&name);
        let io_err = |op, e: Errno| MboxError::Io {
            path: path.clone(),
            op,
            source: e.into(),
        };
        loop {
            match rustix::fs::openat(
                dir,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => {
                    let ino = rustix::fs::fstat(&fd)
                        .map_err(|e| io_err("fstat", e))?
                        .st_ino;
                    let lock = DotLock { dir, name, ino };
                    let mut f = File::from(fd);
                    // liblockfile's content: the pid, in ASCII, a newline.
                    writeln!(f, "{}", rustix::process::getpid().as_raw_nonzero()).map_err(
                        |source| MboxError::Io {
                            path: path.clone(),
                            op: "write the dotlock",
                            source,
                        },
                    )?;
                    return Ok(lock);
                }
                Err(Errno::EXIST) => {
                    if is_stale(dir, &name) {
                        match rustix::fs::unlinkat(dir, name.as_str(), AtFlags::empty()) {
                            Ok(()) | Err(Errno::NOENT) => continue,
                            Err(e) => return Err(io_err("remove a stale dotlock", e)),
                        }
                    }
                }
                Err(e) => return Err(io_err("create the dotlock", e)),
            }
            if std::time::Instant::now() >= deadline {
                return Err(MboxError::Locked {
                    path: path.clone(),
                    which: "dotlock",
                });
            }
            thread::sleep(LOCK_RETRY);
        }
    }
}

impl Drop for DotLock<'_> {
    fn drop(&mut self) {
        // Only our own lock: if it was removed as stale and someone else
        // holds one now, theirs stays.
        let ours = rustix::fs::statat(self.dir, self.name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| st.st_ino == self.ino);
        if ours {
            let _ = rustix::fs::unlinkat(self.dir, self.name.as_str(), AtFlags::empty());
        }
    }
}

/// Whether an existing dotlock is stale: older than [`STALE_LOCK`], or
/// naming a pid that no longer runs. An unreadable one is not stale (it
/// may be being written); it becomes stale by age.
fn is_stale(dir: &OwnedFd, name: &str) -> bool {
    let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    if age(&st) > STALE_LOCK {
        return true;
    }
    let Ok(fd) = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) else {
        return false;
    };
    let mut buf = Vec::new();
    if File::from(fd)
        .take(LOCK_CONTENT_MAX as u64)
        .read_to_end(&mut buf)
        .is_err()
    {
        return false;
    }
    let pid = std::str::from_utf8(&buf)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    match pid {
        Some(pid) => rustix::process::test_kill_process(pid) == Err(Errno::SRCH),
        None => false,
    }
}

fn age(st: &Stat) -> Duration {
    let mtime = UNIX_EPOCH + Duration::from_secs(u64::try_from(st.st_mtime).unwrap_or(0));
    SystemTime::now()
        .duration_since(mtime)
        .unwrap_or(Duration::ZERO)
}

/// Opens (or creates, 0600) the mailbox for appending and checks that it
/// is a plain file with one link owned by us, the recipient.
fn open_mailbox(dir: &OwnedFd, path: &Path, user: &str) -> Result<File, MboxError> {
    let io_err = |op, e: Errno| MboxError::Io {
        path: path.to_owned(),
        op,
        source: e.into(),
    };
    let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(
        dir,
        user,
        flags | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => {
            // Whatever the umask made of it.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(|e| io_err("chmod", e))?;
            fd
        }
        Err(Errno::EXIST) => match rustix::fs::openat(dir, user, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => {
                return Err(MboxError::Unsafe {
                    path: path.to_owned(),
                    reason: "it is a symbolic link".into(),
                });
            }
            Err(e) => return Err(io_err("open", e)),
        },
        Err(e) => return Err(io_err("create", e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err("fstat", e))?;
    let unsafe_ = |reason: String| {
        Err(MboxError::Unsafe {
            path: path.to_owned(),
            reason,
        })
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return unsafe_("not a regular file".into());
    }
    if st.st_nlink != 1 {
        return unsafe_(format!("it has {} hard links", st.st_nlink));
    }
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != me {
        return unsafe_(format!(
            "owned by uid {}, not by the recipient (uid {me})",
            st.st_uid
        ));
    }
    Ok(File::from(fd))
}

fn lock_fcntl(file: &File, path: &Path, deadline: std::time::Instant) -> Result<(), MboxError> {
    loop {
        match rustix::fs::fcntl_lock(file.as_fd(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(Errno::AGAIN | Errno::ACCESS) => {}
            Err(e) => {
                return Err(MboxError::Io {
                    path: path.to_owned(),
                    op: "fcntl lock",
                    source: e.into(),
                });
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(MboxError::Locked {
                path: path.to_owned(),
                which: "fcntl lock",
            });
        }
        thread::sleep(LOCK_RETRY);
    }
}

/// Writes the `From ` line, the prefix and the quoted message, and the
/// empty line that ends it.
fn append(file: &File, d: &Delivery<'_>, message: &mut dyn Read) -> io::Result<u64> {
    let mut out = Counting {
        inner: BufWriter::with_capacity(WRITE_BUF, file),
        n: 0,
    };
    let sender = if d.sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        d.sender
    };
    // A sender with spaces or control characters would break the From_
    // line; the envelope layer refuses them, this is a last guard.
    let sender: String = sender
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    writeln!(out, "From {sender} {}", asctime(d.received))?;
    let mut q = Quoting {
        q: Quoter::default(),
        out: &mut out,
    };
    q.write_all(d.prefix)?;
    io::copy(message, &mut q)?;
    let Quoting { mut q, .. } = q;
    q.finish(&mut out)?;
    out.write_all(b"\n")?;
    out.inner.flush()?;
    Ok(out.n)
}

/// The quoter as a writer, for `io::copy`.
struct Quoting<'a> {
    q: Quoter,
    out: &'a mut dyn Write,
}

impl Write for Quoting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.q.feed(buf, self.out)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The streaming mboxrd quoter: CRLF to LF, `>*From ` lines get one more
/// `>`, the output ends with a newline. Holds at most a pending CR, a
/// count of `>` and up to five bytes of `From `.
#[derive(Default)]
struct Quoter {
    /// Not at the start of a line (the prefix check is over).
    mid_line: bool,
    /// A CR seen, not yet known to be part of CRLF.
    cr: bool,
    /// `>` seen at the start of this line.
    gts: u64,
    /// How much of `From ` has matched after them.
    matched: usize,
    /// Anything written at all.
    any: bool,
    /// The last byte written was LF.
    last_lf: bool,
}

const FROM_: &[u8] = b"From ";

impl Quoter {
    fn feed(&mut self, data: &[u8], out: &mut dyn Write) -> io::Result<()> {
        for &b in data {
            if self.cr {
                self.cr = false;
                if b == b'\n' {
                    self.byte(b'\n', out)?;
                    continue;
                }
                self.byte(b'\r', out)?;
            }
            if b == b'\r' {
                self.cr = true;
            } else {
                self.byte(b, out)?;
            }
        }
        Ok(())
    }

    fn byte(&mut self, b: u8, out: &mut dyn Write) -> io::Result<()> {
        if !self.mid_line {
            if b == b'>' && self.matched == 0 {
                self.gts += 1;
                return Ok(());
            }
            if self.matched < FROM_.len() && b == FROM_[self.matched] {
                self.matched += 1;
                if self.matched == FROM_.len() {
                    // A From_ line: one more '>'.
                    self.flush_prefix(true, out)?;
                }
                return Ok(());
            }
            self.flush_prefix(false, out)?;
        }
        self.emit(&[b], out)?;
        if b == b'\n' {
            self.mid_line = false;
        }
        Ok(())
    }

    /// Writes the held `>`s and partial `From `, quoted or not; the line
    /// is then past its prefix.
    fn flush_prefix(&mut self, quote: bool, out: &mut dyn Write) -> io::Result<()> {
        self.mid_line = true;
        let gts = self.gts + u64::from(quote);
        for _ in 0..gts {
            self.emit(b">", out)?;
        }
        let matched = self.matched;
        self.emit(&FROM_[..matched], out)?;
        self.gts = 0;
        self.matched = 0;
        Ok(())
    }

    fn emit(&mut self, bytes: &[u8], out: &mut dyn Write) -> io::Result<()> {
        if let Some(&last) = bytes.last() {
            out.write_all(bytes)?;
            self.any = true;
            self.last_lf = last == b'\n';
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.cr {
            self.cr = false;
            self.byte(b'\r', out)?;
        }
        if !self.mid_line && (self.gts > 0 || self.matched > 0) {
            self.flush_prefix(false, out)?;
        }
        if !self.any || !self.last_lf {
            self.emit(b"\n", out)?;
        }
        Ok(())
    }
}

/// `Sun Nov 29 22:15:29 2026`, in UTC: the date of a `From ` line.
fn asctime(t: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    jiff::tz::TimeZone::UTC
        .to_datetime(ts)
        .strftime("%a %b %e %H:%M:%S %Y")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn quote(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut q = Quoter::default();
        // Byte by byte and whole: chunk boundaries must not matter.
        for b in input {
            q.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        q.finish(&mut out).unwrap();
        let mut whole = Vec::new();
        let mut q = Quoter::default();
        q.feed(input, &mut whole).unwrap();
        q.finish(&mut whole).unwrap();
        assert_eq!(out, whole);
        out
    }

    /// mboxrd unquoting, as a reader does it.
    fn unquote(mbox_body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in mbox_body.split_inclusive(|b| *b == b'\n') {
            let gts = line.iter().take_while(|b| **b == b'>').count();
            if gts > 0 && line[gts..].starts_with(b"From ") {
                out.extend_from_slice(&line[1..]);
            } else {
                out.extend_from_slice(line);
            }
        }
        out
    }

    #[test]
    fn mboxrd_quoting_of_from_lines() {
        assert_eq!(
            quote(b"From me\r\n>From you\r\n>>From x\nFrom\nFromage\n>Fro\n"),
            b">From me\n>>From you\n>>>From x\nFrom\nFromage\n>Fro\n"
        );
        assert_eq!(quote(b"body From here\n"), b"body From here\n");
        assert_eq!(quote(b""), b"\n");
        assert_eq!(quote(b"no newline"), b"no newline\n");
        assert_eq!(quote(b">>Fr"), b">>Fr\n");
        assert_eq!(quote(b"a\rb\r"), b"a\rb\r\n");
        assert_eq!(quote(b"\r\n.\r\n..\r\n"), b"\n.\n..\n");
        // 8-bit bytes pass untouched.
        assert_eq!(quote("Grüße\n".as_bytes()), "Grüße\n".as_bytes());
    }

    #[test]
    fn quoting_round_trips() {
        let samples: [&[u8]; 4] = [
            b"From a\n>From b\n>>>>From c\nplain\n",
            b">\n>>\nFrom\n From \n",
            b"x\n\nFrom \n",
            b">From \n",
        ];
        for s in samples {
            assert_eq!(unquote(&quote(s)), s, "{}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn asctime_matches_ctime() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_990_529); // 2026-11-29T22:15:29Z
        assert_eq!(asctime(t), "Sun Nov 29 22:15:29 2026");
        assert_eq!(asctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
    }

    fn spool() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
        d
    }

    fn delivery<'a>(dir: &'a Path, user: &'a str) -> Delivery<'a> {
        Delivery {
            dir,
            user,
            sender: "alice@example.org",
            received: UNIX_EPOCH + Duration::from_secs(1_795_990_529),
            prefix: b"Delivered-To: bob@localhost\n",
            lock_wait: Duration::from_millis(300),
        }
    }

    #[test]
    fn appends_two_messages_creates_0600_and_removes_the_dotlock() {
        let d = spool();
        let n = deliver(
            &delivery(d.path(), "bob"),
            &mut &b"Subject: one\r\n\r\nFrom here\r\n"[..],
        )
        .unwrap();
        let mut second = delivery(d.path(), "bob");
        second.sender = "";
        deliver(&second, &mut &b"Subject: two\n\nbye"[..]).unwrap();
        let text = std::fs::read_to_string(d.path().join("bob")).unwrap();
        assert_eq!(
            text,
            "From alice@example.org Sun Nov 29 22:15:29 2026\n\
             Delivered-To: bob@localhost\nSubject: one\n\n>From here\n\n\
             From MAILER-DAEMON Sun Nov 29 22:15:29 2026\n\
             Delivered-To: bob@localhost\nSubject: two\n\nbye\n\n"
        );
        assert_eq!(n as usize, text.find("From MAILER").unwrap());
        let meta = std::fs::metadata(d.path().join("bob")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert!(!d.path().join("bob.lock").exists());
    }

    #[test]
    fn a_live_dotlock_makes_a_temporary_error_and_a_dead_one_is_removed() {
        let d = spool();
        let lock = d.path().join("bob.lock");
        // Our own pid: alive.
        std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
        let e = deliver(&delivery(d.path(), "bob"), &mut &b"x\n"[..]).unwrap_err();
        assert!(
            matches!(
                e,
                MboxError::Locked {
                    which: "dotlock",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.is_temporary());
        assert!(lock.exists(), "someone else's lock stays");
        // A pid that cannot exist (above pid_max).
        std::fs::write(&lock, "2147483646\n").unwrap();
        deliver(&delivery(d.path(), "bob"), &mut &b"x\n"[..]).unwrap();
        assert!(!lock.exists());
        // Garbage but old: stale by age.
        std::fs::write(&lock, "garbage").unwrap();
        let old = SystemTime::now() - STALE_LOCK - Duration::from_secs(5);
        File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
        deliver(&delivery(d.path(), "bob"), &mut &b"x\n"[..]).unwrap();
        assert!(!lock.exists());
    }

    #[test]
    fn an_fcntl_lock_held_elsewhere_makes_a_temporary_error() {
        let d = spool();
        let mbox = d.path().join("bob");
        std::fs::write(&mbox, "").unwrap();
        std::fs::set_permissions(&mbox, std::fs::Permissions::from_mode(0o600)).unwrap();
        // fcntl locks belong to a process: hold it from a child (flock(1)
        // takes flock locks, so use python's fcntl.lockf, which is fcntl).
        let Ok(mut child) = std::process::Command::new("python3")
            .arg("-c")
            .arg("import fcntl,sys,time\nf=open(sys.argv[1],'a')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(10)")
            .arg(&mbox)
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("skipped: no python3");
            return;
        };
        let mut line = [0u8; 7];
        child.stdout.take().unwrap().read_exact(&mut line).unwrap();
        let e = deliver(&delivery(d.path(), "bob"), &mut &b"x\n"[..]).unwrap_err();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            matches!(
                e,
                MboxError::Locked {
                    which: "fcntl lock",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(std::fs::read(&mbox).unwrap(), b"");
        assert!(!d.path().join("bob.lock").exists());
        deliver(&delivery(d.path(), "bob"), &mut &b"x\n"[..]).unwrap();
    }

    #[test]
    fn symlinks_hard_links_bad_names_and_unsafe_dirs_are_refused() {
        let d = spool();
        let target = d.path().join("elsewhere");
        std::fs::write(&target, "").unwrap();
        symlink(&target, d.path().join("bob")).unwrap();
        let e = deliver(&delivery(d.path(), "bob"), &mut &b"x\n"[..]).unwrap_err();
        assert!(
            matches!(e, MboxError::Unsafe { .. }) && !e.is_temporary(),
            "{e}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"");

        std::fs::hard_link(&target, d.path().join("carol")).unwrap();
        let e = deliver(&delivery(d.path(), "carol"), &mut &b"x\n"[..]).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");

        for user in ["", "../etc/passwd", ".bob", "-x", "a/b", "bob\n"] {
            let e = deliver(&delivery(d.path(), user), &mut &b"x\n"[..]).unwrap_err();
            assert!(matches!(e, MboxError::BadName { .. }), "{user:?}: {e}");
        }

        let link = d.path().join("maillink");
        symlink(d.path(), &link).unwrap();
        let e = deliver(&delivery(&link, "dave"), &mut &b"x\n"[..]).unwrap_err();
        assert!(matches!(e, MboxError::Dir { .. }), "{e}");

        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = deliver(&delivery(d.path(), "dave"), &mut &b"x\n"[..]).unwrap_err();
        assert!(e.to_string().contains("chmod o-w"), "{e}");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        deliver(&delivery(d.path(), "dave"), &mut &b"x\n"[..]).unwrap();
    }

    #[test]
    fn a_failed_read_leaves_the_mailbox_as_it_was() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("the spool file went away"));
                }
                self.0 -= 1;
                buf[..4].copy_from_slice(b"abc\n");
                Ok(4)
            }
        }
        let d = spool();
        deliver(&delivery(d.path(), "bob"), &mut &b"first\n"[..]).unwrap();
        let before = std::fs::read(d.path().join("bob")).unwrap();
        let e = deliver(&delivery(d.path(), "bob"), &mut Broken(3)).unwrap_err();
        assert!(e.is_temporary(), "{e}");
        assert_eq!(std::fs::read(d.path().join("bob")).unwrap(), before);
        assert!(!d.path().join("bob.lock").exists());
    }
}
