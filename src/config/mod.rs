//! The configuration: TOML profiles, where the file is looked for, which
//! profile a message uses, aliases for bare local names, and the
//! permission rule for files that hold passwords.
//!
//! It owns turning a file (or flags alone) into a resolved [`Profile`] and
//! an [`Aliases`] table. Like the engine it never prints and never exits:
//! every failure is a [`ConfigError`] whose text names the file, the line
//! and the key, and says what to do; [`ConfigError::kind`] gives its
//! sysexits code.
//!
//! ```
//! use std::path::Path;
//! use smtpsend::config::{Config, Overrides};
//!
//! let text = r#"
//! default_profile = "work"
//! [profile.work]
//! host = ["smtp.example.com", "smtp2.example.com"]
//! user = "alice@example.com"
//! password_command = "pass show mail/work"
//! from = "*@example.com"
//! [profile.home]
//! host = "mail.example.org"
//! tls = "tls"
//! [aliases]
//! root = "alice@example.com"
//! "#;
//! let config = Config::from_str(text, Path::new("/etc/smtpsend.toml"))?;
//! let mut profile = config.select(None, Some("bob@example.com"))?;
//! profile.apply_overrides(&Overrides { timeout: Some(10), ..Overrides::default() })?;
//! assert_eq!(profile.name, "work");
//! assert_eq!(profile.effective_port(), 587);
//! assert_eq!(config.aliases().resolve("ROOT")?[0].as_str(), "alice@example.com");
//! # Ok::<(), smtpsend::config::ConfigError>(())
//! ```
//!
//! Top-level keys: `default_profile`, `[profile.NAME]`, `[aliases]`, and
//! every profile key, which is then the default for every profile (so
//! `log` and `queue_dir` are written once). A file with no
//! `[profile.NAME]` table at all is one profile, named `default`, made of
//! its top-level keys: the usual /etc/smtpsend.toml of a server that sends
//! everything through one relay. `from` is matched against the sender
//! only where a profile sets it itself; an inherited `from` is a sender,
//! never a reason to choose a profile.

pub(crate) mod aliases;
mod error;
mod locate;
mod parse;
mod password;
mod permissions;
mod policy;
mod profile;
mod schema;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use aliases::{Aliases, DEFAULT_ALIAS, Target};
pub use error::{ConfigError, Exposure, Origin};
pub use locate::{
    CONFIG_ENV, LookupEnv, SYSTEM_CONFIG, USER_CONFIG, config_to_edit, locate, locate_in,
};
pub use password::{
    CLIENT_CERT_PASSWORD_ENV, MAX_PASSWORD_OUTPUT, PASSWORD_COMMAND_TIMEOUT, PASSWORD_ENV,
    SECRET_ENV,
};
pub use policy::{ArgPolicy, SYSTEM_CONFIG_ENV, check_allowable, flag, system_config_path};
pub use profile::{
    Auth, DEFAULT_DELAY_WARNING, DEFAULT_QUEUE_LIFETIME, LogTarget, Mechanism, Overrides, Profile,
    parse_duration, parse_fingerprint,
};
pub use schema::{TlsMode, Transport};

use parse::{Locator, parse_document};
use profile::{FromRule, Layer};

/// The largest configuration file read: far beyond any real one, small
/// enough that a wrong `-C` (a mailbox, a log) fails fast.
pub const MAX_CONFIG_SIZE: u64 = 1024 * 1024;

/// The name of the one profile of a file without `[profile.NAME]` tables.
pub const IMPLICIT_PROFILE: &str = "default";

/// A loaded, fully checked configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    path: PathBuf,
    default_profile: Option<String>,
    /// In file order.
    profiles: Vec<Choice>,
    aliases: Aliases,
    has_password: bool,
    arg_policy: ArgPolicy,
}

#[derive(Debug, Clone)]
struct Choice {
    profile: Profile,
    /// The profile's own `from`, which chooses it by sender.
    from: Option<FromRule>,
}

