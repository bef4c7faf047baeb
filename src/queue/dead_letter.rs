//! dead.letter: where a message goes when it can be neither delivered nor
//! queued, or when delivery has failed for good — so it is never lost.
//!
//! The file is an mbox, as mail(1) writes it, so any mail reader opens it:
//! each message starts with `From SENDER DATE` (the date in asctime(3)
//! form, in UTC: local time needs the time zone database), lines starting
//! `From ` or `>From `, `>>From `… get one more `>` (mboxrd, which a reader
//! can undo exactly), line endings become LF, and a blank line follows.
//!
//! Two headers are added at the top of the message, so the reason and the
//! envelope travel with it (a Bcc recipient is in no header of its own):
//! `X-Smtpsend-Failure: REASON` and `X-Smtpsend-Recipients: A, B`.
//!
//! The file is created 0600 whatever the umask, only in a directory of
//! ours (or root's) that nobody else can write, never followed through a
//! symlink, and locked with `flock` while a message is appended,
//! waiting at most [`LOCK_TIMEOUT`]. An append that fails half-way (disk
//! full) is cut off again, so the file stays a valid mbox. (mail readers
//! lock mboxes with `fcntl` or dot-locks, which do not exclude `flock` on
//! Linux; dead.letter is not a mailbox they deliver to.)

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::OFlags;

use super::error::QueueError;
use super::files;
use super::meta::clean_text;
use super::spool::{Queue, Sub};
use super::time;

/// The longest wait for another writer's lock on dead.letter.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of the message is held in memory while appending.
const CHUNK: usize = 64 * 1024;

/// `$HOME/dead.letter`, when `HOME` is set, not empty, not `/`, a
/// directory of ours (or root's) that nobody else can write, and the file
/// can be written there; otherwise `None`, and the caller falls back to
/// [`Queue::dead_letter_path`].
pub fn default_dead_letter() -> Option<PathBuf> {
    dead_letter_in(std::env::var_os("HOME").as_deref())
}

fn dead_letter_in(home: Option<&OsStr>) -> Option<PathBuf> {
    let home = Path::new(home?);
    if !home.is_absolute() || home.parent().is_none() {
        return None;
    }
    let dir = open_trusted_dir(home).ok()?;
    match files::open_at(dir.as_fd(), NAME, OFlags::WRONLY | OFlags::APPEND) {
        Ok(_) => Some(home.join(NAME)),
        // Could we create it? Try with a scratch file, removed at once.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let probe = format!(".smtpsend-probe-{}", std::process::id());
            let made = files::create_at(dir.as_fd(), &probe, 0o600).is_ok();
            let _ = files::unlink_at(dir.as_fd(), &probe);
            made.then(|| home.join(NAME))
        }
        Err(_) => None,
    }
}

/// The file name of dead.letter.
const NAME: &str = "dead.letter";

/// Opens `dir` (`O_DIRECTORY|O_NOFOLLOW`) if it belongs to us or to root
/// and nobody else can write it: a dead.letter is never created in a
/// directory where another user could swap the name for a symlink.
fn open_trusted_dir(dir: &Path) -> io::Result<OwnedFd> {
    let fd = files::open_dir_at(None, dir, None)?;
    let st = rustix::fs::fstat(&fd)?;
    let me = files::euid();
    if st.st_uid != me && st.st_uid != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} belongs to uid {}, not {me}", dir.display(), st.st_uid),
        ));
    }
    files::verify_dir(fd.as_fd(), st.st_uid, dir)?;
    Ok(fd)
}

impl Queue {
    /// The queue's dead.letter: `DIR/dead/dead.letter`.
    pub fn dead_letter_path(&self) -> PathBuf {
        self.sub_path(Sub::Dead).join(NAME)
    }

    /// [`append_dead_letter`] to [`Queue::dead_letter_path`], through the
    /// queue's own descriptor of `dead/`.
    pub fn append_dead_letter(
        &self,
        sender: &str,
        recipients: &[String],
        reason: &str,
        body: &mut dyn Read,
    ) -> Result<(), QueueError> {
        append_in(self.fd(Sub::Dead), sender, recipients, reason, body)
            .map_err(|e| QueueError::write(self.dead_letter_path(), e))
    }
}

