//! A profile: one way of sending (a relay account, or local delivery),
//! fully resolved and typed, and the command-line overrides applied on top.
//!
//! A profile is built from two layers: its own `[profile.NAME]` table over
//! the top-level defaults, then the built-in defaults. Each layer is
//! checked on its own, so an error points at the line where the bad value
//! was written. Two groups of keys are inherited as a whole, never half:
//! the credential (`password` or `password_command`) and the client
//! certificate (`tls_client_cert` with `tls_client_key`), so a profile that
//! sets a `password_command` never also inherits a top-level `password`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::log::Format as LogFormat;
use crate::smtp::Secret;

use super::error::ConfigError;
use super::parse::{Locator, describe_table};
use super::schema::{Int, IntOrText, OneOrMany, RawSecret, TlsMode, Transport};

/// How long a queued message is retried before it is returned: five days,
/// sendmail's `Timeout.queuereturn`.
pub const DEFAULT_QUEUE_LIFETIME: Duration = Duration::from_secs(5 * 24 * 3600);

/// How long a queued message waits before its local sender gets a delay
/// notice: four hours, as Postfix's `delay_warning_time` when set.
pub const DEFAULT_DELAY_WARNING: Duration = Duration::from_secs(4 * 3600);

/// The longest duration a key or flag may give (`timeout`,
/// `queue_lifetime`, `--timeout`), in seconds: ten years. Far beyond any
/// real use, and small enough that a deadline computed from it (now plus
/// the timeout) can never overflow the clock and panic.
pub const MAX_DURATION_SECS: u64 = 10 * 365 * 24 * 3600;

/// `secs` as a duration of at least one second and at most
/// [`MAX_DURATION_SECS`].
fn bounded_secs(secs: u64) -> Result<Duration, String> {
    match secs {
        0 => Err("must be at least 1 second".into()),
        s if s > MAX_DURATION_SECS => Err(format!(
            "must be at most {MAX_DURATION_SECS} seconds (ten years), not {s}"
        )),
        s => Ok(Duration::from_secs(s)),
    }
}

/// A SASL mechanism a profile can insist on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    Login,
    CramMd5,
    ScramSha1,
    ScramSha256,
    Xoauth2,
    OAuthBearer,
    External,
}

impl Mechanism {
    /// Every mechanism, in the order the documentation lists them.
    pub const ALL: [Mechanism; 8] = [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::ScramSha1,
        Mechanism::ScramSha256,
        Mechanism::Xoauth2,
        Mechanism::OAuthBearer,
        Mechanism::External,
    ];

    /// The SASL name, as in the EHLO AUTH line.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::Xoauth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::External => "EXTERNAL",
        }
    }

    /// The mechanism with this SASL name, in any case.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether and how to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// Authenticate when a user is set, with the strongest mechanism both
    /// sides have (the default).
    #[default]
    Auto,
    /// Never authenticate.
    None,
    /// Only this mechanism.
    Mechanism(Mechanism),
}

impl FromStr for Auth {
    type Err = String;

    /// "auto", "none" or a mechanism name, in any case. The error lists
    /// the accepted values.
    fn from_str(s: &str) -> Result<Auth, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Auth::Auto);
        }
        if s.eq_ignore_ascii_case("none") {
            return Ok(Auth::None);
        }
        Mechanism::from_name(s).map(Auth::Mechanism).ok_or_else(|| {
            let names: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
            format!(
                "unknown authentication \"{s}\": use \"auto\", \"none\" or one of {}",
                names.join(", ")
            )
        })
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Auto => f.write_str("auto"),
            Auth::None => f.write_str("none"),
            Auth::Mechanism(m) => m.fmt(f),
        }
    }
}

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Syslog,
    File(PathBuf),
}

