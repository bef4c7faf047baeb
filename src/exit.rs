//! Exit status: the sysexits(3) codes, and the one table that maps every
//! failure to one of them, as msmtp keeps it: `Sysexit::from(&error)` for
//! each error type (the engine's, the configuration's, the queue's, the
//! message layer's, clap's). The error types' own `kind()` methods ask
//! this table. Only the binary's edge turns these into a process exit.

use std::io;

use crate::config::ConfigError;
use crate::message::MessageError;
use crate::queue::QueueError;
use crate::smtp::Error;

/// sysexits.h codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Sysexit {
    Ok = 0,
    /// EX_USAGE: bad command line.
    Usage = 64,
    /// EX_DATAERR: the message or an address in it is malformed.
    DataErr = 65,
    /// EX_NOINPUT: no message, or an input file that cannot be read.
    NoInput = 66,
    /// EX_NOUSER: every recipient was refused.
    NoUser = 67,
    /// EX_NOHOST: the relay's name does not resolve.
    NoHost = 68,
    /// EX_UNAVAILABLE: a permanent refusal.
    Unavailable = 69,
    /// EX_SOFTWARE: a bug in smtpsend.
    Software = 70,
    /// EX_OSERR.
    OsErr = 71,
    /// EX_CANTCREAT: an output file (Maildir, spool) cannot be written.
    CantCreate = 73,
    /// EX_IOERR: a local I/O failure.
    IoErr = 74,
    /// EX_TEMPFAIL: try again later.
    TempFail = 75,
    /// EX_PROTOCOL: the server broke the protocol.
    Protocol = 76,
    /// EX_NOPERM: authentication refused.
    NoPerm = 77,
    /// EX_CONFIG: bad configuration.
    Config = 78,
}

impl Sysexit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<&Error> for Sysexit {
    /// The engine's errors.
    fn from(e: &Error) -> Sysexit {
        for_smtp(e)
    }
}

impl From<&ConfigError> for Sysexit {
    /// A bad flag or an unknown `-a` profile is the caller's (EX_USAGE); a
    /// password command that timed out may work later (EX_TEMPFAIL);
    /// everything else about the configuration is EX_CONFIG.
    fn from(e: &ConfigError) -> Sysexit {
        match e {
            ConfigError::UnknownProfile { .. } | ConfigError::BadOption { .. } => Sysexit::Usage,
            ConfigError::PasswordTimeout { .. } => Sysexit::TempFail,
            _ => Sysexit::Config,
        }
    }
}

impl From<&QueueError> for Sysexit {
    /// The queue cannot be created or written (EX_CANTCREAT), the spool
    /// is full (EX_TEMPFAIL: try again later), another local I/O failure
    /// (EX_IOERR). Errors about what the caller handed in take the class
    /// the rest of smtpsend uses for them: an empty message EX_NOINPUT, no
    /// recipients or a malformed ID EX_USAGE, an unknown ID EX_NOINPUT.
    fn from(e: &QueueError) -> Sysexit {
        match e {
            QueueError::CreateDir { .. } | QueueError::NoUsableDir(_) => Sysexit::CantCreate,
            QueueError::Write { source, .. } => for_write(source),
            QueueError::Locked(_) | QueueError::LowSpace { .. } => Sysexit::TempFail,
            QueueError::Empty | QueueError::NotFound(_) => Sysexit::NoInput,
            QueueError::NoRecipients | QueueError::BadId(_) => Sysexit::Usage,
            _ => Sysexit::IoErr,
        }
    }
}

/// A write that failed: a full disk or quota may clear (EX_TEMPFAIL); a
/// place that cannot be written will not (EX_CANTCREAT).
fn for_write(e: &io::Error) -> Sysexit {
    use io::ErrorKind::*;
    match e.kind() {
        StorageFull | QuotaExceeded => Sysexit::TempFail,
        PermissionDenied | ReadOnlyFilesystem | NotADirectory | IsADirectory | FileTooLarge
        | NotFound => Sysexit::CantCreate,
        _ => Sysexit::IoErr,
    }
}

impl From<&MessageError> for Sysexit {
    /// A malformed message is EX_DATAERR, a value from argv that cannot
    /// go in a header EX_USAGE, a failed read EX_IOERR.
    fn from(e: &MessageError) -> Sysexit {
        match e.kind() {
            crate::message::Kind::Data => Sysexit::DataErr,
            crate::message::Kind::Io => Sysexit::IoErr,
            crate::message::Kind::Argument => Sysexit::Usage,
        }
    }
}

impl From<&clap::Error> for Sysexit {
    /// Help and version succeed; every other argv error is EX_USAGE, as
    /// sendmail reports it.
    fn from(e: &clap::Error) -> Sysexit {
        if e.use_stderr() {
            Sysexit::Usage
        } else {
            Sysexit::Ok
        }
    }
}

