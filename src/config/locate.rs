//! Which configuration file to read.
//!
//! The order: `-C FILE`, then `$SMTPSEND_CONFIG`, then the user's
//! `config_dir()/smtpsend/config.toml`, then `/etc/smtpsend.toml`. A file
//! named explicitly (the first two) must exist; the implicit ones are
//! skipped when absent. Everything taken from the process environment sits
//! in [`LookupEnv`], so tests inject it instead of mutating the process.
//!
//! This must work for cron and daemons: HOME unset, HOME=/, a HOME that
//! belongs to someone else. When there is no user config directory the
//! step is skipped, never an error.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Origin};

/// The environment variable that names a configuration file.
pub const CONFIG_ENV: &str = "SMTPSEND_CONFIG";

/// The system-wide configuration file.
pub const SYSTEM_CONFIG: &str = "/etc/smtpsend.toml";

/// The file name under the user's configuration directory.
pub const USER_CONFIG: &str = "smtpsend/config.toml";

/// The parts of the lookup that come from the process environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupEnv {
    /// The value of `$SMTPSEND_CONFIG`; an empty value counts as unset
    /// (`SMTPSEND_CONFIG= smtpsend ...` is how a shell unsets it for one
    /// command).
    pub config_env: Option<OsString>,
    /// The user's configuration directory (`dirs::config_dir()`: usually
    /// `$XDG_CONFIG_HOME` or `~/.config`), if there is one.
    pub config_dir: Option<PathBuf>,
    /// The system-wide file.
    pub system_path: PathBuf,
}

impl LookupEnv {
    /// The environment of this process.
    pub fn from_process() -> Self {
        LookupEnv {
            config_env: std::env::var_os(CONFIG_ENV),
            config_dir: dirs::config_dir(),
            system_path: super::system_config_path(),
        }
    }
}

/// The file a user edits to configure a relay, for messages that say so:
/// `$SMTPSEND_CONFIG` when set, else the user's file (whether or not it
/// exists yet), else the system file. Under the home directory it is shown
/// with `~`.
pub fn config_to_edit(env: &LookupEnv, home: Option<&Path>) -> String {
    let path = match env.config_env.as_ref().filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => match &env.config_dir {
            Some(d) => d.join(USER_CONFIG),
            None => env.system_path.clone(),
        },
    };
    match home
        .filter(|h| *h != Path::new("/"))
        .and_then(|h| path.strip_prefix(h).ok())
    {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}

/// The configuration file to read, in the process's environment: see
/// [`locate_in`].
pub fn locate(explicit: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    locate_in(explicit, &LookupEnv::from_process())
}

