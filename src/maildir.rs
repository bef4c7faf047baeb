//! Local delivery into a Maildir: the embedded default on a machine with
//! no relay, the way a local MTA keeps local mail.
//!
//! Delivery follows the Maildir protocol: a unique name, write into
//! `tmp/`, fsync, rename into `new/`, fsync the directory. A reader never
//! sees a partial message, and a crash leaves at most a file in `tmp/`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The Maildir to use when none is configured: `$MAILDIR`, else
/// `~/Maildir`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MAILDIR").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    dirs::home_dir().map(|h| h.join("Maildir"))
}

/// Creates `tmp`, `new` and `cur` (mode 0700) as needed.
pub fn ensure(root: &Path) -> io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root.join(sub))?;
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

/// Delivers the message read from `msg` (any line endings; stored as LF,
/// as Maildir readers expect) with `prefix` written first (e.g. a
/// Return-Path/Delivered-To header). Returns the path of the new file.
pub fn deliver(root: &Path, prefix: &[u8], msg: &mut dyn Read) -> io::Result<PathBuf> {
    ensure(root)?;
    let name = unique_name();
    let tmp = root.join("tmp").join(&name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(prefix)?;
        copy_as_lf(msg, &mut f)?;
        f.sync_all()?;
        let new = root.join("new").join(&name);
        fs::rename(&tmp, &new)?;
        File::open(root.join("new"))?.sync_all()?;
        Ok(new)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
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
}
