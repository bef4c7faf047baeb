//! What the system configuration allows on a restricted command line (the
//! `sendmail` name, or every name with `restrict_args = true`): the three
//! top-level keys `restrict_args`, `allow_args` and `allow_config_dirs`.
//!
//! They are read from the system file only (/etc/smtpsend.toml, or the
//! file `$SMTPSEND_SYSTEM_CONFIG` names, as git's `GIT_CONFIG_SYSTEM`:
//! for packaging and tests; whoever sets a process's environment already
//! decides what it runs). In any other file they are accepted and have no
//! effect. The binary's argv rules (`cli::restrict`) apply them; nothing
//! here depends on the command line's definition.

use std::path::PathBuf;

use super::error::ConfigError;
use super::parse::Locator;
use super::schema::OneOrMany;

/// The environment variable that names the system configuration file in
/// place of /etc/smtpsend.toml.
pub const SYSTEM_CONFIG_ENV: &str = "SMTPSEND_SYSTEM_CONFIG";

/// The system configuration file: `$SMTPSEND_SYSTEM_CONFIG` when set and
/// not empty, else /etc/smtpsend.toml.
pub fn system_config_path() -> PathBuf {
    std::env::var_os(SYSTEM_CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(super::SYSTEM_CONFIG), PathBuf::from)
}

/// The spellings of each flag a restricted command line refuses or
/// ignores, as `allow_args` names them (the first is the one messages
/// use). This is the one list of them: `cli::restrict` attaches what each
/// flag does to these names, and its tests check it covers every one.
pub mod flag {
    pub const LOG_FILE: &[&str] = &["-X", "--log-file"];
    pub const FILE: &[&str] = &["--file"];
    pub const PASSWORD_COMMAND: &[&str] = &["--password-command"];
    pub const HOST: &[&str] = &["--host"];
    pub const PORT: &[&str] = &["--port"];
    pub const TLS: &[&str] = &["--tls"];
    pub const TLS_VERIFY: &[&str] = &["--tls-verify"];
    pub const TLS_CA_FILE: &[&str] = &["--tls-ca-file"];
    pub const AUTH: &[&str] = &["--auth"];
    pub const USER: &[&str] = &["--user"];

    /// Every one of them.
    pub const ALL: &[&[&str]] = &[
        LOG_FILE,
        FILE,
        PASSWORD_COMMAND,
        HOST,
        PORT,
        TLS,
        TLS_VERIFY,
        TLS_CA_FILE,
        AUTH,
        USER,
    ];
}

/// Whether `entry` may stand in `allow_args`: the name of a restricted
/// flag, in any of its spellings.
pub fn check_allowable(entry: &str) -> Result<(), String> {
    if entry == "-C" {
        return Err(
            "-C is allowed through allow_config_dirs (the directories it may load from), not allow_args"
                .into(),
        );
    }
    if flag::ALL.iter().any(|names| names.contains(&entry)) {
        return Ok(());
    }
    let all: Vec<&str> = flag::ALL.iter().map(|names| names[0]).collect();
    Err(format!(
        "{entry:?} is not a restricted flag: the flags allow_args can allow are {}",
        all.join(", ")
    ))
}

/// The system's rules for restricted command lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArgPolicy {
    /// Apply the sendmail-name rules under every name, `smtpsend` too
    /// (for a PHP `sendmail_path` that names smtpsend directly).
    pub restrict_args: bool,
    /// Flags a restricted command line may use after all, as written
    /// (`"--host"`, `"-X"`).
    pub allow_args: Vec<String>,
    /// Directories whose files `-C` may name on a restricted command line
    /// (Postfix's `alternate_config_directories`).
    pub allow_config_dirs: Vec<PathBuf>,
}

/// Checks the keys as written: every `allow_args` entry names a flag the
/// rules restrict, every directory is absolute.
pub(crate) fn from_raw(
    restrict_args: Option<bool>,
    allow_args: Option<OneOrMany>,
    allow_config_dirs: Option<OneOrMany>,
    loc: &Locator<'_>,
) -> Result<ArgPolicy, ConfigError> {
    let list = |v: Option<OneOrMany>| match v {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    let allow_args = list(allow_args);
    for a in &allow_args {
        if let Err(m) = check_allowable(a) {
            return Err(loc.bad_value(&[], "allow_args", m));
        }
    }
    let mut dirs = Vec::new();
    for d in list(allow_config_dirs) {
        if !d.starts_with('/') {
            return Err(loc.bad_value(
                &[],
                "allow_config_dirs",
                format!("{d:?} is relative: write an absolute directory"),
            ));
        }
        dirs.push(PathBuf::from(d));
    }
    Ok(ArgPolicy {
        restrict_args: restrict_args.unwrap_or(false),
        allow_args,
        allow_config_dirs: dirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn load(text: &str) -> Result<ArgPolicy, String> {
        Config::from_str(text, Path::new("/etc/smtpsend.toml"))
            .map(|c| c.arg_policy().clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn keys() {
        assert_eq!(load("").unwrap(), ArgPolicy::default());
        let p = load(
            "restrict_args = true\nallow_args = [\"--host\", \"-X\"]\nallow_config_dirs = \"/etc/smtpsend.d\"\n[profile.a]\n",
        )
        .unwrap();
        assert!(p.restrict_args);
        assert_eq!(p.allow_args, ["--host", "-X"]);
        assert_eq!(p.allow_config_dirs, [PathBuf::from("/etc/smtpsend.d")]);
    }

    #[test]
    fn mistakes_name_the_line() {
        let e = load("\nallow_args = [\"--hots\"]\n").unwrap_err();
        assert!(
            e.starts_with("/etc/smtpsend.toml:2: bad value for \"allow_args\" at the top level: \"--hots\" is not a restricted flag"),
            "{e}"
        );
        let e = load("allow_args = [\"-C\"]\n").unwrap_err();
        assert!(e.contains("allow_config_dirs"), "{e}");
        let e = load("allow_config_dirs = [\"conf\"]\n").unwrap_err();
        assert!(
            e.ends_with("\"conf\" is relative: write an absolute directory"),
            "{e}"
        );
        let e = load("restrict_args = \"yes\"\n").unwrap_err();
        assert!(e.contains("expected a boolean"), "{e}");
        // Only at the top level.
        let e = load("[profile.a]\nrestrict_args = true\n").unwrap_err();
        assert!(e.contains("belongs at the top level"), "{e}");
    }
}
