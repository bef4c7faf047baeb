//! The chaos relay: an in-process ESMTP server on 127.0.0.1 that misbehaves
//! at random and keeps an exact record of what it received.
//!
//! Per session it offers CHUNKING or not (half and half, so that BDAT and
//! DATA are both exercised) and draws one [`Fault`] (or none) and applies it to one
//! transaction of the session: a 4xx at the greeting, MAIL, RCPT, DATA or
//! after the data; a stall (no reply, then a close) at any of those or in
//! the middle of the data; a dropped connection in the middle of the data
//! or after the whole message but before its reply; a close right after
//! the final 250. Recipients in [`DOOMED_DOMAIN`] always get a 550.
//! [`Relay::kill`] is the relay process dying: the listener goes away and
//! every open connection is shut down at once (pending replies already
//! written still leave, as with a killed process); [`Relay::restart`]
//! listens again on the same port.
//!
//! Every complete message is a [`Receipt`], logged *before* its final
//! reply is written, with what the relay knows about whether the client
//! can have seen that reply: whether the reply was written, whether the
//! session went on to a further MAIL afterwards, and which of the test's
//! child processes owned the client end of the connection (found through
//! /proc at accept time), so the test can tell a duplicate inside the
//! documented at-least-once window from one outside it.
//!
//! Every wait is bounded: sockets have [`IO_TIMEOUT`], stalls last
//! [`Relay::stall`], lines and messages have limits.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Recipients in this domain are refused with a 550, always.
pub const DOOMED_DOMAIN: &str = "doomed.example";
/// No wait on a client lasts longer than this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest command line the relay reads.
const MAX_LINE: u64 = 4096;
/// Largest message the relay accepts.
const MAX_MESSAGE: usize = 4 << 20;

/// A small deterministic generator (splitmix64): the test prints its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The step of a transaction a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Greeting,
    Mail,
    Rcpt,
    Data,
    /// In the middle of the message: after this many bytes of it.
    MidData(usize),
    /// After the whole message, before its final reply.
    EndOfData,
}

/// What goes wrong in one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    None,
    /// A 4xx (421 at the greeting) at the step.
    Refuse(Step),
    /// No reply at the step for [`Relay::stall`], then a close.
    Stall(Step),
    /// The connection dropped at the step (MidData or EndOfData).
    Drop(Step),
    /// The final 250 written, then the connection closed at once.
    CloseAfter250,
}

impl Fault {
    fn label(self) -> String {
        match self {
            Fault::None => "none".into(),
            Fault::Refuse(s) => format!("refuse {}", step_label(s)),
            Fault::Stall(s) => format!("stall {}", step_label(s)),
            Fault::Drop(s) => format!("drop {}", step_label(s)),
            Fault::CloseAfter250 => "close after 250".into(),
        }
    }
}

fn step_label(s: Step) -> &'static str {
    match s {
        Step::Greeting => "greeting",
        Step::Mail => "MAIL",
        Step::Rcpt => "RCPT",
        Step::Data => "DATA",
        Step::MidData(_) => "mid-data",
        Step::EndOfData => "after data",
    }
}

/// One complete message as the relay received it.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub message_id: String,
    /// The test's marker line was there: the message arrived whole.
    pub intact: bool,
    /// The final 250 was written to the socket.
    pub reply_written: bool,
    /// The client sent a further MAIL in the same session afterwards, so it
    /// had read and acted on this reply.
    pub followed: bool,
    /// The relay was killed between the message and its reply.
    pub killed_before_reply: bool,
    /// The child process that owned the client end, when found.
    pub pid: Option<u32>,
}

/// The relay's counters, for the figures the test prints.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub sessions: u64,
    pub faults: HashMap<String, u64>,
    pub kills: u64,
    pub bdat: u64,
    pub data: u64,
}

