//! The queue as storage around [`deliver`]: spooling a planned message,
//! the first attempt right after, the queue run (`-q`, `--queue-flush`),
//! listing (`-bp`, `mailq`) and removal (`--queue-delete`).
//!
//! Delivery rules are [`deliver`]'s; this only records what it did, in one
//! function, [`settle`], so a message is treated the same on its first
//! try and its tenth:
//! - delivered to (or refused for good for) every recipient: removed
//!   from the queue;
//! - refused for good (a 5xx to MAIL, RCPT or the data, too large, a
//!   feature the message needs missing): a copy goes to dead.letter, with
//!   the reply, and those recipients are marked failed;
//! - anything else (4xx, the relay unreachable, TLS or authentication
//!   failing, a password command failing, no relay configured, the
//!   Maildir failing): it stays queued with the error recorded, until
//!   `queue_lifetime` runs out, when it goes to dead.letter with a note.
//!
//! Whatever goes to dead.letter also brings the local sender a bounce
//! notice, and a message kept past `delay_warning_time` one delay notice
//! ([`super::notice`]).

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::deliver::{Outcome, Sessions, deliver, refusal_failure, refusal_notes};
use super::notice;
use super::plan::Plan;
use super::{Failure, Report};
use crate::config::{Config, Overrides, Profile};
use crate::exit::Sysexit;
use crate::log::Status;
use crate::queue::{self, Id, Locked, NewMessage, Queue, SuspendedRelays};

/// How long a successful send keeps delivering older queued messages of
/// the same profile over its open session, so a queue drains with no
/// timer at all.
pub const FLUSH_BUDGET: Duration = Duration::from_secs(10);

/// What the queue made of one attempt.
#[derive(Debug)]
pub enum Settled {
    /// Nothing is pending any more: removed from the queue. `refused`
    /// notes the recipients refused for good (in dead.letter).
    Done {
        outcome: Outcome,
        refused: Vec<String>,
    },
    /// Kept in the queue.
    Deferred { outcome: Outcome, reason: String },
    /// Refused for good: in dead.letter.
    Bounced { failure: Failure },
}

/// Where reports of refused mail go: `~/dead.letter` if it can be
/// written, else the queue's own.
pub fn dead_letter_path(q: &Queue) -> PathBuf {
    queue::default_dead_letter().unwrap_or_else(|| q.dead_letter_path())
}

fn report_dead(
    q: &Queue,
    msg: &Locked,
    recipients: &[String],
    reason: &str,
) -> Result<PathBuf, Failure> {
    let path = dead_letter_path(q);
    let mut body = msg.open()?;
    let sender = msg.meta().sender.clone();
    let r = queue::append_dead_letter(&path, &sender, recipients, reason, &mut body);
    match r {
        Ok(()) => Ok(path),
        Err(_) => {
            // The home directory's dead.letter failed: the queue's own.
            let mut body = msg.open()?;
            q.append_dead_letter(&sender, recipients, reason, &mut body)?;
            Ok(q.dead_letter_path())
        }
    }
}

