//! The binary's work, in one direction: argv → [`Invocation`] (a mode and
//! typed settings, resolved once) → for a message, a [`Plan`] (profile,
//! envelope, header block) → spool → [`deliver`](deliver::deliver) →
//! outcome → report or failure.
//!
//! - [`invocation`]: the only reader of the clap `Args`.
//! - [`plan`]: the profile, envelope and header block of one message.
//! - [`deliver`]: the one delivery, for every path: direct, first attempt,
//!   `-q`, `-bs`; [`local`] holds the local/remote rule and each recipient's mailbox.
//! - [`queued`]: the queue as storage around it.
//! - [`relay`]: reaching the relay (failover, TLS, AUTH), `--serverinfo`.
//! - [`input`]: reading the message as sendmail does.
//!
//! Like the engine, this never prints to the terminal by itself and never
//! exits: it returns a [`Report`] of what happened (notices for standard
//! error, output for standard output) or a [`Failure`] that carries its
//! sysexits code and one line for the user. `main.rs` does the printing.

mod background;
pub mod deliver;
pub mod input;
pub mod invocation;
pub mod local;
pub mod notice;
pub mod panic;
pub mod plan;
pub mod queued;
pub mod relay;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::Config;
use crate::exit::{self, Sysexit};
use crate::smtp::Error;
use crate::smtp::server;

pub use deliver::{Outcome, Sessions};
pub use input::TempMessage;
pub use invocation::{Invocation, Mode, Settings, Source, Submission};
pub use plan::Plan;

/// A failure the user must hear about: one line and an exit code.
#[derive(Debug, Clone)]
pub struct Failure {
    pub exit: Sysexit,
    pub message: String,
    /// Whether trying again cannot help: the relay refused the message
    /// itself for good (a 5xx to MAIL, RCPT or the data, too large, a
    /// feature it needs missing). Such a message goes to dead.letter;
    /// every other failure of a queued message keeps it queued.
    pub permanent: bool,
    /// The exit status when the message is not kept in a queue
    /// (`--no-queue`, no writable spool): a certificate that does not
    /// verify is then permanent, though a queue defers it
    /// ([`exit::for_smtp_no_queue`]).
    pub unqueued_exit: Sysexit,
}

impl Failure {
    pub fn new(exit: Sysexit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
            permanent: false,
            unqueued_exit: exit,
        }
    }

    /// From an engine error: its text, the server's reply, and a hint.
    pub fn smtp(context: &str, e: &Error) -> Self {
        let mut message = format!("{context}: {e}");
        if let Some(h) = exit::hint(e) {
            message.push_str(&format!(" ({h})"));
        }
        Failure {
            unqueued_exit: exit::for_smtp_no_queue(e),
            ..Failure::new(Sysexit::from(e), message)
        }
    }

    /// This failure for a message that no queue keeps.
    fn unqueued(self) -> Self {
        Failure {
            exit: self.unqueued_exit,
            ..self
        }
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Failure::new(Sysexit::from(&e), e.to_string())
    }
}

impl From<crate::queue::QueueError> for Failure {
    fn from(e: crate::queue::QueueError) -> Self {
        Failure::new(Sysexit::from(&e), e.to_string())
    }
}

