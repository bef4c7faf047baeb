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

use super::input::Spooled;
use super::relay;
use super::{DebugSink, Failure, Report};
use crate::cli::Args;
use crate::config::{Auth, Config, Overrides, Profile, Target, Transport};
use crate::exit::Sysexit;
use crate::message::{
    self, Completion, DateStamp, HeaderBlock, MAX_HEADER_BYTES, Originator, localtime,
};
use crate::smtp::command::addr_only;
use crate::smtp::{Dsn, Envelope};
use crate::{hostname, identity, maildir};

/// Everything decided about one message.
pub struct Plan {
    pub profile: Profile,
    pub envelope: Envelope,
    /// The header block as it will be transmitted.
    pub headers: Vec<u8>,
    /// The domain bare names are qualified with.
    pub domain: String,
}

/// The command-line options that override a profile.
pub fn overrides(args: &Args) -> Result<Overrides, Failure> {
    let auth = args
        .auth
        .as_deref()
        .map(|a| a.parse::<Auth>())
        .transpose()
        .map_err(|e| Failure::new(Sysexit::Usage, format!("--auth: {e}")))?;
    Ok(Overrides {
        host: args.host.clone(),
        port: args.port,
        tls: args.tls,
        tls_verify: args.tls_verify,
        tls_ca_file: args.tls_ca_file.clone(),
        auth,
        user: args.user.clone(),
        password_command: args.password_command.clone(),
        from: args.sender().map(str::to_owned),
        domain: args.domain.clone(),
        timeout: args.timeout,
        read_envelope_from: args.read_envelope_from.then_some(true),
    })
}

