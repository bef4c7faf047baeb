//! When to try again, when to give up, and what is due now.
//!
//! After a temporary failure a message waits 30 seconds, then 1, 2 and 5
//! minutes, then 15 minutes, then an hour, and hourly after that
//! ([`BACKOFF`], then [`RETRY_INTERVAL`]): the first retries come soon, so
//! a message queued while the relay blinked (a restart, a laptop between
//! networks) leaves within about a minute of the relay coming back; the
//! wider ones keep a long outage from turning into a flood of
//! connections. A message older than its profile's `queue_lifetime`
//! ([`crate::config::DEFAULT_QUEUE_LIFETIME`], five days, unless
//! configured) is expired: the runner makes the attempt that is due, and
//! gives up if that fails too.
//!
//! A queue run is not a daemon: these times say when a message becomes
//! due, and it is sent by the first `-q` run after that (from cron or a
//! systemd timer).

use std::time::{Duration, SystemTime};

use super::error::QueueError;
use super::id::Id;
use super::meta;
use super::spool::{Queue, Sub};

/// The waits after the 1st to 6th failed attempts.
pub const BACKOFF: [Duration; 6] = [
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(2 * 60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(3600),
];

/// The wait after every later failed attempt.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(3600);

/// The wait after `attempts` failed attempts (none after none).
pub fn delay(attempts: u32) -> Duration {
    match attempts {
        0 => Duration::ZERO,
        n => BACKOFF
            .get(n as usize - 1)
            .copied()
            .unwrap_or(RETRY_INTERVAL),
    }
}

/// The longest wait [`delay`] ever gives.
fn longest_delay() -> Duration {
    BACKOFF.into_iter().fold(RETRY_INTERVAL, Duration::max)
}

/// When to try next, `attempts` failed attempts in, the last at `last`.
pub fn next_attempt(attempts: u32, last: SystemTime) -> SystemTime {
    last.checked_add(delay(attempts)).unwrap_or(last)
}

/// Whether a message spooled at `created` has outlived `lifetime` at
/// `now`. A `created` in the future (the clock was set back) is not
/// expired.
pub fn is_expired(created: SystemTime, lifetime: Duration, now: SystemTime) -> bool {
    now.duration_since(created).is_ok_and(|age| age >= lifetime)
}

/// One queued message, as `mailq` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its queue ID.
    pub id: Id,
    /// When it was spooled.
    pub created: SystemTime,
    /// Its size on the wire in bytes (as SIZE= announces it).
    pub size: u64,
    /// The envelope sender; empty for `<>`.
    pub sender: String,
    /// The recipients still pending (empty: only the final bookkeeping
    /// is left, after a crash).
    pub recipients: Vec<String>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Not to be tried before this.
    pub next_attempt: SystemTime,
    /// The profile to deliver it with.
    pub profile: String,
}

impl Entry {
    /// Whether its next attempt is due at `now` (see [`Queue::due`]).
    pub fn is_due(&self, now: SystemTime) -> bool {
        let horizon = now.checked_add(longest_delay()).unwrap_or(now);
        self.next_attempt <= now || self.next_attempt > horizon
    }
}

impl Queue {
    /// Every queued message, oldest first (`mailq`, `-bp`; and a flush,
    /// `-qf`, which treats every message as due). Entries whose files are
    /// damaged or half there are left out: [`Queue::orphans`] reports
    /// them. Reads no locks, so it never gets in a delivery's way; an
    /// entry may be delivered by the time it is shown.
    pub fn list(&self) -> Result<Vec<Entry>, QueueError> {
        let mut out = Vec::new();
        for (id, present) in self.scan(Sub::Msg)? {
            if !(present.eml && present.env) {
                continue;
            }
            let Ok(m) = meta::read(self, &id) else {
                continue;
            };
            out.push(Entry {
                recipients: m.pending().map(str::to_owned).collect(),
                id,
                created: m.created,
                size: m.size,
                sender: m.sender,
                attempts: m.attempts,
                last_error: m.last_error,
                next_attempt: m.next_attempt,
                profile: m.profile,
            });
        }
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }

