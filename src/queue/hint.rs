//! "Is anything else due?" at constant cost, so that submitting a message
//! costs the same whether none or ten thousand are queued.
//!
//! After a successful first attempt the binary keeps the session open to
//! deliver older mail of the same profile, and pipelines QUIT with the
//! data only when there is none. Scanning the queue to find out would
//! make every submission cost as much as the backlog; instead each
//! profile has a hint file, `hint/p-HASH` (a hash of the profile name),
//! whose modification time is a lower bound on the next attempt of every
//! queued message of that profile. No file: nothing of that profile
//! waits. [`Queue::maybe_due`] is one `fstatat`.
//!
//! The bound is kept conservative where it matters:
//! - a deferral ([`crate::queue::Locked::defer`]) lowers it to the
//!   message's next attempt (under an `flock` on the hint file);
//! - only a run that has listed the whole queue may raise it (or remove
//!   it): [`HintBook`] collects the next attempts of everything the run
//!   leaves queued, and [`HintBook::commit`] writes their minimum, keeping
//!   whatever another process lowered meanwhile.
//!
//! What the hint can miss: a message whose first attempt never finished
//! (the spooler was killed) is due at once but lowers no hint, and so
//! waits for the next `smtpsend -q` instead of riding along with another
//! submission. Queue runs never use the hint: they list the queue.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{Timespec, Timestamps};
use sha2::{Digest, Sha256};

use super::error::QueueError;
use super::files;
use super::spool::{FILE_MODE, Queue, Sub};

/// The longest wait for another process's lock on a hint file; a hint
/// not updated in time is left as it was (conservative for lowering: the
/// message then waits for `-q`).
const HINT_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// The hint file of `profile`.
pub(crate) fn hint_name(profile: &str) -> String {
    let d = Sha256::digest(profile.as_bytes());
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("p-{hex}")
}

fn secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

fn set_mtime(f: &File, at: i64) -> io::Result<()> {
    let t = Timespec {
        tv_sec: at,
        tv_nsec: 0,
    };
    Ok(rustix::fs::futimens(
        f,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
    )?)
}

fn mtime(f: &File) -> io::Result<i64> {
    Ok(rustix::fs::fstat(f)?.st_mtime)
}

fn lock(f: &File) -> io::Result<()> {
    files::lock_with_timeout(f, HINT_LOCK_TIMEOUT)
}

/// The runs' collection of what stays queued; shared by the queue handle
/// a run works through, so deferrals record here instead of on disk.
#[derive(Debug, Default)]
pub(crate) struct BookInner {
    /// Hint file name → its mtime when the run began (`None`: absent).
    start: HashMap<String, Option<i64>>,
    /// Hint file name → the earliest next attempt left queued.
    kept: HashMap<String, i64>,
}

impl BookInner {
    fn keep(&mut self, profile: &str, next: SystemTime) {
        let e = self.kept.entry(hint_name(profile)).or_insert(i64::MAX);
        *e = (*e).min(secs(next));
    }
}

/// What a queue run leaves queued, per profile, to set the hints at its
/// end. Made by [`Queue::hint_book`] before the queue is listed.
#[derive(Debug)]
pub struct HintBook {
    queue: Queue,
    inner: Arc<Mutex<BookInner>>,
}

impl Queue {
    /// Whether a message of `profile` may be due at `now`: one `fstatat`
    /// of its hint file, whatever the size of the queue. `false` means
    /// nothing of that profile is due (but see the module docs for the
    /// one case a run can miss).
    pub fn maybe_due(&self, profile: &str, now: SystemTime) -> bool {
        match files::stat_at(self.fd(Sub::Hint), &hint_name(profile)) {
            Ok(Some(st)) => st.st_mtime <= secs(now),
            Ok(None) => false,
            // Cannot tell: say yes, and let the run find out.
            Err(_) => true,
        }
    }

    /// The earliest time any deferred message may be due, from the hints
    /// (one directory read and one `fstatat` per profile, however long
    /// the queue): what a retrier sleeps until. `None`: no deferred
    /// message waits. A lower bound, like every hint.
    pub fn earliest_due(&self) -> Option<SystemTime> {
        let dir = self.fd(Sub::Hint);
        files::names_at(dir)
            .ok()?
            .iter()
            .filter_map(|n| files::stat_at(dir, n).ok().flatten())
            .map(|st| UNIX_EPOCH + Duration::from_secs(u64::try_from(st.st_mtime).unwrap_or(0)))
            .min()
    }

