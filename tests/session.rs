//! The session engine against the scripted server: every smtplib method,
//! pipelining measured in client flights, refusals that leave the session
//! usable, STARTTLS and certificate checks, hostile replies, LMTP, AUTH.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smtpsend::smtp::auth::{self, AuthError, Credentials};
use smtpsend::smtp::{
    Dsn, Envelope, Error, PlaintextAuth, Protocol, Secret, SendOptions, SessionOptions, Smtp,
    TlsOptions,
};
use support::*;

const MSG: &[u8] = b"Subject: test\r\n\r\nHello.\r\n";

fn opts() -> SessionOptions {
    SessionOptions {
        local_hostname: Some("client.example".into()),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        ..SessionOptions::default()
    }
}

fn tls_opts(pki: &TestPki) -> SessionOptions {
    let mut tls = TlsOptions::new();
    tls.ca_file = Some(pki.ca_path.clone());
    tls.server_name = Some("localhost".into());
    SessionOptions { tls, ..opts() }
}

fn connect(server: &ScriptedServer) -> Smtp {
    connect_with(server, opts())
}

fn connect_with(server: &ScriptedServer, o: SessionOptions) -> Smtp {
    let mut s = Smtp::new(o);
    s.connect("127.0.0.1", Some(server.port())).unwrap();
    s
}

/// A transcript sink shared with the test.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// ---- connect, greeting, EHLO/HELO ----

#[test]
fn connect_returns_greeting_and_splits_host_port() {
    let server = ScriptedServer::start(Script::new().greeting("220 mx.test ESMTP ready"));
    let mut s = Smtp::new(opts());
    let r = s
        .connect(&format!("127.0.0.1:{}", server.port()), None)
        .unwrap();
    assert_eq!((r.code(), r.text().as_str()), (220, "mx.test ESMTP ready"));
    s.quit().unwrap();
    assert!(server.finish().conn().closed_cleanly());
}

#[test]
fn connect_to_ipv6_literal() {
    let listener = std::net::TcpListener::bind("[::1]:0");
    let Ok(listener) = listener else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"220 v6 ready\r\n").unwrap();
    });
    let mut s = Smtp::new(opts());
    let r = s.connect(&format!("[::1]:{port}"), None).unwrap();
    assert_eq!(r.text(), "v6 ready");
    t.join().unwrap();
}

#[test]
fn non_220_greeting_is_connect_error_with_code_and_text() {
    let server = ScriptedServer::start(Script::new().greeting("554 5.7.1 go away"));
    let mut s = Smtp::new(opts());
    match s.connect("127.0.0.1", Some(server.port())) {
        Err(Error::Connect(r)) => {
            assert_eq!(r.code(), 554);
            assert_eq!(r.text(), "5.7.1 go away");
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.is_connected());
    server.finish();
}

#[test]
fn connection_refused_is_transient_io() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = Smtp::new(opts())
        .connect("127.0.0.1", Some(port))
        .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.is_transient());
}

#[test]
fn ehlo_features_and_has_extn() {
    let server = ScriptedServer::start(Script::new().ehlo_caps(&[
        "PIPELINING",
        "SIZE 1000000",
        "AUTH PLAIN LOGIN",
        "X-Custom a b",
    ]));
    let mut s = connect(&server);
    let r = s.ehlo(None).unwrap();
    assert_eq!(r.code(), 250);
    assert!(s.does_esmtp());
    assert!(s.has_extn("pipelining") && s.has_extn("PIPELINING") && s.has_extn("Size"));
    assert!(!s.has_extn("starttls"));
    assert_eq!(s.extensions().size_limit(), Some(1_000_000));
    assert_eq!(s.extensions().get("x-custom"), Some("a b"));
    assert_eq!(s.ehlo_resp().unwrap().code(), 250);
    assert!(s.helo_resp().is_none());
    s.quit().unwrap();
    let t = server.finish();
    assert_eq!(t.conn().commands()[0], "EHLO client.example");
}

#[test]
fn helo_used_when_ehlo_refused() {
    let server = ScriptedServer::start(Script::new().ehlo_reply(502, "5.5.1 EHLO not here"));
    let mut s = connect(&server);
    s.ehlo_or_helo_if_needed().unwrap();
    assert!(!s.does_esmtp());
    assert_eq!(s.helo_resp().unwrap().code(), 250);
    // No ESMTP parameters go to a HELO server, even when asked for.
    let refused = s
        .sendmail(
            "a@example.org",
            &["b@example.org"],
            "Subject: 8bit \u{e9}\r\n\r\nx\r\n".as_bytes(),
            &["BODY=8BITMIME"],
            &[],
        )
        .unwrap();
    assert!(refused.is_empty());
    s.quit().unwrap();
    let t = server.finish();
    assert_eq!(t.conn().verbs()[..2], ["EHLO", "HELO"]);
    assert_eq!(t.messages()[0].mail_from, "<a@example.org>");
}

#[test]
fn both_hellos_refused_is_helo_error() {
    let server = ScriptedServer::start(
        Script::new()
            .ehlo_reply(502, "no")
            .reply_to("HELO", "550 5.7.1 not you"),
    );
    let mut s = connect(&server);
    match s.ehlo_or_helo_if_needed() {
        Err(Error::Helo(r)) => assert_eq!(r.code(), 550),
        other => panic!("{other:?}"),
    }
    // Still connected: the caller may try another name.
    assert!(s.noop().unwrap().is_positive());
    server.finish();
}

#[test]
fn verify_expn_help_noop_rset_docmd() {
    let server = ScriptedServer::start(Script::new().reply_to("VRFY", "252 2.1.5 cannot verify"));
    let mut s = connect(&server);
    assert_eq!(s.verify("Bob <bob@example.org>").unwrap().code(), 252);
    assert_eq!(s.expn("list").unwrap().code(), 502);
    assert_eq!(s.help("").unwrap().code(), 214);
    assert_eq!(s.noop().unwrap().code(), 250);
    assert_eq!(s.rset().unwrap().code(), 250);
    assert_eq!(s.docmd("XYZZY", "").unwrap().code(), 500);
    assert!(matches!(
        s.docmd("NOOP", "x\r\nQUIT"),
        Err(Error::InvalidInput(_))
    ));
    s.quit().unwrap();
    let t = server.finish();
    assert_eq!(t.conn().commands()[0], "VRFY bob@example.org");
    assert!(
        !t.conn()
            .commands()
            .iter()
            .any(|c| c.contains("QUIT") && c.starts_with("NOOP"))
    );
}

#[test]
fn local_hostname_defaults_to_fqdn_or_address_literal() {
    let server = ScriptedServer::start(Script::new());
    let mut s = Smtp::new(SessionOptions {
        local_hostname: None,
        ..opts()
    });
    s.connect("127.0.0.1", Some(server.port())).unwrap();
    let name = s.local_hostname();
    assert!(name.contains('.') || name == "[127.0.0.1]", "{name}");
    s.quit().unwrap();
    server.finish();
}

// ---- transactions ----

#[test]
fn pipelined_transaction_is_one_client_flight() {
    let server = ScriptedServer::start(Script::new());
    let mut s = connect(&server);
    s.ehlo(None).unwrap();
    let refused = s
        .sendmail(
            "a@example.org",
            &["b@example.org", "c@example.org"],
            MSG,
            &[],
            &[],
        )
        .unwrap();
    assert!(refused.is_empty());
    s.quit().unwrap();
    let t = server.finish();
    let flights = t.conn().verbs_by_flight();
    assert!(
        flights
            .iter()
            .any(|(_, v)| v == &["MAIL", "RCPT", "RCPT", "DATA"]),
        "{flights:?}"
    );
    let m = &t.messages()[0];
    assert_eq!(m.rcpt_addrs(), ["b@example.org", "c@example.org"]);
    assert_eq!(m.content, MSG);
    assert!(m.mail_from.contains("SIZE=25"), "{}", m.mail_from);
}

