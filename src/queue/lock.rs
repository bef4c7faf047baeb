//! Who may touch a message: per-message locks, and the queue-run lock.
//!
//! The per-message lock is the guarantee that no message is sent by two
//! processes at once: a non-blocking exclusive `flock` on `msg/ID.eml`.
//! The body, not the metadata, because the metadata is replaced by rename
//! on every update and a lock on a replaced file protects nothing; the
//! body is never rewritten, only removed when the message is done. The
//! kernel drops the lock when its holder dies, even by kill -9, so a
//! crashed delivery never wedges a message. (`flock` belongs to the open
//! file description: two `File`s in one process exclude each other as two
//! processes do. It does not work across NFS on every system; keep the
//! queue on a local file system.)
//!
//! A lock can be won on a file that was removed between our open and our
//! lock (a runner that finished the message). So after locking, the path
//! is checked to still name the locked file, and the metadata to exist.
//!
//! The run lock (`run.lock`) lets only one `-q` work a queue at a time;
//! it is a courtesy that saves work, not a guarantee: two runs without it
//! would still never send a message twice.

use std::collections::{HashMap, HashSet};
use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

use super::error::QueueError;
use super::files;
use super::id::Id;
use super::meta::{self, Meta, RecipientState};
use super::retry;
use super::spool::{FILE_MODE, Queue};
use super::time;
use crate::smtp::{BodyInfo, Envelope, Refused, Reply};

/// A message locked by this process: read its state, deliver it, record
/// the outcome. Dropping it releases the lock and leaves the message as
/// last saved.
///
/// The lock is an exclusive `flock` on `msg/ID.eml` (the body is never
/// rewritten; the metadata is replaced by rename on every save, so a lock
/// on it would protect nothing). The kernel releases it when the holder
/// dies, even by kill -9. Keep the queue on a local file system: `flock`
/// over NFS is not reliable everywhere.
#[derive(Debug)]
pub struct Locked {
    queue: Queue,
    id: Id,
    /// Holds the flock on `msg/ID.eml` (or, while spooling, the same file
    /// in `tmp/`).
    _lock: File,
    meta: Meta,
}

/// The queue-run lock; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl Queue {
    /// Locks message `id` for delivery, without waiting: `Ok(None)` if
    /// another process holds it (delivering it, or still spooling it).
    ///
    /// Errors: [`QueueError::NotFound`] if it is not (or no longer) a
    /// queued message, [`QueueError::Corrupt`] if its files are damaged
    /// or not owned by the queue's owner (a forged entry is never sent),
    /// [`QueueError::Lock`] if the file system cannot lock.
    pub fn lock(&self, id: &Id) -> Result<Option<Locked>, QueueError> {
        let eml = self.eml_path(id);
        let name = id.file_name("eml");
        let file = match files::open_owned_at(self.msg_fd(), &name, self.owner()) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(QueueError::NotFound(id.clone()));
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(QueueError::corrupt(&eml, e.to_string()));
            }
            Err(e) => return Err(QueueError::read(&eml, e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(source)) => {
                return Err(QueueError::Lock { path: eml, source });
            }
        }
        let held = file.metadata().map_err(|e| QueueError::read(&eml, e))?;
        match files::stat_at(self.msg_fd(), &name) {
            Ok(Some(now)) if now.st_dev == held.dev() && now.st_ino == held.ino() => {}
            // Completed (and perhaps the name reused) while we waited.
            _ => return Err(QueueError::NotFound(id.clone())),
        }
        if held.nlink() != 1 {
            // A hard link planted in the queue, or to a file that belongs
            // elsewhere.
            return Err(QueueError::corrupt(
                &eml,
                format!("has {} links, not 1", held.nlink()),
            ));
        }
        let meta = match meta::read(self, id) {
            Ok(m) => m,
            // Without metadata it is an orphan: see Queue::orphans.
            Err(meta::ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                return Err(QueueError::NotFound(id.clone()));
            }
            Err(meta::ReadError::Io(e)) => return Err(QueueError::read(self.env_path(id), e)),
            Err(meta::ReadError::Damaged(e)) => return Err(e),
        };
        Ok(Some(Locked::new(self.clone(), id.clone(), file, meta)))
    }

    /// Takes the queue-run lock without waiting: `Ok(None)` if another
    /// queue run holds it. `run.lock` is made 0600 in the queue's own
    /// directory, which nobody else can write: no one can remove it and
    /// hold a new one to stop the owner's runs.
    pub fn run_lock(&self) -> Result<Option<RunLock>, QueueError> {
        let path = self.dir().join("run.lock");
        let file = files::open_or_create_at(
            self.root_fd(),
            "run.lock",
            rustix::fs::OFlags::RDWR,
            FILE_MODE,
        )
        .map_err(|e| QueueError::write(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RunLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(QueueError::Lock { path, source }),
        }
    }

    /// Removes message `id` from the queue (`--queue-delete`), undelivered.
    /// Refuses with [`QueueError::Locked`] while another process delivers
    /// or spools it.
    pub fn remove(&self, id: &Id) -> Result<(), QueueError> {
        match self.lock(id)? {
            Some(locked) => locked.complete(),
            None => Err(QueueError::Locked(id.clone())),
        }
    }
}

