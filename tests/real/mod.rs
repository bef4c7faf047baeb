//! Real servers for interop tests: Postfix, Dovecot (SASL and LMTP) and
//! aiosmtpd, started privately on 127.0.0.1 by tests/servers/up.sh and
//! stopped when the guard drops (even when a case panics).
//!
//! They need root and Debian's packages (`.ci/install-deps`). Without them
//! the interop tests fail with a message saying so, unless
//! `SMTPSEND_SKIP_INTEROP=1` asks to skip them explicitly.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct RealServers {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl RealServers {
    /// Starts the servers, or returns `None` when skipping was asked for.
    pub fn start() -> Option<RealServers> {
        if std::env::var_os("SMTPSEND_SKIP_INTEROP").is_some_and(|v| v == "1") {
            eprintln!("SMTPSEND_SKIP_INTEROP=1: interop tests skipped");
            return None;
        }
        for tool in ["/usr/sbin/postfix", "/usr/sbin/dovecot"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: run `sudo .ci/install-deps` (or set SMTPSEND_SKIP_INTEROP=1 to skip the interop tests)"
            );
        }
        // Unix socket paths are short: keep the state dir under /tmp.
        let dir = tempfile::Builder::new()
            .prefix("smtpsend-it.")
            .tempdir_in("/tmp")
            .unwrap();
        let out = Command::new("bash")
            .arg(root().join("tests/servers/up.sh"))
            .arg(dir.path())
            .env("SERVERS_MAX_SECONDS", "900")
            .output()
            .expect("run tests/servers/up.sh");
        let mut servers = RealServers {
            dir,
            env: HashMap::new(),
        };
        assert!(
            out.status.success(),
            "tests/servers/up.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(servers.dir.path().join("env")).unwrap();
        servers.env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(servers)
    }

    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} missing from the servers' env"))
    }

    pub fn port(&self, key: &str) -> u16 {
        self.get(key).parse().unwrap()
    }

    pub fn path(&self, key: &str) -> PathBuf {
        PathBuf::from(self.get(key))
    }

    /// Waits (up to 15 s) for a message containing `marker` in `maildir`'s
    /// new/ and returns its bytes.
    pub fn wait_for_mail(&self, maildir: &Path, marker: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(rd) = std::fs::read_dir(maildir.join("new")) {
                for e in rd.flatten() {
                    if let Ok(b) = std::fs::read(e.path())
                        && b.windows(marker.len()).any(|w| w == marker.as_bytes())
                    {
                        return b;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no message with {marker:?} arrived in {}",
                maildir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The Postfix catch-all Maildir for `domain`.
    pub fn postfix_maildir(&self, domain: &str) -> PathBuf {
        self.path("MAILDIR_ROOT").join(domain)
    }

    /// Waits for Postfix's log to contain `needle`.
    pub fn wait_for_log(&self, key: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = std::fs::read_to_string(self.get(key)).unwrap_or_default();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "{key} never said {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RealServers {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("tests/servers/down.sh"))
            .arg(self.dir.path())
            .status();
    }
}

/// Runs every case, catching panics, and fails once at the end naming each
/// failed case, so one broken case does not hide the others.
/// A named interop case.
pub type Case<'a> = (&'a str, fn(&RealServers));

pub fn run_cases(servers: &RealServers, cases: &[Case]) {
    let filter = std::env::var("INTEROP_CASE").ok();
    let mut failed = Vec::new();
    for (name, case) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let start = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(servers)));
        let status = if r.is_ok() { "ok" } else { "FAILED" };
        eprintln!("interop case {name} ... {status} ({:?})", start.elapsed());
        if r.is_err() {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "interop cases failed: {failed:?}");
}

/// A marker unique to this test process and call.
pub fn marker(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
