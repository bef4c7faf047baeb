//! Delivery through the queue: the first attempt right after spooling, the
//! queue run (`-q`, `--queue-flush`), listing (`-bp`, `mailq`) and
//! removal (`--queue-delete`).
//!
//! One function, [`attempt`], decides what becomes of a locked queue
//! entry, so a message is treated the same on its first try and its
//! tenth:
//! - delivered to every recipient: removed from the queue;
//! - refused for good by the relay (5xx to MAIL, RCPT or the data, too
//!   large, SMTPUTF8 missing): a copy goes to dead.letter, with the reply,
//!   and the recipients are marked failed;
//! - anything else (4xx, the relay unreachable, TLS or authentication
//!   failing, a password command failing, no relay configured): it stays
//!   queued with the error recorded, until `queue_lifetime` runs out,
//!   when it goes to dead.letter with a note.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::plan::Plan;
use super::relay;
use super::{DebugSink, Failure, Report};
use crate::cli::Args;
use crate::config::{Config, Profile, Transport};
use crate::exit::Sysexit;
use crate::log::Status;
use crate::maildir;
use crate::queue::{self, Id, Locked, NewMessage, Queue, SuspendedRelays};
use crate::smtp::{Error, Reply, SendOptions, Smtp};

/// How long a successful send keeps delivering older queued messages of
/// the same profile over its open session, so a queue drains with no
/// timer at all.
pub const FLUSH_BUDGET: Duration = Duration::from_secs(10);

/// An open session to a relay, kept across messages of a queue run.
pub struct Session {
    smtp: Smtp,
    host: String,
}

/// What became of one attempt.
#[derive(Debug)]
pub enum Outcome {
    /// Every pending recipient was delivered (or refused for good and
    /// reported); `refused` lists the refusals, `reply` the relay's
    /// accepting reply.
    Done {
        refused: Vec<(String, String)>,
        reply: Option<String>,
        relay: Option<String>,
        /// Recipients delivered in this attempt.
        delivered: usize,
    },
    /// Kept in the queue.
    Deferred { reason: String },
    /// Refused for good: in dead.letter.
    Bounced { failure: Failure },
}

/// Whether a recipient is delivered on this machine: its domain is one of
/// the profile's `local_domains`, the profile delivers only locally, or
/// (with no relay configured at all) it is this machine's own name.
pub fn is_local(addr: &str, p: &Profile) -> bool {
    if p.transport == Transport::Maildir {
        return true;
    }
    let Some((_, domain)) = addr.rsplit_once('@') else {
        return true;
    };
    if p.local_domains
        .iter()
        .any(|l| l.eq_ignore_ascii_case(domain))
    {
        return true;
    }
    p.hosts.is_empty()
        && (domain.eq_ignore_ascii_case("localhost")
            || p.domain
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(domain))
            || crate::hostname::fqdn().is_some_and(|d| d.eq_ignore_ascii_case(domain))
            || crate::hostname::short().is_some_and(|d| d.eq_ignore_ascii_case(domain)))
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
    let mut body = msg
        .open()
        .map_err(|e| Failure::new(e.kind(), e.to_string()))?;
    let sender = msg.meta().sender.clone();
    let r = queue::append_dead_letter(&path, &sender, recipients, reason, &mut body);
    match r {
        Ok(()) => Ok(path),
        Err(_) => {
            // The home directory's dead.letter failed: the queue's own.
            let mut body = msg
                .open()
                .map_err(|e| Failure::new(e.kind(), e.to_string()))?;
            q.append_dead_letter(&sender, recipients, reason, &mut body)
                .map_err(|e| Failure::new(e.kind(), e.to_string()))?;
            Ok(q.dead_letter_path())
        }
    }
}

