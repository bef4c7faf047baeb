//! The connection: TCP, TLS or a Unix socket, with one read buffer and one
//! write buffer, one deadline per operation, and the STARTTLS upgrade.
//!
//! Writes are queued and leave in one `write` per flush, so a pipelined
//! group of commands is one TCP segment train (with TCP_NODELAY, no 40 ms
//! delayed-ACK stall on a lone final line). Reads are line-bounded: a line
//! may be at most [`MAX_LINE_LEN`] bytes.
//!
//! **Deadlines.** Every operation has one deadline, fixed when it starts:
//! a reply read, a flush of any size, name resolution, connecting to a host
//! (one budget across all its addresses), a TLS handshake. The socket sits
//! in a `Timed` wrapper that gives each system call only the time left,
//! so partial progress (a server that reads a little now and then, or drips
//! one byte a second) never restarts the clock.
//!
//! **TLS** is OpenSSL through the `openssl` crate, which native-tls already
//! linked on Linux. native-tls is not used for the client because its
//! connector reads and parses the whole system CA bundle
//! (`/etc/ssl/certs/ca-certificates.crt`, ~140 certificates) twice each time
//! one is built (`SslConnector::builder` loads the default paths, then
//! native-tls loads the probed bundle again): 95% of the instructions of a
//! STARTTLS send. Here the system store is OpenSSL's hashed directory
//! (`SSL_CERT_DIR`, else `/etc/ssl/certs`), from which only the certificates
//! a chain needs are read, at verification time (see `system_trust`); the context is built once per process per set of
//! options and reused (a queue run reconnects without building it again).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    ErrorCode, HandshakeError, Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslMode,
    SslOptions, SslRef, SslStream, SslVerifyMode, SslVersion,
};
use openssl::x509::store::X509Lookup;
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509, X509VerifyResult};
use sha2::{Digest, Sha256};

use super::Error;
use super::reply::MAX_LINE_LEN;

/// Size of the read buffer: larger than one maximal line, so a line always
/// fits once the buffer is compacted.
const READ_BUF: usize = MAX_LINE_LEN + 8192;

/// A write buffer is flushed once it holds this much (message data).
pub const WRITE_CHUNK: usize = 64 * 1024;

/// How far a system call may outlive its operation's deadline: the socket
/// timeout is set again only when the time left has shrunk by more than
/// this, so a stream of small writes costs no `setsockopt` each.
const DEADLINE_SLACK: Duration = Duration::from_millis(50);

/// The system's hashed CA directories, in the order they are tried when
/// `SSL_CERT_DIR` is not set (Debian and derivatives, Alpine, Arch; Fedora
/// and RHEL).
const SYSTEM_CA_DIRS: &[&str] = &[
    "/etc/ssl/certs",
    "/etc/pki/ca-trust/extracted/pem/directory-hash",
];

/// Most TLS contexts kept for reuse in one process (one per distinct set of
/// TLS options; a process uses one or two).
const MAX_CACHED_CONTEXTS: usize = 8;

/// A client certificate with its private key (for EXTERNAL and relays that
/// require one).
#[derive(Clone)]
pub struct Identity {
    cert: X509,
    key: PKey<Private>,
    chain: Vec<X509>,
}

/// Why a client certificate could not be used.
#[derive(Debug, Clone)]
pub struct IdentityError(String);

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IdentityError {}

impl Identity {
    /// A PEM certificate (optionally followed by its chain) and a PEM
    /// PKCS#8 private key (`BEGIN PRIVATE KEY`).
    pub fn from_pkcs8(pem: &[u8], key: &[u8]) -> Result<Identity, IdentityError> {
        let bad = |e: openssl::error::ErrorStack| IdentityError(e.to_string());
        if !key.windows(21).any(|w| w == b"BEGIN PRIVATE KEY----") {
            return Err(IdentityError("the key is not PEM PKCS#8".into()));
        }
        let mut certs = X509::stack_from_pem(pem).map_err(bad)?.into_iter();
        let cert = certs
            .next()
            .ok_or_else(|| IdentityError("no certificate in the PEM file".into()))?;
        let key = PKey::private_key_from_pem(key).map_err(bad)?;
        Ok(Identity {
            cert,
            key,
            chain: certs.collect(),
        })
    }