/// Appends one message to the mbox at `path` (see the module docs for the
/// format), creating it 0600. The directory of `path` must belong to us
/// or root and be writable by nobody else, and `path` is never followed
/// through a symlink. `sender` empty means `<>`; it is written as
/// `MAILER-DAEMON`, as mail systems do.
pub fn append_dead_letter(
    path: &Path,
    sender: &str,
    recipients: &[String],
    reason: &str,
    body: &mut dyn Read,
) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(OsStr::to_str)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file name", path.display()),
        ));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let dir = open_trusted_dir(dir)?;
    append_named(dir.as_fd(), name, sender, recipients, reason, body)
}

fn append_in(
    dir: BorrowedFd<'_>,
    sender: &str,
    recipients: &[String],
    reason: &str,
    body: &mut dyn Read,
) -> io::Result<()> {
    append_named(dir, NAME, sender, recipients, reason, body)
}

fn append_named(
    dir: BorrowedFd<'_>,
    name: &str,
    sender: &str,
    recipients: &[String],
    reason: &str,
    body: &mut dyn Read,
) -> io::Result<()> {
    let mut f = files::open_or_create_at(dir, name, OFlags::RDWR | OFlags::APPEND, 0o600)?;
    files::check_owner(&f, files::euid(), name)?;
    files::lock_with_timeout(&f, LOCK_TIMEOUT)?;
    let start = f.seek(SeekFrom::End(0))?;
    let result = (|| {
        let mut out = Vec::with_capacity(CHUNK + 1024);
        out.extend_from_slice(separation(&mut f, start)?);
        out.extend_from_slice(
            format!(
                "From {} {}\n",
                from_line_sender(sender),
                time::asctime(SystemTime::now())
            )
            .as_bytes(),
        );
        out.extend_from_slice(format!("X-Smtpsend-Failure: {}\n", clean_text(reason)).as_bytes());
        if !recipients.is_empty() {
            let list: Vec<String> = recipients.iter().map(|r| clean_text(r)).collect();
            out.extend_from_slice(
                format!("X-Smtpsend-Recipients: {}\n", list.join(",\n ")).as_bytes(),
            );
        }
        let mut quoter = Quoter::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = files::read_some(body, &mut buf)?;
            if n == 0 {
                break;
            }
            quoter.push(&buf[..n], &mut out);
            if out.len() >= CHUNK {
                f.write_all(&out)?;
                out.clear();
            }
        }
        quoter.finish(&mut out);
        out.push(b'\n');
        f.write_all(&out)?;
        f.sync_all()
    })();
    if result.is_err() {
        // Leave the mbox as it was rather than with half a message.
        let _ = f.set_len(start);
    }
    result
}

/// What must come before a new `From ` line so it follows a blank line:
/// the file may have been left without one by another program.
fn separation(f: &mut File, len: u64) -> io::Result<&'static [u8]> {
    if len == 0 {
        return Ok(b"");
    }
    let mut tail = [0u8; 2];
    let n = len.min(2) as usize;
    f.seek(SeekFrom::Start(len - n as u64))?;
    f.read_exact(&mut tail[..n])?;
    Ok(match &tail[..n] {
        [b'\n', b'\n'] => b"",
        [.., b'\n'] if len > 1 => b"\n",
        // A file of just "\n" is one blank line already.
        [b'\n'] => b"",
        _ => b"\n\n",
    })
}

