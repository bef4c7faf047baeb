//! Where a profile's password comes from, and running `password_command`.
//!
//! Precedence: `password_command`, then `password`, then
//! `$SMTPSEND_PASSWORD`. A table cannot set both of the first two, and a
//! profile inherits them as one group, so the order between them only
//! matters when `--password-command` overrides a file's password. The
//! environment comes last on purpose: a variable exported once in a shell
//! reaches every child process, and must never win over what a profile
//! says and send one account's password to another account's relay.
//!
//! The command runs as `/bin/sh -c COMMAND` with standard input closed (it
//! is the message; a passphrase prompt such as pinentry uses the terminal
//! directly). It shares our process group so a prompt on the terminal
//! still works. It must finish within the timeout or it is killed; its
//! standard output is read on a thread so a chatty command cannot fill the
//! pipe and stall, and is bounded.
//!
//! What the command prints is the secret, or may hold it even when the
//! command fails (a helper that prints "wrong passphrase for hunter2"), so
//! none of it is ever kept in an error: errors name the command, its exit
//! status and what was wrong with the output (empty, too long, not UTF-8),
//! because an error may be stored in the queue, the log and `mailq`. Its
//! standard error is not captured at all: it goes straight to ours, so the
//! person at the terminal (or cron's mail) sees it once and nothing stores
//! it. The command gets our environment without the secret variables
//! ([`SECRET_ENV`]): a helper has no business reading a password we hold.
//! The output buffer is allocated once at its limit (no reallocation leaves
//! copies behind) and wiped after use.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::smtp::Secret;

use super::error::ConfigError;
use super::profile::Profile;

/// How long `password_command` may run: long enough for a person to
/// answer a passphrase prompt, short enough that cron does not hang.
pub const PASSWORD_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment variable consulted when a profile has no password.
pub const PASSWORD_ENV: &str = "SMTPSEND_PASSWORD";

/// Where the password of a PKCS#12 client certificate comes from (empty
/// when unset).
pub const CLIENT_CERT_PASSWORD_ENV: &str = "SMTPSEND_CLIENT_CERT_PASSWORD";

/// The environment variables never passed to a program smtpsend starts:
/// the secrets, and root's request to become a queue's owner.
pub const SECRET_ENV: &[&str] = &[
    PASSWORD_ENV,
    CLIENT_CERT_PASSWORD_ENV,
    crate::queue::owner::OWNER_ENV,
];

/// The most a password command may print on standard output (an OAuth
/// access token is a few kilobytes).
pub const MAX_PASSWORD_OUTPUT: usize = 64 * 1024;

/// How often the child is polled while it runs.
const POLL: Duration = Duration::from_millis(10);

impl Profile {
    /// The password to authenticate with: `password_command`'s output,
    /// else the file's `password`, else `$SMTPSEND_PASSWORD`, else `None`.
    /// The command runs each time this is called.
    pub fn password(&self) -> Result<Option<Secret>, ConfigError> {
        let env = std::env::var(PASSWORD_ENV)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new);
        self.password_with(env, PASSWORD_COMMAND_TIMEOUT)
    }

    /// [`Profile::password`] with the environment's password and the
    /// command's timeout given.
    pub fn password_with(
        &self,
        env_password: Option<Secret>,
        timeout: Duration,
    ) -> Result<Option<Secret>, ConfigError> {
        if let Some(command) = &self.password_command {
            return run(command, timeout).map(Some).map_err(|f| match f {
                Failure::TimedOut => ConfigError::PasswordTimeout {
                    profile: self.name.clone(),
                    command: command.clone(),
                    timeout,
                },
                Failure::Problem(problem) => ConfigError::PasswordCommand {
                    profile: self.name.clone(),
                    command: command.clone(),
                    problem,
                },
            });
        }
        Ok(self.password.clone().or(env_password))
    }
}

enum Failure {
    TimedOut,
    Problem(String),
}

