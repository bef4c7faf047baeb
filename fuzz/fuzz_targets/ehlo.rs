//! Arbitrary EHLO reply lines: the extension parser must never panic on
//! any text (it once sliced `line[..5]` inside a UTF-8 character), and
//! only strict keywords become extensions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::smtp::Extensions;
use smtpsend::smtp::reply::parse_reply;

fn check(e: &Extensions) {
    for (name, params) in e.iter() {
        assert!(!name.is_empty());
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name:?}"
        );
        assert!(e.has(name) && e.get(&name.to_ascii_uppercase()) == Some(params));
    }
    let _ = e.size_limit();
    for m in e.auth_mechanisms() {
        assert!(!m.is_empty() && !m.contains(char::is_whitespace));
    }
}

fuzz_target!(|data: &[u8]| {
    // The bytes as a whole reply, when they are one.
    if let Ok(r) = parse_reply(data) {
        check(&Extensions::from_ehlo(&r));
    }
    // Each input line as the text of one EHLO line after a greeting line.
    let mut wire = b"250-mx.fuzz greets you\r\n".to_vec();
    let lines: Vec<&[u8]> = data.split(|&c| c == b'\n').take(400).collect();
    for (i, l) in lines.iter().enumerate() {
        wire.extend_from_slice(if i + 1 == lines.len() { b"250 " } else { b"250-" });
        wire.extend(l.iter().filter(|&&c| c != b'\r'));
        wire.extend_from_slice(b"\r\n");
    }
    if let Ok(r) = parse_reply(&wire) {
        check(&Extensions::from_ehlo(&r));
    }
});
