//! Whether a configuration file may be trusted, and who may read it.
//!
//! A configuration file decides where mail goes and which command runs as
//! the caller (`password_command`), so it is trusted as msmtp and sshd's
//! StrictModes trust theirs:
//!
//! - it belongs to the user running smtpsend, or to root; when root runs
//!   smtpsend (cron's `-q`), only a file owned by root is read: a user's
//!   file given to root with `-C`, or found in a HOME that sudo kept, is
//!   refused;
//! - neither its group nor others may write it (a root-owned 0640 file
//!   readable by one group stays allowed);
//! - it is a regular file (or /dev/null, which means "no configuration");
//! - the check is made on the opened file (`fstat` of the descriptor, the
//!   last path component opened with `O_NOFOLLOW`), so what is checked is
//!   what is read. A symbolic link is resolved to the file it names first
//!   (a dotfile repository's link stays usable) and that file is opened
//!   without following links and checked; it is named in the error.
//!
//! Then, once the file is known to hold a `password`: it must not be
//! readable by others, ever; it may be readable by its group only when
//! root owns it (a system file, mode 0640 root:smtpsend, for a group of
//! daemons that send mail). Whoever can read such a file can use its
//! credentials: that is the point of the group.
//!
//! Every refusal is EX_CONFIG (78) and names the file, its owner and mode,
//! and the `chmod`/`chown` that fixes it.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Exposure};

/// `/dev/null`'s device number (major 1, minor 3 on Linux).
const DEV_NULL: (u32, u32) = (1, 3);

/// Opens a configuration file for reading and checks that it may be
/// trusted by a process running as `euid` (see the module docs). Returns
/// the file, its metadata (from the descriptor) and the path really
/// opened (the target of a symbolic link).
pub(crate) fn open_trusted(
    path: &Path,
    euid: u32,
) -> Result<(File, Metadata, PathBuf), ConfigError> {
    let read_err = |path: &Path, source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let (file, opened) = match open_nofollow(path) {
        Ok(f) => (f, path.to_path_buf()),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            // A symbolic link: check and read the file it names, opened
            // itself without following links.
            let target = std::fs::canonicalize(path).map_err(|e| read_err(path, e))?;
            let f = open_nofollow(&target).map_err(|e| read_err(&target, e))?;
            (f, target)
        }
        Err(e) => return Err(read_err(path, e)),
    };
    let meta = file.metadata().map_err(|e| read_err(&opened, e))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(read_err(&opened, io::Error::other("it is a directory")));
    }
    if kind.is_char_device() && device(meta.rdev()) == DEV_NULL {
        // `-C /dev/null`: no configuration, whatever the device's mode.
        return Ok((file, meta, opened));
    }
    if !kind.is_file() {
        return Err(read_err(
            &opened,
            io::Error::other("it is not a regular file (a pipe or a device cannot be trusted)"),
        ));
    }
    check_owner(&opened, meta.mode(), meta.uid(), meta.gid(), euid)?;
    Ok((file, meta, opened))
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
    // refused as not a regular file); it changes nothing for a file.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

fn device(rdev: u64) -> (u32, u32) {
    let d = rdev as libc::dev_t;
    (libc::major(d), libc::minor(d))
}

/// The owner and write rules, for a file of `mode` owned by `uid`:`gid`
/// read by a process running as `euid`.
pub(crate) fn check_owner(
    path: &Path,
    mode: u32,
    uid: u32,
    gid: u32,
    euid: u32,
) -> Result<(), ConfigError> {
    let exposure = if euid == 0 && uid != 0 {
        Some(Exposure::NotRootOwned)
    } else if uid != euid && uid != 0 {
        Some(Exposure::OwnedByAnother { runner: euid })
    } else if mode & 0o002 != 0 {
        Some(Exposure::WritableByOthers)
    } else if mode & 0o020 != 0 {
        Some(Exposure::WritableByGroup)
    } else {
        None
    };
    refuse(path, mode, uid, gid, exposure)
}

