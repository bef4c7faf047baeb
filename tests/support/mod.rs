//! Test support: a scripted, in-process SMTP/LMTP server for fault-injection
//! and protocol-edge tests, and a throw-away PKI for its TLS.
//!
//! Use from an integration test as `mod support; use support::*;`.
//!
//! - [`Script`] describes the server: `Script::new()` is a well-behaved
//!   ESMTP server; builder methods change replies (`reply_to`, `reply_at`,
//!   `after_data`, `greeting`, `ehlo_caps`), add features (`starttls`,
//!   `tls_on_connect`, `auth_accept`, `on_auth`, `lhlo`) or inject faults at
//!   a [`Step`] (`disconnect_at`, `disconnect_after`, `stall_at`, `drip`,
//!   `raw_reply_at`, `hook_at`). Narrow a step with `.nth(n)`, `.in_tls()`,
//!   `.in_plain()`, `.on_connection(i)`.
//! - [`ScriptedServer::start`] runs it on 127.0.0.1:0; `finish()` returns the
//!   [`Transcript`]: per connection the client's lines (TLS state, flight),
//!   the messages (envelope, wire bytes, unstuffed content), how it ended.
//! - [`TestPki`] makes the certificates; [`connector_trusting`] the client side.
//!
//! Every wait inside the server is bounded ([`DEFAULT_IO_TIMEOUT`], or the
//! script's `io_timeout`), and `finish()` ends waits on the client at once,
//! so a broken client fails a test instead of hanging the suite.
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

mod bin;
mod conn;
mod script;
mod server;
mod session;
mod tls;
mod transcript;

pub use bin::{BinEnv, Out, closed_port, msg, run_command};
pub use conn::{MAX_BUFFER, MAX_COMMAND_LINE, RawConn};
pub use script::{
    Action, At, BUILTIN_AUTH_MECHANISMS, DEFAULT_CAPS, DEFAULT_IO_TIMEOUT, Hook, Matcher, Script,
    Step, raw,
};
pub use server::ScriptedServer;
pub use session::{AuthExchange, cram_md5};
pub use tls::{CertKind, TestPki, connector_trusting, hex, identity_of, test_ca_pem};
pub use transcript::{ClientLine, Connection, Ending, LineKind, Message, Transcript};