    /// A PKCS#12 archive (DER) and its password.
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Identity, IdentityError> {
        let bad = |e: openssl::error::ErrorStack| IdentityError(e.to_string());
        let p = openssl::pkcs12::Pkcs12::from_der(der)
            .map_err(bad)?
            .parse2(password)
            .map_err(bad)?;
        let (Some(cert), Some(key)) = (p.cert, p.pkey) else {
            return Err(IdentityError(
                "the PKCS#12 archive holds no certificate with a key".into(),
            ));
        };
        Ok(Identity {
            cert,
            key,
            chain: p.ca.map(|s| s.into_iter().collect()).unwrap_or_default(),
        })
    }

    fn digest(&self) -> String {
        self.cert.to_der().map(hex_sha256).unwrap_or_default()
    }
}

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

    /// The OpenSSL context for these options: built on first use, then
    /// shared by every later connection of the process.
    fn context(&self) -> Result<SslContext, Error> {
        static CACHE: Mutex<Vec<(String, SslContext)>> = Mutex::new(Vec::new());
        let key = format!(
            "{}|{:?}|{}",
            self.verify,
            self.ca_file,
            self.identity
                .as_ref()
                .map(Identity::digest)
                .unwrap_or_default()
        );
        let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, ctx)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(ctx.clone());
        }
        let ctx = self.build_context()?;
        if cache.len() >= MAX_CACHED_CONTEXTS {
            cache.remove(0);
        }
        cache.push((key, ctx.clone()));
        Ok(ctx)
    }

    fn build_context(&self) -> Result<SslContext, Error> {
        #[cfg(test)]
        CONTEXTS_BUILT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let setup = |e: openssl::error::ErrorStack| Error::Tls(format!("cannot set up TLS: {e}"));
        let mut b = SslContextBuilder::new(SslMethod::tls_client()).map_err(setup)?;
        // What openssl's SslConnector sets, minus its eager trust load.
        let mut o = SslOptions::ALL
            | SslOptions::NO_COMPRESSION
            | SslOptions::NO_SSLV2
            | SslOptions::NO_SSLV3;
        o &= !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
        b.set_options(o);
        b.set_mode(
            SslMode::AUTO_RETRY
                | SslMode::ACCEPT_MOVING_WRITE_BUFFER
                | SslMode::ENABLE_PARTIAL_WRITE
                | SslMode::RELEASE_BUFFERS,
        );
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(setup)?;
        if self.verify {
            b.set_verify(SslVerifyMode::PEER);
            system_trust(&mut b).map_err(setup)?;
            if let Some(path) = &self.ca_file {
                b.load_verify_locations(Some(path), None).map_err(|e| {
                    Error::TlsCertificate(format!(
                        "cannot load the CA file {}: {e}",
                        path.display()
                    ))
                })?;
            }
        } else {
            b.set_verify(SslVerifyMode::NONE);
        }
        if let Some(id) = &self.identity {
            b.set_certificate(&id.cert).map_err(setup)?;
            b.set_private_key(&id.key).map_err(setup)?;
            for c in &id.chain {
                b.add_extra_chain_cert(c.clone()).map_err(setup)?;
            }
            b.check_private_key().map_err(setup)?;
        }
        Ok(b.build())
    }
}

/// How many contexts this (test) process built.
#[cfg(test)]
static CONTEXTS_BUILT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The system trust store, looked up lazily whenever possible:
/// `SSL_CERT_DIR` when set (a hashed directory: only the certificates a
/// chain needs are read), else `SSL_CERT_FILE` when set (a bundle, parsed
/// whole: the user asked for it), else the first hashed system directory
/// that exists, else OpenSSL's defaults (which parse the bundle). When both
/// variables are set (containers often point them at the same store) the
/// directory wins: reading it costs one small file per issuer instead of
/// ~140 certificates.
fn system_trust(b: &mut SslContextBuilder) -> Result<(), openssl::error::ErrorStack> {
    if let Some(dir) = std::env::var_os("SSL_CERT_DIR") {
        let dir = dir.to_string_lossy();
        return b
            .cert_store_mut()
            .add_lookup(X509Lookup::hash_dir())?
            .add_dir(&dir, SslFiletype::PEM);
    }
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return b.load_verify_locations(Some(Path::new(&file)), None);
    }
    static HASHED: OnceLock<Option<&'static str>> = OnceLock::new();
    let hashed = HASHED.get_or_init(|| {
        SYSTEM_CA_DIRS
            .iter()
            .copied()
            .find(|d| is_hashed_dir(Path::new(d)))
    });
    match hashed {
        Some(d) => b
            .cert_store_mut()
            .add_lookup(X509Lookup::hash_dir())?
            .add_dir(d, SslFiletype::PEM),
        None => b.set_default_verify_paths(),
    }
}

