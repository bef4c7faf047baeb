//! The plan for one message: which profile, which envelope, which header
//! block goes on the wire. Built from argv, the configuration and the
//! message's own header block, before a byte goes anywhere.
//!
//! The rules, in the order they apply:
//! - sender: `-f`/`-r`/`--from`, else the profile's `from`, else (with
//!   `read_envelope_from`) the message's Sender or From, else the login
//!   name at the profile's domain (or this machine's name). `""` and `<>`
//!   are the null sender; `Name <addr>` gives `addr`; a bare name is
//!   qualified with the domain.
//! - recipients: those on the command line, plus with `-t` those of the
//!   message's To, Cc and Bcc (every instance; or of its one Resent-
//!   block), as Postfix and msmtp add them; each address once. Aliases
//!   apply to bare names, then the rest are qualified with the domain.
//! - headers: Bcc and Resent-Bcc are always removed (as msmtp does by
//!   default); From, Date and Message-ID are added when missing and the
//!   profile says so; bare names in address fields are qualified.

use std::io::{BufRead, Cursor, Read};

use super::input::TempMessage;
use super::invocation::{Settings, Submission};
use super::{Failure, Report, local};
use crate::config::{Config, Profile, Target, TlsMode, Transport};
use crate::exit::Sysexit;
use crate::message::{self, Completion, DateStamp, HeaderBlock, MAX_HEADER_BYTES, Originator};
use crate::smtp::Envelope;
use crate::smtp::command::addr_only;
use crate::{hostname, identity};

/// Everything decided about one message.
pub struct Plan {
    pub profile: Profile,
    pub envelope: Envelope,
    /// The header block as it will be transmitted.
    pub headers: Vec<u8>,
    /// The domain bare names are qualified with.
    pub domain: String,
}

/// The profile: `-a`, else the one whose `from` matches the sender, else
/// the default; then the command line's options over it. Without a
/// configuration file, the flags alone.
pub fn choose_profile(
    settings: &Settings,
    config: Option<&Config>,
    sender: Option<&str>,
    explicit_from: Option<&str>,
) -> Result<Profile, Failure> {
    let mut o = settings.overrides.clone();
    o.from = explicit_from.map(str::to_owned);
    match config {
        Some(c) => {
            let mut p = c.select(settings.profile.as_deref(), sender)?;
            p.apply_overrides(&o)?;
            Ok(p)
        }
        None if settings.profile.is_some() => Err(Failure::new(
            Sysexit::Config,
            format!(
                "profile {:?} asked for, but no configuration file was found (give -C FILE or set SMTPSEND_CONFIG)",
                settings.profile.as_deref().unwrap_or_default()
            ),
        )),
        None => Ok(Profile::from_overrides(&o)?),
    }
}

/// `""`, `<>` → the null sender; `Name <addr>` → `addr`.
fn bare_address(s: &str) -> String {
    let a = addr_only(s);
    if a == "<>" { String::new() } else { a }
}

/// Qualifies a bare local name with the domain; leaves the null sender.
fn qualify(addr: &str, domain: &str) -> String {
    if addr.is_empty() {
        String::new()
    } else {
        message::qualify_address(addr, domain)
    }
}