struct Shared {
    port: u16,
    chaos: AtomicBool,
    up: AtomicBool,
    stop: AtomicBool,
    stall: Duration,
    rng: Mutex<Rng>,
    next_conn: AtomicU64,
    /// Open connections by id, for kill().
    conns: Mutex<HashMap<u64, TcpStream>>,
    /// Bumped by every kill(); a session started in an older epoch was killed.
    epoch: AtomicU64,
    receipts: Mutex<Vec<Receipt>>,
    stats: Mutex<Stats>,
    /// The test's live child processes, for the pid lookup.
    children: Arc<Mutex<HashSet<u32>>>,
}

/// The running relay; dropped or [`Relay::shutdown`], it stops.
pub struct Relay {
    shared: Arc<Shared>,
    acceptor: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Relay {
    /// Starts listening on 127.0.0.1 (a port the kernel picks), misbehaving
    /// from the start. `children` is the set of pids the test keeps.
    pub fn start(seed: u64, stall: Duration, children: Arc<Mutex<HashSet<u32>>>) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            port,
            chaos: AtomicBool::new(true),
            up: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            stall,
            rng: Mutex::new(Rng::new(seed ^ 0x005e_ed0f_7e1a_u64)),
            next_conn: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            receipts: Mutex::new(Vec::new()),
            stats: Mutex::new(Stats::default()),
            children,
        });
        let s = shared.clone();
        let acceptor = thread::spawn(move || accept_loop(s, Some(listener)));
        Relay {
            shared,
            acceptor: Mutex::new(Some(acceptor)),
        }
    }

    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// The relay process dies: no listener, every connection cut.
    pub fn kill(&self) {
        self.shared.up.store(false, Ordering::SeqCst);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        for (_, c) in self.shared.conns.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
        self.shared.stats.lock().unwrap().kills += 1;
    }

    /// Listening again, on the same port.
    pub fn restart(&self) {
        self.shared.up.store(true, Ordering::SeqCst);
    }

    /// From now on a well-behaved relay (the doomed domain still refused).
    pub fn heal(&self) {
        self.shared.chaos.store(false, Ordering::SeqCst);
        self.restart();
    }

    pub fn receipts(&self) -> Vec<Receipt> {
        self.shared.receipts.lock().unwrap().clone()
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().unwrap().clone()
    }

    /// Stops for good: no listener, no connection.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.kill();
        if let Some(t) = self.acceptor.lock().unwrap().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(s: Arc<Shared>, mut listener: Option<TcpListener>) {
    while !s.stop.load(Ordering::SeqCst) {
        if !s.up.load(Ordering::SeqCst) {
            listener = None;
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(("127.0.0.1", s.port)) {
                Ok(l) => {
                    l.set_nonblocking(true).unwrap();
                    listener.insert(l)
                }
                Err(_) => {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        l.set_nonblocking(true).unwrap();
        match l.accept() {
            Ok((stream, peer)) => {
                let s = s.clone();
                thread::spawn(move || session(s, stream, peer));
            }
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Which of `children` has a socket whose local end is `peer` (the client
/// end of the relay's connection): /proc/net/tcp gives the inode, each
/// child's fd table the owner.
fn owner_of(peer: SocketAddr, relay_port: u16, children: &Mutex<HashSet<u32>>) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want_local = format!(":{:04X}", peer.port());
    let want_remote = format!(":{relay_port:04X}");
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1].ends_with(&want_local) && f[2].ends_with(&want_remote))
            .then(|| f[9].to_string())
    })?;
    let target = format!("socket:[{inode}]");
    let pids: Vec<u32> = children.lock().unwrap().iter().copied().collect();
    pids.into_iter().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten().any(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy() == target.as_str())
                })
            })
            .unwrap_or(false)
    })
}

