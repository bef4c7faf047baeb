//! SASL mechanisms for SMTP AUTH (RFC 4954), client side.
//!
//! This module owns the bytes a mechanism computes: each mechanism is a
//! pure state machine that turns decoded server challenges into raw client
//! responses. It never touches a socket, never does base64 on the wire
//! (the session encodes and decodes) and never decides which mechanism to
//! use beyond [`PREFERENCE`]. Challenges come from the server and are
//! treated as hostile: every malformed one is an [`AuthError`], never a
//! panic, and no password, token or derived key ever appears in an error,
//! a `Debug` or a `Display`.
//!
//! The session drives a [`Mechanism`] like this (RFC 4954 §4):
//!
//! 1. call [`Mechanism::initial_response`] before writing the command; if it
//!    is `Some`, send `AUTH <name> <base64>` (`=` when empty), otherwise
//!    `AUTH <name>`;
//! 2. for every `334` reply, base64-decode its text, pass it to
//!    [`Mechanism::respond`] and send the answer base64-encoded;
//! 3. on `235`, call [`Mechanism::finish`]: an error there means the server
//!    claimed success without proving itself, and the session must not
//!    count the connection as authenticated;
//! 4. on any other reply, [`Mechanism::failure_detail`] may add what the
//!    mechanism learned (the JSON error of the OAuth mechanisms).
//!
//! Mechanisms that have an initial response also accept being asked for it
//! by an empty first challenge (a session that sent a bare `AUTH <name>`).
//! Each mechanism of this module answers a bounded number of challenges and
//! refuses any beyond, so a server cannot keep an exchange going forever
//! (a caller's [`from_fn`] closure is its own judge).

mod cram_md5;
mod exchange;
mod external;
mod oauth;
mod plain;
mod scram;

pub use cram_md5::CramMd5;
pub use external::External;
pub use oauth::{OAuthBearer, XOAuth2};
pub use plain::{Login, Plain};
pub use scram::{MAX_ITERATIONS, Scram, ScramHash};

use hmac::Mac;
use hmac::digest::KeyInit;

use super::Secret;

/// A SASL mechanism's client side, driven by the session's AUTH exchange.
/// All data is raw bytes: the session does the base64 both ways.
pub trait Mechanism {
    /// The IANA name, upper case, as sent after "AUTH ".
    fn name(&self) -> &str;
    /// The initial client response (RFC 4954 §4), raw; `None` when the mechanism must wait for a first challenge (LOGIN, CRAM-MD5). An empty response is `Some(vec![])` (sent as "=").
    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, AuthError>;
    /// The answer to a decoded 334 challenge.
    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, AuthError>;
    /// Called when the server said 235. SCRAM returns an error here if it never verified the server signature (a server that skips server-final must not count as authenticated).
    fn finish(&mut self) -> Result<(), AuthError> {
        Ok(())
    }
    /// After a failure, what the mechanism learned beyond the reply (the JSON error of XOAUTH2/OAUTHBEARER), for the user's error line.
    fn failure_detail(&self) -> Option<String> {
        None
    }
}

