//! The binary's plan and its execution: argv → plan (profile, envelope,
//! message) → spooled message → delivery → outcome.
//!
//! Like the engine, this never prints to the terminal by itself and never
//! exits: it returns a [`Report`] of what happened (notices for standard
//! error, output for standard output) or a [`Failure`] that carries its
//! sysexits code and one line for the user. `main.rs` does the printing.

pub mod bs;
pub mod input;
pub mod plan;
pub mod queued;
pub mod relay;

use std::io::{BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cli::{Args, Personality};
use crate::config::{Config, ConfigError};
use crate::exit::{self, Sysexit};
use crate::message::{self, MessageError};
use crate::smtp::Error;

pub use input::Spooled;
pub use plan::Plan;

/// A failure the user must hear about: one line and an exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Sysexit,
    pub message: String,
    /// Whether the relay refused the message itself, for good (a 5xx to
    /// MAIL, RCPT or the data): such a message goes to dead.letter. Every
    /// other failure of a queued message keeps it queued.
    pub refused_by_relay: bool,
}

impl Failure {
    pub fn new(exit: Sysexit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
            refused_by_relay: false,
        }
    }

    /// From an engine error: its text, the server's reply, and a hint.
    pub fn smtp(context: &str, e: &Error) -> Self {
        let mut message = format!("{context}: {e}");
        if let Some(h) = exit::hint(e) {
            message.push_str(&format!(" ({h})"));
        }
        let refused_by_relay = !e.is_transient()
            && matches!(
                e,
                Error::SenderRefused { .. }
                    | Error::RecipientsRefused(_)
                    | Error::Data(_)
                    | Error::MessageTooLarge { .. }
                    | Error::InvalidInput(_)
            )
            || matches!(e, Error::NotSupported(m) if m.contains("SMTPUTF8"));
        Failure {
            refused_by_relay,
            ..Failure::new(exit::for_smtp(e), message)
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::new(e.kind(), e.to_string())
    }
}

impl From<MessageError> for Failure {
    fn from(e: MessageError) -> Self {
        let exit = match e.kind() {
            message::Kind::Data => Sysexit::DataErr,
            message::Kind::Io => Sysexit::IoErr,
            message::Kind::Argument => Sysexit::Usage,
        };
        Failure::new(exit, format!("{e}: nothing was sent"))
    }
}

/// What happened.
#[derive(Debug, Default)]
pub struct Report {
    /// Lines for standard error even when all went well (partial
    /// refusals, where a local delivery went).
    pub notices: Vec<String>,
    /// Output for standard output (--dry-run, --serverinfo, mailq).
    pub output: String,
    /// For the log line: what became of the message.
    pub status: Option<crate::log::Status>,
    /// The relay that took it.
    pub relay: Option<String>,
    /// The relay's final reply.
    pub reply: Option<String>,
}

/// `--strict-recipients`: a partial refusal becomes EX_NOUSER.
pub(crate) fn strict_refusal(
    args: &Args,
    refused: usize,
    total: usize,
    notices: &[String],
) -> Option<Failure> {
    (refused > 0 && args.strict_recipients).then(|| {
        Failure::new(
            Sysexit::NoUser,
            format!(
                "{refused} of {total} recipients refused (--strict-recipients): {}",
                notices.join("; ")
            ),
        )
    })
}

/// Where the transcript of a session goes (standard error in the binary).
pub type DebugSink = Box<dyn Write + Send>;

/// A transcript writer shared by several sessions (`-bs` relays each
/// message in its own session).
#[derive(Clone)]
struct SharedSink(Arc<Mutex<DebugSink>>);

impl SharedSink {
    fn new(sink: DebugSink) -> Self {
        SharedSink(Arc::new(Mutex::new(sink)))
    }
}

impl Write for SharedSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_or(Ok(b.len()), |mut w| w.write(b))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().map_or(Ok(()), |mut w| w.flush())
    }
}

