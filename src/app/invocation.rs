//! argv, resolved once: the clap [`Args`] and the program's name become an
//! [`Invocation`], a [`Mode`] and the typed [`Settings`] every mode
//! shares. This is the only place that reads [`Args`]; nothing below it
//! sees a flag, only what the flags mean.
//!
//! The rules that are not clap's own live here too: the `-b` modes, which
//! modes honour `--dry-run` (sending, `-q` and the queue list show what
//! would happen and send nothing) and which refuse it (`-bs`), and the
//! argv policy checks ([`check_argv_policy`]), done once before anything
//! else.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use super::Failure;
use crate::cli::{Args, Personality, RelayProtocol};
use crate::config::{Auth, Overrides, Transport};
use crate::exit::Sysexit;
use crate::smtp::Dsn;

/// How long `-bs` waits for the client's next line when no `--timeout`
/// is given (Postfix's smtpd_timeout).
pub const BS_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// One run of the program, decided.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub mode: Mode,
    pub settings: Settings,
}

/// What the run does.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Read one message and send it (the default, `-bm`). With
    /// `--dry-run`, print the plan instead.
    Send(Submission),
    /// `-q`, `--queue-run`; `--queue-flush` (`flush`: ignore the backoff).
    /// With `--dry-run`, list what would be tried.
    QueueRun { flush: bool },
    /// `-bp`, `mailq`, `--queue-list`.
    QueueList,
    /// `--queue-delete ID`.
    QueueDelete(String),
    /// `--serverinfo`.
    ServerInfo,
    /// `-bs`: SMTP on standard input and output; each message is a
    /// submission built from `template` with the conversation's envelope.
    ServeStdin {
        idle: Duration,
        template: Submission,
    },
    /// `newaliases`, `-bi`: nothing to rebuild.
    Newaliases,
    /// `--queue-retrier` (hidden): the detached retrier a submission that
    /// left a message queued starts (src/retrier.rs).
    QueueRetrier,
}

/// What every mode shares: where the configuration is, which profile,
/// the flags that override it, how verbose to be, where to log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// `-C FILE`.
    pub config: Option<PathBuf>,
    /// `-a NAME`.
    pub profile: Option<String>,
    /// The profile keys given as flags (`from` is the submission's).
    pub overrides: Overrides,
    /// 0 quiet, 1 `-v` (the SMTP conversation), 2 `--debug` (with times).
    pub debug_level: u8,
    /// `-X FILE`.
    pub log_file: Option<PathBuf>,
    /// `-L TAG`.
    pub log_tag: Option<String>,
    pub dry_run: bool,
    /// `--no-queue`: the profile's `queue = false`.
    pub no_queue: bool,
    /// `--strict-recipients`: a partial refusal is EX_NOUSER.
    pub strict_recipients: bool,
}

/// One message to send, as the caller described it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Submission {
    /// `-f`/`-r`/`--from`, as given (`""` and `<>` are the null sender).
    pub sender: Option<String>,
    /// Recipients as given.
    pub recipients: Vec<String>,
    /// `-t`.
    pub read_recipients: bool,
    /// `--read-envelope-from`.
    pub read_envelope_from: bool,
    /// `-F`.
    pub full_name: Option<String>,
    /// `-N`, `-R`, `-V`.
    pub dsn: Option<Dsn>,
    pub source: Source,
}

/// Where the message comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Source {
    /// Standard input; `dot_ends`: a line with a single "." ends it.
    Stdin { dot_ends: bool },
    /// `--file`.
    File(PathBuf),
    /// A stream the caller hands over (a `-bs` transaction's body).
    #[default]
    Stream,
}

impl Invocation {
    /// Resolves parsed argv; `argv0` is the name the program was called
    /// as. Errors are usage errors (EX_USAGE) naming the flag, or the argv
    /// policy's refusal.
    pub fn resolve(argv0: &OsStr, mut args: Args) -> Result<Invocation, Failure> {
        let personality = Personality::from_argv0(argv0);
        check_argv_policy(argv0, personality, &mut args)?;
        let args = &args;
        let settings = settings(args)?;
        let mode = match (personality, args.mode.as_deref()) {
            _ if args.queue_retrier => Mode::QueueRetrier,
            (Personality::Newaliases, _) | (_, Some("i")) => Mode::Newaliases,
            (Personality::Mailq, _) | (_, Some("p")) => Mode::QueueList,
            _ if args.queue_list => Mode::QueueList,
            _ if args.queue_delete.is_some() => {
                Mode::QueueDelete(args.queue_delete.clone().unwrap_or_default())
            }
            _ if args.queue_run || args.queue_flush => Mode::QueueRun {
                flush: args.queue_flush,
            },
            _ if args.serverinfo => Mode::ServerInfo,
            (_, Some("s")) => {
                if settings.dry_run {
                    return Err(usage(
                        "--dry-run cannot be used with -bs: the SMTP client expects its messages to be taken; send a message with --dry-run instead",
                    ));
                }
                Mode::ServeStdin {
                    idle: args.timeout.map_or(BS_IDLE_TIMEOUT, Duration::from_secs),
                    template: Submission {
                        source: Source::Stream,
                        ..submission(args)
                    },
                }
            }
            _ => Mode::Send(submission(args)),
        };
        Ok(Invocation { mode, settings })
    }
}

