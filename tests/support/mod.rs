//! Test support: a scripted, in-process SMTP/LMTP server for fault-injection
//! and protocol-edge tests, and a throw-away PKI for its TLS.
//!
//! Use from an integration test as `mod support; use support::*;`.
//!
//! ```ignore
//! let server = ScriptedServer::start(Script::new().starttls().auth_accept("u", "p"));
//! // ... point the client at server.addr(), trusting TestPki::new().ca_path ...
//! let t = server.finish();
//! assert_eq!(t.conn().verbs(), ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]);
//! ```
// Each test file uses a different subset, so unused items and re-exports
// are expected rather than a sign of rot.
#![allow(dead_code, unused_imports)]

mod conn;
mod script;
mod server;
mod session;
mod tls;
mod transcript;

pub use conn::{MAX_BUFFER, MAX_COMMAND_LINE, RawConn};
pub use script::{
    Action, At, BUILTIN_AUTH_MECHANISMS, DEFAULT_CAPS, DEFAULT_IO_TIMEOUT, Hook, Matcher, Script,
    Step, raw,
};
pub use server::ScriptedServer;
pub use session::{AuthExchange, cram_md5};
pub use tls::{CertKind, TestPki, connector_trusting, hex, identity_of, test_ca_pem};
pub use transcript::{ClientLine, Connection, Ending, LineKind, Message, Transcript};
