//! The log line: one per message, with the fields an administrator greps
//! for, as `key=value` pairs in the manner of Postfix and msmtp:
//!
//! ```text
//! time=2023-11-14T22:13:20Z tag=smtpsend profile=work status=sent relay=smtp.example.org from=<me@example.org> size=1234 nrcpt=2 duration_ms=842 reply="250 2.0.0 Ok: queued as 4TbX" to=<a@example.org>,<b@example.org>
//! ```
//!
//! Times are RFC 3339 in UTC (`Z`): unambiguous across time zones and
//! daylight-saving changes, sortable as text, and needing no zone file.
//! A value is quoted when it is empty or holds a space, a quote or a
//! backslash; control characters in any field are escaped (`\n`,
//! `\u{1b}`), so a hostile server reply cannot forge a log line. The
//! recipient list comes last, so that a cut line loses recipients before
//! it loses the status.
//!
//! This owns the format and the three targets: a file (appended to with
//! `O_APPEND`, one write per line; never through a symlink, created 0600
//! whatever the umask, and only ever one of our own: see `append`'s
//! rules), syslog (RFC 3164 over the local
//! `/dev/log` datagram socket, facility mail), and standard error. It must
//! never make a send fail: [`write_or_fallback`] falls back from the file
//! to syslog to standard error and only returns a notice. Nothing secret
//! is ever passed in.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::queue::files as queue_files;

/// The tag when `-L` is not given.
pub const DEFAULT_TAG: &str = "smtpsend";

/// The local syslog socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// Permissions of a log file we create (set exactly, whatever the
/// umask): recipients and senders are personal data.
pub const LOG_FILE_MODE: u32 = 0o600;

/// How long a send to a stalled syslog daemon may block.
pub const SYSLOG_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest syslog message, in bytes; longer ones are cut (rsyslog's
/// default limit is 8 KiB).
pub const MAX_SYSLOG_BYTES: usize = 8192;

/// Longest value of one field (the recipient list excepted), in
/// characters; longer ones are cut and end in `...`.
pub const MAX_VALUE_CHARS: usize = 1000;

/// Longest syslog tag (RFC 3164 §4.1.3).
const MAX_TAG_CHARS: usize = 32;

const FACILITY_MAIL: u8 = 2;
const SEVERITY_ERR: u8 = 3;
const SEVERITY_INFO: u8 = 6;

/// What became of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The relay accepted it.
    Sent,
    /// Kept in the queue for a later run.
    Queued,
    /// A transient failure; it will be tried again.
    Deferred,
    /// Refused for good; a bounce or dead.letter has it.
    Bounced,
    /// Not sent and not kept.
    Failed,
    /// Delivered on this machine (Maildir).
    Local,
}

impl Status {
    /// The word in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Queued => "queued",
            Status::Deferred => "deferred",
            Status::Bounced => "bounced",
            Status::Failed => "failed",
            Status::Local => "local",
        }
    }

    /// Whether syslog should see it as an error.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Bounced | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `key=value` pairs, as Postfix and msmtp write them.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// One message's line.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Text or JSON.
    pub format: Format,
    /// `-L`, else [`DEFAULT_TAG`].
    pub tag: &'a str,
    pub profile: &'a str,
    /// The host that took (or refused) it; `None` when none was reached
    /// or the delivery was local.
    pub relay: Option<&'a str>,
    /// The envelope sender; `""` is the null sender.
    pub sender: &'a str,
    pub recipients: &'a [String],
    /// Bytes of the message.
    pub size: u64,
    pub status: Status,
    /// The server's final reply, as one line.
    pub reply: Option<&'a str>,
    /// From the start of the run to the outcome.
    pub duration: Duration,
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File(PathBuf),
    Syslog,
    Stderr,
}

/// A line that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot write the log file {}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    #[error("cannot log to syslog at {}: {source}", socket.display())]
    Syslog { socket: PathBuf, source: io::Error },
    #[error("cannot log to standard error: {0}")]
    Stderr(io::Error),
}