impl Config {
    /// Reads, checks and permission-checks a file: see the module docs
    /// for the schema and [`ConfigError`] for what can go wrong.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let (file, meta, opened) =
            permissions::open_trusted(path, rustix::process::geteuid().as_raw())?;
        // The text may hold a password: read into one buffer of the file's
        // size (no reallocation leaves a copy) and wipe it when done.
        let size = meta.len().min(MAX_CONFIG_SIZE) as usize + 1;
        let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(size));
        file.take(MAX_CONFIG_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_CONFIG_SIZE {
            return Err(read_err(io::Error::other(format!(
                "larger than {MAX_CONFIG_SIZE} bytes: not a configuration file"
            ))));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| read_err(io::Error::other("it is not UTF-8 text")))?;
        let config = parse(text, path, dirs::home_dir().as_deref())?;
        // Only a regular file's mode says who can read or change what was
        // read: `-C /dev/null` (no configuration) is mode 0666 and fine.
        if meta.is_file() {
            permissions::check(
                &opened,
                meta.mode(),
                meta.uid(),
                meta.gid(),
                config.has_password,
            )?;
        }
        Ok(config)
    }

    /// Checks a configuration given as text; `path` names it in errors.
    /// No permission check: there is no file. `~/` expands to the home
    /// directory of this process's user.
    #[allow(clippy::should_implement_trait)] // it needs the path for its errors
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        parse(text, path, dirs::home_dir().as_deref())
    }

    /// Finds the file ([`locate`]) and loads it; `None` when there is
    /// none, and the command line must do.
    pub fn discover(explicit: Option<&Path>) -> Result<Option<Config>, ConfigError> {
        locate(explicit)?.map(|p| Config::load(&p)).transpose()
    }

    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Profile names in file order.
    pub fn profile_names(&self) -> Vec<&str> {
        self.profiles
            .iter()
            .map(|c| c.profile.name.as_str())
            .collect()
    }

    /// A profile by name.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles
            .iter()
            .map(|c| &c.profile)
            .find(|p| p.name == name)
    }

    /// `default_profile`, checked to name a profile.
    pub fn default_profile(&self) -> Option<&str> {
        self.default_profile.as_deref()
    }

    pub fn aliases(&self) -> &Aliases {
        &self.aliases
    }

    /// Whether any table holds a `password` (which makes the permission
    /// rule apply).
    pub fn has_password(&self) -> bool {
        self.has_password
    }

    /// `restrict_args`, `allow_args`, `allow_config_dirs`: meaningful in
    /// the system file only (see `policy.rs`).
    pub fn arg_policy(&self) -> &ArgPolicy {
        &self.arg_policy
    }

    /// Chooses the profile for a message, in this order:
    ///
    /// 1. `explicit` (`-a NAME`); a name that is no profile is an
    ///    EX_USAGE error listing the profiles;
    /// 2. the profile whose own `from` matches the envelope sender: an
    ///    exact address (any case) before a `*@domain` pattern; between
    ///    equal matches, `default_profile` if it is one of them, else the
    ///    first in the file;
    /// 3. `default_profile`;
    /// 4. the only profile, if there is one;
    /// 5. otherwise an error listing the profiles.
    ///
    /// The sender may be written in angle brackets.
    pub fn select(
        &self,
        explicit: Option<&str>,
        envelope_sender: Option<&str>,
    ) -> Result<Profile, ConfigError> {
        if let Some(name) = explicit {
            return self
                .profile(name)
                .cloned()
                .ok_or_else(|| ConfigError::UnknownProfile {
                    path: self.path.clone(),
                    name: name.to_owned(),
                    available: self.names(),
                });
        }
        if let Some(sender) = envelope_sender {
            let sender = sender.trim();
            let sender = sender
                .strip_prefix('<')
                .and_then(|s| s.strip_suffix('>'))
                .unwrap_or(sender);
            let rank = |c: &Choice| c.from.as_ref().map_or(0, |r| r.rank(sender));
            let best = self.profiles.iter().map(rank).max().unwrap_or(0);
            if best > 0 {
                let mut matches = self.profiles.iter().filter(|c| rank(c) == best);
                let first = matches.clone().next();
                let preferred =
                    matches.find(|c| Some(&c.profile.name) == self.default_profile.as_ref());
                if let Some(c) = preferred.or(first) {
                    return Ok(c.profile.clone());
                }
            }
        }
        if let Some(p) = self
            .default_profile
            .as_deref()
            .and_then(|d| self.profile(d))
        {
            return Ok(p.clone());
        }
        if let [only] = self.profiles.as_slice() {
            return Ok(only.profile.clone());
        }
        Err(ConfigError::NoProfileChosen {
            path: self.path.clone(),
            available: self.names(),
        })
    }

    fn names(&self) -> Vec<String> {
        self.profile_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}

/// Parses and checks a whole document; `home` expands `~/`.
fn parse(text: &str, path: &Path, home: Option<&Path>) -> Result<Config, ConfigError> {
    let doc = parse_document(text, path)?;
    let loc = Locator {
        path,
        index: &doc.index,
    };
    let top = Layer::from_raw(doc.defaults, &[], &loc, home)?;
    let mut has_password = top.has_password();

    let mut raw_profiles = doc.top.profile.map(|p| p.0).unwrap_or_default();
    let mut profiles = Vec::new();
    for name in doc.index.keys_in_order(&["profile"]) {
        let Some(raw) = raw_profiles.remove(&name) else {
            continue;
        };
        let layer = Layer::from_raw(raw, &["profile", &name], &loc, home)?;
        has_password |= layer.has_password();
        profiles.push(Choice {
            profile: layer.resolve(&name, &top),
            from: layer.sender_rule().cloned(),
        });
    }
    let explicit_names: Vec<String> = profiles.iter().map(|c| c.profile.name.clone()).collect();
    if profiles.is_empty() {
        profiles.push(Choice {
            profile: Layer::default().resolve(IMPLICIT_PROFILE, &top),
            from: None,
        });
    }

    if let Some(d) = &doc.top.default_profile
        && !explicit_names.contains(d)
    {
        let listed = if explicit_names.is_empty() {
            "there are no [profile.NAME] tables".to_owned()
        } else {
            format!("the profiles are {}", explicit_names.join(", "))
        };
        return Err(loc.at(
            &[],
            "default_profile",
            format!(
                "default_profile names \"{d}\", but there is no [{}]: {listed}",
                parse::table_name(&["profile", d])
            ),
        ));
    }

    let arg_policy = policy::from_raw(
        doc.top.restrict_args,
        doc.top.allow_args,
        doc.top.allow_config_dirs,
        &loc,
    )?;

    let aliases = build_aliases(
        doc.top.aliases.map(|a| a.0).unwrap_or_default(),
        &loc,
        &doc.index.keys_in_order(&["aliases"]),
    )?;

    Ok(Config {
        path: path.to_path_buf(),
        default_profile: doc.top.default_profile,
        profiles,
        aliases,
        has_password,
        arg_policy,
    })
}