/// Whether `dir` holds OpenSSL subject-hash links (`1234abcd.0`).
fn is_hashed_dir(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let n = e.file_name();
        let n = n.as_encoded_bytes();
        n.len() >= 10
            && n[8] == b'.'
            && n[..8].iter().all(u8::is_ascii_hexdigit)
            && n[9..].iter().all(u8::is_ascii_digit)
    })
}

pub(crate) fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_sha256(der: Vec<u8>) -> String {
    hex(Sha256::digest(der))
}

/// What a TLS session negotiated, for `--serverinfo` and the log.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// SHA-256 of the server certificate's DER, lower-case hex.
    pub fingerprint_sha256: Option<String>,
    /// The server certificate's DER, for callers that want to decode it.
    pub certificate_der: Option<Vec<u8>>,
    /// The protocol version, e.g. `TLSv1.3`.
    pub protocol: String,
    /// The cipher suite, e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: Option<String>,
}

/// A socket whose waits can be bounded.
trait Socket: Read + Write {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Socket for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, t)
    }
}

impl Socket for UnixStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, t)
    }
}

/// A socket under the current operation's deadline: each read or write
/// gets only the time left (a timeout is `TimedOut`), however many system
/// calls the operation takes.
struct Timed<S> {
    inner: S,
    deadline: Instant,
    read_set: Option<Duration>,
    write_set: Option<Duration>,
}

impl<S: Socket> Timed<S> {
    fn new(inner: S) -> Self {
        Timed {
            inner,
            deadline: Instant::now(),
            read_set: None,
            write_set: None,
        }
    }

    fn left(&self) -> io::Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
    }

    /// Whether a socket timeout of `last` would let a call run past the
    /// deadline by more than the slack (or end it too early).
    fn stale(last: Option<Duration>, left: Duration) -> bool {
        last.is_none_or(|l| left > l || l - left > DEADLINE_SLACK)
    }
}

fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, e)
    } else {
        e
    }
}

impl<S: Socket> Read for Timed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        if Self::stale(self.read_set, left) {
            self.inner.set_read_timeout(Some(left))?;
            self.read_set = Some(left);
        }
        self.inner.read(buf).map_err(timed_out)
    }
}

impl<S: Socket> Write for Timed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        if Self::stale(self.write_set, left) {
            self.inner.set_write_timeout(Some(left))?;
            self.write_set = Some(left);
        }
        self.inner.write(buf).map_err(timed_out)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Stream {
    Tcp(Timed<TcpStream>),
    Tls(Box<SslStream<Timed<TcpStream>>>),
    Unix(Timed<UnixStream>),
    /// Only during the STARTTLS upgrade, when the TCP stream is moved.
    Upgrading,
}

