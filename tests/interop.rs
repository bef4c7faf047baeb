//! Interop against real servers on 127.0.0.1: Postfix (plain, no
//! pipelining, STARTTLS submission with Dovecot SASL, implicit TLS,
//! OAuth bearer tokens), Dovecot LMTP over TCP and a Unix socket, and
//! aiosmtpd, and Exim 4.96 (BDAT byte-exactness, 452 too many recipients).
//! Both the library and the real binary are exercised.

mod real;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use real::{RealServers, marker, run_cases};
use smtpsend::smtp::auth::Credentials;
use smtpsend::smtp::data::BodyScanner;
use smtpsend::smtp::{
    Envelope, Error, Protocol, Secret, SendOptions, SessionOptions, Smtp, TlsOptions,
};

fn opts(s: &RealServers) -> SessionOptions {
    let mut tls = TlsOptions::new();
    tls.ca_file = Some(s.path("CA_FILE"));
    tls.server_name = Some(s.get("TLS_NAME").to_owned());
    SessionOptions {
        local_hostname: Some("client.example".into()),
        timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(10),
        tls,
        ..SessionOptions::default()
    }
}

fn connect(s: &RealServers, port_key: &str, o: SessionOptions) -> Smtp {
    let mut smtp = Smtp::new(o);
    smtp.connect(s.get("HOST"), Some(s.port(port_key))).unwrap();
    smtp
}

fn message(mark: &str, body: &str) -> Vec<u8> {
    format!("From: a@example.org\nTo: b@example.org\nSubject: {mark}\n\n{body}").into_bytes()
}

