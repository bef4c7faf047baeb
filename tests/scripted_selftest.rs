//! Self-test of the scripted server in tests/support, driven by a tiny raw
//! client (std TcpStream + native-tls) so it does not depend on the engine.
//! Every client wait is bounded by `CLIENT_TIMEOUT`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use native_tls::{TlsConnector, TlsStream};
use support::*;

/// Bound on every read the raw client does.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// A deliberately naive SMTP client: buffered reads, no checks.
struct Client {
    s: Stream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        Client::connect_with_timeout(addr, CLIENT_TIMEOUT)
    }

    fn connect_with_timeout(addr: SocketAddr, timeout: Duration) -> Client {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(timeout)).unwrap();
        tcp.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        Client {
            s: Stream::Plain(tcp),
            buf: Vec::new(),
        }
    }

    fn connect_tls(addr: SocketAddr, connector: &TlsConnector) -> Result<Client, String> {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        let tls = connector
            .connect("localhost", tcp)
            .map_err(|e| e.to_string())?;
        Ok(Client {
            s: Stream::Tls(Box::new(tls)),
            buf: Vec::new(),
        })
    }

    /// One write of `data`, as-is.
    fn send(&mut self, data: &str) {
        self.send_bytes(data.as_bytes());
    }

    fn send_bytes(&mut self, data: &[u8]) {
        let r = match &mut self.s {
            Stream::Plain(s) => s.write_all(data),
            Stream::Tls(s) => s.write_all(data),
            Stream::Gone => panic!("send on a closed client"),
        };
        r.expect("client write");
    }

    /// Read more bytes; 0 on EOF, Err on timeout/reset.
    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = match &mut self.s {
            Stream::Plain(s) => s.read(&mut chunk)?,
            Stream::Tls(s) => s.read(&mut chunk)?,
            Stream::Gone => 0,
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// One line with its CRLF, or None at EOF/timeout.
    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            match self.fill() {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// One whole (possibly multi-line) reply; panics at EOF/timeout.
    fn reply(&mut self) -> String {
        self.try_reply().expect("a reply from the server")
    }

    fn try_reply(&mut self) -> Option<String> {
        let mut all = String::new();
        loop {
            let l = self.line()?;
            all.push_str(&l);
            if l.as_bytes().get(3) != Some(&b'-') {
                return Some(all);
            }
        }
    }

    /// Send a command and return its reply.
    fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    /// True if the server closed the connection (EOF or reset) in time.
    fn sees_close(&mut self) -> bool {
        self.buf.clear();
        matches!(self.fill(), Ok(0))
            || matches!(self.fill(), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }

    /// Upgrade the plain stream; leftover buffered plaintext is returned.
    fn starttls(&mut self, connector: &TlsConnector) -> Vec<u8> {
        let leftover = std::mem::take(&mut self.buf);
        let Stream::Plain(tcp) = std::mem::replace(&mut self.s, Stream::Gone) else {
            panic!("already TLS")
        };
        let tls = connector
            .connect("localhost", tcp)
            .expect("client handshake");
        self.s = Stream::Tls(Box::new(tls));
        leftover
    }
}

fn code(reply: &str) -> &str {
    &reply[..3]
}

#[test]
fn plain_transaction_one_command_per_flight_with_dot_unstuffing() {
    let server = ScriptedServer::start(Script::new());
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), "220 scripted ESMTP\r\n");
    let ehlo = c.cmd("EHLO client.example");
    assert!(
        ehlo.starts_with("250-scripted greets client.example\r\n"),
        "{ehlo}"
    );
    for cap in DEFAULT_CAPS {
        assert!(ehlo.contains(cap), "{cap} missing from {ehlo}");
    }
    assert!(ehlo.ends_with("250 HELP\r\n"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"));
    assert_eq!(
        code(&c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME")),
        "250"
    );
    assert_eq!(code(&c.cmd("RCPT TO:<b@example.net> NOTIFY=NEVER")), "250");
    assert_eq!(code(&c.cmd("DATA")), "354");
    c.send("Subject: hi\r\n\r\n..leading dot\r\n.\r\n");
    assert_eq!(code(&c.reply()), "250");
    assert_eq!(code(&c.cmd("QUIT")), "221");
    assert!(c.sees_close());

    let t = server.finish();
    let conn = t.conn();
    assert_eq!(conn.verbs(), ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]);
    assert_eq!(conn.flights, 6, "{conn:#?}");
    assert_eq!(conn.flight_of("MAIL"), Some(2));
    assert_eq!(conn.flight_of("QUIT"), Some(6));
    assert!(conn.closed_cleanly());
    assert!(!conn.tls && conn.lines.iter().all(|l| !l.tls && !l.bare_lf));
    let m = &conn.messages[0];
    assert_eq!(m.mail_from, "<a@example.org> BODY=8BITMIME");
    assert_eq!(m.sender_addr(), "a@example.org");
    assert_eq!(m.rcpt_to, ["<b@example.net> NOTIFY=NEVER"]);
    assert_eq!(m.rcpt_addrs(), ["b@example.net"]);
    assert_eq!(m.wire, b"Subject: hi\r\n\r\n..leading dot\r\n");
    assert_eq!(m.content_str(), "Subject: hi\r\n\r\n.leading dot\r\n");
    assert!(m.completed && m.accepted && m.bdat_chunks.is_none());
    assert_eq!(m.data_flights, [5]);
}

#[test]
fn pipelined_transaction_arrives_as_one_flight() {
    let server = ScriptedServer::start(Script::new());
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO client.example");
    c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n");
    let replies: Vec<String> = (0..4).map(|_| c.reply()).collect();
    assert_eq!(
        replies.iter().map(|r| code(r)).collect::<Vec<_>>(),
        ["250", "250", "250", "354"]
    );
    c.send("body\r\n.\r\nQUIT\r\n");
    assert_eq!(code(&c.reply()), "250");
    assert_eq!(code(&c.reply()), "221");

    let t = server.finish();
    let conn = t.conn();
    assert_eq!(
        conn.verbs_by_flight(),
        [
            (1, vec!["EHLO".to_string()]),
            (
                2,
                vec!["MAIL".into(), "RCPT".into(), "RCPT".into(), "DATA".into()]
            ),
            (3, vec!["QUIT".into()]),
        ]
    );
    assert_eq!(conn.messages[0].data_flights, [3]);
    assert_eq!(conn.messages[0].rcpt_to, ["<b@x>", "<c@x>"]);
}

#[test]
fn data_sent_without_waiting_for_354_shows_in_the_same_flight() {
    // A client bug the flight record must expose: content pipelined with DATA.
    let server = ScriptedServer::start(Script::new());
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO c");
    c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nbody\r\n.\r\n");
    for want in ["250", "250", "354", "250"] {
        assert_eq!(code(&c.reply()), want);
    }
    drop(c);
    let t = server.finish();
    assert_eq!(t.conn().flight_of("DATA"), Some(2));
    assert_eq!(t.conn().messages[0].data_flights, [2]);
    assert_eq!(t.conn().ending, Ending::ClientDropped);
}

#[test]
fn refused_recipient_sender_and_sequencing() {
    let server = ScriptedServer::start(
        Script::new()
            .reply_to("RCPT TO:<bad@x>", "550 5.1.1 no such user")
            .reply_to(Matcher::contains("<spammer@"), "553 5.7.1 go away")
            // nth counts every RCPT on the connection, refused ones included.
            .reply_at(Step::Rcpt.nth(4), "452 4.5.3 too many recipients"),
    );
    let mut c = Client::connect(server.addr());
    c.reply();
    assert!(
        c.cmd("MAIL FROM:<a@x>").starts_with("503 "),
        "MAIL before EHLO"
    );
    c.cmd("EHLO c");
    assert!(
        c.cmd("RCPT TO:<b@x>").starts_with("503 "),
        "RCPT before MAIL"
    );
    assert!(c.cmd("MAIL FROM:<spammer@x>").starts_with("553 5.7.1"));
    assert!(
        c.cmd("MAIL FROM:<a@x> SIZE=99999999999")
            .starts_with("552 ")
    );
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x>")), "250");
    assert_eq!(c.cmd("RCPT TO:<bad@x>"), "550 5.1.1 no such user\r\n");
    assert!(c.cmd("DATA").starts_with("554 "), "no valid recipients");
    assert_eq!(code(&c.cmd("RCPT TO:<good@x>")), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<third@x>")), "452");
    assert_eq!(code(&c.cmd("DATA")), "354");
    c.send(".\r\n");
    assert_eq!(code(&c.reply()), "250");
    assert_eq!(code(&c.cmd("VRFY someone")), "252");
    assert_eq!(code(&c.cmd("EXPN list")), "502");
    assert_eq!(code(&c.cmd("HELP")), "214");
    assert_eq!(code(&c.cmd("NOOP")), "250");
    assert_eq!(code(&c.cmd("RSET")), "250");
    assert_eq!(code(&c.cmd("XYZZY")), "500");
    c.cmd("QUIT");
    let t = server.finish();
    let m = &t.conn().messages[0];
    assert_eq!(m.rcpt_to, ["<good@x>"]);
    assert_eq!(m.rcpt_refused, ["<bad@x>", "<third@x>"]);
    assert!(m.content.is_empty() && m.completed);
}

#[test]
fn greeting_554_and_helo_fallback() {
    let server = ScriptedServer::start(Script::new().greeting("554 go away"));
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), "554 go away\r\n");
    assert!(c.cmd("EHLO c").starts_with("503 "));
    assert_eq!(code(&c.cmd("QUIT")), "221");
    assert!(server.finish().conn().closed_cleanly());

    let server = ScriptedServer::start(Script::new().ehlo_reply(502, "5.5.1 no EHLO here"));
    let mut c = Client::connect(server.addr());
    c.reply();
    assert_eq!(c.cmd("EHLO c"), "502 5.5.1 no EHLO here\r\n");
    assert_eq!(c.cmd("HELO c"), "250 scripted\r\n");
    assert_eq!(code(&c.cmd("MAIL FROM:<>")), "250");
    c.cmd("QUIT");
    assert_eq!(
        server.finish().conn().verbs(),
        ["EHLO", "HELO", "MAIL", "QUIT"]
    );
}

#[test]
fn starttls_with_injected_plaintext_is_visible_to_a_naive_client() {
    const INJECTED: &[u8] = b"250-PIPELINING\r\n250 AUTH PLAIN\r\n";
    let pki = TestPki::new();
    let server = ScriptedServer::start(
        Script::new()
            .starttls()
            .pki(&pki)
            .inject_after_starttls_220(INJECTED),
    );
    let mut c = Client::connect(server.addr());
    c.reply();
    assert!(c.cmd("EHLO c").contains("STARTTLS\r\n"));
    assert_eq!(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS\r\n");
    // The naive client buffered the injection together with the 220.
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    while c.buf.len() < INJECTED.len() && Instant::now() < deadline {
        c.fill().unwrap();
    }
    let leftover = c.starttls(&pki.connector());
    assert_eq!(leftover, INJECTED);
    let ehlo = c.cmd("EHLO c");
    assert!(
        ehlo.starts_with("250-scripted") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    assert!(c.cmd("STARTTLS").starts_with("554 "), "TLS already active");
    c.cmd("QUIT");
    assert!(
        c.sees_close(),
        "close_notify after QUIT reads as a clean EOF"
    );

    let t = server.finish();
    let conn = t.conn();
    assert!(conn.tls);
    let tls_flags: Vec<(&str, bool)> = conn
        .lines
        .iter()
        .map(|l| (l.text.as_str(), l.tls))
        .collect();
    assert_eq!(
        tls_flags,
        [
            ("EHLO c", false),
            ("STARTTLS", false),
            ("EHLO c", true),
            ("STARTTLS", true),
            ("QUIT", true)
        ]
    );
    assert!(conn.discarded_after_starttls.is_empty());
}

#[test]
fn plaintext_pipelined_after_starttls_is_discarded_and_state_reset() {
    let server = ScriptedServer::start(Script::new().starttls());
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO c");
    c.send("STARTTLS\r\nMAIL FROM:<evil@x>\r\n");
    assert_eq!(code(&c.reply()), "220");
    c.starttls(&connector_trusting(test_ca_pem()));
    assert!(
        c.cmd("MAIL FROM:<a@x>").starts_with("503 "),
        "EHLO needed again after TLS"
    );
    c.cmd("QUIT");
    let t = server.finish();
    assert_eq!(t.conn().discarded_after_starttls, b"MAIL FROM:<evil@x>\r\n");
    assert_eq!(
        t.conn().commands(),
        ["EHLO c", "STARTTLS", "MAIL FROM:<a@x>", "QUIT"]
    );
}

#[test]
fn implicit_tls_and_every_bad_certificate_kind() {
    let server = ScriptedServer::start(Script::new().tls_on_connect());
    let mut c =
        Client::connect_tls(server.addr(), &TestPki::new().connector()).expect("valid cert");
    assert_eq!(code(&c.reply()), "220");
    c.cmd("QUIT");
    let t = server.finish();
    assert!(t.conn().tls && t.conn().lines[0].tls);

    for pki in [
        TestPki::self_signed(),
        TestPki::wrong_host(),
        TestPki::expired(),
        TestPki::unknown_ca(),
    ] {
        assert!(pki.ca_path.exists() && pki.cert_path.exists() && pki.key_path.exists());
        let server = ScriptedServer::start(Script::new().tls_on_connect().pki(&pki));
        let err = Client::connect_tls(server.addr(), &connector_trusting(&pki.ca_pem))
            .err()
            .unwrap_or_else(|| panic!("{:?} certificate was accepted", pki.kind));
        let t = server.finish();
        assert!(
            matches!(t.conn().ending, Ending::TlsFailed(_)),
            "{:?}: {err}: {:?}",
            pki.kind,
            t.conn().ending
        );
    }
    // Pins differ per certificate.
    assert_ne!(TestPki::new().cert_sha256, TestPki::expired().cert_sha256);
    assert_eq!(TestPki::new().cert_sha256_hex().len(), 64);
}

#[test]
fn lmtp_replies_per_recipient() {
    let server = ScriptedServer::start(
        Script::new()
            .lhlo()
            .lmtp_reply("<full@x>", "452 4.2.2 mailbox full"),
    );
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), "220 scripted LMTP\r\n");
    assert!(c.cmd("EHLO c").starts_with("500 "));
    assert_eq!(code(&c.cmd("LHLO c")), "250");
    c.send("MAIL FROM:<a@x>\r\nRCPT TO:<ok@x>\r\nRCPT TO:<full@x>\r\nRCPT TO:<gone@x>\r\nDATA\r\n");
    (0..5).for_each(|_| drop(c.reply()));
    c.send("hi\r\n.\r\n");
    assert_eq!(c.reply(), "250 2.1.5 <ok@x> delivered\r\n");
    assert_eq!(c.reply(), "452 4.2.2 mailbox full\r\n");
    assert_eq!(c.reply(), "250 2.1.5 <gone@x> delivered\r\n");
    c.cmd("QUIT");
    let t = server.finish();
    let m = &t.conn().messages[0];
    assert_eq!(m.replies.len(), 3);
    assert!(m.accepted);
}

#[test]
fn disconnect_at_each_step() {
    // On MAIL: pipelined replies before it are flushed, then EOF.
    let server = ScriptedServer::start(Script::new().disconnect_at(Step::Mail));
    let mut c = Client::connect(server.addr());
    c.reply();
    c.send("EHLO c\r\nMAIL FROM:<a@x>\r\n");
    assert_eq!(code(&c.reply()), "250");
    assert!(c.sees_close());
    let t = server.finish();
    assert_eq!(t.conn().ending, Ending::ServerClosed);
    assert_eq!(t.conn().verbs(), ["EHLO", "MAIL"]);

    // After the EHLO reply.
    let server = ScriptedServer::start(Script::new().disconnect_after(Step::Ehlo));
    let mut c = Client::connect(server.addr());
    c.reply();
    assert_eq!(code(&c.cmd("EHLO c")), "250");
    assert!(c.sees_close());
    assert_eq!(server.finish().conn().ending, Ending::ServerClosed);

    // Mid-DATA after at least 10 content bytes.
    let server = ScriptedServer::start(Script::new().disconnect_at(Step::DataBytes(10)));
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO c");
    c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n");
    (0..3).for_each(|_| drop(c.reply()));
    c.send("0123456789\r\nmore\r\n");
    assert!(c.sees_close());
    let t = server.finish();
    let m = &t.conn().messages[0];
    assert!(!m.completed && m.wire.len() >= 10 && m.replies.is_empty());

    // After the final dot, before the reply.
    let server = ScriptedServer::start(Script::new().disconnect_at(Step::EndOfData));
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO c");
    c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n");
    (0..3).for_each(|_| drop(c.reply()));
    c.send("x\r\n.\r\n");
    assert!(c.try_reply().is_none());
    let t = server.finish();
    let m = &t.conn().messages[0];
    assert!(m.completed && !m.accepted && m.replies.is_empty());

    // Right after the greeting; and only on the second connection.
    let server = ScriptedServer::start(
        Script::new()
            .max_connections(2)
            .disconnect_at(Step::AfterGreeting.on_connection(1)),
    );
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("QUIT");
    let mut c = Client::connect(server.addr());
    assert_eq!(code(&c.reply()), "220");
    assert!(c.try_reply().is_none());
    let t = server.finish();
    assert_eq!(t.accepted(), 2);
    assert_eq!(t.connections[0].ending, Ending::Quit);
    assert_eq!(t.connections[1].ending, Ending::ServerClosed);
}

#[test]
fn stall_ends_when_the_client_gives_up() {
    let server = ScriptedServer::start(Script::new().stall_at(Step::Ehlo, Duration::from_secs(30)));
    let mut c = Client::connect_with_timeout(server.addr(), Duration::from_millis(200));
    c.reply();
    let started = Instant::now();
    c.send("EHLO c\r\n");
    assert!(
        c.try_reply().is_none(),
        "the stalled EHLO must not be answered"
    );
    drop(c);
    let t = server.finish();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(t.conn().ending, Ending::ClientDropped);

    // A short stall, then the normal reply.
    let server =
        ScriptedServer::start(Script::new().stall_at(Step::Greeting, Duration::from_millis(150)));
    let started = Instant::now();
    let mut c = Client::connect(server.addr());
    assert_eq!(code(&c.reply()), "220");
    assert!(started.elapsed() >= Duration::from_millis(150));
    c.cmd("QUIT");
    server.finish();
}

#[test]
fn drip_and_raw_replies() {
    let server = ScriptedServer::start(
        Script::new()
            .drip(Step::Greeting, Duration::from_millis(5))
            .raw_reply_at(Step::Ehlo, raw::mismatched_multiline())
            .raw_reply_at(Step::Noop.nth(2), raw::many_lines(250, 1000))
            .raw_reply_at(Step::Rset, raw::endless_line(100_000)),
    );
    let started = Instant::now();
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), "220 scripted ESMTP\r\n");
    assert!(started.elapsed() >= Duration::from_millis(5 * 19));
    c.send("EHLO c\r\n");
    assert_eq!(c.line().unwrap(), "250-first line\r\n");
    assert_eq!(c.line().unwrap(), "451-second line\r\n");
    assert_eq!(c.line().unwrap(), "250 last line\r\n");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.cmd("NOOP").lines().count(), 1000);
    c.send("RSET\r\n");
    let mut got = 0;
    while got < 100_000 {
        got += c.fill().unwrap();
    }
    assert!(c.buf.starts_with(b"250 xxx") && !c.buf.contains(&b'\n'));
    drop(c);
    let t = server.finish();
    assert_eq!(t.conn().replies[0], "220 scripted ESMTP\r\n");
    assert_eq!(t.conn().replies.last().unwrap(), "<raw: 100000 bytes>");
}

