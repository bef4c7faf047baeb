//! The OAuth 2.0 bearer-token mechanisms: XOAUTH2 (Google's and
//! Microsoft's, never standardised) and OAUTHBEARER (RFC 7628).
//!
//! This module owns their messages and their failure dance: a server that
//! refuses the token sends a `334` whose challenge is a JSON error, the
//! client must answer it with a dummy response, and only then does the
//! server send its `5xx`. The JSON is kept for
//! [`Mechanism::failure_detail`] because it says why (expired token, wrong
//! scope) where the final reply often does not. Obtaining or refreshing the
//! token is not this module's business: it is given in
//! [`Credentials::secret`].

use super::{
    AuthError, Credentials, DETAIL_LIMIT, Mechanism, gs2_header, initial_on_demand, printable,
};
use crate::smtp::Secret;

const XOAUTH2: &str = "XOAUTH2";
const OAUTHBEARER: &str = "OAUTHBEARER";

/// The key/value separator of both mechanisms (RFC 7628 §3.1 `kvsep`).
const KVSEP: char = '\x01';

/// Where an OAuth exchange stands. The two mechanisms differ only in their
/// message and in the dummy answer to the error challenge.
struct Exchange {
    mechanism: &'static str,
    /// What the client sends in answer to the JSON error challenge.
    dummy: &'static [u8],
    step: Step,
    detail: Option<String>,
}

enum Step {
    Start,
    Sent,
    ErrorAnswered,
}

impl Exchange {
    fn new(mechanism: &'static str, dummy: &'static [u8]) -> Self {
        Exchange {
            mechanism,
            dummy,
            step: Step::Start,
            detail: None,
        }
    }

    fn initial_response(
        &mut self,
        message: Result<Vec<u8>, AuthError>,
    ) -> Result<Option<Vec<u8>>, AuthError> {
        let message = message?;
        self.step = Step::Sent;
        Ok(Some(message))
    }

    fn respond(
        &mut self,
        challenge: &[u8],
        message: impl FnOnce() -> Result<Vec<u8>, AuthError>,
    ) -> Result<Vec<u8>, AuthError> {
        match self.step {
            Step::Start => {
                let message = initial_on_demand(self.mechanism, challenge, message)?;
                self.step = Step::Sent;
                Ok(message)
            }
            // The token was refused: the challenge is the server's JSON
            // error, and the server waits for the dummy answer before it
            // sends the final reply.
            Step::Sent => {
                if !challenge.is_empty() {
                    self.detail = Some(printable(challenge, DETAIL_LIMIT));
                }
                self.step = Step::ErrorAnswered;
                Ok(self.dummy.to_vec())
            }
            Step::ErrorAnswered => Err(AuthError::UnexpectedChallenge(self.mechanism)),
        }
    }
}

/// A bearer token: not empty, and only visible ASCII (RFC 6750 §2.1
/// `b64token` is narrower still), so it cannot break the message framing.
fn check_token(mechanism: &'static str, token: &Secret) -> Result<(), AuthError> {
    let token = token.expose();
    let reason = if token.is_empty() {
        "it is empty"
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        "it contains a space, a control or a non-ASCII character"
    } else {
        return Ok(());
    };
    Err(AuthError::InvalidCredential {
        mechanism,
        field: "bearer token",
        reason,
    })
}

/// A value that goes between `\x01` separators: no control characters.
fn check_value(mechanism: &'static str, field: &'static str, value: &str) -> Result<(), AuthError> {
    if value.chars().any(char::is_control) {
        return Err(AuthError::InvalidCredential {
            mechanism,
            field,
            reason: "it contains a control character",
        });
    }
    Ok(())
}

/// XOAUTH2: the initial response is
/// `"user=" user ^A "auth=Bearer " token ^A ^A`. On a refused token the
/// server sends its JSON error as a challenge and the client answers with
/// an empty response.
pub struct XOAuth2 {
    user: String,
    token: Secret,
    exchange: Exchange,
}

impl XOAuth2 {
    /// XOAUTH2 for `creds.user` with the bearer token in `creds.secret`
    /// (`creds.authzid` is not expressible and is ignored).
    pub fn new(creds: &Credentials) -> Self {
        XOAuth2 {
            user: creds.user.clone(),
            token: creds.secret.clone(),
            exchange: Exchange::new(XOAUTH2, b""),
        }
    }