/// The body Postfix stored, after its own headers (Return-Path, ...,
/// Received) and ours.
fn body_of(stored: &[u8]) -> String {
    let s = String::from_utf8_lossy(stored).into_owned();
    s.split_once("\n\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

fn plain_dots_and_bare_lf_arrive_byte_correct(s: &RealServers) {
    let mark = marker("dots");
    let body = ".leading dot\n..two dots\n.\nbare\rcr and crlf\r\nend";
    let mut smtp = connect(s, "PLAIN_PORT", opts(s));
    let refused = smtp
        .sendmail(
            "a@example.org",
            &["dots@example.org"],
            &message(&mark, body),
            &[],
            &[],
        )
        .unwrap();
    assert!(refused.is_empty());
    assert!(smtp.has_extn("pipelining"));
    smtp.quit().unwrap();
    let got = s.wait_for_mail(&s.postfix_maildir("example.org"), &mark);
    // Maildir stores LF line ends; every bare CR became a line end.
    assert_eq!(
        body_of(&got),
        ".leading dot\n..two dots\n.\nbare\ncr and crlf\nend\n"
    );
}

fn no_pipelining_port_gets_lockstep_commands(s: &RealServers) {
    // Postfix hangs up on unadvertised pipelining (554 synchronization
    // error), so success here proves we wait for each reply.
    let mark = marker("nopipe");
    let mut smtp = connect(s, "NOPIPE_PORT", opts(s));
    smtp.sendmail(
        "a@example.org",
        &["np1@example.org", "np2@example.com"],
        &message(&mark, "x\n"),
        &[],
        &[],
    )
    .unwrap();
    assert!(!smtp.has_extn("pipelining"));
    smtp.quit().unwrap();
    s.wait_for_mail(&s.postfix_maildir("example.org"), &mark);
    s.wait_for_mail(&s.postfix_maildir("example.com"), &mark);
}

fn refusals_partial_permanent_transient(s: &RealServers) {
    let mark = marker("refuse");
    let mut smtp = connect(s, "PLAIN_PORT", opts(s));
    let refused = smtp
        .sendmail(
            "a@example.org",
            &["x@reject.test", "ok@example.org", "y@defer.test"],
            &message(&mark, "x\n"),
            &[],
            &[],
        )
        .unwrap();
    let codes: Vec<(String, u16)> = refused.iter().map(|(a, r)| (a.clone(), r.code())).collect();
    assert_eq!(
        codes,
        [("x@reject.test".into(), 550), ("y@defer.test".into(), 450)]
    );
    assert_eq!(refused[0].1.enhanced_code().unwrap().to_string(), "5.1.1");
    // Every recipient refused, then the same session delivers.
    let e = smtp
        .sendmail(
            "a@example.org",
            &["x@reject.test"],
            &message(&mark, "x\n"),
            &[],
            &[],
        )
        .unwrap_err();
    assert!(matches!(e, Error::RecipientsRefused(_)), "{e:?}");
    let e = smtp
        .sendmail(
            "a@example.org",
            &["y@defer.test"],
            &message(&mark, "x\n"),
            &[],
            &[],
        )
        .unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    let mark2 = marker("after-refusal");
    smtp.sendmail(
        "a@example.org",
        &["again@example.org"],
        &message(&mark2, "x\n"),
        &[],
        &[],
    )
    .unwrap();
    smtp.quit().unwrap();
    s.wait_for_mail(&s.postfix_maildir("example.org"), &mark2);
}

fn size_limit_from_real_server(s: &RealServers) {
    let mut smtp = connect(s, "PLAIN_PORT", opts(s));
    let limit: u64 = s.get("MESSAGE_SIZE_LIMIT").parse().unwrap();
    let big = vec![b'x'; limit as usize + 10];
    let e = smtp
        .sendmail("a@example.org", &["b@example.org"], &big, &[], &[])
        .unwrap_err();
    assert!(matches!(e, Error::MessageTooLarge { .. }), "{e:?}");
    smtp.quit().unwrap();
}

fn smtputf8_declared_to_postfix(s: &RealServers) {
    let mark = marker("utf8");
    let mut smtp = connect(s, "PLAIN_PORT", opts(s));
    smtp.sendmail(
        "j\u{f6}rg@example.org",
        &["b@example.org"],
        &message(&mark, "gr\u{fc}\u{df}e\n"),
        &[],
        &[],
    )
    .unwrap();
    smtp.quit().unwrap();
    let got = String::from_utf8_lossy(&s.wait_for_mail(&s.postfix_maildir("example.org"), &mark))
        .into_owned();
    assert!(
        got.contains("with UTF8ESMTP") || got.contains("with UTF8SMTP"),
        "{got}"
    );
}

fn bdat_to_postfix(s: &RealServers) {
    let mark = marker("bdat");
    let mut o = opts(s);
    o.chunking = true;
    let mut smtp = connect(s, "PLAIN_PORT", o);
    let body = ".dot\nline\n";
    smtp.sendmail(
        "a@example.org",
        &["b@example.org"],
        &message(&mark, body),
        &[],
        &[],
    )
    .unwrap();
    smtp.quit().unwrap();
    let got = s.wait_for_mail(&s.postfix_maildir("example.org"), &mark);
    assert_eq!(body_of(&got), body);
    // Postfix counts the commands it got in its disconnect line.
    s.wait_for_log("POSTFIX_LOG", "bdat=1 quit=1");
}

/// A body that exercises every rule of the wire form: leading dots, a
/// lone dot line, bare CR and bare LF, 8-bit text, and (for `big`) enough
/// lines to need several BDAT chunks when the size is not known.
fn tricky_body(big: bool) -> String {
    let mut b = String::from(".leading dot\n..two\n.\nbare\rcr\r\ncrlf\ncaf\u{e9} 8-bit\n");
    if big {
        let line = "0123456789 abcdefghijklmnopqrstuvwxyz .not a dot line\n";
        while b.len() < 2_600_000 {
            b.push_str(line);
        }
    }
    b.push_str("end");
    b
}

/// What a Maildir stores of `tricky_body`: LF line ends, every bare CR a
/// line end, a final line end added.
fn stored_form(body: &str) -> String {
    format!("{}\n", body.replace("\r\n", "\n").replace('\r', "\n"))
}

/// Every message in `maildir` holding `marker`, once `n` have arrived.
fn wait_for_n(maildir: &std::path::Path, mark: &str, n: usize) -> Vec<Vec<u8>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<Vec<u8>> = std::fs::read_dir(maildir.join("new"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter(|b| b.windows(mark.len()).any(|w| w == mark.as_bytes()))
            .collect();
        if found.len() >= n {
            assert_eq!(found.len(), n, "more messages than expected");
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} messages with {mark:?} in {}",
            found.len(),
            maildir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// BDAT byte-exact into Postfix and Exim: once with the size known (one
/// `BDAT n LAST` chunk, QUIT riding in the same flight) and once from a
/// stream of unknown size (1 MiB chunks).
fn bdat_byte_exact_to_postfix_and_exim(s: &RealServers) {
    for (port, maildir, log) in [
        // (The Exim log key is read at the end.)
        (
            "PLAIN_PORT",
            s.postfix_maildir("example.org"),
            "POSTFIX_LOG",
        ),
        ("EXIM_PORT", s.path("EXIM_MAILDIR"), "EXIM_LOG"),
    ] {
        for (known_size, big) in [(true, false), (true, true), (false, true)] {
            let mark = marker(&format!("bdat-{port}-{known_size}-{big}"));
            let body = tricky_body(big);
            let msg = message(&mark, &body);
            let mut o = opts(s);
            o.chunking = true;
            let mut smtp = connect(s, port, o);
            let env = Envelope::new("a@example.org", ["b@example.org"]);
            let refused = if known_size {
                smtp.send(
                    &env,
                    &mut std::io::Cursor::new(&msg),
                    SendOptions {
                        info: Some(BodyScanner::scan(&msg)),
                        quit_after: true,
                    },
                )
            } else {
                let r = smtp.send_stream(&env, &mut &msg[..], SendOptions::default());
                smtp.quit().unwrap();
                r
            }
            .unwrap();
            assert!(refused.is_empty());
            assert!(smtp.has_extn("chunking") || !smtp.is_connected());
            assert!(!smtp.is_connected());
            let got = s.wait_for_mail(&maildir, &mark);
            assert!(
                body_of(&got) == stored_form(&body),
                "{port}: body differs (known size {known_size}, big {big})"
            );
            if port == "PLAIN_PORT" {
                let chunks = if known_size { 1 } else { 3 };
                s.wait_for_log(log, &format!("bdat={chunks} quit=1"));
            }
        }
    }
    // Exim's log flags a CHUNKING reception with K.
    let log = std::fs::read_to_string(s.get("EXIM_LOG")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains(" <= a@example.org") && l.contains(" K ")),
        "{log}"
    );
}

/// Exim is set to take 3 recipients a transaction (recipients_max); the
/// rest get 452 and go in further transactions on the same connection,
/// with DATA and with BDAT, each recipient getting the message once; a
/// refused one is reported as refused.
fn too_many_recipients_to_exim(s: &RealServers) {
    for chunking in [false, true] {
        let mark = marker(&format!("452-{chunking}"));
        let mut o = opts(s);
        o.chunking = chunking;
        let mut smtp = connect(s, "EXIM_PORT", o);
        let to: Vec<String> = (1..=7).map(|i| format!("r{i}@example.org")).collect();
        let mut to_refs: Vec<&str> = to.iter().map(String::as_str).collect();
        to_refs.insert(2, "nobody@reject.test");
        let refused = smtp
            .sendmail("a@example.org", &to_refs, &message(&mark, "x\n"), &[], &[])
            .unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].0, "nobody@reject.test");
        assert_eq!(refused[0].1.code(), 550);
        smtp.quit().unwrap();
        let got = wait_for_n(&s.path("EXIM_MAILDIR"), &mark, 7);
        let mut envelope_to: Vec<String> = got
            .iter()
            .map(|m| {
                let t = String::from_utf8_lossy(m);
                t.lines()
                    .find_map(|l| l.strip_prefix("Envelope-to: "))
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        envelope_to.sort();
        assert_eq!(envelope_to, to);
        // At most 3 a transaction: at least 3 transactions (Exim ids).
        let mut ids: Vec<String> = got
            .iter()
            .filter_map(|m| {
                let t = String::from_utf8_lossy(m);
                t.lines()
                    .find_map(|l| l.trim().strip_prefix("id "))
                    .map(str::to_owned)
            })
            .collect();
        ids.sort();
        ids.dedup();
        assert!(ids.len() >= 3, "{ids:?}");
    }
}

/// STARTTLS negotiates TLS 1.3 with Postfix; AUTH PLAIN with its initial
/// response and a BDAT transaction follow.
fn starttls_tls13_auth_plain_bdat(s: &RealServers) {
    let mark = marker("tls13-bdat");
    let mut o = opts(s);
    o.chunking = true;
    let mut smtp = connect(s, "SUBMISSION_PORT", o);
    smtp.starttls().unwrap();
    assert_eq!(smtp.tls_info().unwrap().protocol, "TLSv1.3");
    let creds = Credentials::new(s.get("SASL_USER"), s.get("SASL_PASSWORD"));
    smtp.login_with(&creds, Some("PLAIN")).unwrap();
    let msg = message(&mark, "x\n");
    let env = Envelope::new(s.get("SASL_USER"), ["rcpt@example.net"]);
    smtp.send(
        &env,
        &mut std::io::Cursor::new(&msg),
        SendOptions {
            info: Some(BodyScanner::scan(&msg)),
            quit_after: true,
        },
    )
    .unwrap();
    s.wait_for_mail(&s.postfix_maildir("example.net"), &mark);
    s.wait_for_log("POSTFIX_LOG", "auth=1 mail=1 rcpt=1 bdat=1 quit=1");
}

fn starttls_login_each_mechanism(s: &RealServers) {
    let creds = Credentials::new(s.get("SASL_USER"), s.get("SASL_PASSWORD"));
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"] {
        let mark = marker(&format!("auth-{mech}"));
        let mut smtp = connect(s, "SUBMISSION_PORT", opts(s));
        smtp.starttls().unwrap();
        assert!(smtp.is_tls());
        let r = smtp.login_with(&creds, Some(mech)).unwrap();
        assert_eq!(r.code(), 235, "{mech}");
        smtp.sendmail(
            s.get("SASL_USER"),
            &["rcpt@example.net"],
            &message(&mark, "x\n"),
            &[],
            &[],
        )
        .unwrap();
        smtp.quit().unwrap();
        s.wait_for_mail(&s.postfix_maildir("example.net"), &mark);
        s.wait_for_log("POSTFIX_LOG", &format!("sasl_method={mech}"));
    }
}

fn login_picks_the_strongest(s: &RealServers) {
    let mut smtp = connect(s, "SUBMISSION_PORT", opts(s));
    smtp.starttls().unwrap();
    smtp.login(s.get("SASL_USER2"), &Secret::new(s.get("SASL_PASSWORD2")))
        .unwrap();
    // Postfix logs the SASL method with the first transaction.
    let mark = marker("strongest");
    smtp.sendmail(
        "bob@example.org",
        &["rcpt@example.net"],
        &message(&mark, "x\n"),
        &[],
        &[],
    )
    .unwrap();
    smtp.quit().unwrap();
    s.wait_for_log(
        "POSTFIX_LOG",
        "sasl_method=SCRAM-SHA-256, sasl_username=bob",
    );
}

fn wrong_password_is_535(s: &RealServers) {
    let mut smtp = connect(s, "SUBMISSION_PORT", opts(s));
    smtp.starttls().unwrap();
    let creds = Credentials::new(s.get("SASL_USER"), "not the password");
    match smtp.login_with(&creds, Some("PLAIN")) {
        Err(Error::Authentication { reply, .. }) => assert_eq!(reply.code(), 535),
        other => panic!("{other:?}"),
    }
    // Unauthenticated relaying is refused, and the session is still usable.
    let e = smtp
        .sendmail(s.get("SASL_USER"), &["rcpt@example.net"], b"x\n", &[], &[])
        .unwrap_err();
    assert!(matches!(e, Error::RecipientsRefused(_)), "{e:?}");
    smtp.quit().unwrap();
}

fn starttls_refuses_unknown_ca(s: &RealServers) {
    let mut o = opts(s);
    o.tls.ca_file = None;
    let mut smtp = connect(s, "SUBMISSION_PORT", o);
    let e = smtp.starttls().unwrap_err();
    assert!(matches!(e, Error::TlsCertificate(_)), "{e:?}");
}

fn implicit_tls_login_and_send(s: &RealServers) {
    let mark = marker("smtps");
    let mut o = opts(s);
    o.implicit_tls = true;
    let mut smtp = connect(s, "SMTPS_PORT", o);
    assert!(smtp.is_tls());
    smtp.login(s.get("SASL_USER"), &Secret::new(s.get("SASL_PASSWORD")))
        .unwrap();
    smtp.sendmail(
        s.get("SASL_USER"),
        &["rcpt@example.net"],
        &message(&mark, "x\n"),
        &[],
        &[],
    )
    .unwrap();
    smtp.quit().unwrap();
    s.wait_for_mail(&s.postfix_maildir("example.net"), &mark);
}

fn oauth_bearer_tokens(s: &RealServers) {
    if s.get("OAUTH_PORT").is_empty() {
        panic!("the OAuth port is not available");
    }
    for mech in ["XOAUTH2", "OAUTHBEARER"] {
        let mark = marker(mech);
        let creds = Credentials::new(s.get("OAUTH_USER"), s.get("OAUTH_TOKEN"));
        let mut smtp = connect(s, "OAUTH_PORT", opts(s));
        smtp.starttls().unwrap();
        assert_eq!(
            smtp.login_with(&creds, Some(mech)).unwrap().code(),
            235,
            "{mech}"
        );
        smtp.sendmail(
            s.get("OAUTH_USER"),
            &["rcpt@example.net"],
            &message(&mark, "x\n"),
            &[],
            &[],
        )
        .unwrap();
        smtp.quit().unwrap();
        s.wait_for_mail(&s.postfix_maildir("example.net"), &mark);
        // A token signed with the wrong key is refused with the reply.
        let bad = Command::new(s.get("MINT_TOKEN"))
            .args([s.get("STATE_DIR"), s.get("OAUTH_USER"), "--wrong-key"])
            .output()
            .unwrap();
        let bad = String::from_utf8(bad.stdout).unwrap().trim().to_owned();
        let mut smtp = connect(s, "OAUTH_PORT", opts(s));
        smtp.starttls().unwrap();
        let e = smtp
            .login_with(&Credentials::new(s.get("OAUTH_USER"), bad), Some(mech))
            .unwrap_err();
        assert!(matches!(e, Error::Authentication { .. }), "{mech}: {e:?}");
    }
}

fn lmtp_over_tcp_and_unix_socket(s: &RealServers) {
    for target in [
        format!("{}:{}", s.get("HOST"), s.get("LMTP_PORT")),
        s.get("LMTP_SOCKET").to_owned(),
    ] {
        let mark = marker("lmtp");
        let mut o = opts(s);
        o.protocol = Protocol::Lmtp;
        let mut smtp = Smtp::new(o);
        smtp.connect(&target, None).unwrap();
        let refused = smtp
            .sendmail(
                "a@example.org",
                &["alice@example.org", "nobody@example.org", "bob@example.org"],
                &message(&mark, "lmtp body\n"),
                &[],
                &[],
            )
            .unwrap();
        assert_eq!(refused.len(), 1, "{target}: {refused:?}");
        assert_eq!(refused[0].0, "nobody@example.org");
        smtp.quit().unwrap();
        for user in ["alice@example.org", "bob@example.org"] {
            s.wait_for_mail(&s.path("LMTP_MAILDIR_ROOT").join(user), &mark);
        }
    }
}

/// aiosmtpd writes what it received, exactly.
fn aiosmtpd_capture(s: &RealServers, mark: &str) -> Vec<u8> {
    let dir = s.path("AIOSMTPD_DIR");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let b = std::fs::read(e.path()).unwrap();
            if b.windows(mark.len()).any(|w| w == mark.as_bytes()) {
                return b;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "aiosmtpd got no {mark}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn aiosmtpd_plain_and_starttls(s: &RealServers) {
    for tls in [false, true] {
        let mark = marker("aio");
        let mut smtp = connect(s, "AIOSMTPD_PORT", opts(s));
        if tls {
            smtp.starttls().unwrap();
        }
        let msg = format!("Subject: {mark}\n\n.dot\nbare\rcr\n");
        smtp.sendmail(
            "a@example.org",
            &["b@example.org"],
            msg.as_bytes(),
            &[],
            &[],
        )
        .unwrap();
        smtp.quit().unwrap();
        let got = aiosmtpd_capture(s, &mark);
        let text = String::from_utf8_lossy(&got);
        let (meta, data) = text.split_once("\n\n").unwrap();
        assert!(meta.contains("X-EHLO: client.example"), "{meta}");
        assert_eq!(meta.contains("X-TLS: TLS"), tls, "{meta}");
        assert_eq!(
            data,
            format!("Subject: {mark}\r\n\r\n.dot\r\nbare\r\ncr\r\n")
        );
    }
}

// ---- the binary ----

fn smtpsend(args: &[&str], stdin: &[u8]) -> (i32, String) {
    // Its own home and queue, never root's.
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_smtpsend"))
        .args(args)
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("SMTPSEND_NO_RETRIER", "1") // nothing outlives the test
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn binary_plain_starttls_and_tls(s: &RealServers) {
    let ca = s.get("CA_FILE");
    let host = s.get("HOST");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "none",
            vec![
                "--port".into(),
                s.get("PLAIN_PORT").into(),
                "--tls".into(),
                "none".into(),
            ],
        ),
        (
            "starttls",
            vec![
                "--port".into(),
                s.get("AIOSMTPD_PORT").into(),
                "--tls".into(),
                "starttls".into(),
            ],
        ),
        (
            "tls",
            vec![
                "--port".into(),
                s.get("AIOSMTPD_TLS_PORT").into(),
                "--tls".into(),
                "tls".into(),
            ],
        ),
    ];
    for (name, extra) in cases {
        let mark = marker(&format!("bin-{name}"));
        let mut args: Vec<&str> = vec!["--host", host, "--tls-ca-file", ca, "-f", "a@example.org"];
        args.extend(extra.iter().map(String::as_str));
        args.push("b@example.org");
        let (code, err) = smtpsend(&args, format!("Subject: {mark}\n\nhi\n").as_bytes());
        assert_eq!(code, 0, "{name}: {err}");
        if name == "none" {
            s.wait_for_mail(&s.postfix_maildir("example.org"), &mark);
        } else {
            let got = aiosmtpd_capture(s, &mark);
            assert!(
                String::from_utf8_lossy(&got).contains("X-TLS: TLS"),
                "{name}"
            );
        }
    }
    // STARTTLS against a server without it: refused, nothing sent in clear.
    let (code, err) = smtpsend(
        &[
            "--no-queue",
            "--host",
            host,
            "--port",
            s.get("PLAIN_PORT"),
            "--tls",
            "starttls",
            "b@example.org",
        ],
        b"Subject: never\n\nx\n",
    );
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("STARTTLS"), "{err}");
}

#[test]
fn real_servers() {
    let Some(servers) = RealServers::start() else {
        return;
    };
    run_cases(
        &servers,
        &[
            (
                "plain_dots_and_bare_lf_arrive_byte_correct",
                plain_dots_and_bare_lf_arrive_byte_correct,
            ),
            (
                "no_pipelining_port_gets_lockstep_commands",
                no_pipelining_port_gets_lockstep_commands,
            ),
            (
                "refusals_partial_permanent_transient",
                refusals_partial_permanent_transient,
            ),
            ("size_limit_from_real_server", size_limit_from_real_server),
            ("smtputf8_declared_to_postfix", smtputf8_declared_to_postfix),
            ("bdat_to_postfix", bdat_to_postfix),
            (
                "bdat_byte_exact_to_postfix_and_exim",
                bdat_byte_exact_to_postfix_and_exim,
            ),
            ("too_many_recipients_to_exim", too_many_recipients_to_exim),
            (
                "starttls_tls13_auth_plain_bdat",
                starttls_tls13_auth_plain_bdat,
            ),
            (
                "starttls_login_each_mechanism",
                starttls_login_each_mechanism,
            ),
            ("login_picks_the_strongest", login_picks_the_strongest),
            ("wrong_password_is_535", wrong_password_is_535),
            ("starttls_refuses_unknown_ca", starttls_refuses_unknown_ca),
            ("implicit_tls_login_and_send", implicit_tls_login_and_send),
            ("oauth_bearer_tokens", oauth_bearer_tokens),
            (
                "lmtp_over_tcp_and_unix_socket",
                lmtp_over_tcp_and_unix_socket,
            ),
            ("aiosmtpd_plain_and_starttls", aiosmtpd_plain_and_starttls),
            (
                "binary_plain_starttls_and_tls",
                binary_plain_starttls_and_tls,
            ),
        ],
    );
}
