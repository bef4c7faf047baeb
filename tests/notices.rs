//! Bounce and delay notices to the local sender through the real binary
//! (issue 14): a refused or expired queued message gets "Undelivered Mail
//! Returned to Sender" in the sender's own Maildir besides the dead.letter
//! copy, a long-waiting one exactly one "Delayed Mail" notice, a null
//! sender never one; and the local-delivery line names the file to set a
//! relay in.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

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

    /// Writes the configuration: a relay on `port` (or none).
    fn config(&self, port: Option<u16>, extra: &str) {
        let p = self.path("config.toml");
        let relay = match port {
            Some(port) => format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n"),
            None => String::new(),
        };
        std::fs::write(
            &p,
            format!(
                "{relay}domain = \"client.example\"\nqueue_dir = \"{}\"\ntimeout = 5\n{extra}",
                self.path("queue").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// The binary with the configuration and `MAILDIR` set to the
    /// sender's own Maildir.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Out {
        let cfg = self.path("config.toml");
        let mut all = vec!["-C", cfg.to_str().unwrap()];
        all.extend(args);
        let md = self.path("Maildir");
        self.bin
            .run_env(&all, stdin, &[("MAILDIR", md.to_str().unwrap())])
    }

    fn queued(&self) -> usize {
        std::fs::read_dir(self.path("queue").join("msg"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "env"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The messages in the sender's Maildir.
    fn mailbox(&self) -> Vec<String> {
        let Ok(d) = std::fs::read_dir(self.path("Maildir/new")) else {
            return Vec::new();
        };
        d.flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    }

    fn dead_letter(&self) -> String {
        std::fs::read_to_string(self.path("dead.letter")).unwrap_or_default()
    }
}

fn refusing_server() -> ScriptedServer {
    ScriptedServer::start(
        Script::new()
            .reply_to(
                "RCPT TO:<gone@",
                "550 5.1.1 <gone@example.org>: no such user",
            )
            .max_connections(3),
    )
}

#[test]
fn a_refused_message_bounces_with_a_notice_to_the_sender() {
    let env = Env::new();
    let server = refusing_server();
    env.config(Some(server.port()), "");
    let out = env.run(&["-i", "gone@example.org"], &msg("refused"));
    assert_eq!(out.code, 67, "{}", out.stderr);
    assert!(env.dead_letter().contains("body of refused"));
    let notices = env.mailbox();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let n = &notices[0];
    assert!(n.starts_with("Return-Path: <>\n"), "{n}");
    assert!(
        n.contains("Subject: Undelivered Mail Returned to Sender\n"),
        "{n}"
    );
    assert!(n.contains("MAILER-DAEMON@"), "{n}");
    assert!(
        n.contains("<gone@example.org>: ") && n.contains("550 5.1.1"),
        "{n}"
    );
    assert!(n.contains("no such user"), "{n}");
    assert!(
        n.contains(&env.path("dead.letter").display().to_string()),
        "{n}"
    );
    assert!(n.contains("queue ID "), "{n}");
    // The original header, never the body.
    assert!(n.contains("Subject: refused\n"), "{n}");
    assert!(!n.contains("body of refused"), "{n}");
    assert_eq!(env.queued(), 0);
    server.finish();
}

#[test]
fn a_null_sender_never_gets_a_notice() {
    let env = Env::new();
    let server = refusing_server();
    env.config(Some(server.port()), "");
    let out = env.run(&["-f", "<>", "-i", "gone@example.org"], &msg("bounce"));
    assert_eq!(out.code, 67, "{}", out.stderr);
    assert!(env.dead_letter().contains("body of bounce"));
    assert!(env.mailbox().is_empty(), "{:?}", env.mailbox());
    server.finish();

    // Nor a delay notice.
    env.config(Some(closed_port()), "delay_warning_time = \"1s\"\n");
    let out = env.run(&["-f", "<>", "-i", "b@example.org"], &msg("waiting"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(env.run(&["--queue-flush"], b"").code, 0);
    assert_eq!(env.queued(), 1);
    assert!(env.mailbox().is_empty(), "{:?}", env.mailbox());
}

#[test]
fn an_expired_message_bounces_with_a_notice() {
    let env = Env::new();
    env.config(
        Some(closed_port()),
        "queue_lifetime = \"1s\"\ndelay_warning_time = \"0\"\n",
    );
    let out = env.run(&["-i", "b@example.org"], &msg("expiring"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env.mailbox().is_empty());
    std::thread::sleep(Duration::from_millis(1200));
    let run = env.run(&["--queue-flush"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.queued(), 0);
    assert!(env.dead_letter().contains("body of expiring"));
    let notices = env.mailbox();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let n = &notices[0];
    assert!(
        n.contains("Subject: Undelivered Mail Returned to Sender\n"),
        "{n}"
    );
    assert!(
        n.contains("<b@example.org>: ") && n.contains("queue_lifetime"),
        "{n}"
    );
}

#[test]
fn a_delayed_message_gets_exactly_one_delay_notice() {
    let env = Env::new();
    env.config(Some(closed_port()), "delay_warning_time = \"1s\"\n");
    let out = env.run(&["-i", "b@example.org"], &msg("slow"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Not yet waited long enough.
    assert!(env.mailbox().is_empty(), "{:?}", env.mailbox());
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..2 {
        let run = env.run(&["--queue-flush"], b"");
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert_eq!(env.queued(), 1);
    let notices = env.mailbox();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let n = &notices[0];
    assert!(
        n.contains("Subject: Delayed Mail (still being retried)\n"),
        "{n}"
    );
    assert!(
        n.contains("<b@example.org>: ") && n.contains("Action: delayed"),
        "{n}"
    );
    assert!(n.contains("Subject: slow\n"), "{n}");
    assert!(env.dead_letter().is_empty());
}

#[test]
fn the_local_delivery_line_says_where_to_configure_a_relay() {
    let env = Env::new();
    env.config(None, "");
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8(me.stdout).unwrap().trim().to_owned();
    let out = env.run(&["-i", &me], &msg("local"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with(&format!(
            "smtpsend: delivered locally to {}",
            env.path("Maildir").display()
        )),
        "{line}"
    );
    // The user's file under $XDG_CONFIG_HOME (in the scratch HOME: ~).
    assert!(
        line.ends_with(
            "(no relay configured: set host in ~/xdg-config/smtpsend/config.toml to send elsewhere)"
        ),
        "{line}"
    );
}

#[test]
fn a_notice_that_cannot_be_delivered_is_noted_and_holds_nothing_up() {
    let env = Env::new();
    let server = refusing_server();
    env.config(Some(server.port()), "");
    // The sender's "Maildir" is a file: no notice can go there.
    std::fs::write(env.path("Maildir"), "not a directory").unwrap();
    let out = env.run(&["-i", "gone@example.org"], &msg("refused"));
    assert_eq!(out.code, 67, "{}", out.stderr);
    assert!(env.dead_letter().contains("body of refused"));
    assert_eq!(env.queued(), 0);
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("550")
            && line.contains("the bounce notice to ")
            && line.contains("was not delivered"),
        "{line}"
    );
    server.finish();
}