    /// The messages whose next attempt is due at `now`, oldest first. A
    /// next attempt further ahead than the longest wait of the schedule
    /// can only come from a clock that was set back: such a message is
    /// due, rather than stuck until the clock catches up.
    pub fn due(&self, now: SystemTime) -> Result<Vec<Entry>, QueueError> {
        let mut all = self.list()?;
        all.retain(|e| e.is_due(now));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::spool::testing::*;
    use std::time::UNIX_EPOCH;

    const MIN: u64 = 60;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_462_200 + secs)
    }

    #[test]
    fn schedule() {
        let got: Vec<u64> = (0..10).map(|n| delay(n).as_secs()).collect();
        assert_eq!(
            got,
            [
                0,
                30,
                MIN,
                2 * MIN,
                5 * MIN,
                15 * MIN,
                60 * MIN,
                60 * MIN,
                60 * MIN,
                60 * MIN
            ]
        );
        assert_eq!(delay(u32::MAX), RETRY_INTERVAL);
        assert_eq!(next_attempt(1, t(0)), t(30));
        assert_eq!(next_attempt(5, t(100)), t(100 + 15 * MIN));
        assert_eq!(next_attempt(0, t(7)), t(7));
    }

    #[test]
    fn expiry() {
        let life = Duration::from_secs(5 * 24 * 3600);
        assert!(!is_expired(t(0), life, t(0)));
        assert!(!is_expired(t(0), life, t(life.as_secs() - 1)));
        assert!(is_expired(t(0), life, t(life.as_secs())));
        // Clock set back: not expired.
        assert!(!is_expired(t(1000), life, t(0)));
    }

    /// How many attempts fit in five days with one run a minute.
    #[test]
    fn attempts_in_a_lifetime() {
        let life = Duration::from_secs(5 * 24 * 3600);
        let created = t(0);
        let mut now = created;
        let mut attempts = 0;
        while !is_expired(created, life, now) {
            attempts += 1;
            now = next_attempt(attempts, now);
        }
        // 30 s + 1 + 2 + 5 + 15 + 60 minutes (5010 s), then hourly:
        // 6 + (432000 - 5010) / 3600 + 1.
        assert_eq!(attempts, 6 + (5 * 24 * 3600 - 5010) / 3600 + 1);
        assert_eq!(attempts, 125);
    }

    #[test]
    fn list_shows_every_field_oldest_first() {
        let (_d, q) = queue();
        let a = spool(&q, b"first\n", &["a@x"]);
        let b = spool(&q, b"second message\n", &["b@x", "c@x"]);
        let c = spool(&q, b"third\n", &["d@x"]);
        let now = SystemTime::now();
        let mut l = q.lock(&b).unwrap().unwrap();
        let next = l.defer("451 later", Some("relay"), now).unwrap();
        drop(l);

        let all = q.list().unwrap();
        let ids: Vec<&Id> = all.iter().map(|e| &e.id).collect();
        assert_eq!(ids, [&a, &b, &c]);
        let e = &all[1];
        assert_eq!(e.size, 16);
        assert_eq!(e.sender, "me@example.org");
        assert_eq!(e.recipients, ["b@x", "c@x"]);
        assert_eq!(e.attempts, 1);
        assert_eq!(e.last_error.as_deref(), Some("451 later"));
        assert_eq!(e.next_attempt, next);
        assert_eq!(e.profile, "default");
        assert!(e.created <= now);
        assert_eq!(all[0].attempts, 0);
        assert!(all[0].last_error.is_none());

        // Due now: the two never tried; the deferred one after its wait.
        let due: Vec<Id> = q.due(now).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(due, [a.clone(), c.clone()]);
        let due: Vec<Id> = q.due(next).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(due, [a.clone(), b.clone(), c.clone()]);
    }

    /// The order is by creation time first: an entry whose metadata says it
    /// is older comes first whatever its ID.
    #[test]
    fn order_follows_created() {
        let (_d, q) = queue();
        let a = spool(&q, b"x\n", &["a@x"]);
        let b = spool(&q, b"x\n", &["a@x"]);
        let path = q.env_path(&b);
        let text = std::fs::read_to_string(&path).unwrap();
        let created = text.lines().find(|l| l.starts_with("created = ")).unwrap();
        let edited = text.replace(created, "created = 2000-01-01T00:00:00Z");
        std::fs::write(&path, edited).unwrap();
        let ids: Vec<Id> = q.list().unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, [b, a]);
    }

    #[test]
    fn clock_set_back_does_not_strand_messages() {
        let (_d, q) = queue();
        let id = spool(&q, b"x\n", &["a@x"]);
        let now = SystemTime::now();
        let mut l = q.lock(&id).unwrap().unwrap();
        // Deferred "tomorrow", then the clock went back a day.
        let tomorrow = now + Duration::from_secs(24 * 3600);
        for _ in 0..5 {
            l.defer("451 later", None, tomorrow).unwrap();
        }
        drop(l);
        assert_eq!(q.due(now).unwrap().len(), 1);
        // Within the schedule's longest wait it is honoured.
        let mut l = q.lock(&id).unwrap().unwrap();
        l.defer("451 later", None, now).unwrap();
        drop(l);
        assert!(q.due(now).unwrap().is_empty());
        assert_eq!(longest_delay(), Duration::from_secs(3600));
    }

    #[test]
    fn empty_queue() {
        let (_d, q) = queue();
        assert!(q.list().unwrap().is_empty());
        assert!(q.due(SystemTime::now()).unwrap().is_empty());
    }
}
