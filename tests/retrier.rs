//! The detached retrier (src/retrier.rs, src/app/background.rs) with the
//! real binary: a message deferred by the relay is delivered by the
//! retrier the submission left behind, with no command run; the caller is
//! never kept waiting; the retrier holds none of its descriptors, leads
//! its own session, and exits once the queue is empty. Switched off, none
//! is started, and mailq says when the next attempt is due.

mod support;

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;

/// How long the submission may take before we call it hung.
const SUBMIT_LIMIT: Duration = Duration::from_secs(30);
/// The queue's first retry comes after at most this (its schedule plus
/// the retrier's own minimum sleep).
const RETRY_LIMIT: Duration = Duration::from_secs(150);

fn write_config(env: &BinEnv, port: u16) {
    let dir = env.path("xdg-config/smtpsend");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = 10\n"),
    )
    .unwrap();
}

/// Runs a submission with the retrier allowed; returns (code, stderr).
/// Reading both pipes to EOF in bounded time proves that no process (the
/// retrier) kept a copy of them.
fn submit(env: &BinEnv, retrier: bool) -> (i32, String) {
    let mut cmd = env.command(&["rcpt@example.org"]);
    if retrier {
        cmd.env_remove("SMTPSEND_NO_RETRIER");
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Subject: retrier test\n\nhello\n")
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(SUBMIT_LIMIT)
        .expect("the submission (or a child holding its pipes) kept the caller waiting")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The pids of retriers whose HOME is `home`.
fn retriers(home: &Path) -> Vec<u32> {
    let want = format!("HOME={}", home.display());
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if !cmdline.split(|b| *b == 0).any(|a| a == b"--queue-retrier") {
            continue;
        }
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        if environ.split(|b| *b == 0).any(|v| v == want.as_bytes()) && !is_zombie(pid) {
            pids.push(pid);
        }
    }
    pids
}

fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .is_none_or(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
}

fn session_of(pid: &str) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(") ").unwrap().1;
    rest.split(' ').nth(3).unwrap().to_owned()
}

#[test]
fn a_deferred_message_is_delivered_by_the_retrier_with_no_command_run() {
    // Both submissions are deferred; the retrier's run delivers both over
    // the third connection.
    let server = ScriptedServer::start_each(vec![
        Script::new().reply_at(Step::Mail, "451 4.3.0 try again later"),
        Script::new().reply_at(Step::Mail, "451 4.3.0 try again later"),
        // It waits for the retrier's connection as long as the test does.
        Script::new().io_timeout(RETRY_LIMIT),
    ]);
    let env = BinEnv::new();
    write_config(&env, server.port());

    let (code, stderr) = submit(&env, true);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("queued as"), "{stderr}");

    let pids = retriers(env.dir.path());
    assert_eq!(pids.len(), 1, "one retrier for this uid's queue: {pids:?}");
    let pid = pids[0].to_string();
    // It detaches first thing; give it the moment that takes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while session_of(&pid) != pid {
        assert!(
            Instant::now() < deadline,
            "the retrier did not start its own session"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert!(fds <= 6, "the retrier holds {fds} descriptors");
    assert_eq!(session_of(&pid), pid, "the retrier leads its own session");
    assert_ne!(session_of("self"), pid);

    // A second submission while it runs starts no second retrier.
    let (code, stderr) = submit(&env, true);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("queued as"), "{stderr}");
    assert_eq!(retriers(env.dir.path()), pids);

    // Nothing is run from here on: the retrier sends both on the queue's
    // schedule.
    let t = server.wait(RETRY_LIMIT);
    assert_eq!(t.accepted(), 3, "{t:#?}");
    let accepted = t.connections[2]
        .messages
        .iter()
        .filter(|m| m.accepted)
        .count();
    assert_eq!(accepted, 2, "the retrier's run: {t:#?}");

    // With the queue empty, the retrier exits.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !retriers(env.dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "the retrier did not exit");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = env.run(&["-bp"], b"");
    assert!(!out.stdout.contains("rcpt@example.org"), "{}", out.stdout);
}

#[test]
fn switched_off_by_the_environment_no_retrier_is_left() {
    let env = BinEnv::new();
    // A relay that refuses connections: the message is queued.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    write_config(&env, port);
    let (code, stderr) = submit(&env, false);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("queued as"), "{stderr}");
    assert!(retriers(env.dir.path()).is_empty());
    // mailq says when the queue's schedule tries it again.
    let out = env.run(&["-bp"], b"");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("next attempt: "))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(line.contains("next attempt: 20"), "{line}");
}
