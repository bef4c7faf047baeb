//! Config trust with real users (msmtp / sshd StrictModes rules): a
//! configuration file must belong to the caller or root and be writable by
//! neither group nor others; root reads only root's files. Each refusal is
//! exit 78 with the file, owner, mode and the fix.
//!
//! Needs root (to make users with useradd and switch to them with
//! setpriv); skipped with a line on standard error otherwise.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

const USER_A: &str = "smtpsend-ta";
const USER_B: &str = "smtpsend-tb";
const GROUP: &str = "smtpsend-tg";

/// The users and group the tests run as, made once (idempotent; retried,
/// since other tests may hold the passwd lock).
fn users() -> Option<()> {
    if rustix::process::geteuid().as_raw() != 0 || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("not root or no setpriv: config trust tests with real users skipped");
        return None;
    }
    ensure(&["groupadd", "-f", GROUP]);
    for u in [USER_A, USER_B] {
        if id(u).is_none() {
            ensure(&["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", u]);
        }
    }
    ensure(&["usermod", "-a", "-G", GROUP, USER_B]);
    Some(())
}

fn ensure(cmd: &[&str]) {
    for _ in 0..40 {
        let st = Command::new(cmd[0]).args(&cmd[1..]).status().unwrap();
        // 9: the user already exists (another test process made it).
        if st.success() || st.code() == Some(9) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("{cmd:?} kept failing");
}

fn id(user: &str) -> Option<u32> {
    id_of("-u", user)
}

fn id_of(flag: &str, user: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
}

struct Box_ {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Box_ {
    fn new() -> Box_ {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // The checkout may sit where the test users cannot reach.
        let bin = dir.path().join("smtpsend");
        std::fs::copy(env!("CARGO_BIN_EXE_smtpsend"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Box_ { dir, bin }
    }

    /// A config file owned by `owner:group` with `mode`.
    fn config(&self, name: &str, owner: &str, group: &str, mode: u32, extra: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(
            &p,
            format!("host = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n{extra}"),
        )
        .unwrap();
        let st = Command::new("chown")
            .arg(format!("{owner}:{group}"))
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    /// A dry run as `user` (None: root) with `-C cfg`.
    fn run(&self, user: Option<&str>, cfg: &Path) -> Out {
        self.run_with(user, &["-C", cfg.to_str().unwrap()], &[])
    }

    fn run_with(&self, user: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = match user {
            Some(u) => {
                let mut c = Command::new("/usr/bin/setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={}", id_of("-g", u).unwrap()),
                    "--init-groups",
                ])
                .arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.args(args)
            .args(["--dry-run", "-i", "someone@example.org"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("SMTPSEND_NO_RETRIER", "1")
            .env("HOME", self.dir.path().join("nohome"))
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let _ = std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            b"Subject: trust\n\nbody\n",
        );
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn refused(out: &Out, needles: &[&str]) {
    assert_eq!(out.code, 78, "{}{}", out.stdout, out.stderr);
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    for n in needles {
        assert!(line.contains(n), "{n:?} not in: {line}");
    }
}

#[test]
fn group_writable_config_is_refused() {
    if users().is_none() {
        return;
    }
    let b = Box_::new();
    let cfg = b.config("gw.toml", USER_A, GROUP, 0o664, "");
    let p = cfg.display().to_string();
    refused(
        &b.run(Some(USER_A), &cfg),
        &[
            &p,
            &format!("owner {USER_A}"),
            "mode 0664",
            &format!("chmod g-w {p}"),
        ],
    );
    // The same file without group write is the user's own, and fine.
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ok = b.run(Some(USER_A), &cfg);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // Root-owned and group-writable: refused for everyone.
    let cfg = b.config("rootgw.toml", "root", GROUP, 0o664, "");
    refused(&b.run(Some(USER_B), &cfg), &["mode 0664", "chmod g-w"]);
}

#[test]
fn someone_elses_config_is_refused() {
    if users().is_none() {
        return;
    }
    let b = Box_::new();
    let cfg = b.config("a.toml", USER_A, "root", 0o644, "");
    let p = cfg.display().to_string();
    let want = [
        p.as_str(),
        &format!("owner {USER_A}"),
        "mode 0644",
        &format!("not to {USER_B}"),
        &format!("chown {USER_B} {p}"),
    ];
    refused(&b.run(Some(USER_B), &cfg), &want);
    // Named by $SMTPSEND_CONFIG instead of -C: the same rule.
    refused(
        &b.run_with(Some(USER_B), &[], &[("SMTPSEND_CONFIG", &p)]),
        &want,
    );
    // Through a symbolic link: the file it names is checked and named.
    let link = b.dir.path().join("link.toml");
    std::os::unix::fs::symlink(&cfg, &link).unwrap();
    refused(&b.run(Some(USER_B), &link), &want);
}

#[test]
fn root_reads_only_roots_files() {
    if users().is_none() {
        return;
    }
    let b = Box_::new();
    let cfg = b.config("user.toml", USER_A, "root", 0o600, "");
    let p = cfg.display().to_string();
    refused(
        &b.run(None, &cfg),
        &[
            &p,
            &format!("owner {USER_A}"),
            "mode 0600",
            "runs as root",
            &format!("chown root {p}"),
        ],
    );
    // The user may use it.
    let ok = b.run(Some(USER_A), &cfg);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

#[test]
fn a_root_owned_0640_file_serves_its_group() {
    if users().is_none() {
        return;
    }
    let b = Box_::new();
    let cfg = b.config(
        "system.toml",
        "root",
        GROUP,
        0o640,
        "user = \"u\"\npassword = \"shared-secret\"\n",
    );
    // USER_B is in the group: allowed, and the password never printed.
    let ok = b.run(Some(USER_B), &cfg);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(!ok.stdout.contains("shared-secret"), "{}", ok.stdout);
    // Root too.
    assert_eq!(b.run(None, &cfg).code, 0);
    // USER_A is not: the kernel refuses the read (78, naming the file).
    let no = b.run(Some(USER_A), &cfg);
    refused(&no, &[&cfg.display().to_string(), "ermission denied"]);
}