impl From<crate::message::MessageError> for Failure {
    fn from(e: crate::message::MessageError) -> Self {
        Failure::new(Sysexit::from(&e), format!("{e}: nothing was sent"))
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

/// Where the transcript of a session goes (standard error in the binary).
pub type DebugSink = Box<dyn Write + Send>;

/// A transcript writer shared by several sessions.
#[derive(Clone)]
pub(crate) struct SharedSink(Arc<Mutex<DebugSink>>);

impl SharedSink {
    pub(crate) fn new(sink: DebugSink) -> Self {
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

/// Runs one invocation. `stdin` carries the message (or, with `-bs`, the
/// SMTP conversation whose replies go to `stdout`).
pub fn run(
    inv: &Invocation,
    stdin: Box<dyn Read + Send>,
    stdout: &mut dyn Write,
    debug: DebugSink,
) -> Result<Report, Failure> {
    let settings = &inv.settings;
    if matches!(inv.mode, Mode::QueueRun { .. }) {
        // Issue 12: root's runner re-executes us as a user: become them
        // before reading any configuration.
        queued::become_queue_owner()?;
    }
    let config = match inv.mode {
        Mode::Newaliases => None,
        _ => Config::discover(settings.config.as_deref())?,
    };
    let config = config.as_ref();
    let mut sessions = Sessions::new(settings.debug_level, debug);
    match &inv.mode {
        Mode::Newaliases => Ok(Report {
            notices: vec![
                "no aliases database to rebuild: aliases live in the [aliases] table of the configuration file"
                    .into(),
            ],
            ..Report::default()
        }),
        Mode::QueueList => queued::list_queue(config),
        Mode::QueueDelete(id) => queued::delete(config, id),
        Mode::QueueRun { flush } => queued::run_queue(
            config,
            &settings.overrides,
            *flush,
            settings.dry_run,
            settings.debug_level > 0,
            &mut sessions,
        ),
        Mode::QueueRetrier => background::run_retrier(settings, config, &mut sessions),
        Mode::ServerInfo => {
            let profile = plan::choose_profile(settings, config, None, None)?;
            relay::serverinfo(&profile, settings.debug_level, Box::new(sessions.sink()))
        }
        Mode::ServeStdin { idle, template } => {
            let timed = input::TimedReader::spawn(stdin, *idle);
            serve_smtp(
                settings,
                template,
                config,
                Box::new(timed),
                stdout,
                &mut sessions,
            )
        }
        Mode::Send(sub) => {
            let mut stdin = stdin;
            let mut input: Box<dyn Read> = match &sub.source {
                Source::File(path) => Box::new(std::fs::File::open(path).map_err(|e| {
                    Failure::new(
                        Sysexit::NoInput,
                        format!("cannot open {}: {e}", path.display()),
                    )
                })?),
                Source::Stdin { dot_ends: true } => Box::new(input::DotStop::new(&mut stdin)),
                Source::Stdin { dot_ends: false } | Source::Stream => Box::new(&mut stdin),
            };
            let mut reader = BufReader::with_capacity(64 * 1024, &mut input);
            send(settings, sub, config, &mut reader, &mut sessions)
        }
    }
}

/// Plans, spools, delivers and logs one message: the path every message
/// takes, from the command line or from `-bs`.
pub fn send(
    settings: &Settings,
    sub: &Submission,
    config: Option<&Config>,
    reader: &mut dyn BufRead,
    sessions: &mut Sessions,
) -> Result<Report, Failure> {
    let started = Instant::now();
    let plan = Plan::build(settings, sub, config, reader)?;
    if settings.dry_run {
        let mut msg = plan.buffer(reader)?;
        return plan.dry_run(&mut msg);
    }
    let strict = settings.strict_recipients;
    panic::fault_point("before-spool", "");
    let spooled = if plan.profile.queue {
        // Spool first: the message is on disk before a byte goes out.
        queued::spool(&plan, reader)
    } else {
        Ok(None)
    };
    let (size, mut result) = match spooled {
        Ok(Some((q, spooled))) => {
            let size = spooled.info.size;
            panic::fault_point("after-spool", "");
            let r = queued::first_attempt(
                &q,
                spooled,
                &plan,
                config,
                &settings.overrides,
                strict,
                sessions,
            );
            (size, r)
        }
        Ok(None) => {
            // Not queued (--no-queue, or no queue directory can be
            // written): deliver directly, and let a failure's exit code
            // tell the caller to keep the message.
            let mut msg = plan.buffer(reader)?;
            let size = msg.info.size;
            let outcome = deliver::deliver(&plan.profile, &plan.envelope, &mut msg, sessions, true);
            let mut r = outcome.into_result(strict).map_err(Failure::unqueued);
            if let (Ok(rep), true) = (&mut r, plan.profile.queue) {
                rep.notices
                    .push("no writable queue directory: delivered directly".into());
            }
            (size, r)
        }
        Err(f) => (0, Err(f)),
    };
    if let Ok(r) = &result
        && r.status == Some(crate::log::Status::Queued)
    {
        // Left queued: make sure something retries it soon (issue 14).
        background::after_queueing(&plan.profile);
    }
    if let Some(notice) = log_outcome(settings, &plan, size, &result, started) {
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
    settings: &Settings,
    plan: &Plan,
    size: u64,
    result: &Result<Report, Failure>,
    started: Instant,
) -> Option<String> {
    use crate::config::LogTarget;
    use crate::log::{Entry, Status, Target};
    let target = match (&settings.log_file, &plan.profile.log) {
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
        format: plan.profile.log_format,
        tag: settings
            .log_tag
            .as_deref()
            .unwrap_or(crate::log::DEFAULT_TAG),
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

/// `-bs`: SMTP on standard input and output ([`server`]); each accepted
/// message is a [`Submission`] made from `template` with the
/// conversation's envelope, sent by [`send`] like one from the command
/// line.
fn serve_smtp(
    settings: &Settings,
    template: &Submission,
    config: Option<&Config>,
    stdin: Box<dyn Read>,
    stdout: &mut dyn Write,
    sessions: &mut Sessions,
) -> Result<Report, Failure> {
    let hostname = config
        .and_then(|c| c.select(settings.profile.as_deref(), None).ok())
        .and_then(|p| p.domain)
        .or_else(|| settings.overrides.domain.clone())
        .or_else(crate::mta::system_domain)
        .or_else(crate::hostname::fqdn)
        .unwrap_or_else(|| "localhost".into());
    let mut notices = Vec::new();
    let mut deliver = |a: server::Accepted<'_>| -> server::Verdict {
        let sub = Submission {
            sender: Some(if a.sender.is_empty() {
                "<>".into()
            } else {
                a.sender.clone()
            }),
            recipients: a.recipients.clone(),
            read_recipients: false,
            source: Source::Stream,
            ..template.clone()
        };
        let mut body = BufReader::new(a.body);
        match send(settings, &sub, config, &mut body, sessions) {
            Ok(r) => {
                let text = r.notices.join("; ");
                notices.extend(r.notices);
                server::Verdict::Accepted(format!(
                    "2.0.0 {}",
                    if text.is_empty() { "sent" } else { &text }
                ))
            }
            Err(f) if f.exit == Sysexit::TempFail => server::Verdict::Temporary(f.message),
            Err(f) => server::Verdict::Permanent(f.message),
        }
    };
    let mut input = BufReader::new(stdin);
    if let Err(e) = server::serve(&mut input, stdout, &hostname, &mut deliver) {
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