#[test]
fn quit_rides_with_the_end_of_data() {
    let server = ScriptedServer::start(Script::new());
    let mut s = connect(&server);
    let env = Envelope::new("a@example.org", ["b@example.org"]);
    let r = s.send(
        &env,
        &mut std::io::Cursor::new(MSG),
        SendOptions {
            info: None,
            quit_after: true,
        },
    );
    assert!(r.unwrap().is_empty());
    assert!(!s.is_connected());
    let t = server.finish();
    let c = t.conn();
    // EHLO, then MAIL..DATA, then message + QUIT: three flights in all.
    assert_eq!(c.flights, 3, "{:?}", c.verbs_by_flight());
    assert_eq!(
        c.flight_of("QUIT"),
        c.messages[0].data_flights.last().copied()
    );
    assert!(c.closed_cleanly());
}

#[test]
fn without_pipelining_commands_wait_for_replies() {
    let server = ScriptedServer::start(Script::new().ehlo_caps(&["SIZE 100000", "8BITMIME"]));
    let mut s = connect(&server);
    s.sendmail("a@example.org", &["b@example.org"], MSG, &[], &[])
        .unwrap();
    s.quit().unwrap();
    let t = server.finish();
    let flights = t.conn().verbs_by_flight();
    for (_, verbs) in &flights {
        assert_eq!(verbs.len(), 1, "{flights:?}");
    }
}

fn refusal_then_success(pipelining: bool, script: Script, check: impl Fn(Error)) {
    let script = if pipelining {
        script
    } else {
        script.ehlo_caps(&["SIZE 100000"])
    };
    let server = ScriptedServer::start(script);
    let mut s = connect(&server);
    let e = s
        .sendmail("bad@example.org", &["nobody@example.org"], MSG, &[], &[])
        .unwrap_err();
    check(e);
    // The session is still usable: the next message goes through.
    let refused = s
        .sendmail("good@example.org", &["ok@example.org"], MSG, &[], &[])
        .unwrap();
    assert!(refused.is_empty());
    s.quit().unwrap();
    let t = server.finish();
    assert!(
        t.conn().verbs().contains(&"RSET".to_string()),
        "no RSET: {:?}",
        t.conn().verbs()
    );
    let done: Vec<_> = t.messages().into_iter().filter(|m| m.accepted).collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].sender_addr(), "good@example.org");
}

#[test]
fn sender_refused_then_next_message_succeeds() {
    for pipelining in [true, false] {
        refusal_then_success(
            pipelining,
            Script::new().reply_to("MAIL FROM:<bad@", "550 5.7.1 sender rejected"),
            |e| match e {
                Error::SenderRefused { reply, sender } => {
                    assert_eq!(reply.code(), 550);
                    assert_eq!(sender, "bad@example.org");
                }
                other => panic!("{other:?}"),
            },
        );
    }
}

#[test]
fn all_recipients_refused_then_next_message_succeeds() {
    for pipelining in [true, false] {
        refusal_then_success(
            pipelining,
            Script::new().reply_to("RCPT TO:<nobody@", "550 5.1.1 no such user"),
            |e| match e {
                Error::RecipientsRefused(m) => {
                    assert_eq!(m.len(), 1);
                    assert_eq!(m[0].0, "nobody@example.org");
                    assert_eq!(m[0].1.code(), 550);
                }
                other => panic!("{other:?}"),
            },
        );
    }
}

#[test]
fn data_refused_then_next_message_succeeds() {
    for pipelining in [true, false] {
        refusal_then_success(
            pipelining,
            Script::new()
                .reply_to_times(Matcher::pred(|_| false), "250 unused", 0)
                .at(
                    Step::EndOfData.nth(1),
                    Action::Reply("554 5.6.0 content rejected".into()),
                ),
            |e| match e {
                Error::Data(r) => assert_eq!(r.code(), 554),
                other => panic!("{other:?}"),
            },
        );
    }
}

#[test]
fn partial_refusal_returns_the_refused() {
    for caps in [DEFAULT_CAPS, &["SIZE 100000"][..]] {
        let server = ScriptedServer::start(
            Script::new()
                .ehlo_caps(caps)
                .reply_to("RCPT TO:<x@", "550 5.1.1 unknown")
                .reply_to("RCPT TO:<y@", "451 4.3.0 try later"),
        );
        let mut s = connect(&server);
        let refused = s
            .sendmail(
                "a@example.org",
                &["x@example.org", "ok@example.org", "y@example.org"],
                MSG,
                &[],
                &[],
            )
            .unwrap();
        let got: Vec<(String, u16)> = refused.iter().map(|(a, r)| (a.clone(), r.code())).collect();
        assert_eq!(
            got,
            [("x@example.org".into(), 550), ("y@example.org".into(), 451)]
        );
        s.quit().unwrap();
        let t = server.finish();
        assert_eq!(t.messages()[0].rcpt_addrs(), ["ok@example.org"]);
    }
}

#[test]
fn closing_421_closes_the_session() {
    let server = ScriptedServer::start(
        Script::new()
            .ehlo_caps(&["SIZE 100000"])
            .reply_to("MAIL", "421 4.3.2 shutting down"),
    );
    let mut s = connect(&server);
    let e = s
        .sendmail("a@example.org", &["b@example.org"], MSG, &[], &[])
        .unwrap_err();
    assert!(matches!(&e, Error::SenderRefused { reply, .. } if reply.code() == 421));
    assert!(e.is_transient());
    assert!(!s.is_connected());
    assert!(matches!(s.noop(), Err(Error::ServerDisconnected(_))));
    server.finish();
}

#[test]
fn size_limit_refused_before_anything_is_sent() {
    let server = ScriptedServer::start(Script::new().ehlo_caps(&["PIPELINING", "SIZE 100"]));
    let mut s = connect(&server);
    let big = vec![b'x'; 200];
    let e = s
        .sendmail("a@example.org", &["b@example.org"], &big, &[], &[])
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::MessageTooLarge {
                size: 202,
                limit: 100
            }
        ),
        "{e:?}"
    );
    s.quit().unwrap();
    let t = server.finish();
    assert!(!t.conn().verbs().contains(&"MAIL".to_string()));
}

#[test]
fn eight_bit_and_smtputf8_parameters() {
    let server = ScriptedServer::start(Script::new());
    let mut s = connect(&server);
    let body = "Subject: caf\u{e9}\r\n\r\n\u{e9}t\u{e9}\r\n".as_bytes();
    s.sendmail("j\u{f6}rg@example.org", &["b@example.org"], body, &[], &[])
        .unwrap();
    s.sendmail("a@example.org", &["b@example.org"], MSG, &[], &[])
        .unwrap();
    s.quit().unwrap();
    let t = server.finish();
    let m = t.messages();
    assert!(
        m[0].mail_from.contains("BODY=8BITMIME"),
        "{}",
        m[0].mail_from
    );
    assert!(m[0].mail_from.contains("SMTPUTF8"), "{}", m[0].mail_from);
    assert!(!m[1].mail_from.contains("BODY="), "{}", m[1].mail_from);
    assert!(!m[1].mail_from.contains("SMTPUTF8"));
}

