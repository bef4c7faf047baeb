//! The glue between a submission, the queue and the detached retrier
//! (src/retrier.rs): starting one when a message stays queued, and the
//! `--queue-retrier` mode it runs in.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use super::{Failure, Report, Sessions, Settings, queued};
use crate::config::{Config, Overrides, Profile};
use crate::exit::Sysexit;
use crate::queue::{self, Queue};
use crate::retrier::{self, RetrierLock};

/// After a submission left its message queued: starts a retrier unless
/// one runs for this uid or it is switched off. Never fails the
/// submission: the timer (or the next send) covers a retrier that could
/// not start.
pub fn after_queueing(profile: &Profile) {
    if retrier::disabled(
        Some(profile.retrier),
        std::env::var_os(retrier::DISABLE_ENV),
    ) {
        return;
    }
    let Ok(chosen) = queue::choose_dir(profile.queue_dir.as_deref()) else {
        return;
    };
    if RetrierLock::is_held(chosen.queue.dir()).unwrap_or(true) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // The submission's own argv (configuration, profile, relay flags; never
    // a secret: those travel in the environment), under its own name so
    // that the same argv rules apply.
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_else(|| OsString::from("smtpsend"));
    let args: Vec<OsString> = argv.collect();
    // The child is not waited for: it outlives us in its own session.
    let _ = retrier::spawn_named(&exe, &argv0, &args);
}

/// `--queue-retrier`: detach, then retry this uid's queue on its own
/// schedule until it is empty or the retrier's lifetime ends.
pub fn run_retrier(
    settings: &Settings,
    config: Option<&Config>,
    sessions: &mut Sessions,
) -> Result<Report, Failure> {
    let fail = |what: &str, e: io::Error| {
        Failure::new(Sysexit::TempFail, format!("queue retrier: {what}: {e}"))
    };
    retrier::detach().map_err(|e| fail("cannot detach", e))?;
    // The queue directory the submission chose (its lock is looked for
    // there), then every queue this uid has.
    let configured = config
        .and_then(|c| c.select(settings.profile.as_deref(), None).ok())
        .and_then(|p| p.queue_dir);
    let dir = queue::choose_dir(configured.as_deref())?
        .queue
        .dir()
        .to_owned();
    let mut q = AppQueue {
        dirs: queued::queue_dirs(config),
        config,
        overrides: &settings.overrides,
        sessions,
    };
    retrier::run(
        &dir,
        &mut q,
        &mut retrier::SystemClock,
        retrier::MAX_LIFETIME,
    )
    .map_err(|e| fail("reading the queue", e))?;
    Ok(Report::default())
}

struct AppQueue<'a, 'b> {
    dirs: Vec<PathBuf>,
    config: Option<&'a Config>,
    overrides: &'a Overrides,
    sessions: &'b mut Sessions,
}

impl retrier::Queue for AppQueue<'_, '_> {
    fn next_due(&mut self) -> io::Result<Option<SystemTime>> {
        let mut next: Option<SystemTime> = None;
        for dir in &self.dirs {
            // A queue removed meanwhile is not made again.
            if !dir.is_dir() {
                continue;
            }
            let Ok(q) = Queue::open(dir) else { continue };
            // From the due hints, not a listing of the queue (issue 15).
            let due = q
                .next_wakeup()
                .map_err(|e| io::Error::other(e.to_string()))?;
            next = next.into_iter().chain(due).min();
        }
        Ok(next)
    }

    fn run_once(&mut self) -> io::Result<()> {
        queued::run_queue(
            self.config,
            self.overrides,
            false,
            false,
            false,
            self.sessions,
        )
        .map(drop)
        .map_err(|f| io::Error::other(f.message))
    }
}
