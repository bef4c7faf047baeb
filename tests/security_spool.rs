//! The spool as a privilege boundary (issue 12), through the real binary:
//! one user cannot read, change, delete or forge another's entries; a
//! forged entry is never sent with root's credentials; root writes
//! nothing outside the spool when directories are swapped for symlinks;
//! the free-space floor; a black-holing relay costs one timeout per run.
//!
//! The tests that need other users create them (`useradd`) and run the
//! binary as them with `runuser`; they need root, and say so and skip
//! when not run as root (CI runs them as root).

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use smtpsend::queue::{NewMessage, Queue};
use support::*;

const VICTIM: &str = "smtpsend-victim";
const ATTACKER: &str = "smtpsend-attacker";

fn is_root() -> bool {
    tempfile::tempfile().unwrap().metadata().unwrap().uid() == 0
}

/// Makes `name` (with a home, in group mail) unless it exists; its uid.
fn ensure_user(name: &str) -> Option<u32> {
    let id = || {
        Command::new("id")
            .args(["-u", name])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
    };
    if let Some(uid) = id() {
        return Some(uid);
    }
    let ok = Command::new("useradd")
        .args(["-m", "-G", "mail", "-s", "/bin/sh", name])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    id()
}

/// Root, and the two users: or a line saying why the test is skipped.
fn users() -> Option<(u32, u32)> {
    if !is_root() {
        eprintln!("not root: cannot create users or a root-owned spool; skipped");
        return None;
    }
    match (ensure_user(VICTIM), ensure_user(ATTACKER)) {
        (Some(v), Some(a)) => Some((v, a)),
        _ => {
            eprintln!("useradd failed: skipped");
            None
        }
    }
}

/// A scratch area other users can traverse, with a system spool (root,
/// 1733) and configuration files.
struct World {
    bin: BinEnv,
}