impl Locked {
    pub(crate) fn new(queue: Queue, id: Id, file: File, meta: Meta) -> Locked {
        Locked {
            queue,
            id,
            _lock: file,
            meta,
        }
    }

    /// The message's ID.
    pub fn id(&self) -> &Id {
        &self.id
    }

    /// Its metadata as last read or saved.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Its size and 8-bit content, for MAIL FROM.
    pub fn info(&self) -> BodyInfo {
        self.meta.info()
    }

    /// The envelope for the recipients still pending.
    pub fn envelope(&self) -> Envelope {
        self.meta.envelope()
    }

    /// The recipients still pending.
    pub fn pending(&self) -> Vec<&str> {
        self.meta.pending().collect()
    }

    /// A fresh reader from the start of the message: exactly the bytes
    /// that were spooled.
    pub fn open(&self) -> Result<File, QueueError> {
        files::open_owned_at(
            self.queue.msg_fd(),
            &self.id.file_name("eml"),
            self.queue.owner(),
        )
        .map_err(|e| QueueError::read(self.queue.eml_path(&self.id), e))
    }

    /// Whether the message has been queued longer than `lifetime`
    /// ([`crate::queue::is_expired`]).
    pub fn is_expired(&self, lifetime: Duration, now: SystemTime) -> bool {
        retry::is_expired(self.meta.created, lifetime, now)
    }

    /// Records one transaction with the engine's result, and saves at once
    /// (the sooner an accepted recipient is marked done, the smaller the
    /// window in which a crash sends it again). `attempted` is the
    /// envelope's `to`; `refused` is what [`crate::smtp::Smtp::send`]
    /// returned, or the list inside [`crate::smtp::Error::RecipientsRefused`].
    ///
    /// Every attempted pending recipient not refused becomes done. A
    /// refused one keeps the reply and stays pending: a temporary refusal
    /// is retried; a permanent one is returned, for the caller to report
    /// (dead.letter, bounce) and then pass to [`Locked::fail_recipients`].
    pub fn record_sent(
        &mut self,
        attempted: &[String],
        refused: &Refused,
        now: SystemTime,
    ) -> Result<Vec<(String, Reply)>, QueueError> {
        let attempted: HashSet<&str> = attempted.iter().map(String::as_str).collect();
        let refused: HashMap<&str, &Reply> = refused.iter().map(|(a, r)| (a.as_str(), r)).collect();
        let mut permanent = Vec::new();
        for r in &mut self.meta.recipients {
            if r.state != RecipientState::Pending || !attempted.contains(r.address.as_str()) {
                continue;
            }
            match refused.get(r.address.as_str()) {
                None => {
                    r.state = RecipientState::Done;
                    r.reply = None;
                }
                Some(reply) => {
                    r.reply = Some(meta::clean_text(&reply.to_string()));
                    if reply.is_permanent() {
                        permanent.push((r.address.clone(), (*reply).clone()));
                    }
                }
            }
        }
        self.meta.last_attempt = Some(time::whole_seconds(now));
        self.save()?;
        Ok(permanent)
    }

