//! smtpsend: a sendmail-compatible SMTP submission client, and the SMTP
//! session engine it is built on.
//!
//! The engine ([`smtp`]) has the semantics of Python's `smtplib.SMTP`
//! object: connect, EHLO/HELO, STARTTLS, AUTH, MAIL/RCPT/DATA with
//! PIPELINING, `sendmail` returning the refused recipients, LMTP, and one
//! typed error per smtplib exception class. It never prints and never
//! exits.
//!
//! ```no_run
//! use smtpsend::smtp::{Smtp, SessionOptions};
//!
//! let mut s = Smtp::new(SessionOptions::default());
//! s.connect("localhost:25", None)?;
//! s.starttls()?;
//! let refused = s.sendmail("me@example.org", &["you@example.org"],
//!                          b"Subject: hi\r\n\r\nhello\r\n", &[], &[])?;
//! for (addr, reply) in &refused {
//!     eprintln!("{addr} refused: {reply}");
//! }
//! s.quit()?;
//! # Ok::<(), smtpsend::smtp::Error>(())
//! ```
#![forbid(unsafe_code)]
pub mod app;
pub mod cli;
pub mod config;
pub mod exit;
pub mod harden;
pub mod hostname;
pub mod identity;
pub mod log;
pub mod maildir;
pub mod message;
pub mod mta;
pub mod queue;
pub mod retrier;
pub mod smtp;
pub mod zone;
