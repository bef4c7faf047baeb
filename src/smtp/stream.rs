//! The connection: TCP, TLS or a Unix socket, with one read buffer and one
//! write buffer, deadlines on every wait, and the STARTTLS upgrade.
//!
//! Writes are queued and leave in one `write` per flush, so a pipelined
//! group of commands is one TCP segment train (with TCP_NODELAY, no 40 ms
//! delayed-ACK stall on a lone final line). Reads are line-bounded: a line
//! may be at most [`MAX_LINE_LEN`] bytes, and
//! each reply has a deadline, so a server that drips one byte a second
//! fails at the deadline instead of holding us forever.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use native_tls::{Certificate, Identity, Protocol, TlsConnector, TlsStream};
use sha2::{Digest, Sha256};

use super::Error;
use super::reply::MAX_LINE_LEN;

/// Size of the read buffer: larger than one maximal line, so a line always
/// fits once the buffer is compacted.
const READ_BUF: usize = MAX_LINE_LEN + 8192;

/// A write buffer is flushed once it holds this much (message data).
pub const WRITE_CHUNK: usize = 64 * 1024;

/// How the TLS side of a connection is set up.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// Verify the certificate chain and host name (default true through
    /// [`TlsOptions::new`]). Turning it off is only sensible with a
    /// fingerprint pin.
    pub verify: bool,
    /// Extra trust anchors (PEM), besides the system store.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server certificate (DER). When set, the certificate
    /// must match it; chain verification still applies unless `verify` is
    /// off.
    pub fingerprint: Option<[u8; 32]>,
    /// A client certificate (for EXTERNAL and relays that require one).
    pub identity: Option<Identity>,
    /// The name to verify and send as SNI; defaults to the host connected to.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("verify", &self.verify)
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint.map(hex))
            .field(
                "identity",
                &self.identity.as_ref().map(|_| "<client certificate>"),
            )
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsOptions {
    /// Verification on, system trust store, no client certificate.
    pub fn new() -> Self {
        TlsOptions {
            verify: true,
            ..Default::default()
        }
    }

    fn connector(&self) -> Result<TlsConnector, Error> {
        let mut b = TlsConnector::builder();
        b.min_protocol_version(Some(Protocol::Tlsv12));
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| Error::Tls(format!("cannot read CA file {}: {e}", path.display())))?;
            for cert in split_pem(&pem) {
                let c = Certificate::from_pem(cert).map_err(|e| {
                    Error::Tls(format!(
                        "bad certificate in CA file {}: {e}",
                        path.display()
                    ))
                })?;
                b.add_root_certificate(c);
            }
        }
        if !self.verify {
            b.danger_accept_invalid_certs(true);
            b.danger_accept_invalid_hostnames(true);
        }
        if let Some(id) = &self.identity {
            b.identity(id.clone());
        }
        b.build()
            .map_err(|e| Error::Tls(format!("cannot set up TLS: {e}")))
    }
}

/// Splits a PEM bundle into its certificate blocks (native-tls takes one
/// certificate per call).
fn split_pem(pem: &[u8]) -> Vec<&[u8]> {
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = find(rest, b"-----BEGIN CERTIFICATE-----") {
        let Some(end) = find(&rest[start..], END) else {
            break;
        };
        let stop = start + end + END.len();
        out.push(&rest[start..stop]);
        rest = &rest[stop..];
    }
    if out.is_empty() {
        out.push(pem);
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a TLS session negotiated, for `--serverinfo` and the log.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// SHA-256 of the server certificate's DER, lower-case hex.
    pub fingerprint_sha256: Option<String>,
    /// The server certificate's DER, for callers that want to decode it.
    pub certificate_der: Option<Vec<u8>>,
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(UnixStream),
    /// Only during the STARTTLS upgrade, when the TCP stream is moved.
    Upgrading,
}

impl Stream {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(t)),
            Stream::Tls(s) => s.get_ref().set_read_timeout(Some(t)),
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
            Stream::Upgrading => Ok(()),
        }
    }
    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
            Stream::Tls(s) => s.get_ref().set_write_timeout(Some(t)),
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
            Stream::Upgrading => Ok(()),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Upgrading => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf),
            Stream::Tls(s) => s.write_all(buf).and_then(|_| s.flush()),
            Stream::Unix(s) => s.write_all(buf),
            Stream::Upgrading => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A host name or IP literal and a port.
    Inet { host: String, port: u16 },
    /// A Unix domain socket (LMTP).
    Unix(PathBuf),
}

