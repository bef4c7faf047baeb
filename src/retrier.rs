//! The detached retrier: what drains a queue where no timer does (a
//! `cargo install` on a laptop) and between timer runs.
//!
//! When a submission leaves a message queued, the submitting process calls
//! [`spawn`] (unless [`disabled`]) and exits at once. The child,
//! `smtpsend --queue-retrier` with the same configuration flags, first
//! calls [`detach`]: a new session (no controlling terminal, out of the
//! caller's process group, so cron, PHP and sudo neither wait for it nor
//! signal it), every inherited descriptor closed (standard input, output
//! and error were already `/dev/null`), working directory `/`. Then
//! [`run`]: it takes its uid's [`RetrierLock`] (another retrier holding it
//! means there is nothing to do: exit), sleeps until the earliest entry is
//! due by the queue's own retry schedule (read from the queue's due hints,
//! `Queue::next_wakeup`, so a wake-up costs the same however long the
//! queue), runs the queue once (the normal
//! `-q` path, which takes the run lock for the time it works), and
//! repeats; it exits when the queue is empty, or at [`MAX_LIFETIME`].
//!
//! It holds the retrier lock, not the queue's run lock, while it sleeps:
//! a `smtpsend -q` from a timer, a flush from the network hook or the
//! user's own `--queue-flush` are never blocked by a sleeping retrier.
//!
//! # What can end it early
//!
//! A service manager that kills a unit's whole control group when the unit
//! stops (systemd with `KillMode=control-group`, PHP-FPM's pool reload)
//! kills the retrier too: a new session does not leave a cgroup. Nothing
//! is lost: the message is on disk, and the package's timer
//! (`smtpsend-queue.timer`, or `/etc/cron.d/smtpsend`) runs the queue for
//! every user within 30-60 s. The retrier is the fast path, the timer the
//! guarantee.
//!
//! # Switching it off
//!
//! `retrier = false` in the profile, or `SMTPSEND_NO_RETRIER=1` in the
//! environment (tests; sites that run only the timer).

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

/// The hidden flag that makes a process the retrier.
pub const FLAG: &str = "--queue-retrier";

/// The environment variable that switches the retrier off ("1", "true",
/// "yes"; anything else leaves it on).
pub const DISABLE_ENV: &str = "SMTPSEND_NO_RETRIER";

/// The retrier's lock file, in the uid's queue directory.
pub const LOCK_FILE: &str = "retrier.lock";

/// The longest a retrier lives. By then the schedule has widened to
/// hourly retries, which the timer (or the next submission) covers.
pub const MAX_LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// The shortest sleep between two queue runs, so that an entry that stays
/// due (its run lock held by a long run elsewhere) never makes a busy loop.
pub const MIN_SLEEP: Duration = Duration::from_secs(5);

/// Whether the retrier is switched off, by the profile's `retrier` key
/// (`Some(false)`) or by [`DISABLE_ENV`] in `env`.
pub fn disabled(profile_retrier: Option<bool>, env: Option<OsString>) -> bool {
    let by_env = env.is_some_and(|v| {
        matches!(
            v.to_string_lossy().trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes"
        )
    });
    by_env || profile_retrier == Some(false)
}

/// Starts `exe ARGS --queue-retrier` detached from this process: standard
/// input, output and error on `/dev/null`, the environment kept (the
/// configuration and `SMTPSEND_PASSWORD` travel there, never in argv).
/// Descriptors std opened are close-on-exec; those a caller left open
/// without it are closed by the child's [`detach`]. Does not wait.
pub fn spawn(exe: &Path, args: &[OsString]) -> io::Result<Child> {
    spawn_named(exe, exe.as_os_str(), args)
}

