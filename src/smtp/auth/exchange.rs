//! The AUTH exchange (RFC 4954) on a session: smtplib's `login` and
//! `auth`, and the rule that credentials never cross an unprotected link.
//!
//! The mechanisms themselves live beside it in [`super`]; this module owns the
//! conversation around them: the initial response, the 334 challenge loop,
//! cancelling with `*`, and what counts as success.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{self as auth, Credentials, Mechanism};
use crate::smtp::reply::Reply;
use crate::smtp::session::{PlaintextAuth, Smtp};
use crate::smtp::{Error, Secret};

/// Most challenges one exchange may have (smtplib's `_MAXCHALLENGE`);
/// a server that keeps challenging is looping.
const MAX_CHALLENGES: usize = 5;

/// RFC 4954 §4: an AUTH command line with its initial response must fit in
/// 12288 octets; longer initial responses wait for the empty challenge.
const MAX_AUTH_LINE: usize = 12288;

impl Smtp {
    /// Logs in (smtplib's `login`): EHLO if needed, then every password
    /// mechanism both sides support, strongest first
    /// ([`auth::PREFERENCE`]: SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, PLAIN,
    /// LOGIN). As in smtplib, a refusal (535) by one mechanism moves on to
    /// the next; the last refusal is returned if all fail. Any other error
    /// (a lost connection, a SCRAM server that cannot prove it knows the
    /// password) stops at once.
    ///
    /// AUTH not advertised is [`Error::NotSupported`]; no common mechanism
    /// is [`Error::AuthRefusedLocally`] naming what the server offers.
    pub fn login(&mut self, user: &str, password: &Secret) -> Result<Reply, Error> {
        let creds = Credentials {
            user: user.to_owned(),
            secret: password.clone(),
            authzid: None,
        };
        self.login_with(&creds, None)
    }

    /// [`Smtp::login`] with full credentials, optionally forcing one
    /// mechanism by name (any built-in one, XOAUTH2/OAUTHBEARER/EXTERNAL
    /// included).
    pub fn login_with(&mut self, creds: &Credentials, only: Option<&str>) -> Result<Reply, Error> {
        self.login_full(creds, only, true)
    }

