//! Test support: a scripted, in-process SMTP/LMTP server for fault-injection
//! and protocol-edge tests, and a throw-away PKI for its TLS.
//!
//! Use from an integration test as `mod support; use support::*;`.
// Each test file uses a different subset, so unused items and re-exports
// are expected rather than a sign of rot.
#![allow(dead_code, unused_imports)]

mod tls;

pub use tls::{CertKind, TestPki, connector_trusting, hex, identity_of, test_ca_pem};