/// Every profile key, defined once: its name in the file, its shape in
/// TOML, its type and built-in default in a [`Profile`], and the check
/// that turns one into the other. From this table come the serde schema
/// (`RawProfile`, which refuses unknown keys), the list of keys for "did
/// you mean" ([`PROFILE_KEYS`]), each table's typed layer, the layering
/// (own table, then top level, then default), [`Profile`] and its
/// [`Default`]; the example file's test checks the documented defaults
/// against it.
///
/// The keys that are inherited as a group (the credential, the client
/// certificate) or choose the profile (`from`) are listed under `manual`:
/// the table gives their schema and their place in [`Profile`], and
/// `Layer::from_raw`/`Layer::resolve` handle them by hand.
macro_rules! profile_keys {
    (
        keys {
            $( $(#[$doc:meta])* $f:ident $key:literal : $raw:ty => $ty:ty = $default:expr, $conv:expr; )*
        }
        manual {
            $( $(#[$mdoc:meta])* $mf:ident $mkey:literal : $mraw:ty => $mty:ty; )*
        }
    ) => {
        /// Every key of a profile, in the order of the table. All of them
        /// may also stand at the top level as defaults for every profile.
        pub(crate) const PROFILE_KEYS: &[&str] = &[$($key,)* $($mkey,)*];

        /// One profile's keys, or the top-level defaults, as written.
        #[derive(Default, serde::Deserialize)]
        #[serde(deny_unknown_fields, expecting = "a table of profile settings")]
        pub(crate) struct RawProfile {
            $( #[serde(rename = $key)] pub $f: Option<$raw>, )*
            $( #[serde(rename = $mkey)] pub $mf: Option<$mraw>, )*
        }

        /// One resolved profile: every value typed, top-level and built-in
        /// defaults applied. Built by [`super::Config`] from a file, or by
        /// [`Profile::from_overrides`] from flags alone.
        ///
        /// To get the password, call [`Profile::password`]: it runs
        /// `password_command` when there is one. The `password` field holds
        /// only a password written in the file.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Profile {
            /// The profile's name (`default` for a file without
            /// `[profile.NAME]` tables, `command line` for one made from
            /// flags alone).
            pub name: String,
            $( $(#[$doc])* pub $f: $ty, )*
            $( $(#[$mdoc])* pub $mf: $mty, )*
        }

        impl Default for Profile {
            /// The built-in defaults: STARTTLS with verification, automatic
            /// authentication, queueing on, header completion on.
            fn default() -> Self {
                Profile {
                    name: "default".into(),
                    $( $f: $default, )*
                    $( $mf: Default::default(), )*
                }
            }
        }

        impl Profile {
            /// The keys whose value is not the built-in default (the name
            /// aside).
            pub fn changed_keys(&self) -> Vec<&'static str> {
                let d = Profile::default();
                let mut changed = Vec::new();
                $( if self.$f != d.$f { changed.push($key); } )*
                $( if self.$mf != d.$mf { changed.push($mkey); } )*
                changed
            }
        }

        /// One table's settings, checked and typed; `None` where the table
        /// is silent.
        #[derive(Clone, Default)]
        pub(crate) struct Layer {
            $( $f: Option<$ty>, )*
            manual: Manual,
        }

        impl Layer {
            /// The table's keys checked and typed (the manual ones are
            /// left in `raw`).
            fn keys(
                raw: &mut RawProfile,
                bad: &dyn Fn(&str, String) -> ConfigError,
                home: Option<&Path>,
            ) -> Result<Layer, ConfigError> {
                Ok(Layer {
                    $( $f: {
                        let conv: fn($raw, Option<&Path>) -> Result<$ty, String> = $conv;
                        raw.$f.take().map(|v| conv(v, home).map_err(|m| bad($key, m))).transpose()?
                    }, )*
                    manual: Manual::default(),
                })
            }

            /// The keys of the table: this layer's, else `top`'s, else the
            /// default (the manual ones default).
            fn resolve_keys(&self, name: &str, top: &Layer) -> Profile {
                let d = Profile::default();
                Profile {
                    name: name.to_owned(),
                    $( $f: self.$f.clone().or_else(|| top.$f.clone()).unwrap_or(d.$f), )*
                    $( $mf: d.$mf, )*
                }
            }
        }
    };
}

profile_keys! {
    keys {
        /// Relays to try in order; the next one is tried only on a
        /// transient failure. Empty: no relay configured.
        hosts "host": OneOrMany => Vec<String> = Vec::new(), |v, _| check_hosts(v);
        /// The port; `None` means the default for `tls` (see
        /// [`Profile::effective_port`]).
        port "port": Int => Option<u16> = None, |v, _| check_port(v).map(Some);
        tls "tls": TlsMode => TlsMode = TlsMode::Starttls, |v, _| Ok(v);
        tls_verify "tls_verify": bool => bool = true, |v, _| Ok(v);
        tls_ca_file "tls_ca_file": String => Option<PathBuf> = None, |v, home| expand_path(&v, home).map(Some);
        /// A SHA-256 pin of the relay's certificate.
        tls_fingerprint "tls_fingerprint": String => Option<[u8; 32]> = None,
            |v, _| parse_fingerprint(&v).map(Some);
        auth "auth": String => Auth = Auth::Auto, |v, _| v.parse::<Auth>();
        user "user": String => Option<String> = None, |v, _| check_user(&v).map(|()| Some(v));
        /// EHLO name, Message-ID domain, and the domain bare names are
        /// qualified with.
        domain "domain": String => Option<String> = None, |v, _| check_domain(&v).map(|()| Some(v));
        /// Every step's time limit when set (the reply to the end of the
        /// data included); `None`: the engine's defaults, 60 s a step and
        /// 10 minutes for that final reply (RFC 5321 4.5.3.2.6).
        timeout "timeout": IntOrText => Option<Duration> = None, |v, _| duration(v).map(Some);
        allow_plaintext_auth "allow_plaintext_auth": bool => bool = false, |v, _| Ok(v);
        queue "queue": bool => bool = true, |v, _| Ok(v);
        /// Leave a detached retrier behind when a message stays queued
        /// (src/retrier.rs).
        retrier "retrier": bool => bool = true, |v, _| Ok(v);
        /// `None`: the queue's built-in default.
        queue_dir "queue_dir": String => Option<PathBuf> = None, |v, home| expand_path(&v, home).map(Some);
        queue_lifetime "queue_lifetime": IntOrText => Duration = DEFAULT_QUEUE_LIFETIME, |v, _| duration(v);
        /// How long a message waits in the queue before its sender gets
        /// one delay notice; `None` ("0"): never.
        delay_warning_time "delay_warning_time": IntOrText => Option<Duration> = Some(DEFAULT_DELAY_WARNING),
            |v, _| duration_or_off(v);
        /// Free bytes below which the queue's file system takes no new
        /// message (EX_TEMPFAIL, the message stays with the caller).
        queue_min_free "queue_min_free": IntOrText => u64 = crate::queue::DEFAULT_MIN_FREE,
            |v, _| byte_size(v);
        transport "transport": Transport => Transport = Transport::Smtp, |v, _| Ok(v);
        /// One Maildir for every local recipient. `None`: each recipient's
        /// own mailbox (`transport = "maildir"`: `$MAILDIR`, else
        /// `~/Maildir`).
        maildir "maildir": String => Option<PathBuf> = None, |v, home| expand_path(&v, home).map(Some);
        /// Lower-cased.
        local_domains "local_domains": OneOrMany => Vec<String> = vec!["localhost".into()],
            |v, _| check_local_domains(v);
        add_date "add_date": bool => bool = true, |v, _| Ok(v);
        add_message_id "add_message_id": bool => bool = true, |v, _| Ok(v);
        add_from "add_from": bool => bool = true, |v, _| Ok(v);
        qualify_headers "qualify_headers": bool => bool = true, |v, _| Ok(v);
        read_envelope_from "read_envelope_from": bool => bool = false, |v, _| Ok(v);
        log "log": String => Option<LogTarget> = None, |v, home| log_target(&v, home).map(Some);
        log_format "log_format": LogFormat => LogFormat = LogFormat::Text, |v, _| Ok(v);
        /// Use BDAT (RFC 3030) when the relay offers CHUNKING.
        bdat "bdat": bool => bool = true, |v, _| Ok(v);
    }
    manual {
        /// The client certificate and key: both or neither (a PKCS#12 file
        /// carries its key).
        tls_client_cert "tls_client_cert": String => Option<PathBuf>;
        tls_client_key "tls_client_key": String => Option<PathBuf>;
        password "password": RawSecret => Option<Secret>;
        password_command "password_command": String => Option<String>;
        /// The envelope sender this profile sends as. A `from` pattern
        /// (`*@domain`) only chooses the profile and leaves this `None`.
        from "from": String => Option<String>;
    }
}

/// `log`: "syslog" or a file.
fn log_target(v: &str, home: Option<&Path>) -> Result<LogTarget, String> {
    if v == "syslog" {
        Ok(LogTarget::Syslog)
    } else {
        expand_path(v, home)
            .map(LogTarget::File)
            .map_err(|m| format!("{m} (or \"syslog\")"))
    }
}

/// Command-line options that win over the profile. `None`: not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--host`: replaces the profile's whole host list.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<TlsMode>,
    pub tls_verify: Option<bool>,
    pub tls_ca_file: Option<PathBuf>,
    pub auth: Option<Auth>,
    pub user: Option<String>,
    /// `--password-command`: also drops a password from the file.
    pub password_command: Option<String>,
    /// `-f`: taken as given (`<>` is the null sender); the envelope checks
    /// it.
    pub from: Option<String>,
    pub domain: Option<String>,
    /// Seconds.
    pub timeout: Option<u64>,
    pub read_envelope_from: Option<bool>,
    /// `--protocol`: SMTP or LMTP to the relay.
    pub transport: Option<Transport>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--no-bdat`: `Some(false)`.
    pub bdat: Option<bool>,
}

impl Profile {
    /// A profile from command-line flags alone, for when there is no
    /// configuration file: the built-in defaults plus the overrides. With
    /// no `--host` it has no relay, and the caller delivers locally.
    pub fn from_overrides(o: &Overrides) -> Result<Profile, ConfigError> {
        let mut p = Profile {
            name: "command line".into(),
            ..Profile::default()
        };
        p.apply_overrides(o)?;
        Ok(p)
    }

    /// Applies command-line options over the profile. Each value is
    /// checked as the file's would be; a bad one is an EX_USAGE error
    /// naming the option. `--tls` does not change a port the profile sets:
    /// give `--port` with it.
    pub fn apply_overrides(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        let bad =
            |option: &'static str, message: String| ConfigError::BadOption { option, message };
        if let Some(h) = &o.host {
            check_host(h).map_err(|m| bad("--host", m))?;
            self.hosts = vec![h.clone()];
        }
        if let Some(p) = o.port {
            if p == 0 {
                return Err(bad("--port", "must be between 1 and 65535, not 0".into()));
            }
            self.port = Some(p);
        }
        if let Some(t) = o.tls {
            self.tls = t;
        }
        if let Some(v) = o.tls_verify {
            self.tls_verify = v;
        }
        if let Some(f) = &o.tls_ca_file {
            self.tls_ca_file = Some(f.clone());
        }
        if let Some(a) = o.auth {
            self.auth = a;
        }
        if let Some(u) = &o.user {
            check_user(u).map_err(|m| bad("--user", m))?;
            self.user = Some(u.clone());
        }
        if let Some(c) = &o.password_command {
            check_command(c).map_err(|m| bad("--password-command", m))?;
            self.password_command = Some(c.clone());
            self.password = None;
        }
        if let Some(f) = &o.from {
            self.from = Some(f.clone());
        }
        if let Some(d) = &o.domain {
            check_domain(d).map_err(|m| bad("--domain", m))?;
            self.domain = Some(d.clone());
        }
        if let Some(t) = o.timeout {
            self.timeout = Some(bounded_secs(t).map_err(|m| bad("--timeout", m))?);
        }
        if let Some(r) = o.read_envelope_from {
            self.read_envelope_from = r;
        }
        if let Some(t) = o.transport {
            self.transport = t;
        }
        if let Some(f) = o.log_format {
            self.log_format = f;
        }
        if let Some(b) = o.bdat {
            self.bdat = b;
        }
        Ok(())
    }

    /// The port to connect to: the profile's, else the default for its TLS
    /// mode (25, 587 or 465).
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(self.tls.default_port())
    }
}

/// What chooses a profile by envelope sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromRule {
    /// An exact address; also the profile's envelope sender.
    Address(String),
    /// `*@domain`: any sender in that domain (lower-cased).
    Domain(String),
}

impl FromRule {
    /// How well a sender matches: 2 for the exact address, 1 for the
    /// domain, 0 for no match.
    pub fn rank(&self, sender: &str) -> u8 {
        match self {
            FromRule::Address(a) if a.eq_ignore_ascii_case(sender) => 2,
            FromRule::Domain(d) => match sender.rsplit_once('@') {
                Some((_, sd)) if sd.eq_ignore_ascii_case(d) => 1,
                _ => 0,
            },
            FromRule::Address(_) => 0,
        }
    }
}

#[derive(Clone)]
enum Credential {
    Password(Secret),
    Command(String),
}

/// The keys a table sets that are inherited as a group or choose the
/// profile.
#[derive(Clone, Default)]
struct Manual {
    /// The client certificate, and its key unless it is a PKCS#12 file.
    tls_client: Option<(PathBuf, Option<PathBuf>)>,
    credential: Option<Credential>,
    from: Option<FromRule>,
}

impl Layer {
    /// Checks one raw table (`table` is its path: empty for the top level)
    /// and types its values. `home` expands `~/`.
    pub fn from_raw(
        mut raw: RawProfile,
        table: &[&str],
        loc: &Locator<'_>,
        home: Option<&Path>,
    ) -> Result<Layer, ConfigError> {
        let bad = |key: &str, m: String| loc.bad_value(table, key, m);
        let what = describe_table(table);

        if raw.password.is_some() && raw.password_command.is_some() {
            return Err(loc.at(
                table,
                "password_command",
                format!("both \"password\" and \"password_command\" are set {what}: keep one"),
            ));
        }
        let tls_client = match (raw.tls_client_cert.take(), raw.tls_client_key.take()) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((
                expand_path(&c, home).map_err(|m| bad("tls_client_cert", m))?,
                Some(expand_path(&k, home).map_err(|m| bad("tls_client_key", m))?),
            )),
            // A PKCS#12 bundle carries its own key.
            (Some(c), None) if is_pkcs12(&c) => Some((
                expand_path(&c, home).map_err(|m| bad("tls_client_cert", m))?,
                None,
            )),
            (Some(_), None) => {
                return Err(loc.at(
                    table,
                    "tls_client_cert",
                    format!("\"tls_client_cert\" without \"tls_client_key\" {what}: give both, or a PKCS#12 file (.p12, .pfx) alone"),
                ));
            }
            (None, Some(_)) => {
                return Err(loc.at(
                    table,
                    "tls_client_key",
                    format!("\"tls_client_key\" without \"tls_client_cert\" {what}: give both or neither"),
                ));
            }
        };
        let credential = match (raw.password.take(), raw.password_command.take()) {
            (Some(p), _) => {
                if p.0.is_empty() {
                    return Err(bad(
                        "password",
                        "empty: set the password or remove the key".into(),
                    ));
                }
                Some(Credential::Password(Secret::new(p.0)))
            }
            (None, Some(c)) => {
                check_command(&c).map_err(|m| bad("password_command", m))?;
                Some(Credential::Command(c))
            }
            (None, None) => None,
        };
        let from = raw
            .from
            .take()
            .map(|f| from_rule(&f).map_err(|m| bad("from", m)))
            .transpose()?;
        let mut layer = Layer::keys(&mut raw, &bad, home)?;
        layer.manual = Manual {
            tls_client,
            credential,
            from,
        };
        Ok(layer)
    }

    /// Whether this layer holds a password written in the file.
    pub fn has_password(&self) -> bool {
        matches!(self.manual.credential, Some(Credential::Password(_)))
    }

    /// The profile's own `from`, which chooses it by sender.
    pub fn sender_rule(&self) -> Option<&FromRule> {
        self.manual.from.as_ref()
    }

    /// The profile named `name`: this layer over `top`, over the built-in
    /// defaults.
    pub fn resolve(&self, name: &str, top: &Layer) -> Profile {
        fn pick<T: Clone>(own: &Option<T>, top: &Option<T>) -> Option<T> {
            own.clone().or_else(|| top.clone())
        }
        let mut p = self.resolve_keys(name, top);
        let (own, inherited) = (&self.manual, &top.manual);
        (p.password, p.password_command) = match pick(&own.credential, &inherited.credential) {
            Some(Credential::Password(s)) => (Some(s), None),
            Some(Credential::Command(c)) => (None, Some(c)),
            None => (None, None),
        };
        (p.tls_client_cert, p.tls_client_key) = match pick(&own.tls_client, &inherited.tls_client) {
            Some((c, k)) => (Some(c), k),
            None => (None, None),
        };
        p.from = match pick(&own.from, &inherited.from) {
            Some(FromRule::Address(a)) => Some(a),
            _ => None,
        };
        p
    }
}

/// Parses a duration: plain seconds ("3600"), or a number with one unit:
/// `s`, `m`, `h`, `d`, `w` ("90s", "15m", "2h", "5d"). Must be at least
/// one second.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let err = || {
        format!(
            "\"{s}\" is not a duration: write seconds, or a number with s, m, h, d or w (\"90s\", \"15m\", \"2h\", \"5d\")"
        )
    };
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        _ => (t, 's'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: u64 = digits.parse().map_err(|_| err())?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(err()),
    };
    let secs = n.checked_mul(scale).ok_or_else(err)?;
    bounded_secs(secs)
}

/// Parses a SHA-256 certificate pin: 64 hex digits, or 32 colon-separated
/// pairs, in any case, optionally after "sha256:".
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let err = || {
        "not a SHA-256 fingerprint: write 64 hex digits, optionally as colon-separated pairs (\"AB:CD:...\") and after \"sha256:\"".to_owned()
    };
    let t = s.trim();
    let t = match t.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("sha256:") => &t[7..],
        _ => t,
    };
    let hex: String = if t.contains(':') {
        let parts: Vec<&str> = t.split(':').collect();
        if parts.len() != 32 || parts.iter().any(|p| p.len() != 2) {
            return Err(err());
        }
        parts.concat()
    } else {
        t.to_owned()
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| err())?;
    }
    Ok(out)
}

fn duration(v: IntOrText) -> Result<Duration, String> {
    match v {
        IntOrText::Int(n) if n >= 1 => bounded_secs(n.unsigned_abs()),
        IntOrText::Int(n) => Err(format!("must be at least 1 second, not {n}")),
        IntOrText::Text(t) => parse_duration(&t),
    }
}

/// A duration, or 0 (`0`, `"0"`) for off.
fn duration_or_off(v: IntOrText) -> Result<Option<Duration>, String> {
    match &v {
        IntOrText::Int(0) => Ok(None),
        IntOrText::Text(t) if t.trim() == "0" => Ok(None),
        _ => duration(v).map(Some),
    }
}

/// A size in bytes: a number, or a number with K, M or G (binary
/// multiples: "20M" is 20 MiB); 0 is allowed.
fn byte_size(v: IntOrText) -> Result<u64, String> {
    match v {
        IntOrText::Int(n) => u64::try_from(n).map_err(|_| format!("must not be negative, not {n}")),
        IntOrText::Text(t) => {
            let bad = || {
                format!("{t:?} is not a size: write bytes, or a number with K, M or G (\"20M\")")
            };
            let (num, shift) = match t.trim().strip_suffix(['K', 'k']) {
                Some(n) => (n, 10),
                None => match t.trim().strip_suffix(['M', 'm']) {
                    Some(n) => (n, 20),
                    None => match t.trim().strip_suffix(['G', 'g']) {
                        Some(n) => (n, 30),
                        None => (t.trim(), 0),
                    },
                },
            };
            let n: u64 = num.trim().parse().map_err(|_| bad())?;
            n.checked_mul(1 << shift).ok_or_else(bad)
        }
    }
}

fn check_port(p: Int) -> Result<u16, String> {
    u16::try_from(p.0)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("must be between 1 and 65535, not {}", p.0))
}

fn strings(v: OneOrMany) -> Vec<String> {
    match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }
}

fn check_hosts(v: OneOrMany) -> Result<Vec<String>, String> {
    let hosts = strings(v);
    if hosts.is_empty() {
        return Err("an empty list: give at least one host".into());
    }
    for h in &hosts {
        check_host(h)?;
    }
    Ok(hosts)
}

fn check_host(h: &str) -> Result<(), String> {
    if h.is_empty() {
        return Err("an empty host name".into());
    }
    if h.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{h:?} is not a host name (it has spaces or control characters)"
        ));
    }
    Ok(())
}

fn check_user(u: &str) -> Result<(), String> {
    if u.is_empty() {
        return Err("empty: set the user name or remove the key".into());
    }
    if u.chars().any(char::is_control) {
        return Err("the user name has control characters".into());
    }
    Ok(())
}

fn check_command(c: &str) -> Result<(), String> {
    if c.trim().is_empty() {
        return Err("empty: give a command that prints the password".into());
    }
    Ok(())
}

/// A host name or an address literal, as EHLO and addresses need it.
fn is_domain(d: &str) -> bool {
    if let Some(inner) = d.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':'));
    }
    !d.is_empty()
        && d.len() <= 253
        && !d.starts_with('.')
        && !d.ends_with('.')
        && !d.contains("..")
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
}

fn check_domain(d: &str) -> Result<(), String> {
    if is_domain(d) {
        Ok(())
    } else {
        Err(format!(
            "{d:?} is not a domain name (letters, digits, '-' and '.', or an address literal like [192.0.2.1]; write international names in their xn-- form)"
        ))
    }
}

fn check_local_domains(v: OneOrMany) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for d in strings(v) {
        check_domain(&d)?;
        let d = d.to_ascii_lowercase();
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

fn from_rule(f: &str) -> Result<FromRule, String> {
    let usage =
        "write an address (alice@example.com) or a pattern for a whole domain (*@example.com)";
    if let Some(domain) = f.strip_prefix("*@") {
        return if is_domain(domain) {
            Ok(FromRule::Domain(domain.to_ascii_lowercase()))
        } else {
            Err(format!("{f:?} is not a sender pattern: {usage}"))
        };
    }
    match f.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && is_domain(domain)
                && !local.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '*')
                }) =>
        {
            Ok(FromRule::Address(f.to_owned()))
        }
        _ => Err(format!("{f:?} is not an address: {usage}")),
    }
}

/// Expands a leading `~/` and insists on an absolute path: a relative one
/// would depend on the directory smtpsend happens to run in (cron's is /).
pub(crate) fn expand_path(s: &str, home: Option<&Path>) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("an empty path".into());
    }
    let p = if s == "~" || s.starts_with("~/") {
        let home = home.ok_or_else(|| {
            format!("cannot expand {s:?}: no home directory is known (write the full path)")
        })?;
        match s.strip_prefix("~/") {
            Some(rest) if !rest.is_empty() => home.join(rest),
            _ => home.to_path_buf(),
        }
    } else if s.starts_with('~') {
        return Err(format!(
            "{s:?}: only ~/ is expanded, not ~user/ (write the full path)"
        ));
    } else {
        PathBuf::from(s)
    };
    if !p.is_absolute() {
        return Err(format!(
            "{s:?} is relative: write an absolute path (or one starting with ~/)"
        ));
    }
    Ok(p)
}

/// Whether a client certificate path names a PKCS#12 bundle.
fn is_pkcs12(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    p.ends_with(".p12") || p.ends_with(".pfx")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        let t = |s: &str| byte_size(IntOrText::Text(s.into()));
        assert_eq!(t("20M"), Ok(20 << 20));
        assert_eq!(t("512k"), Ok(512 << 10));
        assert_eq!(t("1G"), Ok(1 << 30));
        assert_eq!(t("0"), Ok(0));
        assert_eq!(byte_size(IntOrText::Int(4096)), Ok(4096));
        for bad in ["", "M", "-1M", "1.5G", "20 MB", "99999999999999999999G"] {
            assert!(t(bad).is_err(), "{bad}");
        }
        assert!(byte_size(IntOrText::Int(-1)).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("5d"), Ok(DEFAULT_QUEUE_LIFETIME));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
        // Past ten years: refused, so no deadline can overflow the clock.
        assert_eq!(
            parse_duration("520w"),
            Ok(Duration::from_secs(520 * 604_800))
        );
        for huge in ["522w", "9999999999999w", "18446744073709551615"] {
            let e = parse_duration(huge).unwrap_err();
            assert!(
                e.contains("ten years") || e.contains("not a duration"),
                "{huge}: {e}"
            );
        }
        assert!(
            duration(IntOrText::Int(i64::MAX))
                .unwrap_err()
                .contains("ten years")
        );
        assert_eq!(parse_duration(" 2H "), Ok(Duration::from_secs(7200)));
        for bad in ["", "s", "5x", "-5s", "1.5h", "5 d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_duration("0s"),
            Err("must be at least 1 second".into())
        );
    }

    #[test]
    fn fingerprints() {
        let hex = "0123456789abcdef".repeat(4);
        let want: [u8; 32] =
            std::array::from_fn(|i| [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef][i % 8]);
        assert_eq!(parse_fingerprint(&hex), Ok(want));
        assert_eq!(parse_fingerprint(&hex.to_uppercase()), Ok(want));
        assert_eq!(parse_fingerprint(&format!("sha256:{hex}")), Ok(want));
        assert_eq!(parse_fingerprint(&format!("SHA256:{hex}")), Ok(want));
        let colons: Vec<String> = (0..32)
            .map(|i| hex[2 * i..2 * i + 2].to_uppercase())
            .collect();
        assert_eq!(parse_fingerprint(&colons.join(":")), Ok(want));
        for bad in [
            &hex[..62],
            &format!("{hex}00"),
            &hex.replace('a', "g"),
            &format!("sha1:{hex}"),
            "AB:CD",
            &format!("{}:{}", &hex[..32], &hex[32..]),
        ] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auth_names() {
        assert_eq!("auto".parse(), Ok(Auth::Auto));
        assert_eq!("NONE".parse(), Ok(Auth::None));
        assert_eq!("plain".parse(), Ok(Auth::Mechanism(Mechanism::Plain)));
        assert_eq!(
            "scram-sha-256".parse(),
            Ok(Auth::Mechanism(Mechanism::ScramSha256))
        );
        assert_eq!(
            "OAuthBearer".parse(),
            Ok(Auth::Mechanism(Mechanism::OAuthBearer))
        );
        for m in Mechanism::ALL {
            assert_eq!(m.name().parse(), Ok(Auth::Mechanism(m)));
            assert_eq!(Auth::Mechanism(m).to_string(), m.name());
        }
        assert_eq!(
            "digest-md5".parse::<Auth>(),
            Err("unknown authentication \"digest-md5\": use \"auto\", \"none\" or one of PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER, EXTERNAL".into())
        );
    }

    #[test]
    fn from_rules() {
        assert_eq!(
            from_rule("a@x.org"),
            Ok(FromRule::Address("a@x.org".into()))
        );
        assert_eq!(from_rule("*@X.org"), Ok(FromRule::Domain("x.org".into())));
        for bad in [
            "alice",
            "@x.org",
            "a@",
            "a b@x.org",
            "*@",
            "*@x..org",
            "a@x@",
            "<a@x.org>",
        ] {
            assert!(from_rule(bad).is_err(), "{bad}");
        }
        let exact = FromRule::Address("Alice@Example.com".into());
        assert_eq!(exact.rank("alice@example.COM"), 2);
        assert_eq!(exact.rank("bob@example.com"), 0);
        let dom = FromRule::Domain("example.com".into());
        assert_eq!(dom.rank("bob@EXAMPLE.com"), 1);
        assert_eq!(dom.rank("bob@sub.example.com"), 0);
        assert_eq!(dom.rank("bob"), 0);
    }

    #[test]
    fn paths() {
        let home = Path::new("/home/alice");
        assert_eq!(
            expand_path("~/Maildir", Some(home)),
            Ok(PathBuf::from("/home/alice/Maildir"))
        );
        assert_eq!(
            expand_path("~", Some(home)),
            Ok(PathBuf::from("/home/alice"))
        );
        assert_eq!(
            expand_path("/var/mail", None),
            Ok(PathBuf::from("/var/mail"))
        );
        assert!(
            expand_path("~/Maildir", None)
                .unwrap_err()
                .contains("no home directory")
        );
        assert!(
            expand_path("~bob/Maildir", Some(home))
                .unwrap_err()
                .contains("~user")
        );
        assert!(
            expand_path("Maildir", Some(home))
                .unwrap_err()
                .contains("relative")
        );
        assert!(expand_path("", Some(home)).is_err());
    }

    #[test]
    fn domains() {
        for good in [
            "localhost",
            "laptop.example.com",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
            "xn--bcher-kva.example",
        ] {
            assert!(is_domain(good), "{good}");
        }
        for bad in [
            "",
            "a b",
            ".x",
            "x.",
            "a..b",
            "bücher.example",
            "[]",
            "x\r\n",
        ] {
            assert!(!is_domain(bad), "{bad}");
        }
    }

    #[test]
    fn overrides_win_and_are_checked() {
        let mut p = Profile {
            hosts: vec!["a".into(), "b".into()],
            password: Some(Secret::new("file")),
            ..Profile::default()
        };
        p.apply_overrides(&Overrides {
            host: Some("c:2525".into()),
            port: Some(2525),
            tls: Some(TlsMode::Tls),
            tls_verify: Some(false),
            tls_ca_file: Some("ca.pem".into()),
            auth: Some(Auth::Mechanism(Mechanism::Login)),
            user: Some("u".into()),
            password_command: Some("echo x".into()),
            from: Some("<>".into()),
            domain: Some("h.example".into()),
            timeout: Some(5),
            read_envelope_from: Some(true),
            transport: Some(Transport::Lmtp),
            log_format: Some(LogFormat::Json),
            bdat: Some(false),
        })
        .unwrap();
        assert_eq!(p.transport, Transport::Lmtp);
        assert_eq!(p.log_format, LogFormat::Json);
        assert!(!p.bdat);
        assert_eq!(p.hosts, ["c:2525"]);
        assert_eq!(p.effective_port(), 2525);
        assert_eq!(p.tls, TlsMode::Tls);
        assert!(!p.tls_verify);
        assert_eq!(p.tls_ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(p.auth, Auth::Mechanism(Mechanism::Login));
        assert_eq!(p.user.as_deref(), Some("u"));
        assert_eq!(
            p.password, None,
            "a command-line password_command replaces the file's password"
        );
        assert_eq!(p.password_command.as_deref(), Some("echo x"));
        assert_eq!(p.from.as_deref(), Some("<>"));
        assert_eq!(p.domain.as_deref(), Some("h.example"));
        assert_eq!(p.timeout, Some(Duration::from_secs(5)));
        assert!(p.read_envelope_from);

        let cases: [(Overrides, &str); 6] = [
            (
                Overrides {
                    port: Some(0),
                    ..Overrides::default()
                },
                "--port: must be between 1 and 65535, not 0",
            ),
            (
                Overrides {
                    timeout: Some(0),
                    ..Overrides::default()
                },
                "--timeout: must be at least 1 second",
            ),
            (
                Overrides {
                    timeout: Some(i64::MAX as u64),
                    ..Overrides::default()
                },
                "--timeout: must be at most 315360000 seconds (ten years), not 9223372036854775807",
            ),
            (
                Overrides {
                    host: Some("a b".into()),
                    ..Overrides::default()
                },
                "--host: \"a b\" is not a host name (it has spaces or control characters)",
            ),
            (
                Overrides {
                    user: Some(String::new()),
                    ..Overrides::default()
                },
                "--user: empty: set the user name or remove the key",
            ),
            (
                Overrides {
                    domain: Some("x y".into()),
                    ..Overrides::default()
                },
                "--domain: \"x y\" is not a domain name (letters, digits, '-' and '.', or an address literal like [192.0.2.1]; write international names in their xn-- form)",
            ),
        ];
        for (o, want) in cases {
            let e = Profile::default().apply_overrides(&o).unwrap_err();
            assert_eq!(e.to_string(), want);
            assert_eq!(e.kind(), crate::exit::Sysexit::Usage);
        }
    }

    #[test]
    fn flags_alone_suffice() {
        let p = Profile::from_overrides(&Overrides {
            host: Some("smtp.example.org".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(p.name, "command line");
        assert_eq!(p.hosts, ["smtp.example.org"]);
        assert_eq!(p.tls, TlsMode::Starttls);
        assert_eq!(p.effective_port(), 587);
        assert_eq!(p.timeout, None);
        let local = Profile::from_overrides(&Overrides::default()).unwrap();
        assert!(
            local.hosts.is_empty(),
            "no --host: no relay, deliver locally"
        );
    }
}
