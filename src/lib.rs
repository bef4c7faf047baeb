//! smtpsend: a sendmail-compatible SMTP submission client.
#![forbid(unsafe_code)]
pub mod message;
pub mod smtp;
