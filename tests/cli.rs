//! The real binary against the scripted server: the message table under
//! tests/messages (envelope and transmitted headers for each rule), the
//! argv of every sendmail caller, configuration files, AUTH flags and the
//! exit status of each failure class.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

type Env = BinEnv;

/// Writes a config file (mode 0600) into the scratch home.
fn write_config(env: &Env, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = env.path("config.toml");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn relay_args(server: &ScriptedServer) -> Vec<String> {
    vec![
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        server.port().to_string(),
        "--tls".into(),
        "none".into(),
        "--domain".into(),
        "client.example".into(),
    ]
}

/// Splits an args line like a shell would, for double quotes only.
fn split_args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn header_block(content: &[u8]) -> String {
    let s = String::from_utf8_lossy(content);
    s.split("\r\n\r\n").next().unwrap_or("").to_owned()
}

/// Every case under tests/messages: NAME.eml is the input, NAME.expect
/// says what must reach the server.
#[test]
fn message_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/messages");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".expect")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 20,
        "message table has only {} cases",
        names.len()
    );
    let mut failures = Vec::new();
    for name in &names {
        if let Err(why) = std::panic::catch_unwind(|| check_case(&dir, name)) {
            let why = why
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| why.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "message table failures:\n{}",
        failures.join("\n")
    );
}

fn check_case(dir: &Path, name: &str) {
    let input = std::fs::read(dir.join(format!("{name}.eml"))).unwrap();
    let expect = std::fs::read_to_string(dir.join(format!("{name}.expect"))).unwrap();
    let mut args = Vec::new();
    let mut exit = 0;
    let mut checks = Vec::new();
    for line in expect.lines() {
        let (k, v) = line
            .split_once(": ")
            .unwrap_or((line.trim_end_matches(':'), ""));
        match k {
            "args" => args = split_args(v),
            "exit" => exit = v.parse().unwrap(),
            _ => checks.push((k.to_owned(), v.to_owned())),
        }
    }
    let server = ScriptedServer::start(Script::new());
    let env = Env::new();
    let mut argv = relay_args(&server);
    argv.extend(args);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = env.run(&argv, &input);
    let t = server.finish();
    assert_eq!(out.code, exit, "exit status; stderr: {}", out.stderr);
    let msgs = t.messages();
    if exit != 0 {
        assert!(msgs.is_empty(), "a message was sent despite exit {exit}");
    } else {
        assert_eq!(msgs.len(), 1, "stderr: {}", out.stderr);
    }
    for (k, v) in checks {
        match k.as_str() {
            "stderr" => assert!(
                out.stderr.contains(&v),
                "stderr lacks {v:?}: {}",
                out.stderr
            ),
            "from" => assert_eq!(msgs[0].mail_from.split(' ').next().unwrap(), v),
            "mail-param" => assert!(msgs[0].mail_from.contains(&v), "{}", msgs[0].mail_from),
            "rcpt" => assert_eq!(msgs[0].rcpt_addrs(), v.split(' ').collect::<Vec<_>>()),
            "present" => {
                let h = header_block(&msgs[0].content);
                assert!(h.contains(&v), "headers lack {v:?}:\n{h}");
            }
            "absent" => {
                let h = header_block(&msgs[0].content);
                assert!(
                    !h.lines()
                        .any(|l| l.starts_with(&format!("{v}:")) || l.contains(&v)),
                    "headers have {v:?}:\n{h}"
                );
            }
            "body-present" => assert!(msgs[0].content_str().contains(&v)),
            "body-absent" => assert!(!msgs[0].content_str().contains(&v)),
            other => panic!("unknown check {other}"),
        }
    }
    if exit == 0 {
        let m = &msgs[0];
        assert!(!m.wire_has_bare_lf() && !m.wire_has_bare_cr());
    }
}

