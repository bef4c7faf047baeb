//! The `-t` rules: which sender and recipients a message's own header
//! fields name, and which fields must not be transmitted (Bcc).
//!
//! The reference is Python 3.12's `smtplib.SMTP.send_message`:
//!
//! ```text
//! resent = msg.get_all('Resent-Date')
//! header_prefix = '' if resent is None else 'Resent-' if len(resent) == 1 else raise
//! from_addr = getaddresses([msg[p+'Sender'] if p+'Sender' in msg else msg[p+'From']])[0][1]
//! to_addrs = [a[1] for a in getaddresses([msg[p+'To'], msg[p+'Bcc'], msg[p+'Cc']])]
//! ```
//!
//! Where we differ, and why:
//! - Every instance of To, Bcc and Cc is read; `msg[...]` reads only the
//!   first, silently dropping recipients named in a second To field.
//! - The recipient list is de-duplicated (local part exact, domain ASCII
//!   case-insensitive, first occurrence kept), so nobody gets two copies;
//!   empty addresses (`<>`) are left out, nobody can receive them.
//! - A message is "resent" when it has any `Resent-` field, as sendmail and
//!   Postfix decide, not only when it has a Resent-Date: a message with a
//!   Resent-To but no Resent-Date is being resent to the Resent-To, and
//!   smtplib would send it to its original recipients instead. Blocks are
//!   counted by the two fields every block has exactly once (RFC 5322
//!   §3.6.6), Resent-Date and Resent-From; more than one block is refused
//!   like smtplib refuses it, since which block is current is a guess.
//! - No sender field, or an empty one, gives no sender (`None`: the caller
//!   picks its default) where smtplib would use the text "None" or fail.
//! - Malformed address fields are errors (see [`super::address`]); smtplib
//!   guesses.

use std::collections::HashSet;

use super::address::split_addr;
use super::error::MessageError;
use super::header::HeaderBlock;

/// What the header fields say the envelope should be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extracted {
    /// The first mailbox of the first (Resent-)Sender field, else of the
    /// first (Resent-)From field; `Some("")` for `<>`.
    pub sender: Option<String>,
    /// Every address of every (Resent-)To, then (Resent-)Bcc, then
    /// (Resent-)Cc field (smtplib's order), in header order,
    /// de-duplicated. May be empty: the caller decides what that means.
    pub recipients: Vec<String>,
    /// Whether the Resent- fields were used.
    pub resent: bool,
}

/// Applies the `-t` rules to a header block. Fails on more than one
/// Resent- block and on a malformed address field among those read.
pub fn extract_envelope(headers: &HeaderBlock) -> Result<Extracted, MessageError> {
    let blocks = headers
        .get_all("Resent-Date")
        .count()
        .max(headers.get_all("Resent-From").count());
    if blocks > 1 {
        return Err(MessageError::MultipleResentBlocks { count: blocks });
    }
    let resent = headers.fields().iter().any(|f| {
        f.name()
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("Resent-"))
    });
    let prefix = if resent { "Resent-" } else { "" };

    let mut sender = None;
    for name in ["Sender", "From"] {
        if let Some(field) = headers.get(&format!("{prefix}{name}"))
            && let Some(first) = field.addresses()?.into_iter().next()
        {
            sender = Some(first.addr);
            break;
        }
    }

    let mut recipients: Vec<String> = Vec::new();
    // A set, not a scan of the list: a 1 MiB header block can name
    // tens of thousands of addresses.
    let mut seen = HashSet::new();
    for name in ["To", "Bcc", "Cc"] {
        for field in headers.get_all(&format!("{prefix}{name}")) {
            for mailbox in field.addresses()? {
                if !mailbox.addr.is_empty() && seen.insert(dedup_key(&mailbox.addr)) {
                    recipients.push(mailbox.addr);
                }
            }
        }
    }
    Ok(Extracted {
        sender,
        recipients,
        resent,
    })
}