fn build_aliases(
    mut raw: BTreeMap<String, schema::OneOrMany>,
    loc: &Locator<'_>,
    order: &[String],
) -> Result<Aliases, ConfigError> {
    let table = ["aliases"];
    let mut map = BTreeMap::new();
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    for name in order {
        let Some(value) = raw.remove(name) else {
            continue;
        };
        let key = aliases::check_name(name).map_err(|m| loc.bad_value(&table, name, m))?;
        if let Some(first) = written.get(&key) {
            return Err(loc.at(
                &table,
                name,
                format!(
                    "alias \"{name}\" in [aliases] repeats \"{first}\" (names are compared without case)"
                ),
            ));
        }
        let targets = aliases::parse_targets(value).map_err(|m| loc.bad_value(&table, name, m))?;
        written.insert(key.clone(), name.clone());
        map.insert(key, targets);
    }
    let aliases = Aliases::from_map(map);
    // Report a loop at load time, at the first alias in the file that is
    // part of one, rather than when some message happens to hit it.
    for name in order {
        let key = name.to_lowercase();
        if !aliases.names().any(|n| n == key) {
            continue;
        }
        if let Err(ConfigError::AliasLoop { chain }) = aliases.resolve(&key) {
            return Err(loc.at(
                &table,
                name,
                format!(
                    "alias loop in [aliases]: {} (make one of them an address)",
                    chain.join(" -> ")
                ),
            ));
        }
    }
    Ok(aliases)
}

#[cfg(test)]
mod tests {
    use super::TlsMode;
    use super::*;
    use crate::exit::Sysexit;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    const FILE: &str = "/etc/smtpsend.toml";

