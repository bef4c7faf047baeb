//! The command line: the one clap definition from which help, the man page
//! and the shell completions are generated, plus the few sendmail argv
//! forms clap cannot express (`-q` with an attached interval, the program
//! name deciding the mode).
//!
//! It only describes flags; turning them into a plan is the app's job.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

pub mod restrict;

use crate::config::TlsMode;

/// `--protocol`: what is spoken to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RelayProtocol {
    /// SMTP submission (the default).
    Smtp,
    /// LMTP (RFC 2033), to a local delivery agent such as Dovecot.
    Lmtp,
}

/// `-B`: the body type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum BodyType {
    #[value(name = "7BIT", alias = "7bit")]
    SevenBit,
    #[value(name = "8BITMIME", alias = "8bitmime")]
    EightBitMime,
}

/// smtpsend reads one message and hands it to an SMTP relay, or, with no
/// relay configured, delivers it into the local recipient's mailbox.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "smtpsend",
    version,
    disable_version_flag = true,
    args_override_self = true,
    about = "Send a message through an SMTP relay, as sendmail does",
    long_about = "smtpsend reads one RFC 5322 message from standard input (or --file) and \
                  hands it to an SMTP relay over plain SMTP, STARTTLS or implicit TLS, \
                  configured by a TOML profile or by flags. It accepts the flags that \
                  cron, mail(1), mutt, git send-email and PHP pass to /usr/sbin/sendmail. \
                  With no relay configured it delivers the message into the local \
                  recipient's mailbox (~user/Maildir, else /var/mail/user).",
    after_help = "Example: printf 'Subject: hi\\n\\nhello\\n' | smtpsend --host smtp.example.org alice@example.org"
)]
pub struct Args {
    /// Envelope recipients (with -t: added to those in the message).
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    // ---- sendmail flags ----
    /// Read recipients from the message's To, Cc and Bcc headers (or one
    /// Resent- block); Bcc is removed before sending.
    #[arg(short = 't', help_heading = "Sendmail options")]
    pub read_recipients: bool,

    /// A line with a single "." does not end the message (also -oi).
    #[arg(short = 'i', help_heading = "Sendmail options")]
    pub ignore_dots: bool,