    /// Marks pending recipients as failed for good, each with the reply or
    /// reason given, and saves. Report the failure (dead.letter, bounce)
    /// *before* calling this: a crash in between then reports twice rather
    /// than never. Addresses that are not pending are ignored.
    pub fn fail_recipients(&mut self, failed: &[(String, String)]) -> Result<(), QueueError> {
        let failed: HashMap<&str, &str> = failed
            .iter()
            .map(|(a, r)| (a.as_str(), r.as_str()))
            .collect();
        for r in &mut self.meta.recipients {
            if r.state != RecipientState::Pending {
                continue;
            }
            if let Some(reason) = failed.get(r.address.as_str()) {
                r.state = RecipientState::Failed;
                r.reply = Some(meta::clean_text(reason));
            }
        }
        self.save()
    }

    /// Records a temporary failure and saves: one more attempt, the error
    /// (the server's reply or the local reason), the host tried if any,
    /// and the next attempt by the retry schedule
    /// ([`crate::queue::BACKOFF`]). Returns when that is. Whether to give
    /// up instead is [`Locked::is_expired`].
    pub fn defer(
        &mut self,
        error: &str,
        host: Option<&str>,
        now: SystemTime,
    ) -> Result<SystemTime, QueueError> {
        let now = time::whole_seconds(now);
        let m = &mut self.meta;
        m.attempts = m.attempts.saturating_add(1);
        m.last_error = Some(meta::clean_text(error));
        m.last_attempt = Some(now);
        if let Some(h) = host {
            m.note_host(h);
        }
        m.next_attempt = retry::next_attempt(m.attempts, now);
        let next = m.next_attempt;
        self.save()?;
        self.queue.lower_hint(&self.meta.profile, next);
        Ok(next)
    }

    /// Records that the sender was sent the message's one delay notice,
    /// and saves.
    pub fn note_delay_notice(&mut self, now: SystemTime) -> Result<(), QueueError> {
        self.meta.delay_notice = Some(time::whole_seconds(now));
        self.save()
    }

    /// Takes the message out of the queue: delivered, given up on (after
    /// reporting), or deleted.
    ///
    /// The metadata goes first and that removal, synced, is the commit
    /// point: a crash after it leaves an orphan body (moved to `corrupt/`
    /// by [`Queue::quarantine`], never sent again); the other order could
    /// leave metadata without a body, an entry that can never be
    /// delivered. A failure to remove the body after the commit point is
    /// therefore not an error.
    pub fn complete(self) -> Result<(), QueueError> {
        let q = &self.queue;
        files::unlink_at(q.msg_fd(), &self.id.file_name("env"))
            .map_err(|e| QueueError::write(q.env_path(&self.id), e))?;
        files::sync_dir(q.msg_fd()).map_err(|e| QueueError::write(q.msg_dir(), e))?;
        let _ = files::unlink_at(q.msg_fd(), &self.id.file_name("eml"));
        let _ = files::sync_dir(q.msg_fd());
        Ok(())
    }

    /// Writes the metadata to `tmp/ID.env`, syncs it, renames it over
    /// `msg/ID.env` and syncs the directory.
    fn save(&mut self) -> Result<(), QueueError> {
        let q = &self.queue;
        meta::write_tmp(q, &self.id, &self.meta)?;
        let name = self.id.file_name("env");
        if let Err(e) = files::rename_at(q.tmp_fd(), &name, q.msg_fd(), &name) {
            let _ = files::unlink_at(q.tmp_fd(), &name);
            return Err(QueueError::write(q.env_path(&self.id), e));
        }
        files::sync_dir(q.msg_fd()).map_err(|e| QueueError::write(q.msg_dir(), e))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Barrier, Mutex};
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::exit::Sysexit;
    use crate::queue::spool::testing::*;

    fn reply(code: u16, text: &str) -> Reply {
        Reply::new(code, vec![text.into()])
    }

