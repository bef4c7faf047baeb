//! Header completion: the From, Date and Message-ID fields sendmail and
//! Postfix add to a message that lacks them. A field the message has is
//! never changed; each addition can be switched off.
//!
//! Everything the fields are made of is handed in (the address, the full
//! name, the moment and its UTC offset, the domain), so this stays a pure
//! function; [`DateStamp::now_local`] asks jiff for the moment and this
//! system's UTC offset, and jiff writes the RFC 5322 date. The one
//! exception is the Message-ID's uniqueness, which takes the clock, the
//! process id and random bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::address::parse_address_list;
use super::error::{MessageError, excerpt};
use super::header::HeaderBlock;

/// Which fields to add when missing, and what they say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// Add `From:` naming this originator when the message has no From.
    pub from: Option<Originator>,
    /// Add `Date:` with this moment when the message has no Date.
    pub date: Option<DateStamp>,
    /// Add `Message-ID: <unique@domain>` with this domain when the
    /// message has no Message-ID.
    pub message_id_domain: Option<String>,
}

/// The sender for an added From field: `-F` full name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originator {
    pub full_name: Option<String>,
    pub addr: String,
}

/// A moment and the UTC offset to show it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateStamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix_seconds: i64,
    /// Seconds east of UTC (+3600 for CET); shown as `+HHMM`.
    pub utc_offset_seconds: i32,
}

impl DateStamp {
    /// Now, shown with `utc_offset_seconds`.
    pub fn now(utc_offset_seconds: i32) -> DateStamp {
        DateStamp {
            unix_seconds: unix_now().0,
            utc_offset_seconds,
        }
    }

    /// Now, in this system's time zone ([`crate::zone::local`]).
    pub fn now_local() -> DateStamp {
        let now = jiff::Timestamp::now();
        DateStamp {
            unix_seconds: now.as_second(),
            utc_offset_seconds: crate::zone::local().to_offset(now).seconds(),
        }
    }

    /// RFC 5322 §3.3 `date-time`: `Tue, 01 Jul 2003 10:52:37 +0200`.
    pub fn to_rfc5322(&self) -> String {
        use jiff::tz::{Offset, TimeZone};
        // An offset beyond ±24h is not a time zone; show UTC instead.
        let offset = Some(self.utc_offset_seconds)
            .filter(|o| o.unsigned_abs() < 86_400)
            .and_then(|o| Offset::from_seconds(o).ok())
            .unwrap_or(Offset::UTC);
        let at =
            jiff::Timestamp::from_second(self.unix_seconds).unwrap_or(if self.unix_seconds < 0 {
                jiff::Timestamp::MIN
            } else {
                jiff::Timestamp::MAX
            });
        // jiff's rfc2822 printer writes the day as "1"; mail has always
        // carried it as "01", and RFC 5322 allows both.
        at.to_zoned_datetime(TimeZone::fixed(offset))
            .strftime("%a, %d %b %Y %H:%M:%S %z")
            .to_string()
    }
}

/// Adds the fields `completion` asks for that `headers` lacks, after the
/// existing fields, in the order From, Date, Message-ID. Fails, adding
/// nothing, if the address or domain handed in cannot be put in a header.
pub fn complete_headers(
    headers: &mut HeaderBlock,
    completion: &Completion,
) -> Result<(), MessageError> {
    let mut added = Vec::new();
    if let Some(originator) = &completion.from
        && !headers.contains("From")
    {
        added.push(("From", from_value(originator)?));
    }
    if let Some(date) = &completion.date
        && !headers.contains("Date")
    {
        added.push(("Date", date.to_rfc5322()));
    }
    if let Some(domain) = &completion.message_id_domain
        && !headers.contains("Message-ID")
    {
        if !is_domain(domain) {
            return Err(MessageError::InvalidDomain {
                domain: excerpt(domain.as_bytes()),
            });
        }
        added.push(("Message-ID", new_message_id(domain)));
    }
    let mut completed = headers.clone();
    for (name, value) in added {
        completed.append(name, &value)?;
    }
    *headers = completed;
    Ok(())
}

/// Whether `domain` can stand after the `@` of an address or Message-ID:
/// an ASCII dot-atom (`mail.example.org`) or a domain literal
/// (`[192.0.2.1]`).
pub fn is_domain(domain: &str) -> bool {
    if let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return inner
            .bytes()
            .all(|b| (33..=126).contains(&b) && !matches!(b, b'[' | b']' | b'\\'));
    }
    !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        })
}