/// The sender as one word for the `From ` line.
fn from_line_sender(sender: &str) -> String {
    if sender.is_empty() {
        return "MAILER-DAEMON".into();
    }
    clean_text(sender)
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// mboxrd quoting as a streaming state machine: CRLF becomes LF, and a
/// line matching `>*From ` gets one more `>`. Between chunks it keeps a
/// count of `>` and at most five bytes, so memory is constant however
/// long a line is.
struct Quoter {
    /// At a line start, matching `>*From `: how many `>` so far, and how
    /// much of `From ` (`None`: past the start of the line).
    prefix: Option<(u64, usize)>,
    pending_cr: bool,
    /// The last byte written was a LF (or nothing was written).
    ends_line: bool,
}

const FROM: &[u8] = b"From ";

impl Quoter {
    fn new() -> Self {
        Quoter {
            prefix: Some((0, 0)),
            pending_cr: false,
            ends_line: true,
        }
    }

    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    self.byte(b'\r', out);
                }
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                self.byte(b, out);
            }
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        if let Some((gts, matched)) = self.prefix {
            if matched == 0 && b == b'>' {
                self.prefix = Some((gts + 1, 0));
                return;
            }
            if b == FROM[matched] {
                if matched + 1 < FROM.len() {
                    self.prefix = Some((gts, matched + 1));
                    return;
                }
                out.push(b'>');
                self.flush_prefix(gts, matched, out);
                out.push(b);
                self.ends_line = false;
                return;
            }
            self.flush_prefix(gts, matched, out);
        }
        out.push(b);
        self.ends_line = b == b'\n';
        self.prefix = self.ends_line.then_some((0, 0));
    }

    /// Writes the held `>`s and partial `From`, and leaves the line start.
    fn flush_prefix(&mut self, gts: u64, matched: usize, out: &mut Vec<u8>) {
        for _ in 0..gts {
            out.push(b'>');
        }
        out.extend_from_slice(&FROM[..matched]);
        if gts > 0 || matched > 0 {
            self.ends_line = false;
        }
        self.prefix = None;
    }

    /// Ends the message with exactly one LF on its last line.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            self.byte(b'\r', out);
        }
        if let Some((gts, matched)) = self.prefix {
            self.flush_prefix(gts, matched, out);
        }
        if !self.ends_line {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::os::unix::fs::PermissionsExt;

    fn quote(chunks: &[&[u8]]) -> Vec<u8> {
        let mut q = Quoter::new();
        let mut out = Vec::new();
        for c in chunks {
            q.push(c, &mut out);
        }
        q.finish(&mut out);
        out
    }

    #[test]
    fn mboxrd_quoting() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"a", b"a\n"),
            (b"From me\n", b">From me\n"),
            (b"x\nFrom me\n", b"x\n>From me\n"),
            (b">From me\n", b">>From me\n"),
            (b">>>From x", b">>>>From x\n"),
            (b"From", b"From\n"),
            (b">From", b">From\n"),
            (b"Fromage\n", b"Fromage\n"),
            (b" From x\n", b" From x\n"),
            (b">>x\n", b">>x\n"),
            (b"a From b\n", b"a From b\n"),
            (b"x\r\nFrom y\r\n", b"x\n>From y\n"),
            (b"a\rb\r", b"a\rb\r\n"),
            (b"\0\rFrom \n", b"\0\rFrom \n"),
            (b"\n\nFrom \n", b"\n\n>From \n"),
            (b">", b">\n"),
            (b"\n", b"\n"),
        ];
        for (input, want) in cases {
            assert_eq!(
                String::from_utf8_lossy(&quote(&[input])),
                String::from_utf8_lossy(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn quoting_is_chunking_invariant() {
        let msg: &[u8] = b"From a\r\n>From b\r\nx From\n>>Fro\n\rFrom \r";
        let whole = quote(&[msg]);
        for i in 0..=msg.len() {
            for j in i..=msg.len() {
                assert_eq!(quote(&[&msg[..i], &msg[i..j], &msg[j..]]), whole, "{i},{j}");
            }
        }
    }

    /// Undoing mboxrd quoting gives back the message (with LF endings).
    #[test]
    fn quoting_reverses() {
        let msg = "From x\n>From y\n>>From z\n>Fro\nFrom\n>\n";
        let q = String::from_utf8(quote(&[msg.as_bytes()])).unwrap();
        let back: String = q
            .split_inclusive('\n')
            .map(|l| {
                let t = l.trim_start_matches('>');
                if t.starts_with("From ") && l.starts_with('>') {
                    &l[1..]
                } else {
                    l
                }
            })
            .collect();
        assert_eq!(back, msg);
    }

    #[test]
    fn two_appends_make_an_mbox() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("dead.letter");
        let rcpts = vec!["a@example.org".to_string(), "b@example.org".to_string()];
        append_dead_letter(
            &p,
            "me@example.org",
            &rcpts,
            "550 5.1.1 no\r\nsuch user",
            &mut &b"Subject: one\r\n\r\nFrom here\r\n>From there\r\nend"[..],
        )
        .unwrap();
        append_dead_letter(
            &p,
            "",
            &rcpts[..1],
            "expired",
            &mut &b"Subject: two\n\nbody\n"[..],
        )
        .unwrap();
        let text = String::from_utf8(std::fs::read(&p).unwrap()).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert!(lines[0].starts_with("From me@example.org "), "{text}");
        // asctime: "Www Mmm dd hh:mm:ss yyyy"
        let date = &lines[0]["From me@example.org ".len()..];
        assert_eq!(date.len(), 24, "{date:?}");
        assert_eq!(&date[13..14], ":");
        assert_eq!(
            &lines[1..9],
            [
                "X-Smtpsend-Failure: 550 5.1.1 no  such user",
                "X-Smtpsend-Recipients: a@example.org,",
                " b@example.org",
                "Subject: one",
                "",
                ">From here",
                ">>From there",
                "end",
            ]
        );
        assert_eq!(lines[9], "");
        assert!(lines[10].starts_with("From MAILER-DAEMON "), "{text}");
        assert_eq!(
            &lines[11..],
            [
                "X-Smtpsend-Failure: expired",
                "X-Smtpsend-Recipients: a@example.org",
                "Subject: two",
                "",
                "body",
                "",
                "",
            ]
        );
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Exactly two messages start with "From ".
        assert_eq!(text.lines().filter(|l| l.starts_with("From ")).count(), 2);
    }

    #[test]
    fn repairs_missing_blank_line() {
        let d = tempfile::tempdir().unwrap();
        for (before, sep) in [
            ("x", "x\n\n"),
            ("x\n", "x\n\n"),
            ("x\n\n", "x\n\n"),
            ("\n", "\n"),
        ] {
            let p = d.path().join("mbox");
            std::fs::write(&p, before).unwrap();
            append_dead_letter(&p, "s", &[], "r", &mut &b"b\n"[..]).unwrap();
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.starts_with(&format!("{sep}From s ")),
                "{before:?}: {text:?}"
            );
            std::fs::remove_file(&p).unwrap();
        }
    }

    #[test]
    fn failed_read_leaves_the_file_as_it_was() {
        struct Fails(usize);
        impl Read for Fails {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("gone"));
                }
                self.0 -= 1;
                let n = buf.len().min(100_000);
                buf[..n].fill(b'x');
                Ok(n)
            }
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("dead.letter");
        append_dead_letter(&p, "s", &[], "r", &mut &b"first\n"[..]).unwrap();
        let before = std::fs::read(&p).unwrap();
        let e = append_dead_letter(&p, "s", &[], "r", &mut Fails(5)).unwrap_err();
        assert_eq!(e.to_string(), "gone");
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }

    #[test]
    fn refuses_symlink_and_waits_for_lock() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = d.path().join("dead.letter");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(append_dead_letter(&link, "s", &[], "r", &mut &b"x"[..]).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");

        let p = d.path().join("locked");
        let holder = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        holder.lock().unwrap();
        let f = File::open(&p).unwrap();
        let e = files::lock_with_timeout(&f, Duration::from_millis(120)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        holder.unlock().unwrap();
        files::lock_with_timeout(&f, Duration::from_millis(120)).unwrap();
    }

    #[test]
    fn default_location() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            dead_letter_in(Some(d.path().as_os_str())),
            Some(d.path().join("dead.letter"))
        );
        assert_eq!(dead_letter_in(None), None);
        assert_eq!(dead_letter_in(Some(OsStr::new(""))), None);
        assert_eq!(dead_letter_in(Some(OsStr::new("/"))), None);
        assert_eq!(dead_letter_in(Some(OsStr::new("relative"))), None);
        // A home that is a file, so nothing can be created in it (this
        // holds for root too).
        let f = d.path().join("file");
        std::fs::write(&f, b"").unwrap();
        assert_eq!(dead_letter_in(Some(f.as_os_str())), None);
        // No probe left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn sender_is_one_word() {
        assert_eq!(from_line_sender("a b@c"), "a_b@c");
        assert_eq!(from_line_sender("a\r\nb"), "a__b");
        assert_eq!(from_line_sender(""), "MAILER-DAEMON");
    }
}