fn draw_fault(s: &Shared) -> (Fault, u32) {
    if !s.chaos.load(Ordering::SeqCst) {
        return (Fault::None, 0);
    }
    let mut r = s.rng.lock().unwrap();
    let steps = [Step::Mail, Step::Rcpt, Step::Data, Step::EndOfData];
    let roll = r.below(100);
    let fault = match roll {
        0..=49 => Fault::None,
        50..=51 => Fault::Refuse(Step::Greeting),
        52..=61 => Fault::Refuse(steps[r.below(4) as usize]),
        62..=63 => Fault::Stall(Step::Greeting),
        64..=69 => Fault::Stall(match r.below(3) {
            0 => Step::Mail,
            1 => Step::MidData(r.below(3000) as usize),
            _ => Step::EndOfData,
        }),
        70..=79 => Fault::Drop(Step::MidData(r.below(3000) as usize)),
        80..=86 => Fault::Drop(Step::EndOfData),
        _ => Fault::CloseAfter250,
    };
    // Which transaction of the session it hits: most sessions carry one,
    // a queue run's carry many.
    let txn = r.below(3) as u32;
    (fault, txn)
}

struct Conn {
    s: Arc<Shared>,
    id: u64,
    epoch: u64,
    w: TcpStream,
    r: BufReader<TcpStream>,
    pid: Option<u32>,
    peer: SocketAddr,
    fault: Fault,
    fault_txn: u32,
    /// CHUNKING offered in this session (half of them), so that both BDAT
    /// and DATA are exercised.
    chunking: bool,
    txn: u32,
    /// Receipts of this session whose reply was written, not yet followed.
    unfollowed: Vec<usize>,
}

impl Conn {
    fn killed(&self) -> bool {
        self.s.epoch.load(Ordering::SeqCst) != self.epoch
    }

    fn fault_here(&self, step: Step) -> Option<Fault> {
        if self.txn != self.fault_txn {
            return None;
        }
        match self.fault {
            Fault::Refuse(s) | Fault::Stall(s) | Fault::Drop(s) if same_step(s, step) => {
                Some(self.fault)
            }
            Fault::CloseAfter250 if step == Step::EndOfData => Some(self.fault),
            _ => None,
        }
    }

    fn send(&mut self, text: &str) -> bool {
        self.w.write_all(text.as_bytes()).is_ok()
    }

    fn stall_and_close(&mut self) {
        let end = Instant::now() + self.s.stall;
        while Instant::now() < end && !self.killed() {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.w.shutdown(Shutdown::Both);
    }

    fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = (&mut self.r)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .ok()?;
        if n == 0 || !buf.ends_with(b"\n") {
            return None;
        }
        Some(String::from_utf8_lossy(&buf).trim_end().to_string())
    }
}

fn same_step(a: Step, b: Step) -> bool {
    matches!(
        (a, b),
        (Step::MidData(_), Step::MidData(_)) | (Step::Greeting, Step::Greeting)
    ) || a == b
}

fn session(s: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let id = s.next_conn.fetch_add(1, Ordering::SeqCst);
    let epoch = s.epoch.load(Ordering::SeqCst);
    if let Ok(c) = stream.try_clone() {
        s.conns.lock().unwrap().insert(id, c);
    }
    let pid = owner_of(peer, s.port, &s.children);
    let (fault, fault_txn) = draw_fault(&s);
    let chunking = s.rng.lock().unwrap().chance(0.5);
    {
        let mut st = s.stats.lock().unwrap();
        st.sessions += 1;
        *st.faults.entry(fault.label()).or_default() += 1;
    }
    let r = BufReader::new(stream.try_clone().unwrap());
    let mut c = Conn {
        s: s.clone(),
        id,
        epoch,
        w: stream,
        r,
        pid,
        peer,
        fault,
        fault_txn,
        chunking,
        txn: 0,
        unfollowed: Vec::new(),
    };
    converse(&mut c);
    let _ = c.w.shutdown(Shutdown::Both);
    s.conns.lock().unwrap().remove(&c.id);
}

