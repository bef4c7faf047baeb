//! The binary's plan and its execution: argv → plan (envelope, transport,
//! message source) → spooled message → delivery → outcome.
//!
//! Like the engine, this never prints and never exits: it returns a
//! [`Report`] of what happened (with notices for standard error) or a
//! [`Failure`] that carries its sysexits code and one line for the user.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Args, TlsMode};
use crate::exit::{self, Sysexit};
use crate::smtp::data::BodyScanner;
use crate::smtp::{BodyInfo, Envelope, Error, SendOptions, SessionOptions, Smtp, TlsOptions};
use crate::{hostname, identity, maildir};

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

/// What happened, for standard error.
#[derive(Debug, Default)]
pub struct Report {
    /// Lines to show even when all went well (partial refusals, where a
    /// local delivery went).
    pub notices: Vec<String>,
}

/// The message, spooled to an unnamed temporary file so it can be sized,
/// sent in constant memory, and sent again.
pub struct Spooled {
    file: File,
    pub info: BodyInfo,
}

impl Spooled {
    /// Copies `input` to a temporary file while scanning it.
    pub fn from_reader(input: &mut dyn Read) -> io::Result<Spooled> {
        let mut file = tempfile::tempfile()?;
        let mut scanner = BodyScanner::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            scanner.update(&buf[..n]);
            file.write_all(&buf[..n])?;
            total += n as u64;
        }
        let mut info = scanner.finish();
        if total == 0 {
            info.size = 0;
        }
        Ok(Spooled { file, info })
    }

    /// A reader positioned at the start.
    pub fn reader(&mut self) -> io::Result<&mut File> {
        self.file.seek(SeekFrom::Start(0))?;
        Ok(&mut self.file)
    }
}

/// Runs one invocation.
pub fn run(
    args: &Args,
    stdin: &mut dyn Read,
    debug_out: Box<dyn Write + Send>,
) -> Result<Report, Failure> {
    if args.recipients.is_empty() {
        return Err(Failure::new(
            Sysexit::Usage,
            "no recipients given: name at least one recipient address",
        ));
    }
    let mut spooled = match &args.file {
        Some(path) => {
            let mut f = File::open(path).map_err(|e| {
                Failure::new(
                    Sysexit::NoInput,
                    format!("cannot open {}: {e}", path.display()),
                )
            })?;
            Spooled::from_reader(&mut f)
        }
        None => Spooled::from_reader(stdin),
    }
    .map_err(|e| Failure::new(Sysexit::IoErr, format!("cannot read the message: {e}")))?;
    if spooled.info.size == 0 {
        return Err(Failure::new(
            Sysexit::NoInput,
            "the message is empty: nothing was sent",
        ));
    }
    match &args.host {
        Some(host) => relay(args, host, &mut spooled, debug_out),
        None => deliver_locally(args, &mut spooled),
    }
}

fn sender(args: &Args) -> String {
    match &args.from {
        Some(f) => f.clone(),
        None => {
            let domain = args
                .domain
                .clone()
                .or_else(hostname::fqdn)
                .unwrap_or_else(|| "localhost".into());
            format!("{}@{domain}", identity::login_name())
        }
    }
}

fn relay(
    args: &Args,
    host: &str,
    spooled: &mut Spooled,
    debug_out: Box<dyn Write + Send>,
) -> Result<Report, Failure> {
    let mode = args.tls.unwrap_or(TlsMode::Starttls);
    let mut tls = TlsOptions::new();
    tls.ca_file = args.tls_ca_file.clone();
    let timeout = Duration::from_secs(args.timeout.unwrap_or(60));
    let opts = SessionOptions {
        local_hostname: args.domain.clone(),
        timeout,
        connect_timeout: timeout,
        implicit_tls: mode == TlsMode::Tls,
        tls,
        ..SessionOptions::default()
    };
    let mut smtp = Smtp::new(opts);
    if args.verbose {
        smtp.set_debuglevel(1, debug_out);
    }
    let port = args.port.unwrap_or(mode.default_port());
    let ctx = format!("relay {host}");
    smtp.connect(host, Some(port))
        .map_err(|e| Failure::smtp(&ctx, &e))?;
    if mode == TlsMode::Starttls {
        smtp.starttls().map_err(|e| Failure::smtp(&ctx, &e))?;
    }
    let env = Envelope::new(sender(args), args.recipients.iter().cloned());
    let info = spooled.info;
    let reader = spooled.reader().map_err(|e| {
        Failure::new(
            Sysexit::IoErr,
            format!("cannot reread the spooled message: {e}"),
        )
    })?;
    let refused = smtp
        .send(
            &env,
            reader,
            SendOptions {
                info: Some(info),
                quit_after: true,
            },
        )
        .map_err(|e| Failure::smtp(&ctx, &e))?;
    if smtp.is_connected() {
        let _ = smtp.quit();
    }
    let mut report = Report::default();
    for (addr, reply) in refused {
        report
            .notices
            .push(format!("recipient <{addr}> refused by {host}: {reply}"));
    }
    Ok(report)
}

fn deliver_locally(args: &Args, spooled: &mut Spooled) -> Result<Report, Failure> {
    let root: PathBuf = maildir::default_path().ok_or_else(|| {
        Failure::new(
            Sysexit::Config,
            "no relay configured and no home directory for ~/Maildir: set MAILDIR or give --host",
        )
    })?;
    let prefix = format!(
        "Return-Path: <{}>\nDelivered-To: {}\n",
        sender(args),
        args.recipients.join(", ")
    );
    let reader = spooled.reader().map_err(|e| {
        Failure::new(
            Sysexit::IoErr,
            format!("cannot reread the spooled message: {e}"),
        )
    })?;
    let path = maildir::deliver(&root, prefix.as_bytes(), reader).map_err(|e| {
        Failure::new(
            Sysexit::CantCreate,
            format!(
                "cannot deliver into {}: {e} (set MAILDIR to a writable Maildir, or give --host)",
                root.display()
            ),
        )
    })?;
    Ok(Report {
        notices: vec![format!(
            "no relay configured: delivered locally to {} (give --host or a configuration file to send through a relay)",
            path.display()
        )],
    })
}