#[test]
fn bdat_chunks_pipelined() {
    let server = ScriptedServer::start(Script::new().with_cap("CHUNKING"));
    let mut c = Client::connect(server.addr());
    c.reply();
    assert!(c.cmd("EHLO c").contains("250 CHUNKING\r\n"));
    c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT 5\r\nhel.oBDAT 10 LAST\r\n\r\n.world\r\n");
    for want in ["250", "250", "250", "250"] {
        assert_eq!(code(&c.reply()), want);
    }
    c.cmd("QUIT");
    let t = server.finish();
    let m = &t.conn().messages[0];
    assert_eq!(m.bdat_chunks, Some(vec![5, 10]));
    assert_eq!(m.wire, b"hel.o\r\n.world\r\n");
    assert_eq!(m.content, m.wire, "no dot-unstuffing for BDAT");
    assert!(m.completed && m.accepted);
    assert_eq!(
        t.conn().verbs(),
        ["EHLO", "MAIL", "RCPT", "BDAT", "BDAT", "QUIT"]
    );
    assert_eq!(t.conn().flight_of("BDAT 10"), Some(2));
}

#[test]
fn auth_builtin_mechanisms_and_tls_requirement() {
    let b64 = |s: &[u8]| AuthExchange::encode(s);
    let server = ScriptedServer::start(
        Script::new()
            .starttls()
            .require_tls_for_auth()
            .auth_accept("user", "secret"),
    );
    let mut c = Client::connect(server.addr());
    c.reply();
    assert!(!c.cmd("EHLO c").contains("AUTH"));
    assert!(c.cmd("AUTH PLAIN").starts_with("530 "));
    c.cmd("STARTTLS");
    c.starttls(&connector_trusting(test_ca_pem()));
    assert!(c.cmd("EHLO c").contains(BUILTIN_AUTH_MECHANISMS));
    // LOGIN with a wrong password, then PLAIN with an initial response.
    assert_eq!(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd(&b64(b"user")), "334 UGFzc3dvcmQ6\r\n");
    assert!(c.cmd(&b64(b"wrong")).starts_with("535 5.7.8"));
    let plain = b64(b"\0user\0secret");
    assert!(c.cmd(&format!("AUTH PLAIN {plain}")).starts_with("235 "));
    assert!(
        c.cmd("AUTH PLAIN").starts_with("503 "),
        "already authenticated"
    );
    c.cmd("QUIT");
    let t = server.finish();
    assert!(t.conn().authenticated);
    let auth_lines: Vec<&ClientLine> = t
        .conn()
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::AuthResponse)
        .collect();
    assert_eq!(auth_lines.len(), 2);
    assert!(auth_lines.iter().all(|l| l.tls));

    // CRAM-MD5 (RFC 2195) and a cancelled exchange.
    let server = ScriptedServer::start(Script::new().auth_accept("tim", "tanstaaftanstaaf"));
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO c");
    let challenge = c.cmd("AUTH CRAM-MD5");
    let challenge = AuthExchange::decode(challenge[4..].trim()).unwrap();
    let challenge = String::from_utf8(challenge).unwrap();
    let answer = format!("tim {}", cram_md5("tanstaaftanstaaf", &challenge));
    assert!(c.cmd(&b64(answer.as_bytes())).starts_with("235 "));
    c.cmd("QUIT");
    server.finish();

    // The RFC 2195 example vector, so the helper itself is checked.
    assert_eq!(
        cram_md5(
            "tanstaaftanstaaf",
            "<1896.697170952@postoffice.reston.mci.net>"
        ),
        "b913a602c7eda7a495b4e6e7334d3890"
    );
}