#[test]
fn non_ascii_address_without_smtputf8_is_not_supported() {
    let server = ScriptedServer::start(Script::new().ehlo_caps(&["PIPELINING", "8BITMIME"]));
    let mut s = connect(&server);
    let e = s
        .sendmail("a@example.org", &["j\u{f6}rg@example.org"], MSG, &[], &[])
        .unwrap_err();
    assert!(matches!(e, Error::NotSupported(_)), "{e:?}");
    // smtplib's mail() refuses an explicit SMTPUTF8 option the same way.
    assert!(matches!(
        s.mail("a@example.org", &["SMTPUTF8"]),
        Err(Error::NotSupported(_))
    ));
    s.quit().unwrap();
    let t = server.finish();
    assert!(!t.conn().verbs().contains(&"MAIL".to_string()));
}

#[test]
fn dsn_parameters_when_offered() {
    let server = ScriptedServer::start(Script::new());
    let mut s = connect(&server);
    let env = Envelope {
        dsn: Some(Dsn {
            notify: vec!["SUCCESS".into(), "FAILURE".into()],
            ret: Some("hdrs".into()),
            envid: Some("id+1=x".into()),
            orcpt: true,
        }),
        ..Envelope::new("a@example.org", ["b@example.org"])
    };
    s.send(&env, &mut std::io::Cursor::new(MSG), SendOptions::default())
        .unwrap();
    s.quit().unwrap();
    let t = server.finish();
    let m = &t.messages()[0];
    assert!(
        m.mail_from.ends_with("RET=HDRS ENVID=id+2B1+3Dx"),
        "{}",
        m.mail_from
    );
    assert_eq!(
        m.rcpt_to[0],
        "<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org"
    );
}

#[test]
fn data_transparency_and_no_bare_line_endings_on_the_wire() {
    let server = ScriptedServer::start(Script::new());
    let mut s = connect(&server);
    let msg: &[u8] = b"Subject: dots\n\n.leading\n..two\n.\nbare\rcr\r\nmixed\nend without newline";
    s.sendmail("a@example.org", &["b@example.org"], msg, &[], &[])
        .unwrap();
    s.quit().unwrap();
    let t = server.finish();
    let m = &t.messages()[0];
    assert!(!m.wire_has_bare_lf() && !m.wire_has_bare_cr());
    assert_eq!(
        m.content_str(),
        "Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\nbare\r\ncr\r\nmixed\r\nend without newline\r\n"
    );
    assert!(
        m.wire
            .starts_with(b"Subject: dots\r\n\r\n..leading\r\n...two\r\n..\r\n")
    );
}

#[test]
fn bdat_when_chunking_is_offered_and_asked_for() {
    let server = ScriptedServer::start(Script::new().with_cap("CHUNKING"));
    let mut s = connect_with(
        &server,
        SessionOptions {
            chunking: true,
            ..opts()
        },
    );
    let msg = b"Subject: chunks\n\n.dot stays\nbody\n";
    s.sendmail("a@example.org", &["b@example.org"], msg, &[], &[])
        .unwrap();
    s.quit().unwrap();
    let t = server.finish();
    let m = &t.messages()[0];
    assert_eq!(m.bdat_chunks.as_deref(), Some(&[37][..]));
    assert_eq!(
        m.content_str(),
        "Subject: chunks\r\n\r\n.dot stays\r\nbody\r\n"
    );
    assert!(!t.conn().verbs().contains(&"DATA".to_string()));
}

#[test]
fn large_message_streams_in_chunks() {
    let server = ScriptedServer::start(Script::new().ehlo_caps(&["PIPELINING", "SIZE 0"]));
    let mut s = connect(&server);
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\n";
    let mut msg = b"Subject: big\n\n".to_vec();
    while msg.len() < 3_000_000 {
        msg.extend_from_slice(line);
    }
    s.sendmail("a@example.org", &["b@example.org"], &msg, &[], &[])
        .unwrap();
    s.quit().unwrap();
    let t = server.finish();
    assert_eq!(
        t.messages()[0].content.len(),
        msg.len() + msg.iter().filter(|&&b| b == b'\n').count()
    );
}

