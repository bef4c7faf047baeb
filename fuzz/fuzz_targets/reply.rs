//! Arbitrary server bytes as replies: the reply parser must never panic,
//! must keep its bounds, and what it accepts must display as one line
//! with no control characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::smtp::EnhancedCode;
use smtpsend::smtp::reply::{MAX_LINE_LEN, MAX_REPLY_LINES, ReplyBuilder, parse_line, parse_reply};

fn check(r: &smtpsend::smtp::Reply) {
    assert!((200..600).contains(&r.code()));
    assert!(!r.lines().is_empty() && r.lines().len() <= MAX_REPLY_LINES);
    for l in r.lines() {
        assert!(l.len() <= 2 * MAX_LINE_LEN, "a Latin-1 line at most doubles");
        assert!(!l.starts_with([' ', '\t']) && !l.ends_with([' ', '\t']));
    }
    let shown = r.to_string();
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(shown.starts_with(&r.code().to_string()));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_reply(data) {
        check(&r);
    }
    // As the stream feeds it: one line at a time, a fresh builder after
    // each error (the session closes the connection there).
    let mut b = ReplyBuilder::new();
    for line in data.split_inclusive(|&c| c == b'\n') {
        let _ = parse_line(line);
        match b.push(line) {
            Ok(Some(r)) => check(&r),
            Ok(None) => {}
            Err(_) => b = ReplyBuilder::new(),
        }
    }
    let text = String::from_utf8_lossy(data);
    if let Some((code, rest)) = EnhancedCode::parse_prefix(&text) {
        assert!(matches!(code.class, 2 | 4 | 5));
        assert!(text.ends_with(rest));
    }
});
