//! The file operations every part of the queue shares, written once so
//! that every open of a queue file has the same defences.
//!
//! Nothing in the queue is reached by a path once its directory is open:
//! directories are opened with `O_DIRECTORY|O_NOFOLLOW` and their owner
//! and mode checked on the descriptor ([`open_dir_at`], [`verify_dir`]);
//! files are opened, created, renamed and removed relative to those
//! descriptors (`openat`, `renameat`, `unlinkat`). A directory swapped
//! for a symlink after it was opened changes nothing: the descriptor
//! still names the directory that was checked.
//!
//! Files are opened with `O_NOFOLLOW` (a symlink planted as `ID.eml`
//! cannot make root read `/etc/shadow` into a message) and `O_NONBLOCK`
//! (a FIFO cannot hang the runner), and must be regular files. New files
//! are created exclusively (`O_EXCL`) and then given their mode with
//! `fchmod`, so the umask never decides who can read a queue file.

use std::fs::{File, TryLockError};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

/// Flags of every directory open.
const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

/// Flags of every file open besides the access mode.
const FILE_FLAGS: OFlags = OFlags::NOFOLLOW
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);

/// The effective uid of this process.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Opens directory `name` in `parent` (or `name` itself if absolute or
/// `parent` is `None`), never through a symlink in its last component.
/// With `create`, a missing directory is made with that mode, set
/// exactly with `fchmod` whatever the umask.
pub(crate) fn open_dir_at(
    parent: Option<BorrowedFd<'_>>,
    name: &Path,
    create: Option<u32>,
) -> io::Result<OwnedFd> {
    let at_flags = |n: &Path, flags: OFlags| match parent {
        Some(p) => rustix::fs::openat(p, n, flags, Mode::empty()),
        None => rustix::fs::openat(rustix::fs::CWD, n, flags, Mode::empty()),
    };
    // A directory we may search but not list (the system spool, 1733,
    // for everyone but root) is opened O_PATH: enough to work in it.
    let at = |n: &Path| match at_flags(n, DIR_FLAGS) {
        Err(rustix::io::Errno::ACCESS) => at_flags(n, DIR_FLAGS | OFlags::PATH),
        r => r,
    };
    match at(name) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOENT) if create.is_some() => {
            let mode = create.unwrap_or(0o700);
            let made = match parent {
                Some(p) => rustix::fs::mkdirat(p, name, Mode::from_raw_mode(mode)),
                None => rustix::fs::mkdirat(rustix::fs::CWD, name, Mode::from_raw_mode(mode)),
            };
            match made {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            let fd = at(name).map_err(|e| symlink_as_invalid(e.into(), name))?;
            let st = rustix::fs::fstat(&fd)?;
            if st.st_uid == euid() && st.st_mode & 0o7777 != mode {
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
            }
            Ok(fd)
        }
        Err(e) => Err(symlink_as_invalid(e.into(), name)),
    }
}

/// Checks an open directory: owned by `uid`, and writable by nobody
/// else (no group or other write bit). The error says what is wrong and
/// the command that fixes it.
pub(crate) fn verify_dir(fd: BorrowedFd<'_>, uid: u32, path: &Path) -> io::Result<Stat> {
    let st = rustix::fs::fstat(fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", path.display()),
        ));
    }
    if st.st_uid != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is owned by uid {}, not {uid}: it is not trusted (remove it, or chown {uid} it)",
                path.display(),
                st.st_uid
            ),
        ));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is writable by group or others (mode {:o}): others could forge or swap queue files (chmod 700 it)",
                path.display(),
                st.st_mode & 0o7777
            ),
        ));
    }
    Ok(st)
}

/// Opens file `name` in `dir` with `flags` (plus `O_NOFOLLOW`,
/// `O_NONBLOCK`), only if it is a regular file.
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &str, flags: OFlags) -> io::Result<File> {
    open_mode_at(dir, name, flags, 0)
}

/// Opens an existing file in `dir` for reading ([`open_at`]).
pub(crate) fn open_existing_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<File> {
    open_at(dir, name, OFlags::RDONLY)
}

/// Opens an existing file in `dir` for reading, and checks that it
/// belongs to `uid`: a file someone else put in a queue is not ours to
/// send.
pub(crate) fn open_owned_at(dir: BorrowedFd<'_>, name: &str, uid: u32) -> io::Result<File> {
    let f = open_existing_at(dir, name)?;
    check_owner(&f, uid, name)?;
    Ok(f)
}

