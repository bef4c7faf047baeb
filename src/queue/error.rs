//! The queue's error type, and the sysexits class of each failure.
//!
//! The distinction that matters to the caller is where the failure is:
//! the queue itself ([`QueueError::CreateDir`], [`QueueError::Write`]: try
//! direct delivery instead), the message the caller handed in
//! ([`QueueError::Input`], [`QueueError::Empty`], [`QueueError::NoRecipients`]:
//! no fallback can help), or one queued entry ([`QueueError::NotFound`],
//! [`QueueError::Locked`], [`QueueError::Corrupt`]: skip it and go on).

use std::io;
use std::path::PathBuf;

use super::id::Id;
use crate::exit::Sysexit;

/// Everything the queue can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue directory or one of its subdirectories cannot be created
    /// or is not a directory.
    #[error("cannot create the queue directory {}: {source}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// Writing, syncing, renaming or removing a queue file failed: a full
    /// disk, a quota, a read-only or unwritable spool. Nothing half-written
    /// was left in `msg/`.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// Reading a queue file or directory failed.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file or directory being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// Reading the message from the caller failed while spooling it; the
    /// partial copy was removed.
    #[error("cannot read the message: {0}")]
    Input(#[source] io::Error),

    /// The message to spool was empty.
    #[error("the message is empty: nothing was queued")]
    Empty,

    /// A message to spool had no recipients.
    #[error("no recipients given: nothing was queued")]
    NoRecipients,

    /// A queue entry's metadata cannot be parsed, is from a newer format,
    /// or a queue file is not what it should be (not a regular file, more
    /// than one link).
    #[error("{}: damaged queue entry: {reason}", .path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// No such message in the queue (never queued, already delivered or
    /// removed, or only an orphaned half of one).
    #[error("no queued message {0}")]
    NotFound(Id),

    /// Another process holds the message's lock (it is being delivered or
    /// is still being spooled).
    #[error("message {0} is being delivered or spooled by another process; try again later")]
    Locked(Id),

    /// The text is not a queue ID.
    #[error("{0:?} is not a queue ID (they look like 20261123T193000.123456-1a2b3c4d)")]
    BadId(String),

    /// Taking a lock failed for a reason other than contention (no lock
    /// support on the file system, for instance).
    #[error("cannot lock {}: {source}", .path.display())]
    Lock {
        /// The file being locked.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// The spool's file system has less free space than the queue's
    /// floor ([`crate::queue::Queue::with_min_free`]): nothing was queued,
    /// and the message stays with the caller.
    #[error(
        "the queue {} has {} KiB free, below its floor of {} KiB (queue_min_free): nothing was queued; free some space or lower the floor",
        .path.display(), .free / 1024, .floor / 1024
    )]
    LowSpace {
        /// The queue directory.
        path: PathBuf,
        /// Bytes free.
        free: u64,
        /// The floor.
        floor: u64,
    },

    /// Every candidate queue directory failed; each failure is listed.
    #[error("no usable queue directory: {}", describe_all(.0))]
    NoUsableDir(Vec<QueueError>),
}

impl QueueError {
    /// The sysexits class: the queue cannot be created or written
    /// (EX_CANTCREAT), the spool is full (EX_TEMPFAIL: try again later),
    /// another local I/O failure (EX_IOERR). Errors about what the caller
    /// handed in take the class the rest of smtpsend uses for them: an
    /// empty message EX_NOINPUT, no recipients or a malformed ID
    /// EX_USAGE, an unknown ID EX_NOINPUT.
    pub fn kind(&self) -> Sysexit {
        Sysexit::from(self)
    }

    /// Whether this says the message is not (or no longer) in the queue: a
    /// queue runner that listed it before another runner finished it
    /// skips it quietly.
    pub fn is_not_found(&self) -> bool {
        match self {
            QueueError::NotFound(_) => true,
            QueueError::Read { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: io::Error) -> Self {
        QueueError::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: io::Error) -> Self {
        QueueError::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        QueueError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// A full disk or quota is temporary (sendmail's "452 insufficient disk
/// space; try again later"); no permission, a read-only file system or a
/// path that is not a directory will not fix themselves.
fn describe_all(errors: &[QueueError]) -> String {
    if errors.is_empty() {
        return "none to try (no home directory and no configured queue_dir)".into();
    }
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(kind: io::ErrorKind) -> QueueError {
        QueueError::write("/q/tmp/x", io::Error::from(kind))
    }

    #[test]
    fn kinds() {
        assert_eq!(w(io::ErrorKind::StorageFull).kind(), Sysexit::TempFail);
        assert_eq!(w(io::ErrorKind::QuotaExceeded).kind(), Sysexit::TempFail);
        assert_eq!(
            w(io::ErrorKind::PermissionDenied).kind(),
            Sysexit::CantCreate
        );
        assert_eq!(
            w(io::ErrorKind::ReadOnlyFilesystem).kind(),
            Sysexit::CantCreate
        );
        assert_eq!(w(io::ErrorKind::Other).kind(), Sysexit::IoErr);
        assert_eq!(
            QueueError::Input(io::Error::other("x")).kind(),
            Sysexit::IoErr
        );
        assert_eq!(QueueError::NoUsableDir(vec![]).kind(), Sysexit::CantCreate);
        let id: Id = "20261123T193000.123456-1a2b3c4d".parse().unwrap();
        assert_eq!(QueueError::Locked(id.clone()).kind(), Sysexit::TempFail);
        assert!(QueueError::NotFound(id).is_not_found());
        assert!(QueueError::read("/q", io::Error::from(io::ErrorKind::NotFound)).is_not_found());
        assert!(!w(io::ErrorKind::NotFound).is_not_found());
    }

    #[test]
    fn messages_name_the_path_and_cause() {
        let e = w(io::ErrorKind::StorageFull);
        assert!(e.to_string().starts_with("cannot write /q/tmp/x: "), "{e}");
        let all = QueueError::NoUsableDir(vec![w(io::ErrorKind::PermissionDenied)]);
        assert!(all.to_string().contains("/q/tmp/x"), "{all}");
    }
}
