//! Running the real binary in a clean environment: its own HOME, state and
//! config directories, no inherited configuration, UTC.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A scratch home for one test's runs of the binary.
pub struct BinEnv {
    pub dir: tempfile::TempDir,
}

/// What a run printed and how it ended.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl BinEnv {
    /// A new scratch home, readable by other users (some tests run the
    /// binary as an unprivileged one).
    pub fn new() -> BinEnv {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        BinEnv { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary with `args`, a cleared environment pointing at the
    /// scratch home, and piped standard streams.
    /// The scratch area's mail spool (instead of /var/mail), made on
    /// first use.
    pub fn mail_dir(&self) -> std::path::PathBuf {
        let d = self.path("mail");
        let _ = std::fs::create_dir_all(&d);
        d
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtpsend"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("XDG_STATE_HOME", self.path("state"))
            .env("LOGNAME", "tester")
            .env("TZ", "UTC")
            // Mboxes of local users in the scratch area, never /var/mail.
            .env("SMTPSEND_MAIL_DIR", self.mail_dir())
            // No detached retrier outliving the test (tests/retrier.rs
            // removes this to test it).
            .env("SMTPSEND_NO_RETRIER", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Out {
        self.run_env(args, stdin, &[])
    }

    pub fn run_env(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        run_command(&mut cmd, stdin)
    }
}

/// Runs a prepared command (standard input, output and error piped), feeds
/// it `stdin` and collects what it printed.
pub fn run_command(cmd: &mut std::process::Command, stdin: &[u8]) -> Out {
    let mut child = cmd.spawn().unwrap();
    // A binary that fails early may not read its input: that is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A small message whose subject and body name it.
pub fn msg(subject: &str) -> Vec<u8> {
    format!("From: a@example.org\nSubject: {subject}\n\nbody of {subject}\n").into_bytes()
}
