//! The message: header block, `-t` envelope rules, Bcc removal, header
//! completion and bare-name qualification.
//!
//! Everything here is a pure function over bytes: the only I/O is the
//! reader [`read_header_block`] is handed, and it never reads past the
//! header block, so the body can be streamed. Nothing here prints, exits or
//! panics on input; every failure is a [`MessageError`].
pub mod address;
pub mod complete;
pub mod envelope;
pub mod error;
pub mod header;
pub mod localtime;
pub mod qualify;

pub use address::{AddressError, Mailbox, parse_address_list};
pub use complete::{Completion, DateStamp, Originator, complete_headers, is_domain};
pub use envelope::{Extracted, extract_envelope, strip_bcc};
pub use error::{Kind, MessageError};
pub use header::{Field, HeaderBlock, MAX_HEADER_BYTES, MAX_LINE_OCTETS, read_header_block};
pub use qualify::{QUALIFIED_FIELDS, qualify_address, qualify_headers};
