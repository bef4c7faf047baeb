//! The scripted server's thread: binds 127.0.0.1:0, serves connections one
//! after another according to their scripts, and hands the transcript back.
//!
//! Owns thread lifetime only. Every wait is bounded: accepting by the
//! script's I/O timeout, the whole run by [`ScriptedServer::finish`]'s join
//! timeout, so a broken client never hangs the test suite.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conn::{RawConn, TlsConfig};
use super::script::Script;
use super::session;
use super::tls::{CertKind, identity_of};
use super::transcript::Transcript;

/// How often the accept loop looks for a new connection.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Extra time `finish()` allows beyond the I/O timeout before it gives up.
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// A scripted SMTP/LMTP server on 127.0.0.1, running in its own thread.
///
/// ```ignore
/// let server = ScriptedServer::start(Script::new().reply_to("RCPT TO:<bad@x>", "550 5.1.1 no such user"));
/// // ... run the client against server.addr() ...
/// let t = server.finish();
/// assert_eq!(t.conn().messages[0].rcpt_refused, ["<bad@x>"]);
/// ```
pub struct ScriptedServer {
    addr: SocketAddr,
    shutdown: Arc<AtomicBool>,
    rx: mpsc::Receiver<Transcript>,
    handle: Option<JoinHandle<()>>,
    io_timeout: Duration,
}

impl ScriptedServer {
    /// Serve up to `script`'s `max_connections` connections, all with `script`.
    pub fn start(script: Script) -> ScriptedServer {
        let n = script.max_connections.max(1);
        ScriptedServer::spawn(vec![script], n)
    }

    /// Serve one connection per script, in order (connection i gets
    /// `scripts[i]`), e.g. a failing first attempt and a good retry.
    pub fn start_each(scripts: Vec<Script>) -> ScriptedServer {
        assert!(!scripts.is_empty(), "start_each needs at least one script");
        let n = scripts.len();
        ScriptedServer::spawn(scripts, n)
    }

    fn spawn(scripts: Vec<Script>, total: usize) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let io_timeout = scripts
            .iter()
            .map(|s| s.io_timeout)
            .max()
            .unwrap_or_default();
        let configs: Vec<TlsConfig> = scripts
            .iter()
            .map(|s| TlsConfig {
                identity: s
                    .identity
                    .clone()
                    .unwrap_or_else(|| identity_of(CertKind::Valid)),
                min: s.tls_min,
                max: s.tls_max,
            })
            .collect();
        let shutdown = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let flag = shutdown.clone();
        let handle = std::thread::Builder::new()
            .name(format!("scripted-smtp-{}", addr.port()))
            .spawn(move || {
                let t = serve_all(listener, &scripts, &configs, total, &flag);
                let _ = tx.send(t);
            })
            .expect("spawn server thread");
        ScriptedServer {
            addr,
            shutdown,
            rx,
            handle: Some(handle),
            io_timeout,
        }
    }

    /// The address to connect to (127.0.0.1 and an ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The test is done with the client: connections already made are still
    /// served, but any wait for the client ends now (recorded as
    /// `ClientDropped` if it has gone, `Abandoned` if it is still connected)
    /// and no new connection is awaited. Returns what the server saw.
    /// Panics if the server thread panicked or did not stop in time.
    pub fn finish(mut self) -> Transcript {
        self.shutdown.store(true, Ordering::SeqCst);
        self.collect(self.io_timeout + JOIN_GRACE)
    }

    /// For a client running in another thread: let the server run until it
    /// has served all its connections or `timeout` passes, then `finish()`.
    pub fn wait(mut self, timeout: Duration) -> Transcript {
        if let Ok(t) = self.rx.recv_timeout(timeout) {
            self.join();
            return t;
        }
        self.shutdown.store(true, Ordering::SeqCst);
        self.collect(self.io_timeout + JOIN_GRACE)
    }

    fn collect(&mut self, limit: Duration) -> Transcript {
        let started = Instant::now();
        match self.rx.recv_timeout(limit) {
            Ok(t) => {
                self.join();
                t
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let why = self
                    .handle
                    .take()
                    .and_then(|h| h.join().err())
                    .map(|p| panic_text(&*p))
                    .unwrap_or_default();
                panic!("scripted server thread died: {why}")
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "scripted server did not finish within {:?}",
                started.elapsed()
            ),
        }
    }

    fn join(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for ScriptedServer {
    /// Unfinished servers are told to stop; the thread is not waited for.
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".to_string()
    }
}

fn serve_all(
    listener: TcpListener,
    scripts: &[Script],
    configs: &[TlsConfig],
    total: usize,
    shutdown: &Arc<AtomicBool>,
) -> Transcript {
    let mut t = Transcript::default();
    for i in 0..total {
        let k = i.min(scripts.len() - 1);
        let script = &scripts[k];
        let deadline = Instant::now() + script.io_timeout;
        // A connection already waiting is served even after finish().
        let tcp = loop {
            match listener.accept() {
                Ok((tcp, _)) => break Some(tcp),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if shutdown.load(Ordering::SeqCst) || Instant::now() >= deadline {
                        break None;
                    }
                    std::thread::sleep(ACCEPT_POLL);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break None,
            }
        };
        let Some(tcp) = tcp else { break };
        match RawConn::new(
            tcp,
            i,
            script.io_timeout,
            shutdown.clone(),
            configs[k].clone(),
        ) {
            Ok(mut conn) => {
                session::serve(&mut conn, script);
                t.connections.push(conn.t);
            }
            Err(e) => {
                let c = super::transcript::Connection {
                    ending: super::transcript::Ending::Error(format!("socket setup: {e}")),
                    ..Default::default()
                };
                t.connections.push(c);
            }
        }
    }
    t
}