#[test]
fn mail_rcpt_data_step_by_step() {
    let server = ScriptedServer::start(Script::new());
    let mut s = connect(&server);
    s.ehlo(None).unwrap();
    assert_eq!(
        s.mail("Alice <a@example.org>", &["BODY=7BIT"])
            .unwrap()
            .code(),
        250
    );
    assert_eq!(s.rcpt("b@example.org", &[]).unwrap().code(), 250);
    assert_eq!(s.data(&mut &b"x\n"[..]).unwrap().code(), 250);
    assert!(matches!(
        s.mail("a@b> SIZE=1", &[]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        s.rcpt("a@b\r\nRSET", &[]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        s.mail("a@b", &["X=1 Y=2"]),
        Err(Error::InvalidInput(_))
    ));
    s.quit().unwrap();
    let t = server.finish();
    assert_eq!(t.messages()[0].mail_from, "<a@example.org> BODY=7BIT");
    assert_eq!(t.messages()[0].content, b"x\r\n");
}

#[test]
fn data_without_354_is_data_error() {
    let server = ScriptedServer::start(Script::new().reply_to("DATA", "451 4.3.0 not now"));
    let mut s = connect(&server);
    s.ehlo(None).unwrap();
    s.mail("a@example.org", &[]).unwrap();
    s.rcpt("b@example.org", &[]).unwrap();
    assert!(matches!(s.data(&mut &b"x"[..]), Err(Error::Data(r)) if r.code() == 451));
    server.finish();
}

// ---- STARTTLS and implicit TLS ----

#[test]
fn starttls_verifies_and_forgets_esmtp_state() {
    let pki = TestPki::new();
    let server = ScriptedServer::start(Script::new().starttls().pki(&pki));
    let mut s = connect_with(&server, tls_opts(&pki));
    assert_eq!(s.starttls().unwrap().code(), 220);
    assert!(s.is_tls());
    assert!(s.ehlo_resp().is_none() && !s.does_esmtp() && !s.has_extn("pipelining"));
    let fp = s.tls_info().unwrap().fingerprint_sha256.unwrap();
    assert_eq!(fp, pki.cert_sha256_hex());
    s.sendmail("a@example.org", &["b@example.org"], MSG, &[], &[])
        .unwrap();
    s.quit().unwrap();
    let t = server.finish();
    assert_eq!(
        t.conn().verbs(),
        ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    );
    assert!(t.messages()[0].tls);
}

#[test]
fn plaintext_injected_after_starttls_220_is_discarded() {
    let pki = TestPki::new();
    let server = ScriptedServer::start(
        Script::new()
            .starttls()
            .pki(&pki)
            .inject_after_starttls_220("250-INJECTED\r\n250 AUTH PLAIN\r\n"),
    );
    let mut s = connect_with(&server, tls_opts(&pki));
    s.starttls().unwrap();
    s.ehlo(None).unwrap();
    assert!(!s.has_extn("injected"));
    assert!(!s.has_extn("auth"));
    assert!(s.has_extn("pipelining"));
    s.quit().unwrap();
    server.finish();
}

#[test]
fn starttls_not_advertised_is_not_supported() {
    let server = ScriptedServer::start(Script::new());
    let mut s = connect(&server);
    assert!(matches!(s.starttls(), Err(Error::NotSupported(_))));
    s.quit().unwrap();
    let t = server.finish();
    assert!(!t.conn().verbs().contains(&"STARTTLS".to_string()));
}

#[test]
fn starttls_refused_is_response_error_and_nothing_else_is_sent() {
    let pki = TestPki::new();
    let server = ScriptedServer::start(
        Script::new()
            .starttls()
            .pki(&pki)
            .reply_to("STARTTLS", "454 4.7.0 TLS not available"),
    );
    let mut s = connect_with(&server, tls_opts(&pki));
    match s.starttls() {
        Err(Error::Response(r)) => assert_eq!(r.code(), 454),
        other => panic!("{other:?}"),
    }
    assert!(!s.is_tls());
    server.finish();
}

#[test]
fn bad_certificates_are_refused() {
    for kind in [
        CertKind::SelfSigned,
        CertKind::WrongHost,
        CertKind::Expired,
        CertKind::UnknownCa,
    ] {
        let trusted = TestPki::new();
        let bad = TestPki::of(kind);
        let server = ScriptedServer::start(Script::new().starttls().pki(&bad));
        let mut s = connect_with(&server, tls_opts(&trusted));
        let e = s.starttls().unwrap_err();
        // Named as a certificate problem; deferred, not bounced (a caller
        // that cannot queue uses is_certificate_failure).
        assert!(matches!(e, Error::TlsCertificate(_)), "{kind:?}: {e:?}");
        assert!(e.is_transient() && e.is_certificate_failure());
        assert!(!s.is_connected());
        server.finish();
    }
}

#[test]
fn fingerprint_pin_checked() {
    let pki = TestPki::new();
    for (pin, ok) in [(pki.cert_sha256, true), ([7u8; 32], false)] {
        let server = ScriptedServer::start(Script::new().starttls().pki(&pki));
        let mut o = tls_opts(&pki);
        o.tls.fingerprint = Some(pin);
        let mut s = connect_with(&server, o);
        assert_eq!(s.starttls().is_ok(), ok);
        server.finish();
    }
}

#[test]
fn implicit_tls() {
    let pki = TestPki::new();
    let server = ScriptedServer::start(Script::new().tls_on_connect().pki(&pki));
    let mut s = Smtp::new(SessionOptions {
        implicit_tls: true,
        ..tls_opts(&pki)
    });
    s.connect("127.0.0.1", Some(server.port())).unwrap();
    assert!(s.is_tls());
    s.sendmail("a@example.org", &["b@example.org"], MSG, &[], &[])
        .unwrap();
    s.quit().unwrap();
    let t = server.finish();
    assert!(t.conn().tls && t.messages()[0].tls);
}

// ---- hostile and broken servers ----

fn expect_failure(script: Script, timeout: Duration, check: impl Fn(&Error)) -> Duration {
    let server = ScriptedServer::start(script);
    let mut s = Smtp::new(opts().with_timeout(timeout));
    let start = Instant::now();
    let r = s.connect("127.0.0.1", Some(server.port())).and_then(|_| {
        s.sendmail("a@example.org", &["b@example.org"], MSG, &[], &[])
            .map(|_| ())
    });
    let took = start.elapsed();
    let e = r.unwrap_err();
    check(&e);
    assert!(!s.is_connected(), "connection left open after {e:?}");
    server.finish();
    took
}

#[test]
fn disconnects_at_every_step() {
    for step in [
        Step::AfterGreeting,
        Step::Ehlo,
        Step::Mail,
        Step::Rcpt,
        Step::Data,
        Step::DataBytes(5),
        Step::EndOfData,
    ] {
        expect_failure(
            Script::new().disconnect_at(step.clone()),
            Duration::from_secs(5),
            |e| {
                // Once the whole message is out, a lost reply means it may
                // have been delivered.
                if matches!(step, Step::DataBytes(_) | Step::EndOfData) {
                    assert!(matches!(e, Error::MaybeDelivered(_)), "{step:?}: {e:?}");
                    assert!(e.may_have_been_delivered());
                } else {
                    assert!(matches!(e, Error::ServerDisconnected(_)), "{step:?}: {e:?}");
                }
                assert!(e.is_transient());
            },
        );
    }
}

#[test]
fn stalls_time_out_within_bound() {
    for step in [Step::Greeting, Step::Ehlo, Step::Data, Step::EndOfData] {
        let took = expect_failure(
            Script::new().stall_at(step.clone(), Duration::from_secs(30)),
            Duration::from_millis(600),
            |e| {
                if step == Step::EndOfData {
                    assert!(matches!(e, Error::MaybeDelivered(_)), "{step:?}: {e:?}");
                } else {
                    assert!(matches!(e, Error::Timeout(_)), "{step:?}: {e:?}");
                }
            },
        );
        assert!(took < Duration::from_secs(5), "{step:?} took {took:?}");
    }
}

#[test]
fn drip_feed_cannot_extend_the_reply_deadline() {
    let took = expect_failure(
        Script::new().drip(Step::Ehlo, Duration::from_millis(100)),
        Duration::from_millis(800),
        |e| assert!(matches!(e, Error::Timeout(_)), "{e:?}"),
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn malformed_replies_are_protocol_errors() {
    for bytes in [
        raw::garbage(),
        raw::mismatched_multiline(),
        raw::endless_line(1 << 20),
        raw::many_lines(250, 100_000),
    ] {
        expect_failure(
            Script::new().raw_reply_at(Step::Ehlo, bytes),
            Duration::from_secs(5),
            |e| {
                assert!(matches!(e, Error::Protocol(_)), "{e:?}");
                assert!(!e.is_transient());
            },
        );
    }
}

// ---- LMTP ----

#[test]
fn lmtp_one_reply_per_recipient() {
    let server = ScriptedServer::start(
        Script::new()
            .lhlo()
            .lmtp_reply("full@", "452 4.2.2 mailbox full"),
    );
    let mut s = Smtp::new(SessionOptions {
        protocol: Protocol::Lmtp,
        ..opts()
    });
    s.connect("127.0.0.1", Some(server.port())).unwrap();
    let refused = s
        .sendmail(
            "a@example.org",
            &["ok@example.org", "full@example.org", "ok2@example.org"],
            MSG,
            &[],
            &[],
        )
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, "full@example.org");
    assert_eq!(refused[0].1.code(), 452);
    // All refused after the data is an error, and the session goes on.
    let e = s
        .sendmail("a@example.org", &["full@example.org"], MSG, &[], &[])
        .unwrap_err();
    assert!(matches!(e, Error::RecipientsRefused(_)), "{e:?}");
    assert!(s.noop().unwrap().is_positive());
    s.quit().unwrap();
    let t = server.finish();
    assert_eq!(t.conn().verbs()[0], "LHLO");
}

// ---- AUTH ----

#[test]
fn login_plain_login_cram_md5_each_work() {
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5"] {
        let server = ScriptedServer::start(
            Script::new()
                .with_cap(&format!("AUTH {mech}"))
                .auth_accept("alice", "s3cret pass"),
        );
        let sink = Sink::default();
        let mut s = connect(&server);
        s.set_debuglevel(1, Box::new(sink.clone()));
        let r = s.login("alice", &Secret::new("s3cret pass")).unwrap();
        assert_eq!(r.code(), 235, "{mech}");
        s.sendmail("alice@example.org", &["b@example.org"], MSG, &[], &[])
            .unwrap();
        s.quit().unwrap();
        let t = server.finish();
        assert!(t.conn().authenticated, "{mech}");
        let log = sink.text();
        assert!(log.contains(&format!("AUTH {mech}")), "{log}");
        for secret in ["s3cret", "czNjcmV0", "YWxpY2UAczNjcmV0", "AGFsaWNl"] {
            assert!(
                !log.contains(secret),
                "{mech}: transcript leaks {secret}:\n{log}"
            );
        }
    }
}

#[test]
fn wrong_password_is_authentication_error_and_next_mechanism_is_tried() {
    let server = ScriptedServer::start(
        Script::new()
            .with_cap("AUTH CRAM-MD5 PLAIN LOGIN")
            .auth_accept("alice", "right"),
    );
    let mut s = connect(&server);
    match s.login("alice", &Secret::new("wrong")) {
        Err(Error::Authentication { reply, .. }) => assert_eq!(reply.code(), 535),
        other => panic!("{other:?}"),
    }
    let t = server.finish();
    let auths: Vec<String> = t
        .conn()
        .commands()
        .iter()
        .filter(|c| c.starts_with("AUTH"))
        .map(|c| c.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    assert_eq!(
        auths,
        ["CRAM-MD5", "PLAIN", "LOGIN"],
        "smtplib's order, each tried"
    );
}

#[test]
fn auth_not_offered_and_no_common_mechanism() {
    let server = ScriptedServer::start(Script::new());
    let mut s = connect(&server);
    assert!(matches!(
        s.login("a", &Secret::new("b")),
        Err(Error::NotSupported(_))
    ));
    server.finish();
    let server = ScriptedServer::start(Script::new().with_cap("AUTH GSSAPI NTLM"));
    let mut s = connect(&server);
    match s.login("a", &Secret::new("b")) {
        Err(Error::AuthRefusedLocally(m)) => assert!(m.contains("GSSAPI NTLM"), "{m}"),
        other => panic!("{other:?}"),
    }
    server.finish();
}

#[test]
fn credentials_never_cross_a_plaintext_link_unless_allowed() {
    let server = ScriptedServer::start(
        Script::new()
            .with_cap("AUTH PLAIN")
            .auth_accept("alice", "pw"),
    );
    let mut s = connect_with(
        &server,
        SessionOptions {
            plaintext_auth: PlaintextAuth::Never,
            ..opts()
        },
    );
    match s.login("alice", &Secret::new("pw")) {
        Err(Error::AuthRefusedLocally(m)) => assert!(m.contains("unencrypted"), "{m}"),
        other => panic!("{other:?}"),
    }
    s.quit().unwrap();
    let t = server.finish();
    assert!(
        !t.conn().verbs().contains(&"AUTH".to_string()),
        "credentials were sent"
    );
}

#[test]
fn auth_after_starttls_with_tls_required_for_auth() {
    let pki = TestPki::new();
    let server = ScriptedServer::start(
        Script::new()
            .starttls()
            .pki(&pki)
            .with_cap("AUTH PLAIN")
            .require_tls_for_auth()
            .auth_accept("alice", "pw"),
    );
    let mut s = connect_with(
        &server,
        SessionOptions {
            plaintext_auth: PlaintextAuth::Never,
            ..tls_opts(&pki)
        },
    );
    s.starttls().unwrap();
    assert_eq!(s.login("alice", &Secret::new("pw")).unwrap().code(), 235);
    s.quit().unwrap();
    let t = server.finish();
    let auth_line = t
        .conn()
        .lines
        .iter()
        .find(|l| l.text.starts_with("AUTH"))
        .unwrap();
    assert!(auth_line.tls);
}

/// A SCRAM server that cannot prove it knows the password is refused,
/// even when it says 235.
#[test]
fn scram_server_signature_mismatch_fails() {
    for final_reply in ["235 2.7.0 ok", "535 no"] {
        let server = ScriptedServer::start(Script::new().with_cap("AUTH SCRAM-SHA-256").on_auth(
            move |x| {
                let first = AuthExchange::decode(x.initial_response().unwrap()).unwrap();
                let first = String::from_utf8(first).unwrap();
                let nonce = first.split("r=").nth(1).unwrap().to_string();
                let sf = format!("r={nonce}SERVER,s=QSXCR+Q6sek8bf92,i=4096");
                let _client_final = x.challenge(&AuthExchange::encode(sf.as_bytes())).unwrap();
                let answer = x
                    .challenge(&AuthExchange::encode(
                        b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                    ))
                    .unwrap_or_default();
                assert_eq!(answer, "*", "client must cancel on a bad server signature");
                final_reply.to_string()
            },
        ));
        let mut s = connect(&server);
        let e = s.login("user", &Secret::new("pencil")).unwrap_err();
        match &e {
            Error::AuthRefusedLocally(m) => assert!(m.to_lowercase().contains("signature"), "{m}"),
            other => panic!("{other:?}"),
        }
        server.finish();
    }
}

#[test]
fn xoauth2_failure_surfaces_the_servers_json() {
    let json = r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
    let server = ScriptedServer::start(Script::new().with_cap("AUTH XOAUTH2").on_auth(move |x| {
        assert!(x.initial_response().is_some());
        let answer = x.challenge(&AuthExchange::encode(json.as_bytes())).unwrap();
        assert_eq!(
            answer, "",
            "the client answers the error challenge with an empty line"
        );
        "535 5.7.8 Username and Password not accepted".into()
    }));
    let mut s = connect(&server);
    let creds = Credentials::new("user@example.com", "ya29.token");
    match s.login_with(&creds, Some("xoauth2")) {
        Err(Error::Authentication { reply, detail }) => {
            assert_eq!(reply.code(), 535);
            assert!(detail.unwrap().contains("401"));
        }
        other => panic!("{other:?}"),
    }
    server.finish();
}

#[test]
fn custom_mechanism_through_a_closure() {
    let server = ScriptedServer::start(Script::new().with_cap("AUTH X-ECHO").on_auth(|x| {
        let a = x.challenge(&AuthExchange::encode(b"ping")).unwrap();
        assert_eq!(AuthExchange::decode(&a).unwrap(), b"pong:ping");
        "235 ok".into()
    }));
    let mut s = connect(&server);
    let mut mech = auth::from_fn("X-ECHO", None, |c: &[u8]| -> Result<Vec<u8>, AuthError> {
        Ok([b"pong:", c].concat())
    });
    assert_eq!(s.auth(&mut mech, true).unwrap().code(), 235);
    server.finish();
}

#[test]
fn refused_data_with_quit_riding_sends_nothing_after_quit() {
    let server = ScriptedServer::start(Script::new().after_data("554 5.6.0 rejected"));
    let sink = Sink::default();
    let mut s = connect(&server);
    s.set_debuglevel(1, Box::new(sink.clone()));
    let env = Envelope::new("a@example.org", ["b@example.org"]);
    let e = s
        .send(
            &env,
            &mut std::io::Cursor::new(MSG),
            SendOptions {
                info: None,
                quit_after: true,
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::Data(ref r) if r.code() == 554), "{e:?}");
    assert!(!s.is_connected());
    server.finish();
    // The client's own transcript: nothing is sent after QUIT.
    let log = sink.text();
    let sent: Vec<&str> = log.lines().filter(|l| l.starts_with("C: ")).collect();
    assert_eq!(sent.last(), Some(&"C: QUIT"), "{log}");
}

#[test]
fn idn_domain_goes_as_a_labels_without_smtputf8() {
    let server = ScriptedServer::start(
        Script::new()
            .ehlo_caps(&["PIPELINING", "8BITMIME"])
            .reply_to("RCPT TO:<nobody@xn--mnchen-3ya.de>", "550 5.1.1 unknown"),
    );
    let mut s = connect(&server);
    let refused = s
        .sendmail(
            "a@example.org",
            &["info@b\u{fc}cher.example", "nobody@m\u{fc}nchen.de"],
            MSG,
            &[],
            &[],
        )
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].0, "nobody@m\u{fc}nchen.de",
        "reported as the caller wrote it"
    );
    s.quit().unwrap();
    let t = server.finish();
    let m = &t.messages()[0];
    assert_eq!(m.rcpt_addrs(), ["info@xn--bcher-kva.example"]);
    assert!(!m.mail_from.contains("SMTPUTF8"), "{}", m.mail_from);
}

#[test]
fn lost_reply_after_the_final_dot_says_it_may_have_arrived() {
    let server = ScriptedServer::start(Script::new().disconnect_at(Step::EndOfData));
    let mut s = connect(&server);
    let e = s
        .sendmail("a@example.org", &["b@example.org"], MSG, &[], &[])
        .unwrap_err();
    assert!(e.is_transient());
    assert!(e.to_string().contains("may have been delivered"), "{e}");
    server.finish();
}

// ---- issue 13: pipelined = lockstep, deadlines, 452, parity ----

/// The three ways a transaction can go out.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Way {
    Lockstep,
    Pipelined,
    Bdat,
}