    /// Envelope sender address ("" or "<>" for the null sender).
    #[arg(
        short = 'f',
        short_alias = 'r',
        value_name = "ADDR",
        allow_hyphen_values = true,
        help_heading = "Sendmail options"
    )]
    pub from: Option<String>,

    /// Full name for the From header that is added when the message has
    /// none.
    #[arg(short = 'F', value_name = "NAME", help_heading = "Sendmail options")]
    pub full_name: Option<String>,

    /// DSN: when to notify the sender: "never", or a comma list of
    /// "success", "failure", "delay".
    #[arg(short = 'N', value_name = "DSN", help_heading = "Sendmail options")]
    pub notify: Option<String>,

    /// DSN: return the "full" message or only its "hdrs" in a bounce.
    #[arg(short = 'R', value_name = "RET", help_heading = "Sendmail options")]
    pub ret: Option<String>,

    /// DSN: the envelope identifier.
    #[arg(short = 'V', value_name = "ENVID", help_heading = "Sendmail options")]
    pub envid: Option<String>,

    /// Body type: 7BIT or 8BITMIME (the body is scanned anyway).
    #[arg(
        short = 'B',
        value_enum,
        value_name = "TYPE",
        ignore_case = true,
        help_heading = "Sendmail options"
    )]
    pub body_type: Option<BodyType>,

    /// Mode: -bm deliver (default), -bp list the queue, -bs speak SMTP on
    /// standard input and output, -bi rebuild aliases (nothing to do).
    #[arg(short = 'b', value_name = "MODE", value_parser = ["m", "p", "s", "i"], help_heading = "Sendmail options")]
    pub mode: Option<String>,

    /// Sendmail -o options: -oi is -i; the others (-oem, -odi, -oQ...) are
    /// accepted and ignored.
    #[arg(short = 'o', value_name = "OPTION", action = ArgAction::Append, help_heading = "Sendmail options")]
    pub sendmail_options: Vec<String>,

    /// Deliver the queued messages that are due (-q), as sendmail -q.
    #[arg(
        short = 'q',
        long = "queue-run",
        conflicts_with_all = ["queue_list", "queue_delete", "serverinfo", "no_queue"],
        help_heading = "Sendmail options"
    )]
    pub queue_run: bool,

    /// Verbose: show the SMTP conversation on standard error (secrets
    /// redacted).
    #[arg(short = 'v', help_heading = "Sendmail options")]
    pub verbose: bool,

    /// Configuration file to use instead of the usual lookup (under the
    /// sendmail name only from the system's allow_config_dirs: see
    /// SECURITY).
    #[arg(short = 'C', value_name = "FILE", help_heading = "Sendmail options")]
    pub config: Option<PathBuf>,

    /// Tag for log lines.
    #[arg(short = 'L', value_name = "TAG", help_heading = "Sendmail options")]
    pub log_tag: Option<String>,

    /// Log file: one line per message (ignored under the sendmail name:
    /// see SECURITY).
    #[arg(
        short = 'X',
        long = "log-file",
        value_name = "FILE",
        help_heading = "Sendmail options"
    )]
    pub log_file: Option<PathBuf>,

    /// Log lines as key=value text or as JSON objects (the profile's
    /// log_format) [default: text].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<crate::log::Format>,

    /// Accepted and ignored, as Postfix does (-G gateway submission).
    #[arg(short = 'G', hide = true)]
    pub ignored_g: bool,

    /// Accepted and ignored, as Postfix does (-U initial submission).
    #[arg(short = 'U', hide = true)]
    pub ignored_u: bool,

    /// Accepted and ignored (-n: do not expand aliases).
    #[arg(short = 'n', hide = true)]
    pub ignored_n: bool,

    // ---- smtpsend options ----
    /// Profile to use from the configuration file.
    #[arg(short = 'a', long = "profile", value_name = "NAME")]
    pub profile: Option<String>,

    /// Relay host name or address; "host:port" and a bracketed IPv6
    /// address with a port work too.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Relay port [default: 25 with --tls none, 587 starttls, 465 tls].
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Connection security [default: starttls].
    #[arg(long, value_enum, value_name = "MODE")]
    pub tls: Option<TlsMode>,

    /// Speak SMTP or LMTP to the relay (the profile's transport)
    /// [default: smtp].
    #[arg(long, value_enum, value_name = "PROTO")]
    pub protocol: Option<RelayProtocol>,

    /// Send with DATA even when the relay offers CHUNKING (the profile's
    /// bdat = false).
    #[arg(long)]
    pub no_bdat: bool,

    /// Verify the relay's certificate and name [default: true].
    #[arg(long, value_name = "BOOL", action = ArgAction::Set)]
    pub tls_verify: Option<bool>,

    /// Trust the CA certificates in this PEM file, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// Authentication: auto, none, or a mechanism (PLAIN, LOGIN, CRAM-MD5,
    /// SCRAM-SHA-1, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER, EXTERNAL).
    #[arg(long, value_name = "MECH")]
    pub auth: Option<String>,

    /// User name to authenticate as.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Command whose output is the password or token (run with sh -c; one
    /// trailing newline removed). $SMTPSEND_PASSWORD is used when no other
    /// source is set. Refused under the sendmail name, as are the other
    /// relay and file options (see SECURITY).
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,

    /// Envelope sender (the same as -f).
    #[arg(long = "from", value_name = "ADDR")]
    pub from_long: Option<String>,

    /// Name to give in EHLO and for Message-ID and bare local names
    /// [default: this machine's fully qualified name].
    #[arg(long, value_name = "NAME")]
    pub domain: Option<String>,

    /// Seconds to wait for the relay at each step, the reply to the end of
    /// the message included [default: 60, and 600 for that reply]; with
    /// -bs, also for the client's next line [default: 300 with -bs].
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Take the envelope sender from the message's Sender or From header
    /// when no -f is given.
    #[arg(long)]
    pub read_envelope_from: bool,

    /// Read the message from FILE instead of standard input ("." lines are
    /// then ordinary data).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Show the whole SMTP conversation with timestamps (secrets redacted).
    #[arg(long)]
    pub debug: bool,

    /// Print the profile, the envelope and the message as it would be sent;
    /// send nothing. With -q or --queue-flush: list the messages that would
    /// be tried.
    #[arg(long, conflicts_with_all = ["serverinfo", "queue_delete"])]
    pub dry_run: bool,

    /// Connect and print what the relay offers: greeting, TLS certificate,
    /// extensions and AUTH mechanisms, before and after STARTTLS.
    #[arg(long)]
    pub serverinfo: bool,

    /// List the queue (the same as -bp and mailq).
    #[arg(long, conflicts_with_all = ["queue_delete", "serverinfo"])]
    pub queue_list: bool,

    /// Retry every queued message now, ignoring the backoff.
    #[arg(long, conflicts_with_all = ["queue_list", "queue_delete", "serverinfo", "no_queue"])]
    pub queue_flush: bool,

    /// Remove a message from the queue.
    #[arg(long, value_name = "ID", conflicts_with = "serverinfo")]
    pub queue_delete: Option<String>,

    /// Internal: run as the detached queue retrier a submission leaves
    /// behind (see src/retrier.rs); the rest of argv is the submission's.
    #[arg(long, hide = true)]
    pub queue_retrier: bool,

    /// Do not keep the message on a temporary failure: exit 75 and leave it
    /// to the caller (the profile's queue = false).
    #[arg(long)]
    pub no_queue: bool,

    /// Exit 67 when the relay refuses some recipients (by default the
    /// message goes to the others and the refused are reported).
    #[arg(long)]
    pub strict_recipients: bool,

    /// Print the version.
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
}

impl Args {
    /// The envelope sender given on the command line, the last of -f/-r
    /// and --from winning (PHP passes -f twice).
    pub fn sender(&self) -> Option<&str> {
        self.from_long.as_deref().or(self.from.as_deref())
    }

