//! Arbitrary bytes as a message: the header layer must never panic, and
//! after `strip_bcc` no Bcc field may be left, not even when the output is
//! read again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::message::{
    Completion, DateStamp, MAX_HEADER_BYTES, Originator, complete_headers, extract_envelope,
    parse_address_list, qualify_address, qualify_headers, read_header_block, strip_bcc,
};

fn has_bcc(block: &smtpsend::message::HeaderBlock) -> bool {
    block
        .fields()
        .iter()
        .any(|f| f.is("Bcc") || f.is("Resent-Bcc"))
}

fuzz_target!(|data: &[u8]| {
    // The address parser on its own, with any bytes.
    let _ = parse_address_list(data);

    let mut reader = data;
    let Ok(mut block) = read_header_block(&mut reader, MAX_HEADER_BYTES) else {
        return;
    };
    // Never reads past the header block.
    assert!(reader.len() <= data.len());

    // What was read reads again to the same fields (a last field the
    // input ended in gains a line ending, nothing else changes).
    let bytes = block.to_bytes();
    let again = read_header_block(&mut &bytes[..], MAX_HEADER_BYTES)
        .expect("to_bytes output must read back");
    let view = |b: &smtpsend::message::HeaderBlock| -> Vec<(String, Vec<u8>)> {
        b.fields()
            .iter()
            .map(|f| (f.name().to_string(), f.raw_value().to_vec()))
            .collect()
    };
    assert_eq!(view(&again), view(&block));

    if let Ok(env) = extract_envelope(&block) {
        for addr in env.recipients.iter().chain(env.sender.iter()) {
            // No line break can reach an envelope address.
            assert!(!addr.contains(['\r', '\n', '\0']), "{addr:?}");
            let q = qualify_address(addr, "fuzz.example");
            assert!(q.starts_with(addr.as_str()));
        }
    }

    let _ = qualify_headers(&mut block, "fuzz.example");
    let _ = complete_headers(
        &mut block,
        &Completion {
            from: Some(Originator {
                full_name: Some(String::from_utf8_lossy(&data[..data.len().min(64)]).into_owned()),
                addr: "root@fuzz.example".into(),
            }),
            date: Some(DateStamp {
                unix_seconds: i64::from_le_bytes(
                    data.get(..8)
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0; 8]),
                ),
                utc_offset_seconds: 3600,
            }),
            message_id_domain: Some("fuzz.example".into()),
        },
    );

    strip_bcc(&mut block);
    assert!(!has_bcc(&block));
    let sent = block.to_bytes();
    let reread = read_header_block(&mut &sent[..], MAX_HEADER_BYTES)
        .expect("transmitted header block must read back");
    assert!(
        !has_bcc(&reread),
        "a Bcc field survived: {:?}",
        sent.escape_ascii().to_string()
    );
});
