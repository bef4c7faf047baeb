//! Who is sending: the login name, found without trusting a minimal
//! environment (sudo, cron, systemd give little or none).

/// The login name: `$LOGNAME`, `$USER`, else the owner of this process
/// looked up in /etc/passwd, else the numeric uid.
pub fn login_name() -> String {
    for var in ["LOGNAME", "USER"] {
        if let Ok(v) = std::env::var(var)
            && is_plain_name(&v)
        {
            return v;
        }
    }
    let uid = uid();
    passwd_name(uid).unwrap_or_else(|| uid.to_string())
}

/// This process's real uid, from the kernel: not from /proc/self, whose
/// owner is root once the process is non-dumpable (see `harden`).
pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'$'))
}

/// The name /etc/passwd gives `uid`, if it is a plain one.
pub(crate) fn passwd_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid && is_plain_name(name)).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_plain_name("www-data"));
        assert!(!is_plain_name("a b"));
        assert!(!is_plain_name("x\r\ny"));
        assert!(!login_name().is_empty());
    }
}