    /// Threads with their own `File`s, as separate processes would have:
    /// while every winner holds on, each message has exactly one.
    #[test]
    fn each_message_is_locked_by_exactly_one() {
        let (_d, q) = queue();
        let ids: Vec<Id> = (0..20).map(|_| spool(&q, b"x\n", &["a@b"])).collect();
        let won = Mutex::new(Vec::new());
        let all_tried = Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let mut held = Vec::new();
                    for id in &ids {
                        if let Some(l) = q.lock(id).unwrap() {
                            held.push(l);
                        }
                    }
                    won.lock()
                        .unwrap()
                        .extend(held.iter().map(|l| l.id().clone()));
                    all_tried.wait();
                    drop(held);
                });
            }
        });
        let mut won = won.into_inner().unwrap();
        won.sort();
        assert_eq!(won, ids);
    }

    /// Runners that lock, "deliver" and complete, racing over the same
    /// messages: each message is completed exactly once, and a runner that
    /// wins a lock on a file just completed by another sees NotFound.
    #[test]
    fn racing_runners_complete_each_message_once() {
        let (_d, q) = queue();
        let ids: Vec<Id> = (0..40).map(|_| spool(&q, b"x\n", &["a@b"])).collect();
        let done = Mutex::new(Vec::new());
        let start = Barrier::new(8);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (q, ids, done, start) = (&q, &ids, &done, &start);
                s.spawn(move || {
                    start.wait();
                    // Half the runners go backwards, to meet the others.
                    let order: Vec<&Id> = if t % 2 == 0 {
                        ids.iter().collect()
                    } else {
                        ids.iter().rev().collect()
                    };
                    for id in order {
                        match q.lock(id) {
                            Ok(Some(l)) => {
                                done.lock().unwrap().push(id.clone());
                                l.complete().unwrap();
                            }
                            Ok(None) => {}
                            Err(e) if e.is_not_found() => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
        });
        let mut done = done.into_inner().unwrap();
        done.sort();
        assert_eq!(done, ids);
        assert!(names(&q.msg_dir()).is_empty());
        assert!(q.orphans().unwrap().is_empty());
    }

    /// A lock taken with flock(1) by another process excludes us (so the
    /// lock is flock, as documented), and is gone once that process is
    /// killed with SIGKILL.
    #[test]
    fn lock_of_a_killed_process_is_released() {
        use std::process::{Command, Stdio};
        use std::time::Instant;
        let (_d, q) = queue();
        let id = spool(&q, b"x\n", &["a@b"]);
        // -o: the shell it runs does not inherit the lock; it waits on its
        // standard input, which ends when we drop it.
        let Ok(mut child) = Command::new("flock")
            .arg("-x")
            .arg("-o")
            .arg(q.eml_path(&id))
            .args(["-c", "read x"])
            .stdin(Stdio::piped())
            .spawn()
        else {
            eprintln!("no flock(1): skipped");
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match q.lock(&id).unwrap() {
                None => break,
                Some(l) => drop(l),
            }
            assert!(Instant::now() < deadline, "flock(1) never took the lock");
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(q.lock(&id).unwrap().is_some());
    }

    #[test]
    fn run_lock_is_exclusive() {
        let (_d, q) = queue();
        let first = q.run_lock().unwrap().expect("free");
        let m = std::fs::symlink_metadata(q.dir().join("run.lock")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
        assert!(q.run_lock().unwrap().is_none());
        // Another handle on the same directory, as another process.
        let q2 = Queue::open(q.dir()).unwrap();
        assert!(q2.run_lock().unwrap().is_none());
        drop(first);
        assert!(q2.run_lock().unwrap().is_some());
    }

    #[test]
    fn remove_refuses_a_locked_message() {
        let (_d, q) = queue();
        let id = spool(&q, b"x\n", &["a@b"]);
        let held = q.lock(&id).unwrap().unwrap();
        let e = q.remove(&id).unwrap_err();
        assert!(matches!(e, QueueError::Locked(_)), "{e}");
        assert_eq!(e.kind(), Sysexit::TempFail);
        assert!(q.eml_path(&id).exists() && q.env_path(&id).exists());
        drop(held);
        q.remove(&id).unwrap();
        assert!(names(&q.msg_dir()).is_empty());
        let e = q.remove(&id).unwrap_err();
        assert!(matches!(e, QueueError::NotFound(_)), "{e}");
        assert!(q.lock(&id).unwrap_err().is_not_found());
    }

    #[test]
    fn defer_counts_backs_off_and_persists() {
        let (_d, q) = queue();
        let id = spool(&q, b"x\n", &["a@b"]);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_795_462_200);
        let mut l = q.lock(&id).unwrap().unwrap();
        let next = l
            .defer("451 4.3.0 try\r\nlater", Some("smtp.example.org"), t0)
            .unwrap();
        assert_eq!(next, t0 + Duration::from_secs(30));
        let t1 = t0 + Duration::from_secs(61);
        let next = l
            .defer("timed out", Some("backup.example.org"), t1)
            .unwrap();
        assert_eq!(next, t1 + Duration::from_secs(60));
        drop(l);

        let l = q.lock(&id).unwrap().unwrap();
        let m = l.meta();
        assert_eq!(m.attempts, 2);
        assert_eq!(m.last_error.as_deref(), Some("timed out"));
        assert_eq!(m.last_attempt, Some(t1));
        assert_eq!(m.next_attempt, t1 + Duration::from_secs(60));
        assert_eq!(m.hosts_tried, ["smtp.example.org", "backup.example.org"]);
        drop(l);
        let text = std::fs::read_to_string(q.env_path(&id)).unwrap();
        assert!(
            text.contains("next_attempt = 2026-11-23T19:32:01Z"),
            "{text}"
        );
        assert!(names(&q.tmp_dir()).is_empty());
    }

    #[test]
    fn expiry_uses_creation_time() {
        let (_d, q) = queue();
        let id = spool(&q, b"x\n", &["a@b"]);
        let l = q.lock(&id).unwrap().unwrap();
        let created = l.meta().created;
        let life = Duration::from_secs(3600);
        assert!(!l.is_expired(life, created + Duration::from_secs(3599)));
        assert!(l.is_expired(life, created + life));
    }

    #[test]
    fn partial_delivery_is_recorded_per_recipient() {
        let (_d, q) = queue();
        let id = spool(&q, b"x\n", &["a@x", "b@x", "c@x", "d@x"]);
        let now = SystemTime::now();
        let mut l = q.lock(&id).unwrap().unwrap();
        let env = l.envelope();
        assert_eq!(env.to, ["a@x", "b@x", "c@x", "d@x"]);
        let refused = vec![
            ("b@x".to_string(), reply(450, "4.2.0 mailbox busy")),
            ("c@x".to_string(), reply(550, "5.1.1 no such user")),
        ];
        let permanent = l.record_sent(&env.to, &refused, now).unwrap();
        assert_eq!(permanent.len(), 1);
        assert_eq!(permanent[0].0, "c@x");
        assert_eq!(permanent[0].1.code(), 550);
        assert_eq!(l.pending(), ["b@x", "c@x"]);
        l.fail_recipients(&[("c@x".into(), permanent[0].1.to_string())])
            .unwrap();
        assert_eq!(l.pending(), ["b@x"]);
        drop(l);

        // All of it is on disk.
        let mut l = q.lock(&id).unwrap().unwrap();
        let states: Vec<(&str, RecipientState, Option<&str>)> = l
            .meta()
            .recipients
            .iter()
            .map(|r| (r.address.as_str(), r.state, r.reply.as_deref()))
            .collect();
        assert_eq!(
            states,
            [
                ("a@x", RecipientState::Done, None),
                (
                    "b@x",
                    RecipientState::Pending,
                    Some("450 4.2.0 mailbox busy")
                ),
                (
                    "c@x",
                    RecipientState::Failed,
                    Some("550 5.1.1 no such user")
                ),
                ("d@x", RecipientState::Done, None),
            ]
        );
        assert_eq!(q.list().unwrap()[0].recipients, ["b@x"]);
        // The retry goes to b@x only, and settles it.
        let env = l.envelope();
        assert_eq!(env.to, ["b@x"]);
        assert!(l.record_sent(&env.to, &vec![], now).unwrap().is_empty());
        assert!(l.pending().is_empty());
        l.complete().unwrap();
        assert!(q.list().unwrap().is_empty());
        assert!(names(&q.msg_dir()).is_empty());
    }

    #[test]
    fn lock_refuses_planted_links() {
        let (d, q) = queue();
        let id = spool(&q, b"x\n", &["a@b"]);
        let extra = d.path().join("extra-link");
        std::fs::hard_link(q.eml_path(&id), &extra).unwrap();
        let e = q.lock(&id).unwrap_err();
        assert!(e.to_string().contains("2 links"), "{e}");
        std::fs::remove_file(&extra).unwrap();
        assert!(q.lock(&id).unwrap().is_some());

        let secret = d.path().join("secret");
        std::fs::write(&secret, b"root's secret").unwrap();
        std::fs::remove_file(q.eml_path(&id)).unwrap();
        std::os::unix::fs::symlink(&secret, q.eml_path(&id)).unwrap();
        let e = q.lock(&id).unwrap_err();
        assert!(matches!(e, QueueError::Corrupt { .. }), "{e}");
    }
}