/// Records in the queue what [`deliver`] did with a locked entry: the
/// delivered recipients done, those refused or failed for good reported
/// to dead.letter and failed, and the entry removed when nothing is
/// pending, else deferred with the reason.
pub fn settle(
    q: &Queue,
    mut msg: Locked,
    profile: &Profile,
    outcome: Outcome,
    now: SystemTime,
) -> Result<Settled, Failure> {
    let attempted = outcome.attempted();
    let refused = outcome.refused();
    let host = outcome.relay.clone();
    let mut notes = Vec::new();
    if !attempted.is_empty() {
        let permanent = msg.record_sent(&attempted, &refused, now)?;
        if !permanent.is_empty() {
            let addrs: Vec<String> = permanent.iter().map(|(a, _)| a.clone()).collect();
            let reason = refusal_notes(&permanent, host.as_deref()).join("; ");
            let path = report_dead(q, &msg, &addrs, &reason)?;
            let failed: Vec<(String, String)> = permanent
                .iter()
                .map(|(a, r)| (a.clone(), r.to_string()))
                .collect();
            msg.fail_recipients(&failed)?;
            for n in refusal_notes(&permanent, host.as_deref()) {
                notes.push(format!("{n} (a copy is in {})", path.display()));
            }
            notes.extend(notice::bounced(profile, &msg, &failed, &path));
        }
    }
    let failures = outcome.failures();
    let mut bounced: Option<Failure> = None;
    for (addrs, f) in failures.iter().filter(|(_, f)| f.permanent) {
        let path = report_dead(q, &msg, addrs, &f.message)?;
        let failed: Vec<(String, String)> = addrs
            .iter()
            .map(|a| (a.clone(), f.message.clone()))
            .collect();
        msg.fail_recipients(&failed)?;
        let mut f = f.clone();
        f.message
            .push_str(&format!("; a copy is in {}", path.display()));
        if let Some(n) = notice::bounced(profile, &msg, &failed, &path) {
            f.message.push_str(&format!("; {n}"));
        }
        bounced.get_or_insert(f);
    }
    if msg.pending().is_empty() {
        msg.complete()?;
        return Ok(match bounced {
            Some(failure) => Settled::Bounced { failure },
            None => Settled::Done {
                outcome,
                refused: notes,
            },
        });
    }
    let reason = match failures.iter().find(|(_, f)| !f.permanent) {
        Some((_, f)) => f.message.clone(),
        None => {
            let transient: Vec<(String, crate::smtp::Reply)> = refused
                .into_iter()
                .filter(|(_, r)| r.is_transient())
                .collect();
            refusal_notes(&transient, host.as_deref()).join("; ")
        }
    };
    match defer(q, msg, profile, &reason, host.as_deref(), now)? {
        Deferral::Kept(None) => Ok(Settled::Deferred { outcome, reason }),
        Deferral::Kept(Some(note)) => Ok(Settled::Deferred {
            outcome,
            reason: format!("{reason}; {note}"),
        }),
        Deferral::Bounced(failure) => Ok(Settled::Bounced { failure }),
    }
}

/// Delivers a locked entry and records the outcome.
pub fn attempt(
    q: &Queue,
    msg: Locked,
    profile: &Profile,
    sessions: &mut Sessions,
    now: SystemTime,
    quit_after: bool,
) -> Result<Settled, Failure> {
    let mut msg = msg;
    let env = msg.envelope();
    let outcome = if env.to.is_empty() {
        Outcome::default()
    } else {
        deliver(profile, &env, &mut msg, sessions, quit_after)
    };
    settle(q, msg, profile, outcome, now)
}

/// What [`defer`] did.
enum Deferral {
    /// Kept in the queue; a line when its delay notice was due and could
    /// not be delivered (tried again next time).
    Kept(Option<String>),
    /// Expired: in dead.letter.
    Bounced(Failure),
}

fn defer(
    q: &Queue,
    mut msg: Locked,
    profile: &Profile,
    reason: &str,
    host: Option<&str>,
    now: SystemTime,
) -> Result<Deferral, Failure> {
    msg.defer(reason, host, now)?;
    if msg.is_expired(profile.queue_lifetime, now) {
        let days = profile.queue_lifetime.as_secs() / 86400;
        let note = format!("undeliverable for {days} days (queue_lifetime); last error: {reason}");
        return bounce(q, msg, profile, Failure::new(Sysexit::Unavailable, note))
            .map(Deferral::Bounced);
    }
    Ok(Deferral::Kept(notice::delayed(profile, &mut msg, now)))
}

fn bounce(
    q: &Queue,
    mut msg: Locked,
    profile: &Profile,
    mut failure: Failure,
) -> Result<Failure, Failure> {
    let pending: Vec<String> = msg.pending().iter().map(|s| (*s).to_owned()).collect();
    let path = report_dead(q, &msg, &pending, &failure.message)?;
    let failed: Vec<(String, String)> = pending
        .iter()
        .map(|a| (a.clone(), failure.message.clone()))
        .collect();
    msg.fail_recipients(&failed)?;
    let unsent = notice::bounced(profile, &msg, &failed, &path);
    msg.complete()?;
    failure
        .message
        .push_str(&format!("; a copy is in {}", path.display()));
    if let Some(n) = unsent {
        failure.message.push_str(&format!("; {n}"));
    }
    Ok(failure)
}

