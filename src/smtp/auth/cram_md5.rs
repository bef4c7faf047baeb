//! CRAM-MD5 (RFC 2195): the server's challenge keyed with the password,
//! so the password itself never crosses the wire.
//!
//! This module owns the digest and its wire form. It does not make
//! CRAM-MD5 strong: the server must keep the password (or an equivalent)
//! in the clear, and an eavesdropper can try passwords offline, which is
//! why [`super::PREFERENCE`] puts SCRAM ahead of it.

use hmac::{Hmac, Mac};
use md5::Md5;

use super::{AuthError, Credentials, Mechanism, keyed_mac};
use crate::smtp::Secret;

const CRAM_MD5: &str = "CRAM-MD5";

/// CRAM-MD5 (RFC 2195 §2): no initial response; the one challenge is
/// answered with `user SP hex(HMAC-MD5(password, challenge))`, the digest
/// in lower-case hexadecimal.
pub struct CramMd5 {
    user: String,
    password: Secret,
    answered: bool,
}

impl CramMd5 {
    /// CRAM-MD5 for `creds` (password in `creds.secret`; `creds.authzid` is
    /// not expressible in CRAM-MD5 and is ignored).
    pub fn new(creds: &Credentials) -> Self {
        CramMd5 {
            user: creds.user.clone(),
            password: creds.secret.clone(),
            answered: false,
        }
    }
}

impl Mechanism for CramMd5 {
    fn name(&self) -> &str {
        CRAM_MD5
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, AuthError> {
        Ok(None)
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, AuthError> {
        if self.answered {
            return Err(AuthError::UnexpectedChallenge(CRAM_MD5));
        }
        // An empty challenge would make the answer the same on every
        // connection: a replayable password equivalent.
        if challenge.is_empty() {
            return Err(AuthError::BadChallenge {
                mechanism: CRAM_MD5,
                reason: "the challenge is empty".to_owned(),
            });
        }
        self.answered = true;
        let digest = keyed_mac::<Hmac<Md5>>(self.password.expose().as_bytes(), challenge)
            .finalize()
            .into_bytes();
        let mut answer = self.user.clone().into_bytes();
        answer.push(b' ');
        for byte in digest {
            answer.extend_from_slice(format!("{byte:02x}").as_bytes());
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cram() -> CramMd5 {
        CramMd5::new(&Credentials::new("tim", "tanstaaftanstaaf"))
    }

    #[test]
    fn rfc2195_example() {
        // RFC 2195 §2.
        let mut m = cram();
        assert_eq!(m.name(), "CRAM-MD5");
        assert_eq!(m.initial_response(), Ok(None));
        let answer = m
            .respond(b"<1896.697170952@postoffice.reston.mci.net>")
            .unwrap();
        assert_eq!(answer, b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn refuses_an_empty_challenge() {
        let err = cram().respond(b"").unwrap_err();
        assert!(matches!(err, AuthError::BadChallenge { .. }), "{err}");
    }

    #[test]
    fn refuses_a_second_challenge_without_showing_the_secret() {
        let mut m = cram();
        m.respond(b"<1@x>").unwrap();
        let err = m.respond(b"<2@x>").unwrap_err();
        assert_eq!(err, AuthError::UnexpectedChallenge("CRAM-MD5"));
        assert!(!err.to_string().contains("tanstaaf"));
        assert!(!format!("{err:?}").contains("tanstaaf"));
    }

    #[test]
    fn any_binary_challenge_is_answered_without_panic() {
        let answer = cram().respond(&[0, 0xff, b'\n', 0x80]).unwrap();
        assert_eq!(answer.len(), "tim ".len() + 32);
    }
}
