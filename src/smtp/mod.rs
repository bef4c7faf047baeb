//! The session engine: an SMTP/LMTP client with the semantics of Python's
//! `smtplib.SMTP` object. It never prints and never exits; every failure is
//! an [`Error`].
pub mod auth;
pub mod command;
pub mod data;
pub mod error;
pub mod extension;
pub mod idna;
pub mod reply;
pub mod secret;
pub mod server;
pub mod session;
pub mod stream;
pub mod transaction;

pub use data::BodyInfo;
pub use error::{Error, Refused};
pub use extension::Extensions;
pub use reply::{EnhancedCode, Reply};
pub use secret::Secret;
pub use session::{Dsn, Envelope, PlaintextAuth, Protocol, QuitOnDrop, SessionOptions, Smtp};
pub use stream::{Identity, IdentityError, TlsInfo, TlsOptions};
pub use transaction::{SendOptions, Source};