#[test]
fn custom_auth_exchange_and_refusal() {
    let server = ScriptedServer::start(
        Script::new()
            .with_cap("AUTH X-TEST")
            .on_auth(|ex| {
                assert_eq!(ex.mechanism(), "X-TEST");
                match ex.challenge("Z28=").as_deref() {
                    Some("b2s=") => "235 2.7.0 fine".into(),
                    _ => "535 5.7.8 no".into(),
                }
            })
            .reply_to_times("AUTH", "454 4.7.0 try later", 1),
    );
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO c");
    assert!(c.cmd("AUTH X-TEST").starts_with("454 "));
    assert!(c.cmd("AUTH PLAIN").starts_with("504 "), "not advertised");
    assert_eq!(c.cmd("AUTH X-TEST"), "334 Z28=\r\n");
    assert_eq!(c.cmd("b2s="), "235 2.7.0 fine\r\n");
    c.cmd("QUIT");
    assert!(server.finish().conn().authenticated);
}

#[test]
fn reply_once_across_connections_then_accept() {
    let server = ScriptedServer::start(Script::new().max_connections(2).reply_to_times(
        "MAIL",
        "451 4.3.0 try again",
        1,
    ));
    for want in ["451", "250"] {
        let mut c = Client::connect(server.addr());
        c.reply();
        c.cmd("EHLO c");
        assert_eq!(code(&c.cmd("MAIL FROM:<a@x>")), want);
        c.cmd("QUIT");
    }
    let t = server.finish();
    assert_eq!(t.accepted(), 2);
    assert_eq!(
        t.lines().iter().filter(|l| l.starts_with("MAIL")).count(),
        2
    );
}

