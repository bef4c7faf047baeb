//! Arbitrary bytes as a command line (NUL-separated arguments, any bytes,
//! the first byte choosing the program name): normalisation, clap, the
//! restricted-argv rules and the resolution into a profile and a plan must
//! never panic. Under a sendmail name, what the rules let through never
//! runs a command, names a file to read or write, or redirects the relay.
#![no_main]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use smtpsend::app::invocation::{Invocation, Mode, Source};
use smtpsend::app::plan::{Plan, choose_profile};
use smtpsend::cli::restrict::{Why, apply_with};
use smtpsend::cli::{Args, normalize};
use smtpsend::config::{ArgPolicy, Config};

const CONFIG: &str = r#"
domain = "fuzz.example"
host = "relay.fuzz.example"
default_profile = "a"
[profile.a]
from = "*@a.example"
[profile.b]
from = "b@b.example"
user = "b"
[aliases]
root = "admin@fuzz.example"
"#;

const MESSAGE: &[u8] = b"From: x@fuzz.example\nTo: root, y@fuzz.example\nBcc: z@fuzz.example\n\nbody\n";

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let argv0 = match first % 4 {
        0 => "smtpsend",
        1 => "sendmail",
        2 => "/usr/sbin/mailq",
        _ => "newaliases",
    };
    let argv: Vec<OsString> = std::iter::once(OsString::from(argv0))
        .chain(rest.split(|&b| b == 0).map(|a| OsString::from_vec(a.to_vec())))
        .take(64)
        .collect();
    let Ok(mut args) = Args::try_parse_from(normalize(argv)) else {
        return;
    };
    let _ = args.dot_ends_message();
    let restricted = argv0 != "smtpsend";
    if restricted {
        let why = Why::Name(argv0.rsplit('/').next().unwrap_or(argv0).into());
        if apply_with(&why, &ArgPolicy::default(), Path::new("/fuzz/system.toml"), &mut args)
            .is_err()
        {
            return;
        }
        // What passed the rules cannot run, read, write or redirect.
        assert!(args.password_command.is_none() && args.file.is_none());
        assert!(args.log_file.is_none() && args.config.is_none());
        assert!(args.host.is_none() && args.port.is_none() && args.tls_ca_file.is_none());
        assert!(args.sender().is_none_or(|s| !s.starts_with('-')));
        assert!(args.recipients.iter().all(|r| !r.starts_with('-')));
    }
    // The resolver applies the same rules again, with the system's policy
    // (none here: /etc/smtpsend.toml is not a fuzzing machine's).
    let Ok(inv) = Invocation::resolve(OsStr::new(argv0), args) else {
        return;
    };
    let config = Config::from_str(CONFIG, Path::new("/fuzz/smtpsend.toml")).expect("fixed config");
    let sub = match &inv.mode {
        Mode::Send(sub) | Mode::ServeStdin { template: sub, .. } => sub,
        _ => {
            let _ = choose_profile(&inv.settings, Some(&config), None, None);
            return;
        }
    };
    let sender = sub.sender.as_deref();
    let _ = choose_profile(&inv.settings, Some(&config), sender, sender);
    if matches!(sub.source, Source::File(_)) || inv.settings.overrides.password_command.is_some() {
        // The plan would read a file; the profile resolution was enough.
        return;
    }
    let mut input = MESSAGE;
    let _ = Plan::build(&inv.settings, sub, Some(&config), &mut input);
});