/// Writes the line to `target` only. Never panics.
pub fn write(target: &Target, entry: &Entry) -> Result<(), LogError> {
    let mut stderr = io::stderr();
    write_to(target, entry, &mut Sinks::system(&mut stderr))
}

/// Writes the line to `target`, falling back from a file to syslog and
/// from syslog to standard error. Returns a notice for the user when it
/// had to fall back (or lost the line); `None` when all went as asked.
pub fn write_or_fallback(target: &Target, entry: &Entry) -> Option<String> {
    let mut stderr = io::stderr();
    write_or_fallback_to(target, entry, &mut Sinks::system(&mut stderr))
}

/// The file form: `time=… tag=… ` and the fields, without a line end; in
/// JSON, one object with `time` and `tag` first.
pub fn format_line(entry: &Entry, unix_seconds: i64) -> String {
    if entry.format == Format::Json {
        let fields = format_fields(entry);
        let mut line = String::from("{\"time\":");
        push_json(&mut line, &rfc3339_utc(unix_seconds), MAX_VALUE_CHARS);
        line.push_str(",\"tag\":");
        push_json(&mut line, entry.tag, MAX_VALUE_CHARS);
        line.push(',');
        line.push_str(&fields[1..]);
        return line;
    }
    let mut line = format!("time={} tag=", rfc3339_utc(unix_seconds));
    push_value(&mut line, entry.tag, MAX_VALUE_CHARS);
    line.push(' ');
    line.push_str(&format_fields(entry));
    line
}

/// The fields after time and tag (the syslog message): `key=value` pairs,
/// or a JSON object.
pub fn format_fields(entry: &Entry) -> String {
    if entry.format == Format::Json {
        return json_fields(entry);
    }
    let mut out = String::new();
    let mut field = |key: &str, value: &str, max: usize| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        push_value(&mut out, value, max);
    };
    field("profile", entry.profile, MAX_VALUE_CHARS);
    field("status", entry.status.as_str(), MAX_VALUE_CHARS);
    if let Some(relay) = entry.relay {
        field("relay", relay, MAX_VALUE_CHARS);
    }
    field("from", &format!("<{}>", entry.sender), MAX_VALUE_CHARS);
    field("size", &entry.size.to_string(), MAX_VALUE_CHARS);
    field(
        "nrcpt",
        &entry.recipients.len().to_string(),
        MAX_VALUE_CHARS,
    );
    field(
        "duration_ms",
        &entry.duration.as_millis().to_string(),
        MAX_VALUE_CHARS,
    );
    if let Some(reply) = entry.reply {
        field("reply", reply, MAX_VALUE_CHARS);
    }
    let to: Vec<String> = entry.recipients.iter().map(|r| format!("<{r}>")).collect();
    field("to", &to.join(","), usize::MAX);
    out
}

/// The fields as one JSON object; numbers as numbers, the recipients as
/// an array.
fn json_fields(entry: &Entry) -> String {
    let mut out = String::from("{");
    let mut field = |key: &str, value: &str| {
        if out.len() > 1 {
            out.push(',');
        }
        push_json(&mut out, key, MAX_VALUE_CHARS);
        out.push(':');
        push_json(&mut out, value, MAX_VALUE_CHARS);
    };
    field("profile", entry.profile);
    field("status", entry.status.as_str());
    if let Some(relay) = entry.relay {
        field("relay", relay);
    }
    field("from", &format!("<{}>", entry.sender));
    if let Some(reply) = entry.reply {
        field("reply", reply);
    }
    out.push_str(&format!(
        ",\"size\":{},\"nrcpt\":{},\"duration_ms\":{},\"to\":[",
        entry.size,
        entry.recipients.len(),
        entry.duration.as_millis()
    ));
    for (i, r) in entry.recipients.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json(&mut out, &format!("<{r}>"), MAX_VALUE_CHARS);
    }
    out.push_str("]}");
    out
}