fn usage(m: impl Into<String>) -> Failure {
    Failure::new(Sysexit::Usage, m)
}

/// The argv policy: what a caller may ask for at all, checked once before
/// anything is read or loaded, the only place argv is judged. Rules that
/// depend on the name the program was called as (a web server's
/// `sendmail -t -i` must not name a config file or a log file) belong
/// here too; they may drop a flag from `args` (as Postfix ignores `-X`).
pub fn check_argv_policy(
    argv0: &OsStr,
    _personality: Personality,
    args: &mut Args,
) -> Result<(), Failure> {
    // A control character in an address means the caller's string is not
    // one address, whatever a parser would make of it (a CR LF smuggled
    // into -f would be a second SMTP command).
    for raw in args
        .sender()
        .into_iter()
        .chain(args.recipients.iter().map(String::as_str))
    {
        crate::smtp::command::check_line_safe("address", raw)
            .map_err(|e| usage(format!("{e}: nothing was sent")))?;
    }
    // The sendmail name (or restrict_args) is not a code-execution surface.
    crate::cli::restrict::apply(argv0, args).map_err(|r| Failure::new(r.exit(), r.to_string()))
}

fn settings(args: &Args) -> Result<Settings, Failure> {
    let auth = args
        .auth
        .as_deref()
        .map(str::parse::<Auth>)
        .transpose()
        .map_err(|e| usage(format!("--auth: {e}")))?;
    Ok(Settings {
        config: args.config.clone(),
        profile: args.profile.clone(),
        overrides: Overrides {
            host: args.host.clone(),
            port: args.port,
            tls: args.tls,
            tls_verify: args.tls_verify,
            tls_ca_file: args.tls_ca_file.clone(),
            auth,
            user: args.user.clone(),
            password_command: args.password_command.clone(),
            from: None,
            domain: args.domain.clone(),
            timeout: args.timeout,
            read_envelope_from: args.read_envelope_from.then_some(true),
            transport: args.protocol.map(|p| match p {
                RelayProtocol::Smtp => Transport::Smtp,
                RelayProtocol::Lmtp => Transport::Lmtp,
            }),
            log_format: args.log_format,
            bdat: args.no_bdat.then_some(false),
        },
        debug_level: if args.debug {
            2
        } else {
            u8::from(args.verbose)
        },
        log_file: args.log_file.clone(),
        log_tag: args.log_tag.clone(),
        dry_run: args.dry_run,
        no_queue: args.no_queue,
        strict_recipients: args.strict_recipients,
    })
}