/// The value of an added From field: `addr`, `Name <addr>`,
/// `"Doe, John" <addr>` or RFC 2047 encoded words for a name that is not
/// printable ASCII or would make the line longer than 78 characters.
fn from_value(originator: &Originator) -> Result<String, MessageError> {
    let addr = &originator.addr;
    let single = parse_address_list(addr.as_bytes())
        .ok()
        .filter(|list| list.len() == 1 && list[0].addr == *addr && list[0].display_name.is_none());
    if addr.is_empty() || single.is_none() {
        return Err(MessageError::InvalidField {
            name: "From".into(),
            reason: format!("\"{}\" is not a single address", excerpt(addr.as_bytes())),
        });
    }
    // Control characters (a newline from -F) never reach the header.
    let name: String = originator
        .full_name
        .as_deref()
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let name = name.trim();
    if name.is_empty() {
        return Ok(addr.clone());
    }
    if name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        let phrase = if name.bytes().all(|b| b == b' ' || is_atext(b)) {
            name.to_string()
        } else {
            let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\"")
        };
        let value = format!("{phrase} <{addr}>");
        if "From: ".len() + value.len() <= 78 {
            return Ok(value);
        }
    }
    let words = encoded_words(name);
    let last_line = words.rsplit("\r\n").next().unwrap_or("");
    let first_line = !words.contains('\n');
    let used = last_line.len() + if first_line { "From: ".len() } else { 0 };
    let fold = if used + " <>".len() + addr.len() <= 78 {
        " "
    } else {
        "\r\n "
    };
    Ok(format!("{words}{fold}<{addr}>"))
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// RFC 2047 `B` encoded words of at most 75 characters each, split on
/// character boundaries and folded onto separate lines.
fn encoded_words(text: &str) -> String {
    // 75 - len("=?UTF-8?B??=") = 63 base64 characters: 45 bytes.
    const CHUNK: usize = 45;
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + CHUNK).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&text[start..end]);
        words.push(format!("=?UTF-8?B?{b64}?="));
        start = end;
    }
    words.join("\r\n ")
}

/// `<secs.nanos.pid.counter.random@domain>`: the clock, the process and a
/// per-process counter make it unique on this host, 64 random bits make it
/// unique across hosts sharing a domain.
fn new_message_id(domain: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (secs, nanos) = unix_now();
    let mut random = [0u8; 8];
    // Without randomness the rest still makes the id unique on this host.
    let _ = getrandom::fill(&mut random);
    format!(
        "<{secs}.{nanos:09}.{}.{}.{:016x}@{domain}>",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        u64::from_be_bytes(random)
    )
}