/// Removes every Bcc and Resent-Bcc field, continuation lines included,
/// leaving every other byte as it was; returns how many were removed.
/// Done whether or not `-t` was given: a Bcc field is never transmitted.
pub fn strip_bcc(headers: &mut HeaderBlock) -> usize {
    headers.remove_all("Bcc") + headers.remove_all("Resent-Bcc")
}

/// The final envelope recipient list: each address once, the first
/// spelling kept, two addresses being the same when they are equal
/// ignoring ASCII case (the whole address, local part included: the rule
/// the envelope has always applied to command-line, header and alias
/// recipients together). A set of folded keys, not a scan of the list:
/// `-t` with 60,000 recipients must take linear time, not quadratic.
#[derive(Debug, Default)]
pub struct RecipientList {
    list: Vec<String>,
    seen: HashSet<Box<str>>,
}

impl RecipientList {
    /// Adds `addr` unless an address equal to it ignoring ASCII case is
    /// already in the list; returns whether it was added.
    pub fn push(&mut self, addr: String) -> bool {
        let added = self.seen.insert(addr.to_ascii_lowercase().into_boxed_str());
        if added {
            self.list.push(addr);
        }
        added
    }

    /// Whether no address has been added.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The addresses, in the order they were first added.
    pub fn into_vec(self) -> Vec<String> {
        self.list
    }
}

