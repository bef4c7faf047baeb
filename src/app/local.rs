//! Local mail: which recipients stay on this machine (the one local/remote
//! rule every delivery path obeys) and delivering them into the Maildir.
//!
//! A recipient is local when the profile delivers only locally
//! (`transport = "maildir"`), when it has no domain, when its domain is
//! one of the profile's `local_domains` (by default `localhost`), or, with
//! no relay configured at all, when its domain is this machine's own name
//! (the profile's `domain`, /etc/mailname's, the host's fully qualified or
//! short name).
//! Every other recipient is remote: it goes to the relay, or, with none
//! configured, waits in the queue until one is.
//!
//! Local mail for every local recipient goes into one Maildir, the
//! profile's `maildir`, else `$MAILDIR`, else `~/Maildir`: the submitting
//! user's. The writing itself is [`crate::maildir`]'s.

use std::io::Read;
use std::path::PathBuf;

use super::Failure;
use crate::config::{Profile, Transport};
use crate::exit::Sysexit;
use crate::maildir;

/// Whether `addr` is delivered on this machine under profile `p`.
pub fn is_local(addr: &str, p: &Profile) -> bool {
    if p.transport == Transport::Maildir {
        return true;
    }
    let Some((_, domain)) = addr.rsplit_once('@') else {
        return true;
    };
    if p.local_domains
        .iter()
        .any(|l| l.eq_ignore_ascii_case(domain))
    {
        return true;
    }
    p.hosts.is_empty()
        && (domain.eq_ignore_ascii_case("localhost")
            || p.domain
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(domain))
            || crate::mta::system_domain().is_some_and(|d| d.eq_ignore_ascii_case(domain))
            || crate::hostname::fqdn().is_some_and(|d| d.eq_ignore_ascii_case(domain))
            || crate::hostname::short().is_some_and(|d| d.eq_ignore_ascii_case(domain)))
}

/// The Maildir local mail goes into.
pub fn maildir_root(p: &Profile) -> Option<PathBuf> {
    p.maildir.clone().or_else(maildir::default_path)
}

/// Delivers the message once into the Maildir for `recipients`, with a
/// `Return-Path` and a `Delivered-To` header in front. Returns the new
/// file. A failure is EX_CANTCREAT and says where and why.
pub fn deliver(
    p: &Profile,
    sender: &str,
    recipients: &[String],
    body: &mut dyn Read,
) -> Result<PathBuf, Failure> {
    let root = maildir_root(p).ok_or_else(|| {
        Failure::new(
            Sysexit::CantCreate,
            "cannot deliver locally: no home directory for ~/Maildir (set MAILDIR, or configure a relay)",
        )
    })?;
    let prefix = format!(
        "Return-Path: <{sender}>\nDelivered-To: {}\n",
        recipients.join(", ")
    );
    maildir::deliver(&root, prefix.as_bytes(), body).map_err(|e| {
        Failure::new(
            Sysexit::CantCreate,
            format!(
                "cannot deliver locally into {}: {e} (set MAILDIR to a writable Maildir, or configure a relay)",
                root.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_rule() {
        let relay = Profile {
            hosts: vec!["relay.example".into()],
            domain: Some("client.example".into()),
            local_domains: vec!["localhost".into(), "lan.example".into()],
            ..Profile::default()
        };
        assert!(is_local("root", &relay));
        assert!(is_local("root@localhost", &relay));
        assert!(is_local("ops@LAN.example", &relay));
        assert!(!is_local("root@client.example", &relay));
        assert!(!is_local("a@example.org", &relay));

        let none = Profile {
            hosts: vec![],
            ..relay.clone()
        };
        assert!(is_local("root@client.example", &none));
        assert!(is_local("root@localhost", &none));
        assert!(!is_local("a@example.org", &none));

        let maildir = Profile {
            transport: Transport::Maildir,
            ..relay
        };
        assert!(is_local("a@example.org", &maildir));
    }

    #[test]
    fn maildir_errors_are_reported_not_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let p = Profile {
            maildir: Some(file.clone()),
            ..Profile::default()
        };
        let f = deliver(&p, "a@x", &["b@y".into()], &mut &b"Subject: x\n\nx\n"[..]).unwrap_err();
        assert_eq!(f.exit, Sysexit::CantCreate);
        assert!(
            f.message.contains(&file.display().to_string()),
            "{}",
            f.message
        );

        let md = dir.path().join("Maildir");
        let p = Profile {
            maildir: Some(md.clone()),
            ..Profile::default()
        };
        let path = deliver(&p, "a@x", &["b@y".into()], &mut &b"Subject: x\n\nx\n"[..]).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.starts_with("Return-Path: <a@x>\nDelivered-To: b@y\nSubject: x\n"));
    }
}