    fn load(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new(FILE), Some(Path::new("/home/alice")))
    }

    fn error(text: &str) -> String {
        match load(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => {
                assert_eq!(e.kind(), Sysexit::Config, "{e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn bad_configs_name_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            // Unknown keys, with suggestions.
            (
                "[profile.work]\nhots = \"x\"\n",
                ":2: unknown key \"hots\" in [profile.work] (did you mean \"host\"?)",
            ),
            (
                "colour = 1\n",
                ":1: unknown key \"colour\" at the top level",
            ),
            (
                "\n\ndefualt_profile = \"x\"\n",
                ":3: unknown key \"defualt_profile\" at the top level (did you mean \"default_profile\"?)",
            ),
            (
                "[profile.work]\nhost = \"h\"\ndefault_profile = \"work\"\n",
                ":3: unknown key \"default_profile\" in [profile.work] (\"default_profile\" belongs at the top level)",
            ),
            (
                "[profile]\nwork = { hots = \"x\" }\n",
                ":2: unknown key \"hots\" in [profile.work] (did you mean \"host\"?)",
            ),
            (
                "profile.work.prot = 25\n",
                ":1: unknown key \"prot\" in [profile.work] (did you mean \"port\"?)",
            ),
            (
                "[profile.\"my work\"]\npasswd = \"x\"\n",
                ":2: unknown key \"passwd\" in [profile.\"my work\"] (did you mean \"password\"?)",
            ),
            (
                "[smtp]\nhost = \"x\"\n",
                ":1: unknown key \"smtp\" at the top level",
            ),
            // Wrong types.
            (
                "[profile.work]\nport = \"587\"\n",
                ":2: bad value for \"port\" in [profile.work]: invalid type: string \"587\", expected an integer",
            ),
            (
                "[profile.work]\ntls_verify = \"yes\"\n",
                ":2: bad value for \"tls_verify\" in [profile.work]: invalid type: string \"yes\", expected a boolean",
            ),
            (
                "[profile.work]\nhost = [\n  \"a\",\n  1,\n]\n",
                ":2: bad value for \"host\" in [profile.work]: invalid type: integer `1`, expected a list of strings",
            ),
            (
                "profile = 3\n",
                ":1: bad value for \"profile\" at the top level: invalid type: integer `3`, expected [profile.NAME] tables",
            ),
            (
                "[profile]\nwork = 3\n",
                ":2: bad value for \"work\" in [profile]: invalid type: integer `3`, expected a table of profile settings (each profile is a [profile.NAME] table)",
            ),
            (
                "[aliases]\nroot = 5\n",
                ":2: bad value for \"root\" in [aliases]: invalid type: integer `5`, expected a string or a list of strings",
            ),
            (
                "aliases = \"root\"\n",
                ":1: bad value for \"aliases\" at the top level: invalid type: string \"root\", expected a table of aliases (name = \"address\")",
            ),
            (
                "[profile.work]\ntls = \"ssl\"\n",
                ":2: bad value for \"tls\" in [profile.work]: unknown variant `ssl`, expected one of `none`, `starttls`, `tls`",
            ),
            (
                "transport = \"mbox\"\n",
                ":1: bad value for \"transport\" at the top level: unknown variant `mbox`, expected one of `smtp`, `maildir`, `lmtp`",
            ),
            (
                "[profile.work]\ntimeout = 1.5\n",
                ":2: bad value for \"timeout\" in [profile.work]: invalid type: floating point `1.5`, expected a number of seconds or a duration such as \"90s\", \"15m\", \"2h\", \"5d\"",
            ),
            // Values out of range or malformed.
            (
                "[profile.work]\nport = 0\n",
                ":2: bad value for \"port\" in [profile.work]: must be between 1 and 65535, not 0",
            ),
            (
                "port = 65536\n",
                ":1: bad value for \"port\" at the top level: must be between 1 and 65535, not 65536",
            ),
            (
                "[profile.work]\ntimeout = 0\n",
                ":2: bad value for \"timeout\" in [profile.work]: must be at least 1 second, not 0",
            ),
            (
                "queue_lifetime = \"5 days\"\n",
                ":1: bad value for \"queue_lifetime\" at the top level: \"5 days\" is not a duration: write seconds, or a number with s, m, h, d or w (\"90s\", \"15m\", \"2h\", \"5d\")",
            ),
            (
                "queue_lifetime = -5\n",
                ":1: bad value for \"queue_lifetime\" at the top level: must be at least 1 second, not -5",
            ),
            (
                "[profile.work]\ntls_fingerprint = \"sha256:abcd\"\n",
                ":2: bad value for \"tls_fingerprint\" in [profile.work]: not a SHA-256 fingerprint: write 64 hex digits, optionally as colon-separated pairs (\"AB:CD:...\") and after \"sha256:\"",
            ),
            (
                "[profile.work]\nauth = \"digest-md5\"\n",
                ":2: bad value for \"auth\" in [profile.work]: unknown authentication \"digest-md5\": use \"auto\", \"none\" or one of PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER, EXTERNAL",
            ),
            (
                "[profile.work]\nhost = []\n",
                ":2: bad value for \"host\" in [profile.work]: an empty list: give at least one host",
            ),
            (
                "[profile.work]\nhost = \"smtp example.com\"\n",
                ":2: bad value for \"host\" in [profile.work]: \"smtp example.com\" is not a host name (it has spaces or control characters)",
            ),
            (
                "[profile.work]\nfrom = \"alice\"\n",
                ":2: bad value for \"from\" in [profile.work]: \"alice\" is not an address: write an address (alice@example.com) or a pattern for a whole domain (*@example.com)",
            ),
            (
                "domain = \"my laptop\"\n",
                ":1: bad value for \"domain\" at the top level: \"my laptop\" is not a domain name (letters, digits, '-' and '.', or an address literal like [192.0.2.1]; write international names in their xn-- form)",
            ),
            (
                "[profile.work]\nmaildir = \"Maildir\"\n",
                ":2: bad value for \"maildir\" in [profile.work]: \"Maildir\" is relative: write an absolute path (or one starting with ~/)",
            ),
            (
                "log = \"smtpsend.log\"\n",
                ":1: bad value for \"log\" at the top level: \"smtpsend.log\" is relative: write an absolute path (or one starting with ~/) (or \"syslog\")",
            ),
            (
                "[profile.work]\ntls_ca_file = \"~bob/ca.pem\"\n",
                ":2: bad value for \"tls_ca_file\" in [profile.work]: \"~bob/ca.pem\": only ~/ is expanded, not ~user/ (write the full path)",
            ),
            (
                "[profile.work]\nuser = \"\"\n",
                ":2: bad value for \"user\" in [profile.work]: empty: set the user name or remove the key",
            ),
            (
                "[profile.work]\npassword_command = \"  \"\n",
                ":2: bad value for \"password_command\" in [profile.work]: empty: give a command that prints the password",
            ),
            (
                "local_domains = [\"localhost\", \"a@b\"]\n",
                ":1: bad value for \"local_domains\" at the top level: \"a@b\" is not a domain name (letters, digits, '-' and '.', or an address literal like [192.0.2.1]; write international names in their xn-- form)",
            ),
            // Keys that contradict each other.
            (
                "[profile.work]\npassword = \"pw\"\npassword_command = \"pass show x\"\n",
                ":3: both \"password\" and \"password_command\" are set in [profile.work]: keep one",
            ),
            (
                "[profile.work]\ntls_client_cert = \"/c.pem\"\n",
                ":2: \"tls_client_cert\" without \"tls_client_key\" in [profile.work]: give both, or a PKCS#12 file (.p12, .pfx) alone",
            ),
            (
                "tls_client_key = \"/k.pem\"\n",
                ":1: \"tls_client_key\" without \"tls_client_cert\" at the top level: give both or neither",
            ),
            (
                "default_profile = \"wrok\"\n[profile.work]\n[profile.home]\n",
                ":1: default_profile names \"wrok\", but there is no [profile.wrok]: the profiles are work, home",
            ),
            (
                "default_profile = \"work\"\nhost = \"x\"\n",
                ":1: default_profile names \"work\", but there is no [profile.work]: there are no [profile.NAME] tables",
            ),
            // Aliases.
            (
                "[aliases]\nroot = \"admin\"\nadmin = \"ops\"\nops = [\"x@example.com\", \"root\"]\n",
                ":2: alias loop in [aliases]: root -> admin -> ops -> root (make one of them an address)",
            ),
            (
                "[aliases]\nroot = \"a@example.com\"\nRoot = \"b@example.com\"\n",
                ":3: alias \"Root\" in [aliases] repeats \"root\" (names are compared without case)",
            ),
            (
                "[aliases]\n\"root@example.com\" = \"a@example.com\"\n",
                ":2: bad value for \"root@example.com\" in [aliases]: alias names are bare local names; \"root@example.com\" has a domain and would never match",
            ),
            (
                "[aliases]\nlogs = \"|/usr/bin/logger\"\n",
                ":2: bad value for \"logs\" in [aliases]: \"|/usr/bin/logger\": programs, files and :include: are not supported; give addresses or alias names",
            ),
            (
                "[aliases]\nroot = \"a@example.com,,b@example.com\"\n",
                ":2: bad value for \"root\" in [aliases]: an empty target: give addresses or alias names, separated by commas",
            ),
            // TOML syntax.
            (
                "host = \"a\"\nhost = \"b\"\n",
                ":2: invalid TOML: duplicate key \"host\"",
            ),
            (
                "[profile.work]\nport = 1\n[profile.work]\n",
                ":3: invalid TOML: duplicate key \"work\"",
            ),
            ("\n[profile.work\n", ":2: invalid TOML: "),
            ("host = \"unterminated\n", ":1: invalid TOML: "),
        ];
        for (text, want) in cases {
            let got = error(text);
            let want = format!("{FILE}{want}");
            if want.ends_with(": ") {
                assert!(
                    got.starts_with(&want),
                    "{text:?}\n got: {got}\nwant: {want}..."
                );
            } else {
                assert_eq!(got, want, "{text:?}");
            }
        }
    }

    #[test]
    fn errors_carry_line_and_key() {
        let e = load("# comment\r\n\r\n[profile.work]\r\nport = 0\r\n").unwrap_err();
        assert_eq!(e.line(), Some(4));
        assert_eq!(e.key(), Some("port"));
        assert_eq!(e.path(), Some(Path::new(FILE)));
    }

    #[test]
    fn a_password_of_the_wrong_type_is_not_shown() {
        let e = error("[profile.work]\npassword = 8675309\n");
        assert_eq!(
            e,
            format!("{FILE}:2: bad value for \"password\" in [profile.work]: expected a string")
        );
        let e = error("password = [\"hunter2\"]\n");
        assert!(!e.contains("hunter2"), "{e}");
        let e = error("[profile.work]\npasword = \"hunter2\"\n");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn values_are_typed_with_defaults() {
        let c = load("[profile.work]\nhost = \"smtp.example.com\"\n").unwrap();
        let p = c.select(None, None).unwrap();
        let want = Profile {
            name: "work".into(),
            hosts: vec!["smtp.example.com".into()],
            ..Profile::default()
        };
        assert_eq!(p, want);
        assert_eq!(p.effective_port(), 587);
        assert_eq!(p.tls, TlsMode::Starttls);
        assert_eq!(p.timeout, None);
        assert_eq!(p.local_domains, ["localhost"]);
        assert!(p.queue && p.add_date && p.add_message_id && p.add_from && p.qualify_headers);
        assert!(!p.read_envelope_from && !p.allow_plaintext_auth);
        assert!(!c.has_password());

        let c = load(
            r#"
            [profile.full]
            host = ["a.example", "b.example:2525"]
            port = 2465
            tls = "tls"
            tls_verify = false
            tls_ca_file = "~/ca.pem"
            tls_fingerprint = "0123456789ABCDEF0123456789ABCDEF0123456789abcdef0123456789abcdef"
            tls_client_cert = "/etc/c.pem"
            tls_client_key = "~/k.pem"
            auth = "scram-sha-256"
            user = "alice"
            password = "pw"
            from = "Alice@Example.com"
            domain = "laptop.example.com"
            timeout = "2m"
            allow_plaintext_auth = true
            queue = false
            queue_dir = "/var/spool/smtpsend"
            queue_lifetime = 3600
            transport = "lmtp"
            maildir = "~"
            local_domains = "Example.COM"
            add_date = false
            add_message_id = false
            add_from = false
            qualify_headers = false
            read_envelope_from = true
            log = "syslog"
            "#,
        )
        .unwrap();
        let p = c.select(Some("full"), None).unwrap();
        assert_eq!(p.hosts, ["a.example", "b.example:2525"]);
        assert_eq!(p.effective_port(), 2465);
        assert_eq!(p.tls, TlsMode::Tls);
        assert!(!p.tls_verify);
        assert_eq!(p.tls_ca_file, Some(PathBuf::from("/home/alice/ca.pem")));
        assert_eq!(
            p.tls_fingerprint.map(|f| (f[0], f[7], f[31])),
            Some((0x01, 0xef, 0xef))
        );
        assert_eq!(p.tls_client_cert, Some(PathBuf::from("/etc/c.pem")));
        assert_eq!(p.tls_client_key, Some(PathBuf::from("/home/alice/k.pem")));
        assert_eq!(p.auth, Auth::Mechanism(Mechanism::ScramSha256));
        assert_eq!(p.user.as_deref(), Some("alice"));
        assert_eq!(p.password, Some(crate::smtp::Secret::new("pw")));
        assert_eq!(p.from.as_deref(), Some("Alice@Example.com"));
        assert_eq!(p.domain.as_deref(), Some("laptop.example.com"));
        assert_eq!(p.timeout, Some(Duration::from_secs(120)));
        assert!(p.allow_plaintext_auth);
        assert!(!p.queue);
        assert_eq!(p.queue_dir, Some(PathBuf::from("/var/spool/smtpsend")));
        assert_eq!(p.queue_lifetime, Duration::from_secs(3600));
        assert_eq!(p.transport, Transport::Lmtp);
        assert_eq!(p.maildir, Some(PathBuf::from("/home/alice")));
        assert_eq!(p.local_domains, ["example.com"]);
        assert!(!p.add_date && !p.add_message_id && !p.add_from && !p.qualify_headers);
        assert!(p.read_envelope_from);
        assert_eq!(p.log, Some(LogTarget::Syslog));
        assert!(c.has_password());
        // The password never reaches Debug output.
        assert!(!format!("{p:?}").contains("\"pw\""));
    }

    #[test]
    fn profiles_inherit_the_top_level() {
        let c = load(
            r#"
            log = "/var/log/smtpsend.log"
            queue_dir = "/var/spool/smtpsend"
            timeout = 30
            host = "relay.example.com"
            password = "shared"
            tls_client_cert = "/c.pem"
            tls_client_key = "/k.pem"
            from = "ops@example.com"

            [profile.a]
            timeout = 5

            [profile.b]
            host = "other.example.com"
            password_command = "echo own"
            from = "*@example.org"
            "#,
        )
        .unwrap();
        let a = c.profile("a").unwrap();
        assert_eq!(a.log, Some(LogTarget::File("/var/log/smtpsend.log".into())));
        assert_eq!(a.queue_dir, Some(PathBuf::from("/var/spool/smtpsend")));
        assert_eq!(a.timeout, Some(Duration::from_secs(5)));
        assert_eq!(a.hosts, ["relay.example.com"]);
        assert_eq!(a.password, Some(crate::smtp::Secret::new("shared")));
        assert_eq!(a.tls_client_key, Some(PathBuf::from("/k.pem")));
        assert_eq!(a.from.as_deref(), Some("ops@example.com"));
        let b = c.profile("b").unwrap();
        assert_eq!(b.timeout, Some(Duration::from_secs(30)));
        assert_eq!(b.hosts, ["other.example.com"]);
        // The credential is one group: b's command shadows the top password.
        assert_eq!(b.password, None);
        assert_eq!(b.password_command.as_deref(), Some("echo own"));
        // A pattern is not a sender, and shadows the inherited address.
        assert_eq!(b.from, None);
        assert_eq!(c.profile_names(), ["a", "b"]);
    }

    #[test]
    fn a_file_without_profiles_is_one_profile() {
        let c = load("host = \"relay.example.com\"\n[aliases]\nroot = \"admin@example.com\"\n")
            .unwrap();
        assert_eq!(c.profile_names(), [IMPLICIT_PROFILE]);
        let p = c.select(None, Some("anyone@example.com")).unwrap();
        assert_eq!(p.name, "default");
        assert_eq!(p.hosts, ["relay.example.com"]);
        assert_eq!(c.select(Some("default"), None).unwrap(), p);

        let empty = load("").unwrap();
        assert_eq!(empty.select(None, None).unwrap(), Profile::default());
        assert!(empty.aliases().is_empty());
    }

    fn choice() -> Config {
        load(
            r#"
            default_profile = "home"
            [profile.work]
            host = "smtp.work.example"
            from = "*@work.example"
            [profile.boss]
            host = "smtp.work.example"
            from = "boss@work.example"
            [profile.home]
            host = "smtp.home.example"
            from = "me@home.example"
            [profile.home2]
            host = "smtp2.home.example"
            from = "me@home.example"
            "#,
        )
        .unwrap()
    }

    fn chosen(c: &Config, a: Option<&str>, sender: Option<&str>) -> String {
        c.select(a, sender).unwrap().name
    }

    #[test]
    fn profile_choice() {
        let c = choice();
        assert_eq!(c.profile_names(), ["work", "boss", "home", "home2"]);
        // -a wins over everything.
        assert_eq!(chosen(&c, Some("work"), Some("me@home.example")), "work");
        // An exact sender before a domain pattern, in any case.
        assert_eq!(chosen(&c, None, Some("BOSS@work.example")), "boss");
        assert_eq!(chosen(&c, None, Some("<boss@work.example>")), "boss");
        // The domain pattern.
        assert_eq!(chosen(&c, None, Some("alice@Work.Example")), "work");
        // Equal matches: default_profile among them.
        assert_eq!(chosen(&c, None, Some("me@home.example")), "home");
        // No match: default_profile.
        assert_eq!(chosen(&c, None, Some("x@elsewhere.example")), "home");
        assert_eq!(chosen(&c, None, None), "home");
    }

    #[test]
    fn equal_matches_without_default_take_the_first_in_the_file() {
        let c =
            load("[profile.zz]\nfrom = \"me@x.example\"\n[profile.aa]\nfrom = \"me@x.example\"\n")
                .unwrap();
        assert_eq!(chosen(&c, None, Some("me@x.example")), "zz");
    }

    #[test]
    fn inherited_from_does_not_choose() {
        let c =
            load("from = \"me@x.example\"\n[profile.a]\nhost = \"a\"\n[profile.b]\nhost = \"b\"\n")
                .unwrap();
        let e = c.select(None, Some("me@x.example")).unwrap_err();
        assert!(matches!(e, ConfigError::NoProfileChosen { .. }), "{e}");
    }

    #[test]
    fn a_single_profile_needs_no_default() {
        let c = load("[profile.only]\nhost = \"h\"\n").unwrap();
        assert_eq!(chosen(&c, None, None), "only");
        assert_eq!(chosen(&c, None, Some("x@y.example")), "only");
    }

    #[test]
    fn choice_errors() {
        let c = load("[profile.work]\n[profile.home]\n").unwrap();
        let e = c.select(None, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/smtpsend.toml has several profiles (work, home) and none was chosen: give -a NAME, or set default_profile"
        );
        assert_eq!(e.kind(), Sysexit::Config);
        let e = c.select(Some("Work"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no profile named \"Work\" in /etc/smtpsend.toml: the profiles are work, home"
        );
        assert_eq!(e.kind(), Sysexit::Usage);
    }

    #[test]
    fn aliases_from_the_file() {
        let c = load(
            r#"
            [aliases]
            Root = "admins"
            admins = ["alice@example.com", "bob@example.com, carol"]
            default = "postmaster@example.com"
            "#,
        )
        .unwrap();
        let a = c.aliases();
        let got: Vec<String> = a
            .resolve("root")
            .unwrap()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        // carol has no alias: she goes to default.
        assert_eq!(
            got,
            [
                "alice@example.com",
                "bob@example.com",
                "postmaster@example.com"
            ]
        );
        assert_eq!(
            a.resolve("nobody").unwrap(),
            [Target::Address("postmaster@example.com".into())]
        );
        assert_eq!(
            a.resolve("x@y.example").unwrap(),
            [Target::Address("x@y.example".into())]
        );
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn permissions_of_files_with_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "[profile.work]\nhost = \"h\"\npassword = \"pw\"\n";
        let plain = "[profile.work]\nhost = \"h\"\npassword_command = \"echo pw\"\n";

        let p = write(dir.path(), "600.toml", secret, 0o600);
        assert!(Config::load(&p).unwrap().has_password());

        let p = write(dir.path(), "644.toml", secret, 0o644);
        let e = Config::load(&p).unwrap_err();
        assert!(matches!(
            e,
            ConfigError::Permissions {
                exposure: Exposure::ReadableByOthers,
                ..
            }
        ));
        assert_eq!(e.kind(), Sysexit::Config);
        assert!(
            e.to_string()
                .contains(&format!("run \"chmod 600 {}\"", p.display())),
            "{e}"
        );

        // Group-readable is allowed only for a root-owned file (tests may
        // or may not run as root: the rule is about the file's owner).
        let p = write(dir.path(), "640.toml", secret, 0o640);
        let owner = std::fs::metadata(&p).unwrap().uid();
        let r = Config::load(&p);
        if owner == 0 {
            assert!(r.is_ok(), "{r:?}");
        } else {
            assert!(matches!(
                r,
                Err(ConfigError::Permissions {
                    exposure: Exposure::ReadableByGroup,
                    ..
                })
            ));
        }

        // No password, no restriction on reading...
        let p = write(dir.path(), "plain644.toml", plain, 0o644);
        assert!(!Config::load(&p).unwrap().has_password());
        // ...but nobody else may write any configuration.
        let p = write(dir.path(), "plain666.toml", plain, 0o666);
        assert!(matches!(
            Config::load(&p),
            Err(ConfigError::Permissions {
                exposure: Exposure::WritableByOthers,
                ..
            })
        ));
        // A top-level password counts too.
        let p = write(dir.path(), "top.toml", "password = \"pw\"\n", 0o604);
        assert!(Config::load(&p).is_err());
    }

    #[test]
    fn files_that_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let e = Config::load(dir.path()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read configuration file {}: it is a directory",
                dir.path().display()
            )
        );
        let p = dir.path().join("bin.toml");
        std::fs::write(&p, b"host = \"\xff\"\n").unwrap();
        assert!(
            Config::load(&p)
                .unwrap_err()
                .to_string()
                .ends_with("it is not UTF-8 text")
        );
        let p = dir.path().join("huge.toml");
        std::fs::write(&p, vec![b'#'; MAX_CONFIG_SIZE as usize + 1]).unwrap();
        assert!(
            Config::load(&p)
                .unwrap_err()
                .to_string()
                .contains("not a configuration file")
        );
        // `-C /dev/null`: no configuration, whatever the device's mode.
        let null = Config::load(Path::new("/dev/null")).unwrap();
        assert_eq!(null.profile_names(), [IMPLICIT_PROFILE]);
        let e = Config::load(&dir.path().join("missing.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert_eq!(e.kind(), Sysexit::Config);
        // An error inside a loaded file names the real path.
        let p = write(dir.path(), "bad.toml", "\nport = 0\n", 0o600);
        assert_eq!(
            Config::load(&p).unwrap_err().to_string(),
            format!(
                "{}:2: bad value for \"port\" at the top level: must be between 1 and 65535, not 0",
                p.display()
            )
        );
    }

    const EXAMPLE: &str = include_str!("../../config.example.toml");

    #[test]
    fn the_example_parses() {
        let c = Config::from_str(EXAMPLE, Path::new("config.example.toml")).unwrap();
        assert!(
            !c.has_password(),
            "the example's password must stay commented out"
        );
        assert_eq!(c.profile_names(), ["work", "home"]);
        assert_eq!(c.default_profile(), Some("work"));
        let work = c.select(None, Some("bob@example.com")).unwrap();
        assert_eq!(work.name, "work");
        assert_eq!(work.hosts.len(), 2);
        assert_eq!(
            work.password_command.as_deref(),
            Some("pass show mail/work | head -n 1")
        );
        assert_eq!(
            c.select(None, Some("alice@example.org")).unwrap().name,
            "home"
        );
        assert_eq!(c.select(None, None).unwrap().name, "work");
        assert_eq!(c.profile("home").unwrap().effective_port(), 465);
        let backup: Vec<String> = c
            .aliases()
            .resolve("backup")
            .unwrap()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        assert_eq!(
            backup,
            ["alice@example.com", "bob@example.com", "carol@example.org"]
        );
    }

    /// Each default the example shows (`# key = value`) is the table's.
    #[test]
    fn the_examples_defaults_are_the_tables() {
        // Keys the example shows with a sample value: they have no default
        // value to show (unset, or one that depends on another key).
        const SAMPLES: &[&str] = &[
            "port",
            "tls_ca_file",
            "tls_fingerprint",
            "tls_client_cert",
            "tls_client_key",
            "password",
            "domain",
            "timeout",
            "queue_dir",
            "maildir",
            "log",
        ];
        let mut checked = 0;
        for line in EXAMPLE.lines() {
            let Some((key, value)) = line.strip_prefix("# ").and_then(|l| l.split_once(" = "))
            else {
                continue;
            };
            if !schema::PROFILE_KEYS.contains(&key) || SAMPLES.contains(&key) {
                continue;
            }
            let c = parse(
                &format!("[profile.x]\n{key} = {value}\n"),
                Path::new("line"),
                Some(Path::new("/home/alice")),
            )
            .unwrap();
            let p = c.profile("x").unwrap();
            assert_eq!(p.changed_keys(), Vec::<&str>::new(), "{line}");
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} defaults checked");
    }

    #[test]
    fn the_example_documents_every_key_with_its_default() {
        for key in schema::TOP_ONLY_KEYS.iter().chain(schema::PROFILE_KEYS) {
            let written = EXAMPLE.lines().any(|l| {
                let l = l.trim_start_matches('#').trim_start();
                l.starts_with(&format!("{key} =")) || l.starts_with(&format!("[{key}"))
            });
            assert!(written, "config.example.toml does not show \"{key}\"");
        }
        // Uncommenting every key line must still give a valid file, apart
        // from the exclusive pairs the example shows as alternatives.
        let uncommented: String = EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        k != "password" && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        parse(
            &uncommented,
            Path::new("uncommented"),
            Some(Path::new("/home/alice")),
        )
        .unwrap();
    }
}
