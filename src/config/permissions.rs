//! Who may read a configuration file.
//!
//! A file that holds a `password` must not be readable by others, ever;
//! it may be readable by its group only when root owns it (a system file,
//! mode 0640 root:smtpsend, for a group of daemons that send mail). Any
//! file writable by others is refused whatever it holds: whoever can write
//! it can point root's mail at their own relay or set a `password_command`
//! that runs as the caller. A file without a password may otherwise be
//! world-readable, as /etc/smtpsend.toml usually is.

use std::path::Path;

use super::error::{ConfigError, Exposure};

/// Checks a file's mode and owner (from the opened file, not the path, so
/// what is checked is what was read).
pub(crate) fn check(
    path: &Path,
    mode: u32,
    uid: u32,
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
    match exposure {
        None => Ok(()),
        Some(exposure) => Err(ConfigError::Permissions {
            path: path.to_path_buf(),
            mode,
            uid,
            exposure,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(mode: u32, uid: u32, pw: bool) -> bool {
        check(Path::new("/c.toml"), mode, uid, pw).is_ok()
    }

    #[test]
    fn table() {
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
    fn messages_say_how_to_fix() {
        let e = check(Path::new("/etc/smtpsend.toml"), 0o100644, 0, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/smtpsend.toml contains a password and is readable by others (mode 0644): \
             run \"chmod 600 /etc/smtpsend.toml\" (or, to share it with one group, \
             \"chown root:GROUP /etc/smtpsend.toml && chmod 640 /etc/smtpsend.toml\")"
        );
        assert_eq!(e.kind(), crate::exit::Sysexit::Config);
        let e = check(Path::new("/h/c.toml"), 0o640, 1000, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/h/c.toml contains a password and is readable by its group (mode 0640): \
             run \"chmod 600 /h/c.toml\" (only a file owned by root may be group-readable, \
             and only with mode 640)"
        );
        let e = check(Path::new("/h/c.toml"), 0o666, 1000, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/h/c.toml is writable by others (mode 0666): anyone could redirect mail or run \
             commands through it; run \"chmod o-w /h/c.toml\""
        );
    }
}