/// Makes one delivery attempt for a locked entry and records the outcome
/// in the queue. `session` is reused and kept open for the next message
/// where it can be.
#[allow(clippy::too_many_arguments)]
pub fn attempt(
    q: &Queue,
    mut msg: Locked,
    profile: &Profile,
    args: &Args,
    session: &mut Option<Session>,
    debug: &mut dyn FnMut() -> DebugSink,
    now: SystemTime,
    quit_after: bool,
    suspended: &mut SuspendedRelays,
) -> Result<Outcome, Failure> {
    let qerr = |e: queue::QueueError| Failure::new(e.kind(), e.to_string());
    let env = msg.envelope();
    if env.to.is_empty() {
        msg.complete().map_err(qerr)?;
        return Ok(Outcome::Done {
            refused: vec![],
            reply: None,
            relay: None,
            delivered: 0,
        });
    }
    let (local, remote): (Vec<String>, Vec<String>) =
        env.to.iter().cloned().partition(|a| is_local(a, profile));
    let mut delivered_count = 0;

    if !local.is_empty() {
        let root = profile.maildir.clone().or_else(maildir::default_path);
        let delivered = root.as_ref().and_then(|root| {
            let prefix = format!(
                "Return-Path: <{}>\nDelivered-To: {}\n",
                env.from,
                local.join(", ")
            );
            let mut body = msg.open().ok()?;
            maildir::deliver(root, prefix.as_bytes(), &mut body).ok()
        });
        match delivered {
            Some(_) => {
                msg.record_sent(&local, &vec![], now).map_err(qerr)?;
                delivered_count += local.len();
            }
            None => {
                let reason = format!(
                    "cannot deliver locally into {}",
                    root.map(|r| r.display().to_string())
                        .unwrap_or_else(|| "~/Maildir (no home directory)".into())
                );
                return defer(q, msg, profile, &reason, None, now);
            }
        }
    }

    let mut refused_report = Vec::new();
    let mut reply = None;
    let mut relay_host = None;
    if !remote.is_empty() {
        if profile.hosts.is_empty() {
            return defer(
                q,
                msg,
                profile,
                "no relay configured: it is delivered by smtpsend -q once a relay is configured",
                None,
                now,
            );
        }
        if session.as_ref().is_none_or(|s| !s.smtp.is_connected()) {
            // Issue 12: a relay that could not be reached in this run is
            // not tried again by it.
            let key = relay_key(profile);
            if let Some(reason) = suspended.reason(&key) {
                *session = None;
                return defer(q, msg, profile, &reason, None, now);
            }
            match relay::open_session(profile, args, debug()) {
                Ok((smtp, host)) => *session = Some(Session { smtp, host }),
                Err(f) => {
                    *session = None;
                    if f.exit == Sysexit::TempFail {
                        suspended.suspend(&key, &f.message);
                    }
                    let host = profile.hosts.last().cloned();
                    return defer(q, msg, profile, &f.message, host.as_deref(), now);
                }
            }
        }
        let s = session.as_mut().expect("session opened above");
        let mut env_remote = msg.envelope();
        env_remote.to = remote.clone();
        let info = msg.info();
        let mut body = msg.open().map_err(qerr)?;
        let result = s.smtp.send(
            &env_remote,
            &mut body,
            SendOptions {
                info: Some(info),
                quit_after,
            },
        );
        let host = s.host.clone();
        let connected = s.smtp.is_connected();
        let accepted = s.smtp.accepted_reply().map(Reply::to_string);
        if !connected {
            *session = None;
        }
        relay_host = Some(host.clone());
        let ctx = format!("relay {host}");
        let refused = match result {
            Ok(refused) => {
                reply = accepted;
                refused
            }
            Err(Error::RecipientsRefused(refused)) => refused,
            Err(e) => {
                let f = Failure::smtp(&ctx, &e);
                if f.refused_by_relay {
                    return bounce(q, msg, f);
                }
                if matches!(e, Error::Timeout(_)) {
                    suspended.suspend(&relay_key(profile), &f.message);
                }
                return defer(q, msg, profile, &f.message, Some(&host), now);
            }
        };
        delivered_count += remote.len().saturating_sub(refused.len());
        let permanent = msg.record_sent(&remote, &refused, now).map_err(qerr)?;
        if !permanent.is_empty() {
            let addrs: Vec<String> = permanent.iter().map(|(a, _)| a.clone()).collect();
            let reason = permanent
                .iter()
                .map(|(a, r)| format!("<{a}>: {r}"))
                .collect::<Vec<_>>()
                .join("; ");
            let path = report_dead(q, &msg, &addrs, &format!("refused by {host}: {reason}"))?;
            let failed: Vec<(String, String)> = permanent
                .iter()
                .map(|(a, r)| (a.clone(), r.to_string()))
                .collect();
            msg.fail_recipients(&failed).map_err(qerr)?;
            for (a, r) in &permanent {
                refused_report.push((a.clone(), format!("{r} (a copy is in {})", path.display())));
            }
        }
        if !msg.pending().is_empty() {
            let reason = refused
                .iter()
                .filter(|(_, r)| r.is_transient())
                .map(|(a, r)| format!("<{a}>: {r}"))
                .collect::<Vec<_>>()
                .join("; ");
            return defer(
                q,
                msg,
                profile,
                &format!("{ctx}: {reason}"),
                Some(&host),
                now,
            );
        }
    }
    msg.complete().map_err(qerr)?;
    Ok(Outcome::Done {
        refused: refused_report,
        reply,
        relay: relay_host,
        delivered: delivered_count,
    })
}