/// How long `-bs` waits for the client's next line when no `--timeout`
/// is given (Postfix's smtpd_timeout).
pub const BS_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs one invocation. `stdin` carries the message (or, with `-bs`, the
/// SMTP conversation whose replies go to `stdout`).
pub fn run(
    personality: Personality,
    args: &Args,
    stdin: Box<dyn Read + Send>,
    stdout: &mut dyn Write,
    debug: DebugSink,
) -> Result<Report, Failure> {
    if personality == Personality::Newaliases || args.mode.as_deref() == Some("i") {
        return Ok(Report {
            notices: vec![
                "no aliases database to rebuild: aliases live in the [aliases] table of the configuration file"
                    .into(),
            ],
            ..Report::default()
        });
    }
    if args.queue_run || args.queue_flush {
        // Issue 12: root's runner re-executes us as a user: become them
        // before reading any configuration.
        queued::become_queue_owner()?;
    }
    let config = Config::discover(args.config.as_deref())?;
    if personality == Personality::Mailq || args.mode.as_deref() == Some("p") || args.queue_list {
        return queued::list_queue(config.as_ref());
    }
    if let Some(id) = &args.queue_delete {
        return queued::delete(config.as_ref(), id);
    }
    if args.queue_run || args.queue_flush {
        return queued::run_queue(args, config.as_ref(), debug);
    }
    if args.serverinfo {
        let profile = plan::choose_profile(args, config.as_ref(), None)?;
        return relay::serverinfo(&profile, args, debug);
    }
    if args.mode.as_deref() == Some("s") {
        let idle = args
            .timeout
            .map_or(BS_IDLE_TIMEOUT, std::time::Duration::from_secs);
        let timed = input::TimedReader::spawn(stdin, idle);
        return serve_smtp(args, config.as_ref(), Box::new(timed), stdout, debug);
    }
    let mut stdin = stdin;
    let mut input: Box<dyn Read> = match &args.file {
        Some(path) => Box::new(std::fs::File::open(path).map_err(|e| {
            Failure::new(
                Sysexit::NoInput,
                format!("cannot open {}: {e}", path.display()),
            )
        })?),
        None if args.dot_ends_message() => Box::new(input::DotStop::new(&mut stdin)),
        None => Box::new(&mut stdin),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, &mut input);
    send_one(args, config.as_ref(), &mut reader, debug)
}

/// Plans, spools, delivers and logs one message.
fn send_one(
    args: &Args,
    config: Option<&Config>,
    reader: &mut dyn std::io::BufRead,
    debug: DebugSink,
) -> Result<Report, Failure> {
    let started = Instant::now();
    let mut plan = Plan::build(args, config, reader)?;
    if args.no_queue {
        plan.profile.queue = false;
    }
    let (size, mut result) = if args.dry_run {
        let mut spooled = plan.spool(reader)?;
        return plan.dry_run(&mut spooled);
    } else if plan.profile.queue {
        // Spool first: the message is on disk before a byte goes out.
        let sink = SharedSink::new(debug);
        match queued::send_queued(&plan, args, config, reader, Box::new(sink.clone())) {
            Ok(Some(first)) => first,
            Ok(None) => {
                // No queue directory can be written: deliver directly, and
                // let a failure's exit code tell the caller to keep it.
                let mut spooled = plan.spool(reader)?;
                let size = spooled.info.size;
                let mut r = plan.deliver(args, &mut spooled, Box::new(sink));
                if let Ok(rep) = &mut r {
                    rep.notices
                        .push("no writable queue directory: delivered directly".into());
                }
                (size, r)
            }
            Err(f) => (0, Err(f)),
        }
    } else {
        let mut spooled = plan.spool(reader)?;
        let size = spooled.info.size;
        (size, plan.deliver(args, &mut spooled, debug))
    };
    if let Some(notice) = log_outcome(args, &plan, size, &result, started) {
        match &mut result {
            Ok(r) => r.notices.push(notice),
            Err(f) => f.message.push_str(&format!(" ({notice})")),
        }
    }
    result
}

/// Writes the one log line for a message, where the profile or `-X` says;
/// returns a notice if logging had to fall back. Logging never fails a
/// send.
fn log_outcome(
    args: &Args,
    plan: &Plan,
    size: u64,
    result: &Result<Report, Failure>,
    started: Instant,
) -> Option<String> {
    use crate::config::LogTarget;
    use crate::log::{Entry, Status, Target};
    let target = match (&args.log_file, &plan.profile.log) {
        (Some(f), _) => Target::File(f.clone()),
        (None, Some(LogTarget::File(f))) => Target::File(f.clone()),
        (None, Some(LogTarget::Syslog)) => Target::Syslog,
        (None, None) => return None,
    };
    let (status, relay, reply) = match result {
        Ok(r) => (
            r.status.unwrap_or(Status::Sent),
            r.relay.as_deref(),
            r.reply.as_deref(),
        ),
        Err(f) => (
            if f.exit == Sysexit::TempFail {
                Status::Deferred
            } else {
                Status::Failed
            },
            None,
            Some(f.message.as_str()),
        ),
    };
    let entry = Entry {
        tag: args.log_tag.as_deref().unwrap_or(crate::log::DEFAULT_TAG),
        profile: &plan.profile.name,
        relay,
        sender: &plan.envelope.from,
        recipients: &plan.envelope.to,
        size,
        status,
        reply,
        duration: started.elapsed(),
    };
    crate::log::write_or_fallback(&target, &entry)
}

/// `-bs`: SMTP on standard input and output; each accepted message is
/// planned and delivered like one given on the command line, with the
/// conversation's envelope.
fn serve_smtp(
    args: &Args,
    config: Option<&Config>,
    stdin: Box<dyn Read>,
    stdout: &mut dyn Write,
    debug: DebugSink,
) -> Result<Report, Failure> {
    let hostname = config
        .and_then(|c| c.select(args.profile.as_deref(), None).ok())
        .and_then(|p| p.domain)
        .or_else(crate::hostname::fqdn)
        .unwrap_or_else(|| "localhost".into());
    let sink = SharedSink::new(debug);
    let mut notices = Vec::new();
    let mut deliver = |a: bs::Accepted<'_>| -> bs::Verdict {
        let mut one = args.clone();
        one.from = Some(if a.sender.is_empty() {
            "<>".into()
        } else {
            a.sender.clone()
        });
        one.from_long = None;
        one.recipients = a.recipients.clone();
        one.read_recipients = false;
        one.ignore_dots = true;
        one.mode = None;
        let mut body = BufReader::new(a.body);
        match send_one(&one, config, &mut body, Box::new(sink.clone())) {
            Ok(r) => {
                let text = r.notices.join("; ");
                notices.extend(r.notices);
                bs::Verdict::Accepted(format!(
                    "2.0.0 {}",
                    if text.is_empty() { "sent" } else { &text }
                ))
            }
            Err(f) if f.exit == Sysexit::TempFail => bs::Verdict::Temporary(f.message),
            Err(f) => bs::Verdict::Permanent(f.message),
        }
    };
    let mut input = BufReader::new(stdin);
    if let Err(e) = bs::serve(&mut input, stdout, &hostname, &mut deliver) {
        if e.kind() == std::io::ErrorKind::TimedOut {
            let _ = write!(stdout, "421 4.4.2 {hostname} Error: timeout exceeded\r\n");
            let _ = stdout.flush();
            return Err(Failure::new(
                Sysexit::TempFail,
                format!("-bs: {e}: the client was silent, so the session was closed"),
            ));
        }
        return Err(Failure::new(Sysexit::IoErr, format!("-bs: {e}")));
    }
    Ok(Report {
        notices,
        ..Report::default()
    })
}