/// One open connection with its buffers.
pub struct Connection {
    stream: Stream,
    rbuf: Box<[u8]>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    timeout: Duration,
    peer_name: String,
    local_addr: Option<SocketAddr>,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Connection {
    /// Opens a TCP connection (trying each resolved address in turn within
    /// `connect_timeout`) or a Unix socket, with TCP_NODELAY set.
    pub fn open(
        target: &Target,
        source: Option<SocketAddr>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Connection, Error> {
        let (stream, peer_name, local_addr) = match target {
            Target::Unix(path) => {
                let s = UnixStream::connect(path)
                    .map_err(|e| Error::io(format!("cannot connect to {}", path.display()), e))?;
                (Stream::Unix(s), "localhost".to_owned(), None)
            }
            Target::Inet { host, port } => {
                let s = connect_tcp(host, *port, source, connect_timeout)?;
                s.set_nodelay(true)
                    .map_err(|e| Error::io("cannot set TCP_NODELAY", e))?;
                let local = s.local_addr().ok();
                (Stream::Tcp(s), host.clone(), local)
            }
        };
        Ok(Connection {
            stream,
            rbuf: vec![0; READ_BUF].into_boxed_slice(),
            rstart: 0,
            rend: 0,
            wbuf: Vec::with_capacity(WRITE_CHUNK + 8192),
            timeout,
            peer_name,
            local_addr,
        })
    }

    /// The local address of a TCP connection (for an address-literal EHLO).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Whether the connection is TLS-protected.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Whether the peer is this machine (a Unix socket or a loopback
    /// address): credentials may cross such a link without TLS.
    pub fn is_local(&self) -> bool {
        match &self.stream {
            Stream::Unix(_) => true,
            Stream::Tcp(s) => s.peer_addr().map(|a| a.ip().is_loopback()).unwrap_or(false),
            Stream::Tls(s) => s
                .get_ref()
                .peer_addr()
                .map(|a| a.ip().is_loopback())
                .unwrap_or(false),
            Stream::Upgrading => false,
        }
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Queues bytes for the next flush.
    pub fn queue(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// The write buffer, for encoders that append to it directly.
    pub fn write_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// Bytes queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.wbuf.len()
    }

    /// Sends everything queued in one write.
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.stream
            .set_write_timeout(self.timeout)
            .map_err(|e| Error::io("cannot set write timeout", e))?;
        let r = self.stream.write_all(&self.wbuf);
        self.wbuf.clear();
        r.map_err(|e| {
            if is_timeout(&e) {
                Error::Timeout(self.timeout.as_secs())
            } else if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::NotConnected
            ) {
                Error::ServerDisconnected(format!("connection lost while sending: {e}"))
            } else {
                Error::io("cannot send to server", e)
            }
        })
    }

    /// Whether unread bytes are buffered.
    pub fn has_buffered_input(&self) -> bool {
        self.rstart < self.rend
    }

    /// Drops every buffered byte the server sent (before a TLS handshake:
    /// nothing read in plaintext may be taken as a reply afterwards).
    pub fn discard_input(&mut self) {
        self.rstart = 0;
        self.rend = 0;
    }

    /// Reads one line (through LF), waiting at most until `deadline`.
    /// A line longer than `MAX_LINE_LEN` is a protocol error, detected
    /// without reading more than the buffer holds.
    pub fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(i) = self.rbuf[self.rstart..self.rend]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line = self.rbuf[self.rstart..self.rstart + i + 1].to_vec();
                self.rstart += i + 1;
                if line.len() > MAX_LINE_LEN {
                    return Err(Error::Protocol(format!(
                        "reply line longer than {MAX_LINE_LEN} bytes"
                    )));
                }
                return Ok(line);
            }
            if self.rend - self.rstart > MAX_LINE_LEN {
                return Err(Error::Protocol(format!(
                    "reply line longer than {MAX_LINE_LEN} bytes"
                )));
            }
            if self.rend == self.rbuf.len() {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout(self.timeout.as_secs()));
            }
            self.stream
                .set_read_timeout((deadline - now).max(Duration::from_millis(1)))
                .map_err(|e| Error::io("cannot set read timeout", e))?;
            let end = self.rend;
            match self.stream.read(&mut self.rbuf[end..]) {
                Ok(0) => {
                    return Err(Error::ServerDisconnected(
                        "connection unexpectedly closed".into(),
                    ));
                }
                Ok(n) => self.rend += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(Error::Timeout(self.timeout.as_secs())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(Error::ServerDisconnected(format!("connection reset: {e}")));
                }
                Err(e) => return Err(Error::io("cannot read from server", e)),
            }
        }
    }

    /// The deadline for the next reply.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Performs the TLS handshake over the existing TCP stream (STARTTLS,
    /// or implicit TLS right after connecting). Buffered plaintext is
    /// discarded first.
    pub fn start_tls(&mut self, opts: &TlsOptions) -> Result<(), Error> {
        self.discard_input();
        let connector = opts.connector()?;
        let name = opts
            .server_name
            .clone()
            .unwrap_or_else(|| self.peer_name.clone());
        let tcp = match std::mem::replace(&mut self.stream, Stream::Upgrading) {
            Stream::Tcp(s) => s,
            other => {
                self.stream = other;
                return Err(Error::Tls(
                    "TLS can only be started on a plain TCP connection".into(),
                ));
            }
        };
        // The handshake's waits are bounded like every other wait.
        let _ = tcp.set_read_timeout(Some(self.timeout));
        let _ = tcp.set_write_timeout(Some(self.timeout));
        let tls = connector.connect(&name, tcp).map_err(|e| match e {
            native_tls::HandshakeError::Failure(e) => {
                Error::Tls(format!("handshake with {name} failed: {e}"))
            }
            native_tls::HandshakeError::WouldBlock(_) => Error::Timeout(self.timeout.as_secs()),
        })?;
        if let Some(pin) = opts.fingerprint {
            let der = tls
                .peer_certificate()
                .ok()
                .flatten()
                .and_then(|c| c.to_der().ok())
                .ok_or_else(|| Error::Tls("server sent no certificate to check the pin".into()))?;
            let got: [u8; 32] = Sha256::digest(&der).into();
            if got != pin {
                return Err(Error::Tls(format!(
                    "server certificate fingerprint sha256:{} does not match the pinned sha256:{}",
                    hex(got),
                    hex(pin)
                )));
            }
        }
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// What the TLS session negotiated, if any.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        let Stream::Tls(s) = &self.stream else {
            return None;
        };
        let der = s
            .peer_certificate()
            .ok()
            .flatten()
            .and_then(|c| c.to_der().ok());
        Some(TlsInfo {
            fingerprint_sha256: der.as_ref().map(|d| hex(Sha256::digest(d))),
            certificate_der: der,
        })
    }

    /// Closes the connection; errors are of no interest at that point.
    pub fn shutdown(&mut self) {
        match &mut self.stream {
            Stream::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            Stream::Tls(s) => {
                let _ = s.shutdown();
                let _ = s.get_ref().shutdown(Shutdown::Both);
            }
            Stream::Unix(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            Stream::Upgrading => {}
        }
    }
}

