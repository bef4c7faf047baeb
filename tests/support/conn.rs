//! One accepted connection's I/O: buffered reading with flight counting,
//! queued replies flushed only when the server would block, the STARTTLS
//! upgrade, and the fault primitives (stall, drip, abrupt close).
//!
//! Every wait is bounded by the script's I/O timeout, and gives up early when
//! the test calls `finish()`. Every buffer is bounded by [`MAX_BUFFER`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use native_tls::{HandshakeError, Identity, Protocol, TlsAcceptor, TlsStream};

use super::transcript::{ClientLine, Connection, Ending, LineKind};

/// Longest command line the server accepts (RFC 5321 allows 512 octets;
/// this leaves room for tests that send longer ones on purpose).
pub const MAX_COMMAND_LINE: usize = 64 * 1024;
/// Most client bytes buffered at once, and most content bytes per message.
pub const MAX_BUFFER: usize = 64 * 1024 * 1024;
/// How often blocked reads and stalls look at the `finish()` flag.
const POLL: Duration = Duration::from_millis(20);
/// Replies longer than this are abbreviated in the transcript.
const MAX_RECORDED_REPLY: usize = 4096;

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

impl Stream {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(s) => Some(s.get_ref()),
            Stream::Gone => None,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Ok(0),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).and_then(|_| s.flush()),
            Stream::Tls(s) => s.write_all(buf).and_then(|_| s.flush()),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// TLS settings a connection may need for STARTTLS or implicit TLS.
#[derive(Clone)]
pub(crate) struct TlsConfig {
    pub identity: Identity,
    pub min: Option<Protocol>,
    pub max: Option<Protocol>,
}

/// A live connection as the server sees it. Hooks and [`Script::raw`]
/// handlers get one to talk to the client directly; everything read through
/// it is recorded in the transcript with its flight.
///
/// [`Script::raw`]: super::Script::raw
pub struct RawConn {
    stream: Stream,
    buf: Vec<u8>,
    start: usize,
    out: Vec<u8>,
    wrote_since_read: bool,
    io_timeout: Duration,
    shutdown: Arc<AtomicBool>,
    tls_config: TlsConfig,
    /// The 0-based index of this connection.
    pub index: usize,
    pub(crate) t: Connection,
    pub(crate) end: Option<Ending>,
}