#[test]
fn endless_header_block_is_refused() {
    let server = ScriptedServer::start(Script::new());
    let env = Env::new();
    let mut msg = b"From: a@example.org\n".to_vec();
    while msg.len() < 2 << 20 {
        msg.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\n");
    }
    let mut argv = relay_args(&server);
    argv.extend(["-i".into(), "b@example.org".into()]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = env.run(&argv, &msg);
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert!(server.finish().messages().is_empty());
}

#[test]
fn empty_message_is_no_input() {
    let server = ScriptedServer::start(Script::new());
    let env = Env::new();
    let argv = relay_args(&server);
    let mut argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    argv.push("b@example.org");
    let out = env.run(&argv, b"");
    assert_eq!(out.code, 66, "{}", out.stderr);
    assert!(out.stderr.contains("empty"), "{}", out.stderr);
    assert!(server.finish().messages().is_empty());
}

/// The argv real programs pass to /usr/sbin/sendmail.
#[test]
fn sendmail_callers() {
    let cases: &[(&str, &[&str], &str, &[&str])] = &[
        (
            "cron",
            &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
            "root@client.example",
            &["root@client.example"],
        ),
        (
            "bsd-mailx",
            &["-i", "--", "alice@example.org"],
            "tester@client.example",
            &["alice@example.org"],
        ),
        (
            "mutt",
            &["-oem", "-oi", "--", "alice@example.org", "bob@example.org"],
            "tester@client.example",
            &["alice@example.org", "bob@example.org"],
        ),
        (
            "git send-email",
            &["-i", "alice@example.org", "bob@example.org"],
            "tester@client.example",
            &["alice@example.org", "bob@example.org"],
        ),
        (
            "php mail()",
            &["-t", "-i", "-f", "web@example.org", "-fwww-data"],
            "www-data@client.example",
            &["to@example.org"],
        ),
        (
            "sudo",
            &["-t"],
            "tester@client.example",
            &["to@example.org"],
        ),
        (
            "null sender",
            &["-f", "<>", "-i", "alice@example.org"],
            "",
            &["alice@example.org"],
        ),
        (
            "name in -f",
            &[
                "-f",
                "Web Site <web@example.org>",
                "-i",
                "Bob <bob@example.org>",
            ],
            "web@example.org",
            &["bob@example.org"],
        ),
    ];
    for (caller, args, sender, rcpts) in cases {
        let server = ScriptedServer::start(Script::new());
        let env = Env::new();
        let mut argv = relay_args(&server);
        if *caller == "cron" {
            argv.extend(["-f".into(), "root".into()]);
        }
        argv.extend(args.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = env.run(
            &argv,
            b"To: to@example.org\nSubject: from a caller\n\nbody\n",
        );
        let t = server.finish();
        assert_eq!(out.code, 0, "{caller}: {}", out.stderr);
        let m = &t.messages()[0];
        assert_eq!(m.sender_addr(), *sender, "{caller}");
        assert_eq!(m.rcpt_addrs(), *rcpts, "{caller}");
        let h = header_block(&m.content);
        assert!(
            h.contains("Date: ") && h.contains("Message-ID: <"),
            "{caller}: {h}"
        );
        if *caller == "cron" {
            assert!(m.mail_from.contains("BODY=8BITMIME") || !m.content.iter().any(|b| *b >= 0x80));
            assert!(h.contains("From: CronDaemon <root@client.example>"), "{h}");
        }
    }
}

#[test]
fn config_profiles_and_aliases() {
    let server = ScriptedServer::start(Script::new().max_connections(2));
    let env = Env::new();
    let cfg = write_config(
        &env,
        &format!(
            r#"
default_profile = "relay"
[profile.relay]
host = "127.0.0.1"
port = {}
tls = "none"
domain = "box.example"
from = "*@example.org"

[aliases]
root = "admin@example.com, ops"
ops = "ops@example.com"
default = "catchall@example.com"
"#,
            server.port()
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let out = env.run(
        &["-C", cfg, "-i", "root", "www-data", "x@example.net"],
        b"Subject: alias\n\nx\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out2 = env.run(
        &[
            "-C",
            cfg,
            "-a",
            "relay",
            "-f",
            "me@example.org",
            "-i",
            "y@example.net",
        ],
        b"Subject: p\n\nx\n",
    );
    assert_eq!(out2.code, 0, "{}", out2.stderr);
    let t = server.finish();
    let m = t.messages();
    assert_eq!(
        m[0].rcpt_addrs(),
        [
            "admin@example.com",
            "ops@example.com",
            "catchall@example.com",
            "x@example.net"
        ]
    );
    assert_eq!(m[0].sender_addr(), "tester@box.example");
    assert_eq!(m[1].sender_addr(), "me@example.org");
    assert_eq!(t.connections[0].commands()[0], "EHLO box.example");
}

#[test]
fn config_errors_name_file_line_and_key() {
    let env = Env::new();
    let cfg = write_config(&env, "[profile.work]\nhots = \"smtp.example.org\"\n");
    let out = env.run(
        &["-C", cfg.to_str().unwrap(), "-i", "x@example.org"],
        b"Subject: x\n\nx\n",
    );
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{}:2:", cfg.display())),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hots"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);

    let missing = env.run(
        &["-C", "/nonexistent/smtpsend.toml", "x@example.org"],
        b"Subject: x\n\nx\n",
    );
    assert_eq!(missing.code, 78, "{}", missing.stderr);
}

#[test]
fn password_in_a_world_readable_config_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let cfg = write_config(
        &env,
        "host = \"127.0.0.1\"\nuser = \"u\"\npassword = \"hunter2\"\n",
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(
        &["-C", cfg.to_str().unwrap(), "-i", "x@example.org"],
        b"Subject: x\n\nx\n",
    );
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("chmod"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"));
}

#[test]
fn exit_status_for_each_failure_class() {
    let cases: Vec<(&str, Script, i32)> = vec![
        (
            "sender 5xx",
            Script::new().reply_to("MAIL", "550 5.7.1 no"),
            69,
        ),
        (
            "sender 4xx",
            Script::new().reply_to("MAIL", "451 4.3.0 later"),
            75,
        ),
        (
            "all rcpts refused",
            Script::new().reply_to("RCPT", "550 5.1.1 unknown"),
            67,
        ),
        (
            "data 5xx",
            Script::new().after_data("554 5.6.0 rejected"),
            69,
        ),
        ("data 4xx", Script::new().after_data("452 4.3.1 full"), 75),
        ("greeting 554", Script::new().greeting("554 go away"), 69),
        (
            "garbage",
            Script::new().raw_reply_at(Step::Ehlo, raw::garbage()),
            76,
        ),
        (
            "disconnect mid-data",
            Script::new().disconnect_at(Step::DataBytes(3)),
            75,
        ),
    ];
    for (what, script, code) in cases {
        let server = ScriptedServer::start(script);
        let env = Env::new();
        let mut argv = relay_args(&server);
        argv.extend(["--no-queue".into(), "-i".into(), "b@example.org".into()]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = env.run(&argv, b"Subject: x\n\nbody\n");
        assert_eq!(out.code, code, "{what}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{what}: one line: {}",
            out.stderr
        );
        assert!(
            out.stderr.starts_with("smtpsend: "),
            "{what}: {}",
            out.stderr
        );
        server.finish();
    }
    let env = Env::new();
    let out = env.run(&["-Z", "x@example.org"], b"");
    assert_eq!(out.code, 64);
    assert!(out.stderr.contains("-Z"), "{}", out.stderr);
    let out = env.run(&["-i"], b"Subject: x\n\nx\n");
    assert_eq!(out.code, 64, "{}", out.stderr);
}

#[test]
fn partial_refusal_is_reported_and_strict_mode_fails() {
    for (strict, code) in [(false, 0), (true, 67)] {
        let server =
            ScriptedServer::start(Script::new().reply_to("RCPT TO:<bad@", "550 5.1.1 unknown"));
        let env = Env::new();
        let mut argv = relay_args(&server);
        argv.extend([
            "-i".into(),
            "ok@example.org".into(),
            "bad@example.org".into(),
        ]);
        if strict {
            argv.push("--strict-recipients".into());
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = env.run(&argv, b"Subject: x\n\nbody\n");
        assert_eq!(out.code, code, "{}", out.stderr);
        assert!(
            out.stderr.contains("bad@example.org") && out.stderr.contains("550"),
            "{}",
            out.stderr
        );
        server.finish();
    }
}

#[test]
fn auth_flags_password_command_and_env() {
    let server = ScriptedServer::start(
        Script::new()
            .with_cap("AUTH PLAIN LOGIN")
            .auth_accept("alice", "pw with space")
            .max_connections(4),
    );
    let env = Env::new();
    let base = relay_args(&server);
    let run = |extra: &[&str], envv: &[(&str, &str)]| {
        let mut argv: Vec<&str> = base.iter().map(String::as_str).collect();
        argv.push("--no-queue");
        argv.extend(extra);
        argv.extend(["-i", "b@example.org"]);
        env.run_env(&argv, b"Subject: x\n\nbody\n", envv)
    };
    let ok = run(
        &[
            "--user",
            "alice",
            "--password-command",
            "printf 'pw with space\\n'",
        ],
        &[],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let ok_env = run(
        &["--user", "alice", "--auth", "login"],
        &[("SMTPSEND_PASSWORD", "pw with space")],
    );
    assert_eq!(ok_env.code, 0, "{}", ok_env.stderr);
    let refused = run(
        &["--user", "alice", "--password-command", "echo wrong"],
        &[],
    );
    assert_eq!(refused.code, 77, "{}", refused.stderr);
    assert!(refused.stderr.contains("535"), "{}", refused.stderr);
    let failing = run(
        &[
            "--user",
            "alice",
            "--password-command",
            "echo vault locked >&2; exit 3",
        ],
        &[],
    );
    assert_eq!(failing.code, 78, "{}", failing.stderr);
    assert!(
        failing.stderr.contains("vault locked"),
        "{}",
        failing.stderr
    );
    let t = server.finish();
    assert_eq!(t.messages().iter().filter(|m| m.accepted).count(), 2);
    assert!(t.connections.iter().filter(|c| c.authenticated).count() == 2);
}

#[test]
fn verbose_transcript_redacts_secrets() {
    let server = ScriptedServer::start(
        Script::new()
            .with_cap("AUTH PLAIN")
            .auth_accept("alice", "topsecret"),
    );
    let env = Env::new();
    let mut argv = relay_args(&server);
    argv.extend(["-v", "--user", "alice", "-i", "b@example.org"].map(String::from));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = env.run_env(
        &argv,
        b"Subject: x\n\nbody\n",
        &[("SMTPSEND_PASSWORD", "topsecret")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("AUTH PLAIN <redacted>"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("topsecret") && !out.stderr.contains("dG9wc2VjcmV0"),
        "{}",
        out.stderr
    );
    server.finish();
}

#[test]
fn local_delivery_with_no_configuration_goes_to_the_users_own_mailbox() {
    // Mail to the user running smtpsend (issue 14): the mbox in the mail
    // spool while there is no ~/Maildir, then ~/Maildir, and $MAILDIR wins.
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8(me.stdout).unwrap().trim().to_owned();
    let env = Env::new();
    let out = env.run(&[&me], b"Subject: local\n\nFrom here\nhello\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("delivered locally"), "{}", out.stderr);
    let mbox = std::fs::read_to_string(env.mail_dir().join(&me)).unwrap();
    assert!(mbox.starts_with("From "), "{mbox}");
    assert!(
        mbox.contains("Subject: local\n") && mbox.contains("\n>From here\nhello\n"),
        "{mbox}"
    );
    assert!(!env.path("Maildir").exists());

    std::fs::create_dir(env.path("Maildir")).unwrap();
    let out = env.run(&[&me], b"Subject: local\n\nhello\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let new = env.path("Maildir/new");
    let files: Vec<_> = std::fs::read_dir(&new).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(
        text.contains("Subject: local\n") && text.ends_with("\nhello\n"),
        "{text}"
    );
    // $MAILDIR wins.
    let md = env.path("other-maildir");
    let out = env.run_env(
        &[&me],
        b"Subject: x\n\nx\n",
        &[("MAILDIR", md.to_str().unwrap())],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_dir(md.join("new")).unwrap().count(), 1);
}

#[test]
fn dry_run_sends_nothing_and_shows_the_plan() {
    let server = ScriptedServer::start(Script::new());
    let env = Env::new();
    let mut argv = relay_args(&server);
    argv.extend(["--dry-run", "-t", "-i"].map(String::from));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = env.run(
        &argv,
        b"From: root\nTo: root, b@example.org\nBcc: hidden@example.org\n\nbody\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("recipient: <root@client.example>"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("recipient: <hidden@example.org>"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("To: root@client.example, b@example.org"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("Bcc:"), "{}", out.stdout);
    // Words a person reads, not Rust names.
    assert!(
        out.stdout.contains(&format!(
            "transport: SMTP 127.0.0.1:{} (no TLS)\n",
            server.port()
        )),
        "{}",
        out.stdout
    );
    let t = server.finish();
    assert_eq!(t.accepted(), 0);
}

#[test]
fn newaliases_personality_and_serverinfo() {
    let env = Env::new();
    let link = env.path("newaliases");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_smtpsend"), &link).unwrap();
    let out = Command::new(&link)
        .env("HOME", env.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    let server = ScriptedServer::start(Script::new().with_cap("AUTH PLAIN CRAM-MD5"));
    let mut argv = relay_args(&server);
    argv.push("--serverinfo".into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = env.run(&argv, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("greeting: 220 scripted ESMTP"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("PIPELINING") && out.stdout.contains("AUTH mechanisms: PLAIN CRAM-MD5"),
        "{}",
        out.stdout
    );
    server.finish();
}

#[test]
fn serverinfo_shows_the_certificate_before_and_after_starttls() {
    let pki = TestPki::new();
    let server = ScriptedServer::start(Script::new().starttls().pki(&pki).with_cap("AUTH PLAIN"));
    let env = Env::new();
    let port = server.port().to_string();
    let ca = pki.ca_path.to_str().unwrap().to_owned();
    let out = env.run(
        &[
            "--serverinfo",
            "--host",
            "localhost",
            "--port",
            &port,
            "--tls-ca-file",
            &ca,
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let o = &out.stdout;
    assert!(o.contains("TLS: no") && o.contains("STARTTLS"), "{o}");
    assert!(o.contains("TLS after STARTTLS: yes"), "{o}");
    assert!(
        o.contains("certificate subject: CN=localhost") || o.contains("certificate subject:"),
        "{o}"
    );
    assert!(o.contains(&pki.cert_sha256_hex()), "{o}");
    assert!(o.contains("AUTH mechanisms after STARTTLS: PLAIN"), "{o}");
    server.finish();
}

#[test]
fn bs_speaks_smtp_on_stdin_and_relays_each_message() {
    let server = ScriptedServer::start(Script::new().max_connections(2));
    let env = Env::new();
    let mut argv = relay_args(&server);
    argv.push("-bs".into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let session = b"EHLO mua.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n\
Subject: one\r\n\r\n..dotted\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<root>\r\nDATA\r\nSubject: two\r\n\r\nx\r\n.\r\nQUIT\r\n";
    let out = env.run(&argv, session);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let codes: Vec<&str> = out.stdout.lines().map(|l| &l[..3]).collect();
    assert_eq!(codes.first(), Some(&"220"), "{}", out.stdout);
    assert_eq!(codes.last(), Some(&"221"), "{}", out.stdout);
    assert_eq!(
        codes.iter().filter(|c| **c == "354").count(),
        2,
        "{}",
        out.stdout
    );
    let t = server.finish();
    let m = t.messages();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].sender_addr(), "a@example.org");
    assert!(
        m[0].content_str().contains("\r\n.dotted\r\n"),
        "{}",
        m[0].content_str()
    );
    assert_eq!(m[1].sender_addr(), "");
    assert_eq!(m[1].rcpt_addrs(), ["root@client.example"]);
}

#[test]
fn log_file_gets_one_line_per_message() {
    let server = ScriptedServer::start(
        Script::new()
            .after_data("250 2.0.0 Ok: queued as ABC123")
            .max_connections(2),
    );
    let env = Env::new();
    let log = env.path("mail.log");
    let mut argv = relay_args(&server);
    argv.extend([
        "-X".into(),
        log.to_str().unwrap().into(),
        "-L".into(),
        "cronmail".into(),
        "-i".into(),
        "b@example.org".into(),
    ]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    assert_eq!(env.run(&argv, b"Subject: x\n\nbody\n").code, 0);
    assert_eq!(env.run(&argv, b"Subject: y\n\nbody\n").code, 0);
    let t = server.finish();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (l, m) in lines.iter().zip(t.messages()) {
        // The logged size is the message's, not a placeholder.
        let size = format!("size={}", m.content.len());
        assert!(l.contains(&size), "{size} missing: {l}");
    }
    for l in lines {
        for field in [
            "cronmail",
            "status=sent",
            "relay=127.0.0.1",
            "from=<tester@client.example>",
            "to=<b@example.org>",
            "queued as ABC123",
            "duration_ms=",
        ] {
            assert!(l.contains(field), "{field} missing: {l}");
        }
    }
}

#[test]
fn smuggled_line_breaks_in_addresses_are_refused_before_spooling() {
    let server = ScriptedServer::start(Script::new());
    let env = Env::new();
    for bad in [
        vec![
            "-f",
            "a@example.org\r\nRCPT TO:<evil@example.org>",
            "-i",
            "b@example.org",
        ],
        vec!["-i", "b@example.org> NOTIFY=NEVER"],
        vec!["-i", "b@example.org\nDATA"],
    ] {
        let mut argv = relay_args(&server);
        argv.extend(bad.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = env.run(&argv, b"Subject: x\n\nbody\n");
        assert_eq!(out.code, 64, "{bad:?}: {}", out.stderr);
        assert!(out.stderr.contains("nothing was sent"), "{}", out.stderr);
    }
    assert_eq!(server.finish().accepted(), 0);
    assert!(
        !env.path("state/smtpsend/queue/msg").exists()
            || std::fs::read_dir(env.path("state/smtpsend/queue/msg"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
fn bs_closes_a_silent_session_with_421() {
    use std::io::{Read, Write};
    let env = Env::new();
    let mut child = env.command(&["-bs", "--timeout", "1"]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"EHLO mua.example\r\n").unwrap();
    // Keep stdin open and say nothing more.
    let start = std::time::Instant::now();
    let status = child.wait().unwrap();
    let waited = start.elapsed();
    drop(stdin);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status.code(), Some(75));
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
    assert!(
        out.contains("\r\n250") && out.trim_end().ends_with("timeout exceeded"),
        "{out}"
    );
    assert!(
        out.lines().last().unwrap().starts_with("421 4.4.2"),
        "{out}"
    );
}

/// The recipient mix of the delivery-path table: a bare name, root at
/// localhost, a `local_domains` domain, a remote domain.
const MIX: [&str; 4] = [
    "root",
    "root@localhost",
    "ops@lan.example",
    "far@example.net",
];

/// A configuration for the delivery-path table: a relay on `port` (or
/// none), the profile domain client.example, lan.example local.
fn path_config(env: &Env, port: Option<u16>) -> PathBuf {
    let relay = match port {
        Some(p) => format!("host = \"127.0.0.1\"\nport = {p}\ntls = \"none\"\n"),
        None => String::new(),
    };
    write_config(
        env,
        &format!(
            "{relay}domain = \"client.example\"\nlocal_domains = [\"localhost\", \"lan.example\"]\nqueue_dir = \"{}\"\nmaildir = \"{}\"\ntimeout = 5\n",
            env.path("queue").display(),
            env.path("Maildir").display()
        ),
    )
}

/// Who got a Maildir copy (from the Delivered-To headers). The table's
/// profile names one Maildir, which takes every local recipient (issue
/// 14: an explicit `maildir` wins over per-user mailboxes).
fn maildir_recipients(env: &Env) -> Vec<String> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(env.path("Maildir/new"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(f.path()).unwrap();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("Delivered-To: ") {
                out.extend(v.split(", ").map(str::to_owned));
            }
        }
    }
    out.sort();
    out
}

fn queued_count(env: &Env) -> usize {
    std::fs::read_dir(env.path("queue/msg"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "env"))
                .count()
        })
        .unwrap_or(0)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// As root, runs the binary as nobody (uid 65534), owner of the scratch
/// home, so that no system spool root could write is usable either;
/// otherwise as ourselves.
fn run_unprivileged_if_root(env: &Env, cfg: &str, argv: &[&str], stdin: &[u8]) -> Out {
    use std::os::unix::fs::{PermissionsExt, chown};
    use std::os::unix::process::CommandExt;
    if !is_root() {
        return env.run(argv, stdin);
    }
    const NOBODY: u32 = 65534;
    for entry in ["", "queue", "state"] {
        chown(env.path(entry), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::fs::set_permissions(cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = env.command(argv);
    cmd.uid(NOBODY).gid(NOBODY);
    run_command(&mut cmd, stdin)
}

/// The delivery paths of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path_ {
    NoQueue,
    FirstAttempt,
    QueueRun,
    Bs,
    SpoolUnwritable,
}

/// One run of `path` with the recipient mix: the exit status, who got a
/// Maildir copy, whom the relay got, and how many messages stay queued.
fn run_path(path: Path_, relay: bool) -> (i32, Vec<String>, Vec<String>, usize, String) {
    let env = Env::new();
    let server = relay.then(|| ScriptedServer::start(Script::new().max_connections(2)));
    let cfg = path_config(&env, server.as_ref().map(|s| s.port()));
    let cfg = cfg.to_str().unwrap().to_owned();
    let body = b"Subject: paths\n\nbody\n";
    let mut argv = vec!["-C", cfg.as_str(), "-i"];
    let out = match path {
        Path_::NoQueue | Path_::FirstAttempt | Path_::SpoolUnwritable => {
            if path == Path_::NoQueue {
                argv.push("--no-queue");
            }
            argv.extend(MIX);
            if path == Path_::SpoolUnwritable {
                std::fs::write(env.path("queue"), b"not a directory").unwrap();
                std::fs::write(env.path("state"), b"not a directory").unwrap();
                run_unprivileged_if_root(&env, &cfg, &argv, body)
            } else {
                env.run(&argv, body)
            }
        }
        Path_::QueueRun => {
            // Spooled by the library, so the queue run makes the first try.
            let q = smtpsend::queue::Queue::open(&env.path("queue")).unwrap();
            let qualified = MIX.map(|r| {
                if r.contains('@') {
                    r.to_owned()
                } else {
                    format!("{r}@client.example")
                }
            });
            q.spool(
                &mut &b"Subject: paths\n\nbody\n"[..],
                smtpsend::queue::NewMessage {
                    profile: "default".into(),
                    sender: "tester@client.example".into(),
                    recipients: qualified.to_vec(),
                    ..Default::default()
                },
            )
            .unwrap();
            env.run(&["-C", &cfg, "--queue-flush"], b"")
        }
        Path_::Bs => {
            let mut session = String::from("EHLO mua\r\nMAIL FROM:<tester@client.example>\r\n");
            for r in MIX {
                session.push_str(&format!("RCPT TO:<{r}>\r\n"));
            }
            session.push_str("DATA\r\nSubject: paths\r\n\r\nbody\r\n.\r\nQUIT\r\n");
            let out = env.run(&["-C", &cfg, "-bs"], session.as_bytes());
            let last_data_reply = out
                .stdout
                .lines()
                .rfind(|l| l.starts_with("250 ") || l.starts_with("451") || l.starts_with("554"))
                .unwrap_or("")
                .to_owned();
            // The verdict for the message is its reply's class.
            let code = match &last_data_reply[..1.min(last_data_reply.len())] {
                "2" => 0,
                "4" => 75,
                _ => 69,
            };
            Out { code, ..out }
        }
    };
    let relayed = server
        .map(|s| {
            let t = s.finish();
            let mut r: Vec<String> = t
                .messages()
                .iter()
                .flat_map(|m| m.rcpt_addrs())
                .map(str::to_owned)
                .collect();
            r.sort();
            r
        })
        .unwrap_or_default();
    let kept = queued_count(&env);
    (
        out.code,
        maildir_recipients(&env),
        relayed,
        kept,
        out.stderr,
    )
}

#[test]
fn every_delivery_path_sends_the_recipient_mix_to_the_same_places() {
    let local = ["ops@lan.example", "root@localhost"];
    let mut paths = vec![
        Path_::NoQueue,
        Path_::FirstAttempt,
        Path_::QueueRun,
        Path_::Bs,
        Path_::SpoolUnwritable,
    ];
    if std::path::Path::new(smtpsend::queue::SYSTEM_DIR).is_dir() && !is_root() {
        // The unwritable-spool case would spool there instead (as root it
        // runs as nobody, who cannot write there).
        eprintln!(
            "not testing an unwritable spool: {} exists",
            smtpsend::queue::SYSTEM_DIR
        );
        paths.pop();
    }
    // A relay: the local ones into the Maildir, the rest (the bare name is
    // qualified with the profile domain, which is not a local one) to the
    // relay; nothing stays queued.
    for &path in &paths {
        let (code, maildir, relayed, kept, err) = run_path(path, true);
        assert_eq!(code, 0, "{path:?}: {err}");
        assert_eq!(maildir, local, "{path:?}: {err}");
        assert_eq!(
            relayed,
            ["far@example.net", "root@client.example"],
            "{path:?}"
        );
        assert_eq!(kept, 0, "{path:?}");
        if path == Path_::SpoolUnwritable {
            assert!(err.contains("no writable queue directory"), "{err}");
        }
    }
    // No relay: this machine's names are local too; the remote recipient
    // stays queued where there is a queue, and is the caller's to keep
    // (EX_TEMPFAIL) where there is none.
    let local = ["ops@lan.example", "root@client.example", "root@localhost"];
    for path in paths {
        let (code, maildir, relayed, kept, err) = run_path(path, false);
        assert_eq!(maildir, local, "{path:?}: {err}");
        assert!(relayed.is_empty());
        match path {
            Path_::NoQueue | Path_::SpoolUnwritable => {
                assert_eq!(code, 75, "{path:?}: {err}");
                assert!(err.contains("no relay configured"), "{path:?}: {err}");
                assert_eq!(kept, 0, "{path:?}");
            }
            _ => {
                assert_eq!(code, 0, "{path:?}: {err}");
                assert_eq!(kept, 1, "{path:?}: {err}");
            }
        }
    }
}

#[test]
fn dry_run_of_queue_runs_sends_nothing_and_bs_refuses_it() {
    let env = Env::new();
    // Queued while the relay is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = path_config(&env, Some(closed));
    let cfg = cfg.to_str().unwrap().to_owned();
    let out = env.run(&["-C", &cfg, "-i", "far@example.net"], b"Subject: q\n\nq\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(queued_count(&env), 1);

    let server = ScriptedServer::start(Script::new().max_connections(3));
    let cfg = path_config(&env, Some(server.port()));
    let cfg = cfg.to_str().unwrap().to_owned();
    let run = env.run(&["-C", &cfg, "-q", "--dry-run"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("nothing to try"), "{}", run.stdout);
    let flush = env.run(&["-C", &cfg, "--queue-flush", "--dry-run"], b"");
    assert_eq!(flush.code, 0, "{}", flush.stderr);
    assert!(
        flush.stdout.contains("would try") && flush.stdout.contains("<far@example.net>"),
        "{}",
        flush.stdout
    );
    let bs = env.run(
        &["-C", &cfg, "-bs", "--dry-run"],
        b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<far@example.net>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(bs.code, 64, "{}", bs.stderr);
    assert!(bs.stdout.is_empty(), "{}", bs.stdout);
    for bad in [
        &["--dry-run", "--queue-delete", "x"][..],
        &["--dry-run", "--serverinfo"],
        &["-q", "--queue-list"],
    ] {
        let mut argv = vec!["-C", cfg.as_str()];
        argv.extend(bad);
        assert_eq!(env.run(&argv, b"").code, 64, "{bad:?}");
    }
    let t = server.finish();
    assert!(t.connections.is_empty(), "the dry runs connected");
    assert_eq!(queued_count(&env), 1);
}

#[test]
fn serverinfo_takes_host_and_port_in_one() {
    let server = ScriptedServer::start(Script::new());
    let env = Env::new();
    let target = format!("127.0.0.1:{}", server.port());
    let out = env.run(&["--serverinfo", "--host", &target, "--tls", "none"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("relay: 127.0.0.1 port {}", server.port())),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("greeting: 220"), "{}", out.stdout);
    server.finish();
}

#[test]
fn a_panic_is_one_line_and_the_exit_of_a_queued_message() {
    let server = ScriptedServer::start(Script::new().max_connections(4));
    let env = Env::new();
    let cfg = path_config(&env, Some(server.port()));
    let cfg = cfg.to_str().unwrap().to_owned();
    let msg = b"Subject: p\n\np\n";
    let inject = |point: &str, args: &[&str]| {
        let mut argv = vec!["-C", cfg.as_str(), "-i"];
        argv.extend(args);
        env.run_env(&argv, msg, &[("SMTPSEND_INJECT_PANIC", point)])
    };
    // After spooling: safe in the queue, so success with one line.
    let out = inject("after-spool", &["far@example.net"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("internal error")
            && out.stderr.contains("kept in the queue, queued as"),
        "{}",
        out.stderr
    );
    assert_eq!(queued_count(&env), 1);
    // Before anything was kept: EX_TEMPFAIL, never 101.
    let out = inject("before-spool", &["--no-queue", "far@example.net"]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("not queued"), "{}", out.stderr);

    // A poison entry in a queue run: the others are delivered, it stays.
    let q = smtpsend::queue::Queue::open(&env.path("queue")).unwrap();
    for sender in [
        "a@client.example",
        "poison@client.example",
        "c@client.example",
    ] {
        q.spool(
            &mut &b"Subject: q\n\nq\n"[..],
            smtpsend::queue::NewMessage {
                profile: "default".into(),
                sender: sender.into(),
                recipients: vec!["far@example.net".into()],
                ..Default::default()
            },
        )
        .unwrap();
    }
    assert_eq!(queued_count(&env), 4);
    let out = env.run_env(
        &["-C", &cfg, "--queue-flush"],
        b"",
        &[("SMTPSEND_INJECT_PANIC", "queue-entry:poison@client.example")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("internal error on 1 queued message"),
        "{}",
        out.stderr
    );
    assert_eq!(queued_count(&env), 1, "{}", out.stderr);
    let t = server.finish();
    let senders: Vec<&str> = t.messages().iter().map(|m| m.sender_addr()).collect();
    assert_eq!(senders.len(), 3, "{senders:?}");
    assert!(!senders.contains(&"poison@client.example"), "{senders:?}");
}

#[test]
fn protocol_bdat_and_json_log_flags() {
    let env = Env::new();
    let log = env.path("log.json");
    let log_arg = log.to_str().unwrap().to_owned();
    let body = b"Subject: f\n\nf\n";

    // BDAT by default when CHUNKING is offered; --no-bdat sends DATA.
    let server = ScriptedServer::start(Script::new().with_cap("CHUNKING").max_connections(2));
    let mut argv = relay_args(&server);
    argv.extend(
        [
            "--no-queue",
            "--log-format",
            "json",
            "-X",
            &log_arg,
            "-i",
            "b@example.org",
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = env.run(&argv, body);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut with_no_bdat = argv.clone();
    with_no_bdat.insert(0, "--no-bdat");
    let out = env.run(&with_no_bdat, body);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = server.finish();
    let m = t.messages();
    assert!(m[0].bdat_chunks.is_some(), "the first went with DATA");
    assert!(m[1].bdat_chunks.is_none(), "--no-bdat went with BDAT");

    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    for l in lines.lines() {
        assert!(
            l.starts_with("{\"time\":") && l.contains("\"status\":\"sent\"") && l.ends_with("]}"),
            "{l}"
        );
    }

    // --protocol lmtp speaks LHLO.
    let server = ScriptedServer::start(Script::new().lhlo());
    let mut argv = relay_args(&server);
    argv.extend(["--no-queue", "--protocol", "lmtp", "-i", "b@example.org"].map(String::from));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = env.run(&argv, body);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = server.finish();
    assert_eq!(t.conn().verbs().first().map(String::as_str), Some("LHLO"));
    assert_eq!(t.accepted(), 1);
}

/// RFC 5321 §4.5.3.1.10 through the binary, queued and `--no-queue`: a
/// relay that takes two recipients a transaction (452 to the third) gets
/// the rest in a further transaction on the same connection, and every
/// recipient gets the message once.
#[test]
fn too_many_recipients_go_in_a_further_transaction_on_every_path() {
    for no_queue in [false, true] {
        let server = ScriptedServer::start(
            Script::new().reply_at(Step::Rcpt.nth(2), "452 4.5.3 too many recipients"),
        );
        let env = Env::new();
        let mut argv = relay_args(&server);
        if no_queue {
            argv.push("--no-queue".into());
        }
        argv.extend(["-i", "r1@example.org", "r2@example.org", "r3@example.org"].map(String::from));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = env.run(&argv, b"Subject: x\n\nbody\n");
        assert_eq!(out.code, 0, "no_queue={no_queue}: {}", out.stderr);
        let t = server.finish();
        let msgs = t.messages();
        assert_eq!(msgs.len(), 2, "no_queue={no_queue}: {t:#?}");
        let mut got: Vec<&str> = msgs.iter().flat_map(|m| m.rcpt_addrs()).collect();
        got.sort();
        assert_eq!(got, ["r1@example.org", "r2@example.org", "r3@example.org"]);
        assert!(msgs.iter().all(|m| m.accepted));
        assert_eq!(t.accepted(), 1, "one connection");
        assert_eq!(queued_count(&env), 0, "nothing left queued");
    }
}
