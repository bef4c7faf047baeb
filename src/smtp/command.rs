//! Command wire forms and address quoting.
//!
//! Every byte the engine sends as a command line is built here, so the one
//! rule that matters most lives in one place: no caller-supplied string may
//! carry a CR, LF or NUL onto the wire (command injection, RFC 5321 §4.1.1
//! line structure).

use super::Error;

/// Rejects a string that would break the command line it is put into.
pub fn check_line_safe(what: &str, s: &str) -> Result<(), Error> {
    if let Some(c) = s.chars().find(|c| matches!(c, '\r' | '\n' | '\0')) {
        return Err(Error::InvalidInput(format!(
            "{what} contains a forbidden control character ({:?}): {:?}",
            c,
            s.escape_debug().to_string()
        )));
    }
    Ok(())
}

/// The wire form of `cmd args`: `"CMD args\r\n"`, or `"CMD\r\n"` without
/// arguments, as smtplib's `putcmd` builds it.
pub fn line(cmd: &str, args: &str) -> Result<String, Error> {
    check_line_safe("command", cmd)?;
    check_line_safe("command argument", args)?;
    Ok(if args.is_empty() {
        format!("{cmd}\r\n")
    } else {
        format!("{cmd} {args}\r\n")
    })
}

/// The address part of `addrstring`, as smtplib's `_addr_only`: `Name
/// <a@b>` gives `a@b`, a comment is dropped, anything else is trimmed.
pub fn addr_only(addrstring: &str) -> String {
    let s = strip_comments(addrstring);
    let s = s.trim();
    if let (Some(open), Some(close)) = (s.rfind('<'), s.rfind('>'))
        && open < close
    {
        return s[open + 1..close].trim().to_owned();
    }
    s.to_owned()
}

/// The `<addr>` form for MAIL FROM and RCPT TO, as smtplib's `quoteaddr`:
/// a display name and comments are dropped; an empty address is the null
/// reverse-path `<>`. The address is checked so that nothing but the
/// address can reach the command line: no control characters, no angle
/// brackets left inside, no unquoted white space (which would let a
/// caller smuggle ESMTP parameters in).
pub fn quoteaddr(addrstring: &str) -> Result<String, Error> {
    check_line_safe("address", addrstring)?;
    let addr = addr_only(addrstring);
    let bad = |why: &str| {
        Err(Error::InvalidInput(format!(
            "invalid address {:?}: {why}",
            addrstring.escape_debug().to_string()
        )))
    };
    if addr.chars().any(|c| c.is_control()) {
        return bad("control character");
    }
    let outside_quotes = strip_comments(addrstring)
        .split('"')
        .step_by(2)
        .map(|part| part.matches('<').count())
        .sum::<usize>();
    if outside_quotes > 1 {
        return bad("more than one address");
    }
    let mut in_quotes = false;
    let mut escaped = false;
    for c in addr.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' | '>' if !in_quotes => return bad("unbalanced angle brackets"),
            c if c.is_whitespace() && !in_quotes => return bad("white space outside quotes"),
            _ => {}
        }
    }
    if in_quotes {
        return bad("unterminated quoted string");
    }
    Ok(format!("<{addr}>"))
}

/// Removes RFC 5322 comments `( ... )` outside quoted strings, keeping
/// everything else.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut in_quotes = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if in_quotes || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                in_quotes = !in_quotes;
                out.push(c);
            }
            '(' if !in_quotes => depth += 1,
            ')' if !in_quotes && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether an address needs SMTPUTF8 (RFC 6531): any non-ASCII byte.
pub fn needs_smtputf8(addr: &str) -> bool {
    !addr.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoteaddr_like_smtplib() {
        for (input, want) in [
            ("alice@example.org", "<alice@example.org>"),
            ("<alice@example.org>", "<alice@example.org>"),
            ("Alice <alice@example.org>", "<alice@example.org>"),
            ("\"Doe, J\" <j@example.org>", "<j@example.org>"),
            ("alice@example.org (Alice)", "<alice@example.org>"),
            ("", "<>"),
            ("<>", "<>"),
            ("  bob@x  ", "<bob@x>"),
            ("\"a b\"@example.org", "<\"a b\"@example.org>"),
            ("root", "<root>"),
        ] {
            assert_eq!(quoteaddr(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn quoteaddr_refuses_injection() {
        for bad in [
            "a@b\r\nRCPT TO:<evil@x>",
            "a@b\n",
            "a@b\0",
            "a@b> SIZE=1",
            "a@b SIZE=1",
            "<a@b> <c@d>",
            "\"unterminated@x",
        ] {
            assert!(quoteaddr(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn command_lines() {
        assert_eq!(line("NOOP", "").unwrap(), "NOOP\r\n");
        assert_eq!(line("MAIL", "FROM:<a@b>").unwrap(), "MAIL FROM:<a@b>\r\n");
        assert!(line("VRFY", "x\r\nQUIT").is_err());
    }

    #[test]
    fn addr_only_cases() {
        assert_eq!(addr_only("Bob <bob@x>"), "bob@x");
        assert_eq!(addr_only("bob@x"), "bob@x");
        assert_eq!(addr_only("(c) bob@x"), "bob@x");
    }
}
