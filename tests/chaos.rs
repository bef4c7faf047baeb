//! The chaos test: nothing lost, nothing misreported, duplicates only in
//! the documented at-least-once window.
//!
//! A relay (tests/chaos/relay.rs) that refuses at random (4xx; 550 for one
//! doomed domain), stalls, drops the connection mid-data or after the whole
//! message, closes right after the final 250, and is killed and restarted;
//! submitters (the real binary, spool-first, a private queue and config)
//! and `--queue-flush`/`-q` runners killed with SIGKILL at random moments.
//! Then a healthy relay and queue runs until the queue is empty, and the
//! accounting, by Message-ID:
//!
//! - **lost**: a submission exited 0 and its message is neither delivered
//!   (in the relay's log), nor in dead.letter, nor still queued;
//! - **misreported**: a submission exited non-zero ("not sent") and its
//!   message was delivered;
//! - **unexplained duplicates**: a message received more than once where
//!   more than one of its receipts was outside the at-least-once window
//!   (the relay never wrote the final reply, or was killed before it, or
//!   the client process was killed after the relay had the whole message
//!   and before it went on to the next MAIL);
//! - plus: every receipt intact, doomed messages never delivered and in
//!   dead.letter, nothing else in dead.letter, no process over its bound,
//!   the queue empty at the end.
//!
//! Size and seed from the environment: `CHAOS_MESSAGES` (400 for the CI
//! test), `CHAOS_PARALLEL` (3 submitters at once), `CHAOS_SEED` (printed;
//! the same seed gives the same messages and the same draws, though thread
//! timing makes a run only roughly repeatable). The larger run:
//! `CHAOS_MESSAGES=5000 cargo test --test chaos -- --ignored --nocapture`
//! (bench/chaos.sh).

#[path = "chaos/relay.rs"]
mod relay;
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use relay::{DOOMED_DOMAIN, Receipt, Relay, Rng};
use support::BinEnv;

/// The client's per-step timeout (the profile's `timeout`).
const CLIENT_TIMEOUT_S: u64 = 2;
/// A stall lasts longer than the client waits.
const STALL: Duration = Duration::from_secs(CLIENT_TIMEOUT_S + 1);
/// No child process may run longer than this, stalls and all.
const CHILD_BOUND: Duration = Duration::from_secs(90);
/// Share of submissions killed, and the window the kill falls in.
const SUBMIT_KILL_P: f64 = 0.12;
const SUBMIT_KILL_WINDOW_MS: u64 = 400;
/// Share of queue runs killed, and the window.
const RUN_KILL_P: f64 = 0.4;
const RUN_KILL_WINDOW_MS: u64 = 1500;
/// Share of messages addressed to the doomed domain.
const DOOMED_P: f64 = 0.05;
/// Queue runs against the healed relay before the queue must be empty.
const FINAL_RUNS: usize = 10;
/// What each queued entry adds to a final run's bound.
const FINAL_RUN_PER_ENTRY: Duration = Duration::from_millis(100);

/// How a child process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Exited(i32),
    Killed,
    /// Over CHILD_BOUND: killed, and a failure.
    Hung,
}

/// The test's processes: the live ones (for the relay's owner lookup)
/// and those it killed.
#[derive(Default)]
struct Procs {
    live: Arc<Mutex<HashSet<u32>>>,
    killed: Mutex<HashSet<u32>>,
}

impl Procs {
    /// Runs `cmd` with `stdin`, SIGKILLs it after `kill_after` if given.
    /// `bound` is the most it may take before it counts as hung.
    fn run(
        &self,
        mut cmd: Command,
        stdin: &[u8],
        kill_after: Option<Duration>,
        bound: Duration,
    ) -> End {
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        let mut child = cmd.spawn().expect("spawn the binary");
        let pid = child.id();
        self.live.lock().unwrap().insert(pid);
        let started = Instant::now();
        if let Some(mut input) = child.stdin.take() {
            use std::io::Write;
            // A child killed early stops reading: that is fine.
            let _ = input.write_all(stdin);
        }
        let end = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break End::Exited(status.code().unwrap_or(-1));
            }
            let elapsed = started.elapsed();
            let hung = elapsed >= bound;
            if hung || kill_after.is_some_and(|k| elapsed >= k) {
                self.killed.lock().unwrap().insert(pid);
                let _ = child.kill();
                let _ = child.wait();
                break if hung { End::Hung } else { End::Killed };
            }
            thread::sleep(Duration::from_millis(3));
        };
        self.live.lock().unwrap().remove(&pid);
        end
    }
}