/// [`spawn`] with `argv0` as the child's name (`sendmail`, `smtpsend`):
/// the name decides which argv rules apply, and the retrier is given the
/// submission's own argv under the submission's own name.
pub fn spawn_named(exe: &Path, argv0: &OsStr, args: &[OsString]) -> io::Result<Child> {
    Command::new(exe)
        .arg0(argv0)
        .args(args)
        .arg(FLAG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .spawn()
}

/// Called first thing in the retrier: a new session, and every descriptor
/// above standard error closed (a pipe or socket inherited from the
/// submitter's caller would otherwise keep that caller waiting for EOF).
pub fn detach() -> io::Result<()> {
    // Fails only if we already lead a process group, which a child
    // started by spawn() does not.
    rustix::process::setsid().map_err(io::Error::from)?;
    for fd in inherited_fds()? {
        // EBADF: the descriptor of the directory listing, already closed.
        let _ = nix::unistd::close(fd);
    }
    Ok(())
}

/// The descriptors above 2 this process has open, from /proc/self/fd.
fn inherited_fds() -> io::Result<Vec<i32>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(n) = entry?.file_name().to_str().and_then(|s| s.parse().ok())
            && n > 2
        {
            fds.push(n);
        }
    }
    Ok(fds)
}

/// One retrier per uid: an exclusive flock on `QUEUE_DIR/retrier.lock`,
/// held for the retrier's life and released by the kernel when it exits,
/// however it exits.
#[derive(Debug)]
pub struct RetrierLock {
    _file: File,
    path: PathBuf,
}