const WAYS: [Way; 3] = [Way::Lockstep, Way::Pipelined, Way::Bdat];

fn script_for(way: Way) -> Script {
    match way {
        Way::Lockstep => {
            Script::new().ehlo_caps(&["SIZE 10485760", "8BITMIME", "ENHANCEDSTATUSCODES"])
        }
        Way::Pipelined => Script::new(),
        Way::Bdat => Script::new().with_cap("CHUNKING"),
    }
}

fn opts_for(way: Way) -> SessionOptions {
    SessionOptions {
        chunking: way == Way::Bdat,
        ..opts()
    }
}

/// What a send came to, in a form comparable across ways.
#[derive(Debug, PartialEq)]
struct Outcome {
    variant: String,
    codes: Vec<(String, u16)>,
    connected: bool,
}

fn outcome(s: &Smtp, r: Result<smtpsend::smtp::Refused, Error>) -> Outcome {
    // With BDAT the message leaves with the envelope, so a connection lost
    // before the last reply may have delivered it: the same failure, named
    // for what the client can know.
    let r = r.map_err(|e| match e {
        Error::MaybeDelivered(m) => Error::ServerDisconnected(m),
        e => e,
    });
    let (variant, codes) = match r {
        Ok(refused) => (
            "Ok".to_string(),
            refused.iter().map(|(a, r)| (a.clone(), r.code())).collect(),
        ),
        Err(Error::RecipientsRefused(m)) => (
            "RecipientsRefused".to_string(),
            m.iter().map(|(a, r)| (a.clone(), r.code())).collect(),
        ),
        Err(e) => {
            let name = format!("{e:?}");
            let name = name.split(['(', ' ', '{']).next().unwrap_or("").to_string();
            (
                name,
                e.reply()
                    .map(|r| vec![(String::new(), r.code())])
                    .unwrap_or_default(),
            )
        }
    };
    Outcome {
        variant,
        codes,
        connected: s.is_connected(),
    }
}

