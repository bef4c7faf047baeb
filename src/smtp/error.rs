//! The engine's error type: one variant per exception class of Python's
//! `smtplib`, plus the transport failures smtplib leaves to `OSError`.
//!
//! Every variant that comes from a server reply carries the [`Reply`] so the
//! server's own code and text reach the user. [`Error::is_transient`] says
//! whether trying the same thing later could succeed: that decides between
//! queueing a message and giving up on it.

use std::io;

use super::reply::Reply;

/// The recipients a server refused, each with the reply it gave, in the
/// order they were given (smtplib returns an insertion-ordered dict).
pub type Refused = Vec<(String, Reply)>;

/// Everything the session engine can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `SMTPServerDisconnected`: the connection is gone (or was never made);
    /// the session must `connect` again.
    #[error("server disconnected: {0}")]
    ServerDisconnected(String),

    /// `SMTPConnectError`: the greeting was not 220.
    #[error("connection refused by server: {0}")]
    Connect(Reply),

    /// `SMTPHeloError`: both EHLO and HELO were refused.
    #[error("HELO/EHLO refused: {0}")]
    Helo(Reply),

    /// `SMTPSenderRefused`: MAIL FROM was refused.
    #[error("sender <{sender}> refused: {reply}")]
    SenderRefused { reply: Reply, sender: String },

    /// `SMTPRecipientsRefused`: every recipient was refused.
    #[error("all recipients refused: {}", describe_refused(.0))]
    RecipientsRefused(Refused),

    /// `SMTPDataError`: DATA, BDAT or the message itself was refused.
    #[error("message refused: {0}")]
    Data(Reply),

    /// `SMTPAuthenticationError`: the server refused the credentials.
    /// `detail` holds what a mechanism learned beyond the reply, such as
    /// the JSON error of an OAuth bearer failure.
    #[error("authentication failed: {reply}{}", .detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Authentication {
        reply: Reply,
        detail: Option<String>,
    },

    /// `SMTPResponseException`: any other unexpected reply.
    #[error("unexpected reply: {0}")]
    Response(Reply),

    /// `SMTPNotSupportedError`: the command or option needs an extension
    /// the server does not offer.
    #[error("not supported by server: {0}")]
    NotSupported(String),

    /// The message is larger than the server's advertised SIZE limit; it
    /// was refused before any data was sent.
    #[error("message of {size} bytes exceeds the server's SIZE limit of {limit} bytes")]
    MessageTooLarge { size: u64, limit: u64 },

    /// The server broke the protocol: a malformed, oversized or
    /// inconsistent reply. The connection is closed.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// Authentication could not be attempted or was aborted on our side:
    /// no common mechanism, a bad server challenge, a SCRAM server
    /// signature that does not verify, credentials over plaintext.
    #[error("{0}")]
    AuthRefusedLocally(String),

    /// The caller gave something that cannot be sent: an address with a
    /// line break, a bad host string, a non-ASCII address without
    /// SMTPUTF8.
    #[error("{0}")]
    InvalidInput(String),

    /// A wait for the server exceeded its timeout.
    #[error("timed out after {0} s waiting for the server")]
    Timeout(u64),

    /// The TLS handshake was cut short: an I/O failure or an alert from
    /// the server. Transient: the next host, or a later try, may work.
    #[error("TLS: {0}")]
    Tls(String),

    /// The server's certificate does not verify (unknown CA, wrong name,
    /// expired) or does not match the pinned fingerprint; or the CA file
    /// cannot be loaded. Transient, as Postfix defers such mail: the fix
    /// (a CA file, a pin) is the administrator's, and the message waits
    /// for it. [`Error::is_certificate_failure`] lets a caller that cannot
    /// queue treat it as permanent.
    #[error("TLS certificate: {0}")]
    TlsCertificate(String),

    /// The server does not speak TLS where TLS was asked for (plaintext on
    /// a port used with implicit TLS), or only a TLS version below 1.2.
    /// Permanent: the TLS mode or the port is wrong.
    #[error("TLS: {0}")]
    TlsMismatch(String),

    /// The whole message was sent, but the server's reply to its end never
    /// came (the connection closed, or the wait timed out). The server may
    /// have taken it: retrying may deliver a duplicate (the at-least-once
    /// window). Transient.
    #[error("{0}: the message may have been delivered")]
    MaybeDelivered(String),

    /// Name resolution failed for the host.
    #[error("cannot resolve host {host}: {source}")]
    Resolve { host: String, source: io::Error },

    /// Any other I/O failure on the connection or reading the message.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Whether the same attempt could succeed later (queue and retry) as
    /// opposed to a refusal that will not change (bounce).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::ServerDisconnected(_)
            | Error::Timeout(_)
            | Error::Resolve { .. }
            | Error::Io { .. }
            | Error::Tls(_)
            | Error::TlsCertificate(_)
            | Error::MaybeDelivered(_) => true,
            Error::Connect(r)
            | Error::Helo(r)
            | Error::Data(r)
            | Error::Response(r)
            | Error::SenderRefused { reply: r, .. }
            | Error::Authentication { reply: r, .. } => r.is_transient(),
            // Transient only if every refusal was.
            Error::RecipientsRefused(m) => !m.is_empty() && m.iter().all(|(_, r)| r.is_transient()),
            Error::TlsMismatch(_)
            | Error::NotSupported(_)
            | Error::MessageTooLarge { .. }
            | Error::Protocol(_)
            | Error::AuthRefusedLocally(_)
            | Error::InvalidInput(_) => false,
        }
    }

    /// Whether the server's certificate failed verification or the pin: a
    /// caller that cannot queue the message (sendmail's `--no-queue`) may
    /// report this as permanent, though [`Error::is_transient`] says a
    /// queue should keep the message.
    pub fn is_certificate_failure(&self) -> bool {
        matches!(self, Error::TlsCertificate(_))
    }

    /// Whether the server may have the message although the send failed:
    /// the reply to the end of the data never arrived.
    pub fn may_have_been_delivered(&self) -> bool {
        matches!(self, Error::MaybeDelivered(_))
    }

    /// The server reply this error carries, if any.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Error::Connect(r)
            | Error::Helo(r)
            | Error::Data(r)
            | Error::Response(r)
            | Error::SenderRefused { reply: r, .. }
            | Error::Authentication { reply: r, .. } => Some(r),
            Error::RecipientsRefused(m) => m.first().map(|(_, r)| r),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

fn describe_refused(m: &Refused) -> String {
    let mut out = String::new();
    for (i, (addr, reply)) in m.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&format!("<{addr}>: {reply}"));
    }
    out
}
