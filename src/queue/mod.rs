//! The durable, spool-first queue: every message is on disk before the
//! first byte goes to a server, so that being killed, a full disk or a
//! dead relay leaves it delivered once, still queued, or in dead.letter —
//! never lost, and never sent twice by two runners at once.
//!
//! This module owns the queue directory, its locks, its retry schedule and
//! dead.letter. It never prints and never exits: every failure is a
//! [`QueueError`] whose [`kind`](QueueError::kind) is its sysexits class.
//! It does not deliver: the caller (the binary's queue runner) does, with
//! the session engine, and records the outcome here.
//!
//! # Layout
//!
//! ```text
//! DIR/tmp/        files being written
//! DIR/msg/ID.eml  the message, exactly the bytes received
//! DIR/msg/ID.env  its metadata, TOML (see Meta): the entry exists once this does
//! DIR/corrupt/    orphans and damaged entries, moved aside by quarantine()
//! DIR/dead/       dead.letter of last resort
//! DIR/hint/       per-profile "something may be due" times (see HintBook)
//! DIR/run.lock    the queue-run lock (0600, in the owner's 0700 DIR)
//! ```
//!
//! # Owners: a security boundary
//!
//! A queued message is only ever sent with an identity its owner could
//! use by running smtpsend themselves. A queue belongs to one uid: every
//! directory is 0700, every file 0600 (set with `fchmod`, whatever the
//! umask), and every file and directory must be owned by that uid — a
//! directory writable by group or others, or a file owned by anyone else,
//! is refused, so no entry can be read, changed, removed or forged by
//! another user. The system spool ([`SYSTEM_DIR`], root-owned, mode
//! 1733) holds one such queue per uid, `SPOOL/UID`, created on that uid's
//! first use; the sticky bit keeps anyone from removing or renaming
//! another's, and 1733 rather than 1777 keeps users from listing who has
//! mail queued. Root's queue run runs each user's queue in a process
//! that has become that user ([`owner`]); root may list and remove other
//! users' entries but never sends them. This is Postfix's split between
//! the world-writable `maildrop` (submissions, owned by their submitter)
//! and `pickup` (which trusts the file owner, not the file's contents),
//! without a daemon: the trusted side is the user's own process.
//!
//! Every operation goes through directory descriptors opened with
//! `O_DIRECTORY|O_NOFOLLOW` and checked after opening; files are
//! created with `O_EXCL|O_NOFOLLOW` and renamed and removed with
//! `renameat`/`unlinkat`: a directory swapped for a symlink is never
//! followed. Root never works inside a directory another uid can write.
//!
//! # Limits
//!
//! Nothing is spooled below a free-space floor ([`DEFAULT_MIN_FREE`],
//! [`Queue::with_min_free`]; the configuration key `queue_min_free`):
//! [`QueueError::LowSpace`], EX_TEMPFAIL, nothing left behind. A relay
//! that cannot be reached or times out is suspended for the rest of a
//! run ([`SuspendedRelays`]). Submitting a message never scans the queue:
//! whether older mail of the same profile is due is one `stat` of its
//! hint ([`Queue::maybe_due`], [`HintBook`]).
//!
//! IDs look like `20261123T193000.123456-1a2b3c4d` (UTC spool time, 32
//! random bits) and sort by age. See [`Queue`] for owners and modes,
//! [`Meta`] for the metadata format.
//!
//! # Use
//!
//! ```no_run
//! use std::time::SystemTime;
//! use smtpsend::queue::{self, NewMessage};
//!
//! let q = queue::choose_dir(None)?.queue;
//! let spooled = q.spool(&mut std::io::stdin(), NewMessage {
//!     profile: "default".into(),
//!     sender: "me@example.org".into(),
//!     recipients: vec!["you@example.org".into()],
//!     ..Default::default()
//! })?;
//! let mut msg = spooled.into_locked();
//! // ... try to deliver msg.envelope() with msg.open()? and msg.info() ...
//! // On success:        msg.record_sent(&env.to, &refused, now)?, then complete()
//! // On a 4xx:          msg.defer(&error.to_string(), Some(host), SystemTime::now())?;
//! msg.defer("451 4.3.0 try again later", Some("smtp.example.org"), SystemTime::now())?;
//! # Ok::<(), smtpsend::queue::QueueError>(())
//! ```
//!
//! # A queue run
//!
//! For each directory in [`candidate_dirs`] that exists: take
//! [`Queue::run_lock`] (skip the directory if another run holds it);
//! [`Queue::quarantine`] debris older than [`STALE_AFTER`]; start a
//! [`HintBook`] ([`Queue::hint_book`]) and work through the handle it
//! returns; then for each entry of [`Queue::list`] that
//! [`Entry::is_due`] (every entry for a flush), oldest first (the others
//! go into the book with [`HintBook::keep`]):
//! [`Queue::lock`] it — skip it on `Ok(None)` or a
//! [`not-found`](QueueError::is_not_found) error (another runner has it or
//! finished it) — and then:
//!
//! 1. No pending recipients (a crash after the last one was settled):
//!    [`Locked::complete`].
//! 2. Send [`Locked::envelope`] with [`Locked::open`] and [`Locked::info`].
//!    With the refused list (from `Ok`, or from
//!    `Error::RecipientsRefused`): [`Locked::record_sent`]; report the
//!    permanent refusals it returns (dead.letter), then
//!    [`Locked::fail_recipients`].
//! 3. Any other permanent error: report, fail every pending recipient.
//! 4. A temporary error, or recipients still pending:
//!    [`Locked::defer`]; if [`Locked::is_expired`] with the profile's
//!    `queue_lifetime`, report and fail them all instead.
//! 5. Nothing pending: [`Locked::complete`].
//!
//! At the end, [`HintBook::commit`]. Before connecting to a relay, skip
//! it if it is in the run's [`SuspendedRelays`]; add it there when it
//! cannot be reached. As root, then run each other uid's queue in the
//! system spool as that uid ([`owner::uids_with_entries`],
//! [`owner::command_as`]).
//!
//! # Delivery is at least once, and where the window is
//!
//! A message can be sent twice, never zero times, in these windows only:
//!
//! * Between the server's reply to the end of data and the synced update
//!   of the metadata ([`Locked::record_sent`] or [`Locked::complete`]): a
//!   crash, a kill -9 or a power loss there leaves the recipients pending,
//!   and the next run sends the message again. The update is one small
//!   write, rename and directory sync, milliseconds.
//! * The connection lost after the final dot but before the reply (RFC
//!   1047): the engine cannot know whether the server took the message, so
//!   it is an error, the message is deferred, and is sent again.
//! * A failure report (dead.letter) written before the recipients are
//!   marked failed: a crash in between reports twice, never not at all.
//!
//! Two runners never overlap on one message: the per-message lock is held
//! from before the first byte is sent until the outcome is saved or the
//! entry removed, and the kernel releases it when its holder dies. The
//! process that spooled a message keeps its lock ([`Spooled`]) through
//! its own first attempt, so a queue run started meanwhile skips it.
//!
//! # Disk full and unwritable spools
//!
//! [`Queue::spool`] removes every file it made on any error, so `msg/`
//! never holds half a message ([`QueueError::kind`] is EX_TEMPFAIL for a
//! full disk or quota, EX_CANTCREAT for an unwritable spool). An
//! unwritable, read-only or missing spool fails before the message is
//! read, so the caller can still deliver directly; a disk that fills up
//! part-way has consumed part of the input, and only a caller that can
//! read its source again can fall back then (see [`Queue::spool`];
//! [`choose_dir`] probes writability first, which narrows this to a disk
//! that fills during the copy). The unit tests inject failures
//! with paths that are files where directories should be and with readers
//! that fail, which work even as root; a real ENOSPC from a small tmpfs
//! or loop-mounted file system is left to the integration tests, which
//! can mount one (it would additionally prove that a failed `write` or
//! `fsync` half-way through a large body leaves nothing behind).

mod dead_letter;
mod error;
pub(crate) mod files;
mod hint;
mod id;
mod lock;
mod meta;
pub mod owner;
mod retry;
mod spool;
mod suspend;
mod time;

pub use dead_letter::{
    LOCK_TIMEOUT as DEAD_LETTER_LOCK_TIMEOUT, append_dead_letter, default_dead_letter,
};
pub use error::QueueError;
pub use hint::HintBook;
pub use id::Id;
pub use lock::{Locked, RunLock};
pub use meta::{MAX_HOSTS, MAX_META_SIZE, MAX_TEXT, META_VERSION, Meta, Recipient, RecipientState};
pub use retry::{BACKOFF, Entry, RETRY_INTERVAL, delay, is_expired, next_attempt};
pub use spool::{
    Chosen, DEFAULT_MIN_FREE, NewMessage, Orphan, Problem, Queue, SPOOL_CHUNK, STALE_AFTER,
    SYSTEM_DIR, Spooled, candidate_dirs, choose_dir, default_dir,
};
pub use suspend::SuspendedRelays;
pub use time::rfc3339;