/// Fails with `InvalidData` unless `f` belongs to `uid`.
pub(crate) fn check_owner(f: &File, uid: u32, name: &str) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = f.metadata()?.uid();
    if owner != uid {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} is owned by uid {owner}, not the queue's owner {uid}"),
        ));
    }
    Ok(())
}

/// Creates a new file `name` in `dir` for writing (it must not exist,
/// `O_EXCL|O_NOFOLLOW`) with exactly `mode`.
pub(crate) fn create_at(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | FILE_FLAGS,
        Mode::from_raw_mode(mode),
    )?;
    if let Err(e) = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)) {
        let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
        return Err(e.into());
    }
    Ok(File::from(fd))
}

/// Opens (creating with exactly `mode` if needed) a file in `dir` that
/// is only ever locked or appended to: the run lock, dead.letter.
pub(crate) fn open_or_create_at(
    dir: BorrowedFd<'_>,
    name: &str,
    flags: OFlags,
    mode: u32,
) -> io::Result<File> {
    let f = open_mode_at(dir, name, flags | OFlags::CREATE, mode)?;
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    if m.uid() == euid() && m.mode() & 0o7777 != mode {
        rustix::fs::fchmod(f.as_fd(), Mode::from_raw_mode(mode))?;
    }
    Ok(f)
}

/// [`open_at`] with a creation mode.
fn open_mode_at(dir: BorrowedFd<'_>, name: &str, flags: OFlags, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::openat(dir, name, flags | FILE_FLAGS, Mode::from_raw_mode(mode))
        .map_err(|e| symlink_as_invalid(e.into(), Path::new(name)))?;
    let f = File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} is not a regular file"),
        ));
    }
    Ok(f)
}

/// `renameat(from_dir, from, to_dir, to)`.
pub(crate) fn rename_at(
    from_dir: BorrowedFd<'_>,
    from: &str,
    to_dir: BorrowedFd<'_>,
    to: &str,
) -> io::Result<()> {
    Ok(rustix::fs::renameat(from_dir, from, to_dir, to)?)
}

/// `unlinkat(dir, name)`; a name already gone is no error.
pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `lstat` of `name` in `dir` (`None`: no such name).
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The names in an open directory (without `.` and `..`), as UTF-8;
/// other names are no queue file's and are skipped.
pub(crate) fn names_at(dir: BorrowedFd<'_>) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name != "." && name != ".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// Whether an open directory has any entry besides `.`, `..` and the
/// names in `except`: reads at most the first block of entries.
pub(crate) fn has_entries_besides(dir: BorrowedFd<'_>, except: &[&str]) -> io::Result<bool> {
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." && !except.iter().any(|e| e.as_bytes() == name) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Takes an exclusive `flock` on `f`, waiting at most `timeout`.
pub(crate) fn lock_with_timeout(f: &File, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::Error(e)) => return Err(e),
            Err(TryLockError::WouldBlock) if Instant::now() >= deadline => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "another process has held the lock for {} s",
                        timeout.as_secs()
                    ),
                ));
            }
            Err(TryLockError::WouldBlock) => std::thread::sleep(LOCK_POLL),
        }
    }
}

/// How often a waiting [`lock_with_timeout`] tries again.
const LOCK_POLL: Duration = Duration::from_millis(10);

/// One `read`, retried when a signal interrupts it.
pub(crate) fn read_some(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match src.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub(crate) fn sync_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fsync(dir)?)
}

/// Bytes free for an unprivileged writer on the file system of `fd`.
pub(crate) fn free_bytes(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let v = rustix::fs::fstatvfs(fd)?;
    Ok(v.f_bavail.saturating_mul(v.f_frsize))
}

/// Reads a whole small file, refusing one larger than `limit` bytes.
pub(crate) fn read_limited(f: &mut File, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(buf)
}