/// Runs the command and returns its standard output, less one trailing
/// newline.
fn run(command: &str, timeout: Duration) -> Result<Secret, Failure> {
    let deadline = Instant::now() + timeout;
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for var in SECRET_ENV {
        sh.env_remove(var);
    }
    let mut child = sh
        .spawn()
        .map_err(|e| Failure::Problem(format!("could not be started: {e}")))?;
    let stdout = reader(child.stdout.take(), MAX_PASSWORD_OUTPUT + 1);

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                // The reader threads end when the last holder of the
                // pipes (a grandchild, perhaps) goes; nobody waits for
                // them.
                return Err(Failure::TimedOut);
            }
            Ok(None) => thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::Problem(format!("could not be waited for: {e}")));
            }
        }
    };
    // The shell has exited; a background process it left could still hold
    // the pipes open, so collecting the output is bounded by the deadline
    // too (with a short grace when the command used it all).
    let grace = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    let mut out = stdout.recv_timeout(grace).map_err(|_| Failure::TimedOut)?;

    if !status.success() {
        // Not a byte of what it printed: that may be the secret.
        return Err(Failure::Problem(format!("failed ({})", describe(status))));
    }
    if out.len() > MAX_PASSWORD_OUTPUT {
        return Err(Failure::Problem(format!(
            "printed more than {MAX_PASSWORD_OUTPUT} bytes"
        )));
    }
    if out.ends_with(b"\r\n") {
        let n = out.len() - 2;
        out.truncate(n);
    } else if out.ends_with(b"\n") {
        let n = out.len() - 1;
        out.truncate(n);
    }
    if out.is_empty() {
        return Err(Failure::Problem("printed no password".into()));
    }
    let text = std::str::from_utf8(&out)
        .map_err(|_| Failure::Problem("printed something that is not UTF-8".into()))?;
    Ok(Secret::new(text))
}

