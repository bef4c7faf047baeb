//! Local mail reaches each recipient's own mailbox (issue 14), through the
//! real binary: one user's mail to another waits for root's queue run,
//! which writes it as the recipient; root's own mail to a user is written
//! by a process running as that user; an unknown user bounces; a Maildir
//! whose `new` is a symlink is never written through.
//!
//! The tests that need users create throwaway ones (`useradd`, homes in
//! a temporary directory, removed at the end) and need root: they say so
//! and skip otherwise (CI runs them as root). Mboxes go to a scratch mail
//! spool (`SMTPSEND_MAIL_DIR`, root:mail 2775 as on Debian), never
//! /var/mail.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::*;

fn is_root() -> bool {
    tempfile::tempfile().unwrap().metadata().unwrap().uid() == 0
}

/// A throwaway user with its home in the test's directory; removed on
/// drop.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl User {
    fn new(name: &str, base: &Path) -> Option<User> {
        let _ = Command::new("userdel")
            .arg(name)
            .stderr(Stdio::null())
            .status();
        let home = base.join(name);
        let ok = Command::new("useradd")
            .args(["-M", "-N", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(name)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let id = |flag: &str| -> Option<u32> {
            let o = Command::new("id").args([flag, name]).output().ok()?;
            String::from_utf8_lossy(&o.stdout).trim().parse().ok()
        };
        let (uid, gid) = (id("-u")?, id("-g")?);
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(User {
            name: name.to_owned(),
            uid,
            gid,
            home,
        })
    }

    /// Makes `~/Maildir` (and `new` as `new_is`) as the user would.
    fn maildir(&self) -> PathBuf {
        let md = self.home.join("Maildir");
        std::fs::create_dir(&md).unwrap();
        std::os::unix::fs::chown(&md, Some(self.uid), Some(self.gid)).unwrap();
        std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o700)).unwrap();
        md
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// A scratch area every user can traverse: a system spool (root, 1733),
/// a mail spool (root, 1777), a configuration.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let w = World { dir };
        for (d, mode) in [("spool", 0o1733), ("mail", 0o1777), ("root", 0o700)] {
            std::fs::create_dir(w.path(d)).unwrap();
            std::fs::set_permissions(w.path(d), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // The mail spool as Debian has it: root:mail 2775 (the users are
        // not in group mail: the writer gets it for the dotlock).
        if let Some(mail) = group_id("mail") {
            std::os::unix::fs::chown(w.path("mail"), Some(0), Some(mail)).unwrap();
            std::fs::set_permissions(w.path("mail"), std::fs::Permissions::from_mode(0o2775))
                .unwrap();
        }
        w.config("");
        w
    }

    /// (Re)writes the configuration (root's, 0644) with `extra` lines.
    fn config(&self, extra: &str) {
        std::fs::write(
            self.path("smtpsend.toml"),
            format!(
                "queue_dir = \"{}\"\nlocal_domains = [\"localhost\"]\ntimeout = 5\n{extra}",
                self.path("spool").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            self.path("smtpsend.toml"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The binary with the world's configuration, as `user` (else root).
    fn run(&self, user: Option<&User>, args: &[&str], stdin: &[u8]) -> Out {
        let cfg = self.path("smtpsend.toml");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtpsend"));
        cmd.arg("-C")
            .arg(&cfg)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SMTPSEND_NO_RETRIER", "1")
            .env("SMTPSEND_MAIL_DIR", self.path("mail"))
            .env("TZ", "UTC")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match user {
            Some(u) => {
                cmd.uid(u.uid)
                    .gid(u.gid)
                    .env("HOME", &u.home)
                    .env("LOGNAME", &u.name)
                    .env("USER", &u.name);
            }
            None => {
                cmd.env("HOME", self.path("root")).env("LOGNAME", "root");
            }
        }
        run_command(&mut cmd, stdin)
    }

    /// The files queued in `uid`'s directory of the system spool.
    fn queued(&self, uid: u32) -> usize {
        std::fs::read_dir(self.path("spool").join(uid.to_string()).join("msg"))
            .map(|d| d.flatten().count())
            .unwrap_or(0)
    }
}

fn group_id(name: &str) -> Option<u32> {
    let o = Command::new("getent").args(["group", name]).output().ok()?;
    String::from_utf8_lossy(&o.stdout)
        .split(':')
        .nth(2)?
        .trim()
        .parse()
        .ok()
}

fn users(base: &Path, names: &[&str]) -> Option<Vec<User>> {
    if !is_root() {
        eprintln!("not root: cannot create users or write as them; skipped");
        return None;
    }
    let mut out = Vec::new();
    for n in names {
        match User::new(n, base) {
            Some(u) => out.push(u),
            None => {
                eprintln!("useradd {n} failed: skipped");
                return None;
            }
        }
    }
    Some(out)
}

#[test]
fn a_users_mail_to_another_waits_for_root_and_lands_in_their_mbox() {
    let w = World::new();
    let Some(us) = users(w.dir.path(), &["smtpsend-mbx-alice", "smtpsend-mbx-bob"]) else {
        return;
    };
    let (alice, bob) = (&us[0], &us[1]);
    let to = format!("{}@localhost", bob.name);
    let out = w.run(
        Some(alice),
        &["-i", "-f", "alice@client.example", &to],
        b"Subject: for bob\n\nFrom the cron job\nhi\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let waiting = format!(
        "waiting for root's queue run to deliver into {}'s mailbox",
        bob.name
    );
    assert!(out.stderr.contains(&waiting), "{}", out.stderr);
    assert!(w.queued(alice.uid) > 0);
    // mailq says why.
    let q = w.run(Some(alice), &["-bp"], b"");
    assert!(q.stdout.contains(&waiting), "{}", q.stdout);
    assert!(!w.path("mail").join(&bob.name).exists());

    // Root's queue run: alice's runner hands it to root, which writes it
    // as bob; alice's runner records it done.
    let run = w.run(None, &["--queue-flush", "-v"], b"");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mbox_path = w.path("mail").join(&bob.name);
    let mbox = std::fs::read_to_string(&mbox_path)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    assert!(mbox.starts_with("From alice@client.example "), "{mbox}");
    assert!(
        mbox.contains("Return-Path: <alice@client.example>\n"),
        "{mbox}"
    );
    assert!(mbox.contains(&format!("Delivered-To: {to}\n")), "{mbox}");
    assert!(mbox.contains("\n>From the cron job\nhi\n"), "{mbox}");
    let meta = std::fs::metadata(&mbox_path).unwrap();
    assert_eq!(meta.uid(), bob.uid, "written by bob, not root");
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert!(!w.path("mail").join(format!("{}.lock", bob.name)).exists());
    // Nothing in alice's mailbox; the entry is gone.
    assert!(!w.path("mail").join(&alice.name).exists());
    assert_eq!(w.queued(alice.uid), 0, "{}", run.stderr);
}

#[test]
fn a_users_mail_to_herself_in_a_spool_she_cannot_write_waits_for_root() {
    let w = World::new();
    if group_id("mail").is_none() {
        eprintln!("no group mail: skipped");
        return;
    }
    let Some(us) = users(w.dir.path(), &["smtpsend-mbx-gina"]) else {
        return;
    };
    let gina = &us[0];
    let to = format!("{}@localhost", gina.name);
    let out = w.run(Some(gina), &["-i", &to], b"Subject: cron\n\nout\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("waiting for root's queue run"),
        "{}",
        out.stderr
    );
    let run = w.run(None, &["--queue-flush"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mbox = w.path("mail").join(&gina.name);
    let text = std::fs::read_to_string(&mbox).unwrap_or_else(|e| panic!("{e}: {}", run.stderr));
    assert!(text.contains("Subject: cron\n"), "{text}");
    assert_eq!(std::fs::metadata(&mbox).unwrap().uid(), gina.uid);
    assert_eq!(w.queued(gina.uid), 0);
}

#[test]
fn roots_mail_to_a_user_is_written_as_that_user_and_never_through_a_symlink() {
    let w = World::new();
    let Some(us) = users(w.dir.path(), &["smtpsend-mbx-carol", "smtpsend-mbx-dave"]) else {
        return;
    };
    let (carol, dave) = (&us[0], &us[1]);
    let md = carol.maildir();
    let out = w.run(None, &["-i", &carol.name], b"Subject: for carol\n\nhello\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let files: Vec<_> = std::fs::read_dir(md.join("new"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{}", out.stderr);
    let meta = std::fs::metadata(&files[0]).unwrap();
    assert_eq!(meta.uid(), carol.uid);
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(md.join("new")).unwrap().uid(), carol.uid);
    assert!(!w.path("mail").join(&carol.name).exists());

    // dave's Maildir/new is a symlink to a directory of dave's elsewhere:
    // never written through; the message stays queued with the reason.
    let md = dave.maildir();
    let elsewhere = dave.home.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::chown(&elsewhere, Some(dave.uid), Some(dave.gid)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, md.join("new")).unwrap();
    let out = w.run(None, &["-i", &dave.name], b"Subject: for dave\n\nhello\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("queued"), "{}", out.stderr);
    assert!(out.stderr.contains("new"), "{}", out.stderr);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
    assert!(w.queued(0) > 0);
}

#[test]
fn a_local_recipient_waiting_for_root_does_not_hold_up_the_relay() {
    let w = World::new();
    let Some(us) = users(w.dir.path(), &["smtpsend-mbx-erin", "smtpsend-mbx-frank"]) else {
        return;
    };
    let (erin, frank) = (&us[0], &us[1]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    w.config(&format!(
        "host = \"127.0.0.1\"\nport = {closed}\ntls = \"none\"\n"
    ));
    let to = format!("{}@localhost", frank.name);
    let out = w.run(Some(erin), &["-i", &to], b"Subject: one\n\none\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = w.run(
        Some(erin),
        &["-i", "far@example.net"],
        b"Subject: two\n\ntwo\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let server = ScriptedServer::start(Script::new());
    w.config(&format!(
        "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        server.port()
    ));
    // Erin's own run: the older message waits for root (it is frank's
    // mailbox), which must not count as the relay failing.
    let run = w.run(Some(erin), &["--queue-flush", "-v"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let t = server.finish();
    assert_eq!(t.messages().len(), 1, "{}", run.stderr);
    assert_eq!(t.messages()[0].rcpt_addrs(), ["far@example.net"]);
}

#[test]
fn the_mailbox_writer_mode_is_refused_on_a_command_line() {
    // As PHP's mail() could pass it to /usr/sbin/sendmail: nothing written.
    let env = BinEnv::new();
    let target = env.path("webroot");
    for argv0_args in [
        vec![
            "--deliver-local",
            "www-data",
            "maildir",
            target.to_str().unwrap(),
            "",
        ],
        vec![
            "--deliver-local",
            "root",
            "mbox",
            target.to_str().unwrap(),
            "a@b",
        ],
    ] {
        let out = env.run(&argv0_args, b"<?php system($_GET['c']); ?>\n");
        assert_eq!(out.code, 64, "{}", out.stderr);
        assert!(
            out.stderr.contains("not for use on a command line"),
            "{}",
            out.stderr
        );
        assert!(!target.exists());
    }
}

#[test]
fn an_unknown_local_user_bounces_with_a_reason() {
    let env = BinEnv::new();
    let out = env.run(
        &["-i", "no-such-user-smtpsend@localhost"],
        b"Subject: lost\n\nbody of lost\n",
    );
    assert_eq!(out.code, 67, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("5.1.1 no local user \"no-such-user-smtpsend\""),
        "{}",
        out.stderr
    );
    let dl = std::fs::read_to_string(env.path("dead.letter")).unwrap();
    assert!(dl.contains("body of lost") && dl.contains("5.1.1"), "{dl}");
}