/// Appends `s` as a JSON string (RFC 8259 §7), cut at `max` characters;
/// every control character is escaped, so a line stays one line.
fn push_json(out: &mut String, s: &str, max: usize) {
    out.push('"');
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The RFC 3164 datagram: `<PRI>Mmm dd hh:mm:ss TAG[PID]: fields`, the
/// time in local time (`utc_offset` seconds east), at most
/// [`MAX_SYSLOG_BYTES`].
pub fn format_syslog(entry: &Entry, unix_seconds: i64, utc_offset: i32, pid: u32) -> String {
    let severity = if entry.status.is_failure() {
        SEVERITY_ERR
    } else {
        SEVERITY_INFO
    };
    let mut msg = format!(
        "<{}>{} {}[{pid}]: {}",
        FACILITY_MAIL * 8 + severity,
        syslog_timestamp(unix_seconds, utc_offset),
        syslog_tag(entry.tag),
        format_fields(entry)
    );
    if msg.len() > MAX_SYSLOG_BYTES {
        let mut cut = MAX_SYSLOG_BYTES - 3;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push_str("...");
    }
    msg
}

/// Where the targets really are; tests put their own.
struct Sinks<'s> {
    syslog_socket: &'s Path,
    stderr: &'s mut dyn Write,
}

impl<'s> Sinks<'s> {
    fn system(stderr: &'s mut dyn Write) -> Self {
        Sinks {
            syslog_socket: Path::new(SYSLOG_SOCKET),
            stderr,
        }
    }
}

fn write_to(target: &Target, entry: &Entry, sinks: &mut Sinks) -> Result<(), LogError> {
    let now = unix_now();
    match target {
        Target::File(path) => {
            append(path, &format!("{}\n", format_line(entry, now))).map_err(|source| {
                LogError::File {
                    path: path.clone(),
                    source,
                }
            })
        }
        Target::Syslog => {
            let offset = Timestamp::from_second(now)
                .map_or(0, |t| crate::zone::local().to_offset(t).seconds());
            let msg = format_syslog(entry, now, offset, std::process::id());
            send_datagram(sinks.syslog_socket, &msg).map_err(|source| LogError::Syslog {
                socket: sinks.syslog_socket.to_owned(),
                source,
            })
        }
        Target::Stderr => sinks
            .stderr
            .write_all(format!("{}\n", format_line(entry, now)).as_bytes())
            .and_then(|()| sinks.stderr.flush())
            .map_err(LogError::Stderr),
    }
}

fn write_or_fallback_to(target: &Target, entry: &Entry, sinks: &mut Sinks) -> Option<String> {
    let mut notice = match write_to(target, entry, sinks) {
        Ok(()) => return None,
        Err(e) => e.to_string(),
    };
    if matches!(target, Target::File(_)) {
        match write_to(&Target::Syslog, entry, sinks) {
            Ok(()) => {
                return Some(format!(
                    "{notice}: logged to syslog instead (check the log file's path and permissions)"
                ));
            }
            Err(e) => notice.push_str(&format!("; {e}")),
        }
    }
    if *target != Target::Stderr {
        match write_to(&Target::Stderr, entry, sinks) {
            Ok(()) => return Some(format!("{notice}: logged to standard error instead")),
            Err(e) => notice.push_str(&format!("; {e}")),
        }
    }
    Some(format!("{notice}: the log line was lost"))
}