impl Stream {
    fn set_deadline(&mut self, d: Instant) {
        match self {
            Stream::Tcp(s) => s.deadline = d,
            Stream::Tls(s) => s.get_mut().deadline = d,
            Stream::Unix(s) => s.deadline = d,
            Stream::Upgrading => {}
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
    Inet {
        /// The name or address literal.
        host: String,
        /// The TCP port.
        port: u16,
    },
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
    /// The budget of the operation in progress (for its timeout error).
    op_timeout: Duration,
    peer_name: String,
    local_addr: Option<SocketAddr>,
    local_peer: bool,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Connection {
    /// Opens a TCP connection or a Unix socket, with TCP_NODELAY set.
    /// Resolving the name and connecting share one budget,
    /// `connect_timeout`, across every address of the host (each address
    /// gets the time left, not a fresh budget). `timeout` bounds each later
    /// step.
    pub fn open(
        target: &Target,
        source: Option<SocketAddr>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Connection, Error> {
        let deadline = Instant::now() + connect_timeout;
        let (stream, peer_name, local_addr, local_peer) = match target {
            Target::Unix(path) => {
                let s = UnixStream::connect(path)
                    .map_err(|e| Error::io(format!("cannot connect to {}", path.display()), e))?;
                (
                    Stream::Unix(Timed::new(s)),
                    "localhost".to_owned(),
                    None,
                    true,
                )
            }
            Target::Inet { host, port } => {
                let s = connect_tcp(host, *port, source, deadline, connect_timeout)?;
                s.set_nodelay(true)
                    .map_err(|e| Error::io("cannot set TCP_NODELAY", e))?;
                let local = s.local_addr().ok();
                let loopback = s.peer_addr().is_ok_and(|a| a.ip().is_loopback());
                (Stream::Tcp(Timed::new(s)), host.clone(), local, loopback)
            }
        };
        Ok(Connection {
            stream,
            rbuf: vec![0; READ_BUF].into_boxed_slice(),
            rstart: 0,
            rend: 0,
            wbuf: Vec::with_capacity(WRITE_CHUNK + 8192),
            timeout,
            op_timeout: timeout,
            peer_name,
            local_addr,
            local_peer,
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
        self.local_peer
    }

    /// Sets the budget of each later step.
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

    /// Sends everything queued, within one step's timeout for the whole
    /// flush however many partial writes it takes.
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let secs = self.timeout.as_secs();
        self.stream.set_deadline(Instant::now() + self.timeout);
        let r = self.stream.write_all(&self.wbuf);
        self.wbuf.clear();
        r.map_err(|e| {
            if is_timeout(&e) {
                Error::Timeout(secs)
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
            self.stream.set_deadline(deadline);
            let end = self.rend;
            match self.stream.read(&mut self.rbuf[end..]) {
                Ok(0) => {
                    return Err(Error::ServerDisconnected(
                        "connection unexpectedly closed".into(),
                    ));
                }
                Ok(n) => self.rend += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(Error::Timeout(self.op_timeout.as_secs())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(Error::ServerDisconnected(format!("connection reset: {e}")));
                }
                Err(e) => return Err(Error::io("cannot read from server", e)),
            }
        }
    }

    /// The deadline for the next reply: one step's timeout from now.
    pub fn deadline(&mut self) -> Instant {
        self.deadline_in(self.timeout)
    }

    /// The deadline for a reply with its own budget (the reply to the end
    /// of the data).
    pub fn deadline_in(&mut self, budget: Duration) -> Instant {
        self.op_timeout = budget;
        Instant::now() + budget
    }

    /// Performs the TLS handshake over the existing TCP stream (STARTTLS,
    /// or implicit TLS right after connecting), within one step's timeout.
    /// Buffered plaintext is discarded first.
    ///
    /// Failures are typed: a certificate that does not verify or does not
    /// match the pin is [`Error::TlsCertificate`]; a server that does not
    /// speak TLS here, or not a version we accept, is
    /// [`Error::TlsMismatch`]; a handshake cut short (I/O, a server alert)
    /// is [`Error::Tls`], transient; running out of time is
    /// [`Error::Timeout`].
    pub fn start_tls(&mut self, opts: &TlsOptions) -> Result<(), Error> {
        self.discard_input();
        let ctx = opts.context()?;
        let name = opts
            .server_name
            .clone()
            .unwrap_or_else(|| self.peer_name.clone());
        let setup = |e: openssl::error::ErrorStack| Error::Tls(format!("cannot set up TLS: {e}"));
        let mut ssl = Ssl::new(&ctx).map_err(setup)?;
        let ip = name.parse::<IpAddr>().ok();
        if ip.is_none() {
            ssl.set_hostname(&name).map_err(setup)?;
        }
        if opts.verify {
            let p = ssl.param_mut();
            p.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
            match ip {
                Some(ip) => p.set_ip(ip).map_err(setup)?,
                None => p.set_host(&name).map_err(setup)?,
            }
        }
        let mut tcp = match std::mem::replace(&mut self.stream, Stream::Upgrading) {
            Stream::Tcp(s) => s,
            other => {
                self.stream = other;
                return Err(Error::TlsMismatch(
                    "TLS can only be started on a plain TCP connection".into(),
                ));
            }
        };
        tcp.deadline = self.deadline();
        let secs = self.timeout.as_secs();
        let tls = ssl
            .connect(tcp)
            .map_err(|e| handshake_error(e, &name, secs))?;
        if let Some(pin) = opts.fingerprint {
            let der = tls
                .ssl()
                .peer_certificate()
                .and_then(|c| c.to_der().ok())
                .ok_or_else(|| {
                    Error::TlsCertificate(format!(
                        "{name} sent no certificate to check the pin against"
                    ))
                })?;
            let got: [u8; 32] = Sha256::digest(&der).into();
            if got != pin {
                return Err(Error::TlsCertificate(format!(
                    "the certificate of {name} has fingerprint sha256:{}, not the pinned sha256:{}",
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
        let ssl: &SslRef = s.ssl();
        let der = ssl.peer_certificate().and_then(|c| c.to_der().ok());
        Some(TlsInfo {
            fingerprint_sha256: der.clone().map(hex_sha256),
            certificate_der: der,
            protocol: ssl.version_str().to_owned(),
            cipher: ssl.current_cipher().map(|c| c.name().to_owned()),
        })
    }

    /// Closes the connection; errors are of no interest at that point.
    pub fn shutdown(&mut self) {
        self.stream
            .set_deadline(Instant::now() + DEADLINE_SLACK * 20);
        match &mut self.stream {
            Stream::Tcp(s) => {
                let _ = s.inner.shutdown(Shutdown::Both);
            }
            Stream::Tls(s) => {
                let _ = s.shutdown();
                let _ = s.get_ref().inner.shutdown(Shutdown::Both);
            }
            Stream::Unix(s) => {
                let _ = s.inner.shutdown(Shutdown::Both);
            }
            Stream::Upgrading => {}
        }
    }
}

/// Names why a handshake failed, in the class that decides what to do:
/// fix trust (certificate), fix `--tls` (mismatch), or try again / the
/// next host (I/O, alerts).
fn handshake_error<S>(e: HandshakeError<S>, name: &str, secs: u64) -> Error {
    let (ssl_error, verify) = match &e {
        HandshakeError::SetupFailure(e) => return Error::Tls(format!("cannot set up TLS: {e}")),
        HandshakeError::Failure(m) | HandshakeError::WouldBlock(m) => {
            (m.error(), m.ssl().verify_result())
        }
    };
    if ssl_error.io_error().is_some_and(is_timeout) {
        return Error::Timeout(secs);
    }
    if verify != X509VerifyResult::OK {
        return Error::TlsCertificate(format!(
            "the certificate of {name} does not verify: {}",
            verify.error_string()
        ));
    }
    let reasons: Vec<&str> = ssl_error
        .ssl_error()
        .map(|s| s.errors().iter().filter_map(|e| e.reason()).collect())
        .unwrap_or_default();
    const MISMATCH: &[&str] = &[
        "wrong version number",
        "unknown protocol",
        "packet length too long",
        "http request",
        "record layer failure",
        "unsupported protocol",
        "protocol version",
        "no protocols available",
    ];
    if let Some(r) = reasons
        .iter()
        .find(|r| MISMATCH.iter().any(|m| r.contains(m)))
    {
        return Error::TlsMismatch(format!("{name} does not speak TLS 1.2 or later here ({r})"));
    }
    let what = match ssl_error.code() {
        ErrorCode::SYSCALL | ErrorCode::ZERO_RETURN => match ssl_error.io_error() {
            Some(io) => format!("connection lost during the handshake: {io}"),
            None => "connection closed during the handshake".to_owned(),
        },
        _ if !reasons.is_empty() => reasons.join("; "),
        _ => ssl_error.to_string(),
    };
    Error::Tls(format!("handshake with {name} failed: {what}"))
}

/// Resolves `host` within the budget: getaddrinfo has no timeout of its
/// own, so it runs on a helper thread that is abandoned (and ends on its
/// own) when the budget runs out.
fn resolve(
    host: &str,
    port: u16,
    deadline: Instant,
    budget: Duration,
) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_owned();
    let spawned = std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send(
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect),
            );
        });
    let failed = |source: io::Error| Error::Resolve {
        host: host.to_owned(),
        source,
    };
    if spawned.is_err() {
        return (host, port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(failed);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left) {
        Ok(r) => r.map_err(failed),
        Err(_) => Err(failed(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {} s", budget.as_secs()),
        ))),
    }
}

fn connect_tcp(
    host: &str,
    port: u16,
    source: Option<SocketAddr>,
    deadline: Instant,
    budget: Duration,
) -> Result<TcpStream, Error> {
    let addrs = resolve(host, port, deadline, budget)?;
    let mut last = None;
    for addr in addrs {
        if let Some(src) = source
            && src.is_ipv4() != addr.is_ipv4()
        {
            continue;
        }
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        else {
            last = Some((
                addr,
                io::Error::new(io::ErrorKind::TimedOut, "no time left"),
            ));
            break;
        };
        match connect_one(addr, source, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) if is_timeout(&e) => Error::io(
            format!(
                "connecting to {host} ({addr}) timed out after {} s",
                budget.as_secs()
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

    /// A socket that takes a few bytes per write and records the timeout
    /// it was given before each call, taking `per_call` each time.
    struct Slow {
        per_call: Duration,
        seen: std::cell::RefCell<Vec<Duration>>,
        calls: std::cell::Cell<usize>,
    }

    impl Read for Slow {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.per_call);
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    impl Write for Slow {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.calls.set(self.calls.get() + 1);
            std::thread::sleep(self.per_call);
            Ok(b.len().min(10))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Socket for Slow {
        fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
            self.seen.borrow_mut().extend(t);
            Ok(())
        }
        fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
            self.seen.borrow_mut().extend(t);
            Ok(())
        }
    }

    /// Partial progress never restarts the clock: every system call of one
    /// flush gets at most what is left of the one budget, and the flush
    /// fails once it is spent, after a bounded number of calls.
    #[test]
    fn one_deadline_for_a_write_of_many_partial_writes() {
        let budget = Duration::from_millis(200);
        let mut t = Timed::new(Slow {
            per_call: Duration::from_millis(20),
            seen: Default::default(),
            calls: Default::default(),
        });
        t.deadline = Instant::now() + budget;
        let e = t.write_all(&[b'x'; 100_000]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let seen = t.inner.seen.borrow().clone();
        assert!(!seen.is_empty() && seen[0] <= budget);
        assert!(seen.windows(2).all(|w| w[1] < w[0]), "{seen:?}");
        // 200 ms of 20 ms calls: about 10, never the 10,000 a restarting
        // clock would allow.
        assert!(t.inner.calls.get() <= 11, "{}", t.inner.calls.get());
    }

    #[test]
    fn a_read_past_its_deadline_is_a_timeout() {
        let mut t = Timed::new(Slow {
            per_call: Duration::ZERO,
            seen: Default::default(),
            calls: Default::default(),
        });
        t.deadline = Instant::now();
        let e = t.read(&mut [0; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        t.deadline = Instant::now() + Duration::from_secs(1);
        let e = t.read(&mut [0; 4]).unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::TimedOut,
            "WouldBlock becomes TimedOut"
        );
    }

    /// One context per set of options per process: a queue run that
    /// reconnects, or a second STARTTLS, does not load the trust store again.
    #[test]
    fn one_context_per_options() {
        use std::sync::atomic::Ordering::SeqCst;
        let before = CONTEXTS_BUILT.load(SeqCst);
        let a = TlsOptions::new();
        let b = TlsOptions {
            verify: false,
            ..TlsOptions::new()
        };
        for _ in 0..3 {
            a.context().unwrap();
            b.context().unwrap();
        }
        assert_eq!(CONTEXTS_BUILT.load(SeqCst) - before, 2);
    }

    #[test]
    fn hashed_dir_detection() {
        let d = tempfile::tempdir().unwrap();
        assert!(!is_hashed_dir(d.path()));
        std::fs::write(d.path().join("ca-bundle.crt"), b"").unwrap();
        assert!(!is_hashed_dir(d.path()));
        std::fs::write(d.path().join("002c0b4f.0"), b"").unwrap();
        assert!(is_hashed_dir(d.path()));
        assert!(!is_hashed_dir(&d.path().join("missing")));
    }
}