/// Equal for the same mailbox: the local part exact, the domain with
/// ASCII case folded; a bare local part differs from any `local@domain`.
fn dedup_key(addr: &str) -> (String, Option<String>) {
    let (local, domain) = split_addr(addr);
    (local.to_string(), domain.map(str::to_ascii_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::header::{MAX_HEADER_BYTES, read_header_block};

    fn block(headers: &str) -> HeaderBlock {
        read_header_block(&mut headers.as_bytes(), MAX_HEADER_BYTES).unwrap()
    }

    fn extract(headers: &str) -> Result<Extracted, MessageError> {
        extract_envelope(&block(headers))
    }

    /// smtplib's behaviour on the common cases (cross-checked by hand
    /// against Python 3.11's smtplib/email.utils), with our documented
    /// differences marked.
    #[test]
    fn smtplib_table() {
        type Case = (
            &'static str,
            Option<&'static str>,
            &'static [&'static str],
            bool,
        );
        let cases: &[Case] = &[
            ("From: a@x\nTo: b@y\n\n", Some("a@x"), &["b@y"], false),
            (
                "From: a@x\nTo: b@y, c@y\nCc: d@y\nBcc: e@y\n\n",
                Some("a@x"),
                &["b@y", "c@y", "e@y", "d@y"], // smtplib order: To, Bcc, Cc
                false,
            ),
            // Ours: every To field counts (smtplib: only the first).
            (
                "From: a@x\nTo: b@y\nTo: c@y\n\n",
                Some("a@x"),
                &["b@y", "c@y"],
                false,
            ),
            (
                "Cc: c@y\nTo: b@y\nBcc: d@y\nCc: e@y\n\n",
                None,
                &["b@y", "d@y", "c@y", "e@y"],
                false,
            ),
            // Groups expand; an empty group names nobody.
            (
                "To: team: a@x, b@y;, c@z\n\n",
                None,
                &["a@x", "b@y", "c@z"],
                false,
            ),
            (
                "To: undisclosed-recipients:;\nBcc: s@x\n\n",
                None,
                &["s@x"],
                false,
            ),
            ("To: undisclosed-recipients:;\n\n", None, &[], false),
            // Display names with commas, comments, encoded words, folding.
            (
                "To: \"Doe, John\" <j@x>, (boss) Ann <a@x>\n\n",
                None,
                &["j@x", "a@x"],
                false,
            ),
            (
                "To: =?utf-8?q?Doe=2C_J=40x?= <j@x>\n\n",
                None,
                &["j@x"],
                false,
            ),
            (
                "To: a@x,\n\tb@y,\r\n c@z\n\n",
                None,
                &["a@x", "b@y", "c@z"],
                false,
            ),
            (
                "From: root (Cron Daemon)\nTo: root\n\n",
                Some("root"),
                &["root"],
                false,
            ),
            // Sender wins over From.
            (
                "From: a@x\nSender: s@x\nTo: b@y\n\n",
                Some("s@x"),
                &["b@y"],
                false,
            ),
            (
                "From: A <a@x>, B <b@x>\nTo: t@y\n\n",
                Some("a@x"),
                &["t@y"],
                false,
            ),
            ("From: <>\nTo: t@y\n\n", Some(""), &["t@y"], false),
            // Ours: an empty Sender falls back to From (smtplib: IndexError).
            ("Sender:\nFrom: a@x\n\n", Some("a@x"), &[], false),
            // One Resent block: only the Resent- fields count.
            (
                "Resent-Date: now\nResent-From: r@x\nResent-To: n@y\nFrom: a@x\nTo: b@y\n\n",
                Some("r@x"),
                &["n@y"],
                true,
            ),
            (
                "Resent-Date: now\nResent-Sender: rs@x\nResent-From: r@x\nResent-Cc: c@y\nResent-Bcc: d@y\nResent-To: n@y\nSender: s@x\nTo: b@y\n\n",
                Some("rs@x"),
                &["n@y", "d@y", "c@y"],
                true,
            ),
            // Ours: any Resent- field makes it resent (smtplib: only
            // Resent-Date, and it would send to b@y).
            (
                "Resent-To: n@y\nFrom: a@x\nTo: b@y\n\n",
                None,
                &["n@y"],
                true,
            ),
            // De-duplication: domain case-insensitive, local part exact.
            (
                "To: a@X.org, A@x.org\nCc: a@x.ORG\nBcc: root, root\n\n",
                None,
                &["a@X.org", "A@x.org", "root"],
                false,
            ),
            ("To: <>, a@x\n\n", None, &["a@x"], false),
            ("Subject: nothing\n\n", None, &[], false),
        ];
        for (headers, sender, recipients, resent) in cases {
            let got = extract(headers).unwrap_or_else(|e| panic!("{headers:?}: {e}"));
            assert_eq!(got.sender.as_deref(), *sender, "{headers:?}");
            assert_eq!(got.recipients, *recipients, "{headers:?}");
            assert_eq!(got.resent, *resent, "{headers:?}");
        }
    }

    #[test]
    fn bad_input_table() {
        let cases: &[(&str, &str)] = &[
            (
                "Resent-Date: 1\nResent-From: a@x\nResent-Date: 2\nResent-From: b@x\nResent-To: c@y\n\n",
                "message has 2 Resent- header blocks",
            ),
            (
                "Resent-From: a@x\nResent-From: b@x\n\n",
                "2 Resent- header blocks",
            ),
            (
                "To: team: a@x, b@y\n\n",
                "malformed To header: group \"team\" is not closed with ';'",
            ),
            (
                "To: ok@x\ncc: <a@x\n\n",
                "malformed cc header: '<' without a matching '>'",
            ),
            (
                "Bcc: \"open@x\n\n",
                "malformed Bcc header: a quoted string is not closed",
            ),
            (
                "From: a@x>\n\n",
                "malformed From header: '>' without a matching '<'",
            ),
            (
                "Resent-From: a@x\nResent-To: (x\n\n",
                "malformed Resent-To header",
            ),
        ];
        for (headers, want) in cases {
            let got = extract(headers).unwrap_err().to_string();
            assert!(got.contains(want), "{headers:?}: got {got:?}");
        }
        // Fields that do not count are not parsed.
        assert!(extract("Resent-From: r@x\nResent-To: n@y\nTo: <broken\n\n").is_ok());
    }

    #[test]
    fn many_recipients_are_deduplicated_quickly() {
        let mut headers = String::new();
        for line in 0..1000 {
            let addrs: Vec<String> = (0..30)
                .map(|i| format!("u{}@x", (line * 30 + i) % 20_000))
                .collect();
            headers.push_str(&format!("To: {}\n", addrs.join(", ")));
        }
        headers.push('\n');
        let started = std::time::Instant::now();
        let env = extract(&headers).unwrap();
        assert_eq!(env.recipients.len(), 20_000);
        assert_eq!(env.recipients[19_999], "u19999@x");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    /// The rule the list replaced, kept here as the oracle: a linear scan
    /// with `eq_ignore_ascii_case`, first spelling kept.
    fn scan_dedup(addrs: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in addrs {
            if !out.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                out.push(a.to_string());
            }
        }
        out
    }

    #[test]
    fn recipient_list_matches_the_scan_it_replaced() {
        let cases: &[&[&str]] = &[
            &[],
            &["a@x"],
            &["a@x", "a@x"],
            &["a@X.org", "A@x.ORG", "b@x.org", "a@x.org"],
            // Non-ASCII is compared exactly, only ASCII letters fold.
            &["é@x", "É@x", "é@X", "ß@x", "SS@x", "ss@x"],
            &["root", "ROOT@host", "root@host", "Root"],
            &["\"a b\"@x", "\"A B\"@X", "\"a  b\"@x"],
            &[
                "x@[127.0.0.1]",
                "X@[127.0.0.1]",
                "x@[IPv6:::1]",
                "x@[ipv6:::1]",
            ],
        ];
        for addrs in cases {
            let mut list = RecipientList::default();
            let mut added = 0;
            for a in *addrs {
                added += usize::from(list.push(a.to_string()));
            }
            let want = scan_dedup(addrs);
            assert_eq!(added, want.len(), "{addrs:?}");
            assert_eq!(list.is_empty(), want.is_empty());
            assert_eq!(list.into_vec(), want, "{addrs:?}");
        }
    }

    /// 60,000 addresses, a third of them repeats in another case: the
    /// same list as the scan gives (checked on a prefix the scan can do
    /// quickly) and every first spelling kept in order.
    #[test]
    fn recipient_list_of_sixty_thousand() {
        let addrs: Vec<String> = (0..60_000)
            .map(|i| match i % 3 {
                2 => format!("U{}@X.ORG", i - 2),
                _ => format!("u{i}@x.org"),
            })
            .collect();
        let mut list = RecipientList::default();
        for a in &addrs {
            list.push(a.clone());
        }
        let got = list.into_vec();
        assert_eq!(got.len(), 40_000);
        assert!(got.iter().all(|a| a.starts_with('u')));
        let prefix: Vec<&str> = addrs[..3000].iter().map(String::as_str).collect();
        assert_eq!(got[..2000], scan_dedup(&prefix)[..]);
    }

    #[test]
    fn strip_bcc_removes_only_bcc_fields() {
        let input = "From: a@x\nBcc: s@x,\n  t@x\nTo: b@y\nbcc:\nResent-Bcc: r@x\n\tu@x\nX-Bcc: stays\nSubject: Bcc: stays\n\nbody\n";
        let mut headers = block(input);
        assert_eq!(strip_bcc(&mut headers), 3);
        assert_eq!(
            headers.to_bytes(),
            b"From: a@x\nTo: b@y\nX-Bcc: stays\nSubject: Bcc: stays\n\n"
        );
        assert_eq!(strip_bcc(&mut headers), 0);
    }

    #[test]
    fn extraction_reads_bcc_before_it_is_stripped() {
        let mut headers = block("To: a@x\nBcc: hidden@x\n\n");
        let env = extract_envelope(&headers).unwrap();
        strip_bcc(&mut headers);
        assert_eq!(env.recipients, ["a@x", "hidden@x"]);
        assert!(!headers.to_bytes().windows(6).any(|w| w == b"hidden"));
    }
}