/// Spools the planned message. `Ok(None)` when no queue directory can
/// be written, so the caller delivers directly instead; `Err` when
/// spooling failed part-way (part of the input is consumed: the caller
/// must keep the message, and says so with EX_TEMPFAIL).
pub fn spool(
    plan: &Plan,
    body: &mut dyn std::io::Read,
) -> Result<Option<(Queue, queue::Spooled)>, Failure> {
    let chosen = match queue::choose_dir(plan.profile.queue_dir.as_deref()) {
        Ok(c) => c,
        Err(_) => return Ok(None),
    };
    let q = chosen.queue.with_min_free(plan.profile.queue_min_free);
    let mut whole = std::io::Read::chain(&plan.headers[..], body);
    let spooled = q
        .spool(
            &mut whole,
            NewMessage {
                profile: plan.profile.name.clone(),
                sender: plan.envelope.from.clone(),
                recipients: plan.envelope.to.clone(),
                mail_options: plan.envelope.mail_options.clone(),
                rcpt_options: plan.envelope.rcpt_options.clone(),
                dsn: plan.envelope.dsn.clone(),
            },
        )
        .map_err(|e| {
            Failure::new(
                Sysexit::TempFail,
                format!(
                    "cannot spool the message into {}: {e}; nothing was sent",
                    q.dir().display()
                ),
            )
        })?;
    super::panic::spooled_as(&spooled.id);
    Ok(Some((q, spooled)))
}

/// The first attempt for a message just spooled, and, after a success,
/// older messages of the same profile over the same session for up to
/// [`FLUSH_BUDGET`].
pub fn first_attempt(
    q: &Queue,
    spooled: queue::Spooled,
    plan: &Plan,
    config: Option<&Config>,
    overrides: &Overrides,
    strict: bool,
    sessions: &mut Sessions,
) -> Result<Report, Failure> {
    let id = spooled.id.clone();
    let now = SystemTime::now();
    // With nothing else waiting, QUIT can ride with the end of data. One
    // stat of the profile's due hint, however long the queue (issue 15).
    let others_due = q.maybe_due(&plan.profile.name, now);
    let settled = attempt(
        q,
        spooled.into_locked(),
        &plan.profile,
        sessions,
        now,
        !others_due,
    )?;
    match settled {
        Settled::Done { outcome, refused } => {
            if let Some(f) = refusal_failure(
                outcome.delivered().len(),
                &outcome.refused(),
                &refused,
                strict,
                plan.envelope.to.len(),
            ) {
                return Err(f);
            }
            let mut report = outcome.report();
            report.notices.extend(refused);
            if others_due {
                let _ = run_dir(
                    q,
                    config,
                    overrides,
                    Some(&plan.profile),
                    false,
                    FLUSH_BUDGET,
                    sessions,
                    &mut SuspendedRelays::new(),
                );
            }
            Ok(report)
        }
        Settled::Deferred { outcome, reason } => {
            let mut report = Report {
                status: Some(Status::Queued),
                reply: Some(reason.clone()),
                ..Report::default()
            };
            if let Some(n) = outcome.local_notice() {
                report.notices.push(n);
            }
            report.notices.push(format!(
                "queued as {id}: {reason}; will retry (smtpsend -q)"
            ));
            Ok(report)
        }
        Settled::Bounced { failure } => Err(failure),
    }
}

/// Counts of a queue run.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunStats {
    pub delivered: usize,
    pub deferred: usize,
    pub bounced: usize,
    pub skipped: usize,
    /// Of the skipped, those that hit an internal error (a panic): they
    /// stay queued.
    pub internal_errors: usize,
}

impl RunStats {
    fn add(&mut self, o: RunStats) {
        self.delivered += o.delivered;
        self.deferred += o.deferred;
        self.bounced += o.bounced;
        self.skipped += o.skipped;
        self.internal_errors += o.internal_errors;
    }
}

