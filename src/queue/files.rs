//! The file operations every part of the queue shares, written once so
//! that every open of a queue file has the same defences.
//!
//! A system spool is group-writable, and `smtpsend -q` may run there as
//! root, so a name in the spool is not trusted to be what it says: files
//! are opened with `O_NOFOLLOW` (a symlink planted as `ID.eml` cannot make
//! root read `/etc/shadow` into a message) and `O_NONBLOCK` (a FIFO
//! planted there cannot hang the runner), and must be regular files.
//! New files are created exclusively and then given their mode explicitly,
//! so the umask cannot strip the group bits of a shared spool.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Opens `path` with `options`, never through a symlink nor blocking on
/// a FIFO, and only if it is a regular file.
pub(crate) fn open_regular(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let f = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| symlink_loop_as_invalid(e, path))?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(f)
}

/// Opens an existing queue file for reading ([`open_regular`]).
pub(crate) fn open_existing(path: &Path) -> io::Result<File> {
    open_regular(OpenOptions::new().read(true), path)
}

/// Creates a new file for writing (it must not exist) with `mode`.
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.set_permissions(Permissions::from_mode(mode))?;
    Ok(f)
}

/// Opens (creating with `mode` if needed) a file that is only ever
/// locked, never read or written: the run lock.
pub(crate) fn open_lock_file(path: &Path, mode: u32) -> io::Result<File> {
    open_regular(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode),
        path,
    )
}

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
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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

/// Renames `from` to a free name in `dir`: its own name, or that name
/// with `.1`, `.2`… appended. Used to move damaged files aside without
/// overwriting an earlier one.
pub(crate) fn move_aside(from: &Path, dir: &Path) -> io::Result<std::path::PathBuf> {
    let name = from
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut to = dir.join(name);
    let mut n = 0u32;
    while fs::symlink_metadata(&to).is_ok() {
        n += 1;
        if n > 1000 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} and 1000 variants exist", to.display()),
            ));
        }
        let mut s = name.to_owned();
        s.push(format!(".{n}"));
        to = dir.join(s);
    }
    fs::rename(from, &to)?;
    Ok(to)
}

/// `O_NOFOLLOW` on a symlink fails with ELOOP, whose message ("too many
/// levels of symbolic links") misleads; say what happened.
fn symlink_loop_as_invalid(e: io::Error, path: &Path) -> io::Error {
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
    use std::os::unix::fs::symlink;

    #[test]
    fn refuses_symlinks_and_fifos() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        fs::write(&target, b"secret").unwrap();
        let link = d.path().join("link");
        symlink(&target, &link).unwrap();
        let e = open_existing(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = open_lock_file(&link, 0o600).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(create_new(&link, 0o600).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"secret");

        let fifo = d.path().join("fifo");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            // Would block forever without O_NONBLOCK.
            let e = open_existing(&fifo).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        assert!(open_existing(d.path()).is_err());
    }

    #[test]
    fn mode_is_exact_despite_umask() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let f = create_new(&p, 0o660).unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o7777, 0o660);
        assert!(create_new(&p, 0o660).is_err(), "must be exclusive");
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
        for i in 0..3 {
            let p = d.path().join("x.eml");
            fs::write(&p, format!("{i}")).unwrap();
            move_aside(&p, &to).unwrap();
        }
        assert_eq!(fs::read(to.join("x.eml")).unwrap(), b"0");
        assert_eq!(fs::read(to.join("x.eml.1")).unwrap(), b"1");
        assert_eq!(fs::read(to.join("x.eml.2")).unwrap(), b"2");
    }
}