struct Chaos {
    bin: BinEnv,
    seed: u64,
    procs: Procs,
}

impl Chaos {
    fn queue_dir(&self) -> PathBuf {
        self.bin.path("queue")
    }

    fn config(&self, port: u16) -> PathBuf {
        let p = self.bin.path("config.toml");
        std::fs::write(
            &p,
            format!(
                "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ndomain = \"client.test\"\nqueue_dir = \"{}\"\ntimeout = {CLIENT_TIMEOUT_S}\n",
                self.queue_dir().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    fn command(&self, args: &[&str], stderr: &Path) -> Command {
        let cfg = self.bin.path("config.toml");
        let mut all = vec!["-C", cfg.to_str().unwrap()];
        all.extend(args);
        let mut cmd = self.bin.command(&all);
        // The test runs its own queue runs, and tracks and kills every
        // process it starts: a detached retrier would be outside that
        // accounting and could outlive the test.
        cmd.env("SMTPSEND_NO_RETRIER", "1");
        cmd.stderr(std::fs::File::create(stderr).unwrap());
        cmd
    }

    fn message_id(&self, i: usize) -> String {
        format!("<chaos-{}-{i}@client.test>", self.seed)
    }

    /// Message `i`: its recipient, whether it is doomed, and its text
    /// (a few lines, some starting with dots, the marker line last).
    fn message(&self, i: usize, rng: &mut Rng) -> (String, bool, Vec<u8>) {
        let doomed = rng.chance(DOOMED_P);
        let rcpt = if doomed {
            format!("r{i}@{DOOMED_DOMAIN}")
        } else {
            format!("r{i}@ok.test")
        };
        let id = self.message_id(i);
        let mut text = format!(
            "From: chaos@client.test\nTo: {rcpt}\nSubject: chaos {i}\nMessage-ID: {id}\n\n"
        );
        for l in 0..rng.below(80) {
            let dots = [".", "..", ""][rng.below(3) as usize];
            text.push_str(&format!(
                "{dots}line {l} of message {i}: {}\n",
                rng.next_u64()
            ));
        }
        text.push_str(&format!("chaos-end {}\n", id.trim_matches(['<', '>'])));
        (rcpt, doomed, text.into_bytes())
    }

    fn queued_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.queue_dir().join("msg"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "env"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything in dead.letter: the user's and the queue's own.
    fn dead_letters(&self) -> String {
        [
            self.bin.path("dead.letter"),
            self.queue_dir().join("dead").join("dead.letter"),
        ]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
    }
}

struct Submission {
    doomed: bool,
    end: End,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether the relay's log entry may be followed by a resend of the same
/// message without anything being wrong: the client cannot have recorded
/// the delivery.
fn in_window(r: &Receipt, killed: &HashSet<u32>) -> bool {
    !r.reply_written
        || r.killed_before_reply
        || match r.pid {
            None => true,
            Some(pid) => killed.contains(&pid) && !r.followed,
        }
}

fn run_chaos(default_messages: usize) {
    let messages: usize = env_or("CHAOS_MESSAGES", default_messages);
    let parallel: usize = env_or("CHAOS_PARALLEL", 3usize).max(1);
    let seed: u64 = env_or(
        "CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    println!(
        "chaos: seed {seed} (replay with CHAOS_SEED={seed}), {messages} messages, {parallel} submitters at once"
    );
    let started = Instant::now();
    let chaos = Arc::new(Chaos {
        bin: BinEnv::new(),
        seed,
        procs: Procs::default(),
    });
    let relay = Arc::new(Relay::start(seed, STALL, chaos.procs.live.clone()));
    chaos.config(relay.port());
    let logs = chaos.bin.path("stderr");
    std::fs::create_dir_all(&logs).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    // The relay dies and comes back every second or two.
    let killer = {
        let (stop, relay) = (stop.clone(), relay.clone());
        thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 1);
            while !stop.load(Ordering::SeqCst) {
                sleep_unless(&stop, Duration::from_millis(300 + rng.below(2200)));
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                relay.kill();
                thread::sleep(Duration::from_millis(100 + rng.below(900)));
                relay.restart();
            }
        })
    };
    // Queue runs, a good share of them killed.
    let runs = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let runner = {
        let (stop, chaos, runs) = (stop.clone(), chaos.clone(), runs.clone());
        thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 2);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                sleep_unless(&stop, Duration::from_millis(100 + rng.below(600)));
                let flag = if rng.chance(0.5) {
                    "--queue-flush"
                } else {
                    "-q"
                };
                let kill = rng
                    .chance(RUN_KILL_P)
                    .then(|| Duration::from_millis(rng.below(RUN_KILL_WINDOW_MS)));
                let cmd = chaos.command(&[flag], &chaos.bin.path(&format!("stderr/run-{n}")));
                let end = chaos.procs.run(cmd, b"", kill, CHILD_BOUND);
                *runs.lock().unwrap().entry(end_label(&end)).or_default() += 1;
                n += 1;
            }
        })
    };
    // The submitters.
    let next = Arc::new(AtomicUsize::new(0));
    let subs = Arc::new(Mutex::new(BTreeMap::<usize, Submission>::new()));
    let submitters: Vec<_> = (0..parallel)
        .map(|t| {
            let (chaos, next, subs) = (chaos.clone(), next.clone(), subs.clone());
            thread::spawn(move || {
                let mut rng = Rng::new(seed ^ (0x100 + t as u64));
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= messages {
                        break;
                    }
                    // The message depends on the seed and i only.
                    let mut mrng = Rng::new(seed.wrapping_mul(31).wrapping_add(i as u64));
                    let (rcpt, doomed, text) = chaos.message(i, &mut mrng);
                    let kill = rng
                        .chance(SUBMIT_KILL_P)
                        .then(|| Duration::from_millis(rng.below(SUBMIT_KILL_WINDOW_MS)));
                    let cmd = chaos.command(
                        &["-i", "-f", "chaos@client.test", &rcpt],
                        &chaos.bin.path(&format!("stderr/submit-{i}")),
                    );
                    let end = chaos.procs.run(cmd, &text, kill, CHILD_BOUND);
                    subs.lock().unwrap().insert(i, Submission { doomed, end });
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().unwrap();
    }
    let chaos_phase = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    killer.join().unwrap();
    runner.join().unwrap();

    // A healthy relay, and queue runs until the queue is empty.
    relay.heal();
    let at_heal = chaos.queued_files().len();
    println!("chaos: {at_heal} entries queued when the relay healed");
    let mut final_runs = 0;
    while !chaos.queued_files().is_empty() && final_runs < FINAL_RUNS {
        let log = chaos.bin.path(&format!("stderr/final-{final_runs}"));
        let cmd = chaos.command(&["--queue-flush"], &log);
        // A healthy relay takes a few ms a message; the bound grows with
        // the backlog.
        let bound = CHILD_BOUND + FINAL_RUN_PER_ENTRY * at_heal as u32;
        let end = chaos.procs.run(cmd, b"", None, bound);
        assert_eq!(
            end,
            End::Exited(0),
            "a queue run against the healed relay ({at_heal} queued); its stderr: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        final_runs += 1;
    }
    let receipts = relay.receipts();
    let stats = relay.stats();
    relay.shutdown();

    // The accounting.
    let subs = std::mem::take(&mut *subs.lock().unwrap());
    let killed = chaos.procs.killed.lock().unwrap().clone();
    let mut by_id: HashMap<&str, Vec<&Receipt>> = HashMap::new();
    for r in &receipts {
        by_id.entry(r.message_id.as_str()).or_default().push(r);
    }
    let dead = chaos.dead_letters();
    let queued_text: String = chaos
        .queued_files()
        .iter()
        .map(|p| std::fs::read_to_string(p.with_extension("eml")).unwrap_or_default())
        .collect();
    let mut f = Figures::default();
    let mut failures: Vec<String> = Vec::new();
    for (i, s) in &subs {
        let id = chaos.message_id(*i);
        let got = by_id.get(id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let delivered = !got.is_empty();
        let in_dead = dead.contains(&id);
        let queued = queued_text.contains(&id);
        let why = || {
            let err = std::fs::read_to_string(chaos.bin.path(&format!("stderr/submit-{i}")))
                .unwrap_or_default();
            format!("message {i} {id}: {:?}, stderr: {}", s.end, err.trim())
        };
        match &s.end {
            End::Exited(0) => {
                f.exit_ok += 1;
                if !(delivered || in_dead || queued) {
                    failures.push(format!("LOST {}", why()));
                }
            }
            End::Exited(code) => {
                *f.exit_other.entry(*code).or_default() += 1;
                if delivered {
                    failures.push(format!("MISREPORTED (delivered) {}", why()));
                }
            }
            End::Killed => f.submit_killed += 1,
            End::Hung => failures.push(format!("HUNG {}", why())),
        }
        if delivered {
            f.delivered += 1;
        }
        if in_dead {
            f.dead += 1;
        }
        if queued {
            f.queued += 1;
        }
        if s.doomed {
            f.doomed += 1;
            if delivered {
                failures.push(format!("DOOMED BUT DELIVERED {}", why()));
            }
            if s.end == End::Exited(0) && !in_dead && !queued {
                failures.push(format!("DOOMED, NOT IN DEAD.LETTER {}", why()));
            }
        } else if in_dead {
            failures.push(format!("BOUNCED TO DEAD.LETTER {}", why()));
        }
        if got.len() > 1 {
            let outside = got.iter().filter(|r| !in_window(r, &killed)).count();
            f.duplicates += got.len() - 1;
            if outside > 1 {
                f.unexplained += outside - 1;
                failures.push(format!(
                    "DUPLICATE outside the at-least-once window ({} receipts, {outside} acknowledged cleanly) {}",
                    got.len(),
                    why()
                ));
            }
        }
        if got.iter().any(|r| !r.intact) {
            failures.push(format!("DAMAGED (marker line missing) {}", why()));
        }
    }
    let foreign = receipts
        .iter()
        .filter(|r| !r.message_id.contains(&format!("chaos-{seed}-")))
        .count();
    if foreign > 0 {
        failures.push(format!("{foreign} receipts of messages nobody submitted"));
    }
    let left = chaos.queued_files().len();
    if left > 0 {
        failures.push(format!(
            "{left} entries still queued after {final_runs} runs against a healthy relay"
        ));
    }

    println!(
        "chaos: {messages} submissions in {:.1} s of chaos, {:.1} s in all; {final_runs} final queue runs",
        chaos_phase.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "chaos: submissions: {} exited 0, {} killed (SIGKILL), other exits {:?}",
        f.exit_ok, f.submit_killed, f.exit_other
    );
    println!(
        "chaos: queue runs during the chaos: {:?}",
        runs.lock().unwrap()
    );
    println!(
        "chaos: relay: {} sessions, killed {} times, {} messages by DATA and {} by BDAT, {} receipts; faults drawn {:?}",
        stats.sessions,
        stats.kills,
        stats.data,
        stats.bdat,
        receipts.len(),
        stats.faults.iter().collect::<BTreeMap<_, _>>()
    );
    println!(
        "chaos: outcome: {} delivered, {} doomed ({} in dead.letter), {} still queued; duplicates {} ({} outside the at-least-once window); owner unknown for {} receipts",
        f.delivered,
        f.doomed,
        f.dead,
        f.queued,
        f.duplicates,
        f.unexplained,
        receipts.iter().filter(|r| r.pid.is_none()).count()
    );
    println!(
        "chaos: lost {}, misreported {}",
        failures.iter().filter(|l| l.starts_with("LOST")).count(),
        failures
            .iter()
            .filter(|l| l.starts_with("MISREPORTED"))
            .count()
    );
    assert!(
        failures.is_empty(),
        "chaos (seed {seed}) found {} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[derive(Default)]
struct Figures {
    exit_ok: usize,
    exit_other: BTreeMap<i32, usize>,
    submit_killed: usize,
    delivered: usize,
    dead: usize,
    queued: usize,
    doomed: usize,
    duplicates: usize,
    unexplained: usize,
}

fn end_label(e: &End) -> String {
    match e {
        End::Exited(c) => format!("exit {c}"),
        End::Killed => "killed".into(),
        End::Hung => "hung".into(),
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(10));
    }
}

/// The CI size: a few hundred messages, a few minutes at most.
#[test]
fn chaos_nothing_lost_nothing_misreported() {
    run_chaos(400);
}

/// The larger run: `CHAOS_MESSAGES=5000 cargo test --test chaos
/// -- --ignored --nocapture`, or bench/chaos.sh.
#[test]
#[ignore]
fn chaos_large() {
    run_chaos(3000);
}