    /// When a retrier should next look at this queue, at constant cost
    /// in the usual cases: the earliest hint ([`Queue::earliest_due`]);
    /// with no hint, `None` if `msg/` is empty (one block read), else the
    /// earliest next attempt of the listed queue (messages that wait with
    /// no hint: a first attempt that was killed, a hint lock that timed
    /// out). Like the hints, a lower bound, so a wake-up is never late
    /// for a deferred message; a message that lowered no hint while
    /// another profile's hint exists waits for that wake-up (at most the
    /// schedule's longest wait) instead of being found at once.
    pub fn next_wakeup(&self) -> Result<Option<SystemTime>, QueueError> {
        if let Some(t) = self.earliest_due() {
            return Ok(Some(t));
        }
        if self.is_empty()? {
            return Ok(None);
        }
        Ok(self.list()?.iter().map(|e| e.next_attempt).min())
    }

    /// Lowers `profile`'s hint to `next` (the next attempt of a message
    /// just deferred), or records it in the run's [`HintBook`]. Best
    /// effort: a hint left too high only means the message waits for
    /// `smtpsend -q`.
    pub(crate) fn lower_hint(&self, profile: &str, next: SystemTime) {
        if let Some(book) = &self.book {
            if let Ok(mut b) = book.lock() {
                b.keep(profile, next);
            }
            return;
        }
        let _ = self.lower_hint_file(&hint_name(profile), secs(next));
    }

    fn lower_hint_file(&self, name: &str, at: i64) -> io::Result<()> {
        let dir = self.fd(Sub::Hint);
        for _ in 0..4 {
            let f = match files::create_at(dir, name, FILE_MODE) {
                Ok(f) => {
                    // New: nothing to keep from before. (A reader that
                    // sees it between create and here says "due".)
                    return set_mtime(&f, at);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    files::open_owned_at(dir, name, self.owner())?
                }
                Err(e) => return Err(e),
            };
            lock(&f)?;
            if rustix::fs::fstat(&f)?.st_nlink == 0 {
                // Removed by a run's commit while we waited: start again.
                continue;
            }
            if mtime(&f)? > at {
                set_mtime(&f, at)?;
            }
            return Ok(());
        }
        Ok(())
    }

    /// Starts a [`HintBook`] for a run; returns it with the queue handle
    /// the run must work through (its deferrals are recorded in the book).
    /// Call it before listing the queue.
    pub fn hint_book(&self) -> (Queue, HintBook) {
        let mut inner = BookInner::default();
        let dir = self.fd(Sub::Hint);
        for name in files::names_at(dir).unwrap_or_default() {
            let m = files::stat_at(dir, &name)
                .ok()
                .flatten()
                .map(|s| s.st_mtime);
            inner.start.insert(name, m);
        }
        let inner = Arc::new(Mutex::new(inner));
        let mut q = self.clone();
        q.book = Some(inner.clone());
        (
            q,
            HintBook {
                queue: self.clone(),
                inner,
            },
        )
    }
}

impl HintBook {
    /// Records that a message of `profile`, next due at `next`, stays
    /// queued (skipped, not due yet, left for later).
    pub fn keep(&self, profile: &str, next: SystemTime) {
        if let Ok(mut b) = self.inner.lock() {
            b.keep(profile, next);
        }
    }