    /// Whether a "." line ends the message: not with -i/-oi, not from a
    /// file, not with -t... (sendmail keeps the dot rule with -t; so do we).
    pub fn dot_ends_message(&self) -> bool {
        !(self.ignore_dots || self.file.is_some() || self.sendmail_options.iter().any(|o| o == "i"))
    }
}

/// What the program was invoked as (a symlink farm: sendmail, mailq,
/// newaliases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    Sendmail,
    Mailq,
    Newaliases,
}

impl Personality {
    pub fn from_argv0(argv0: &std::ffi::OsStr) -> Personality {
        let name = std::path::Path::new(argv0)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.as_str() {
            "mailq" => Personality::Mailq,
            "newaliases" => Personality::Newaliases,
            _ => Personality::Sendmail,
        }
    }
}

/// Rewrites the argv forms clap cannot express into ones it can:
/// sendmail's `-qINTERVAL` (`-q1h`; a daemon interval, meaningless
/// without a daemon: one run) becomes `-q`, and everything after `--`
/// is left alone.
pub fn normalize(argv: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut rest = false;
    for (i, arg) in argv.into_iter().enumerate() {
        if i == 0 || rest {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            rest = true;
            out.push(arg);
            continue;
        }
        match arg.to_str() {
            Some(s) if s.starts_with("-q") && s.len() > 2 && !s.starts_with("--") => {
                out.push("-q".into());
            }
            _ => out.push(arg),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        let argv = std::iter::once("smtpsend")
            .chain(args.iter().copied())
            .map(OsString::from);
        Args::try_parse_from(normalize(argv)).unwrap()
    }

    fn fails(args: &[&str]) -> clap::Error {
        let argv = std::iter::once("smtpsend")
            .chain(args.iter().copied())
            .map(OsString::from);
        Args::try_parse_from(normalize(argv)).unwrap_err()
    }

    #[test]
    fn callers_argv() {
        // cron
        let a = parse(&["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]);
        assert_eq!(a.full_name.as_deref(), Some("CronDaemon"));
        assert!(a.ignore_dots && a.body_type == Some(BodyType::EightBitMime));
        assert_eq!(a.sendmail_options, ["em"]);
        assert_eq!(a.recipients, ["root"]);
        // bsd-mailx, mutt
        let a = parse(&["-i", "--", "a@example.org"]);
        assert_eq!(a.recipients, ["a@example.org"]);
        let a = parse(&["-oem", "-oi", "--", "a@example.org", "-notaflag@x"]);
        assert!(!a.dot_ends_message());
        assert_eq!(a.recipients, ["a@example.org", "-notaflag@x"]);
        // git send-email, PHP
        let a = parse(&["-i", "a@x", "b@x"]);
        assert_eq!(a.recipients.len(), 2);
        let a = parse(&["-ti"]);
        assert!(a.read_recipients && a.ignore_dots);
        let a = parse(&["-t", "-i", "-f", "php@example.org", "-fother@example.org"]);
        assert_eq!(a.sender(), Some("other@example.org"));
        let a = parse(&["-F", "Cron Daemon", "-r", "x@y", "root"]);
        assert_eq!(a.full_name.as_deref(), Some("Cron Daemon"));
        assert_eq!(a.sender(), Some("x@y"));
        let a = parse(&["-f", "", "root"]);
        assert_eq!(a.sender(), Some(""));
    }

    #[test]
    fn modes_and_queue() {
        assert_eq!(parse(&["-bp"]).mode.as_deref(), Some("p"));
        assert_eq!(parse(&["-bs"]).mode.as_deref(), Some("s"));
        assert!(parse(&["-q"]).queue_run);
        assert!(parse(&["-q1h"]).queue_run);
        assert!(parse(&["--queue-run"]).queue_run);
        let a = parse(&["-q", "--", "-q5m"]);
        assert_eq!(a.recipients, ["-q5m"]);
    }

    #[test]
    fn dsn_and_ignored() {
        let a = parse(&[
            "-N",
            "success,failure",
            "-R",
            "hdrs",
            "-V",
            "id1",
            "-G",
            "-U",
            "-odi",
            "-oQ/var/spool",
            "x@y",
        ]);
        assert_eq!(a.notify.as_deref(), Some("success,failure"));
        assert_eq!(a.ret.as_deref(), Some("hdrs"));
        assert_eq!(a.envid.as_deref(), Some("id1"));
    }

    #[test]
    fn unknown_flags_are_errors_naming_the_flag() {
        let e = fails(&["-Z", "x@y"]);
        assert!(e.to_string().contains("-Z"), "{e}");
        let e = fails(&["--no-such", "x@y"]);
        assert!(e.to_string().contains("--no-such"), "{e}");
        assert!(fails(&["-f"]).to_string().contains("-f"));
    }

    #[test]
    fn personalities() {
        assert_eq!(
            Personality::from_argv0("/usr/bin/mailq".as_ref()),
            Personality::Mailq
        );
        assert_eq!(
            Personality::from_argv0("newaliases".as_ref()),
            Personality::Newaliases
        );
        assert_eq!(
            Personality::from_argv0("/usr/sbin/sendmail".as_ref()),
            Personality::Sendmail
        );
    }
}