/// The exit status for an engine error.
fn for_smtp(e: &Error) -> Sysexit {
    use Sysexit::*;
    if e.is_transient() {
        return match e {
            // A name that does not resolve is EX_NOHOST even though DNS
            // may come back: that is what callers test for.
            Error::Resolve { .. } => NoHost,
            _ => TempFail,
        };
    }
    match e {
        Error::RecipientsRefused(_) => NoUser,
        Error::Authentication { .. } | Error::AuthRefusedLocally(_) => NoPerm,
        Error::Helo(_) | Error::Protocol(_) => Protocol,
        Error::InvalidInput(_) | Error::MessageTooLarge { .. } => DataErr,
        Error::Resolve { .. } => NoHost,
        Error::Io { .. } => IoErr,
        _ => Unavailable,
    }
}

/// The exit status when the message will not be queued (`--no-queue`): a
/// certificate that does not verify is then permanent (EX_UNAVAILABLE),
/// though a queue defers it; everything else as `Sysexit::from(e)`.
pub fn for_smtp_no_queue(e: &Error) -> Sysexit {
    if e.is_certificate_failure() {
        return Sysexit::Unavailable;
    }
    for_smtp(e)
}

/// What the user can do about an engine error, for the end of the one
/// error line.
pub fn hint(e: &Error) -> Option<&'static str> {
    Some(match e {
        Error::Resolve { .. } => "check the relay's host name",
        Error::Io { .. } if e.to_string().contains("refused") => {
            "check the relay's host and port, and that it is running"
        }
        Error::Io { .. } | Error::ServerDisconnected(_) | Error::Timeout(_) => {
            "the relay is unreachable or slow; try again later"
        }
        Error::TlsCertificate(_) => {
            "see the certificate with --serverinfo, then trust its CA (tls_ca_file) or pin it (tls_fingerprint)"
        }
        Error::TlsMismatch(_) => "check the TLS mode (--tls) matches the port",
        Error::Tls(_) => "the TLS handshake failed; try again later",
        Error::MaybeDelivered(_) => {
            "the relay may have the message; it is kept and retried, so a duplicate is possible"
        }
        Error::NotSupported(m) if m.contains("STARTTLS") => {
            "the relay offers no STARTTLS: use --tls tls on its TLS port, or --tls none only on a trusted network"
        }
        Error::Authentication { .. } => "check the user name and password",
        Error::MessageTooLarge { .. } => "send a smaller message or use another relay",
        Error::Protocol(_) => "the relay is broken or is not an SMTP server; check host and port",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::Reply;

    fn r(code: u16) -> Reply {
        Reply::new(code, vec!["x".into()])
    }

    #[test]
    fn table() {
        assert_eq!(for_smtp(&Error::Connect(r(421))), Sysexit::TempFail);
        assert_eq!(for_smtp(&Error::Connect(r(554))), Sysexit::Unavailable);
        assert_eq!(
            for_smtp(&Error::SenderRefused {
                reply: r(550),
                sender: "a".into()
            }),
            Sysexit::Unavailable
        );
        assert_eq!(
            for_smtp(&Error::RecipientsRefused(vec![("a".into(), r(550))])),
            Sysexit::NoUser
        );
        assert_eq!(
            for_smtp(&Error::RecipientsRefused(vec![("a".into(), r(450))])),
            Sysexit::TempFail
        );
        assert_eq!(for_smtp(&Error::Data(r(452))), Sysexit::TempFail);
        assert_eq!(for_smtp(&Error::Data(r(554))), Sysexit::Unavailable);
        assert_eq!(
            for_smtp(&Error::Authentication {
                reply: r(535),
                detail: None
            }),
            Sysexit::NoPerm
        );
        assert_eq!(for_smtp(&Error::Protocol("x".into())), Sysexit::Protocol);
        assert_eq!(for_smtp(&Error::Timeout(3)), Sysexit::TempFail);
        let cert = Error::TlsCertificate("x".into());
        assert_eq!(for_smtp(&cert), Sysexit::TempFail);
        assert_eq!(for_smtp_no_queue(&cert), Sysexit::Unavailable);
        assert_eq!(for_smtp(&Error::Tls("alert".into())), Sysexit::TempFail);
        assert_eq!(
            for_smtp(&Error::TlsMismatch("x".into())),
            Sysexit::Unavailable
        );
        assert_eq!(
            for_smtp(&Error::MaybeDelivered("x".into())),
            Sysexit::TempFail
        );
        assert_eq!(
            for_smtp(&Error::ServerDisconnected("x".into())),
            Sysexit::TempFail
        );
        assert_eq!(
            for_smtp(&Error::MessageTooLarge { size: 2, limit: 1 }),
            Sysexit::DataErr
        );
    }
}