/// Appends `line` in one write: with `O_APPEND` the kernel puts each
/// write at the end in one piece, so lines of concurrent runs do not
/// interleave.
///
/// The file is reached as Postfix's `safe_open` reaches its logs, since
/// root may be the writer and the path may lie in a directory others
/// use ([`open_log_dir`], [`open_log_file`]): the parent directory is
/// opened `O_DIRECTORY|O_NOFOLLOW` and checked on its descriptor; the
/// file is opened relative to it with `O_NOFOLLOW` (a symlink planted at
/// the name is never followed), created only with `O_EXCL` and then
/// given exactly [`LOG_FILE_MODE`] with `fchmod` (the umask never decides
/// who reads recipients' addresses), and used only if the descriptor
/// shows a regular file with one link owned by our effective uid: root
/// never appends to a file another user owns, nor to a hard link of one
/// of its own files planted there. `O_NONBLOCK` keeps a FIFO from
/// hanging the run.
fn append(path: &Path, line: &str) -> io::Result<()> {
    let (dir, name) = split_log_path(path)?;
    let dir = open_log_dir(dir)?;
    let mut file = open_log_file(dir.as_fd(), name)?;
    file.write_all(line.as_bytes())
}

/// The parent directory and file name of a log path.
fn split_log_path(path: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = match path.components().next_back() {
        Some(Component::Normal(name)) => name,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file name (give the path of a file)",
            ));
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Opens the log's directory (never through a symlink in its last
/// component) if only we, or root, can change what is in it: it belongs
/// to us or to root, and is writable by no one else unless it is sticky
/// (as `/tmp`: others may add names there, but not remove or rename
/// ours, and a name they planted fails [`open_log_file`]'s checks).
fn open_log_dir(dir: &Path) -> io::Result<OwnedFd> {
    let fd = queue_files::open_dir_at(None, dir, None)?;
    let st = rustix::fs::fstat(&fd)?;
    let me = queue_files::euid();
    // O_DIRECTORY made sure it is a directory.
    if st.st_uid != me && st.st_uid != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "its directory {} belongs to uid {}, who could swap the file (log to a directory of your own or root's)",
                dir.display(),
                st.st_uid
            ),
        ));
    }
    if st.st_mode & 0o022 != 0 && st.st_mode & 0o1000 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "its directory {} is writable by others (mode {:o}) and not sticky (chmod go-w it, or log elsewhere)",
                dir.display(),
                st.st_mode & 0o7777
            ),
        ));
    }
    Ok(fd)
}

/// How often [`open_log_file`] tries again when the name comes and goes
/// between its open and its create (another writer, or someone racing).
const LOG_OPEN_TRIES: usize = 3;

/// Opens `name` in `dir` for appending: the existing file, or a new one
/// made with `O_EXCL` and [`LOG_FILE_MODE`]; never through a symlink.
fn open_log_file(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    let flags = OFlags::WRONLY
        | OFlags::APPEND
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::NOCTTY
        | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(LOG_FILE_MODE);
    for _ in 0..LOG_OPEN_TRIES {
        let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                match rustix::fs::openat(dir, name, flags | OFlags::CREATE | OFlags::EXCL, mode) {
                    Ok(fd) => {
                        rustix::fs::fchmod(&fd, mode)?;
                        fd
                    }
                    Err(Errno::EXIST) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(Errno::LOOP) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "it is a symbolic link, which is never followed (remove it)",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        check_log_file(&fd)?;
        return Ok(File::from(fd));
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        "it kept appearing and disappearing while it was opened",
    ))
}

/// A log we append to is a regular file with one link, owned by us.
fn check_log_file(fd: &OwnedFd) -> io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    let me = queue_files::euid();
    let problem = if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        "it is not a regular file".to_owned()
    } else if st.st_uid != me {
        format!(
            "it belongs to uid {}, not to us (uid {me}): remove it, or chown {me} it",
            st.st_uid
        )
    } else if st.st_nlink != 1 {
        format!(
            "it has {} hard links: it may be another file linked there (remove it)",
            st.st_nlink
        )
    } else {
        return Ok(());
    };
    Err(io::Error::new(io::ErrorKind::PermissionDenied, problem))
}

