//! SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), client side,
//! without channel binding.
//!
//! This module owns the SCRAM exchange: the client-first message with a
//! fresh random nonce, the parse of the server-first message, the proof,
//! and the check of the server's signature, which is what makes SCRAM
//! mutual: a server that cannot sign does not know the password, and
//! [`Mechanism::finish`] refuses a server that reports success without
//! signing at all.
//!
//! The server-first message decides how much work the client does
//! (`i=`, the PBKDF2 iteration count); it is capped at [`MAX_ITERATIONS`]
//! so a hostile server cannot make the client spin.
//!
//! The password is used as given, as its UTF-8 bytes: SASLprep (RFC 4013)
//! is not applied. ASCII passwords are unaffected; a password with
//! characters SASLprep would map or normalise must be given in its
//! prepared form.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{
    AuthError, Credentials, Mechanism, QUOTE_LIMIT, gs2_header, initial_on_demand, keyed_mac,
    printable, saslname,
};
use crate::smtp::Secret;

/// The largest PBKDF2 iteration count (`i=`) accepted from a server.
/// Servers use 4096 (the RFC minimum recommendation) to a few hundred
/// thousand; a million of SHA-256 costs well under a second of CPU, and
/// anything above is treated as an attempt to make the client spin.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Random bytes in a client nonce: 192 bits, sent as 32 base64 characters.
const NONCE_BYTES: usize = 24;

/// The hash function a SCRAM mechanism is built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-1 (RFC 5802).
    Sha1,
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
}