impl RetrierLock {
    /// Takes the lock: `Ok(None)` if another retrier holds it.
    pub fn try_take(queue_dir: &Path) -> io::Result<Option<RetrierLock>> {
        let path = queue_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RetrierLock { _file: file, path })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a retrier is running for this queue (for the submitter,
    /// which then does not start another).
    pub fn is_held(queue_dir: &Path) -> io::Result<bool> {
        Ok(RetrierLock::try_take(queue_dir)?.is_none())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What the retrier needs from the queue; the binary implements it with
/// the queue runner, tests with a script.
pub trait Queue {
    /// When the earliest queued entry is next due; `None` when the queue
    /// is empty.
    fn next_due(&mut self) -> io::Result<Option<SystemTime>>;
    /// One queue run (`smtpsend -q`): sends what is due.
    fn run_once(&mut self) -> io::Result<()>;
}

/// The passage of time, so that tests need not sleep.
pub trait Clock {
    fn now(&mut self) -> SystemTime;
    fn sleep(&mut self, d: Duration);
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&mut self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Another retrier holds the lock.
    AlreadyRunning,
    /// Nothing is queued any more.
    Empty,
    /// The next entry is due after [`MAX_LIFETIME`] from the start; the
    /// timer or the next submission takes over.
    Lifetime,
}

/// The retrier's loop (see the module documentation). Errors reading the
/// queue end it (the timer covers what it leaves); a failed run does not.
pub fn run(
    queue_dir: &Path,
    queue: &mut dyn Queue,
    clock: &mut dyn Clock,
    lifetime: Duration,
) -> io::Result<Exit> {
    let Some(_lock) = RetrierLock::try_take(queue_dir)? else {
        return Ok(Exit::AlreadyRunning);
    };
    let start = clock.now();
    let end = start.checked_add(lifetime).unwrap_or(start);
    loop {
        let Some(due) = queue.next_due()? else {
            return Ok(Exit::Empty);
        };
        let now = clock.now();
        let wake = due.max(now + MIN_SLEEP);
        if wake > end {
            return Ok(Exit::Lifetime);
        }
        clock.sleep(wake.duration_since(now).unwrap_or(Duration::ZERO));
        // A failed run (relay down, lock busy) leaves the entries queued
        // with their next attempt moved on: the loop reads it again.
        let _ = queue.run_once();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A fake clock that records sleeps.
    struct Fake {
        now: SystemTime,
        slept: Vec<Duration>,
    }
    impl Clock for Fake {
        fn now(&mut self) -> SystemTime {
            self.now
        }
        fn sleep(&mut self, d: Duration) {
            self.slept.push(d);
            self.now += d;
        }
    }

    /// A queue with one entry that fails `fails` times on the backoff
    /// 30 s, 1, 2, 5 min, then is sent.
    struct Script {
        due: Option<SystemTime>,
        fails: usize,
        runs: Vec<SystemTime>,
        clock_now: std::rc::Rc<std::cell::Cell<SystemTime>>,
    }
    const BACKOFF: [u64; 4] = [30, 60, 120, 300];
    impl Queue for Script {
        fn next_due(&mut self) -> io::Result<Option<SystemTime>> {
            Ok(self.due)
        }
        fn run_once(&mut self) -> io::Result<()> {
            let now = self.clock_now.get();
            self.runs.push(now);
            if self.runs.len() > self.fails {
                self.due = None;
                return Ok(());
            }
            let step = BACKOFF[(self.runs.len() - 1).min(BACKOFF.len() - 1)];
            self.due = Some(now + Duration::from_secs(step));
            Err(io::Error::other("451 relay down"))
        }
    }

    struct Linked<'a> {
        inner: &'a mut Fake,
        cell: std::rc::Rc<std::cell::Cell<SystemTime>>,
    }
    impl Clock for Linked<'_> {
        fn now(&mut self) -> SystemTime {
            self.inner.now()
        }
        fn sleep(&mut self, d: Duration) {
            self.inner.sleep(d);
            self.cell.set(self.inner.now);
        }
    }

    fn setup(fails: usize, first_due_in: u64) -> (tempfile::TempDir, Fake, Script) {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cell = std::rc::Rc::new(std::cell::Cell::new(t0));
        (
            tempfile::tempdir().unwrap(),
            Fake {
                now: t0,
                slept: Vec::new(),
            },
            Script {
                due: Some(t0 + Duration::from_secs(first_due_in)),
                fails,
                runs: Vec::new(),
                clock_now: cell,
            },
        )
    }

    #[test]
    fn follows_the_queue_schedule_and_exits_when_empty() {
        let (dir, mut fake, mut q) = setup(3, 30);
        let cell = q.clock_now.clone();
        let mut clock = Linked {
            inner: &mut fake,
            cell,
        };
        let exit = run(dir.path(), &mut q, &mut clock, MAX_LIFETIME).unwrap();
        assert_eq!(exit, Exit::Empty);
        let secs: Vec<u64> = fake.slept.iter().map(Duration::as_secs).collect();
        // First retry 30 s after queuing, then the schedule's 30 s, 1, 2 min.
        assert_eq!(secs, [30, 30, 60, 120]);
        assert_eq!(q.runs.len(), 4);
    }

    #[test]
    fn never_spins_on_an_entry_that_stays_due_and_ends_at_its_lifetime() {
        struct AlwaysDue(usize);
        impl Queue for AlwaysDue {
            fn next_due(&mut self) -> io::Result<Option<SystemTime>> {
                Ok(Some(SystemTime::UNIX_EPOCH))
            }
            fn run_once(&mut self) -> io::Result<()> {
                self.0 += 1;
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Fake {
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            slept: Vec::new(),
        };
        let mut q = AlwaysDue(0);
        let exit = run(dir.path(), &mut q, &mut fake, Duration::from_secs(60)).unwrap();
        assert_eq!(exit, Exit::Lifetime);
        // 60 s of life at one run per MIN_SLEEP: 12 runs, not thousands.
        assert_eq!(q.0, 12);
        assert!(fake.slept.iter().all(|d| *d == MIN_SLEEP));
    }

    #[test]
    fn one_retrier_per_queue() {
        let dir = tempfile::tempdir().unwrap();
        let held = RetrierLock::try_take(dir.path()).unwrap().unwrap();
        assert!(RetrierLock::is_held(dir.path()).unwrap());
        let (_, mut fake, mut q) = setup(0, 30);
        let exit = run(dir.path(), &mut q, &mut fake, MAX_LIFETIME).unwrap();
        assert_eq!(exit, Exit::AlreadyRunning);
        assert!(q.runs.is_empty());
        drop(held);
        assert!(!RetrierLock::is_held(dir.path()).unwrap());
        // A symlink planted as the lock file is not followed.
        let dir2 = tempfile::tempdir().unwrap();
        let target = dir2.path().join("victim");
        std::os::unix::fs::symlink(&target, dir2.path().join(LOCK_FILE)).unwrap();
        assert!(RetrierLock::try_take(dir2.path()).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn switched_off_by_the_profile_or_the_environment() {
        assert!(!disabled(None, None));
        assert!(!disabled(Some(true), None));
        assert!(disabled(Some(false), None));
        for v in ["1", "true", "YES", " 1 "] {
            assert!(disabled(None, Some(v.into())), "{v}");
        }
        for v in ["0", "", "no"] {
            assert!(!disabled(Some(true), Some(v.into())), "{v}");
        }
    }

    /// The spawned child has /dev/null on 0-2 and no copy of a pipe this
    /// process holds (std's descriptors are close-on-exec): python3
    /// stands in for the retrier and lists what it has open.
    #[test]
    fn a_spawned_child_has_dev_null_and_no_pipe_of_its_caller() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("fds");
        let script = "import os,sys\n\
            fds = {}\n\
            for fd in os.listdir('/proc/self/fd'):\n\
            \x20   try: fds[fd] = os.readlink('/proc/self/fd/' + fd)\n\
            \x20   except OSError: pass\n\
            open(sys.argv[1], 'w').write(repr(fds))\n";
        let Ok(mut child) = spawn(
            Path::new("python3"),
            &["-c".into(), script.into(), out.clone().into_os_string()],
        ) else {
            eprintln!("skipped: no python3");
            return;
        };
        use std::os::fd::AsRawFd;
        let ours = std::fs::read_link(format!("/proc/self/fd/{}", writer.as_raw_fd())).unwrap();
        drop(writer);
        assert!(child.wait().unwrap().success());
        let mut buf = Vec::new();
        reader.read_to_end(&mut buf).unwrap(); // EOF: no copy of the writer survived
        let fds = std::fs::read_to_string(&out).unwrap();
        for fd in 0..3 {
            assert!(fds.contains(&format!("'{fd}': '/dev/null'")), "{fds}");
        }
        // Descriptors this test's own caller (cargo) left inheritable may
        // be there: that is what detach() is for, tested below.
        assert!(!fds.contains(&*ours.to_string_lossy()), "{fds}");
    }

    const CHILD_ENV: &str = "SMTPSEND_TEST_DETACH_CHILD";

    /// Run as a child by the test below: detaches, writes what it has open
    /// and its session to the file named in the environment, and exits.
    /// Run in the normal way, it does nothing.
    #[test]
    fn detach_child() {
        let Some(out) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let result = detach().map(|()| {
            let fds = inherited_fds().unwrap_or_default();
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
            // Fields after the command: state ppid pgrp session ...
            let rest = stat.rsplit_once(") ").map(|r| r.1).unwrap_or("");
            let session = rest.split(' ').nth(3).unwrap_or("").to_owned();
            format!("fds={fds:?} session={session} pid={}", std::process::id())
        });
        let _ = std::fs::write(&out, format!("{result:?}"));
        std::process::exit(0);
    }

    /// A descriptor the caller left open without close-on-exec (a CGI
    /// pipe, an FPM socket) is closed by detach(), and the retrier leads
    /// its own session.
    #[test]
    fn detach_closes_what_the_caller_left_open_and_leaves_the_session() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        // As a careless caller would pass it: inheritable.
        rustix::io::fcntl_setfd(&writer, rustix::io::FdFlags::empty()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("child");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "retrier::tests::detach_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        drop(writer);
        child.wait().unwrap();
        let mut buf = Vec::new();
        reader.read_to_end(&mut buf).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with("Ok("), "{text}");
        // Only the listing's own descriptor may be left (it is opened after
        // the close): the inherited pipe is gone.
        let fds = text
            .split("fds=[")
            .nth(1)
            .unwrap()
            .split(']')
            .next()
            .unwrap();
        assert!(
            fds.split(", ").filter(|s| !s.is_empty()).count() <= 1,
            "{text}"
        );
        let session = text
            .split("session=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        let pid = text
            .split("pid=")
            .nth(1)
            .unwrap()
            .trim_end_matches(['"', ')']);
        assert_eq!(session, pid, "{text}");
    }

    #[test]
    fn inherited_fds_lists_what_is_open() {
        let f = File::open("/dev/null").unwrap();
        use std::os::fd::AsRawFd;
        let fds = inherited_fds().unwrap();
        assert!(fds.contains(&f.as_raw_fd()));
        assert!(fds.iter().all(|fd| *fd > 2));
    }
}
