//! Bare-name qualification: `root` becomes `root@domain`, in the address
//! fields of the header and in envelope addresses, as sendmail does for
//! mail from cron, mdadm and other local programs.
//!
//! Only the missing `@domain` is inserted, right after the bare local part;
//! display names, comments, groups, spacing, folding and every other byte
//! stay as they were, so a signature or a reader's eye sees the same
//! field.

use super::complete::is_domain;
use super::error::{MessageError, excerpt};
use super::header::HeaderBlock;

/// The fields whose bare addresses [`qualify_headers`] qualifies. Bcc is
/// not among them: it is never transmitted.
pub const QUALIFIED_FIELDS: [&str; 10] = [
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Resent-From",
    "Resent-Sender",
    "Resent-Reply-To",
    "Resent-To",
    "Resent-Cc",
];

/// Appends `@domain` to every address without a domain in the
/// [`QUALIFIED_FIELDS`]; returns how many addresses it qualified. On an
/// error (a malformed address field, an invalid domain, a line that would
/// grow past 998 octets) nothing is changed.
pub fn qualify_headers(headers: &mut HeaderBlock, domain: &str) -> Result<usize, MessageError> {
    if !is_domain(domain) {
        return Err(MessageError::InvalidDomain {
            domain: excerpt(domain.as_bytes()),
        });
    }
    let mut changes = Vec::new();
    let mut count = 0;
    for (index, field) in headers.fields().iter().enumerate() {
        if !QUALIFIED_FIELDS.iter().any(|name| field.is(name)) {
            continue;
        }
        let ends: Vec<usize> = field
            .addresses()?
            .iter()
            .filter_map(|m| m.bare_end)
            .collect();
        if ends.is_empty() {
            continue;
        }
        let value = field.raw_value();
        let mut new_value = Vec::with_capacity(value.len() + ends.len() * (domain.len() + 1));
        let mut copied = 0;
        for &end in &ends {
            new_value.extend_from_slice(&value[copied..end]);
            new_value.push(b'@');
            new_value.extend_from_slice(domain.as_bytes());
            copied = end;
        }
        new_value.extend_from_slice(&value[copied..]);
        changes.push((index, field.with_raw_value(&new_value)?));
        count += ends.len();
    }
    let fields = headers.fields_mut();
    for (index, field) in changes {
        fields[index] = field;
    }
    Ok(count)
}

/// `addr@domain` for an envelope address without a domain; any other
/// address (and the empty null sender) unchanged.
pub fn qualify_address(addr: &str, domain: &str) -> String {
    match super::address::split_addr(addr) {
        (local, None) if !local.is_empty() => format!("{addr}@{domain}"),
        _ => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::header::{MAX_HEADER_BYTES, read_header_block};

    fn qualify(input: &str) -> Result<(String, usize), MessageError> {
        let mut headers = read_header_block(&mut input.as_bytes(), MAX_HEADER_BYTES).unwrap();
        let n = qualify_headers(&mut headers, "host.example")?;
        Ok((String::from_utf8(headers.to_bytes()).unwrap(), n))
    }

    #[test]
    fn only_the_bare_address_bytes_change() {
        let cases: &[(&str, &str, usize)] = &[
            (
                "From: root (Cron Daemon)\n\n",
                "From: root@host.example (Cron Daemon)\n\n",
                1,
            ),
            ("To: root\r\n\r\n", "To: root@host.example\r\n\r\n", 1),
            (
                "From: mdadm monitoring <root>\n\n",
                "From: mdadm monitoring <root@host.example>\n\n",
                1,
            ),
            (
                "To: a@x,root ,\n\t(c) bin (d), \"Doe, J\"  < j >\n\n",
                "To: a@x,root@host.example ,\n\t(c) bin@host.example (d), \"Doe, J\"  < j@host.example >\n\n",
                3,
            ),
            (
                "Cc: team: root, a@x;, undisclosed:;\n\n",
                "Cc: team: root@host.example, a@x;, undisclosed:;\n\n",
                1,
            ),
            (
                "Reply-To: \"a b\"\n\n",
                "Reply-To: \"a b\"@host.example\n\n",
                1,
            ),
            (
                "Sender: <@relay:root>\n\n",
                "Sender: <@relay:root@host.example>\n\n",
                1,
            ),
            (
                "Resent-From: root\nResent-To: bin\nResent-Cc: <>\n\n",
                "Resent-From: root@host.example\nResent-To: bin@host.example\nResent-Cc: <>\n\n",
                2,
            ),
            ("To: a@x, <b@y>\n\n", "To: a@x, <b@y>\n\n", 0),
            (
                "Bcc: root\nSubject: root\nX-To: root\nMessage-ID: <root>\n\n",
                "Bcc: root\nSubject: root\nX-To: root\nMessage-ID: <root>\n\n",
                0,
            ),
            ("TO: root\n\n", "TO: root@host.example\n\n", 1),
        ];
        for (input, want, n) in cases {
            let (got, count) = qualify(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(got, *want);
            assert_eq!(count, *n, "{input:?}");
        }
    }

    #[test]
    fn errors_change_nothing() {
        let input = "To: root\nCc: <broken\n\n";
        let mut headers = read_header_block(&mut input.as_bytes(), MAX_HEADER_BYTES).unwrap();
        let e = qualify_headers(&mut headers, "h").unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed Cc header: '<' without a matching '>'"
        );
        assert_eq!(headers.to_bytes(), input.as_bytes());

        let e = qualify_headers(&mut headers, "bad domain").unwrap_err();
        assert_eq!(e.to_string(), "\"bad domain\" is not a valid mail domain");

        let long = format!("To: {}\n\n", "r,".repeat(490));
        let mut headers = read_header_block(&mut long.as_bytes(), MAX_HEADER_BYTES).unwrap();
        let e = qualify_headers(&mut headers, "h").unwrap_err();
        assert!(e.to_string().contains("longer than 998 octets"), "{e}");
        assert_eq!(headers.to_bytes(), long.as_bytes());
    }

    #[test]
    fn envelope_addresses() {
        assert_eq!(qualify_address("root", "h.example"), "root@h.example");
        assert_eq!(qualify_address("a@b", "h.example"), "a@b");
        assert_eq!(qualify_address("\"a@b\"", "h"), "\"a@b\"@h");
        assert_eq!(qualify_address("", "h"), "");
    }
}