fn submission(args: &Args) -> Submission {
    let dsn = (args.notify.is_some() || args.ret.is_some() || args.envid.is_some()).then(|| Dsn {
        notify: args
            .notify
            .as_deref()
            .map(|n| {
                n.split(',')
                    .map(|s| s.trim().to_ascii_uppercase())
                    .collect()
            })
            .unwrap_or_default(),
        ret: args.ret.as_deref().map(str::to_ascii_uppercase),
        envid: args.envid.clone(),
        orcpt: false,
    });
    Submission {
        sender: args.sender().map(str::to_owned),
        recipients: args.recipients.clone(),
        read_recipients: args.read_recipients,
        read_envelope_from: args.read_envelope_from,
        full_name: args.full_name.clone(),
        dsn,
        source: match &args.file {
            Some(p) => Source::File(p.clone()),
            None => Source::Stdin {
                dot_ends: args.dot_ends_message(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::ffi::OsString;

    fn resolve_as(argv0: &str, argv: &[&str]) -> Result<Invocation, Failure> {
        let argv = std::iter::once(argv0)
            .chain(argv.iter().copied())
            .map(OsString::from);
        let args = Args::try_parse_from(crate::cli::normalize(argv))
            .map_err(|e| Failure::new(Sysexit::Usage, e.to_string()))?;
        Invocation::resolve(OsStr::new(argv0), args)
    }

    fn resolve(argv: &[&str]) -> Result<Invocation, Failure> {
        resolve_as("smtpsend", argv)
    }

    fn mode(argv: &[&str]) -> Mode {
        resolve(argv).unwrap().mode
    }

    #[test]
    fn modes() {
        assert!(matches!(mode(&["x@y"]), Mode::Send(_)));
        assert!(matches!(mode(&["-bm", "x@y"]), Mode::Send(_)));
        assert_eq!(mode(&["-q"]), Mode::QueueRun { flush: false });
        assert_eq!(mode(&["-q1h"]), Mode::QueueRun { flush: false });
        assert_eq!(mode(&["--queue-flush"]), Mode::QueueRun { flush: true });
        assert_eq!(mode(&["-bp"]), Mode::QueueList);
        assert_eq!(mode(&["--queue-list"]), Mode::QueueList);
        assert_eq!(
            mode(&["--queue-delete", "ID"]),
            Mode::QueueDelete("ID".into())
        );
        assert_eq!(mode(&["--serverinfo"]), Mode::ServerInfo);
        assert_eq!(mode(&["-bi"]), Mode::Newaliases);
        assert!(matches!(
            mode(&["-bs"]),
            Mode::ServeStdin { idle, .. } if idle == BS_IDLE_TIMEOUT
        ));
        assert!(matches!(
            mode(&["-bs", "--timeout", "7"]),
            Mode::ServeStdin { idle, .. } if idle == Duration::from_secs(7)
        ));
        assert_eq!(
            resolve_as("/usr/bin/mailq", &[]).unwrap().mode,
            Mode::QueueList
        );
        assert_eq!(
            resolve_as("newaliases", &[]).unwrap().mode,
            Mode::Newaliases
        );
    }

    #[test]
    fn dry_run_is_honoured_or_refused_in_every_mode() {
        for honoured in [
            &["--dry-run", "x@y"][..],
            &["--dry-run", "-q"],
            &["--dry-run", "--queue-flush"],
            &["--dry-run", "-bp"],
        ] {
            let inv = resolve(honoured).unwrap();
            assert!(inv.settings.dry_run, "{honoured:?}");
        }
        for refused in [
            &["--dry-run", "-bs"][..],
            &["--dry-run", "--serverinfo"],
            &["--dry-run", "--queue-delete", "ID"],
        ] {
            let f = resolve(refused).unwrap_err();
            assert_eq!(f.exit, Sysexit::Usage, "{refused:?}");
        }
    }

    #[test]
    fn exclusive_flags_are_refused() {
        for bad in [
            &["-q", "--queue-list"][..],
            &["-q", "--serverinfo"],
            &["--queue-flush", "--queue-delete", "ID"],
            &["--serverinfo", "--queue-list"],
            &["-q", "--no-queue"],
        ] {
            assert_eq!(resolve(bad).unwrap_err().exit, Sysexit::Usage, "{bad:?}");
        }
    }

    #[test]
    fn submission_and_settings() {
        let inv = resolve(&[
            "-t",
            "-i",
            "-f",
            "a@x",
            "--from",
            "b@x",
            "-F",
            "Cron",
            "-N",
            "success, failure",
            "-R",
            "hdrs",
            "-V",
            "id1",
            "-v",
            "--host",
            "h:25",
            "--auth",
            "plain",
            "-a",
            "work",
            "--strict-recipients",
            "r@x",
        ])
        .unwrap();
        let Mode::Send(s) = inv.mode else {
            panic!("not a send")
        };
        assert_eq!(s.sender.as_deref(), Some("b@x"));
        assert_eq!(s.recipients, ["r@x"]);
        assert!(s.read_recipients);
        assert_eq!(s.full_name.as_deref(), Some("Cron"));
        assert_eq!(s.source, Source::Stdin { dot_ends: false });
        let dsn = s.dsn.unwrap();
        assert_eq!(dsn.notify, ["SUCCESS", "FAILURE"]);
        assert_eq!(dsn.ret.as_deref(), Some("HDRS"));
        assert_eq!(dsn.envid.as_deref(), Some("id1"));
        let st = inv.settings;
        assert_eq!(st.debug_level, 1);
        assert_eq!(st.overrides.host.as_deref(), Some("h:25"));
        assert_eq!(
            st.overrides.auth,
            Some(Auth::Mechanism(crate::config::Mechanism::Plain))
        );
        assert_eq!(st.profile.as_deref(), Some("work"));
        assert!(st.strict_recipients);
        assert_eq!(
            resolve(&["--file", "/m", "x@y"]).unwrap().mode,
            Mode::Send(Submission {
                recipients: vec!["x@y".into()],
                source: Source::File("/m".into()),
                ..Submission::default()
            })
        );
        assert_eq!(
            resolve(&["--auth", "digest", "x@y"]).unwrap_err().exit,
            Sysexit::Usage
        );
        let o = resolve(&[
            "--protocol",
            "lmtp",
            "--no-bdat",
            "--log-format",
            "json",
            "x@y",
        ])
        .unwrap()
        .settings
        .overrides;
        assert_eq!(o.transport, Some(Transport::Lmtp));
        assert_eq!(o.bdat, Some(false));
        assert_eq!(o.log_format, Some(crate::log::Format::Json));
        let o = resolve(&["x@y"]).unwrap().settings.overrides;
        assert_eq!((o.transport, o.bdat, o.log_format), (None, None, None));
    }

    #[test]
    fn smuggled_line_breaks_are_refused_at_the_policy_check() {
        let f = resolve(&["-f", "a@x\r\nRCPT TO:<b@y>", "c@z"]).unwrap_err();
        assert_eq!(f.exit, Sysexit::Usage);
        assert!(f.message.contains("nothing was sent"), "{}", f.message);
        assert!(resolve(&["a@x\nb@y"]).is_err());
    }
}