/// Works through one queue directory: the due entries (all with `flush`),
/// oldest first, with one session per profile. With `only`, just that
/// profile's entries, within `budget`. Each entry is tried on its own: an
/// entry that makes smtpsend fail internally (a panic) is skipped and
/// stays queued, and the run goes on with the next. A relay in
/// `suspended` is not tried again (its messages are deferred with the
/// reason); one that cannot be reached or times out is added to it. At
/// the end the queue's due hints are set from what stays queued.
#[allow(clippy::too_many_arguments)]
fn run_dir(
    q: &Queue,
    config: Option<&Config>,
    overrides: &Overrides,
    only: Option<&Profile>,
    flush: bool,
    budget: Duration,
    sessions: &mut Sessions,
    suspended: &mut SuspendedRelays,
) -> RunStats {
    let mut stats = RunStats::default();
    let started = Instant::now();
    let Ok(Some(_run)) = q.run_lock() else {
        return stats;
    };
    let now = SystemTime::now();
    let _ = q.quarantine(queue::STALE_AFTER, now);
    // The book is started before the listing (see queue::HintBook).
    let (q, book) = q.hint_book();
    let q = &q;
    let Ok(entries) = q.list() else {
        return stats;
    };
    for e in entries {
        let wanted = (flush || e.is_due(now)) && only.is_none_or(|p| p.name == e.profile);
        if !wanted || started.elapsed() > budget {
            book.keep(&e.profile, e.next_attempt);
            continue;
        }
        let profile = match only {
            Some(p) => p.clone(),
            None => match profile_for(config, overrides, &e.profile) {
                Ok(p) => p,
                Err(_) => {
                    stats.skipped += 1;
                    book.keep(&e.profile, e.next_attempt);
                    continue;
                }
            },
        };
        let msg = match q.lock(&e.id) {
            Ok(Some(m)) => m,
            Err(err) if err.is_not_found() => {
                stats.skipped += 1;
                continue;
            }
            _ => {
                stats.skipped += 1;
                book.keep(&e.profile, e.next_attempt);
                continue;
            }
        };
        // Issue 12: a relay this run could not reach is not tried again.
        let key = relay_key(&profile);
        if let Some(reason) = suspended.reason(&key)
            && !sessions.is_open(&profile)
            && msg
                .pending()
                .iter()
                .any(|a| !super::local::is_local(a, &profile))
        {
            match defer(q, msg, &profile, &reason, None, SystemTime::now()) {
                Ok(Deferral::Kept(_)) => stats.deferred += 1,
                Ok(Deferral::Bounced(_)) => stats.bounced += 1,
                Err(_) => stats.skipped += 1,
            }
            continue;
        }
        let tried = catch_unwind(AssertUnwindSafe(|| {
            super::panic::fault_point("queue-entry", &e.sender);
            attempt(q, msg, &profile, sessions, SystemTime::now(), false)
        }));
        match tried {
            Ok(Ok(Settled::Done { .. })) => stats.delivered += 1,
            // Recorded in the book by the deferral itself. A relay left
            // without a session by a temporary failure (unreachable,
            // timed out, dropped) is suspended for the rest of the run.
            Ok(Ok(Settled::Deferred { outcome, reason })) => {
                stats.deferred += 1;
                // Only remote recipients' failures say anything about
                // the relay (a local one may wait for root's queue run).
                let relay_failed = outcome.failures().iter().any(|(addrs, f)| {
                    !f.permanent
                        && f.exit == Sysexit::TempFail
                        && addrs.iter().any(|a| !super::local::is_local(a, &profile))
                });
                if !profile.hosts.is_empty() && relay_failed && !sessions.is_open(&profile) {
                    suspended.suspend(&key, &reason);
                }
            }
            Ok(Ok(Settled::Bounced { .. })) => stats.bounced += 1,
            Ok(Err(_)) => {
                stats.skipped += 1;
                book.keep(&e.profile, e.next_attempt);
            }
            Err(_) => {
                // The session may be mid-transaction: start afresh.
                sessions.discard(&profile);
                stats.skipped += 1;
                stats.internal_errors += 1;
                book.keep(&e.profile, e.next_attempt);
            }
        }
    }
    let _ = book.commit();
    stats
}

/// What names a relay for [`SuspendedRelays`]: the profile's hosts and
/// port.
fn relay_key(p: &Profile) -> String {
    format!("{}:{}", p.hosts.join(","), p.effective_port())
}