fn defer(
    q: &Queue,
    mut msg: Locked,
    profile: &Profile,
    reason: &str,
    host: Option<&str>,
    now: SystemTime,
) -> Result<Outcome, Failure> {
    let qerr = |e: queue::QueueError| Failure::new(e.kind(), e.to_string());
    msg.defer(reason, host, now).map_err(qerr)?;
    if msg.is_expired(profile.queue_lifetime, now) {
        let days = profile.queue_lifetime.as_secs() / 86400;
        let note = format!("undeliverable for {days} days (queue_lifetime); last error: {reason}");
        return bounce(q, msg, Failure::new(Sysexit::Unavailable, note));
    }
    Ok(Outcome::Deferred {
        reason: reason.to_owned(),
    })
}

fn bounce(q: &Queue, mut msg: Locked, mut failure: Failure) -> Result<Outcome, Failure> {
    let qerr = |e: queue::QueueError| Failure::new(e.kind(), e.to_string());
    let pending: Vec<String> = msg.pending().iter().map(|s| (*s).to_owned()).collect();
    let path = report_dead(q, &msg, &pending, &failure.message)?;
    let failed: Vec<(String, String)> = pending
        .iter()
        .map(|a| (a.clone(), failure.message.clone()))
        .collect();
    msg.fail_recipients(&failed).map_err(qerr)?;
    msg.complete().map_err(qerr)?;
    failure
        .message
        .push_str(&format!("; a copy is in {}", path.display()));
    Ok(Outcome::Bounced { failure })
}

/// What became of a spooled message on its first attempt, with its size
/// (for the log line).
pub type FirstAttempt = (u64, Result<Report, Failure>);

/// Spools the planned message and makes the first attempt. Returns
/// `Ok(None)` when no queue directory can be written, so the caller
/// delivers directly instead; `Err` when spooling failed part-way.
pub fn send_queued(
    plan: &Plan,
    args: &Args,
    config: Option<&Config>,
    body: &mut dyn std::io::Read,
    debug: DebugSink,
) -> Result<Option<FirstAttempt>, Failure> {
    let chosen = match queue::choose_dir(plan.profile.queue_dir.as_deref()) {
        Ok(c) => c,
        Err(_) => return Ok(None),
    };
    let q = chosen.queue;
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
            // Part of the input may be consumed: the caller must keep it.
            Failure::new(
                Sysexit::TempFail,
                format!(
                    "cannot spool the message into {}: {e}; nothing was sent",
                    q.dir().display()
                ),
            )
        })?;
    let size = spooled.info.size;
    let result = first_attempt(&q, spooled, plan, args, config, debug);
    Ok(Some((size, result)))
}

