//! The configuration layer's error type.
//!
//! Every variant renders as the one line the user sees: it names the file
//! (and, for a problem inside it, the line and the key) and says what to do
//! about it. Nothing here ever shows a password, even one of the wrong type.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::exit::Sysexit;

/// Where an explicitly named configuration file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `-C FILE` on the command line.
    CommandLine,
    /// The `SMTPSEND_CONFIG` environment variable.
    Environment,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::CommandLine => "given with -C",
            Origin::Environment => "named by $SMTPSEND_CONFIG",
        })
    }
}

/// Who can read (or write) a configuration file that must be private.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Others can read a file holding a password: always refused.
    ReadableByOthers,
    /// The group can read a file holding a password, and the file is not
    /// owned by root or the group may do more than read.
    ReadableByGroup,
    /// Others can write the file: anyone could redirect mail or set a
    /// `password_command` that runs as the caller. Always refused.
    WritableByOthers,
    /// The group can write the file: always refused.
    WritableByGroup,
    /// The file belongs neither to the user running smtpsend (`runner`)
    /// nor to root.
    OwnedByAnother { runner: u32 },
    /// Root runs smtpsend and the file is not root's.
    NotRootOwned,
}

/// Everything loading, choosing and using a configuration can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file named with `-C` or `$SMTPSEND_CONFIG` does not exist.
    #[error("configuration file {} ({origin}) does not exist", path.display())]
    NotFound { path: PathBuf, origin: Origin },

    /// The file exists but cannot be read (permissions, a directory, not
    /// UTF-8, too large).
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A problem at a place in the file: bad TOML, an unknown key, a value
    /// of the wrong type or out of range, keys that contradict each other.
    /// `message` names the key and its table; `line` is 1-based.
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        key: Option<String>,
        message: String,
    },

    /// The file's owner or permissions make it untrustworthy, or expose
    /// a password (see `permissions.rs` for the rules).
    #[error("{}", super::permissions::message(path, *mode, *uid, *gid, *exposure))]
    Permissions {
        path: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
        exposure: Exposure,
    },

    /// `-a NAME` names no profile.
    #[error("no profile named \"{name}\" in {}: {}", path.display(), list_profiles(available))]
    UnknownProfile {
        path: PathBuf,
        name: String,
        available: Vec<String>,
    },

    /// Several profiles and nothing to choose between them.
    #[error(
        "{} has several profiles ({}) and none was chosen: give -a NAME, or set default_profile",
        path.display(),
        available.join(", ")
    )]
    NoProfileChosen {
        path: PathBuf,
        available: Vec<String>,
    },

    /// Aliases that name each other in a circle.
    #[error("alias loop: {} (make one of them an address)", chain.join(" -> "))]
    AliasLoop { chain: Vec<String> },

    /// `password_command` could not be run, failed, or printed nothing
    /// usable. `problem` holds its exit status and the first line of its
    /// standard error.
    #[error(
        "password_command of profile \"{profile}\" ({command}) {problem} (run the command in a shell to check it)"
    )]
    PasswordCommand {
        profile: String,
        command: String,
        problem: String,
    },

    /// `password_command` did not finish in time and was killed.
    #[error(
        "password_command of profile \"{profile}\" ({command}) did not finish within {} s and was killed (does it wait for input?)",
        timeout.as_secs_f64()
    )]
    PasswordTimeout {
        profile: String,
        command: String,
        timeout: Duration,
    },

    /// A command-line option that overrides the profile has a bad value.
    #[error("{option}: {message}")]
    BadOption {
        option: &'static str,
        message: String,
    },
}

impl ConfigError {
    /// The sysexits code for this failure: EX_CONFIG for a bad or unusable
    /// configuration, EX_USAGE for a bad command line (`-a` naming no
    /// profile, a bad override), EX_TEMPFAIL for a password command that
    /// hung (a locked keyring or an unanswered passphrase prompt may well
    /// answer next time, so a queued message should stay queued).
    pub fn kind(&self) -> Sysexit {
        Sysexit::from(self)
    }

    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ConfigError::NotFound { path, .. }
            | ConfigError::Read { path, .. }
            | ConfigError::Invalid { path, .. }
            | ConfigError::Permissions { path, .. }
            | ConfigError::UnknownProfile { path, .. }
            | ConfigError::NoProfileChosen { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The 1-based line in the file, for a problem inside it.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The key the problem is about, for a problem inside the file.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => key.as_deref(),
            _ => None,
        }
    }
}

fn list_profiles(available: &[String]) -> String {
    if available.is_empty() {
        "it defines no [profile.NAME] tables".into()
    } else {
        format!("the profiles are {}", available.join(", "))
    }
}