    fn message(user: &str, token: &Secret) -> Result<Vec<u8>, AuthError> {
        check_value(XOAUTH2, "user name", user)?;
        check_token(XOAUTH2, token)?;
        Ok(format!(
            "user={user}{KVSEP}auth=Bearer {}{KVSEP}{KVSEP}",
            token.expose()
        )
        .into_bytes())
    }
}

impl Mechanism for XOAuth2 {
    fn name(&self) -> &str {
        XOAUTH2
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, AuthError> {
        self.exchange
            .initial_response(Self::message(&self.user, &self.token))
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, AuthError> {
        let (user, token) = (&self.user, &self.token);
        self.exchange
            .respond(challenge, || Self::message(user, token))
    }

    fn failure_detail(&self) -> Option<String> {
        self.exchange.detail.clone()
    }
}

/// OAUTHBEARER (RFC 7628): the initial response is a GS2 header naming the
/// user, then `host`, `port` (when known) and `auth=Bearer <token>`, each
/// ended by `^A`, and a final `^A`. On a refused token the server sends its
/// JSON error as a challenge and the client must answer with a single `^A`
/// (RFC 7628 §3.2.3).
pub struct OAuthBearer {
    authzid: String,
    token: Secret,
    server: Option<(String, u16)>,
    exchange: Exchange,
}

impl OAuthBearer {
    /// OAUTHBEARER with the bearer token in `creds.secret`, acting as
    /// `creds.authzid` or else `creds.user` (the GS2 `a=`, which providers
    /// expect to be the mailbox address). No host or port is sent; see
    /// [`OAuthBearer::with_server`].
    pub fn new(creds: &Credentials) -> Self {
        OAuthBearer {
            authzid: creds.authzid.clone().unwrap_or_else(|| creds.user.clone()),
            token: creds.secret.clone(),
            server: None,
            exchange: Exchange::new(OAUTHBEARER, b"\x01"),
        }
    }

    /// Also send the `host` and `port` the client connected to (RFC 7628
    /// §3.1), which some servers use to check the token's audience.
    pub fn with_server(mut self, host: impl Into<String>, port: u16) -> Self {
        self.server = Some((host.into(), port));
        self
    }

    fn message(
        authzid: &str,
        server: Option<&(String, u16)>,
        token: &Secret,
    ) -> Result<Vec<u8>, AuthError> {
        check_value(OAUTHBEARER, "authorization identity", authzid)?;
        check_token(OAUTHBEARER, token)?;
        let mut out = gs2_header(OAUTHBEARER, Some(authzid))?;
        out.push(KVSEP);
        if let Some((host, port)) = server {
            check_value(OAUTHBEARER, "host name", host)?;
            out.push_str(&format!("host={host}{KVSEP}port={port}{KVSEP}"));
        }
        out.push_str(&format!("auth=Bearer {}{KVSEP}{KVSEP}", token.expose()));
        Ok(out.into_bytes())
    }
}

impl Mechanism for OAuthBearer {
    fn name(&self) -> &str {
        OAUTHBEARER
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, AuthError> {
        self.exchange.initial_response(Self::message(
            &self.authzid,
            self.server.as_ref(),
            &self.token,
        ))
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, AuthError> {
        let (authzid, server, token) = (&self.authzid, self.server.as_ref(), &self.token);
        self.exchange
            .respond(challenge, || Self::message(authzid, server, token))
    }

    fn failure_detail(&self) -> Option<String> {
        self.exchange.detail.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOGLE_TOKEN: &str = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
    const RFC7628_TOKEN: &str = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
    // RFC 7628 §4.3, decoded.
    const RFC7628_ERROR: &str = r#"{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}"#;

    fn creds(user: &str, token: &str) -> Credentials {
        Credentials::new(user, token)
    }

    #[test]
    fn xoauth2_google_example() {
        // Google's XOAUTH2 protocol page, "Initial client response".
        let mut m = XOAuth2::new(&creds("someuser@example.com", GOOGLE_TOKEN));
        assert_eq!(m.name(), "XOAUTH2");
        assert_eq!(
            m.initial_response().unwrap().unwrap(),
            format!("user=someuser@example.com\x01auth=Bearer {GOOGLE_TOKEN}\x01\x01").as_bytes()
        );
        assert_eq!(m.failure_detail(), None);
    }

    #[test]
    fn xoauth2_error_challenge_gets_an_empty_answer_and_is_kept() {
        // Google's page, "Error response": the JSON comes as a 334
        // challenge, the client sends an empty response.
        let json = r#"{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}"#;
        let mut m = XOAuth2::new(&creds("someuser@example.com", GOOGLE_TOKEN));
        m.initial_response().unwrap();
        assert_eq!(m.respond(json.as_bytes()).unwrap(), b"");
        assert_eq!(m.failure_detail().as_deref(), Some(json));
        let err = m.respond(json.as_bytes()).unwrap_err();
        assert_eq!(err, AuthError::UnexpectedChallenge("XOAUTH2"));
    }

    #[test]
    fn xoauth2_answers_an_empty_first_challenge_with_the_message() {
        let mut m = XOAuth2::new(&creds("u", "tok"));
        assert_eq!(
            m.respond(b"").unwrap(),
            b"user=u\x01auth=Bearer tok\x01\x01"
        );
        // The next challenge is the error one.
        assert_eq!(m.respond(b"{}").unwrap(), b"");
        assert_eq!(m.failure_detail().as_deref(), Some("{}"));
    }

    #[test]
    fn oauthbearer_rfc7628_example() {
        // RFC 7628 §4.1, decoded.
        let mut m = OAuthBearer::new(&creds("user@example.com", RFC7628_TOKEN))
            .with_server("server.example.com", 143);
        assert_eq!(m.name(), "OAUTHBEARER");
        assert_eq!(
            m.initial_response().unwrap().unwrap(),
            format!(
                "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer {RFC7628_TOKEN}\x01\x01"
            )
            .as_bytes()
        );
    }

    #[test]
    fn oauthbearer_without_server_and_with_authzid() {
        let c = Credentials {
            authzid: Some("a,b=c".into()),
            ..creds("ignored", "tok")
        };
        let mut m = OAuthBearer::new(&c);
        assert_eq!(
            m.initial_response().unwrap().unwrap(),
            b"n,a=a=2Cb=3Dc,\x01auth=Bearer tok\x01\x01"
        );
    }

    #[test]
    fn oauthbearer_error_challenge_gets_a_single_kvsep() {
        // RFC 7628 §4.3: the client answers the JSON error with "AQ==",
        // i.e. one %x01 byte.
        let mut m = OAuthBearer::new(&creds("user@example.com", RFC7628_TOKEN))
            .with_server("server.example.com", 143);
        m.initial_response().unwrap();
        assert_eq!(m.respond(RFC7628_ERROR.as_bytes()).unwrap(), b"\x01");
        assert_eq!(m.failure_detail().as_deref(), Some(RFC7628_ERROR));
        assert_eq!(
            m.respond(b"again"),
            Err(AuthError::UnexpectedChallenge("OAUTHBEARER"))
        );
    }

    #[test]
    fn failure_detail_is_printable_and_bounded() {
        let mut hostile = b"{\"status\":\"\x1b[2J\r\n".to_vec();
        hostile.extend(std::iter::repeat_n(b'x', 100_000));
        let mut m = OAuthBearer::new(&creds("u", "tok"));
        m.initial_response().unwrap();
        m.respond(&hostile).unwrap();
        let detail = m.failure_detail().unwrap();
        assert!(!detail.chars().any(char::is_control), "{detail:?}");
        assert!(detail.chars().count() <= DETAIL_LIMIT + 1);
    }

    #[test]
    fn tokens_that_would_break_the_framing_are_refused_without_showing_them() {
        for token in ["", "s3c\x01r3t", "s3c r3t", "s3c\r\nr3t", "s3cr3té"] {
            let c = creds("u", token);
            let errors = [
                XOAuth2::new(&c).initial_response().unwrap_err(),
                OAuthBearer::new(&c).initial_response().unwrap_err(),
            ];
            for err in errors {
                assert!(matches!(err, AuthError::InvalidCredential { .. }), "{err}");
                for text in [err.to_string(), format!("{err:?}")] {
                    assert!(!text.contains("s3c") && !text.contains("r3t"), "{text}");
                }
            }
        }
    }

    #[test]
    fn separators_in_user_or_host_are_refused() {
        let c = creds("u\x01auth=Bearer evil", "tok");
        assert!(XOAuth2::new(&c).initial_response().is_err());
        assert!(OAuthBearer::new(&c).initial_response().is_err());
        let mut m = OAuthBearer::new(&creds("u", "tok")).with_server("h\x01port=1", 25);
        assert!(m.initial_response().is_err());
    }
}