impl World {
    fn new() -> World {
        let bin = BinEnv::new();
        let spool = bin.path("spool");
        std::fs::create_dir(&spool).unwrap();
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o1733)).unwrap();
        World { bin }
    }

    fn spool(&self) -> PathBuf {
        self.bin.path("spool")
    }

    /// Writes a configuration `name` (root-owned, mode `mode`).
    fn config(&self, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = self.bin.path(name);
        std::fs::write(
            &p,
            format!(
                "queue_dir = \"{}\"\ndomain = \"client.example\"\ntimeout = 5\n{body}",
                self.spool().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    /// The users' configuration: a relay that is down, so mail queues.
    fn user_config(&self) -> PathBuf {
        let relay = format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
            closed_port()
        );
        self.config("user.toml", &relay, 0o644)
    }

    /// Runs the binary as `user` (`runuser`, its own HOME).
    fn as_user(&self, user: &str, args: &[&str], stdin: &[u8]) -> Out {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--", env!("CARGO_BIN_EXE_smtpsend")]);
        run(cmd.args(args), stdin)
    }

    /// Runs a shell command as `user`; whether it succeeded.
    fn sh_as(&self, user: &str, script: &str) -> bool {
        Command::new("runuser")
            .args(["-u", user, "--", "sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs the binary as root, with a clean environment.
    fn as_root(&self, args: &[&str], stdin: &[u8]) -> Out {
        self.bin.run(args, stdin)
    }
}

fn run(cmd: &mut Command, stdin: &[u8]) -> Out {
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_command(cmd, stdin)
}

/// The `.env` files under `dir/msg`.
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("msg"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "env"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn one_user_cannot_read_change_delete_or_forge_anothers_entries() {
    let Some((victim, attacker)) = users() else {
        return;
    };
    let w = World::new();
    let cfg = w.user_config();
    let cfg = cfg.to_str().unwrap();
    let out = w.as_user(
        VICTIM,
        &["-C", cfg, "-i", "friend@example.org"],
        &msg("private"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("queued as"), "{}", out.stderr);
    let vdir = w.spool().join(victim.to_string());
    let queued = entries(&vdir);
    assert_eq!(queued.len(), 1, "in the victim's own directory");
    let m = std::fs::metadata(&vdir).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (victim, 0o700));
    assert_eq!(
        std::fs::metadata(&queued[0]).unwrap().mode() & 0o7777,
        0o600
    );
    let before = std::fs::read(&queued[0]).unwrap();
    let id = queued[0].file_stem().unwrap().to_str().unwrap().to_owned();
    let v = vdir.display();
    let s = w.spool();
    let s = s.display();

    // Read: not the spool's list, not the directory, not the files.
    for script in [
        format!("ls {s}"),
        format!("ls {v}/msg"),
        format!("cat {v}/msg/{id}.env"),
        format!("cat {v}/msg/{id}.eml"),
    ] {
        assert!(!w.sh_as(ATTACKER, &script), "attacker could: {script}");
    }
    let list = w.as_user(ATTACKER, &["-C", cfg, "-bp"], b"");
    assert!(!list.stdout.contains(&id), "{}", list.stdout);
    // Change, delete, forge.
    for script in [
        format!("echo x >> {v}/msg/{id}.env"),
        format!("rm -f {v}/msg/{id}.env"),
        format!("rm -rf {v}"),
        format!("mv {v} {s}/moved"),
        format!("cp /etc/hostname {v}/msg/forged.env"),
        format!("ln -s /etc {v}/msg/x"),
    ] {
        assert!(!w.sh_as(ATTACKER, &script), "attacker could: {script}");
    }
    let del = w.as_user(ATTACKER, &["-C", cfg, "--queue-delete", &id], b"");
    assert_ne!(del.code, 0, "{}", del.stderr);
    assert_eq!(std::fs::read(&queued[0]).unwrap(), before);
    // Root sees it in mailq, and may remove it.
    let list = w.as_root(&["-C", cfg, "-bp"], b"");
    assert!(list.stdout.contains(&id), "{}", list.stdout);

    // Squatting the victim's name does not give the attacker its mail:
    // a directory made by the attacker under another uid's number is
    // refused, and the victim's mail goes elsewhere (its home queue).
    let squat = w.spool().join((victim + 1_000_000).to_string());
    assert!(w.sh_as(ATTACKER, &format!("mkdir -m 777 {}", squat.display())));
    let adir = w.spool().join(attacker.to_string());
    let out = w.as_user(ATTACKER, &["-C", cfg, "-i", "x@example.org"], &msg("mine"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        entries(&adir).len(),
        1,
        "the attacker's own mail in its own directory"
    );
    let _ = std::fs::remove_dir_all(&squat);
    let del = w.as_root(&["-C", cfg, "--queue-delete", &id], b"");
    assert_eq!(del.code, 0, "{}", del.stderr);
    assert!(entries(&vdir).is_empty());
}

#[test]
fn a_forged_entry_naming_roots_profile_is_never_sent_with_roots_credentials() {
    let Some((_victim, attacker)) = users() else {
        return;
    };
    let w = World::new();
    let server = ScriptedServer::start(
        Script::new()
            .auth_accept("rootuser", "rootsecret")
            .max_connections(4),
    );
    let root_cfg = w.config(
        "root.toml",
        &format!(
            "[profile.admin]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             allow_plaintext_auth = true\nuser = \"rootuser\"\npassword = \"rootsecret\"\n\
             from = \"root@client.example\"\n",
            server.port()
        ),
        0o600,
    );
    let user_cfg = w.user_config();
    // The attacker queues a message (relay down), then rewrites its
    // entry to name root's profile and a sender of its choosing: the
    // files stay its own, in its own directory.
    let out = w.as_user(
        ATTACKER,
        &["-C", user_cfg.to_str().unwrap(), "-i", "victim@example.org"],
        &msg("forged"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let adir = w.spool().join(attacker.to_string());
    let env = entries(&adir).pop().expect("queued");
    let forged = std::fs::read_to_string(&env)
        .unwrap()
        .replace("profile = \"default\"", "profile = \"admin\"")
        .replace("sender = \"", "sender = \"forged-")
        .lines()
        .map(|l| {
            if l.starts_with("next_attempt") {
                "next_attempt = 2000-01-01T00:00:00Z".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(forged.contains("profile = \"admin\""), "{forged}");
    let script = format!(
        "cat > {0}.new <<'EOF'\n{forged}\nEOF\nmv {0}.new {0}",
        env.display()
    );
    assert!(w.sh_as(ATTACKER, &script));
    // Nor can it drop an entry into root's own directory.
    let rootdir = w.spool().join("0");
    let _ = w.as_root(&["-C", root_cfg.to_str().unwrap(), "-bp"], b"");
    assert!(!w.sh_as(ATTACKER, &format!("touch {}/msg/x.env", rootdir.display())));
    // Root's own mail, for contrast: it goes with root's profile.
    let own = w.as_root(
        &[
            "-C",
            root_cfg.to_str().unwrap(),
            "-a",
            "admin",
            "-i",
            "someone@example.org",
        ],
        &msg("root's own"),
    );
    assert_eq!(own.code, 0, "{}", own.stderr);

    // Root's queue run, from cron.
    let run = w.as_root(&["-C", root_cfg.to_str().unwrap(), "-q", "-v"], b"");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let t = server.finish();
    let lines = t.lines().join("\n");
    let mail_froms: Vec<&str> = t
        .lines()
        .into_iter()
        .filter(|l| l.to_ascii_uppercase().starts_with("MAIL FROM"))
        .collect();
    assert!(
        !lines.contains("forged-"),
        "the forged entry reached root's relay:\n{lines}"
    );
    assert_eq!(mail_froms.len(), 1, "only root's own message:\n{lines}");
    assert_eq!(t.messages().len(), 1);
    // The forged entry is still there, tried once by the attacker's own
    // run (root re-executed smtpsend as the attacker, whose configuration
    // has no such profile and no relay).
    assert_eq!(entries(&adir).len(), 1);
    let after = std::fs::read_to_string(entries(&adir).pop().unwrap()).unwrap();
    assert!(after.contains("attempts = 2"), "{after}");
    assert_eq!(
        std::fs::metadata(entries(&adir).pop().unwrap())
            .unwrap()
            .uid(),
        attacker,
        "rewritten by the attacker's own process, not root"
    );
}

#[test]
fn root_writes_nothing_outside_the_spool_through_swapped_symlinks() {
    let Some((_victim, attacker)) = users() else {
        return;
    };
    let w = World::new();
    let canary = w.bin.path("canary");
    std::fs::create_dir(&canary).unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = w.user_config();
    let cfg = cfg.to_str().unwrap();
    let out = w.as_user(ATTACKER, &["-C", cfg, "-i", "x@example.org"], &msg("one"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let adir = w.spool().join(attacker.to_string());
    let c = canary.display();
    // Every subdirectory, then dead.letter, swapped for a symlink to the
    // canary between runs; root runs the queue, lists it, and submits.
    for sub in ["tmp", "msg", "corrupt", "dead", "hint"] {
        let d = adir.join(sub);
        let script = format!("mv {0} {0}.real && ln -s {c} {0}", d.display());
        assert!(w.sh_as(ATTACKER, &script), "{sub}");
        for args in [&["-q"][..], &["--queue-flush"], &["-bp"]] {
            let mut all = vec!["-C", cfg];
            all.extend(args);
            let _ = w.as_root(&all, b"");
        }
        let _ = w.as_root(&["-C", cfg, "-i", "y@example.org"], &msg("root"));
        assert_eq!(
            std::fs::read_dir(&canary).unwrap().count(),
            0,
            "something was written through {sub}"
        );
        let script = format!("rm {0} && mv {0}.real {0}", d.display());
        assert!(w.sh_as(ATTACKER, &script), "{sub}");
    }
    let dl = adir.join("dead/dead.letter");
    assert!(w.sh_as(
        ATTACKER,
        &format!("ln -sf {c}/dead.letter {}", dl.display())
    ));
    let _ = w.as_root(&["-C", cfg, "--queue-flush"], b"");
    assert_eq!(std::fs::read_dir(&canary).unwrap().count(), 0);

    // The old shared spool (group mail, 2770): root refuses to work in it
    // at all, so a member's symlinks lead nowhere.
    let shared = w.bin.path("shared");
    std::fs::create_dir(&shared).unwrap();
    Command::new("chgrp")
        .args(["mail"])
        .arg(&shared)
        .status()
        .unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2770)).unwrap();
    for sub in ["tmp", "msg", "corrupt", "dead"] {
        assert!(w.sh_as(ATTACKER, &format!("ln -s {c} {}/{sub}", shared.display())));
    }
    let shared_cfg = w.bin.path("shared.toml");
    std::fs::write(
        &shared_cfg,
        format!(
            "queue_dir = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = 5\n",
            shared.display(),
            closed_port()
        ),
    )
    .unwrap();
    let sc = shared_cfg.to_str().unwrap();
    let out = w.as_root(&["-C", sc, "-i", "z@example.org"], &msg("shared"));
    assert!(out.code == 0 || out.code == 75, "{}", out.stderr);
    let _ = w.as_root(&["-C", sc, "-q"], b"");
    assert_eq!(std::fs::read_dir(&canary).unwrap().count(), 0);
}

/// Submits one message with the queue in `q` (relay down, `extra`
/// configuration), expecting exit 75 and nothing left in the queue.
fn submit_below_floor(env: &BinEnv, q: &Path, extra: &str) -> Out {
    let cfg = env.path("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "queue_dir = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n{extra}",
            q.display(),
            closed_port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(
        &["-C", cfg.to_str().unwrap(), "-i", "b@example.org"],
        &msg("floor"),
    );
    assert_eq!(out.code, 75, "{}", out.stderr);
    for sub in ["msg", "tmp"] {
        let n = std::fs::read_dir(q.join(sub))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(n, 0, "{sub} holds something");
    }
    out
}

/// The floor through the configuration (`queue_min_free`), on any
/// machine: set above the disk's size, nothing is queued and the caller
/// is told to keep the message (exit 75).
#[test]
fn below_the_configured_free_space_floor_nothing_is_queued() {
    let env = BinEnv::new();
    let q = env.path("queue");
    let out = submit_below_floor(&env, &q, "queue_min_free = \"1000000000G\"\n");
    assert!(out.stderr.contains("queue_min_free"), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
}

/// A real small file system (tmpfs, 8 MiB) under the default 20 MiB floor.
#[test]
fn below_the_default_floor_of_a_small_disk_nothing_is_queued() {
    if !is_root() {
        eprintln!("not root: cannot mount a small tmpfs; skipped");
        return;
    }
    let env = BinEnv::new();
    let q = env.path("queue");
    std::fs::create_dir(&q).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs"])
        .arg(&q)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("cannot mount a tmpfs here: skipped");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(q.clone());
    let out = submit_below_floor(&env, &q, "");
    assert!(out.stderr.contains("floor"), "{}", out.stderr);
    // Through the library, with the floor set high.
    let q2 = env.path("q2");
    let queue = Queue::open(&q2).unwrap().with_min_free(u64::MAX);
    let e = queue
        .spool(
            &mut &b"x\n"[..],
            NewMessage {
                recipients: vec!["a@b".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.kind() as i32, 75, "{e}");
}

/// A relay that accepts connections and never answers: with fifty
/// messages queued, a run waits for it once, and defers the rest with
/// the reason; the next run tries once more.
#[test]
fn a_black_holing_relay_costs_one_timeout_per_run() {
    let env = BinEnv::new();
    let qdir = env.path("queue");
    let q = Queue::open(&qdir).unwrap();
    for i in 0..50 {
        q.spool(
            &mut format!("Subject: {i}\n\nbody\n").as_bytes(),
            NewMessage {
                profile: "default".into(),
                sender: "me@example.org".into(),
                recipients: vec!["you@example.org".into()],
                ..Default::default()
            },
        )
        .unwrap();
    }
    let server = ScriptedServer::start(
        Script::new()
            .stall_at(Step::Greeting, Duration::from_secs(4))
            .max_connections(100),
    );
    let cfg = env.path("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "queue_dir = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = 1\n",
            qdir.display(),
            server.port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = cfg.to_str().unwrap();
    for run in ["-q", "--queue-flush"] {
        let out = env.run(&["-C", c, run], b"");
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.contains("50 deferred"), "{}", out.stderr);
    }
    let t = server.finish();
    assert_eq!(
        t.accepted(),
        2,
        "one connection per run, not one per message"
    );
    let listed = q.list().unwrap();
    assert_eq!(listed.len(), 50);
    let suspended = listed
        .iter()
        .filter(|e| {
            e.last_error
                .as_deref()
                .is_some_and(|r| r.contains("not tried again in this queue run"))
        })
        .count();
    assert_eq!(suspended, 49, "every other message says why");
}