/// CPython's test_smtplib scenarios, and the other refusals, run with and
/// without PIPELINING (and with BDAT): the error variant, the refused map
/// and whether the session survives are the same every way.
#[test]
fn pipelined_and_bdat_outcomes_equal_lockstep() {
    type Scenario = (&'static str, fn(Script) -> Script, &'static [&'static str]);
    let scenarios: &[Scenario] = &[
        (
            "451 to MAIL, then disconnect",
            |s| {
                s.reply_to("MAIL", "451 4.3.0 requested action aborted")
                    .disconnect_after(Step::Mail)
            },
            &["b@example.org"],
        ),
        (
            "421 to MAIL",
            |s| {
                s.reply_to("MAIL", "421 4.7.0 closing")
                    .disconnect_after(Step::Mail)
            },
            &["b@example.org"],
        ),
        (
            "421 to RCPT",
            |s| {
                s.reply_to("RCPT", "421 4.7.0 closing")
                    .disconnect_after(Step::Rcpt)
            },
            &["b@example.org", "c@example.org"],
        ),
        (
            "one recipient refused",
            |s| s.reply_to("RCPT TO:<c@", "550 5.1.1 no such user"),
            &["b@example.org", "c@example.org"],
        ),
        (
            "every recipient refused",
            |s| s.reply_to("RCPT", "550 5.1.1 no such user"),
            &["b@example.org", "c@example.org"],
        ),
        (
            "message refused",
            |s| s.after_data("554 5.7.1 spam"),
            &["b@example.org"],
        ),
        (
            "disconnect after RCPT replies",
            |s| s.disconnect_after(Step::Rcpt.nth(2)),
            &["b@example.org", "c@example.org"],
        ),
    ];
    for (name, make, to) in scenarios {
        let mut seen: Vec<(Way, Outcome)> = Vec::new();
        for way in WAYS {
            let server = ScriptedServer::start(make(script_for(way)));
            let mut s = connect_with(&server, opts_for(way));
            let r = s.sendmail("a@example.org", to, MSG, &[], &[]);
            seen.push((way, outcome(&s, r)));
            drop(s);
            server.finish();
        }
        let first = &seen[0].1;
        for (way, o) in &seen[1..] {
            assert_eq!(o, first, "{name}: {way:?} differs from lockstep: {seen:?}");
        }
    }
    // The two CPython cases, spelled out.
    let server = ScriptedServer::start(
        Script::new()
            .reply_to("MAIL", "451 4.3.0 requested action aborted")
            .disconnect_after(Step::Mail),
    );
    let mut s = connect(&server);
    match s.sendmail("a@example.org", &["b@example.org"], MSG, &[], &[]) {
        Err(Error::SenderRefused { reply, .. }) => assert_eq!(reply.code(), 451),
        other => panic!("{other:?}"),
    }
    server.finish();
    let server = ScriptedServer::start(Script::new().reply_to("RCPT", "421 4.7.0 closing"));
    let mut s = connect(&server);
    match s.sendmail("a@example.org", &["b@example.org"], MSG, &[], &[]) {
        Err(Error::RecipientsRefused(m)) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].1.code(), 421);
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.is_connected());
    server.finish();
}

/// RFC 5321 §4.5.3.1.10: recipients deferred with 452 go in a further
/// transaction on the same connection; every recipient gets the message
/// exactly once, whichever way it goes.
#[test]
fn too_many_recipients_go_in_a_further_transaction() {
    let to = ["r1@example.org", "r2@example.org", "r3@example.org"];
    for way in WAYS {
        let server = ScriptedServer::start(
            script_for(way).reply_at(Step::Rcpt.nth(2), "452 4.5.3 too many recipients"),
        );
        let mut s = connect_with(&server, opts_for(way));
        let refused = s.sendmail("a@example.org", &to, MSG, &[], &[]).unwrap();
        assert!(refused.is_empty(), "{way:?}: {refused:?}");
        s.quit().unwrap();
        let t = server.finish();
        let msgs = t.messages();
        assert_eq!(msgs.len(), 2, "{way:?}: {t:#?}");
        let mut got: Vec<&str> = msgs.iter().flat_map(|m| m.rcpt_addrs()).collect();
        got.sort();
        assert_eq!(got, to, "{way:?}");
        assert!(msgs.iter().all(|m| m.accepted && m.content == MSG));
        assert_eq!(t.accepted(), 1, "one connection");
    }
    // From a stream that cannot be read twice, the deferred come back as
    // refused with their 452, for the caller to retry.
    let server = ScriptedServer::start(
        Script::new().reply_at(Step::Rcpt.nth(2), "452 4.5.3 too many recipients"),
    );
    let mut s = connect(&server);
    let env = Envelope::new("a@example.org", to);
    let refused = s
        .send_stream(&env, &mut &MSG[..], SendOptions::default())
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (refused[0].0.as_str(), refused[0].1.code()),
        ("r2@example.org", 452)
    );
    assert!(refused[0].1.is_transient());
    s.quit().unwrap();
    assert_eq!(server.finish().messages().len(), 1);
}