fn connect_tcp(
    host: &str,
    port: u16,
    source: Option<SocketAddr>,
    timeout: Duration,
) -> Result<TcpStream, Error> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| Error::Resolve {
                host: host.to_owned(),
                source: e,
            })?
            .collect(),
    };
    let mut last = None;
    for addr in addrs {
        if let Some(src) = source
            && src.is_ipv4() != addr.is_ipv4()
        {
            continue;
        }
        match connect_one(addr, source, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) if is_timeout(&e) => Error::io(
            format!(
                "connecting to {addr} timed out after {} s",
                timeout.as_secs()
            ),
            e,
        ),
        Some((addr, e)) => Error::io(format!("cannot connect to {addr}"), e),
        None => Error::Resolve {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no usable address"),
        },
    })
}

fn connect_one(
    addr: SocketAddr,
    source: Option<SocketAddr>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let Some(src) = source else {
        return TcpStream::connect_timeout(&addr, timeout);
    };
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sock.bind(&src.into())?;
    sock.connect_timeout(&addr.into(), timeout)?;
    Ok(sock.into())
}

/// Splits smtplib's `"host:port"` form. A port given separately wins; a
/// bracketed IPv6 literal `[::1]:25` is unbracketed; a bare IPv6 address
/// (more than one colon, no brackets) is left whole. A path starting with
/// `/` is a Unix socket.
pub fn parse_target(host: &str, port: Option<u16>, default_port: u16) -> Result<Target, Error> {
    let host = host.trim();
    if host.starts_with('/') {
        return Ok(Target::Unix(Path::new(host).to_path_buf()));
    }
    let bad = |why: &str| Error::InvalidInput(format!("invalid host {host:?}: {why}"));
    let (name, embedded): (&str, Option<&str>) = if let Some(rest) = host.strip_prefix('[') {
        let close = rest.find(']').ok_or_else(|| bad("unterminated '['"))?;
        let after = &rest[close + 1..];
        let p = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("junk after ']'"))?,
            ),
        };
        (&rest[..close], p)
    } else if host.matches(':').count() == 1 {
        let (h, p) = host.split_once(':').unwrap_or((host, ""));
        (h, Some(p))
    } else {
        (host, None)
    };
    if name.is_empty() {
        return Err(bad("empty host name"));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(bad("white space or control characters"));
    }
    let port = match (port, embedded) {
        (Some(p), _) => p,
        (None, Some(p)) => p.parse().map_err(|_| bad("nonnumeric port"))?,
        (None, None) => default_port,
    };
    Ok(Target::Inet {
        host: name.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(h: &str, p: u16) -> Target {
        Target::Inet {
            host: h.into(),
            port: p,
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("mx.example", None, 25).unwrap(),
            inet("mx.example", 25)
        );
        assert_eq!(
            parse_target("mx.example:587", None, 25).unwrap(),
            inet("mx.example", 587)
        );
        assert_eq!(
            parse_target("mx.example:587", Some(2525), 25).unwrap(),
            inet("mx.example", 2525)
        );
        assert_eq!(
            parse_target("[::1]:2525", None, 25).unwrap(),
            inet("::1", 2525)
        );
        assert_eq!(parse_target("[::1]", None, 465).unwrap(), inet("::1", 465));
        assert_eq!(parse_target("::1", None, 25).unwrap(), inet("::1", 25));
        assert_eq!(
            parse_target("127.0.0.1:25", None, 587).unwrap(),
            inet("127.0.0.1", 25)
        );
        assert_eq!(
            parse_target("/run/dovecot/lmtp", None, 24).unwrap(),
            Target::Unix("/run/dovecot/lmtp".into())
        );
        for bad in ["mx:port", "[::1", "[::1]x", "", ":25", "a b"] {
            assert!(parse_target(bad, None, 25).is_err(), "{bad}");
        }
    }

    #[test]
    fn pem_bundle_split() {
        let one = b"-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n";
        let two = [&one[..], &one[..]].concat();
        assert_eq!(split_pem(&two).len(), 2);
        assert_eq!(split_pem(b"garbage").len(), 1);
    }
}