    /// Sets every profile's hint to the earliest next attempt the run left
    /// queued (removing the hints of profiles with nothing left), keeping
    /// any lower value another process wrote since the book was started.
    pub fn commit(self) -> Result<(), QueueError> {
        let inner = match self.inner.lock() {
            Ok(mut b) => std::mem::take(&mut *b),
            Err(_) => return Ok(()),
        };
        let q = &self.queue;
        let dir = q.fd(Sub::Hint);
        let err = |e| QueueError::write(q.sub_path(Sub::Hint), e);
        let mut names: Vec<&String> = inner.start.keys().chain(inner.kept.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let kept = inner.kept.get(name).copied();
            let f = match files::open_owned_at(dir, name, q.owner()) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if let Some(at) = kept {
                        q.lower_hint_file(name, at).map_err(err)?;
                    }
                    continue;
                }
                Err(e) => return Err(err(e)),
            };
            lock(&f).map_err(err)?;
            let now = mtime(&f).map_err(err)?;
            let lowered_meanwhile = inner.start.get(name).copied().flatten() != Some(now);
            let want = match (kept, lowered_meanwhile) {
                (Some(k), true) => Some(k.min(now)),
                (Some(k), false) => Some(k),
                (None, true) => Some(now),
                (None, false) => None,
            };
            match want {
                Some(at) => set_mtime(&f, at).map_err(err)?,
                None => files::unlink_at(dir, name).map_err(err)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::spool::testing::*;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_462_200 + s)
    }

    #[test]
    fn a_deferral_makes_its_profile_due_at_its_next_attempt() {
        let (_d, q) = queue();
        assert!(!q.maybe_due("default", t(0)));
        assert_eq!(q.earliest_due(), None);
        let id = spool(&q, b"x\n", &["a@b"]);
        // Spooling alone sets no hint: the spooler is trying it.
        assert!(!q.maybe_due("default", t(0)));
        let next = q
            .lock(&id)
            .unwrap()
            .unwrap()
            .defer("451 later", None, t(0))
            .unwrap();
        assert_eq!(next, t(30));
        assert!(!q.maybe_due("default", t(29)));
        assert!(q.maybe_due("default", t(30)));
        assert!(!q.maybe_due("other", t(30)));
        assert_eq!(q.earliest_due(), Some(t(30)));
        // Lowering only lowers.
        q.lower_hint("default", t(600));
        assert!(q.maybe_due("default", t(30)));
        q.lower_hint("default", t(10));
        assert!(q.maybe_due("default", t(10)));
    }

    #[test]
    fn next_wakeup_comes_from_the_hints_else_from_the_listing() {
        let (_d, q) = queue();
        assert_eq!(q.next_wakeup().unwrap(), None);
        // Spooled, never attempted: no hint, so the listing says when.
        let id = spool(&q, b"x\n", &["a@b"]);
        let listed = q.list().unwrap()[0].next_attempt;
        assert_eq!(q.earliest_due(), None);
        assert_eq!(q.next_wakeup().unwrap(), Some(listed));
        // Deferred: its hint answers, not the listing (a hint lowered
        // below the entry's own time shows which was read).
        q.lock(&id)
            .unwrap()
            .unwrap()
            .defer("451 later", None, t(0))
            .unwrap();
        assert_eq!(q.next_wakeup().unwrap(), Some(t(30)));
        q.lower_hint("default", t(5));
        assert_eq!(q.next_wakeup().unwrap(), Some(t(5)));
        assert_eq!(q.list().unwrap()[0].next_attempt, t(30));
        // Gone, and its hint with it after a run: nothing to wait for.
        q.remove(&id).unwrap();
        let (_runq, book) = q.hint_book();
        book.commit().unwrap();
        assert_eq!(q.next_wakeup().unwrap(), None);
    }

    #[test]
    fn a_run_raises_or_removes_hints_and_keeps_others_lowering() {
        let (_d, q) = queue();
        q.lower_hint("a", t(0));
        q.lower_hint("b", t(0));
        let (runq, book) = q.hint_book();
        // The run delivered everything of "a", left "b" until t(300).
        book.keep("b", t(300));
        // A deferral through the run's handle goes into the book.
        runq.lower_hint("b", t(200));
        assert!(q.maybe_due("b", t(0)), "not on disk before commit");
        // Meanwhile another process deferred a message of "c".
        q.lower_hint("c", t(50));
        book.commit().unwrap();
        assert!(!q.maybe_due("a", t(10_000)));
        assert!(!q.maybe_due("b", t(199)));
        assert!(q.maybe_due("b", t(200)));
        assert!(q.maybe_due("c", t(50)));
        assert_eq!(names(&q.sub_path(Sub::Hint)).len(), 2);

        // Another process lowers "b" during a run that saw nothing of "b".
        let (_runq, book) = q.hint_book();
        q.lower_hint("b", t(100));
        book.commit().unwrap();
        assert!(q.maybe_due("b", t(100)));
    }
}