fn send_quit_after(s: &mut Smtp) {
    let env = Envelope::new("a@example.org", ["b@example.org", "c@example.org"]);
    let info = smtpsend::smtp::data::BodyScanner::scan(MSG);
    let r = s.send(
        &env,
        &mut std::io::Cursor::new(MSG),
        SendOptions {
            info: Some(info),
            quit_after: true,
        },
    );
    assert!(r.unwrap().is_empty());
    assert!(!s.is_connected());
}

/// Issue 15: the protocol minimum. With CHUNKING and PIPELINING a send is
/// two client flights (EHLO | MAIL, RCPT…, BDAT n LAST, the message,
/// QUIT); with DATA three.
#[test]
fn bdat_send_is_two_flights_data_three() {
    for (way, flights) in [(Way::Bdat, 2), (Way::Pipelined, 3)] {
        let server = ScriptedServer::start(script_for(way));
        let mut s = connect_with(&server, opts_for(way));
        send_quit_after(&mut s);
        let t = server.finish();
        let c = t.conn();
        assert_eq!(c.flights, flights, "{way:?}: {:?}", c.verbs_by_flight());
        assert!(c.closed_cleanly());
        let m = &c.messages[0];
        assert_eq!(m.content, MSG);
        if way == Way::Bdat {
            assert_eq!(
                c.verbs_by_flight(),
                [
                    (1, vec!["EHLO".to_string()]),
                    (
                        2,
                        ["MAIL", "RCPT", "RCPT", "BDAT", "QUIT"]
                            .map(String::from)
                            .to_vec()
                    )
                ]
            );
            // The size was known: one chunk, BDAT n LAST.
            assert_eq!(m.bdat_chunks.as_deref(), Some(&[MSG.len()][..]));
            assert!(
                c.commands()
                    .contains(&format!("BDAT {} LAST", MSG.len()).as_str())
            );
        }
    }
}

/// With STARTTLS and AUTH PLAIN's initial response: EHLO | STARTTLS |
/// (TLS 1.3 handshake, one round trip the scripted server does not count)
/// EHLO | AUTH | the transaction: five counted flights with BDAT (six
/// round trips in all), six with DATA (seven).
#[test]
fn starttls_auth_bdat_send_is_five_counted_flights() {
    let pki = TestPki::new();
    for (way, flights) in [(Way::Bdat, 5), (Way::Pipelined, 6)] {
        let server = ScriptedServer::start(
            script_for(way)
                .starttls()
                .pki(&pki)
                .auth_accept("alice", "pw"),
        );
        let mut s = connect_with(
            &server,
            SessionOptions {
                chunking: way == Way::Bdat,
                ..tls_opts(&pki)
            },
        );
        s.starttls().unwrap();
        // (The scripted server's native-tls acceptor stops at TLS 1.2; the
        // interop test against Postfix checks TLS 1.3.)
        assert!(s.tls_info().unwrap().protocol.starts_with("TLSv1."));
        s.login_with(&Credentials::new("alice", "pw"), Some("PLAIN"))
            .unwrap();
        send_quit_after(&mut s);
        let t = server.finish();
        let c = t.conn();
        assert_eq!(c.flights, flights, "{way:?}: {:?}", c.verbs_by_flight());
        assert!(c.authenticated && c.messages[0].tls);
    }
}

/// BDAT of a stream of unknown size: chunks of at most 1 MiB, the last
/// one `BDAT n LAST`, the content byte-exact.
#[test]
fn bdat_without_a_known_size_goes_in_chunks() {
    let server = ScriptedServer::start(Script::new().with_cap("CHUNKING"));
    let mut s = connect_with(&server, opts_for(Way::Bdat));
    let mut msg = b"Subject: big\r\n\r\n".to_vec();
    while msg.len() < 2_500_000 {
        msg.extend_from_slice(b"0123456789 .dot\r\n");
    }
    let env = Envelope::new("a@example.org", ["b@example.org"]);
    s.send_stream(&env, &mut &msg[..], SendOptions::default())
        .unwrap();
    s.quit().unwrap();
    let t = server.finish();
    let m = &t.messages()[0];
    let chunks = m.bdat_chunks.clone().unwrap();
    assert_eq!(chunks.len(), 3, "{chunks:?}");
    assert!(chunks.iter().all(|&c| c <= 1024 * 1024 + 64 * 1024));
    assert_eq!(m.content, msg);
    let last = t
        .conn()
        .commands()
        .iter()
        .filter(|c| c.ends_with(" LAST"))
        .count();
    assert_eq!(last, 1);
}

/// A size given in the options that does not match the message: not a
/// byte beyond the announced chunk reaches the server.
#[test]
fn bdat_size_mismatch_never_overruns_the_chunk() {
    let server = ScriptedServer::start(Script::new().with_cap("CHUNKING"));
    let mut s = connect_with(&server, opts_for(Way::Bdat));
    let env = Envelope::new("a@example.org", ["b@example.org"]);
    let mut info = smtpsend::smtp::data::BodyScanner::scan(MSG);
    info.size -= 3;
    let e = s
        .send(
            &env,
            &mut std::io::Cursor::new(MSG),
            SendOptions {
                info: Some(info),
                quit_after: false,
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    assert!(!s.is_connected());
    let t = server.finish();
    assert!(t.messages().iter().all(|m| !m.accepted));
    assert!(!t.conn().verbs().iter().any(|v| v == "QUIT" || v == "RSET"));
}

/// A server that stops reading after 64 KiB of data: the whole write
/// has one deadline, so the client gives up with one Timeout (the unit
/// test `one_deadline_for_a_write_of_many_partial_writes` in stream.rs
/// proves partial progress never restarts it).
#[test]
fn server_that_stops_reading_mid_data_times_out() {
    let server = ScriptedServer::start(
        Script::new()
            .ehlo_caps(&["PIPELINING", "8BITMIME"])
            .stall_at(Step::DataBytes(64 * 1024), Duration::from_secs(20))
            .io_timeout(Duration::from_secs(20)),
    );
    let mut s = Smtp::new(opts().with_timeout(Duration::from_secs(2)));
    s.connect("127.0.0.1", Some(server.port())).unwrap();
    // More than loopback's socket buffers can hold (several MiB).
    let msg =
        b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n".repeat(1024 * 1024);
    let e = s
        .sendmail("a@example.org", &["b@example.org"], &msg, &[], &[])
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(2)), "{e:?}");
    assert!(e.is_transient() && !e.may_have_been_delivered());
    assert!(!s.is_connected());
    server.finish();
}

/// The reply to the end of the data has its own budget: longer than a
/// step's by default, capped by an explicit timeout, and a timeout there
/// means the message may have been delivered.
#[test]
fn final_reply_has_its_own_budget() {
    let stall = Script::new().stall_at(Step::EndOfData, Duration::from_millis(1500));
    let server = ScriptedServer::start(stall.clone());
    let mut s = Smtp::new(SessionOptions {
        timeout: Duration::from_millis(500),
        final_reply_timeout: Duration::from_secs(10),
        ..opts()
    });
    s.connect("127.0.0.1", Some(server.port())).unwrap();
    s.sendmail("a@example.org", &["b@example.org"], MSG, &[], &[])
        .unwrap();
    s.quit().unwrap();
    server.finish();

    let server = ScriptedServer::start(stall);
    let mut s = Smtp::new(opts().with_timeout(Duration::from_millis(500)));
    s.connect("127.0.0.1", Some(server.port())).unwrap();
    let e = s
        .sendmail("a@example.org", &["b@example.org"], MSG, &[], &[])
        .unwrap_err();
    assert!(matches!(e, Error::MaybeDelivered(_)), "{e:?}");
    assert!(e.is_transient() && e.may_have_been_delivered());
    server.finish();
}

