//! Arbitrary bytes as a configuration file: loading, choosing a profile,
//! the command line's overrides, aliases and the restricted-argv policy
//! must never panic, and a password never shows in an error.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use smtpsend::config::{Config, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::from_str(text, Path::new("/fuzz/smtpsend.toml")) {
        Ok(c) => c,
        Err(e) => {
            // The one line an error becomes, and its exit class, exist.
            let _ = (e.to_string(), e.kind(), e.line(), e.key());
            return;
        }
    };
    let _ = config.arg_policy();
    let _ = config.has_password();
    // Every way to choose a profile: by name, by the senders the file
    // mentions, by default.
    let names: Vec<String> = config.profile_names().iter().map(|n| n.to_string()).collect();
    let senders = [
        None,
        Some("alice@example.com"),
        Some("<x@y.example>"),
        Some(""),
        Some("@"),
        Some("é@ü.example"),
    ];
    for sender in senders {
        let _ = config.select(None, sender);
    }
    for name in names.iter().map(String::as_str).chain(["nope", ""]) {
        if let Ok(mut p) = config.select(Some(name), None) {
            let _ = p.effective_port();
            let _ = format!("{p:?}");
            let o = Overrides {
                timeout: Some(1),
                port: Some(2525),
                host: Some("[::1]:25".into()),
                domain: Some("fuzz.example".into()),
                ..Overrides::default()
            };
            let _ = p.apply_overrides(&o);
        }
    }
    // Aliases: the words of the file itself are the likely names.
    let aliases = config.aliases();
    let words = text
        .split(|c: char| !(c.is_alphanumeric() || "@.-_".contains(c)))
        .filter(|w| !w.is_empty())
        .take(32);
    for n in words.chain(["root", "x@y", ""]) {
        let _ = aliases.resolve(n);
    }
});