impl ScramHash {
    /// The SASL mechanism name: `SCRAM-SHA-1` or `SCRAM-SHA-256`.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SCRAM-SHA-1",
            ScramHash::Sha256 => "SCRAM-SHA-256",
        }
    }

    /// `HMAC(key, data)` of RFC 5802 §2.2.
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => keyed_mac::<Hmac<Sha1>>(key, data)
                .finalize()
                .into_bytes()
                .to_vec(),
            ScramHash::Sha256 => keyed_mac::<Hmac<Sha256>>(key, data)
                .finalize()
                .into_bytes()
                .to_vec(),
        }
    }

    /// `H(data)` of RFC 5802 §2.2.
    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, i)` of RFC 5802 §2.2, which is PBKDF2 with this
    /// HMAC and an output the size of the hash.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(password, salt, iterations).to_vec()
            }
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
        }
    }

    /// Whether `signature` is `HMAC(key, data)`, compared in constant time.
    fn verify(self, key: &[u8], data: &[u8], signature: &[u8]) -> bool {
        match self {
            ScramHash::Sha1 => keyed_mac::<Hmac<Sha1>>(key, data).verify_slice(signature),
            ScramHash::Sha256 => keyed_mac::<Hmac<Sha256>>(key, data).verify_slice(signature),
        }
        .is_ok()
    }
}

/// A SCRAM client (RFC 5802 §5): the initial response is the client-first
/// message, the first challenge (server-first) is answered with the
/// client-final message carrying the proof, and the second (server-final)
/// must carry a valid server signature; it is answered with an empty
/// response. [`Mechanism::finish`] fails unless that signature verified.
pub struct Scram {
    hash: ScramHash,
    user: String,
    authzid: Option<String>,
    password: Secret,
    /// A fixed client nonce for test vectors; `None` draws a fresh one
    /// from the operating system for every exchange.
    fixed_nonce: Option<String>,
    state: State,
}

enum State {
    Start,
    /// The client-first message is sent; what the next step needs of it.
    ClientFirstSent {
        gs2_header: String,
        client_first_bare: String,
        client_nonce: String,
    },
    /// The client-final message is sent; what the server must prove.
    ClientFinalSent {
        server_key: Vec<u8>,
        auth_message: String,
    },
    /// The server signature verified.
    Verified,
    /// A step failed; the exchange cannot go on.
    Failed,
}

impl Scram {
    /// SCRAM on `hash` for `creds` (password in `creds.secret`, used as its
    /// UTF-8 bytes without SASLprep; `creds.authzid` goes in the GS2
    /// header). The client nonce is drawn from the operating system's
    /// random source when the exchange starts.
    pub fn new(hash: ScramHash, creds: &Credentials) -> Self {
        Scram {
            hash,
            user: creds.user.clone(),
            authzid: creds.authzid.clone(),
            password: creds.secret.clone(),
            fixed_nonce: None,
            state: State::Start,
        }
    }

    /// Like [`Scram::new`] but with a fixed client nonce, for the RFC test
    /// vectors and scripted servers. Never use it against a real server: a
    /// predictable nonce lets a recorded exchange be replayed. The nonce
    /// must be printable ASCII without `,` (RFC 5802 §7 `printable`).
    pub fn with_nonce(
        hash: ScramHash,
        creds: &Credentials,
        nonce: impl Into<String>,
    ) -> Result<Self, AuthError> {
        let nonce = nonce.into();
        if !is_nonce(&nonce) {
            return Err(AuthError::InvalidCredential {
                mechanism: hash.mechanism_name(),
                field: "client nonce",
                reason: "it must be printable ASCII without ','",
            });
        }
        Ok(Scram {
            fixed_nonce: Some(nonce),
            ..Scram::new(hash, creds)
        })
    }

    /// RFC 5802 §7: `client-first-message = gs2-header client-first-bare`,
    /// `client-first-bare = "n=" saslname ",r=" c-nonce`. Starts (or
    /// restarts) the exchange.
    fn client_first(&mut self) -> Result<Vec<u8>, AuthError> {
        let name = self.hash.mechanism_name();
        self.state = State::Failed;
        let user = saslname(name, "user name", &self.user)?;
        let gs2_header = gs2_header(name, self.authzid.as_deref())?;
        let client_nonce = match &self.fixed_nonce {
            Some(nonce) => nonce.clone(),
            None => random_nonce(name)?,
        };
        let client_first_bare = format!("n={user},r={client_nonce}");
        let message = format!("{gs2_header}{client_first_bare}").into_bytes();
        self.state = State::ClientFirstSent {
            gs2_header,
            client_first_bare,
            client_nonce,
        };
        Ok(message)
    }

    /// RFC 5802 §3: from the server-first message to the client-final one,
    /// and what the server must then prove.
    fn client_final(
        &self,
        server_first: &[u8],
        gs2_header: &str,
        client_first_bare: &str,
        client_nonce: &str,
    ) -> Result<(Vec<u8>, State), AuthError> {
        let name = self.hash.mechanism_name();
        let bad = |reason| AuthError::BadChallenge {
            mechanism: name,
            reason,
        };
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| bad("the server-first message is not UTF-8".to_owned()))?;
        let ServerFirst {
            nonce,
            salt,
            iterations,
        } = parse_server_first(server_first, client_nonce).map_err(bad)?;

        let h = self.hash;
        let salted_password =
            h.salted_password(self.password.expose().as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted_password, b"Client Key");
        let stored_key = h.hash(&client_key);
        let server_key = h.hmac(&salted_password, b"Server Key");
        // "c=" carries the GS2 header: "biws" for "n,,".
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(gs2_header));
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let message = format!("{without_proof},p={}", STANDARD.encode(proof));
        Ok((
            message.into_bytes(),
            State::ClientFinalSent {
                server_key,
                auth_message,
            },
        ))
    }

    /// RFC 5802 §7: `server-final-message = (server-error / verifier)
    /// ["," extensions]`; the verifier must be `HMAC(ServerKey,
    /// AuthMessage)`.
    fn check_server_final(
        &self,
        server_final: &[u8],
        server_key: &[u8],
        auth_message: &str,
    ) -> Result<(), AuthError> {
        let name = self.hash.mechanism_name();
        let bad = |reason| AuthError::BadChallenge {
            mechanism: name,
            reason,
        };
        let text = std::str::from_utf8(server_final)
            .map_err(|_| bad("the server-final message is not UTF-8".to_owned()))?;
        let mut parts = text.split(',');
        let first = parts.next().unwrap_or_default();
        if let Some(error) = first.strip_prefix("e=") {
            return Err(AuthError::ServerError {
                mechanism: name,
                message: printable(error.as_bytes(), QUOTE_LIMIT),
            });
        }
        let verifier = first.strip_prefix("v=").ok_or_else(|| {
            bad(format!(
                "expected the server signature (v=) or an error (e=), got \"{}\"",
                printable(first.as_bytes(), QUOTE_LIMIT)
            ))
        })?;
        extensions(parts).map_err(bad)?;
        let signature = STANDARD
            .decode(verifier)
            .map_err(|_| bad("the server signature is not valid base64".to_owned()))?;
        if !self
            .hash
            .verify(server_key, auth_message.as_bytes(), &signature)
        {
            return Err(AuthError::ServerSignatureMismatch(name));
        }
        Ok(())
    }
}

