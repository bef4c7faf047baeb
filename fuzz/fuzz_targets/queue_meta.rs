//! Arbitrary bytes as queue metadata (`msg/ID.env`): never a panic, and
//! whatever parses writes back to text that parses to the same entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtpsend::queue::{Id, MAX_META_SIZE, Meta};

fuzz_target!(|data: &[u8]| {
    if data.len() as u64 > MAX_META_SIZE {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(meta) = Meta::from_text(text) {
        let id = Id::parse("20261123T193000.000000-1a2b3c4d").expect("a valid id");
        let again = meta.to_text(&id).expect("a parsed entry serialises");
        assert_eq!(Meta::from_text(&again).as_ref(), Ok(&meta));
    }
});
