//! The command line: the one clap definition from which help, the man page
//! and the shell completions are generated.
//!
//! It only describes flags; turning them into a plan is the app's job.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP; no TLS at all (only for a trusted network or loopback).
    None,
    /// Plain connection upgraded with STARTTLS; refuses to go on without it.
    Starttls,
    /// TLS from the first byte (implicit TLS, port 465).
    Tls,
}

impl TlsMode {
    /// The port each mode uses by default.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }
    }
}

/// smtpsend reads one message and hands it to an SMTP relay, or, with no
/// relay configured, delivers it into the local Maildir.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "smtpsend",
    version,
    about = "Send a message through an SMTP relay, as sendmail does",
    long_about = "smtpsend reads one RFC 5322 message from standard input (or --file) and \
                  hands it to an SMTP relay over plain SMTP, STARTTLS or implicit TLS. \
                  With no relay configured it delivers the message into the local Maildir \
                  ($MAILDIR, else ~/Maildir).",
    after_help = "Example: printf 'Subject: hi\\n\\nhello\\n' | smtpsend --host smtp.example.org alice@example.org"
)]
pub struct Args {
    /// Envelope recipients.
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Relay host name or address ("host:port" and "[v6]:port" work too).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Relay port [default: 25 with --tls none, 587 starttls, 465 tls].
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Connection security [default: starttls].
    #[arg(long, value_enum, value_name = "MODE")]
    pub tls: Option<TlsMode>,

    /// Trust the CA certificates in this PEM file, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// Envelope sender address.
    #[arg(short = 'f', short_alias = 'r', value_name = "ADDR")]
    pub from: Option<String>,

    /// Name to give in EHLO [default: this machine's fully qualified name].
    #[arg(long, value_name = "NAME")]
    pub domain: Option<String>,

    /// Seconds to wait for the relay at each step.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Read the message from FILE instead of standard input.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Verbose: show the SMTP conversation on standard error (secrets
    /// redacted).
    #[arg(short = 'v')]
    pub verbose: bool,
}
