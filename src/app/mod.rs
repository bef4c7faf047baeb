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
}

impl Failure {
    pub fn new(exit: Sysexit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }

    /// From an engine error: its text, the server's reply, and a hint.
    pub fn smtp(context: &str, e: &Error) -> Self {
        let mut message = format!("{context}: {e}");
        if let Some(h) = exit::hint(e) {
            message.push_str(&format!(" ({h})"));
        }
        Failure::new(exit::for_smtp(e), message)
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

/// Where the transcript of a session goes (standard error in the binary).
pub type DebugSink = Box<dyn Write + Send>;

/// A transcript writer shared by several sessions (`-bs` relays each
/// message in its own session).
#[derive(Clone)]
struct SharedSink(Arc<Mutex<DebugSink>>);

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
    personality: Personality,
    args: &Args,
    stdin: &mut dyn Read,
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
    if personality == Personality::Mailq
        || args.mode.as_deref() == Some("p")
        || args.queue_list
        || args.queue_run
        || args.queue_flush
        || args.queue_delete.is_some()
    {
        return Err(Failure::new(
            Sysexit::Unavailable,
            "the queue is not available in this build yet: messages are delivered directly",
        ));
    }
    let config = Config::discover(args.config.as_deref())?;
    if args.serverinfo {
        let profile = plan::choose_profile(args, config.as_ref(), None)?;
        return relay::serverinfo(&profile, args, debug);
    }
    if args.mode.as_deref() == Some("s") {
        return serve_smtp(args, config.as_ref(), stdin, stdout, debug);
    }
    let mut input: Box<dyn Read> = match &args.file {
        Some(path) => Box::new(std::fs::File::open(path).map_err(|e| {
            Failure::new(
                Sysexit::NoInput,
                format!("cannot open {}: {e}", path.display()),
            )
        })?),
        None if args.dot_ends_message() => Box::new(input::DotStop::new(stdin)),
        None => Box::new(stdin),
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
    let plan = Plan::build(args, config, reader)?;
    let mut spooled = plan.spool(reader)?;
    if args.dry_run {
        return plan.dry_run(&mut spooled);
    }
    let result = plan.deliver(args, &mut spooled, debug);
    let mut result = result;
    if let Some(notice) = log_outcome(args, &plan, spooled.info.size, &result, started) {
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
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    debug: DebugSink,
) -> Result<Report, Failure> {
    let hostname = config
        .and_then(|c| c.select(args.profile.as_deref(), None).ok())
        .and_then(|p| p.domain)
        .or_else(crate::hostname::fqdn)
        .unwrap_or_else(|| "localhost".into());
    let sink = SharedSink(Arc::new(Mutex::new(debug)));
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
    bs::serve(&mut input, stdout, &hostname, &mut deliver)
        .map_err(|e| Failure::new(Sysexit::IoErr, format!("-bs: {e}")))?;
    Ok(Report {
        notices,
        ..Report::default()
    })
}