fn send_datagram(socket: &Path, msg: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.set_write_timeout(Some(SYSLOG_TIMEOUT))?;
    sock.send_to(msg.as_bytes(), socket)?;
    Ok(())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Appends `s` as a value: escaped, cut at `max` characters, quoted when
/// it must be.
fn push_value(out: &mut String, s: &str, max: usize) {
    let mut esc = String::with_capacity(s.len());
    let mut quote = s.is_empty();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            esc.push_str("...");
            break;
        }
        match c {
            '"' | '\\' => {
                quote = true;
                esc.push('\\');
                esc.push(c);
            }
            ' ' => {
                quote = true;
                esc.push(c);
            }
            // An escape sequence is only unambiguous inside quotes.
            '\n' | '\r' | '\t' => {
                quote = true;
                esc.push('\\');
                esc.push(match c {
                    '\n' => 'n',
                    '\r' => 'r',
                    _ => 't',
                });
            }
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                quote = true;
                esc.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => esc.push(c),
        }
    }
    if quote {
        out.push('"');
        out.push_str(&esc);
        out.push('"');
    } else {
        out.push_str(&esc);
    }
}

/// The tag in a syslog header: letters, digits and `._-` only (others
/// become `_`), at most 32 characters.
fn syslog_tag(tag: &str) -> String {
    let t: String = tag
        .chars()
        .take(MAX_TAG_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() { DEFAULT_TAG.into() } else { t }
}

/// A time as a timestamp jiff can show (clamped to its range).
fn timestamp(unix_seconds: i64) -> Timestamp {
    Timestamp::from_second(unix_seconds).unwrap_or(if unix_seconds < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// `2023-11-14T22:13:20Z`.
fn rfc3339_utc(unix_seconds: i64) -> String {
    timestamp(unix_seconds)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// RFC 3164 §4.1.2 `Mmm dd hh:mm:ss`, the day padded with a space.
fn syslog_timestamp(unix_seconds: i64, utc_offset: i32) -> String {
    let offset = Offset::from_seconds(utc_offset).unwrap_or(Offset::UTC);
    timestamp(unix_seconds)
        .to_zoned_datetime(TimeZone::fixed(offset))
        .strftime("%b %e %H:%M:%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entry<'a>(recipients: &'a [String], reply: Option<&'a str>) -> Entry<'a> {
        Entry {
            format: Format::Text,
            tag: DEFAULT_TAG,
            profile: "work",
            relay: Some("smtp.example.org"),
            sender: "me@example.org",
            recipients,
            size: 1234,
            status: Status::Sent,
            reply,
            duration: Duration::from_millis(842),
        }
    }

    #[test]
    fn json_lines_are_one_object_and_cannot_be_forged() {
        let to = vec!["a@x.example".to_owned(), "b@y.example".to_owned()];
        let e = Entry {
            format: Format::Json,
            ..entry(&to, Some("250 ok\"}\n{\"status\":\"x\\"))
        };
        assert_eq!(
            format_line(&e, 1_700_000_000),
            "{\"time\":\"2023-11-14T22:13:20Z\",\"tag\":\"smtpsend\",\"profile\":\"work\",\
             \"status\":\"sent\",\"relay\":\"smtp.example.org\",\"from\":\"<me@example.org>\",\
             \"reply\":\"250 ok\\\"}\\n{\\\"status\\\":\\\"x\\\\\",\"size\":1234,\"nrcpt\":2,\
             \"duration_ms\":842,\"to\":[\"<a@x.example>\",\"<b@y.example>\"]}"
        );
        assert!(format_fields(&e).starts_with("{\"profile\":\"work\","));
        assert!(!format_syslog(&e, 0, 0, 1).contains('\n'));
    }

    fn rcpts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_line() {
        let to = rcpts(&["a@example.org", "b@example.org"]);
        let e = entry(&to, Some("250 2.0.0 Ok: queued as 4TbX"));
        assert_eq!(
            format_line(&e, 1_700_000_000),
            "time=2023-11-14T22:13:20Z tag=smtpsend profile=work status=sent \
             relay=smtp.example.org from=<me@example.org> size=1234 nrcpt=2 duration_ms=842 \
             reply=\"250 2.0.0 Ok: queued as 4TbX\" to=<a@example.org>,<b@example.org>"
        );
        let bare = Entry {
            relay: None,
            reply: None,
            sender: "",
            profile: "",
            status: Status::Local,
            ..e
        };
        assert_eq!(
            format_fields(&bare),
            "profile=\"\" status=local from=<> size=1234 nrcpt=2 duration_ms=842 \
             to=<a@example.org>,<b@example.org>"
        );
    }

    #[test]
    fn hostile_values_cannot_forge_lines() {
        let to = rcpts(&["\"a b\"@example.org"]);
        let reply =
            "550 no\ntime=2023-11-14T22:13:20Z tag=smtpsend status=sent\r\x1b[2J\u{85}\u{2028}";
        let e = Entry {
            format: Format::Text,
            tag: "my tag",
            ..entry(&to, Some(reply))
        };
        let line = format_line(&e, 0);
        assert!(!line.chars().any(|c| c.is_control()), "{line}");
        assert!(line.contains(
            "reply=\"550 no\\ntime=2023-11-14T22:13:20Z tag=smtpsend status=sent\\r\\u{1b}[2J\\u{85}\\u{2028}\""
        ));
        assert!(line.contains("tag=\"my tag\""));
        assert!(line.contains("to=\"<\\\"a b\\\"@example.org>\""));
        // An escape alone makes a value quoted, so "\n" is never literal.
        let mut v = String::new();
        push_value(&mut v, "a\nb", 10);
        assert_eq!(v, "\"a\\nb\"");
        let mut v = String::new();
        push_value(&mut v, "caf\u{e9}", 10);
        assert_eq!(v, "caf\u{e9}");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(5000);
        let e = entry(&[], Some(&long));
        let line = format_line(&e, 0);
        assert!(line.contains(&format!("reply={}... to=", "x".repeat(MAX_VALUE_CHARS))));
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(syslog_timestamp(0, 0), "Jan  1 00:00:00");
        assert_eq!(syslog_timestamp(1_700_000_000, 3600), "Nov 14 23:13:20");
        assert_eq!(
            syslog_timestamp(1_700_000_000, -23 * 3600),
            "Nov 13 23:13:20"
        );
    }

    #[test]
    fn syslog_datagrams() {
        let to = rcpts(&["a@example.org"]);
        let e = entry(&to, Some("250 ok"));
        assert_eq!(
            format_syslog(&e, 0, 0, 42),
            "<22>Jan  1 00:00:00 smtpsend[42]: profile=work status=sent relay=smtp.example.org \
             from=<me@example.org> size=1234 nrcpt=1 duration_ms=842 reply=\"250 ok\" \
             to=<a@example.org>"
        );
        let failed = Entry {
            status: Status::Failed,
            tag: "my tag: x[1]",
            ..e
        };
        assert!(
            format_syslog(&failed, 0, 0, 42).starts_with("<19>Jan  1 00:00:00 my_tag__x_1_[42]: ")
        );
        let many: Vec<String> = (0..2000).map(|i| format!("user{i}@example.org")).collect();
        let big = format_syslog(&entry(&many, None), 0, 0, 1);
        assert!(big.len() <= MAX_SYSLOG_BYTES && big.ends_with("..."));
        assert!(big.contains("status=sent"));
    }

    #[test]
    fn syslog_to_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let to = rcpts(&["a@example.org"]);
        let e = entry(&to, None);
        let mut err = Vec::new();
        let mut sinks = Sinks {
            syslog_socket: &path,
            stderr: &mut err,
        };
        write_to(&Target::Syslog, &e, &mut sinks).unwrap();
        let mut buf = vec![0; 65536];
        let n = server.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.starts_with("<22>"), "{got}");
        assert!(got.contains(&format!(" smtpsend[{}]: profile=work ", std::process::id())));
        assert!(got.ends_with("to=<a@example.org>"));
        assert!(err.is_empty());
    }

    #[test]
    fn file_is_created_private_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smtpsend.log");
        let e = entry(&[], None);
        write(&Target::File(path.clone()), &e).unwrap();
        write(&Target::File(path.clone()), &e).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, LOG_FILE_MODE);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines()
                .all(|l| l.starts_with("time=") && l.ends_with("to=\"\""))
        );
    }

    /// A log path and its parent, made `mode`.
    fn log_in_dir(mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, sub.join("smtpsend.log"))
    }

    #[test]
    fn a_symlink_at_the_log_path_is_never_followed() {
        let (dir, path) = log_in_dir(0o700);
        let canary = dir.path().join("canary");
        std::fs::write(&canary, "untouched\n").unwrap();
        std::os::unix::fs::symlink(&canary, &path).unwrap();
        let e = entry(&[], None);
        let err = write(&Target::File(path.clone()), &e).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // A dangling one is not created through either.
        let nowhere = dir.path().join("would-be-created");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&nowhere, &path).unwrap();
        assert!(write(&Target::File(path.clone()), &e).is_err());
        assert!(!nowhere.exists());
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "untouched\n");

        // The send goes on: the line lands on standard error instead.
        let mut err = Vec::new();
        let notice = write_or_fallback_to(
            &Target::File(path),
            &e,
            &mut Sinks {
                syslog_socket: &dir.path().join("no-socket"),
                stderr: &mut err,
            },
        )
        .unwrap();
        assert!(notice.contains("symbolic link"), "{notice}");
        assert!(err.starts_with(b"time="));
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "untouched\n");
    }

    #[test]
    fn a_symlinked_directory_is_never_followed() {
        let (dir, path) = log_in_dir(0o700);
        let link = dir.path().join("linked");
        std::os::unix::fs::symlink(path.parent().unwrap(), &link).unwrap();
        let e = entry(&[], None);
        assert!(write(&Target::File(link.join("smtpsend.log")), &e).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn a_hard_link_is_refused() {
        let (dir, path) = log_in_dir(0o700);
        let other = dir.path().join("precious");
        std::fs::write(&other, "mine\n").unwrap();
        std::fs::hard_link(&other, &path).unwrap();
        let err = write(&Target::File(path), &entry(&[], None)).unwrap_err();
        assert!(err.to_string().contains("2 hard links"), "{err}");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "mine\n");
    }

    #[test]
    fn a_directory_others_can_write_is_refused_unless_sticky() {
        let e = entry(&[], None);
        let (_d, path) = log_in_dir(0o777);
        let err = write(&Target::File(path.clone()), &e).unwrap_err();
        assert!(err.to_string().contains("writable by others"), "{err}");
        assert!(!path.exists());
        // Sticky, as /tmp: allowed.
        let (_d, path) = log_in_dir(0o1777);
        write(&Target::File(path.clone()), &e).unwrap();
        assert!(path.exists());
    }

    /// Root never appends to a file another uid owns (run as root only:
    /// only root can give a file away).
    #[test]
    fn a_file_of_another_uid_is_refused() {
        if queue_files::euid() != 0 {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let (_d, path) = log_in_dir(0o1777);
        std::fs::write(&path, "theirs\n").unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = write(&Target::File(path.clone()), &entry(&[], None)).unwrap_err();
        assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "theirs\n");
    }

    /// The mode is 0600 whatever the umask: 0 would allow more, 0277
    /// would leave us a read-only file. The umask is the process's, so
    /// the writes happen in a child ([`umask_child`]).
    #[test]
    fn the_mode_is_0600_whatever_the_umask() {
        for umask in ["0", "277"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("smtpsend.log");
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "log::tests::umask_child", "--nocapture"])
                .env("SMTPSEND_LOG_UMASK_CHILD", umask)
                .env("SMTPSEND_LOG_PATH", &path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o600, "umask {umask}");
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.lines().count(), 2, "umask {umask}");
        }
    }

    #[test]
    fn umask_child() {
        let (Some(umask), Some(path)) = (
            std::env::var_os("SMTPSEND_LOG_UMASK_CHILD"),
            std::env::var_os("SMTPSEND_LOG_PATH"),
        ) else {
            return;
        };
        let umask = u32::from_str_radix(umask.to_str().unwrap(), 8).unwrap();
        rustix::process::umask(Mode::from_raw_mode(umask));
        let target = Target::File(PathBuf::from(path));
        // Created, then appended to: both need write permission.
        write(&target, &entry(&[], None)).unwrap();
        write(&target, &entry(&[], None)).unwrap();
    }

    #[test]
    fn concurrent_writers_produce_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smtpsend.log");
        // Lines of several KiB, well past a stdio buffer.
        let to: Vec<String> = (0..200).map(|i| format!("user{i}@example.org")).collect();
        let threads: Vec<_> = ["t0", "t1"]
            .into_iter()
            .map(|profile| {
                let path = path.clone();
                let to = to.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let e = Entry {
                            profile,
                            ..entry(&to, None)
                        };
                        write(&Target::File(path.clone()), &e).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let whole = |profile: &str| {
            text.lines()
                .filter(|l| {
                    l.starts_with("time=")
                        && l.contains(&format!(" profile={profile} "))
                        && l.ends_with("<user199@example.org>")
                        && l.matches("time=").count() == 1
                })
                .count()
        };
        assert_eq!(text.lines().count(), 400);
        assert_eq!(whole("t0"), 200);
        assert_eq!(whole("t1"), 200);
    }

    #[test]
    fn a_directory_falls_back_to_syslog_then_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::File(dir.path().to_owned());
        let e = entry(&[], Some("250 ok"));
        assert!(matches!(write(&target, &e), Err(LogError::File { .. })));

        // No syslog socket: standard error gets the line.
        let missing = dir.path().join("no-such-socket");
        let mut err = Vec::new();
        let notice = write_or_fallback_to(
            &target,
            &e,
            &mut Sinks {
                syslog_socket: &missing,
                stderr: &mut err,
            },
        )
        .unwrap();
        assert!(notice.starts_with("cannot write the log file "), "{notice}");
        assert!(notice.contains("cannot log to syslog at "), "{notice}");
        assert!(
            notice.ends_with("logged to standard error instead"),
            "{notice}"
        );
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("time=") && err.ends_with("reply=\"250 ok\" to=\"\"\n"));

        // A syslog socket: it gets the line, standard error nothing.
        let socket = dir.path().join("log");
        let server = UnixDatagram::bind(&socket).unwrap();
        let mut err = Vec::new();
        let notice = write_or_fallback_to(
            &target,
            &e,
            &mut Sinks {
                syslog_socket: &socket,
                stderr: &mut err,
            },
        )
        .unwrap();
        assert!(notice.contains("logged to syslog instead"), "{notice}");
        let mut buf = vec![0; 65536];
        let n = server.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"<22>"));
        assert!(err.is_empty());
    }

    #[test]
    fn no_notice_when_the_target_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.log");
        let e = entry(&[], None);
        let mut err = Vec::new();
        let mut sinks = Sinks {
            syslog_socket: Path::new("/nonexistent"),
            stderr: &mut err,
        };
        assert_eq!(
            write_or_fallback_to(&Target::File(path), &e, &mut sinks),
            None
        );
        assert_eq!(write_or_fallback_to(&Target::Stderr, &e, &mut sinks), None);
        assert!(err.starts_with(b"time="));
    }
}