/// The profile a queued message was spooled under, as the configuration
/// says now (falling back to the default profile, then the flags).
fn profile_for(
    config: Option<&Config>,
    overrides: &Overrides,
    name: &str,
) -> Result<Profile, Failure> {
    let p = match config {
        Some(c) => {
            let mut p = match c.profile(name) {
                Some(p) => p.clone(),
                None => c.select(None, None)?,
            };
            p.apply_overrides(overrides)?;
            p
        }
        None => Profile::from_overrides(overrides)?,
    };
    Ok(p)
}

/// Every queue directory that exists: the configured ones, the user's
/// and the system's.
pub(crate) fn queue_dirs(config: Option<&Config>) -> Vec<PathBuf> {
    let mut configured: Vec<Option<PathBuf>> = vec![None];
    // The system spool root's runner started this process to run.
    configured.push(queue::owner::requested_spool().map(Path::to_path_buf));
    if let Some(c) = config {
        for name in c.profile_names() {
            if let Some(p) = c.profile(name) {
                configured.push(p.queue_dir.clone());
            }
        }
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for c in configured {
        for d in queue::candidate_dirs(c.as_deref()) {
            if d.is_dir() && !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    dirs
}

/// `-q`, `--queue-run`, `--queue-flush`. With `dry_run`, lists what
/// would be tried and sends nothing.
pub fn run_queue(
    config: Option<&Config>,
    overrides: &Overrides,
    flush: bool,
    dry_run: bool,
    verbose: bool,
    sessions: &mut Sessions,
) -> Result<Report, Failure> {
    if dry_run {
        return would_run(config, flush);
    }
    let mut total = RunStats::default();
    let mut suspended = SuspendedRelays::new();
    for dir in queue_dirs(config) {
        let Ok(q) = Queue::open(&dir) else { continue };
        total.add(run_dir(
            &q,
            config,
            overrides,
            None,
            flush,
            Duration::MAX,
            sessions,
            &mut suspended,
        ));
    }
    let mut report = Report::default();
    run_users_queues(config, flush, verbose, &mut report);
    if verbose || total.deferred + total.bounced > 0 {
        report.notices.push(format!(
            "queue run: {} delivered, {} deferred, {} bounced to dead.letter, {} skipped",
            total.delivered, total.deferred, total.bounced, total.skipped
        ));
    }
    if total.internal_errors > 0 {
        report.notices.push(format!(
            "internal error on {} queued message(s){}: they stay in the queue; please report this bug",
            total.internal_errors,
            super::panic::last_message()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ));
    }
    Ok(report)
}

/// `-q --dry-run`: the messages a run would try, nothing sent or changed.
fn would_run(config: Option<&Config>, flush: bool) -> Result<Report, Failure> {
    let now = SystemTime::now();
    let mut out = String::new();
    for dir in queue_dirs(config) {
        let Ok(q) = Queue::open(&dir) else { continue };
        let entries = if flush { q.list() } else { q.due(now) }?;
        for e in entries {
            let _ = writeln!(
                out,
                "would try {} (profile {}): <{}> to {}",
                e.id.as_str(),
                e.profile,
                e.sender,
                e.recipients
                    .iter()
                    .map(|r| format!("<{r}>"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if out.is_empty() {
        out.push_str(if flush {
            "the queue is empty: nothing to try\n"
        } else {
            "no queued message is due: nothing to try (--queue-flush tries them all)\n"
        });
    }
    Ok(Report {
        output: out,
        ..Report::default()
    })
}

/// `-bp`, `mailq`, `--queue-list`.
pub fn list_queue(config: Option<&Config>) -> Result<Report, Failure> {
    let mut out = String::new();
    let mut count = 0;
    let mut bytes = 0u64;
    for q in queue_dirs(config)
        .iter()
        .filter_map(|d| Queue::open(d).ok())
        .chain(users_queues(config))
    {
        let entries = q.list()?;
        for e in entries {
            if count == 0 {
                out.push_str("-Queue ID-                        --Size-- ----Arrival Time---- Attempts -Sender/Recipient-------\n");
            }
            count += 1;
            bytes += e.size;
            let _ = writeln!(
                out,
                "{:<33} {:>8} {:<20} {:>8} {}",
                e.id.as_str(),
                e.size,
                queue::rfc3339(e.created),
                e.attempts,
                if e.sender.is_empty() { "<>" } else { &e.sender }
            );
            if let Some(err) = &e.last_error {
                let _ = writeln!(out, "  ({err})");
            }
            // When the queue's schedule tries it again (issue 14).
            if e.attempts > 0 {
                let when = if e.next_attempt <= SystemTime::now() {
                    "now (due)".to_owned()
                } else {
                    queue::rfc3339(e.next_attempt)
                };
                let _ = writeln!(out, "  (next attempt: {when})");
            }
            for r in &e.recipients {
                let _ = writeln!(out, "{:>73}{r}", "");
            }
            out.push('\n');
        }
    }
    if count == 0 {
        out.push_str("Mail queue is empty\n");
    } else {
        let _ = writeln!(
            out,
            "-- {} Kbytes in {count} Request{}.",
            bytes.div_ceil(1024),
            if count == 1 { "" } else { "s" }
        );
    }
    Ok(Report {
        output: out,
        ..Report::default()
    })
}

/// `--queue-delete ID`.
pub fn delete(config: Option<&Config>, id: &str) -> Result<Report, Failure> {
    let id = Id::parse(id)?;
    for q in queue_dirs(config)
        .iter()
        .filter_map(|d| Queue::open(d).ok())
        .chain(users_queues(config))
    {
        match q.remove(&id) {
            Ok(()) => {
                return Ok(Report {
                    notices: vec![format!("{id} removed from {}", q.dir().display())],
                    ..Report::default()
                });
            }
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Failure::new(
        Sysexit::NoInput,
        format!("no queued message {id}: see smtpsend -bp"),
    ))
}

// ---- Issue 12: root's queue run handles other users' queues as them ----

/// At the start of `-q`: a process started by root's runner for a user's
/// queue becomes that user before anything else (configuration included)
/// is read. Nothing happens otherwise.
pub fn become_queue_owner() -> Result<(), Failure> {
    queue::owner::become_requested_owner()
        .map(drop)
        .map_err(|e| Failure::new(Sysexit::NoPerm, e))
}

/// The system spools among the queue directories (and the one this
/// process was started to run).
fn system_spools(config: Option<&Config>) -> Vec<PathBuf> {
    queue_dirs(config)
        .into_iter()
        .filter(|d| queue::owner::is_system_spool(d))
        .collect()
}

/// For root: the other users' queues in the system spools, to list or
/// to remove from (never to deliver: see [`run_users_queues`]).
fn users_queues(config: Option<&Config>) -> Vec<Queue> {
    if rustix::process::geteuid().as_raw() != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for spool in system_spools(config) {
        if let Ok((queues, _)) = queue::owner::user_queues(&spool) {
            out.extend(queues.into_iter().filter(|u| u.uid != 0).map(|u| u.queue));
        }
    }
    out
}

/// For root: runs each other user's queue in the system spools by
/// re-executing smtpsend as that user (its groups, its configuration),
/// never with root's profiles; a line per failure.
fn run_users_queues(config: Option<&Config>, flush: bool, verbose: bool, report: &mut Report) {
    if rustix::process::geteuid().as_raw() != 0 {
        return;
    }
    let mut flags = vec![if flush { "--queue-flush" } else { "-q" }];
    if verbose {
        flags.push("-v");
    }
    for spool in system_spools(config) {
        let Ok(uids) = queue::owner::uids_with_entries(&spool, 0) else {
            continue;
        };
        for uid in uids {
            let run = queue::owner::account(uid)
                .and_then(|a| queue::owner::command_as(&a, &spool, &flags))
                // Serving the runner's hand-offs into other users' mailboxes.
                .and_then(|c| {
                    super::local::run_serving_handoffs(c, queue::owner::USER_RUN_TIMEOUT)
                });
            match run {
                Ok(s) if s.success() => {}
                Ok(s) => report.notices.push(format!(
                    "queue run for uid {uid} in {}: {s}",
                    spool.display()
                )),
                Err(e) => report.notices.push(format!(
                    "cannot run the queue of uid {uid} in {}: {e}",
                    spool.display()
                )),
            }
        }
    }
}
