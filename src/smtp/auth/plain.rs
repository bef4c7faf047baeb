//! PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login): the mechanisms
//! that send the password itself, merely base64-encoded.
//!
//! This module owns their message formats. It never decides whether the
//! link is safe enough for them: the session must refuse both over a
//! connection that is not TLS-protected.

use super::{AuthError, Credentials, Mechanism, initial_on_demand};
use crate::smtp::Secret;

const PLAIN: &str = "PLAIN";
const LOGIN: &str = "LOGIN";

/// PLAIN (RFC 4616): one message, `authzid NUL user NUL password`, sent as
/// the initial response.
pub struct Plain {
    authzid: Option<String>,
    user: String,
    password: Secret,
    sent: bool,
}

impl Plain {
    /// PLAIN for `creds` (password in `creds.secret`).
    pub fn new(creds: &Credentials) -> Self {
        Plain {
            authzid: creds.authzid.clone(),
            user: creds.user.clone(),
            password: creds.secret.clone(),
            sent: false,
        }
    }

    /// RFC 4616 §2: `message = [authzid] UTF8NUL authcid UTF8NUL passwd`,
    /// none of which may contain NUL.
    fn message(&mut self) -> Result<Vec<u8>, AuthError> {
        let authzid = self.authzid.as_deref().unwrap_or("");
        for (field, value) in [
            ("authorization identity", authzid),
            ("user name", self.user.as_str()),
            ("password", self.password.expose()),
        ] {
            if value.contains('\0') {
                return Err(AuthError::InvalidCredential {
                    mechanism: PLAIN,
                    field,
                    reason: "it contains a NUL character",
                });
            }
        }
        self.sent = true;
        Ok([authzid, &self.user, self.password.expose()]
            .join("\0")
            .into_bytes())
    }
}

impl Mechanism for Plain {
    fn name(&self) -> &str {
        PLAIN
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, AuthError> {
        self.message().map(Some)
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, AuthError> {
        if self.sent {
            return Err(AuthError::UnexpectedChallenge(PLAIN));
        }
        initial_on_demand(PLAIN, challenge, || self.message())
    }
}

/// LOGIN (draft-murchison-sasl-login-00): no initial response; the user
/// name answers the first challenge and the password the second, whatever
/// their text says (servers word "Username:" and "Password:" in many ways).
/// A third challenge is refused.
pub struct Login {
    user: String,
    password: Secret,
    answered: u8,
}

impl Login {
    /// LOGIN for `creds` (password in `creds.secret`; `creds.authzid` is
    /// not expressible in LOGIN and is ignored).
    pub fn new(creds: &Credentials) -> Self {
        Login {
            user: creds.user.clone(),
            password: creds.secret.clone(),
            answered: 0,
        }
    }
}

impl Mechanism for Login {
    fn name(&self) -> &str {
        LOGIN
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, AuthError> {
        Ok(None)
    }

    fn respond(&mut self, _challenge: &[u8]) -> Result<Vec<u8>, AuthError> {
        let answer = match self.answered {
            0 => self.user.as_bytes().to_vec(),
            1 => self.password.expose().as_bytes().to_vec(),
            _ => return Err(AuthError::UnexpectedChallenge(LOGIN)),
        };
        self.answered += 1;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, pass: &str, authzid: Option<&str>) -> Credentials {
        Credentials {
            authzid: authzid.map(str::to_owned),
            ..Credentials::new(user, pass)
        }
    }

    #[test]
    fn plain_rfc4616_example_without_authzid() {
        // RFC 4616 §4: "\0tim\0tanstaaftanstaaf".
        let mut m = Plain::new(&creds("tim", "tanstaaftanstaaf", None));
        assert_eq!(m.name(), "PLAIN");
        assert_eq!(
            m.initial_response().unwrap().unwrap(),
            b"\0tim\0tanstaaftanstaaf"
        );
        assert_eq!(m.finish(), Ok(()));
    }

    #[test]
    fn plain_rfc4616_example_with_authzid() {
        // RFC 4616 §4: authzid "Ursel", authcid "Kurt", password "xipj3plmq".
        let mut m = Plain::new(&creds("Kurt", "xipj3plmq", Some("Ursel")));
        assert_eq!(
            m.initial_response().unwrap().unwrap(),
            b"Ursel\0Kurt\0xipj3plmq"
        );
    }

    #[test]
    fn plain_answers_an_empty_first_challenge_then_nothing_more() {
        let mut m = Plain::new(&creds("tim", "tanstaaftanstaaf", None));
        assert_eq!(m.respond(b"").unwrap(), b"\0tim\0tanstaaftanstaaf");
        assert_eq!(m.respond(b""), Err(AuthError::UnexpectedChallenge("PLAIN")));
    }

    #[test]
    fn plain_refuses_a_challenge_after_the_initial_response() {
        let mut m = Plain::new(&creds("tim", "tanstaaftanstaaf", None));
        m.initial_response().unwrap();
        assert_eq!(m.respond(b""), Err(AuthError::UnexpectedChallenge("PLAIN")));
    }

    #[test]
    fn plain_refuses_a_non_empty_first_challenge() {
        let mut m = Plain::new(&creds("tim", "tanstaaftanstaaf", None));
        let err = m.respond(b"Password?").unwrap_err();
        assert!(matches!(err, AuthError::BadChallenge { .. }), "{err}");
    }

    #[test]
    fn plain_refuses_nul_without_showing_the_value() {
        for (c, field) in [
            (creds("tim", "s3cr\0t", None), "password"),
            (creds("t\0im", "s3cret", None), "user name"),
            (
                creds("tim", "s3cret", Some("a\0b")),
                "authorization identity",
            ),
        ] {
            let err = Plain::new(&c).initial_response().unwrap_err();
            assert!(matches!(err, AuthError::InvalidCredential { .. }));
            assert!(err.to_string().contains(field), "{err}");
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains("s3cr"), "{text}");
                assert!(!text.contains('\0'), "{text}");
            }
        }
    }

    #[test]
    fn login_sends_user_then_password_whatever_the_prompts_say() {
        let mut m = Login::new(&creds("tim", "tanstaaftanstaaf", None));
        assert_eq!(m.name(), "LOGIN");
        assert_eq!(m.initial_response(), Ok(None));
        assert_eq!(m.respond(b"Username:").unwrap(), b"tim");
        assert_eq!(m.respond(b"anything at all").unwrap(), b"tanstaaftanstaaf");
    }

    #[test]
    fn login_refuses_a_third_challenge() {
        let mut m = Login::new(&creds("tim", "tanstaaftanstaaf", None));
        m.respond(b"Username:").unwrap();
        m.respond(b"Password:").unwrap();
        let err = m.respond(b"Password:").unwrap_err();
        assert_eq!(err, AuthError::UnexpectedChallenge("LOGIN"));
        assert!(!err.to_string().contains("tanstaaf"));
        assert!(!format!("{err:?}").contains("tanstaaf"));
        // And it stays refused.
        assert!(m.respond(b"").is_err());
    }
}
