//! The message: header block, `-t` envelope rules, Bcc removal, header
//! completion and bare-name qualification.
//!
//! Everything here is a pure function over bytes: the only I/O is the
//! reader [`read_header_block`] is handed, and it never reads past the
//! header block, so the body can be streamed from the same reader. Nothing
//! here prints, exits or panics on input; every failure is a
//! [`MessageError`] whose [`kind`](MessageError::kind) picks the exit code.
//!
//! - [`header`]: reading the header block, field by field, byte for byte.
//! - [`address`]: the strict address-list parser.
//! - [`envelope`]: the `-t` rules (smtplib's `send_message`) and Bcc removal.
//! - [`complete`]: adding From, Date and Message-ID when missing.
//! - [`qualify`]: `root` → `root@domain` in address fields and envelopes.
//!
//! ```
//! use smtpsend::message::*;
//!
//! let mut input = &b"From: Cron Daemon <root>\nTo: admin@example.org\nBcc: audit\n\nbody\n"[..];
//! let mut headers = read_header_block(&mut input, MAX_HEADER_BYTES)?;
//! assert_eq!(input, b"body\n"); // the body is left to stream
//!
//! let envelope = extract_envelope(&headers)?;
//! let recipients: Vec<String> = envelope
//!     .recipients
//!     .iter()
//!     .map(|r| qualify_address(r, "host.example"))
//!     .collect();
//! assert_eq!(recipients, ["admin@example.org", "audit@host.example"]);
//!
//! qualify_headers(&mut headers, "host.example")?;
//! strip_bcc(&mut headers);
//! complete_headers(&mut headers, &Completion {
//!     date: Some(DateStamp { unix_seconds: 0, utc_offset_seconds: 0 }),
//!     ..Completion::default()
//! })?;
//! assert_eq!(
//!     headers.to_bytes(),
//!     b"From: Cron Daemon <root@host.example>\nTo: admin@example.org\n\
//!       Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n\n"
//! );
//! # Ok::<(), MessageError>(())
//! ```
pub mod address;
pub mod complete;
pub mod envelope;
pub mod error;
pub mod header;
pub mod qualify;

pub use address::{AddressError, Mailbox, parse_address_list};
pub use complete::{Completion, DateStamp, Originator, complete_headers, is_domain};
pub use envelope::{Extracted, RecipientList, extract_envelope, strip_bcc};
pub use error::{Kind, MessageError};
pub use header::{Field, HeaderBlock, MAX_HEADER_BYTES, MAX_LINE_OCTETS, read_header_block};
pub use qualify::{QUALIFIED_FIELDS, qualify_address, qualify_headers};
