//! Local delivery into a Maildir: a user's `~/Maildir` when it exists,
//! or the one Maildir a profile names.
//!
//! Delivery follows the Maildir protocol: a unique name, write into
//! `tmp/`, fsync, rename into `new/`, fsync the directory. A reader never
//! sees a partial message, and a crash leaves at most a file in `tmp/`.
//!
//! # Paths
//!
//! Everything happens through directory descriptors (issue 12): the
//! Maildir and its `tmp`, `new` and `cur` are opened with
//! `O_DIRECTORY|O_NOFOLLOW` (a symlink in their place is refused, not
//! followed) and must belong to the writing uid and be writable by no
//! one else (no group or other write bit). The message is created in
//! `tmp` with `O_CREAT|O_EXCL|O_NOFOLLOW` and mode exactly 0600, and
//! moved with `renameat` between the two descriptors. Missing
//! directories are made (0700). The module writes as whoever runs it:
//! delivering into another user's Maildir takes a process running as
//! that user (see [`crate::app::local`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::queue::files;

/// The mode of a Maildir directory this module makes.
const DIR_MODE: u32 = 0o700;

/// The mode of a delivered message.
const FILE_MODE: u32 = 0o600;

/// The Maildir to use when none is configured: `$MAILDIR`, else
/// `~/Maildir`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MAILDIR").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    dirs::home_dir().map(|h| h.join("Maildir"))
}

/// A Maildir opened and checked: the root's, `tmp`'s and `new`'s
/// descriptors.
struct Opened {
    tmp: OwnedFd,
    new: OwnedFd,
}

/// Opens (making as needed) `root` and its `tmp`, `new` and `cur`, never
/// through a symlink, each checked to be ours alone.
fn open(root: &Path) -> io::Result<Opened> {
    let uid = files::euid();
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        std::fs::DirBuilder::new().recursive(true).create(parent)?;
    }
    let dir = files::open_dir_at(None, root, Some(DIR_MODE))?;
    files::verify_dir(dir.as_fd(), uid, root)?;
    let sub = |name: &str| -> io::Result<OwnedFd> {
        let path = root.join(name);
        let fd = files::open_dir_at(Some(dir.as_fd()), Path::new(name), Some(DIR_MODE))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        files::verify_dir(fd.as_fd(), uid, &path)?;
        Ok(fd)
    };
    let tmp = sub("tmp")?;
    let new = sub("new")?;
    sub("cur")?;
    Ok(Opened { tmp, new })
}

/// Creates `tmp`, `new` and `cur` (mode 0700) as needed, checked as
/// [`deliver`] checks them.
pub fn ensure(root: &Path) -> io::Result<()> {
    open(root).map(drop)
}

/// Delivers the message read from `msg` (any line endings; stored as LF,
/// as Maildir readers expect) with `prefix` written first (e.g. a
/// Return-Path/Delivered-To header). Returns the path of the new file.
pub fn deliver(root: &Path, prefix: &[u8], msg: &mut dyn Read) -> io::Result<PathBuf> {
    let d = open(root)?;
    let name = unique_name();
    let mut f = files::create_at(d.tmp.as_fd(), &name, FILE_MODE)?;
    let result = (|| {
        f.write_all(prefix)?;
        copy_as_lf(msg, &mut f)?;
        f.sync_all()?;
        files::rename_at(d.tmp.as_fd(), &name, d.new.as_fd(), &name)?;
        files::sync_dir(d.new.as_fd())?;
        Ok(root.join("new").join(&name))
    })();
    if result.is_err() {
        let _ = files::unlink_at(d.tmp.as_fd(), &name);
    }
    result
}

/// Copies with CRLF turned into LF, in chunks.
fn copy_as_lf(src: &mut dyn Read, dst: &mut File) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(buf.len());
    let mut pending_cr = false;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.clear();
        for &b in &buf[..n] {
            if pending_cr {
                pending_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                pending_cr = true;
            } else {
                out.push(b);
            }
        }
        dst.write_all(&out)?;
    }
    if pending_cr {
        dst.write_all(b"\r")?;
    }
    Ok(())
}

/// `time.MmicrosPpidQn.host`, unique per delivery on this host.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let host = crate::hostname::short()
        .unwrap_or_else(|| "localhost".into())
        .replace('/', "\\057")
        .replace(':', "\\072");
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        host
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn delivers_into_new_with_lf_endings() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        let p1 = deliver(
            &root,
            b"Delivered-To: root\n",
            &mut &b"Subject: a\r\n\r\nbody\r\n"[..],
        )
        .unwrap();
        let p2 = deliver(&root, b"", &mut &b"x\n"[..]).unwrap();
        assert_ne!(p1, p2);
        assert!(p1.starts_with(root.join("new")));
        assert_eq!(
            fs::read(&p1).unwrap(),
            b"Delivered-To: root\nSubject: a\n\nbody\n"
        );
        assert!(root.join("cur").is_dir());
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn files_are_0600_and_unsafe_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        let p = deliver(&root, b"", &mut &b"x\n"[..]).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );

        // new/ swapped for a symlink to elsewhere: refused, nothing written there.
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::remove_dir_all(root.join("new")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("new")).unwrap();
        let e = deliver(&root, b"", &mut &b"x\n"[..]).unwrap_err();
        assert!(e.to_string().contains("new"), "{e}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);

        // The Maildir itself a symlink: refused.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        assert!(deliver(&link, b"", &mut &b"x\n"[..]).is_err());

        // Writable by the group: refused.
        let open = dir.path().join("open");
        ensure(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o770)).unwrap();
        let e = deliver(&open, b"", &mut &b"x\n"[..]).unwrap_err();
        assert!(e.to_string().contains("writable"), "{e}");
    }
}
