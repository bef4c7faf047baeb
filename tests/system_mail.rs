//! Mail from the system itself: the binary run with each caller's exact
//! argv and environment (sudo's `env -i HOME=/ ...`, cron's minimal
//! environment, PHP as an unprivileged user whose home is not writable, no
//! HOME at all), against the scripted server. Every one must get its mail
//! through with a fully qualified envelope and headers.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use support::*;

struct Case {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// Run as this unprivileged user (needs root; skipped otherwise).
    user: Option<&'static str>,
    args: &'static [&'static str],
    input: &'static [u8],
    sender: &'static str,
    rcpts: &'static [&'static str],
    headers: &'static [&'static str],
}

const CRON_MSG: &[u8] = b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> run-parts /etc/cron.daily\n\noutput\n";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "cron",
            env: &[("HOME", "/root"), ("LOGNAME", "root"), ("SHELL", "/bin/sh")],
            user: None,
            args: &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
            input: CRON_MSG,
            sender: "root@host.example",
            rcpts: &["admin@example.com"],
            headers: &["From: root@host.example (Cron Daemon)", "To: root@host.example"],
        },
        Case {
            name: "sudo (env -i HOME=/ LOGNAME USER)",
            env: &[("HOME", "/"), ("LOGNAME", "root"), ("USER", "root")],
            user: None,
            args: &["-t"],
            input: b"To: root\nFrom: root\nSubject: *** SECURITY information for host ***\n\nuser : incorrect password attempts\n",
            sender: "root@host.example",
            rcpts: &["admin@example.com"],
            headers: &["From: root@host.example", "To: root@host.example"],
        },
        Case {
            name: "no HOME, no LOGNAME (a daemon)",
            env: &[],
            user: None,
            args: &["-t", "-i"],
            input: b"To: fail2ban\nFrom: Fail2Ban <fail2ban>\nSubject: banned\n\n1.2.3.4\n",
            sender: "",
            rcpts: &["fail2ban@host.example"],
            headers: &["From: Fail2Ban <fail2ban@host.example>", "To: fail2ban@host.example"],
        },
        Case {
            name: "php as www-data, unwritable home, CRLF input, -f twice",
            env: &[("HOME", "/var/www")],
            user: Some("www-data"),
            args: &["-t", "-i", "-f", "web@example.org", "-fwww-data"],
            input: b"To: Customer <customer@example.net>\r\nSubject: Order\r\nFrom: Shop <www-data>\r\n\r\nThanks\r\n",
            sender: "www-data@host.example",
            rcpts: &["customer@example.net"],
            headers: &["From: Shop <www-data@host.example>"],
        },
        Case {
            name: "mdadm, message without a final newline",
            env: &[("HOME", "/root")],
            user: None,
            args: &["-t"],
            input: b"From: mdadm monitoring <root>\nTo: root\nSubject: DegradedArray event\n\nA DegradedArray event had been detected",
            sender: "",
            rcpts: &["admin@example.com"],
            headers: &["From: mdadm monitoring <root@host.example>"],
        },
    ]
}

fn have_user(user: &str) -> bool {
    let am_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    am_root
        && std::fs::read_to_string("/etc/passwd")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("{user}:")))
        && std::path::Path::new("/usr/bin/setpriv").exists()
}

#[test]
fn system_callers_in_their_own_environments() {
    let dir = tempfile::tempdir().unwrap();
    // The directory and config must be readable by an unprivileged user.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // So must the binary: the checkout may sit where www-data cannot reach
    // (under /root), so it runs from a copy here.
    let bin_copy = dir.path().join("smtpsend");
    std::fs::copy(env!("CARGO_BIN_EXE_smtpsend"), &bin_copy).unwrap();
    std::fs::set_permissions(&bin_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut ran = 0;
    for case in cases() {
        if let Some(u) = case.user
            && !have_user(u)
        {
            eprintln!("{}: needs root, setpriv and user {u}; skipped", case.name);
            continue;
        }
        let server = ScriptedServer::start(Script::new());
        let cfg = dir.path().join(format!("{ran}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ndomain = \"host.example\"\n\n[aliases]\nroot = \"admin@example.com\"\n",
                server.port()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        let bin = bin_copy.to_str().unwrap();
        let mut cmd = match case.user {
            Some(u) => {
                let mut c = Command::new("/usr/bin/setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={u}"),
                    "--clear-groups",
                    bin,
                ]);
                c
            }
            None => Command::new(bin),
        };
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("SMTPSEND_NO_RETRIER", "1") // nothing outlives the test
            .envs(case.env.iter().copied())
            .arg("-C")
            .arg(&cfg)
            .args(case.args)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(case.input).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let t = server.finish();
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", case.name);
        let m = &t.messages()[0];
        if !case.sender.is_empty() {
            assert_eq!(m.sender_addr(), case.sender, "{}", case.name);
        }
        assert!(
            m.sender_addr().ends_with("@host.example"),
            "{}: {}",
            case.name,
            m.mail_from
        );
        assert_eq!(m.rcpt_addrs(), case.rcpts, "{}", case.name);
        let text = m.content_str();
        let head = text.split("\r\n\r\n").next().unwrap();
        for h in case.headers {
            assert!(
                head.contains(h),
                "{}: headers lack {h:?}:\n{head}",
                case.name
            );
        }
        assert!(!m.wire_has_bare_lf(), "{}", case.name);
        ran += 1;
    }
    assert!(ran >= 4, "only {ran} cases ran");
}
