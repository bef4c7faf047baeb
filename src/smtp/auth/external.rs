//! EXTERNAL (RFC 4422 Appendix A): authentication already established
//! outside SASL, in practice by a TLS client certificate.
//!
//! This module owns only the message: the authorization identity to act
//! as, or nothing to act as the identity the certificate proves. It never
//! sees the certificate; the stream presents it.

use super::{AuthError, Mechanism, initial_on_demand};

const EXTERNAL: &str = "EXTERNAL";

/// EXTERNAL: the initial response is the authorization identity, or empty.
pub struct External {
    authzid: Option<String>,
    sent: bool,
}

impl External {
    /// EXTERNAL acting as `authzid`, or as whoever the external
    /// authentication proved when `None`.
    pub fn new(authzid: Option<&str>) -> Self {
        External {
            authzid: authzid.map(str::to_owned),
            sent: false,
        }
    }

    /// RFC 4422 Appendix A.1: `message = [authz-id-string]`, UTF-8
    /// without NUL.
    fn message(&mut self) -> Result<Vec<u8>, AuthError> {
        let authzid = self.authzid.as_deref().unwrap_or("");
        if authzid.contains('\0') {
            return Err(AuthError::InvalidCredential {
                mechanism: EXTERNAL,
                field: "authorization identity",
                reason: "it contains a NUL character",
            });
        }
        self.sent = true;
        Ok(authzid.as_bytes().to_vec())
    }
}

impl Mechanism for External {
    fn name(&self) -> &str {
        EXTERNAL
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, AuthError> {
        self.message().map(Some)
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, AuthError> {
        if self.sent {
            return Err(AuthError::UnexpectedChallenge(EXTERNAL));
        }
        initial_on_demand(EXTERNAL, challenge, || self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_response_without_authzid() {
        let mut m = External::new(None);
        assert_eq!(m.name(), "EXTERNAL");
        // Some(empty), which the session sends as "=".
        assert_eq!(m.initial_response(), Ok(Some(vec![])));
        assert_eq!(
            m.respond(b""),
            Err(AuthError::UnexpectedChallenge("EXTERNAL"))
        );
    }

    #[test]
    fn authzid_as_the_response() {
        // The client asks to act as "fred" rather than the certificate's identity.
        let mut m = External::new(Some("fred"));
        assert_eq!(m.initial_response(), Ok(Some(b"fred".to_vec())));
    }

    #[test]
    fn answers_an_empty_first_challenge() {
        let mut m = External::new(Some("fred"));
        assert_eq!(m.respond(b""), Ok(b"fred".to_vec()));
        assert!(m.respond(b"").is_err());
    }

    #[test]
    fn refuses_nul_in_authzid() {
        let err = External::new(Some("a\0b")).initial_response().unwrap_err();
        assert!(matches!(err, AuthError::InvalidCredential { .. }), "{err}");
    }
}