fn first_attempt(
    q: &Queue,
    spooled: queue::Spooled,
    plan: &Plan,
    args: &Args,
    config: Option<&Config>,
    debug: DebugSink,
) -> Result<Report, Failure> {
    let id = spooled.id.clone();
    let size = spooled.info.size;
    let now = SystemTime::now();
    // With nothing else waiting, QUIT can ride with the end of data. One
    // stat of the profile's hint, however long the queue (issue 15).
    let others_due = q.maybe_due(&plan.profile.name, now);
    let mut suspended = SuspendedRelays::new();
    let mut session: Option<Session> = None;
    let sink = super::SharedSink::new(debug);
    let mut debug_factory = || -> DebugSink { Box::new(sink.clone()) };
    let outcome = attempt(
        q,
        spooled.into_locked(),
        &plan.profile,
        args,
        &mut session,
        &mut debug_factory,
        now,
        !others_due,
        &mut suspended,
    )?;
    let mut report = Report::default();
    match outcome {
        Outcome::Done {
            refused,
            reply,
            relay,
            delivered,
        } => {
            if delivered == 0 && !refused.is_empty() {
                close(&mut session);
                let all = refused
                    .iter()
                    .map(|(a, r)| format!("<{a}>: {r}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(Failure::new(
                    Sysexit::NoUser,
                    format!("all recipients refused: {all}"),
                ));
            }
            report.status = Some(if relay.is_some() {
                Status::Sent
            } else {
                Status::Local
            });
            report.reply = reply;
            report.relay = relay;
            if report.status == Some(Status::Local) {
                report.notices.push(format!(
                    "delivered locally to {} ({} bytes)",
                    plan.profile
                        .maildir
                        .clone()
                        .or_else(maildir::default_path)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    size
                ));
            }
            for (a, r) in &refused {
                report.notices.push(format!("recipient <{a}> refused: {r}"));
            }
            if let Some(f) =
                super::strict_refusal(args, refused.len(), plan.envelope.to.len(), &report.notices)
            {
                return Err(f);
            }
            // Drain older messages for the same profile over this session.
            if others_due {
                run_dir(
                    q,
                    config,
                    args,
                    Some(&plan.profile),
                    false,
                    FLUSH_BUDGET,
                    &mut session,
                    &mut debug_factory,
                    &mut suspended,
                );
            }
        }
        Outcome::Deferred { reason } => {
            report.status = Some(Status::Queued);
            report.reply = Some(reason.clone());
            report.notices.push(format!(
                "queued as {id}: {reason}; will retry (smtpsend -q)"
            ));
        }
        Outcome::Bounced { failure } => {
            close(&mut session);
            return Err(failure);
        }
    }
    close(&mut session);
    Ok(report)
}

fn close(session: &mut Option<Session>) {
    if let Some(mut s) = session.take()
        && s.smtp.is_connected()
    {
        let _ = s.smtp.quit();
    }
}

/// Counts of a queue run.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunStats {
    pub delivered: usize,
    pub deferred: usize,
    pub bounced: usize,
    pub skipped: usize,
}