impl Mechanism for Scram {
    fn name(&self) -> &str {
        self.hash.mechanism_name()
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, AuthError> {
        self.client_first().map(Some)
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, AuthError> {
        let name = self.hash.mechanism_name();
        // Whatever fails below leaves the exchange Failed.
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Start => initial_on_demand(name, challenge, || self.client_first()),
            State::ClientFirstSent {
                gs2_header,
                client_first_bare,
                client_nonce,
            } => {
                let (message, next) =
                    self.client_final(challenge, &gs2_header, &client_first_bare, &client_nonce)?;
                self.state = next;
                Ok(message)
            }
            State::ClientFinalSent {
                server_key,
                auth_message,
            } => {
                self.check_server_final(challenge, &server_key, &auth_message)?;
                self.state = State::Verified;
                // RFC 4954 §4: the server-final message comes as a 334
                // challenge and the client answers it with an empty line.
                Ok(Vec::new())
            }
            State::Verified => {
                self.state = State::Verified;
                Err(AuthError::UnexpectedChallenge(name))
            }
            State::Failed => Err(AuthError::UnexpectedChallenge(name)),
        }
    }

    fn finish(&mut self) -> Result<(), AuthError> {
        match self.state {
            State::Verified => Ok(()),
            _ => Err(AuthError::ServerNotVerified(self.hash.mechanism_name())),
        }
    }
}

/// A fresh client nonce: [`NONCE_BYTES`] from the operating system, in
/// base64 (printable, never `,`).
fn random_nonce(mechanism: &'static str) -> Result<String, AuthError> {
    let mut bytes = [0u8; NONCE_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random {
        mechanism,
        reason: e.to_string(),
    })?;
    Ok(STANDARD.encode(bytes))
}

/// RFC 5802 §7: `printable = %x21-2B / %x2D-7E`, one or more.
fn is_nonce(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// What the client needs of a server-first message.
struct ServerFirst<'a> {
    /// The combined nonce: ours, then the server's.
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

/// RFC 5802 §7: `server-first-message = [reserved-mext ","] nonce ","
/// salt "," iteration-count ["," extensions]`. The error is the reason, for
/// [`AuthError::BadChallenge`].
fn parse_server_first<'a>(message: &'a str, client_nonce: &str) -> Result<ServerFirst<'a>, String> {
    let mut parts = message.split(',');
    let first = parts.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err("the server requires an extension (m=) this client does not know".to_owned());
    }
    let nonce = attribute(first, 'r', "nonce")?;
    if !is_nonce(nonce) {
        return Err("the nonce is not printable ASCII".to_owned());
    }
    // The server must append its own part to ours (RFC 5802 §5.1), so a
    // reply to someone else's exchange, or a replayed one, is refused.
    if nonce.len() <= client_nonce.len() || !nonce.starts_with(client_nonce) {
        return Err("the server nonce does not extend the client nonce".to_owned());
    }
    let salt = attribute(parts.next().unwrap_or_default(), 's', "salt")?;
    let salt = STANDARD
        .decode(salt)
        .map_err(|_| "the salt is not valid base64".to_owned())?;
    if salt.is_empty() {
        return Err("the salt is empty".to_owned());
    }
    let iterations = attribute(parts.next().unwrap_or_default(), 'i', "iteration count")?;
    let iterations = parse_iterations(iterations)?;
    extensions(parts)?;
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// The value of `part` if it is the attribute `key` (`key "=" value`).
fn attribute<'a>(part: &'a str, key: char, what: &str) -> Result<&'a str, String> {
    part.strip_prefix(key)
        .and_then(|rest| rest.strip_prefix('='))
        .ok_or_else(|| {
            format!(
                "expected the {what} ({key}=), got \"{}\"",
                printable(part.as_bytes(), QUOTE_LIMIT)
            )
        })
}

