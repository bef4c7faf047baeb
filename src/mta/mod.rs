//! Debian's MTA conventions, read the way exim, Postfix, dma and
//! nullmailer read them, for a machine where smtpsend is the MTA:
//!
//! - [`mailname`]: `/etc/mailname`, the domain of mail that leaves this
//!   machine (bare names such as `root` are qualified with it);
//! - [`aliases`]: `/etc/aliases`, `name: address, address` lines;
//! - [`mailbox`]: which mailbox a local user's mail goes to (Maildir or mbox);
//! - [`mbox`]: appending to `/var/mail/USER` with the dotlock and fcntl
//!   locking Debian's mail readers expect.
//!
//! Each is a self-contained reader or writer with bounded input and a
//! typed error. None of them prints, exits or decides policy: the
//! configuration resolver decides when the system files apply (only when
//! the configuration says nothing), the delivery code decides where a
//! local message goes.

pub mod aliases;
pub mod mailbox;
pub mod mailname;
pub mod mbox;

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Reads a small system file: `Ok(None)` when it does not exist, else at
/// most `max + 1` bytes (more than `max` means the file is too long).
fn read_bounded(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// The domain `/etc/mailname` names, for a configuration that names none.
/// A missing or unusable file gives `None`: it is a fallback, and the
/// host's own name comes next.
pub fn system_domain() -> Option<String> {
    mailname::read(Path::new(mailname::PATH)).ok().flatten()
}

/// `/etc/aliases` as an alias table, for a configuration with no
/// `[aliases]` of its own; `None` when the file is missing, unreadable or
/// has no usable entry. What it leaves out is in [`aliases::read`]'s
/// result for a caller that wants to report it.
pub fn system_aliases() -> Option<crate::config::Aliases> {
    let table = aliases::read(Path::new(aliases::PATH)).ok().flatten()?;
    (!table.entries.is_empty()).then(|| table.to_aliases())
}