fn converse(c: &mut Conn) {
    match c.fault_here(Step::Greeting) {
        Some(Fault::Refuse(_)) => {
            c.send("421 4.3.2 chaos: not now\r\n");
            return;
        }
        Some(Fault::Stall(_)) => return c.stall_and_close(),
        _ => {}
    }
    if !c.send("220 chaos.test ESMTP chaos relay\r\n") {
        return;
    }
    let mut rcpts = 0usize;
    let mut in_txn = false;
    let mut bdat: Vec<u8> = Vec::new();
    while let Some(line) = c.line() {
        let upper = line.to_ascii_uppercase();
        let verb = upper.split([' ', ':']).next().unwrap_or("").to_string();
        let ok = match verb.as_str() {
            "EHLO" => {
                let chunking = if c.chunking { "250-CHUNKING\r\n" } else { "" };
                c.send(&format!(
                    "250-chaos.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n{chunking}250-SIZE 4194304\r\n250 ENHANCEDSTATUSCODES\r\n"
                ))
            }
            "HELO" | "NOOP" => c.send("250 2.0.0 ok\r\n"),
            "RSET" => {
                in_txn = false;
                rcpts = 0;
                bdat.clear();
                c.send("250 2.0.0 ok\r\n")
            }
            "QUIT" => {
                c.send("221 2.0.0 bye\r\n");
                return;
            }
            "MAIL" => {
                // The client acted on every earlier reply of this session.
                if !c.unfollowed.is_empty() {
                    let mut rs = c.s.receipts.lock().unwrap();
                    for i in c.unfollowed.drain(..) {
                        rs[i].followed = true;
                    }
                }
                if in_txn {
                    c.txn += 1;
                }
                in_txn = true;
                rcpts = 0;
                bdat.clear();
                match c.fault_here(Step::Mail) {
                    Some(Fault::Refuse(_)) => {
                        in_txn = false;
                        c.send("451 4.3.0 chaos: MAIL refused for now\r\n")
                    }
                    Some(Fault::Stall(_)) => return c.stall_and_close(),
                    _ => c.send("250 2.1.0 ok\r\n"),
                }
            }
            "RCPT" => {
                if !in_txn {
                    c.send("503 5.5.1 MAIL first\r\n")
                } else if upper.contains(&format!("@{}>", DOOMED_DOMAIN.to_ascii_uppercase())) {
                    c.send("550 5.1.1 chaos: this domain is doomed\r\n")
                } else {
                    match c.fault_here(Step::Rcpt) {
                        Some(Fault::Refuse(_)) => c.send("451 4.2.0 chaos: RCPT deferred\r\n"),
                        Some(Fault::Stall(_)) => return c.stall_and_close(),
                        _ => {
                            rcpts += 1;
                            c.send("250 2.1.5 ok\r\n")
                        }
                    }
                }
            }
            "DATA" => {
                if !in_txn || rcpts == 0 {
                    c.send("554 5.5.1 no valid recipients\r\n")
                } else {
                    match c.fault_here(Step::Data) {
                        Some(Fault::Refuse(_)) => {
                            in_txn = false;
                            c.send("451 4.3.0 chaos: DATA refused for now\r\n")
                        }
                        Some(Fault::Stall(_)) => return c.stall_and_close(),
                        _ => {
                            if !c.send("354 go ahead\r\n") {
                                return;
                            }
                            let Some(body) = read_dot_data(c) else {
                                return;
                            };
                            c.s.stats.lock().unwrap().data += 1;
                            in_txn = false;
                            if !finish_message(c, &body) {
                                return;
                            }
                            true
                        }
                    }
                }
            }
            "BDAT" if c.chunking => {
                let mut parts = upper.split_whitespace().skip(1);
                let size: Option<usize> = parts.next().and_then(|n| n.parse().ok());
                let last = parts.next() == Some("LAST");
                let Some(size) = size.filter(|n| bdat.len() + n <= MAX_MESSAGE) else {
                    c.send("552 5.3.4 chaos: bad BDAT size\r\n");
                    return;
                };
                let Some(chunk) = read_chunk(c, bdat.len(), size) else {
                    return;
                };
                bdat.extend_from_slice(&chunk);
                if !in_txn || rcpts == 0 {
                    bdat.clear();
                    c.send("554 5.5.1 no valid recipients\r\n")
                } else if !last {
                    c.send("250 2.0.0 chunk ok\r\n")
                } else {
                    c.s.stats.lock().unwrap().bdat += 1;
                    in_txn = false;
                    let body = std::mem::take(&mut bdat);
                    if !finish_message(c, &body) {
                        return;
                    }
                    true
                }
            }
            _ => c.send("500 5.5.2 chaos: what?\r\n"),
        };
        if !ok {
            return;
        }
    }
}

