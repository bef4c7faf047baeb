//! This machine's name, as smtplib's `socket.getfqdn()` finds it, without
//! `unsafe`: the kernel's host name, made fully qualified through
//! /etc/hosts when it is not already.

use std::sync::OnceLock;

/// The kernel's host name (`uname -n`).
pub fn short() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()?;
    let name = raw.trim();
    valid(name).then(|| name.to_owned())
}

fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The fully qualified name: the host name if it has a dot, else the first
/// dotted name on an /etc/hosts line that names it; cached for the process.
pub fn fqdn() -> Option<String> {
    static FQDN: OnceLock<Option<String>> = OnceLock::new();
    FQDN.get_or_init(|| {
        let short = short()?;
        if short.contains('.') {
            return Some(short);
        }
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        Some(from_hosts(&hosts, &short).unwrap_or(short))
    })
    .clone()
}

fn from_hosts(hosts: &str, short: &str) -> Option<String> {
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or("");
        let names: Vec<&str> = line.split_whitespace().skip(1).collect();
        if names.iter().any(|n| n.eq_ignore_ascii_case(short))
            && let Some(full) = names
                .iter()
                .find(|n| n.contains('.') && valid(n) && !n.starts_with("localhost"))
        {
            return Some((*full).to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lookup() {
        let hosts = "127.0.0.1 localhost\n127.0.1.1 box.example.org box # comment\n";
        assert_eq!(from_hosts(hosts, "box").as_deref(), Some("box.example.org"));
        assert_eq!(from_hosts(hosts, "other"), None);
        assert_eq!(
            from_hosts("127.0.0.1 box localhost.localdomain", "box"),
            None
        );
    }
}