impl RawConn {
    pub(crate) fn new(
        tcp: TcpStream,
        index: usize,
        io_timeout: Duration,
        shutdown: Arc<AtomicBool>,
        tls_config: TlsConfig,
    ) -> io::Result<RawConn> {
        tcp.set_nonblocking(false)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(POLL))?;
        tcp.set_write_timeout(Some(io_timeout))?;
        Ok(RawConn {
            stream: Stream::Plain(tcp),
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            out: Vec::new(),
            wrote_since_read: true,
            io_timeout,
            shutdown,
            tls_config,
            index,
            t: Connection::default(),
            end: None,
        })
    }

    // ----- public API for hooks and raw handlers -----

    /// Read one line (recorded as a command line). `None` when the client
    /// closed, timed out, or the line was too long; the connection then ends.
    pub fn read_line(&mut self) -> Option<String> {
        let r = self.client_line(LineKind::Command);
        self.keep(r).map(|l| l.text)
    }

    /// Read exactly `n` bytes (not recorded as lines).
    pub fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut v = Vec::with_capacity(n.min(MAX_BUFFER));
        while v.len() < n {
            let r = self.take_up_to(n - v.len());
            v.extend(self.keep(r)?);
        }
        Some(v)
    }

    /// Write `bytes` now (after anything queued). False if the client is gone.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        self.queue(bytes);
        let r = self.flush();
        self.keep(r).is_some()
    }

    /// Do the server side of a TLS handshake now. False (and the connection
    /// ends as `TlsFailed`) if it fails.
    pub fn start_tls(&mut self) -> bool {
        let r = self.handshake();
        self.keep(r).is_some()
    }

    /// Whether the connection is inside TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The current client flight number (0 before the client sent anything).
    pub fn flight(&self) -> usize {
        self.t.flights
    }

    /// The underlying TCP socket (e.g. to half-close it).
    pub fn tcp(&self) -> Option<&TcpStream> {
        self.stream.tcp()
    }

    /// This connection's transcript so far.
    pub fn transcript(&mut self) -> &mut Connection {
        &mut self.t
    }

    /// Close the connection now (recorded as `ServerClosed`).
    pub fn close(&mut self) {
        self.close_abruptly();
        self.end.get_or_insert(Ending::ServerClosed);
    }

    // ----- crate-internal I/O -----

    /// Store the first ending; turn a result into an option.
    pub(crate) fn keep<T>(&mut self, r: Result<T, Ending>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.end.get_or_insert(e);
                None
            }
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.io_timeout
    }

    fn unread(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Read more client bytes into the buffer, flushing queued replies first.
    fn fill(&mut self) -> Result<(), Ending> {
        self.flush()?;
        if self.unread() >= MAX_BUFFER {
            return Err(Ending::Error(format!(
                "client sent more than {MAX_BUFFER} bytes without the server consuming them"
            )));
        }
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let deadline = Instant::now() + self.io_timeout;
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Ending::ClientDropped),
                Ok(n) => {
                    if self.unread() == 0 && self.wrote_since_read {
                        self.t.flights += 1;
                    }
                    self.t.flights = self.t.flights.max(1);
                    self.wrote_since_read = false;
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if is_timeout(&e) => {
                    if self.shutdown.load(Ordering::SeqCst) {
                        return Err(Ending::Abandoned);
                    }
                    if Instant::now() >= deadline {
                        return Err(Ending::Timeout);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Ending::ClientDropped),
            }
        }
    }

    /// One raw line including its LF (or all of it, if `max` is reached).
    pub(crate) fn raw_line(&mut self, max: usize) -> Result<Vec<u8>, Ending> {
        let mut scanned = 0;
        loop {
            let unread = &self.buf[self.start..];
            if let Some(pos) = unread[scanned..].iter().position(|&b| b == b'\n') {
                let end = self.start + scanned + pos + 1;
                let line = self.buf[self.start..end].to_vec();
                self.start = end;
                return Ok(line);
            }
            scanned = unread.len();
            if scanned >= max {
                let line = self.buf[self.start..self.start + max].to_vec();
                self.start += max;
                return Ok(line);
            }
            self.fill()?;
        }
    }

    /// Read and record one client line.
    pub(crate) fn client_line(&mut self, kind: LineKind) -> Result<ClientLine, Ending> {
        let raw = self.raw_line(MAX_COMMAND_LINE)?;
        if !raw.ends_with(b"\n") {
            return Err(Ending::Error(format!(
                "client line longer than {MAX_COMMAND_LINE} bytes"
            )));
        }
        let bare_lf = !raw.ends_with(b"\r\n");
        let body = &raw[..raw.len() - if bare_lf { 1 } else { 2 }];
        let line = ClientLine {
            text: String::from_utf8_lossy(body).into_owned(),
            tls: self.is_tls(),
            flight: self.t.flights,
            kind,
            bare_lf,
        };
        self.t.lines.push(line.clone());
        Ok(line)
    }

    /// Between 1 and `n` bytes, waiting for at least one.
    pub(crate) fn take_up_to(&mut self, n: usize) -> Result<Vec<u8>, Ending> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if self.unread() == 0 {
            self.fill()?;
        }
        let k = n.min(self.unread());
        let v = self.buf[self.start..self.start + k].to_vec();
        self.start += k;
        Ok(v)
    }

    /// Queue bytes to be sent before the server next blocks on a read.
    pub(crate) fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Queue a reply and record it in the transcript.
    pub(crate) fn queue_reply(&mut self, bytes: &[u8]) {
        self.record_reply(bytes);
        self.queue(bytes);
    }

    pub(crate) fn record_reply(&mut self, bytes: &[u8]) {
        let text = if bytes.len() > MAX_RECORDED_REPLY {
            format!("<raw: {} bytes>", bytes.len())
        } else {
            String::from_utf8_lossy(bytes).into_owned()
        };
        self.t.replies.push(text);
    }

    /// Send everything queued.
    pub(crate) fn flush(&mut self) -> Result<(), Ending> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        self.wrote_since_read = true;
        self.stream
            .write_all(&out)
            .map_err(|_| Ending::ClientDropped)
    }

    /// Client bytes buffered but not yet consumed; consumes them.
    pub(crate) fn discard_buffered(&mut self) -> Vec<u8> {
        let v = self.buf[self.start..].to_vec();
        self.buf.clear();
        self.start = 0;
        v
    }

    /// The server side of a TLS handshake (queued replies are flushed first).
    pub(crate) fn handshake(&mut self) -> Result<(), Ending> {
        self.flush()?;
        let mut builder = TlsAcceptor::builder(self.tls_config.identity.clone());
        builder
            .min_protocol_version(self.tls_config.min)
            .max_protocol_version(self.tls_config.max);
        let acceptor = builder
            .build()
            .map_err(|e| Ending::TlsFailed(format!("acceptor: {e}")))?;
        let tcp = match std::mem::replace(&mut self.stream, Stream::Gone) {
            Stream::Plain(tcp) => tcp,
            other => {
                self.stream = other;
                return Err(Ending::Error("TLS requested inside TLS".into()));
            }
        };
        let deadline = Instant::now() + self.io_timeout;
        let mut attempt = acceptor.accept(tcp);
        loop {
            match attempt {
                Ok(tls) => {
                    self.stream = Stream::Tls(Box::new(tls));
                    self.t.tls = true;
                    self.wrote_since_read = true;
                    return Ok(());
                }
                Err(HandshakeError::Failure(e)) => return Err(Ending::TlsFailed(e.to_string())),
                Err(HandshakeError::WouldBlock(mid)) => {
                    if self.shutdown.load(Ordering::SeqCst) {
                        return Err(Ending::Abandoned);
                    }
                    if Instant::now() >= deadline {
                        return Err(Ending::TlsFailed("handshake timed out".into()));
                    }
                    attempt = mid.handshake();
                }
            }
        }
    }

    /// Say and read nothing for `d` (after flushing queued replies). Ends
    /// early with `ClientDropped` when the client closes and nothing it sent
    /// is pending, or `Abandoned` when the test calls `finish()`.
    pub(crate) fn stall(&mut self, d: Duration) -> Result<(), Ending> {
        self.flush()?;
        let deadline = Instant::now() + d;
        let mut probe = [0u8; 1];
        while Instant::now() < deadline {
            if self.shutdown.load(Ordering::SeqCst) {
                return Err(Ending::Abandoned);
            }
            let Some(tcp) = self.stream.tcp() else {
                return Err(Ending::ClientDropped);
            };
            match tcp.peek(&mut probe) {
                Ok(0) => return Err(Ending::ClientDropped),
                Ok(_) => std::thread::sleep(POLL),
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Ending::ClientDropped),
            }
        }
        Ok(())
    }

    /// Send `bytes` one at a time, `interval` apart (after queued replies).
    pub(crate) fn drip(&mut self, bytes: &[u8], interval: Duration) -> Result<(), Ending> {
        self.flush()?;
        self.record_reply(bytes);
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(interval);
            }
            if self.shutdown.load(Ordering::SeqCst) {
                return Err(Ending::Abandoned);
            }
            self.wrote_since_read = true;
            self.stream
                .write_all(std::slice::from_ref(b))
                .map_err(|_| Ending::ClientDropped)?;
        }
        Ok(())
    }

    /// The orderly close after QUIT: flush, TLS close_notify, then as
    /// [`close_abruptly`](RawConn::close_abruptly).
    pub(crate) fn close_gracefully(&mut self) {
        let _ = self.flush();
        if let Stream::Tls(tls) = &mut self.stream {
            let _ = tls.shutdown();
        }
        self.close_abruptly();
    }

    /// Flush what can be flushed, send FIN, swallow what the client already
    /// sent (so the kernel sends FIN rather than RST), and drop the socket.
    pub(crate) fn close_abruptly(&mut self) {
        let _ = self.flush();
        if let Some(tcp) = self.stream.tcp() {
            let _ = tcp.shutdown(Shutdown::Write);
            if let Ok(mut tcp) = tcp.try_clone() {
                let _ = tcp.set_read_timeout(Some(Duration::from_millis(1)));
                let mut sink = [0u8; 64 * 1024];
                let mut total = 0;
                while total < MAX_BUFFER {
                    match tcp.read(&mut sink) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
            }
        }
        self.stream = Stream::Gone;
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