/// Reads a pipe to its end on a thread, keeping at most `keep` bytes and
/// discarding the rest so the writer never blocks. The buffer is allocated
/// once, at `keep` bytes, so no reallocation leaves a copy behind; the
/// scratch buffer is wiped.
fn reader(
    pipe: Option<impl Read + Send + 'static>,
    keep: usize,
) -> mpsc::Receiver<Zeroizing<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Zeroizing::new(Vec::with_capacity(keep));
        if let Some(mut pipe) = pipe {
            let mut buf = Zeroizing::new([0u8; 8192]);
            loop {
                match pipe.read(&mut buf[..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = keep.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        let _ = tx.send(kept);
    });
    rx
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "unknown status".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(password: Option<&str>, command: Option<&str>) -> Profile {
        Profile {
            name: "work".into(),
            password: password.map(Secret::new),
            password_command: command.map(str::to_owned),
            ..Profile::default()
        }
    }

    fn get(p: &Profile, env: Option<&str>) -> Result<Option<Secret>, ConfigError> {
        p.password_with(env.map(Secret::new), Duration::from_secs(10))
    }

    #[test]
    fn precedence() {
        assert_eq!(
            get(&profile(None, Some("echo cmd")), Some("env")).unwrap(),
            Some(Secret::new("cmd"))
        );
        assert_eq!(
            get(&profile(Some("file"), None), Some("env")).unwrap(),
            Some(Secret::new("file"))
        );
        assert_eq!(
            get(&profile(None, None), Some("env")).unwrap(),
            Some(Secret::new("env"))
        );
        assert_eq!(get(&profile(None, None), None).unwrap(), None);
    }

    #[test]
    fn only_one_trailing_newline_is_trimmed() {
        let cases = [
            ("printf 'pw\\n'", "pw"),
            ("printf 'pw\\r\\n'", "pw"),
            ("printf 'pw'", "pw"),
            ("printf 'pw\\n\\n'", "pw\n"),
            ("printf ' pw \\n'", " pw "),
            ("printf 'line1\\nline2\\n'", "line1\nline2"),
        ];
        for (cmd, want) in cases {
            let got = get(&profile(None, Some(cmd)), None).unwrap().unwrap();
            assert_eq!(got.expose(), want, "{cmd}");
        }
    }

    #[test]
    fn failure_shows_the_status_and_none_of_the_output() {
        let e = get(
            &profile(
                None,
                Some("echo hunter2; echo 'bad passphrase hunter2' >&2; exit 3"),
            ),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "password_command of profile \"work\" (echo hunter2; echo 'bad passphrase hunter2' >&2; exit 3) failed (exit status 3) (run the command in a shell to check it)"
        );
        assert_eq!(format!("{e:?}").matches("hunter2").count(), 2, "{e:?}");
        assert_eq!(e.kind(), crate::exit::Sysexit::Config);
        let e = get(&profile(None, Some("kill -9 $$")), None).unwrap_err();
        assert!(e.to_string().contains("killed by signal 9"), "{e}");
        // What the output was wrong with, never the output.
        for (cmd, want) in [
            ("printf 'hunter2\\377\\n'", "not UTF-8"),
            ("echo; echo hunter2 >&2", "printed no password"),
        ] {
            let e = get(&profile(None, Some(cmd)), None).unwrap_err();
            let shown = e.to_string().replace(cmd, "");
            assert!(shown.contains(want) && !shown.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn the_command_does_not_see_our_secrets() {
        // The variables exist in the environment the test process passes
        // on; the command must not see them.
        let cmd = "if [ -n \"${SMTPSEND_PASSWORD+x}${SMTPSEND_CLIENT_CERT_PASSWORD+x}${SMTPSEND_QUEUE_OWNER+x}\" ]; then echo leaked; else echo clean; fi";
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "config::password::tests::env_child",
                "--nocapture",
            ])
            .env("SMTPSEND_ENV_CHILD", cmd)
            .env(PASSWORD_ENV, "from-env")
            .env(CLIENT_CERT_PASSWORD_ENV, "p12-secret")
            .env(crate::queue::owner::OWNER_ENV, "0:/nonexistent")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("command printed: clean"), "{text}");
    }

    /// Runs as a child of [`the_command_does_not_see_our_secrets`], whose
    /// environment carries the secret variables.
    #[test]
    fn env_child() {
        let Some(cmd) = std::env::var_os("SMTPSEND_ENV_CHILD") else {
            return;
        };
        assert_eq!(std::env::var(PASSWORD_ENV).as_deref(), Ok("from-env"));
        let got = get(&profile(None, Some(cmd.to_str().unwrap())), None)
            .unwrap()
            .unwrap();
        println!("command printed: {}", got.expose());
    }

    #[test]
    fn empty_output_is_refused() {
        let e = get(&profile(None, Some("true")), None).unwrap_err();
        assert!(e.to_string().contains("printed no password"), "{e}");
    }

    #[test]
    fn oversized_output_is_refused_without_stalling() {
        let e = get(
            &profile(None, Some("head -c 200000 /dev/zero | tr '\\0' x")),
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("printed more than 65536 bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_hanging_command_is_killed_after_the_timeout() {
        let p = profile(None, Some("sleep 5"));
        let start = Instant::now();
        let e = p
            .password_with(None, Duration::from_millis(200))
            .unwrap_err();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(took >= Duration::from_millis(200), "took {took:?}");
        assert_eq!(
            e.to_string(),
            "password_command of profile \"work\" (sleep 5) did not finish within 0.2 s and was killed (does it wait for input?)"
        );
        assert_eq!(e.kind(), crate::exit::Sysexit::TempFail);
    }

    #[test]
    fn a_background_child_holding_the_pipe_does_not_hang_us() {
        let p = profile(None, Some("echo pw; sleep 5 &"));
        let start = Instant::now();
        let r = p.password_with(None, Duration::from_millis(300));
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(
            matches!(r, Err(ConfigError::PasswordTimeout { .. })),
            "{r:?}"
        );
    }

    #[test]
    fn stdin_is_not_the_callers() {
        // The command must not eat the message on our standard input.
        let got = get(&profile(None, Some("cat; echo pw")), None)
            .unwrap()
            .unwrap();
        assert_eq!(got.expose(), "pw");
    }
}