/// RFC 5802 §7 `posit-number`, at most [`MAX_ITERATIONS`].
fn parse_iterations(text: &str) -> Result<u32, String> {
    let well_formed = text.starts_with(|c: char| matches!(c, '1'..='9'))
        && text.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(format!(
            "the iteration count \"{}\" is not a positive number",
            printable(text.as_bytes(), QUOTE_LIMIT)
        ));
    }
    match text.parse::<u32>() {
        Ok(n) if n <= MAX_ITERATIONS => Ok(n),
        _ => Err(format!(
            "the server asks for {} iterations, more than the limit of {MAX_ITERATIONS}",
            printable(text.as_bytes(), 20)
        )),
    }
}

/// Optional extensions after the known attributes: each must look like
/// `ALPHA "=" value` (RFC 5802 §7 `attr-val`); their meaning is ignored.
fn extensions<'a>(parts: impl Iterator<Item = &'a str>) -> Result<(), String> {
    for part in parts {
        let bytes = part.as_bytes();
        if bytes.len() < 2 || !bytes[0].is_ascii_alphabetic() || bytes[1] != b'=' {
            return Err(format!(
                "garbled attribute \"{}\"",
                printable(bytes, QUOTE_LIMIT)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of the RFCs' example exchanges, user "user", password "pencil".
    struct Vector {
        hash: ScramHash,
        nonce: &'static str,
        server_first: &'static str,
        client_final: &'static str,
        server_final: &'static str,
    }

    /// RFC 5802 §5.
    const RFC5802: Vector = Vector {
        hash: ScramHash::Sha1,
        nonce: "fyko+d2lbbFgONRv9qkxdawL",
        server_first: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        client_final: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        server_final: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    };

    /// RFC 7677 §3.
    const RFC7677: Vector = Vector {
        hash: ScramHash::Sha256,
        nonce: "rOprNGfwEbeRWgbNEkqO",
        server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        client_final: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        server_final: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    };

    const PASSWORD: &str = "pencil";

    fn creds() -> Credentials {
        Credentials::new("user", PASSWORD)
    }

    fn start(v: &Vector) -> Scram {
        Scram::with_nonce(v.hash, &creds(), v.nonce).unwrap()
    }

    fn sha1() -> Scram {
        start(&RFC5802)
    }

    /// An exchange run to the vector's client-final message, checking
    /// every message on the way.
    fn after_client_final(v: &Vector) -> Scram {
        let mut m = start(v);
        assert_eq!(m.name(), v.hash.mechanism_name());
        assert_eq!(
            m.initial_response().unwrap().unwrap(),
            format!("n,,n=user,r={}", v.nonce).as_bytes()
        );
        assert_eq!(
            m.respond(v.server_first.as_bytes()).unwrap(),
            v.client_final.as_bytes()
        );
        m
    }

    fn sha1_after_client_final() -> Scram {
        after_client_final(&RFC5802)
    }

    fn assert_bad_challenge(result: Result<Vec<u8>, AuthError>, needle: &str) {
        match result {
            Err(AuthError::BadChallenge { reason, .. }) => {
                assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
            }
            other => panic!("expected a bad challenge about {needle:?}, got {other:?}"),
        }
    }

    /// The error for a server-first message (after a valid client-first).
    fn server_first_error(server_first: &str) -> Result<Vec<u8>, AuthError> {
        let mut m = sha1();
        m.initial_response().unwrap();
        let result = m.respond(server_first.as_bytes());
        // A failed step ends the exchange.
        assert!(m.finish().is_err());
        result
    }

    #[test]
    fn rfc_examples() {
        for v in [RFC5802, RFC7677] {
            let mut m = after_client_final(&v);
            assert_eq!(m.respond(v.server_final.as_bytes()).unwrap(), b"");
            assert_eq!(m.finish(), Ok(()));
            assert_eq!(m.failure_detail(), None);
        }
    }

    #[test]
    fn server_final_extensions_are_ignored() {
        let mut m = sha1_after_client_final();
        let server_final = format!("{},x=later", RFC5802.server_final);
        assert_eq!(m.respond(server_final.as_bytes()).unwrap(), b"");
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn an_empty_first_challenge_asks_for_the_client_first_message() {
        let mut m = sha1();
        assert_eq!(
            m.respond(b"").unwrap(),
            format!("n,,n=user,r={}", RFC5802.nonce).as_bytes()
        );
        assert_eq!(
            m.respond(RFC5802.server_first.as_bytes()).unwrap(),
            RFC5802.client_final.as_bytes()
        );
    }

    #[test]
    fn wrong_server_signature_is_refused_and_not_authenticated() {
        let mut m = sha1_after_client_final();
        // The RFC's signature with its last bits changed, then the other
        // RFC's signature.
        let err = m.respond(b"v=rmF9pqV8S7suAoZWja4dJRkFsKU=").unwrap_err();
        assert_eq!(err, AuthError::ServerSignatureMismatch("SCRAM-SHA-1"));
        assert_eq!(m.finish(), Err(AuthError::ServerNotVerified("SCRAM-SHA-1")));

        let mut m = sha1_after_client_final();
        let err = m.respond(RFC7677.server_final.as_bytes()).unwrap_err();
        assert_eq!(err, AuthError::ServerSignatureMismatch("SCRAM-SHA-1"));
    }

    #[test]
    fn a_near_miss_sha256_signature_is_refused() {
        // Shares its first 22 characters with RFC 7677's signature: a
        // comparison that stopped early, or on a prefix, would accept it.
        let mut m = after_client_final(&RFC7677);
        let err = m
            .respond(b"v=6rriTRBi23WpRR/wtup+mMhK1CLvFi8DDZFKPGMJvWY=")
            .unwrap_err();
        assert_eq!(err, AuthError::ServerSignatureMismatch("SCRAM-SHA-256"));
        assert!(m.finish().is_err());
    }

    #[test]
    fn garbled_server_final_is_refused() {
        for (server_final, needle) in [
            ("v=not base64!", "base64"),
            ("", "expected the server signature"),
            ("x=1", "expected the server signature"),
            ("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=,,", "garbled"),
        ] {
            let mut m = sha1_after_client_final();
            assert_bad_challenge(m.respond(server_final.as_bytes()), needle);
            assert!(m.finish().is_err());
        }
        let mut m = sha1_after_client_final();
        assert_bad_challenge(m.respond(b"v=\xff"), "UTF-8");
    }

    #[test]
    fn server_error_carries_the_server_message() {
        let mut m = sha1_after_client_final();
        let err = m.respond(b"e=invalid-proof").unwrap_err();
        assert_eq!(
            err,
            AuthError::ServerError {
                mechanism: "SCRAM-SHA-1",
                message: "invalid-proof".into()
            }
        );
        assert!(err.to_string().contains("invalid-proof"));
        assert!(m.finish().is_err());
    }

    #[test]
    fn finish_without_server_final_is_an_error() {
        // The server said 235 right after the client-final message.
        let mut m = sha1_after_client_final();
        let err = m.finish().unwrap_err();
        assert_eq!(err, AuthError::ServerNotVerified("SCRAM-SHA-1"));
        assert!(err.to_string().contains("without sending its signature"));
        // Or even before.
        let mut m = sha1();
        assert!(m.finish().is_err());
        m.initial_response().unwrap();
        assert!(m.finish().is_err());
    }

    #[test]
    fn a_challenge_after_verification_is_refused_but_verification_stands() {
        let mut m = sha1_after_client_final();
        m.respond(RFC5802.server_final.as_bytes()).unwrap();
        assert_eq!(
            m.respond(b""),
            Err(AuthError::UnexpectedChallenge("SCRAM-SHA-1"))
        );
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn a_challenge_after_a_failure_is_refused() {
        let mut m = sha1();
        m.initial_response().unwrap();
        assert!(m.respond(b"garbage").is_err());
        assert_eq!(
            m.respond(RFC5802.server_first.as_bytes()),
            Err(AuthError::UnexpectedChallenge("SCRAM-SHA-1"))
        );
    }

    #[test]
    fn server_nonce_must_extend_ours() {
        for server_first in [
            // Someone else's nonce.
            "r=AAAA+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            // Ours, truncated.
            "r=fyko+d2lbbFgONRv9qkxdaw,s=QSXCR+Q6sek8bf92,i=4096",
            // Ours, with nothing of the server's.
            "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",
        ] {
            assert_bad_challenge(server_first_error(server_first), "does not extend");
        }
        assert_bad_challenge(
            server_first_error("r=fyko+d2lbbFgONRv9qkxdawL\x7f,s=QSXCR+Q6sek8bf92,i=4096"),
            "not printable",
        );
    }

    #[test]
    fn missing_or_garbled_attributes_are_refused() {
        const R: &str = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        for (server_first, needle) in [
            (String::new(), "expected the nonce"),
            (R.to_owned(), "expected the salt"),
            (format!("{R},i=4096"), "expected the salt"),
            (
                format!("{R},s=QSXCR+Q6sek8bf92"),
                "expected the iteration count",
            ),
            (
                format!("{R},i=4096,s=QSXCR+Q6sek8bf92"),
                "expected the salt",
            ),
            (
                format!("s=QSXCR+Q6sek8bf92,{R},i=4096"),
                "expected the nonce",
            ),
            (format!("{R},s=,i=4096"), "salt is empty"),
            (format!("{R},s=QSXCR+Q6sek8bf9,i=4096"), "not valid base64"),
            (
                format!("{R},s=QSXCR+Q6sek8bf92,i="),
                "not a positive number",
            ),
            (
                format!("{R},s=QSXCR+Q6sek8bf92,i=0"),
                "not a positive number",
            ),
            (
                format!("{R},s=QSXCR+Q6sek8bf92,i=04096"),
                "not a positive number",
            ),
            (
                format!("{R},s=QSXCR+Q6sek8bf92,i=-1"),
                "not a positive number",
            ),
            (
                format!("{R},s=QSXCR+Q6sek8bf92,i=4096x"),
                "not a positive number",
            ),
            (
                format!("{R},s=QSXCR+Q6sek8bf92,i=1000001"),
                "more than the limit",
            ),
            (
                format!("{R},s=QSXCR+Q6sek8bf92,i=99999999999999999999999"),
                "more than the limit",
            ),
            (format!("{R},s=QSXCR+Q6sek8bf92,i=4096,"), "garbled"),
            (format!("{R},s=QSXCR+Q6sek8bf92,i=4096,junk"), "garbled"),
            (format!("m=ext,{R},s=QSXCR+Q6sek8bf92,i=4096"), "(m=)"),
        ] {
            assert_bad_challenge(server_first_error(&server_first), needle);
        }
        assert_bad_challenge(server_first_error("r=\u{fffd}"), "not printable");
        let mut m = sha1();
        m.initial_response().unwrap();
        assert_bad_challenge(m.respond(b"r=\xff\xfe"), "UTF-8");
    }

    #[test]
    fn server_first_extensions_after_the_count_are_ignored() {
        let mut m = sha1();
        m.initial_response().unwrap();
        let server_first = format!("{},x=extra", RFC5802.server_first);
        // Still a valid proof, over the message as received.
        assert!(m.respond(server_first.as_bytes()).is_ok());
    }

    #[test]
    fn iteration_count_bounds() {
        assert_eq!(parse_iterations("1"), Ok(1));
        assert_eq!(parse_iterations("4096"), Ok(4096));
        assert_eq!(parse_iterations("1000000"), Ok(MAX_ITERATIONS));
        assert!(parse_iterations("1000001").is_err());
        assert!(parse_iterations("4294967296").is_err());
        assert!(parse_iterations("+5").is_err());
    }

    #[test]
    fn user_and_authzid_are_saslname_escaped() {
        let c = Credentials {
            authzid: Some("admin=1,x".into()),
            ..Credentials::new("a=b,c", PASSWORD)
        };
        let mut m = Scram::with_nonce(ScramHash::Sha256, &c, "abc").unwrap();
        assert_eq!(
            m.initial_response().unwrap().unwrap(),
            b"n,a=admin=3D1=2Cx,n=a=3Db=2Cc,r=abc"
        );
        // The channel binding repeats the GS2 header, authzid included.
        let reply = m.respond(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=1").unwrap();
        let expected = format!("c={},r=abcdef,p=", STANDARD.encode("n,a=admin=3D1=2Cx,"));
        assert!(reply.starts_with(expected.as_bytes()));
    }

    #[test]
    fn empty_or_nul_user_is_refused() {
        for user in ["", "a\0b"] {
            let mut m = Scram::new(ScramHash::Sha256, &Credentials::new(user, PASSWORD));
            let err = m.initial_response().unwrap_err();
            assert!(matches!(err, AuthError::InvalidCredential { .. }), "{err}");
        }
    }

    #[test]
    fn fixed_nonce_must_be_printable_without_commas() {
        for nonce in ["", "a,b", "a b", "é"] {
            assert!(Scram::with_nonce(ScramHash::Sha1, &creds(), nonce).is_err());
        }
    }

    #[test]
    fn random_nonces_are_fresh_and_printable() {
        let nonce = |m: &mut Scram| {
            let first = String::from_utf8(m.initial_response().unwrap().unwrap()).unwrap();
            first.strip_prefix("n,,n=user,r=").unwrap().to_owned()
        };
        let mut m = Scram::new(ScramHash::Sha256, &creds());
        let a = nonce(&mut m);
        // A restarted exchange draws a new one too.
        let b = nonce(&mut m);
        let c = nonce(&mut Scram::new(ScramHash::Sha256, &creds()));
        assert_eq!(a.len(), 32);
        assert!(is_nonce(&a) && is_nonce(&b) && is_nonce(&c));
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn no_error_shows_the_password() {
        let mut errors = vec![
            server_first_error("r=x").unwrap_err(),
            server_first_error(&format!("{},,", RFC5802.server_first)).unwrap_err(),
            sha1_after_client_final().respond(b"v=AAAA").unwrap_err(),
            sha1_after_client_final()
                .respond(b"e=other-error")
                .unwrap_err(),
            sha1_after_client_final().finish().unwrap_err(),
            Scram::with_nonce(ScramHash::Sha1, &creds(), "a,b")
                .err()
                .unwrap(),
        ];
        let mut m = sha1_after_client_final();
        m.respond(RFC5802.server_final.as_bytes()).unwrap();
        errors.push(m.respond(b"").unwrap_err());
        for err in errors {
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains(PASSWORD), "{text}");
                assert!(!text.contains('\n'), "{text}");
            }
        }
    }

    #[test]
    fn hostile_server_first_messages_never_panic() {
        // Mutations of a valid message (with i=1, so every accepted
        // mutation stays cheap), from a fixed linear congruential sequence.
        let base = format!("r={}srv,s=QSXCR+Q6sek8bf92,i=1", RFC5802.nonce);
        let mut seed: u32 = 12345;
        let mut next = move || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            seed >> 8
        };
        for _ in 0..2000 {
            let mut bytes = base.clone().into_bytes();
            for _ in 0..=(next() % 4) {
                let at = next() as usize % bytes.len();
                bytes[at] = next() as u8;
            }
            let cut = next() as usize % (bytes.len() + 1);
            bytes.truncate(cut.max(bytes.len() / 2));
            let mut m = sha1();
            m.initial_response().unwrap();
            if m.respond(&bytes).is_ok() {
                let _ = m.respond(&bytes);
                let _ = m.finish();
            }
        }
    }
}
