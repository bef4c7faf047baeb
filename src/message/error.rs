//! The message layer's error type. Every variant renders as one line that
//! names what is wrong and where; [`MessageError::kind`] tells the binary
//! which class of failure it is so it can pick the sysexits code.

use std::io;

use super::address::AddressError;

/// The class of a [`MessageError`], for the binary's exit code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The message itself is malformed (`EX_DATAERR`, 65).
    Data,
    /// Reading the message failed (`EX_IOERR`, 74).
    Io,
    /// A value the caller supplied (a full name, an address, a domain) cannot
    /// be put in a header (`EX_USAGE`, 64).
    Argument,
}

/// Everything the message layer can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Reading from the message source failed.
    #[error("reading the message failed: {0}")]
    Io(#[from] io::Error),

    /// The header block did not end within the limit.
    #[error(
        "message header block is longer than {limit} bytes without the empty line that ends it"
    )]
    TooLarge { limit: usize },

    /// A NUL byte in the header block.
    #[error("message header line {line} contains a NUL byte")]
    NulByte { line: usize },

    /// A carriage return that is not part of a CRLF line ending. Rejected
    /// rather than passed on: a later CRLF normalisation could turn it into
    /// a line break and so into a header field we never saw (and never
    /// stripped, if it were a Bcc).
    #[error("message header line {line} contains a carriage return that does not end the line")]
    BareCr { line: usize },

    /// Any other control character (other than TAB).
    #[error("message header line {line} contains the control character 0x{byte:02X}")]
    ControlChar { line: usize, byte: u8 },

    /// A line over RFC 5322's limit of 998 octets.
    #[error("message header line {line} is longer than 998 octets (RFC 5322 §2.1.1)")]
    LineTooLong { line: usize },

    /// A line in the header block that is neither a header field nor the
    /// continuation of one.
    #[error(
        "message header line {line} is not a header field (\"Name: value\") and does not continue one: \"{excerpt}\"; the header block must end with an empty line before the body"
    )]
    NotAHeader { line: usize, excerpt: String },

    /// A header field name with characters RFC 5322 §3.6.8 does not allow.
    #[error("message header line {line} has an invalid field name \"{name}\"")]
    BadFieldName { line: usize, name: String },

    /// An address header that does not parse.
    #[error("malformed {header} header: {source}")]
    Address {
        header: String,
        source: AddressError,
    },

    /// More than one block of Resent- fields: which one names the
    /// recipients is ambiguous.
    #[error(
        "message has {count} Resent- header blocks; with -t only a message with at most one can be sent (name the recipients on the command line instead)"
    )]
    MultipleResentBlocks { count: usize },

    /// A header field the caller asked to add is not valid.
    #[error("cannot add the {name} header: {reason}")]
    InvalidField { name: String, reason: String },

    /// A domain the caller supplied is not a valid domain.
    #[error("\"{domain}\" is not a valid mail domain")]
    InvalidDomain { domain: String },
}

impl MessageError {
    /// The class of this error, for the exit code.
    pub fn kind(&self) -> Kind {
        match self {
            MessageError::Io(_) => Kind::Io,
            MessageError::InvalidField { .. } | MessageError::InvalidDomain { .. } => {
                Kind::Argument
            }
            MessageError::TooLarge { .. }
            | MessageError::NulByte { .. }
            | MessageError::BareCr { .. }
            | MessageError::ControlChar { .. }
            | MessageError::LineTooLong { .. }
            | MessageError::NotAHeader { .. }
            | MessageError::BadFieldName { .. }
            | MessageError::Address { .. }
            | MessageError::MultipleResentBlocks { .. } => Kind::Data,
        }
    }
}

/// At most this many bytes of offending input are quoted in an error.
const EXCERPT_LEN: usize = 40;

/// A short, printable rendering of untrusted bytes for an error message:
/// non-printable and non-ASCII bytes are escaped, long input is cut.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let cut = bytes.len() > EXCERPT_LEN;
    let shown = &bytes[..bytes.len().min(EXCERPT_LEN)];
    let mut s = shown.escape_ascii().to_string();
    if cut {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_escapes_and_cuts() {
        assert_eq!(excerpt(b"a\x00b\"\xff"), "a\\x00b\\\"\\xff");
        assert_eq!(excerpt(&[b'x'; 100]), format!("{}...", "x".repeat(40)));
    }

    #[test]
    fn kinds() {
        assert_eq!(MessageError::NulByte { line: 1 }.kind(), Kind::Data);
        assert_eq!(MessageError::Io(io::Error::other("x")).kind(), Kind::Io);
        assert_eq!(
            MessageError::InvalidDomain {
                domain: "x y".into()
            }
            .kind(),
            Kind::Argument
        );
    }
}
