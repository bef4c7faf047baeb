//! Secrets never leak sideways: what a failing `password_command` prints
//! stays out of the queue, the log and `mailq`; the command does not see
//! smtpsend's secret variables; the process cannot dump core.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::*;

const STDOUT_SECRET: &str = "hunter2-on-stdout";
const STDERR_NOTE: &str = "vault-locked-note";

/// Every byte under `dir`, recursively, as text.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push_str(&all_text(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push_str(&format!("== {}\n", p.display()));
            out.push_str(&String::from_utf8_lossy(&b));
        }
    }
    out
}

#[test]
fn a_failing_password_command_leaves_no_trace_of_its_output() {
    let env = BinEnv::new();
    let server = ScriptedServer::start(Script::new().auth_accept("u", "right").max_connections(3));
    let queue = env.path("queue");
    let log = env.path("smtpsend.log");
    let cfg = env.path("config.toml");
    // It prints what could be the secret, on both outputs, and fails; it
    // also reports whether it could see our secret variables. A script, so
    // the command line itself holds none of the strings looked for.
    let script = env.path("pw.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho {STDOUT_SECRET}\necho {STDERR_NOTE} >&2\n\
             env | grep -q '^SMTPSEND_.*PASSWORD' && echo SAW-SECRET-VARIABLE >&2\nexit 3\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nallow_plaintext_auth = true\n\
             user = \"u\"\ndomain = \"client.example\"\nqueue_dir = \"{}\"\nlog = \"{}\"\n\
             timeout = 5\npassword_command = \"{}\"\n",
            server.port(),
            queue.display(),
            log.display(),
            script.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = cfg.to_str().unwrap();

    let out = env.run_env(
        &["-C", c, "-i", "b@example.org"],
        b"From: a@example.org\nSubject: s\n\nbody\n",
        &[
            ("SMTPSEND_PASSWORD", "env-secret"),
            ("SMTPSEND_CLIENT_CERT_PASSWORD", "p12-secret"),
        ],
    );
    // Kept for a later run, with one line saying why.
    assert!(
        out.code == 0 || out.code == 75 || out.code == 78,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(STDOUT_SECRET), "{}", out.stderr);
    assert!(
        !out.stderr.contains("SAW-SECRET-VARIABLE"),
        "{}",
        out.stderr
    );
    // The command's own error output reached the terminal, once.
    assert_eq!(out.stderr.matches(STDERR_NOTE).count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("exit status 3"), "{}", out.stderr);

    // A queue run, as cron would start it: the same again.
    let run = env.run(&["-C", c, "--queue-flush"], b"");
    assert!(!run.stderr.contains(STDOUT_SECRET), "{}", run.stderr);
    assert!(
        run.stderr.matches(STDERR_NOTE).count() <= 1,
        "{}",
        run.stderr
    );

    let list = env.run(&["-C", c, "-bp"], b"");
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("b@example.org"),
        "{}{}",
        list.stdout,
        all_text(env.dir.path())
    );
    assert!(list.stdout.contains("exit status 3"), "{}", list.stdout);
    for (what, text) in [
        ("mailq", list.stdout.clone() + &list.stderr),
        ("the log", std::fs::read_to_string(&log).unwrap_or_default()),
        ("the queue", all_text(&queue)),
    ] {
        assert!(!text.contains(STDOUT_SECRET), "{what}: {text}");
        assert!(!text.contains(STDERR_NOTE), "{what}: {text}");
        assert!(!text.contains("env-secret"), "{what}: {text}");
    }
    assert!(
        all_text(&queue).contains("exit status 3"),
        "the reason is recorded"
    );
    let t = server.finish();
    assert!(t.messages().is_empty());
}

#[test]
fn no_core_files_for_the_binary_or_what_it_starts() {
    // The password command reports the core-size limits it inherited.
    let env = BinEnv::new();
    let server = ScriptedServer::start(Script::new().auth_accept("u", "pw"));
    let cfg = env.path("config.toml");
    let seen = env.path("seen");
    std::fs::write(
        &cfg,
        format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nallow_plaintext_auth = true\n\
             user = \"u\"\nqueue = false\ntimeout = 5\n\
             password_command = \"ulimit -c > {1}; ulimit -H -c >> {1}; echo pw\"\n",
            server.port(),
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(
        &["-C", cfg.to_str().unwrap(), "-i", "b@example.org"],
        b"Subject: s\n\nbody\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let limits = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(limits.split_whitespace().collect::<Vec<_>>(), ["0", "0"]);
    assert_eq!(server.finish().messages().len(), 1);
}
