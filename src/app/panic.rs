//! The last line of defence: a bug that panics anywhere must not turn into
//! exit 101 (which callers read as a failure and may bounce) or a lost
//! message. The binary's edge installs [`install_hook`] (it records the
//! panic instead of printing a backtrace) and runs everything under
//! `catch_unwind`; [`verdict`] then gives the one line and the exit code
//! of a queued message: 0 and "kept in the queue" when the message was
//! spooled, EX_TEMPFAIL when it was not (the caller keeps it).

use std::sync::Mutex;

use crate::exit::Sysexit;
use crate::queue::Id;

/// The queue ID of the message this process spooled, if any.
static SPOOLED: Mutex<Option<String>> = Mutex::new(None);
/// Where and why the last panic happened.
static LAST: Mutex<Option<String>> = Mutex::new(None);

/// Remembers that the message is safe in the queue.
pub fn spooled_as(id: &Id) {
    if let Ok(mut s) = SPOOLED.lock() {
        *s = Some(id.as_str().to_owned());
    }
}

/// Records each panic (message and place) instead of printing it.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut last) = LAST.lock() {
            *last = Some(format!("{what}{place}"));
        }
    }));
}

/// The last panic's message and place.
pub fn last_message() -> Option<String> {
    LAST.lock().ok().and_then(|l| l.clone())
}

/// After a panic reached the edge: the exit status and the one line.
pub fn verdict() -> (Sysexit, String) {
    let what = last_message().unwrap_or_else(|| "panic".into());
    match SPOOLED.lock().ok().and_then(|s| s.clone()) {
        Some(id) => (
            Sysexit::Ok,
            format!(
                "internal error ({what}): the message is kept in the queue, queued as {id}; please report this bug"
            ),
        ),
        None => (
            Sysexit::TempFail,
            format!(
                "internal error ({what}): the message was not queued, try again; please report this bug"
            ),
        ),
    }
}

/// The environment variable that makes a debug build panic at a named
/// point (`before-spool`, `after-spool`, `queue-entry:SENDER`), so the
/// tests can prove the guard. Release builds ignore it.
pub const INJECT_ENV: &str = "SMTPSEND_INJECT_PANIC";

/// Panics here when a debug build is asked to (see [`INJECT_ENV`]);
/// `detail` narrows the point (a queue entry's sender).
pub fn fault_point(point: &str, detail: &str) {
    if cfg!(debug_assertions)
        && let Ok(want) = std::env::var(INJECT_ENV)
    {
        let (p, d) = want.split_once(':').unwrap_or((want.as_str(), ""));
        if p == point && (d.is_empty() || d == detail) {
            panic!("injected at {point}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_recorded_and_judged_by_whether_the_message_was_spooled() {
        install_hook();
        let r = std::panic::catch_unwind(|| panic!("boom"));
        assert!(r.is_err());
        assert!(
            last_message()
                .unwrap()
                .starts_with("boom at src/app/panic.rs:")
        );
        let (code, line) = verdict();
        assert_eq!(code, Sysexit::TempFail);
        assert!(line.contains("not queued"), "{line}");
        spooled_as(&Id::parse("20261123T193000.123456-1a2b3c4d").unwrap());
        let (code, line) = verdict();
        assert_eq!(code, Sysexit::Ok);
        assert!(
            line.contains("kept in the queue, queued as 20261123T193000.123456-1a2b3c4d"),
            "{line}"
        );
        let _ = std::panic::take_hook();
    }
}