/// Renames `name` in `from` to a free name in `to`: its own name, or that
/// name with `.1`, `.2`… appended (never replacing an existing one:
/// `RENAME_NOREPLACE`). Used to move damaged files aside. Returns the
/// name it got.
pub(crate) fn move_aside(
    from: BorrowedFd<'_>,
    name: &str,
    to: BorrowedFd<'_>,
) -> io::Result<String> {
    let mut target = name.to_owned();
    for n in 1..=1001u32 {
        match rustix::fs::renameat_with(
            from,
            name,
            to,
            target.as_str(),
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => return Ok(target),
            Err(rustix::io::Errno::EXIST) => target = format!("{name}.{n}"),
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{name} and 1000 variants exist"),
    ))
}

/// `O_NOFOLLOW` on a symlink fails with ELOOP (ENOTDIR with
/// `O_DIRECTORY`), whose message ("too many levels of symbolic links")
/// misleads; say what happened.
fn symlink_as_invalid(e: io::Error, path: &Path) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is a symbolic link", path.display()),
        )
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn dir(p: &Path) -> OwnedFd {
        open_dir_at(None, p, None).unwrap()
    }

    #[test]
    fn refuses_symlinks_and_fifos() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        fs::write(&target, b"secret").unwrap();
        symlink(&target, d.path().join("link")).unwrap();
        let fd = dir(d.path());
        let e = open_existing_at(fd.as_fd(), "link").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = open_or_create_at(fd.as_fd(), "link", OFlags::RDWR, 0o600).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(create_at(fd.as_fd(), "link", 0o600).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"secret");
        // A symlinked directory is refused too.
        symlink(d.path(), d.path().join("dirlink")).unwrap();
        assert!(open_dir_at(Some(fd.as_fd()), Path::new("dirlink"), Some(0o700)).is_err());

        let fifo = d.path().join("fifo");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            // Would block forever without O_NONBLOCK.
            let e = open_existing_at(fd.as_fd(), "fifo").unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn modes_are_exact_despite_umask() {
        let d = tempfile::tempdir().unwrap();
        let fd = dir(d.path());
        let f = create_at(fd.as_fd(), "f", 0o640).unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o7777, 0o640);
        assert!(
            create_at(fd.as_fd(), "f", 0o600).is_err(),
            "must be exclusive"
        );
        let sub = open_dir_at(Some(fd.as_fd()), Path::new("sub"), Some(0o711)).unwrap();
        let st = rustix::fs::fstat(&sub).unwrap();
        assert_eq!(st.st_mode & 0o7777, 0o711);
    }

    #[test]
    fn verify_dir_names_owner_and_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("q");
        fs::create_dir(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o770)).unwrap();
        let fd = dir(&p);
        let e = verify_dir(fd.as_fd(), euid(), &p).unwrap_err();
        assert!(e.to_string().contains("chmod 700"), "{e}");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
        verify_dir(fd.as_fd(), euid(), &p).unwrap();
        let e = verify_dir(fd.as_fd(), euid() + 1, &p).unwrap_err();
        assert!(e.to_string().contains("owned by uid"), "{e}");
    }

    #[test]
    fn read_limited_refuses_large() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"12345").unwrap();
        assert_eq!(
            read_limited(&mut File::open(&p).unwrap(), 5).unwrap(),
            b"12345"
        );
        assert!(read_limited(&mut File::open(&p).unwrap(), 4).is_err());
    }

    #[test]
    fn move_aside_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let to = d.path().join("corrupt");
        fs::create_dir(&to).unwrap();
        let (from_fd, to_fd) = (dir(d.path()), dir(&to));
        for i in 0..3 {
            fs::write(d.path().join("x.eml"), format!("{i}")).unwrap();
            move_aside(from_fd.as_fd(), "x.eml", to_fd.as_fd()).unwrap();
        }
        assert_eq!(fs::read(to.join("x.eml")).unwrap(), b"0");
        assert_eq!(fs::read(to.join("x.eml.1")).unwrap(), b"1");
        assert_eq!(fs::read(to.join("x.eml.2")).unwrap(), b"2");
    }

    #[test]
    fn entries_besides() {
        let d = tempfile::tempdir().unwrap();
        let fd = dir(d.path());
        assert!(!has_entries_besides(fd.as_fd(), &[]).unwrap());
        fs::write(d.path().join("a"), b"").unwrap();
        assert!(!has_entries_besides(fd.as_fd(), &["a"]).unwrap());
        assert!(has_entries_besides(fd.as_fd(), &[]).unwrap());
        assert_eq!(names_at(fd.as_fd()).unwrap(), ["a"]);
    }
}
