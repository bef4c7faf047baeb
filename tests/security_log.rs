//! Issue 12, "Paths": the log file (`-X`, `log`) is never written through
//! a symlink planted at its path, and a refused log never fails the send.

mod support;

use std::os::unix::fs::{PermissionsExt, symlink};

use support::*;

#[test]
fn a_symlink_planted_at_the_log_path_is_not_followed_and_the_mail_goes_out() {
    let server = ScriptedServer::start(Script::new().max_connections(2));
    let env = BinEnv::new();
    // A sticky directory anyone may write, as /tmp, and a canary outside.
    let logs = env.path("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let canary_dir = env.path("etc");
    std::fs::create_dir(&canary_dir).unwrap();
    let canary = canary_dir.join("passwd");
    std::fs::write(&canary, "root:x:0:0\n").unwrap();
    let log = logs.join("smtpsend.log");
    let port = server.port().to_string();
    let argv = |log: &str| {
        vec![
            "--host".to_owned(),
            "127.0.0.1".into(),
            "--port".into(),
            port.clone(),
            "--tls".into(),
            "none".into(),
            "-X".into(),
            log.to_owned(),
            "-f".into(),
            "me@client.example".into(),
            "b@example.org".into(),
        ]
    };

    // A link to an existing file, then a dangling one (which O_CREAT
    // alone would create through): neither is followed.
    symlink(&canary, &log).unwrap();
    let a = argv(log.to_str().unwrap());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = env.run(&a, b"Subject: one\n\nbody\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);

    std::fs::remove_file(&log).unwrap();
    let created = canary_dir.join("nologin");
    symlink(&created, &log).unwrap();
    let out = env.run(&a, b"Subject: two\n\nbody\n");
    assert_eq!(out.code, 0, "{}", out.stderr);

    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "root:x:0:0\n");
    assert!(!created.exists(), "created through a dangling symlink");
    assert_eq!(server.finish().messages().len(), 2);
}