/// The reading rules for a file that holds a password (after the owner
/// rules have passed).
pub(crate) fn check(
    path: &Path,
    mode: u32,
    uid: u32,
    gid: u32,
    has_password: bool,
) -> Result<(), ConfigError> {
    let exposure = if mode & 0o002 != 0 {
        Some(Exposure::WritableByOthers)
    } else if !has_password {
        None
    } else if mode & 0o007 != 0 {
        Some(Exposure::ReadableByOthers)
    } else if mode & 0o070 != 0 && !(uid == 0 && mode & 0o070 == 0o040) {
        // Not root's, or root's but the group may also write or execute:
        // only "root-owned, group read" is the documented exception.
        Some(Exposure::ReadableByGroup)
    } else {
        None
    };
    refuse(path, mode, uid, gid, exposure)
}

fn refuse(
    path: &Path,
    mode: u32,
    uid: u32,
    gid: u32,
    exposure: Option<Exposure>,
) -> Result<(), ConfigError> {
    match exposure {
        None => Ok(()),
        Some(exposure) => Err(ConfigError::Permissions {
            path: path.to_path_buf(),
            mode,
            uid,
            gid,
            exposure,
        }),
    }
}

/// A user's name, or the number when /etc/passwd has none.
fn user_name(uid: u32) -> String {
    crate::identity::passwd_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// A group's name from /etc/group, or the number.
fn group_name(gid: u32) -> String {
    std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|g| {
            g.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id: u32 = f.nth(1)?.parse().ok()?;
                (id == gid && !name.is_empty()).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| format!("gid {gid}"))
}

/// The one line for a refused file: the file, its owner and mode, why,
/// and the command that fixes it.
pub(crate) fn message(path: &Path, mode: u32, uid: u32, gid: u32, exposure: Exposure) -> String {
    let p = path.display();
    let mode = mode & 0o7777;
    let owner = user_name(uid);
    let group = group_name(gid);
    let is = format!("{p} (owner {owner}, group {group}, mode {mode:04o})");
    match exposure {
        Exposure::ReadableByOthers => format!(
            "{is} contains a password and is readable by others: \
             run \"chmod 600 {p}\" (or, to share it with one group, \
             \"chown root:GROUP {p} && chmod 640 {p}\")"
        ),
        Exposure::ReadableByGroup => format!(
            "{is} contains a password and is readable by its group: \
             run \"chmod 600 {p}\" (only a file owned by root may be group-readable, \
             and only with mode 640)"
        ),
        Exposure::WritableByOthers => format!(
            "{is} is writable by others: anyone could redirect mail or run \
             commands through it; run \"chmod go-w {p}\""
        ),
        Exposure::WritableByGroup => format!(
            "{is} is writable by group {group}: its members could redirect mail or run \
             commands through it; run \"chmod g-w {p}\""
        ),
        Exposure::OwnedByAnother { runner } => {
            let me = user_name(runner);
            format!(
                "{is} belongs to {owner}, not to {me} who runs smtpsend (nor to root): \
                 its owner could redirect {me}'s mail or run commands as {me}; \
                 run \"chown {me} {p}\" as root, or use a copy of your own"
            )
        }
        Exposure::NotRootOwned => format!(
            "{is} belongs to {owner}, but smtpsend runs as root and reads only files \
             owned by root: run \"chown root {p}\" (and check what it says), \
             or run smtpsend as {owner}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(mode: u32, uid: u32, pw: bool) -> bool {
        check(Path::new("/c.toml"), mode, uid, 0, pw).is_ok()
    }

    #[test]
    fn password_table() {
        // (mode, owner uid, has password, allowed)
        let cases = [
            (0o600, 1000, true, true),
            (0o400, 1000, true, true),
            (0o640, 1000, true, false),
            (0o640, 0, true, true),
            (0o660, 0, true, false),
            (0o644, 0, true, false),
            (0o604, 0, true, false),
            (0o644, 1000, true, false),
            (0o644, 1000, false, true),
            (0o666, 1000, false, false),
            (0o646, 0, false, false),
            (0o100600, 1000, true, true),
        ];
        for (mode, uid, pw, want) in cases {
            assert_eq!(
                ok(mode, uid, pw),
                want,
                "mode {mode:o} uid {uid} password {pw}"
            );
        }
    }

    #[test]
    fn owner_table() {
        // (mode, owner uid, runner euid, allowed)
        let cases = [
            (0o600, 1000, 1000, true),
            (0o644, 1000, 1000, true),
            (0o644, 0, 1000, true),
            (0o640, 0, 1000, true),
            (0o600, 0, 0, true),
            // Written by the group or others.
            (0o664, 1000, 1000, false),
            (0o620, 1000, 1000, false),
            (0o664, 0, 1000, false),
            (0o660, 0, 0, false),
            (0o646, 1000, 1000, false),
            // Someone else's.
            (0o644, 1001, 1000, false),
            (0o600, 1001, 1000, false),
            // Root reads only root's.
            (0o600, 1000, 0, false),
            (0o644, 1000, 0, false),
        ];
        for (mode, uid, euid, want) in cases {
            assert_eq!(
                check_owner(Path::new("/c.toml"), mode, uid, 0, euid).is_ok(),
                want,
                "mode {mode:o} uid {uid} euid {euid}"
            );
        }
    }

    #[test]
    fn messages_say_how_to_fix() {
        let e = check(Path::new("/etc/smtpsend.toml"), 0o100644, 0, 0, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/smtpsend.toml (owner root, group root, mode 0644) contains a password and \
             is readable by others: run \"chmod 600 /etc/smtpsend.toml\" (or, to share it \
             with one group, \"chown root:GROUP /etc/smtpsend.toml && chmod 640 /etc/smtpsend.toml\")"
        );
        assert_eq!(e.kind(), crate::exit::Sysexit::Config);
        let e = check_owner(Path::new("/h/c.toml"), 0o664, 0, 0, 1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/h/c.toml (owner root, group root, mode 0664) is writable by group root: its \
             members could redirect mail or run commands through it; run \"chmod g-w /h/c.toml\""
        );
        assert_eq!(e.kind(), crate::exit::Sysexit::Config);
        let e = check_owner(Path::new("/h/c.toml"), 0o600, 4000123, 0, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/h/c.toml (owner uid 4000123, group root, mode 0600) belongs to uid 4000123, but \
             smtpsend runs as root and reads only files owned by root: run \"chown root \
             /h/c.toml\" (and check what it says), or run smtpsend as uid 4000123"
        );
        let e = check_owner(Path::new("/h/c.toml"), 0o644, 4000123, 4000123, 4000124).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/h/c.toml (owner uid 4000123, group gid 4000123, mode 0644) belongs to uid \
             4000123, not to uid 4000124 who runs smtpsend (nor to root): its owner could \
             redirect uid 4000124's mail or run commands as uid 4000124; run \"chown uid \
             4000124 /h/c.toml\" as root, or use a copy of your own"
        );
    }

    #[test]
    fn opened_not_looked_up() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let me = crate::identity::uid();
        let real = dir.path().join("real.toml");
        std::fs::write(&real, "").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A link is checked as the file it names, and that file is named.
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(open_trusted(&link, me).is_ok());
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = open_trusted(&link, me).unwrap_err();
        assert!(
            e.to_string().starts_with(&real.display().to_string()),
            "{e}"
        );
        // A FIFO is refused without waiting for a writer.
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let e = open_trusted(&fifo, me).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // /dev/null is "no configuration".
        assert!(open_trusted(Path::new("/dev/null"), me).is_ok());
        assert!(open_trusted(Path::new("/dev/zero"), me).is_err());
    }
}