#[test]
fn start_each_runs_one_script_per_connection() {
    let server = ScriptedServer::start_each(vec![
        Script::new().greeting("421 4.3.2 busy"),
        Script::new(),
    ]);
    let mut c = Client::connect(server.addr());
    assert_eq!(code(&c.reply()), "421");
    drop(c);
    let mut c = Client::connect(server.addr());
    assert_eq!(code(&c.reply()), "220");
    c.cmd("QUIT");
    let t = server.finish();
    assert_eq!(t.accepted(), 2);
    assert_eq!(t.connections[0].ending, Ending::ClientDropped);
}

#[test]
fn hooks_and_raw_connections() {
    let server = ScriptedServer::start(Script::new().hook_at(Step::Rcpt.nth(2), |c| {
        c.write(b"250-odd\r\n250 hook was here\r\n");
        Hook::Replied
    }));
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO c");
    c.cmd("MAIL FROM:<a@x>");
    assert_eq!(code(&c.cmd("RCPT TO:<1@x>")), "250");
    assert_eq!(c.cmd("RCPT TO:<2@x>"), "250-odd\r\n250 hook was here\r\n");
    c.cmd("QUIT");
    server.finish();

    let server = ScriptedServer::start(Script::new().raw(|c| {
        c.write(b"220 raw\r\n");
        if let Some(line) = c.read_line() {
            c.write(format!("250 you said {line}\r\n").as_bytes());
        }
    }));
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), "220 raw\r\n");
    assert_eq!(c.cmd("HELLO"), "250 you said HELLO\r\n");
    assert!(c.sees_close());
    let t = server.finish();
    assert_eq!(t.conn().ending, Ending::ServerClosed);
    assert_eq!(t.conn().lines(), ["HELLO"]);
}