/// Why a mechanism could not produce a response or refused to accept the
/// server's word. Messages are one line and never contain a secret; text
/// quoted from the server is made printable and cut short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The server's challenge is malformed or says something the mechanism
    /// does not allow (the text names what is wrong).
    #[error("bad {mechanism} challenge from server: {reason}")]
    BadChallenge {
        /// The mechanism that received the challenge.
        mechanism: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The server sent a challenge after the exchange was already complete
    /// on our side (e.g. a third LOGIN challenge).
    #[error("unexpected {0} challenge from server: the exchange is already complete")]
    UnexpectedChallenge(&'static str),

    /// The SCRAM server signature does not verify: the server does not
    /// know the password, or someone is in the middle.
    #[error("{0} server signature does not verify: the server did not prove it knows the password")]
    ServerSignatureMismatch(&'static str),

    /// The server accepted a SCRAM exchange (235) without ever sending its
    /// signature, so it never proved it knows the password.
    #[error("{0}: server reported success without sending its signature (server-final)")]
    ServerNotVerified(&'static str),

    /// The SCRAM server ended the exchange with `e=` (RFC 5802 §7).
    #[error("{mechanism} server error: {message}")]
    ServerError {
        /// The mechanism that received the error.
        mechanism: &'static str,
        /// The server's `server-error-value`, made printable.
        message: String,
    },

    /// A credential cannot be expressed in this mechanism (e.g. a NUL byte
    /// in a PLAIN user name, an empty SCRAM user name). Names the field,
    /// never its value.
    #[error("{mechanism}: the {field} cannot be used: {reason}")]
    InvalidCredential {
        /// The mechanism that refused the credential.
        mechanism: &'static str,
        /// Which credential: "user name", "password", "token", ...
        field: &'static str,
        /// Why, without the value.
        reason: &'static str,
    },

    /// A mechanism name given to [`from_fn`] is not a valid SASL name
    /// (RFC 4422 §3.1: 1 to 20 of `A-Z 0-9 - _`), so it cannot be sent.
    #[error("invalid SASL mechanism name \"{0}\": must be 1 to 20 of A-Z, 0-9, '-', '_'")]
    InvalidMechanismName(String),

    /// The system random source failed (SCRAM client nonce).
    #[error("cannot get random bytes for the {mechanism} nonce: {reason}")]
    Random {
        /// The mechanism that needed the randomness.
        mechanism: &'static str,
        /// The operating system's error.
        reason: String,
    },

    /// A caller-supplied mechanism ([`from_fn`]) failed; the text is the
    /// caller's.
    #[error("{0}")]
    Other(String),
}

/// The credentials a mechanism authenticates with.
///
/// `Debug` is safe to print: [`Secret`] redacts itself.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The authentication identity (SASL authcid): the login name.
    pub user: String,
    /// The password for the password mechanisms, or the OAuth 2.0 bearer
    /// token for XOAUTH2 and OAUTHBEARER.
    pub secret: Secret,
    /// The authorization identity (SASL authzid), when acting for someone
    /// else; `None` is the usual case (act as `user`).
    pub authzid: Option<String>,
}

impl Credentials {
    /// Credentials for `user` with `secret` and no authorization identity.
    pub fn new(user: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Credentials {
            user: user.into(),
            secret: secret.into(),
            authzid: None,
        }
    }
}

/// The order in which `login()` tries the password mechanisms a server
/// offers: strongest first. smtplib's order is CRAM-MD5, PLAIN, LOGIN; the
/// SCRAM family goes ahead of it because it never reveals the password and
/// makes the server prove it knows it.
pub const PREFERENCE: &[&str] = &["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"];

/// The password mechanism called `name` (case-insensitive; one of
/// [`PREFERENCE`]) for `creds`, or `None` if `name` is not one of them.
pub fn password_mechanism(name: &str, creds: &Credentials) -> Option<Box<dyn Mechanism + Send>> {
    let upper = name.to_ascii_uppercase();
    Some(match upper.as_str() {
        "SCRAM-SHA-256" => Box::new(Scram::new(ScramHash::Sha256, creds)),
        "SCRAM-SHA-1" => Box::new(Scram::new(ScramHash::Sha1, creds)),
        "CRAM-MD5" => Box::new(CramMd5::new(creds)),
        "PLAIN" => Box::new(Plain::new(creds)),
        "LOGIN" => Box::new(Login::new(creds)),
        _ => return None,
    })
}

/// Any mechanism this module knows, by name (case-insensitive): the
/// password mechanisms of [`password_mechanism`], plus XOAUTH2 and
/// OAUTHBEARER (with `creds.secret` as the bearer token; OAUTHBEARER
/// without host and port, see [`OAuthBearer::with_server`]) and EXTERNAL
/// (with `creds.authzid`, or empty). `None` for an unknown name.
pub fn mechanism(name: &str, creds: &Credentials) -> Option<Box<dyn Mechanism + Send>> {
    if let Some(m) = password_mechanism(name, creds) {
        return Some(m);
    }
    let upper = name.to_ascii_uppercase();
    Some(match upper.as_str() {
        "XOAUTH2" => Box::new(XOAuth2::new(creds)),
        "OAUTHBEARER" => Box::new(OAuthBearer::new(creds)),
        "EXTERNAL" => Box::new(External::new(creds.authzid.as_deref())),
        _ => return None,
    })
}

/// A mechanism supplied by the caller as a closure, for anything this
/// module does not implement. Built by [`from_fn`].
pub struct FnMechanism<F> {
    name: String,
    initial: Option<Vec<u8>>,
    respond: F,
}

/// A [`Mechanism`] called `name` (sent upper case) whose initial response
/// is `initial` and which answers every challenge with `f(challenge)`.
///
/// The name is checked when the session asks for the initial response: one
/// that is not a valid SASL name (RFC 4422 §3.1) is refused with
/// [`AuthError::InvalidMechanismName`] rather than written to the server.
pub fn from_fn<F>(name: impl Into<String>, initial: Option<Vec<u8>>, f: F) -> FnMechanism<F>
where
    F: FnMut(&[u8]) -> Result<Vec<u8>, AuthError>,
{
    FnMechanism {
        name: name.into().to_ascii_uppercase(),
        initial,
        respond: f,
    }
}

impl<F> Mechanism for FnMechanism<F>
where
    F: FnMut(&[u8]) -> Result<Vec<u8>, AuthError>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, AuthError> {
        if !is_sasl_name(&self.name) {
            return Err(AuthError::InvalidMechanismName(printable(
                self.name.as_bytes(),
                QUOTE_LIMIT,
            )));
        }
        Ok(self.initial.clone())
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, AuthError> {
        (self.respond)(challenge)
    }
}

/// RFC 4422 §3.1: `sasl-mech = 1*20mech-char`, `mech-char = UPPER-ALPHA /
/// DIGIT / HYPHEN / UNDERSCORE`.
fn is_sasl_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// How much server text an error message quotes, in characters.
const QUOTE_LIMIT: usize = 200;

/// How much of an OAuth JSON error [`Mechanism::failure_detail`] keeps, in
/// characters: enough for the documented fields, bounded against a server
/// that sends megabytes.
const DETAIL_LIMIT: usize = 1000;

/// Server (or caller) bytes made safe for a one-line message: invalid UTF-8
/// replaced, control characters escaped (no terminal escapes, no line
/// breaks), cut to at most `max` characters plus an ellipsis.
fn printable(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for c in String::from_utf8_lossy(bytes).chars() {
        let escaped = c.is_control().then(|| c.escape_default());
        let width = escaped.clone().map_or(1, Iterator::count);
        if count + width > max {
            out.push('…');
            break;
        }
        count += width;
        match escaped {
            Some(e) => out.extend(e),
            None => out.push(c),
        }
    }
    out
}

/// The answer to a challenge that comes before a mechanism has produced
/// its initial response: a session that sent a bare `AUTH <name>` gets an
/// empty challenge and answers it with what the initial response would
/// have been (RFC 4954 §4). Anything else there is refused.
fn initial_on_demand(
    mechanism: &'static str,
    challenge: &[u8],
    initial: impl FnOnce() -> Result<Vec<u8>, AuthError>,
) -> Result<Vec<u8>, AuthError> {
    if challenge.is_empty() {
        initial()
    } else {
        Err(AuthError::BadChallenge {
            mechanism,
            reason: format!(
                "expected an empty first challenge, got \"{}\"",
                printable(challenge, QUOTE_LIMIT)
            ),
        })
    }
}

/// The HMAC `M` keyed with `key` over `data`, for CRAM-MD5 and SCRAM to
/// finalize, or to verify a signature against in constant time.
fn keyed_mac<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> M {
    // HMAC hashes or pads a key of any length (RFC 2104 §2), so
    // `new_from_slice` cannot fail for it, whatever the server sent.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac
}

/// A SASL name as RFC 5802 §5.1 and RFC 5801 §4 write it: `=` as `=3D`
/// and `,` as `=2C`. An empty name or one with a NUL cannot be written.
fn saslname(mechanism: &'static str, field: &'static str, name: &str) -> Result<String, AuthError> {
    if name.is_empty() {
        return Err(AuthError::InvalidCredential {
            mechanism,
            field,
            reason: "it is empty",
        });
    }
    if name.contains('\0') {
        return Err(AuthError::InvalidCredential {
            mechanism,
            field,
            reason: "it contains a NUL character",
        });
    }
    Ok(name.replace('=', "=3D").replace(',', "=2C"))
}

/// The GS2 header that starts SCRAM and OAUTHBEARER client messages
/// (RFC 5801 §4): no channel binding (`n`) and the authorization identity,
/// if any (an empty one is none).
fn gs2_header(mechanism: &'static str, authzid: Option<&str>) -> Result<String, AuthError> {
    Ok(match authzid.filter(|a| !a.is_empty()) {
        None => "n,,".to_owned(),
        Some(a) => format!("n,a={},", saslname(mechanism, "authorization identity", a)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new("tim", "tanstaaftanstaaf")
    }

    #[test]
    fn lookup_is_case_insensitive_and_knows_the_preference_list() {
        for name in PREFERENCE {
            let m = password_mechanism(&name.to_ascii_lowercase(), &creds()).unwrap();
            assert_eq!(m.name(), *name);
            assert_eq!(mechanism(name, &creds()).unwrap().name(), *name);
        }
        assert!(password_mechanism("XOAUTH2", &creds()).is_none());
        assert!(password_mechanism("GSSAPI", &creds()).is_none());
    }

    #[test]
    fn mechanism_adds_oauth_and_external() {
        for name in ["XOAUTH2", "OAUTHBEARER", "EXTERNAL"] {
            let m = mechanism(&name.to_ascii_lowercase(), &creds()).unwrap();
            assert_eq!(m.name(), name);
        }
        assert!(mechanism("NTLM", &creds()).is_none());
        assert!(mechanism("", &creds()).is_none());
    }

    #[test]
    fn credentials_debug_redacts_the_secret() {
        let text = format!("{:?}", creds());
        assert!(text.contains("tim"));
        assert!(!text.contains("tanstaaf"));
    }

    #[test]
    fn from_fn_runs_the_closure_and_upper_cases_the_name() {
        let mut seen = Vec::new();
        let mut m = from_fn("x-token", Some(b"hello".to_vec()), |c: &[u8]| {
            seen.push(c.to_vec());
            Ok(b"reply".to_vec())
        });
        assert_eq!(m.name(), "X-TOKEN");
        assert_eq!(m.initial_response().unwrap(), Some(b"hello".to_vec()));
        assert_eq!(m.respond(b"challenge").unwrap(), b"reply");
        assert_eq!(m.finish(), Ok(()));
        assert_eq!(m.failure_detail(), None);
        assert_eq!(seen, vec![b"challenge".to_vec()]);
    }

    #[test]
    fn from_fn_passes_the_closure_error_through() {
        let mut m = from_fn("X", None, |_: &[u8]| Err(AuthError::Other("no".into())));
        assert_eq!(m.initial_response().unwrap(), None);
        assert_eq!(m.respond(b""), Err(AuthError::Other("no".into())));
    }

    #[test]
    fn from_fn_refuses_a_name_that_would_inject_into_the_command() {
        for bad in ["PLAIN\r\nRSET", "", "A B", "TWENTY-ONE-CHARS-LONG", "É"] {
            let mut m = from_fn(bad, None, |_: &[u8]| Ok(vec![]));
            let err = m.initial_response().unwrap_err();
            assert!(matches!(err, AuthError::InvalidMechanismName(_)), "{bad:?}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        let mut ok = from_fn("TWENTY-CHARS-LONG_20", None, |_: &[u8]| Ok(vec![]));
        assert_eq!(ok.initial_response(), Ok(None));
    }

    #[test]
    fn printable_escapes_controls_and_bounds_length() {
        assert_eq!(printable(b"a\r\nb\x1b[31m", 100), "a\\r\\nb\\u{1b}[31m");
        assert_eq!(printable(b"abcdef", 3), "abc…");
        assert_eq!(printable(b"\xff", 10), "\u{fffd}");
        // The bound counts the escapes, not the input.
        assert_eq!(printable(b"ab\x1b", 7), "ab…");
        assert_eq!(printable(b"ab\x1b", 8), "ab\\u{1b}");
    }
}