/// Reads `size` bytes of a BDAT chunk, applying a mid-data fault when
/// its offset falls inside; `None` when the session ends.
fn read_chunk(c: &mut Conn, before: usize, size: usize) -> Option<Vec<u8>> {
    let cut = match c.fault_here(Step::MidData(0)) {
        Some(f @ (Fault::Drop(Step::MidData(at)) | Fault::Stall(Step::MidData(at))))
            if at >= before && at < before + size =>
        {
            Some((f, at - before))
        }
        _ => None,
    };
    let mut chunk = vec![0u8; cut.map_or(size, |(_, n)| n)];
    c.r.read_exact(&mut chunk).ok()?;
    if let Some((f, _)) = cut {
        if matches!(f, Fault::Stall(_)) {
            c.stall_and_close();
        }
        return None;
    }
    Some(chunk)
}

/// Reads a dot-terminated message, un-stuffing it; `None` when the
/// session ends (dropped, stalled, killed, or over the limit).
fn read_dot_data(c: &mut Conn) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    let mut wire = 0usize;
    loop {
        if let Some(f @ (Fault::Drop(Step::MidData(at)) | Fault::Stall(Step::MidData(at)))) =
            c.fault_here(Step::MidData(0))
            && wire >= at
        {
            if matches!(f, Fault::Stall(_)) {
                c.stall_and_close();
            }
            return None;
        }
        let mut line = Vec::new();
        let n = (&mut c.r)
            .take(MAX_LINE * 4)
            .read_until(b'\n', &mut line)
            .ok()?;
        if n == 0 || !line.ends_with(b"\n") {
            return None;
        }
        wire += n;
        if line == b".\r\n" || line == b".\n" {
            return Some(body);
        }
        let unstuffed = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        body.extend_from_slice(unstuffed);
        if body.len() > MAX_MESSAGE {
            return None;
        }
    }
}

/// The message is complete: log it, then answer as the fault says.
/// Returns whether the session goes on.
fn finish_message(c: &mut Conn, body: &[u8]) -> bool {
    let fault = c.fault_here(Step::EndOfData);
    if let Some(Fault::Refuse(_)) = fault {
        // Refused: the relay did not take it.
        return c.send("451 4.3.0 chaos: try the message again later\r\n");
    }
    let text = String::from_utf8_lossy(body);
    let message_id = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            l.get(..11)
                .filter(|p| p.eq_ignore_ascii_case("message-id:"))
                .map(|_| l[11..].trim().to_string())
        })
        .unwrap_or_default();
    let marker = format!("chaos-end {}", message_id.trim_matches(['<', '>']));
    let intact = text.lines().any(|l| l == marker);
    let index = {
        let mut rs = c.s.receipts.lock().unwrap();
        rs.push(Receipt {
            message_id,
            intact,
            reply_written: false,
            followed: false,
            killed_before_reply: false,
            // Looked up again if the accept-time lookup raced the spawn.
            pid: c.pid.or_else(|| owner_of(c.peer, c.s.port, &c.s.children)),
        });
        rs.len() - 1
    };
    match fault {
        Some(Fault::Drop(_)) => return false,
        Some(Fault::Stall(_)) => {
            c.stall_and_close();
            return false;
        }
        _ => {}
    }
    let killed = c.killed();
    let written = !killed && c.send("250 2.0.0 chaos: queued\r\n");
    {
        let mut rs = c.s.receipts.lock().unwrap();
        rs[index].reply_written = written;
        rs[index].killed_before_reply = killed;
    }
    if !written {
        return false;
    }
    c.unfollowed.push(index);
    if fault == Some(Fault::CloseAfter250) {
        // FIN after the reply, not a reset: the 250 reaches the client.
        let _ = c.w.shutdown(Shutdown::Write);
        let mut sink = [0u8; 4096];
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end && c.r.read(&mut sink).is_ok_and(|n| n > 0) {}
        return false;
    }
    true
}
