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
}

/// Where the transcript of a session goes (standard error in the binary).
pub type DebugSink = Box<dyn Write + Send>;

/// Runs one invocation.
pub fn run(
    personality: Personality,
    args: &Args,
    stdin: &mut dyn Read,
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
    if args.mode.as_deref() == Some("s") {
        return Err(Failure::new(
            Sysexit::Usage,
            "-bs (SMTP on standard input) is not supported yet: pipe the message to smtpsend instead",
        ));
    }
    let config = Config::discover(args.config.as_deref())?;
    if args.serverinfo {
        let profile = plan::choose_profile(args, config.as_ref(), None)?;
        return relay::serverinfo(&profile, args, debug);
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
    let plan = Plan::build(args, config.as_ref(), &mut reader)?;
    let mut spooled = plan.spool(&mut reader)?;
    if args.dry_run {
        return plan.dry_run(&mut spooled);
    }
    plan.deliver(args, &mut spooled, debug)
}
