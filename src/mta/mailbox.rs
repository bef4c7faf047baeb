//! Where local mail for a user goes: `~USER/Maildir` when that directory
//! exists, else the mbox `/var/mail/USER` (see [`super::mbox`]); a name
//! that is no user of this machine is an error to bounce with.
//!
//! Users are looked up in the passwd file's text (`/etc/passwd`: users
//! from NSS services such as LDAP are not seen; give them an alias). The
//! lookup is exact, then without case, as Postfix's local(8) folds case.
//! The writing itself must happen in a process running as the user (the
//! result carries its uid and gid), never as root in the user's
//! directories.

use std::io;
use std::path::{Path, PathBuf};

/// Where the user table is.
pub const PASSWD: &str = "/etc/passwd";

/// The most read of it.
pub const PASSWD_MAX: u64 = 16 * 1024 * 1024;

/// A user of this machine, from the passwd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// A user's mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mailbox {
    /// `HOME/Maildir`, which exists: deliver with [`crate::maildir`].
    Maildir { user: User, path: PathBuf },
    /// `DIR/USER` in the mail directory: deliver with [`super::mbox`].
    Mbox { user: User, dir: PathBuf },
}

/// Why a local recipient has no mailbox.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    /// A permanent failure: the message goes back to its sender.
    #[error(
        "5.1.1 no local user {name:?} on this machine (not in {passwd}); give it an alias in [aliases] of the configuration or in /etc/aliases"
    )]
    UnknownUser { name: String, passwd: String },
    /// The passwd file could not be read: try again later.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl MailboxError {
    /// Whether the message should stay queued rather than bounce.
    pub fn is_temporary(&self) -> bool {
        matches!(self, MailboxError::Read { .. })
    }
}

/// Finds `name` in passwd text: exact first, then without case.
pub fn lookup(passwd: &str, name: &str) -> Option<User> {
    let users = || passwd.lines().filter_map(parse_line);
    users()
        .find(|u| u.name == name)
        .or_else(|| users().find(|u| u.name.eq_ignore_ascii_case(name)))
}

fn parse_line(line: &str) -> Option<User> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 7 || f[0].is_empty() || f[0].starts_with(['+', '-', '#']) {
        return None;
    }
    Some(User {
        name: f[0].to_owned(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        home: PathBuf::from(f[5]),
    })
}

/// The mailbox of local user `name`, looked up in `passwd_path`, with
/// mboxes in `mail_dir` (normally [`super::mbox::MAIL_DIR`]).
pub fn resolve(name: &str, passwd_path: &Path, mail_dir: &Path) -> Result<Mailbox, MailboxError> {
    let text = match super::read_bounded(passwd_path, PASSWD_MAX) {
        Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(None) => String::new(),
        Err(source) => {
            return Err(MailboxError::Read {
                path: passwd_path.to_owned(),
                source,
            });
        }
    };
    let user = lookup(&text, name).ok_or_else(|| MailboxError::UnknownUser {
        name: name.to_owned(),
        passwd: passwd_path.display().to_string(),
    })?;
    Ok(mailbox_of(user, mail_dir))
}

/// `~/Maildir` if it is a directory, else the mbox. A symlink named
/// `Maildir` does not count: [`crate::maildir`] never writes through one.
pub fn mailbox_of(user: User, mail_dir: &Path) -> Mailbox {
    let maildir = user.home.join("Maildir");
    if user.home.is_absolute() && std::fs::symlink_metadata(&maildir).is_ok_and(|m| m.is_dir()) {
        Mailbox::Maildir {
            user,
            path: maildir,
        }
    } else {
        Mailbox::Mbox {
            user,
            dir: mail_dir.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
Alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
alice:x:1001:1001::/home/alice2:/bin/sh
broken:x:notanumber:1::/:/bin/sh
+nisuser::::::
short:x:5
";

    #[test]
    fn exact_name_first_then_any_case() {
        assert_eq!(lookup(PASSWD_TEXT, "alice").unwrap().uid, 1001);
        assert_eq!(lookup(PASSWD_TEXT, "Alice").unwrap().uid, 1000);
        assert_eq!(
            lookup(PASSWD_TEXT, "ROOT").unwrap().home,
            Path::new("/root")
        );
        for missing in ["broken", "+nisuser", "nisuser", "short", "", "nobody"] {
            assert!(lookup(PASSWD_TEXT, missing).is_none(), "{missing}");
        }
    }

    #[test]
    fn maildir_when_it_exists_else_mbox_and_unknown_users_bounce() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("home");
        std::fs::create_dir_all(home.join("Maildir")).unwrap();
        let passwd = d.path().join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "bob:x:1002:1002::{}:/bin/sh\ncarol:x:1003:1003::{}/nohome:/bin/sh\n",
                home.display(),
                d.path().display()
            ),
        )
        .unwrap();
        let mail = Path::new("/var/mail");
        match resolve("bob", &passwd, mail).unwrap() {
            Mailbox::Maildir { user, path } => {
                assert_eq!((user.uid, user.gid), (1002, 1002));
                assert_eq!(path, home.join("Maildir"));
            }
            other => panic!("{other:?}"),
        }
        match resolve("carol", &passwd, mail).unwrap() {
            Mailbox::Mbox { user, dir } => {
                assert_eq!(user.name, "carol");
                assert_eq!(dir, mail);
            }
            other => panic!("{other:?}"),
        }
        let e = resolve("mallory", &passwd, mail).unwrap_err();
        assert!(!e.is_temporary());
        let text = e.to_string();
        assert!(
            text.starts_with("5.1.1 ") && text.contains("mallory"),
            "{text}"
        );
        assert!(text.contains("/etc/aliases"), "{text}");
        // No passwd file at all: nobody is local.
        let e = resolve("bob", &d.path().join("none"), mail).unwrap_err();
        assert!(matches!(e, MailboxError::UnknownUser { .. }));
        // Unreadable (a directory): temporary.
        assert!(resolve("bob", d.path(), mail).unwrap_err().is_temporary());
    }
}
