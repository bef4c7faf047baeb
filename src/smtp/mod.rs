//! The session engine: an SMTP/LMTP client with the semantics of Python's
//! `smtplib.SMTP` object. It never prints and never exits; every failure is
//! an [`Error`].
pub mod auth;
pub mod error;
pub mod reply;

pub use error::{Error, Refused, Secret};
pub use reply::{EnhancedCode, Reply};