/// Works through one queue directory: the due entries (all with `flush`),
/// oldest first, with one session per profile. With `only`, just that
/// profile's entries, within `budget`. Relays in `suspended` are not
/// tried; one that cannot be reached is added to it. At the end the
/// queue's due hints are set from what stays queued.
#[allow(clippy::too_many_arguments)]
fn run_dir(
    q: &Queue,
    config: Option<&Config>,
    args: &Args,
    only: Option<&Profile>,
    flush: bool,
    budget: Duration,
    first_session: &mut Option<Session>,
    debug: &mut dyn FnMut() -> DebugSink,
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
    let mut sessions: HashMap<String, Option<Session>> = HashMap::new();
    if let Some(p) = only {
        sessions.insert(p.name.clone(), first_session.take());
    }
    for e in entries {
        let wanted = (flush || e.is_due(now)) && only.is_none_or(|p| p.name == e.profile);
        if !wanted || started.elapsed() > budget {
            book.keep(&e.profile, e.next_attempt);
            continue;
        }
        let profile = match only {
            Some(p) => p.clone(),
            None => match profile_for(config, args, &e.profile) {
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
        let session = sessions.entry(profile.name.clone()).or_default();
        match attempt(
            q,
            msg,
            &profile,
            args,
            session,
            debug,
            SystemTime::now(),
            false,
            suspended,
        ) {
            Ok(Outcome::Done { .. }) => stats.delivered += 1,
            // Recorded in the book by the deferral itself.
            Ok(Outcome::Deferred { .. }) => stats.deferred += 1,
            Ok(Outcome::Bounced { .. }) => stats.bounced += 1,
            Err(_) => {
                stats.skipped += 1;
                book.keep(&e.profile, e.next_attempt);
            }
        }
    }
    let _ = book.commit();
    if let Some(p) = only {
        *first_session = sessions.remove(&p.name).flatten();
    }
    for (_, mut s) in sessions {
        close(&mut s);
    }
    stats
}

/// What names a relay for [`SuspendedRelays`]: the profile's hosts and
/// port.
fn relay_key(p: &Profile) -> String {
    format!("{}:{}", p.hosts.join(","), p.effective_port())
}

/// The profile a queued message was spooled under, as the configuration
/// says now (falling back to the default profile, then the flags).
fn profile_for(config: Option<&Config>, args: &Args, name: &str) -> Result<Profile, Failure> {
    let o = super::plan::overrides(args)?;
    let mut p = match config {
        Some(c) => match c.profile(name) {
            Some(p) => p.clone(),
            None => c.select(None, None)?,
        },
        None => Profile::from_overrides(&o)?,
    };
    if config.is_some() {
        p.apply_overrides(&o)?;
    }
    Ok(p)
}

/// Every queue directory that exists: the configured ones, the user's
/// and the system's.
fn queue_dirs(config: Option<&Config>) -> Vec<PathBuf> {
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

/// `-q`, `--queue-run`, `--queue-flush`.
pub fn run_queue(
    args: &Args,
    config: Option<&Config>,
    debug: DebugSink,
) -> Result<Report, Failure> {
    let sink = super::SharedSink::new(debug);
    let mut debug_factory = || -> DebugSink { Box::new(sink.clone()) };
    let mut total = RunStats::default();
    let mut suspended = SuspendedRelays::new();
    for dir in queue_dirs(config) {
        let Ok(q) = Queue::open(&dir) else { continue };
        let mut none = None;
        let s = run_dir(
            &q,
            config,
            args,
            None,
            args.queue_flush,
            Duration::MAX,
            &mut none,
            &mut debug_factory,
            &mut suspended,
        );
        total.delivered += s.delivered;
        total.deferred += s.deferred;
        total.bounced += s.bounced;
        total.skipped += s.skipped;
    }
    let mut report = Report::default();
    run_users_queues(args, config, &mut report);
    if args.verbose || args.debug || total.deferred + total.bounced > 0 {
        report.notices.push(format!(
            "queue run: {} delivered, {} deferred, {} bounced to dead.letter, {} skipped",
            total.delivered, total.deferred, total.bounced, total.skipped
        ));
    }
    Ok(report)
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
        let entries = q
            .list()
            .map_err(|e| Failure::new(e.kind(), e.to_string()))?;
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
    let id = Id::parse(id).map_err(|e| Failure::new(e.kind(), e.to_string()))?;
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
            Err(e) => return Err(Failure::new(e.kind(), e.to_string())),
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
    let mut v: Vec<PathBuf> = queue_dirs(config)
        .into_iter()
        .filter(|d| queue::owner::is_system_spool(d))
        .collect();
    if let Some(s) = queue::owner::requested_spool()
        && !v.iter().any(|d| d == s)
    {
        v.push(s.to_owned());
    }
    v
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
fn run_users_queues(args: &Args, config: Option<&Config>, report: &mut Report) {
    if rustix::process::geteuid().as_raw() != 0 {
        return;
    }
    let mut flags = vec![if args.queue_flush {
        "--queue-flush"
    } else {
        "-q"
    }];
    if args.verbose {
        flags.push("-v");
    }
    for spool in system_spools(config) {
        let Ok(uids) = queue::owner::uids_with_entries(&spool, 0) else {
            continue;
        };
        for uid in uids {
            let run = queue::owner::account(uid)
                .and_then(|a| queue::owner::command_as(&a, &spool, &flags))
                .and_then(|c| queue::owner::run_with_timeout(c, queue::owner::USER_RUN_TIMEOUT));
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