impl Plan {
    /// Reads the header block from `input` (leaving the body there) and
    /// decides everything.
    pub fn build(
        settings: &Settings,
        sub: &Submission,
        config: Option<&Config>,
        input: &mut dyn BufRead,
    ) -> Result<Plan, Failure> {
        let mut headers = message::read_header_block(input, MAX_HEADER_BYTES)?;
        let at_end = input
            .fill_buf()
            .map_err(|e| Failure::new(Sysexit::IoErr, format!("cannot read the message: {e}")))?
            .is_empty();
        if headers.fields().is_empty() && at_end {
            return Err(Failure::new(
                Sysexit::NoInput,
                "the message is empty: nothing was sent",
            ));
        }
        let extracted = if sub.read_recipients || sub.read_envelope_from {
            Some(message::extract_envelope(&headers)?)
        } else {
            None
        };
        let header_sender = extracted
            .as_ref()
            .and_then(|e| e.sender.clone())
            .filter(|_| sub.read_envelope_from);
        let explicit = sub.sender.as_deref().map(bare_address);
        let selecting = explicit.clone().or(header_sender);
        let profile = choose_profile(
            settings,
            config,
            selecting.as_deref(),
            sub.sender.as_deref(),
        )?;
        let domain = profile
            .domain
            .clone()
            .or_else(crate::mta::system_domain) // Debian's /etc/mailname
            .or_else(hostname::fqdn)
            .unwrap_or_else(|| "localhost.localdomain".into());

        let read_from = profile.read_envelope_from || sub.read_envelope_from;
        let header_sender = if read_from && explicit.is_none() && profile.from.is_none() {
            match &extracted {
                Some(e) => e.sender.clone(),
                None => message::extract_envelope(&headers)?.sender,
            }
        } else {
            None
        };
        let sender = explicit
            .or_else(|| profile.from.as_deref().map(bare_address))
            .or(header_sender)
            .unwrap_or_else(identity::login_name);
        let sender = qualify(&sender, &domain);

        let mut wanted: Vec<String> = sub.recipients.iter().map(|r| addr_only(r)).collect();
        if sub.read_recipients {
            wanted.extend(extracted.iter().flat_map(|e| e.recipients.iter().cloned()));
        }
        let mut recipients = message::RecipientList::default();
        // Debian's /etc/aliases, when the configuration has no [aliases].
        let system_aliases = config
            .is_none_or(|c| c.aliases().is_empty())
            .then(crate::mta::system_aliases)
            .flatten();
        for r in wanted.iter().filter(|r| !r.is_empty()) {
            let targets = match (config, &system_aliases) {
                (_, Some(a)) => a.resolve(r)?,
                (Some(c), None) => c.aliases().resolve(r)?,
                (None, None) if r.contains('@') => vec![Target::Address(r.clone())],
                (None, None) => vec![Target::Unqualified(r.clone())],
            };
            for t in targets {
                let addr = match t {
                    Target::Address(a) => a,
                    Target::Unqualified(a) => qualify(&a, &domain),
                };
                recipients.push(addr);
            }
        }
        if recipients.is_empty() {
            return Err(Failure::new(
                Sysexit::Usage,
                if sub.read_recipients {
                    "no recipients: the message has no To, Cc or Bcc and none were given on the command line"
                } else {
                    "no recipients given: name at least one recipient address, or use -t to read them from the message"
                },
            ));
        }
        let recipients = recipients.into_vec();

        // Nothing that cannot be an address reaches the spool: a CR, LF or
        // space smuggled into -f or a recipient is refused here.
        for (addr, from_argv) in std::iter::once((&sender, sub.sender.is_some()))
            .chain(recipients.iter().map(|r| (r, !sub.read_recipients)))
        {
            if let Err(e) = crate::smtp::command::quoteaddr(addr) {
                return Err(Failure::new(
                    if from_argv {
                        Sysexit::Usage
                    } else {
                        Sysexit::DataErr
                    },
                    format!("{e}: nothing was sent"),
                ));
            }
        }
        transform_headers(&mut headers, &profile, sub, &sender, &domain)?;

        let mut profile = profile;
        if settings.no_queue {
            profile.queue = false;
        }
        Ok(Plan {
            profile,
            envelope: Envelope {
                from: sender,
                to: recipients,
                dsn: sub.dsn.clone(),
                ..Envelope::default()
            },
            headers: headers.to_bytes(),
            domain,
        })
    }

    /// Copies the transmitted header block and the rest of `body` to a
    /// temporary file (for `--dry-run` and direct delivery).
    pub fn buffer(&self, body: &mut dyn Read) -> Result<TempMessage, Failure> {
        let mut whole = Cursor::new(&self.headers).chain(body);
        TempMessage::from_reader(&mut whole)
            .map_err(|e| Failure::new(Sysexit::IoErr, format!("cannot copy the message: {e}")))
    }