#[test]
fn every_wait_is_bounded() {
    // A client that connects and says nothing.
    let server = ScriptedServer::start(Script::new().io_timeout(Duration::from_millis(300)));
    let mut c = Client::connect(server.addr());
    c.reply();
    let t = server.wait(Duration::from_secs(3));
    assert_eq!(t.conn().ending, Ending::Timeout);
    assert!(c.sees_close());

    // finish() while the client is still connected and idle.
    let server = ScriptedServer::start(Script::new());
    let mut c = Client::connect(server.addr());
    c.reply();
    let started = Instant::now();
    let t = server.finish();
    assert_eq!(t.conn().ending, Ending::Abandoned);
    assert!(started.elapsed() < Duration::from_secs(1));

    // No client at all.
    let server = ScriptedServer::start(Script::new());
    assert_eq!(server.finish().accepted(), 0);
}

#[test]
fn bare_lf_is_flagged_and_never_ends_data() {
    let server = ScriptedServer::start(Script::new());
    let mut c = Client::connect(server.addr());
    c.reply();
    c.send("EHLO c\n");
    c.reply();
    c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n");
    (0..3).for_each(|_| drop(c.reply()));
    c.send("a\n.\r\nMAIL FROM:<smuggled@x>\r\n.\r\n");
    assert_eq!(code(&c.reply()), "250");
    c.cmd("QUIT");
    let t = server.finish();
    assert!(t.conn().lines[0].bare_lf);
    let m = &t.conn().messages[0];
    assert!(m.wire_has_bare_lf() && !m.wire_has_bare_cr());
    assert_eq!(m.content_str(), "a\n.\r\nMAIL FROM:<smuggled@x>\r\n");
    assert_eq!(t.conn().messages.len(), 1);
}