/// The configuration file to read: the explicit path, else
/// `$SMTPSEND_CONFIG`, else the user's file, else the system file; `None`
/// when there is none at all (the command line alone must then suffice).
///
/// An explicit or environment path that does not exist is an error naming
/// it. An implicit path that cannot even be looked at (a HOME we may not
/// enter) is skipped like an absent one.
pub fn locate_in(explicit: Option<&Path>, env: &LookupEnv) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(p) = explicit {
        return must_exist(p, Origin::CommandLine).map(Some);
    }
    if let Some(v) = env.config_env.as_ref().filter(|v| !v.is_empty()) {
        return must_exist(Path::new(v), Origin::Environment).map(Some);
    }
    let user = env.config_dir.as_ref().map(|d| d.join(USER_CONFIG));
    for candidate in user.into_iter().chain([env.system_path.clone()]) {
        if std::fs::metadata(&candidate).is_ok() {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

fn must_exist(path: &Path, origin: Origin) -> Result<PathBuf, ConfigError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(path.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::NotFound {
            path: path.to_path_buf(),
            origin,
        }),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Self {
            Tree {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }
        fn touch(&self, rel: &str) -> PathBuf {
            let p = self.path(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, "").unwrap();
            p
        }
        fn env(&self, config_env: Option<&str>, config_dir: Option<&str>) -> LookupEnv {
            LookupEnv {
                config_env: config_env.map(|v| self.path(v).into_os_string()),
                config_dir: config_dir.map(|d| self.path(d)),
                system_path: self.path("etc/smtpsend.toml"),
            }
        }
    }

    #[test]
    fn explicit_wins_over_everything() {
        let t = Tree::new();
        let c = t.touch("c.toml");
        t.touch("env.toml");
        t.touch("home/.config/smtpsend/config.toml");
        t.touch("etc/smtpsend.toml");
        let env = t.env(Some("env.toml"), Some("home/.config"));
        assert_eq!(locate_in(Some(&c), &env).unwrap(), Some(c));
    }

    #[test]
    fn environment_then_user_then_system() {
        let t = Tree::new();
        let sys = t.touch("etc/smtpsend.toml");
        let env = t.env(None, Some("home/.config"));
        assert_eq!(locate_in(None, &env).unwrap(), Some(sys.clone()));

        let user = t.touch("home/.config/smtpsend/config.toml");
        assert_eq!(locate_in(None, &env).unwrap(), Some(user));

        let e = t.touch("env.toml");
        let env = t.env(Some("env.toml"), Some("home/.config"));
        assert_eq!(locate_in(None, &env).unwrap(), Some(e));
    }

    #[test]
    fn missing_explicit_and_environment_paths_are_errors() {
        let t = Tree::new();
        t.touch("etc/smtpsend.toml");
        let env = t.env(Some("nope.toml"), None);
        let missing = t.path("missing.toml");
        let err = locate_in(Some(&missing), &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "configuration file {} (given with -C) does not exist",
                missing.display()
            )
        );
        let err = locate_in(None, &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "configuration file {} (named by $SMTPSEND_CONFIG) does not exist",
                t.path("nope.toml").display()
            )
        );
        assert_eq!(err.kind(), crate::exit::Sysexit::Config);
    }

    #[test]
    fn empty_environment_value_counts_as_unset() {
        let t = Tree::new();
        let sys = t.touch("etc/smtpsend.toml");
        let mut env = t.env(None, None);
        env.config_env = Some(OsString::new());
        assert_eq!(locate_in(None, &env).unwrap(), Some(sys));
    }

    #[test]
    fn no_home_no_file_is_not_an_error() {
        let t = Tree::new();
        // No config dir at all (HOME unset and no passwd entry).
        assert_eq!(locate_in(None, &t.env(None, None)).unwrap(), None);
        // HOME=/ : the user path does not exist and is skipped.
        let env = LookupEnv {
            config_env: None,
            config_dir: Some(PathBuf::from("/.config")),
            system_path: t.path("etc/smtpsend.toml"),
        };
        assert_eq!(locate_in(None, &env).unwrap(), None);
        // A config dir that is a file, so the path under it cannot exist.
        t.touch("notadir");
        assert_eq!(
            locate_in(None, &t.env(None, Some("notadir"))).unwrap(),
            None
        );
    }

    #[test]
    fn the_file_to_edit_is_the_users_shown_with_a_tilde() {
        let env = LookupEnv {
            config_env: None,
            config_dir: Some(PathBuf::from("/home/alice/.config")),
            system_path: PathBuf::from("/etc/smtpsend.toml"),
        };
        let home = Some(Path::new("/home/alice"));
        assert_eq!(config_to_edit(&env, home), "~/.config/smtpsend/config.toml");
        assert_eq!(
            config_to_edit(&env, Some(Path::new("/"))),
            "/home/alice/.config/smtpsend/config.toml"
        );
        let none = LookupEnv {
            config_dir: None,
            ..env.clone()
        };
        assert_eq!(config_to_edit(&none, home), "/etc/smtpsend.toml");
        let named = LookupEnv {
            config_env: Some("/srv/s.toml".into()),
            ..env
        };
        assert_eq!(config_to_edit(&named, home), "/srv/s.toml");
    }
}
