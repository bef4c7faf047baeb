//! Reading the message as sendmail does: the traditional "." line that
//! ends input on standard input (unless -i/-oi), and spooling it to a file
//! so that it can be sized, sent in constant memory and sent again.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::smtp::BodyInfo;
use crate::smtp::data::BodyScanner;

/// Passes bytes through until a line that is a single "." (LF or CRLF
/// ended), which ends the input and is not part of the message. Memory is
/// one chunk, whatever the line lengths.
pub struct DotStop<R> {
    inner: R,
    at_line_start: bool,
    /// "." or ".\r" seen at a line start, not yet known to end the input.
    held: &'static [u8],
    done: bool,
    ready: Vec<u8>,
    ready_pos: usize,
    chunk: Box<[u8]>,
}

impl<R: Read> DotStop<R> {
    pub fn new(inner: R) -> Self {
        DotStop {
            inner,
            at_line_start: true,
            held: b"",
            done: false,
            ready: Vec::with_capacity(64 * 1024 + 2),
            ready_pos: 0,
            chunk: vec![0; 64 * 1024].into_boxed_slice(),
        }
    }

    fn push(&mut self, b: u8) {
        if !self.held.is_empty() {
            match (self.held, b) {
                (b".", b'\n') | (b".\r", b'\n') => {
                    self.done = true;
                    return;
                }
                (b".", b'\r') => {
                    self.held = b".\r";
                    return;
                }
                (held, _) => {
                    self.ready.extend_from_slice(held);
                    self.held = b"";
                    self.at_line_start = false;
                }
            }
        }
        if self.at_line_start && b == b'.' {
            self.held = b".";
            return;
        }
        self.ready.push(b);
        self.at_line_start = b == b'\n';
    }
}

impl<R: Read> Read for DotStop<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.ready_pos == self.ready.len() {
            if self.done {
                return Ok(0);
            }
            self.ready.clear();
            self.ready_pos = 0;
            let n = loop {
                match self.inner.read(&mut self.chunk) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            if n == 0 {
                // A lone "." on the last line, unterminated, ends it too.
                self.done = true;
                continue;
            }
            for i in 0..n {
                let b = self.chunk[i];
                self.push(b);
                if self.done {
                    break;
                }
            }
        }
        let n = out.len().min(self.ready.len() - self.ready_pos);
        out[..n].copy_from_slice(&self.ready[self.ready_pos..self.ready_pos + n]);
        self.ready_pos += n;
        Ok(n)
    }
}

/// A message copied to an unnamed temporary file (not the queue: that is
/// [`crate::queue::Spooled`]), with what the engine
/// needs to know before MAIL FROM.
pub struct TempMessage {
    file: File,
    pub info: BodyInfo,
    /// Bytes as stored (before CRLF normalisation).
    pub stored: u64,
}

impl TempMessage {
    /// Copies `input` to a temporary file while scanning it.
    pub fn from_reader(input: &mut dyn Read) -> io::Result<TempMessage> {
        let mut file = tempfile::tempfile()?;
        let (info, stored) = copy_scanning(input, &mut file)?;
        file.sync_data()?;
        Ok(TempMessage { file, info, stored })
    }

    /// A reader positioned at the start.
    pub fn reader(&mut self) -> io::Result<&mut File> {
        self.file.seek(SeekFrom::Start(0))?;
        Ok(&mut self.file)
    }
}

/// Copies in 64 KiB chunks, scanning size and 8-bit content on the way.
pub fn copy_scanning(input: &mut dyn Read, out: &mut dyn Write) -> io::Result<(BodyInfo, u64)> {
    let mut scanner = BodyScanner::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        scanner.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((scanner.finish(), total))
}

/// A reader fed by a thread, so that a wait for input has a timeout even
/// on a pipe or terminal (std has no timed read on stdin). Used by `-bs`,
/// where a silent client must not hold the process forever.
pub struct TimedReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    timeout: std::time::Duration,
    eof: bool,
}

impl TimedReader {
    /// Starts the reading thread. It ends with the input, or with the
    /// process.
    pub fn spawn(mut inner: Box<dyn Read + Send>, timeout: std::time::Duration) -> TimedReader {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let r = match inner.read(&mut buf) {
                    Ok(n) => Ok(buf[..n].to_vec()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let done = !matches!(&r, Ok(c) if !c.is_empty());
                if tx.send(r).is_err() || done {
                    return;
                }
            }
        });
        TimedReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
            timeout,
            eof: false,
        }
    }
}

impl Read for TimedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() {
            if self.eof {
                return Ok(0);
            }
            match self.rx.recv_timeout(self.timeout) {
                Ok(Ok(c)) if c.is_empty() => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(Ok(c)) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no input for {} s", self.timeout.as_secs()),
                    ));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    self.eof = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        DotStop::new(input).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn dot_line_ends_input() {
        assert_eq!(stop(b"a\n.\nb\n"), b"a\n");
        assert_eq!(stop(b"a\r\n.\r\nb\r\n"), b"a\r\n");
        assert_eq!(stop(b".\n"), b"");
        assert_eq!(stop(b"a\n."), b"a\n");
        assert_eq!(stop(b"a\n..\nb\n"), b"a\n..\nb\n");
        assert_eq!(stop(b"a\n.b\n.\r\n"), b"a\n.b\n");
        assert_eq!(stop(b"a.\n"), b"a.\n");
        assert_eq!(stop(b"a\n.\rx\n"), b"a\n.\rx\n");
        assert_eq!(stop(b"no dot line"), b"no dot line");
    }

    #[test]
    fn timed_reader_passes_data_and_times_out() {
        let mut r = TimedReader::spawn(Box::new(&b"abc"[..]), std::time::Duration::from_secs(5));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
        // A pipe whose writer stays open and silent.
        let (reader, _writer) = std::io::pipe().unwrap();
        let mut r = TimedReader::spawn(Box::new(reader), std::time::Duration::from_millis(100));
        let e = r.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        struct Bytewise<'a>(&'a [u8]);
        impl Read for Bytewise<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || out.is_empty() {
                    return Ok(0);
                }
                out[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut out = Vec::new();
        DotStop::new(Bytewise(b"x\n.y\n.\r\nafter"))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"x\n.y\n");
    }
}