#[test]
fn zero_timeout_is_invalid_input_before_connecting() {
    let server = ScriptedServer::start(Script::new());
    for o in [
        SessionOptions {
            timeout: Duration::ZERO,
            ..opts()
        },
        opts().with_timeout(Duration::ZERO),
    ] {
        let e = Smtp::new(o)
            .connect("127.0.0.1", Some(server.port()))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
        assert!(!e.is_transient());
    }
    assert_eq!(server.finish().accepted(), 0);
}

/// smtplib refuses non-ASCII in MAIL/RCPT/VRFY/EXPN before sending unless
/// SMTPUTF8 is in force.
#[test]
fn non_ascii_commands_refused_before_sending_without_smtputf8() {
    let server = ScriptedServer::start(Script::new().ehlo_caps(&["PIPELINING", "8BITMIME"]));
    let mut s = connect(&server);
    s.ehlo(None).unwrap();
    for e in [
        s.mail("j\u{f6}@example.org", &[]).unwrap_err(),
        s.mail("a@example.org", &["SMTPUTF8"]).unwrap_err(),
        s.verify("j\u{f6}@example.org").unwrap_err(),
        s.expn("j\u{f6}@example.org").unwrap_err(),
    ] {
        assert!(matches!(e, Error::NotSupported(_)), "{e:?}");
    }
    assert_eq!(s.mail("a@example.org", &[]).unwrap().code(), 250);
    let e = s.rcpt("j\u{f6}@example.org", &[]).unwrap_err();
    assert!(matches!(e, Error::NotSupported(_)), "{e:?}");
    s.quit().unwrap();
    let t = server.finish();
    assert_eq!(t.conn().verbs(), ["EHLO", "MAIL", "QUIT"]);

    // With SMTPUTF8 offered and declared, they go out.
    let server = ScriptedServer::start(Script::new());
    let mut s = connect(&server);
    s.ehlo(None).unwrap();
    assert_eq!(
        s.mail("j\u{f6}@example.org", &["SMTPUTF8"]).unwrap().code(),
        250
    );
    assert_eq!(s.rcpt("b\u{f6}@example.org", &[]).unwrap().code(), 250);
    assert!(s.vrfy("j\u{f6}@example.org").is_ok());
    s.quit().unwrap();
    server.finish();
}

#[test]
fn caller_given_body_and_smtputf8_are_not_sent_twice() {
    let server = ScriptedServer::start(Script::new());
    let mut s = connect(&server);
    s.sendmail(
        "j\u{f6}@example.org",
        &["b@example.org"],
        "Subject: \u{e9}\r\n\r\n\u{e9}\r\n".as_bytes(),
        &["BODY=8BITMIME", "SMTPUTF8"],
        &[],
    )
    .unwrap();
    s.quit().unwrap();
    let t = server.finish();
    let from = &t.messages()[0].mail_from;
    assert_eq!(from.matches("BODY=").count(), 1, "{from}");
    assert_eq!(from.matches("SMTPUTF8").count(), 1, "{from}");
}

/// Reply text is for people: Latin-1 bytes or blanks in an EHLO line never
/// stop a send (smtplib reads them as Latin-1 and strips blanks); a
/// multi-byte character where a keyword is expected never panics.
#[test]
fn odd_bytes_in_greeting_and_ehlo_are_only_text() {
    for ehlo in [
        &b"250-mx.test \xe9\xe9\r\n250-\xe9\xe9\r\n250-\xc3\xa9\xc3\xa9\xc3\xa9\r\n250-PIPELINING\r\n250  8BITMIME  \t\r\n"[..],
        b"250-mx\r\n250-AUTH\xc3\xa9 PLAIN\r\n250 PIPELINING\r\n",
    ] {
        let server = ScriptedServer::start(
            Script::new()
                .greeting("220 caf\u{e9} ready")
                .raw_reply_at(Step::Ehlo, ehlo),
        );
        let mut s = connect(&server);
        assert!(s.greeting().unwrap().text().starts_with("caf"));
        s.sendmail("a@example.org", &["b@example.org"], MSG, &[], &[])
            .unwrap();
        assert!(s.has_extn("pipelining"));
        assert!(!s.has_extn("auth"));
        s.quit().unwrap();
        server.finish();
    }
}

#[test]
fn quit_on_drop_vrfy_send_raw_and_login_without_initial_response() {
    let server = ScriptedServer::start(Script::new().auth_accept("alice", "pw"));
    {
        let mut s = Smtp::new(opts()).quit_on_drop();
        s.connect("127.0.0.1", Some(server.port())).unwrap();
        s.send_raw(b"NOOP\r\n").unwrap();
        assert_eq!(s.getreply().unwrap().code(), 250);
        s.login_full(&Credentials::new("alice", "pw"), Some("PLAIN"), false)
            .unwrap();
        // Dropped here, connected: QUIT goes out.
    }
    let t = server.finish();
    let c = t.conn();
    assert_eq!(c.verbs()[..3], ["NOOP", "EHLO", "AUTH"]);
    assert!(c.commands().contains(&"AUTH PLAIN"), "{:?}", c.commands());
    assert_eq!(c.verbs().last().map(String::as_str), Some("QUIT"));
    assert!(c.authenticated && c.closed_cleanly());
}

/// Issue 15: the system trust store is OpenSSL's hashed directory, read
/// lazily: a CA present only as `<subject hash>.0` in `SSL_CERT_DIR`
/// verifies the server (no CA file given), and without it the same send
/// fails as a certificate problem. Run through the binary, whose process
/// owns its environment.
#[test]
fn system_trust_is_the_hashed_ca_directory() {
    let pki = TestPki::new();
    let hashed = tempfile::tempdir().unwrap();
    let ca = openssl::x509::X509::from_pem(&pki.ca_pem).unwrap();
    std::fs::write(
        hashed
            .path()
            .join(format!("{:08x}.0", ca.subject_name_hash())),
        &pki.ca_pem,
    )
    .unwrap();
    let empty = tempfile::tempdir().unwrap();
    for (dir, ok) in [(hashed.path(), true), (empty.path(), false)] {
        let server = ScriptedServer::start(Script::new().starttls().pki(&pki));
        let port = server.port().to_string();
        let out = BinEnv::new().run_env(
            &[
                "--no-queue",
                "--host",
                "localhost",
                "--port",
                &port,
                "--tls",
                "starttls",
                "-f",
                "a@example.org",
                "b@example.org",
            ],
            b"Subject: hashed\n\nx\n",
            &[("SSL_CERT_DIR", dir.to_str().unwrap())],
        );
        let t = server.finish();
        if ok {
            assert_eq!(out.code, 0, "{}", out.stderr);
            assert!(t.messages()[0].tls && t.messages()[0].accepted);
        } else {
            // Not queued (--no-queue): a certificate that does not verify
            // is permanent, EX_UNAVAILABLE (a queue would defer it).
            assert_eq!(out.code, 69, "{}", out.stderr);
            assert!(out.stderr.contains("certificate"), "{}", out.stderr);
            assert!(t.messages().is_empty());
        }
    }
}