fn unix_now() -> (i64, u32) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(_) => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::address::parse_address_list;
    use crate::message::header::{MAX_HEADER_BYTES, read_header_block};

    fn block(headers: &str) -> HeaderBlock {
        read_header_block(&mut headers.as_bytes(), MAX_HEADER_BYTES).unwrap()
    }

    fn from(full_name: Option<&str>, addr: &str) -> Option<Originator> {
        Some(Originator {
            full_name: full_name.map(str::to_string),
            addr: addr.to_string(),
        })
    }

    fn added_from(full_name: Option<&str>) -> String {
        let mut headers = block("Subject: x\n\n");
        let completion = Completion {
            from: from(full_name, "root@host.example"),
            ..Completion::default()
        };
        complete_headers(&mut headers, &completion).unwrap();
        let field = headers.get("From").unwrap();
        String::from_utf8(field.raw_value().to_vec()).unwrap()
    }

    #[test]
    fn rfc5322_dates() {
        let d = |unix_seconds, utc_offset_seconds| {
            DateStamp {
                unix_seconds,
                utc_offset_seconds,
            }
            .to_rfc5322()
        };
        assert_eq!(d(0, 0), "Thu, 01 Jan 1970 00:00:00 +0000");
        // RFC 5322 Appendix A.1.1's date, in its own zone.
        assert_eq!(d(880_127_706, -6 * 3600), "Fri, 21 Nov 1997 09:55:06 -0600");
        assert_eq!(d(1_709_210_096, 3600), "Thu, 29 Feb 2024 13:34:56 +0100");
        assert_eq!(d(1_709_210_096, 19_800), "Thu, 29 Feb 2024 18:04:56 +0530");
        assert_eq!(d(1_709_210_096, -34_200), "Thu, 29 Feb 2024 03:04:56 -0930");
        assert_eq!(d(4_102_444_799, 0), "Thu, 31 Dec 2099 23:59:59 +0000");
        assert_eq!(d(951_782_400, 0), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(d(0, 100_000), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(d(0, i32::MIN), "Thu, 01 Jan 1970 00:00:00 +0000");
        // Absurd instants still format (as proleptic Gregorian years).
        assert!(d(i64::MAX, 0).ends_with("+0000"));
        assert!(d(i64::MIN, -3600).ends_with("-0100"));
        // Mail-parser reads it back to the same instant.
        let text = d(1_709_210_096, -34_200);
        let parsed = mail_parser::DateTime::parse_rfc822(&text).unwrap();
        assert_eq!(parsed.to_timestamp(), 1_709_210_096);
    }

    #[test]
    fn adds_missing_fields_after_the_others() {
        let mut headers = block("Subject: hi\nTo: a@x\n\n");
        let completion = Completion {
            from: from(Some("Cron Daemon"), "root@host.example"),
            date: Some(DateStamp {
                unix_seconds: 0,
                utc_offset_seconds: 0,
            }),
            message_id_domain: Some("host.example".into()),
        };
        complete_headers(&mut headers, &completion).unwrap();
        let text = String::from_utf8(headers.to_bytes()).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert_eq!(
            lines[..4],
            [
                "Subject: hi\n",
                "To: a@x\n",
                "From: Cron Daemon <root@host.example>\r\n",
                "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n",
            ]
        );
        assert!(lines[4].starts_with("Message-ID: <"), "{}", lines[4]);
        assert!(lines[4].ends_with("@host.example>\r\n"));
        assert_eq!(lines[5], "\n");
    }

    #[test]
    fn existing_fields_are_never_changed() {
        let input = "from: someone@else\nDATE: whenever\nMessage-Id: <x@y>\n\n";
        let mut headers = block(input);
        let completion = Completion {
            from: from(Some("Root"), "root@h"),
            date: Some(DateStamp::now(0)),
            message_id_domain: Some("h".into()),
        };
        complete_headers(&mut headers, &completion).unwrap();
        assert_eq!(headers.to_bytes(), input.as_bytes());
    }

    #[test]
    fn nothing_asked_nothing_added() {
        let mut headers = block("Subject: x\n\n");
        complete_headers(&mut headers, &Completion::default()).unwrap();
        assert_eq!(headers.to_bytes(), b"Subject: x\n\n");
    }

    #[test]
    fn from_display_names() {
        assert_eq!(added_from(None), " root@host.example");
        assert_eq!(added_from(Some("  ")), " root@host.example");
        assert_eq!(
            added_from(Some("Cron Daemon")),
            " Cron Daemon <root@host.example>"
        );
        assert_eq!(
            added_from(Some("Doe, John")),
            " \"Doe, John\" <root@host.example>"
        );
        assert_eq!(
            added_from(Some("J. \"Q\" \\ Public")),
            " \"J. \\\"Q\\\" \\\\ Public\" <root@host.example>"
        );
        assert_eq!(
            added_from(Some("Jörg")),
            " =?UTF-8?B?SsO2cmc=?= <root@host.example>"
        );
        // A newline from -F cannot start a new field.
        assert_eq!(
            added_from(Some("x\r\nBcc: evil@x")),
            " \"x  Bcc: evil@x\" <root@host.example>"
        );
    }

    #[test]
    fn long_and_non_ascii_names_fold_into_encoded_words() {
        for name in ["é".repeat(200), "a".repeat(300), "日本語の名前".repeat(20)] {
            let value = added_from(Some(&name));
            for (i, line) in value.split("\r\n").enumerate() {
                let prefix = if i == 0 { "From:".len() } else { 0 };
                assert!(prefix + line.len() <= 78, "{line:?}");
            }
            // Reads back as one mailbox with the same name.
            let list = parse_address_list(value.as_bytes()).unwrap();
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].addr, "root@host.example");
            assert_eq!(list[0].display_name.as_deref(), Some(name.as_str()));
        }
    }

    #[test]
    fn bad_arguments_are_refused_and_nothing_is_added() {
        let cases: Vec<(Completion, &str)> = vec![
            (
                Completion {
                    from: from(None, "root@h\r\nBcc: evil@x"),
                    ..Completion::default()
                },
                "cannot add the From header: \"root@h\\r\\nBcc: evil@x\" is not a single address",
            ),
            (
                Completion {
                    from: from(None, "a@x, b@y"),
                    ..Completion::default()
                },
                "is not a single address",
            ),
            (
                Completion {
                    from: from(None, "Name <a@x>"),
                    ..Completion::default()
                },
                "is not a single address",
            ),
            (
                Completion {
                    from: from(None, ""),
                    ..Completion::default()
                },
                "is not a single address",
            ),
            (
                Completion {
                    date: Some(DateStamp::now(0)),
                    message_id_domain: Some("bad domain".into()),
                    ..Completion::default()
                },
                "\"bad domain\" is not a valid mail domain",
            ),
        ];
        for (completion, want) in cases {
            let mut headers = block("Subject: x\n\n");
            let e = complete_headers(&mut headers, &completion).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert_eq!(e.kind(), crate::message::Kind::Argument);
            assert_eq!(headers.to_bytes(), b"Subject: x\n\n");
        }
    }

    #[test]
    fn message_ids_are_unique_and_well_formed() {
        let a = new_message_id("h.example");
        let b = new_message_id("h.example");
        assert_ne!(a, b);
        let mut stream = mail_parser::parsers::MessageStream::new(b" <x@y>\n");
        assert!(matches!(
            stream.parse_id(),
            mail_parser::HeaderValue::Text(_)
        ));
        let raw = format!(" {a}\n");
        let mut stream = mail_parser::parsers::MessageStream::new(raw.as_bytes());
        match stream.parse_id() {
            mail_parser::HeaderValue::Text(id) => assert_eq!(format!("<{id}>"), a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn domains() {
        for good in ["h", "mail.example.org", "[192.0.2.1]", "[IPv6:2001:db8::1]"] {
            assert!(is_domain(good), "{good}");
        }
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "a b",
            "a@b",
            "[a]b]",
            "é.example",
            "a\r\n",
        ] {
            assert!(!is_domain(bad), "{bad}");
        }
    }
}