    /// [`Smtp::login_with`], choosing whether a mechanism's initial
    /// response rides on the AUTH line (smtplib's `initial_response_ok`;
    /// `false` waits for the server's first, empty challenge, for servers
    /// that mishandle RFC 4954 initial responses).
    pub fn login_full(
        &mut self,
        creds: &Credentials,
        only: Option<&str>,
        initial_response_ok: bool,
    ) -> Result<Reply, Error> {
        self.ehlo_or_helo_if_needed()?;
        if !self.has_extn("auth") {
            return Err(Error::NotSupported(
                "SMTP AUTH extension not supported by server".into(),
            ));
        }
        let offered = self.extensions().auth_mechanisms();
        let candidates: Vec<String> = match only {
            Some(m) => {
                let m = m.to_ascii_uppercase();
                if !offered.contains(&m) {
                    return Err(Error::AuthRefusedLocally(format!(
                        "the server does not offer AUTH {m} (it offers: {})",
                        list(&offered)
                    )));
                }
                vec![m]
            }
            None => auth::PREFERENCE
                .iter()
                .map(|m| (*m).to_owned())
                .filter(|m| offered.contains(m))
                .collect(),
        };
        if candidates.is_empty() {
            return Err(Error::AuthRefusedLocally(format!(
                "no authentication mechanism in common with the server (it offers: {}; we support: {})",
                list(&offered),
                auth::PREFERENCE.join(" ")
            )));
        }
        let mut last = None;
        for name in candidates {
            let mut mech = auth::mechanism(&name, creds).ok_or_else(|| {
                Error::AuthRefusedLocally(format!("AUTH {name} is not supported by smtpsend"))
            })?;
            match self.auth(mech.as_mut(), initial_response_ok) {
                Ok(r) => return Ok(r),
                Err(e @ Error::Authentication { .. }) if self.is_connected() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one mechanism was tried"))
    }

    /// One AUTH exchange with any mechanism (smtplib's `auth`): the
    /// initial response when `initial_response_ok` and the mechanism has
    /// one, then the 334 challenge loop. 235 (or 503, already
    /// authenticated) is success; another final reply is
    /// [`Error::Authentication`]. A challenge the mechanism rejects (bad
    /// base64, a SCRAM server signature that does not verify) cancels the
    /// exchange with `*` and is [`Error::AuthRefusedLocally`].
    ///
    /// Credentials are never sent over a connection that is neither TLS
    /// nor to this machine, unless the session allows it
    /// ([`SessionOptions::plaintext_auth`](crate::smtp::SessionOptions)).
    pub fn auth(
        &mut self,
        mech: &mut dyn Mechanism,
        initial_response_ok: bool,
    ) -> Result<Reply, Error> {
        self.ehlo_or_helo_if_needed()?;
        let name = mech.name().to_ascii_uppercase();
        let plaintext_ok = match self.options().plaintext_auth {
            PlaintextAuth::Always => true,
            PlaintextAuth::Loopback => self.is_local_peer(),
            PlaintextAuth::Never => false,
        };
        if !self.is_tls() && !plaintext_ok {
            return Err(Error::AuthRefusedLocally(format!(
                "refusing to send credentials (AUTH {name}) over an unencrypted connection: \
                 use STARTTLS or implicit TLS, or allow plaintext authentication explicitly"
            )));
        }
        let local = |e: auth::AuthError| Error::AuthRefusedLocally(format!("AUTH {name}: {e}"));
        let initial = if initial_response_ok {
            mech.initial_response().map_err(local)?
        } else {
            None
        };
        let mut reply = match initial {
            Some(ir) => {
                let enc = if ir.is_empty() {
                    "=".to_owned()
                } else {
                    B64.encode(&ir)
                };
                if enc.len() + name.len() + 7 <= MAX_AUTH_LINE {
                    self.docmd("AUTH", &format!("{name} {enc}"))?
                } else {
                    // Too long for the command line: answer the first
                    // (empty) challenge with it instead.
                    let r = self.docmd("AUTH", &name)?;
                    if r.code() == 334 {
                        self.putline_secret(&enc)?;
                        self.getreply()?
                    } else {
                        r
                    }
                }
            }
            None => self.docmd("AUTH", &name)?,
        };
        let mut challenges = 0;
        while reply.code() == 334 {
            challenges += 1;
            if challenges > MAX_CHALLENGES {
                self.cancel_auth();
                return Err(Error::AuthRefusedLocally(format!(
                    "AUTH {name}: the server sent more than {MAX_CHALLENGES} challenges (last: {reply})"
                )));
            }
            let text = reply
                .lines()
                .first()
                .map(String::as_str)
                .unwrap_or("")
                .trim();
            let challenge = match B64.decode(text) {
                Ok(c) => c,
                Err(_) => {
                    self.cancel_auth();
                    return Err(Error::AuthRefusedLocally(format!(
                        "AUTH {name}: the server's challenge is not base64: {reply}"
                    )));
                }
            };
            let response = match mech.respond(&challenge) {
                Ok(r) => r,
                Err(e) => {
                    self.cancel_auth();
                    return Err(local(e));
                }
            };
            self.putline_secret(&B64.encode(&response))?;
            reply = self.getreply()?;
        }
        match reply.code() {
            235 => {
                if let Err(e) = mech.finish() {
                    // The server says yes but could not prove who it is:
                    // no mail goes through it.
                    self.close();
                    return Err(local(e));
                }
                Ok(reply)
            }
            503 => Ok(reply),
            _ => Err(Error::Authentication {
                reply,
                detail: mech.failure_detail(),
            }),
        }
    }

    /// Cancels an exchange (RFC 4954 §4: a lone `*`) and reads the 501.
    fn cancel_auth(&mut self) {
        if self.putline_secret("*").is_ok() {
            let _ = self.getreply();
        }
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(" ")
    }
}