/// The profile: `-a`, else the one whose `from` matches the sender, else
/// the default; then the command line's options over it. Without a
/// configuration file, the flags alone.
pub fn choose_profile(
    args: &Args,
    config: Option<&Config>,
    sender: Option<&str>,
) -> Result<Profile, Failure> {
    let o = overrides(args)?;
    match config {
        Some(c) => {
            let mut p = c.select(args.profile.as_deref(), sender)?;
            p.apply_overrides(&o)?;
            Ok(p)
        }
        None if args.profile.is_some() => Err(Failure::new(
            Sysexit::Config,
            format!(
                "profile {:?} asked for, but no configuration file was found (give -C FILE or set SMTPSEND_CONFIG)",
                args.profile.as_deref().unwrap_or_default()
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
        args: &Args,
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
        let extracted = if args.read_recipients || args.read_envelope_from {
            Some(message::extract_envelope(&headers)?)
        } else {
            None
        };
        let header_sender = extracted
            .as_ref()
            .and_then(|e| e.sender.clone())
            .filter(|_| args.read_envelope_from);
        // Raw argv first: a control character means the caller's string is
        // not one address, whatever a parser would make of it.
        for raw in args
            .sender()
            .into_iter()
            .chain(args.recipients.iter().map(String::as_str))
        {
            crate::smtp::command::check_line_safe("address", raw)
                .map_err(|e| Failure::new(Sysexit::Usage, format!("{e}: nothing was sent")))?;
        }
        let explicit = args.sender().map(bare_address);
        let selecting = explicit.clone().or(header_sender);
        let profile = choose_profile(args, config, selecting.as_deref())?;
        let domain = profile
            .domain
            .clone()
            .or_else(hostname::fqdn)
            .unwrap_or_else(|| "localhost.localdomain".into());

        let read_from = profile.read_envelope_from || args.read_envelope_from;
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

        let mut wanted: Vec<String> = args.recipients.iter().map(|r| addr_only(r)).collect();
        if args.read_recipients {
            wanted.extend(extracted.iter().flat_map(|e| e.recipients.iter().cloned()));
        }
        let mut recipients = message::RecipientList::default();
        for r in wanted.iter().filter(|r| !r.is_empty()) {
            let targets = match config {
                Some(c) => c.aliases().resolve(r)?,
                None if r.contains('@') => vec![Target::Address(r.clone())],
                None => vec![Target::Unqualified(r.clone())],
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
                if args.read_recipients {
                    "no recipients: the message has no To, Cc or Bcc and none were given on the command line"
                } else {
                    "no recipients given: name at least one recipient address, or use -t to read them from the message"
                },
            ));
        }
        let recipients = recipients.into_vec();

        // Nothing that cannot be an address reaches the spool: a CR, LF or
        // space smuggled into -f or a recipient is refused here.
        for (addr, from_argv) in std::iter::once((&sender, args.sender().is_some()))
            .chain(recipients.iter().map(|r| (r, !args.read_recipients)))
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
        transform_headers(&mut headers, &profile, args, &sender, &domain)?;

        let dsn =
            (args.notify.is_some() || args.ret.is_some() || args.envid.is_some()).then(|| Dsn {
                notify: args
                    .notify
                    .as_deref()
                    .map(|n| {
                        n.split(',')
                            .map(|s| s.trim().to_ascii_uppercase())
                            .collect()
                    })
                    .unwrap_or_default(),
                ret: args.ret.as_deref().map(str::to_ascii_uppercase),
                envid: args.envid.clone(),
                orcpt: false,
            });
        Ok(Plan {
            profile,
            envelope: Envelope {
                from: sender,
                to: recipients,
                dsn,
                ..Envelope::default()
            },
            headers: headers.to_bytes(),
            domain,
        })
    }

    /// Writes the transmitted header block and the rest of `body` to the
    /// spool.
    pub fn spool(&self, body: &mut dyn Read) -> Result<Spooled, Failure> {
        let mut whole = Cursor::new(&self.headers).chain(body);
        Spooled::from_reader(&mut whole)
            .map_err(|e| Failure::new(Sysexit::IoErr, format!("cannot spool the message: {e}")))
    }

    /// Whether the message stays on this machine.
    pub fn is_local(&self) -> bool {
        match self.profile.transport {
            Transport::Maildir => true,
            Transport::Smtp | Transport::Lmtp => self.profile.hosts.is_empty(),
        }
    }

    /// `--dry-run`: what would happen, on standard output.
    pub fn dry_run(&self, spooled: &mut Spooled) -> Result<Report, Failure> {
        let p = &self.profile;
        let mut out = String::new();
        out.push_str(&format!("profile: {}\n", p.name));
        if self.is_local() {
            out.push_str(&format!(
                "transport: maildir {}\n",
                local_maildir(p)
                    .map(|m| m.display().to_string())
                    .unwrap_or_default()
            ));
        } else {
            out.push_str(&format!(
                "transport: {:?} {} port {} tls {:?}\n",
                p.transport,
                p.hosts.join(", "),
                p.effective_port(),
                p.tls
            ));
            out.push_str(&format!(
                "auth: {}{}\n",
                p.auth,
                p.user
                    .as_deref()
                    .map(|u| format!(" as {u}"))
                    .unwrap_or_default()
            ));
        }
        out.push_str(&format!("sender: <{}>\n", self.envelope.from));
        for r in &self.envelope.to {
            out.push_str(&format!("recipient: <{r}>\n"));
        }
        out.push_str(&format!("size: {} bytes\n\n", spooled.info.size));
        let mut text = Vec::new();
        spooled
            .reader()
            .and_then(|r| r.read_to_end(&mut text))
            .map_err(|e| Failure::new(Sysexit::IoErr, format!("cannot reread the message: {e}")))?;
        out.push_str(&String::from_utf8_lossy(&text));
        Ok(Report {
            output: out,
            ..Report::default()
        })
    }

    /// Delivers: into the Maildir, or through the relay.
    pub fn deliver(
        &self,
        args: &Args,
        spooled: &mut Spooled,
        debug: DebugSink,
    ) -> Result<Report, Failure> {
        if self.is_local() {
            return self.deliver_locally(spooled);
        }
        relay::deliver(self, args, spooled, debug)
    }

    fn deliver_locally(&self, spooled: &mut Spooled) -> Result<Report, Failure> {
        let root = local_maildir(&self.profile).ok_or_else(|| {
            Failure::new(
                Sysexit::Config,
                "no relay configured and no home directory for ~/Maildir: set MAILDIR or give --host",
            )
        })?;
        let prefix = format!(
            "Return-Path: <{}>\nDelivered-To: {}\n",
            self.envelope.from,
            self.envelope.to.join(", ")
        );
        let reader = spooled.reader().map_err(|e| {
            Failure::new(
                Sysexit::IoErr,
                format!("cannot reread the spooled message: {e}"),
            )
        })?;
        let path = maildir::deliver(&root, prefix.as_bytes(), reader).map_err(|e| {
            Failure::new(
                Sysexit::CantCreate,
                format!(
                    "cannot deliver into {}: {e} (set MAILDIR to a writable Maildir, or configure a relay)",
                    root.display()
                ),
            )
        })?;
        let note = if self.profile.transport == Transport::Maildir {
            format!("delivered to {}", path.display())
        } else {
            format!(
                "no relay configured: delivered locally to {} (give --host, or a configuration file, to send through a relay)",
                path.display()
            )
        };
        Ok(Report {
            notices: vec![note],
            status: Some(crate::log::Status::Local),
            reply: Some(path.display().to_string()),
            ..Report::default()
        })
    }
}

fn local_maildir(p: &Profile) -> Option<std::path::PathBuf> {
    p.maildir.clone().or_else(maildir::default_path)
}

fn transform_headers(
    headers: &mut HeaderBlock,
    profile: &Profile,
    args: &Args,
    sender: &str,
    domain: &str,
) -> Result<(), Failure> {
    message::strip_bcc(headers);
    if profile.qualify_headers {
        message::qualify_headers(headers, domain)?;
    }
    let now = DateStamp::now(0).unix_seconds;
    let offset = localtime::local_offset(now);
    let from_addr = if sender.is_empty() {
        qualify(&identity::login_name(), domain)
    } else {
        sender.to_owned()
    };
    let completion = Completion {
        from: profile.add_from.then(|| Originator {
            full_name: args.full_name.clone(),
            addr: from_addr,
        }),
        date: profile.add_date.then_some(DateStamp {
            unix_seconds: now,
            utc_offset_seconds: offset,
        }),
        message_id_domain: profile.add_message_id.then(|| domain.to_owned()),
    };
    message::complete_headers(headers, &completion)?;
    Ok(())
}
