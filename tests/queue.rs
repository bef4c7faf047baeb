//! Nothing lost: the durable queue through the real binary. A relay that
//! is down and then up, kill -9 mid-data, concurrent queue runs, a
//! thousand messages over reused connections, dead.letter for refusals and
//! expiry, an unwritable spool, a full disk, no relay configured, and the
//! queue commands.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use smtpsend::queue::{NewMessage, Queue};
use support::*;

struct Env {
    bin: BinEnv,
}

impl Env {
    fn new() -> Env {
        Env { bin: BinEnv::new() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.bin.path(p)
    }

    fn queue_dir(&self) -> PathBuf {
        self.path("queue")
    }

    /// (Re)writes the configuration: a relay on `port` (or none).
    fn config(&self, port: Option<u16>, extra: &str) -> PathBuf {
        let p = self.path("config.toml");
        let relay = match port {
            Some(port) => format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n"),
            None => String::new(),
        };
        std::fs::write(
            &p,
            format!(
                "{relay}domain = \"client.example\"\nqueue_dir = \"{}\"\ntimeout = 5\n{extra}",
                self.queue_dir().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// The binary with the test's configuration file.
    fn command(&self, args: &[&str]) -> Command {
        let cfg = self.path("config.toml");
        let mut all = vec!["-C", cfg.to_str().unwrap()];
        all.extend(args);
        self.bin.command(&all)
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Out {
        let cfg = self.path("config.toml");
        let mut all = vec!["-C", cfg.to_str().unwrap()];
        all.extend(args);
        self.bin.run(&all, stdin)
    }

    fn queued(&self) -> usize {
        std::fs::read_dir(self.queue_dir().join("msg"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "env"))
                    .count()
            })
            .unwrap_or(0)
    }

    fn dead_letter(&self) -> String {
        std::fs::read_to_string(self.path("dead.letter")).unwrap_or_default()
    }
}

#[test]
fn relay_down_then_up_delivers_exactly_once() {
    let env = Env::new();
    env.config(Some(closed_port()), "");
    let out = env.run(&["-i", "b@example.org"], &msg("down-up"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("queued as ") && line.contains("will retry"),
        "{line}"
    );
    assert_eq!(env.queued(), 1);

    let list = env.run(&["-bp"], b"");
    assert!(
        list.stdout.contains("b@example.org") && list.stdout.contains("1 Request"),
        "{}",
        list.stdout
    );

    let server = ScriptedServer::start(Script::new().max_connections(3));
    env.config(Some(server.port()), "");
    // Not due yet (backoff): a plain -q leaves it; --queue-flush sends it.
    let run = env.run(&["-q"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.queued(), 1);
    let run = env.run(&["--queue-flush"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.queued(), 0);
    let again = env.run(&["--queue-flush"], b"");
    assert_eq!(again.code, 0);
    let t = server.finish();
    let m = t.messages();
    assert_eq!(m.len(), 1, "delivered once");
    assert!(m[0].content_str().contains("body of down-up"));
    assert_eq!(env.run(&["-bp"], b"").stdout.trim(), "Mail queue is empty");
}

#[test]
fn kill_9_mid_data_keeps_the_message() {
    let env = Env::new();
    let stalling =
        ScriptedServer::start(Script::new().stall_at(Step::DataBytes(10), Duration::from_secs(20)));
    env.config(Some(stalling.port()), "");
    let mut child: Child = env.command(&["-i", "b@example.org"]).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&msg("killed"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(stalling);
    assert_eq!(env.queued(), 1, "the message must still be queued");

    let server = ScriptedServer::start(Script::new());
    env.config(Some(server.port()), "");
    let run = env.run(&["--queue-flush"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.queued(), 0);
    let t = server.finish();
    assert_eq!(t.messages().len(), 1);
    assert!(t.messages()[0].content_str().contains("body of killed"));
}

fn spool_many(env: &Env, n: usize) {
    let q = Queue::open(&env.queue_dir()).unwrap();
    for i in 0..n {
        let body = format!(
            "Subject: bulk {i}\r\nMessage-ID: <bulk{i}@client.example>\r\n\r\nmessage {i}\r\n"
        );
        let s = q
            .spool(
                &mut body.as_bytes(),
                NewMessage {
                    profile: "default".into(),
                    sender: "a@example.org".into(),
                    recipients: vec![format!("r{i}@example.org")],
                    ..Default::default()
                },
            )
            .unwrap();
        drop(s);
    }
}

#[test]
fn concurrent_queue_runs_deliver_each_message_once() {
    let env = Env::new();
    env.config(Some(closed_port()), "");
    spool_many(&env, 200);
    let server = ScriptedServer::start(
        Script::new()
            .max_connections(400)
            .io_timeout(Duration::from_secs(30)),
    );
    env.config(Some(server.port()), "");
    let a = env.command(&["--queue-flush"]).spawn().unwrap();
    let b = env.command(&["--queue-flush"]).spawn().unwrap();
    let c = env.command(&["-q"]).spawn().unwrap();
    for child in [a, b, c] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Anything a run skipped because another held it is still here.
    let rest = env.run(&["--queue-flush"], b"");
    assert_eq!(rest.code, 0);
    assert_eq!(env.queued(), 0);
    let t = server.finish();
    let mut rcpts: Vec<String> = t
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_addrs())
        .map(String::from)
        .collect();
    assert_eq!(rcpts.len(), 200, "each exactly once");
    rcpts.sort();
    rcpts.dedup();
    assert_eq!(rcpts.len(), 200);
}

#[test]
fn a_thousand_messages_reuse_one_connection() {
    let env = Env::new();
    env.config(Some(closed_port()), "");
    spool_many(&env, 1000);
    let server = ScriptedServer::start(
        Script::new()
            .max_connections(1000)
            .io_timeout(Duration::from_secs(60)),
    );
    env.config(Some(server.port()), "");
    let run = env.run(&["--queue-flush"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.queued(), 0);
    let t = server.finish();
    assert_eq!(t.messages().len(), 1000);
    assert_eq!(t.accepted(), 1, "one session for the whole run");
}

#[test]
fn permanent_refusals_land_in_dead_letter() {
    let env = Env::new();
    let server = ScriptedServer::start(
        Script::new()
            .reply_to(
                "RCPT TO:<gone@",
                "550 5.1.1 <gone@example.org>: no such user",
            )
            .max_connections(3),
    );
    env.config(Some(server.port()), "");
    // Every recipient refused: bounced, exit 67, copy in dead.letter.
    let out = env.run(&["-i", "gone@example.org"], &msg("refused"));
    assert_eq!(out.code, 67, "{}", out.stderr);
    assert!(
        out.stderr.contains("550") && out.stderr.contains("dead.letter"),
        "{}",
        out.stderr
    );
    let dl = env.dead_letter();
    assert!(
        dl.starts_with("From a@example.org ") || dl.starts_with("From "),
        "{dl}"
    );
    assert!(
        dl.contains("no such user") && dl.contains("body of refused"),
        "{dl}"
    );
    // Partial refusal: delivered to the rest, exit 0, refused reported.
    let out = env.run(
        &["-i", "gone@example.org", "ok@example.org"],
        &msg("partial"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("gone@example.org") && out.stderr.contains("550"),
        "{}",
        out.stderr
    );
    assert!(env.dead_letter().contains("body of partial"));
    assert_eq!(env.queued(), 0);
    let t = server.finish();
    assert_eq!(t.messages().iter().filter(|m| m.accepted).count(), 1);
}

#[test]
fn expired_messages_go_to_dead_letter() {
    let env = Env::new();
    env.config(Some(closed_port()), "queue_lifetime = \"1s\"\n");
    let out = env.run(&["-i", "b@example.org"], &msg("expiring"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.queued(), 1);
    std::thread::sleep(Duration::from_millis(1200));
    let run = env.run(&["--queue-flush"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.queued(), 0);
    let dl = env.dead_letter();
    assert!(
        dl.contains("queue_lifetime") && dl.contains("body of expiring"),
        "{dl}"
    );
}

#[test]
fn no_relay_configured_keeps_remote_mail_and_delivers_local() {
    let env = Env::new();
    env.config(None, "");
    // The user running the test, whose ~/Maildir (in the scratch HOME)
    // exists: local mail goes to each recipient's own mailbox (issue 14).
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8(me.stdout).unwrap().trim().to_owned();
    std::fs::create_dir(env.path("Maildir")).unwrap();
    let out = env.run(&["-i", &me, "far@example.net"], &msg("mixed"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("no relay configured"), "{}", out.stderr);
    // me@client.example is this machine's profile domain: local.
    assert_eq!(
        std::fs::read_dir(env.path("Maildir/new")).unwrap().count(),
        1
    );
    assert_eq!(env.queued(), 1);
    let server = ScriptedServer::start(Script::new());
    env.config(Some(server.port()), "");
    assert_eq!(env.run(&["--queue-flush"], b"").code, 0);
    let t = server.finish();
    assert_eq!(t.messages()[0].rcpt_addrs(), ["far@example.net"]);
    assert_eq!(env.queued(), 0);
}

#[test]
fn queue_delete_and_fail_fast_mode() {
    let env = Env::new();
    env.config(Some(closed_port()), "");
    env.run(&["-i", "b@example.org"], &msg("to-delete"));
    let list = env.run(&["--queue-list"], b"");
    let id = list
        .stdout
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let del = env.run(&["--queue-delete", &id], b"");
    assert_eq!(del.code, 0, "{}", del.stderr);
    assert_eq!(env.queued(), 0);
    assert_eq!(env.run(&["--queue-delete", &id], b"").code, 66);
    assert_eq!(
        env.run(&["--queue-delete", "../../etc/passwd"], b"").code,
        64
    );
    // --no-queue (queue = false): EX_TEMPFAIL and nothing kept.
    let out = env.run(&["--no-queue", "-i", "b@example.org"], &msg("fail-fast"));
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert_eq!(env.queued(), 0);
}

#[test]
fn unwritable_spool_falls_back_to_direct_delivery() {
    let env = Env::new();
    let server = ScriptedServer::start(Script::new().max_connections(2));
    // The queue directory is a file: nothing can be spooled there, nor in
    // the user's state dir (also a file), nor in /var/spool/smtpsend
    // unless it exists and is writable: then that one is used.
    std::fs::write(env.queue_dir(), b"not a directory").unwrap();
    std::fs::write(env.path("state"), b"not a directory").unwrap();
    env.config(Some(server.port()), "");
    let out = env.run(&["-i", "b@example.org"], &msg("direct"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = server.finish();
    assert_eq!(t.messages().len(), 1);
}

fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn full_disk_never_reports_success_without_the_message() {
    let env = Env::new();
    if !mount_tmpfs(&env.queue_dir(), "64k") {
        eprintln!("cannot mount a tmpfs here (needs root): skipped");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(env.queue_dir());
    let server = ScriptedServer::start(Script::new());
    env.config(Some(server.port()), "");
    let mut big = msg("too-big-for-the-disk");
    big.extend(std::iter::repeat_n(b'x', 512 * 1024));
    let out = env.run(&["-i", "b@example.org"], &big);
    assert_eq!(
        out.code, 75,
        "must fail so the caller keeps it: {}",
        out.stderr
    );
    assert!(out.stderr.contains("spool"), "{}", out.stderr);
    let t = server.finish();
    assert_eq!(t.accepted(), 0, "nothing half-sent");
    // Nothing half-written left in the queue.
    assert_eq!(env.queued(), 0);
}

#[test]
fn failover_to_the_next_host_on_a_transient_failure() {
    let env = Env::new();
    let server = ScriptedServer::start(Script::new());
    let p = env.path("config.toml");
    std::fs::write(
        &p,
        format!(
            "host = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\ntls = \"none\"\ndomain = \"client.example\"\nqueue_dir = \"{}\"\ntimeout = 5\n",
            closed_port(),
            server.port(),
            env.queue_dir().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&["-i", "b@example.org"], &msg("failover"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.queued(), 0);
    assert_eq!(server.finish().messages().len(), 1);
}

#[test]
fn a_successful_send_drains_older_queued_mail_on_the_same_connection() {
    let env = Env::new();
    env.config(Some(closed_port()), "");
    for i in 0..3 {
        assert_eq!(
            env.run(&["-i", "old@example.org"], &msg(&format!("old {i}")))
                .code,
            0
        );
    }
    assert_eq!(env.queued(), 3);
    // Make them due now: the backoff would otherwise hold them 30 s.
    for e in std::fs::read_dir(env.queue_dir().join("msg"))
        .unwrap()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "env") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let fixed: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("next_attempt") {
                        "next_attempt = 2000-01-01T00:00:00Z".to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(e.path(), fixed + "\n").unwrap();
        }
    }
    // And the hint that says when something of the profile is due (the
    // submission asks only that, at constant cost).
    let hints: Vec<_> = std::fs::read_dir(env.queue_dir().join("hint"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(hints.len(), 1, "one profile deferred");
    for h in hints {
        std::fs::File::options()
            .write(true)
            .open(h.path())
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(946_684_800))
            .unwrap();
    }
    let server = ScriptedServer::start(Script::new().max_connections(2));
    env.config(Some(server.port()), "");
    let out = env.run(&["-i", "new@example.org"], &msg("new"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.queued(), 0, "the older messages went out too");
    let t = server.finish();
    assert_eq!(t.accepted(), 1, "over the same connection");
    assert_eq!(t.messages().len(), 4);
}

/// Issue 15: submitting costs the same whatever the backlog. With the
/// relay down, one submission opens as many files with 300 messages
/// queued as with none (it used to read every queued entry's metadata).
#[test]
fn a_submission_does_not_read_the_backlog() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("no strace: skipped");
        return;
    }
    let env = Env::new();
    env.config(Some(closed_port()), "");
    let opens = |label: &str| -> usize {
        let trace = env.path(&format!("trace.{label}"));
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-e", "trace=open,openat,openat2", "-o"])
            .arg(&trace)
            .arg(env!("CARGO_BIN_EXE_smtpsend"));
        let inner = env.command(&["-i", "b@example.org"]);
        cmd.args(inner.get_args())
            .env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(&msg(label)).unwrap();
        assert!(child.wait().unwrap().success());
        std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .filter(|l| l.contains("open"))
            .count()
    };
    let empty = opens("empty");
    spool_many(&env, 300);
    let full = opens("full");
    assert!(
        full <= empty + 2,
        "{empty} opens with an empty queue, {full} with 300 queued"
    );
}