    /// `--dry-run`: what would happen, on standard output, in words.
    pub fn dry_run(&self, msg: &mut TempMessage) -> Result<Report, Failure> {
        let p = &self.profile;
        let mut out = String::new();
        out.push_str(&format!("profile: {}\n", p.name));
        let (local, remote): (Vec<&String>, Vec<&String>) =
            self.envelope.to.iter().partition(|a| local::is_local(a, p));
        if !local.is_empty() && local::one_maildir(p) {
            out.push_str(&format!(
                "local delivery: Maildir {}\n",
                local::maildir_root(p)
                    .map(|m| m.display().to_string())
                    .unwrap_or_else(|| "(no home directory)".into())
            ));
        } else if !local.is_empty() {
            out.push_str(&format!(
                "local delivery: each recipient's mailbox (~USER/Maildir, else {}/USER)\n",
                local::mail_dir().display()
            ));
        }
        if !remote.is_empty() {
            if p.hosts.is_empty() {
                out.push_str("transport: none configured (remote recipients are queued)\n");
            } else {
                out.push_str(&format!("transport: {}\n", describe_transport(p)));
                out.push_str(&format!(
                    "auth: {}{}\n",
                    p.auth,
                    p.user
                        .as_deref()
                        .map(|u| format!(" as {u}"))
                        .unwrap_or_default()
                ));
            }
        }
        out.push_str(&format!("sender: <{}>\n", self.envelope.from));
        for r in &self.envelope.to {
            let how = if local::is_local(r, p) {
                "local"
            } else {
                "relay"
            };
            out.push_str(&format!("recipient: <{r}> ({how})\n"));
        }
        out.push_str(&format!("size: {} bytes\n\n", msg.info.size));
        let mut text = Vec::new();
        msg.reader()
            .and_then(|r| r.read_to_end(&mut text))
            .map_err(|e| Failure::new(Sysexit::IoErr, format!("cannot reread the message: {e}")))?;
        out.push_str(&String::from_utf8_lossy(&text));
        Ok(Report {
            output: out,
            ..Report::default()
        })
    }
}

/// `SMTP smtp.example.com:587 (STARTTLS)`: the relay as a person reads it.
pub fn describe_transport(p: &Profile) -> String {
    let protocol = match p.transport {
        Transport::Lmtp => "LMTP",
        _ => "SMTP",
    };
    let hosts: Vec<String> = p
        .hosts
        .iter()
        .map(|h| match super::relay::dial(h, p) {
            Ok((name, Some(port))) if name.contains(':') => format!("[{name}]:{port}"),
            Ok((name, Some(port))) => format!("{name}:{port}"),
            Ok((name, None)) => name,
            Err(_) => h.clone(),
        })
        .collect();
    let security = match p.tls {
        TlsMode::None => "no TLS",
        TlsMode::Starttls => "STARTTLS",
        TlsMode::Tls => "TLS",
    };
    format!("{protocol} {} ({security})", hosts.join(", then "))
}

fn transform_headers(
    headers: &mut HeaderBlock,
    profile: &Profile,
    sub: &Submission,
    sender: &str,
    domain: &str,
) -> Result<(), Failure> {
    message::strip_bcc(headers);
    if profile.qualify_headers {
        message::qualify_headers(headers, domain)?;
    }
    let from_addr = if sender.is_empty() {
        qualify(&identity::login_name(), domain)
    } else {
        sender.to_owned()
    };
    let completion = Completion {
        from: profile.add_from.then(|| Originator {
            full_name: sub.full_name.clone(),
            addr: from_addr,
        }),
        date: profile.add_date.then(DateStamp::now_local),
        message_id_domain: profile.add_message_id.then(|| domain.to_owned()),
    };
    message::complete_headers(headers, &completion)?;
    Ok(())
}
