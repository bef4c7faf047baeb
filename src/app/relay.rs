//! Reaching the relay: session options from the profile, the address to
//! dial for each host, failover across the profile's hosts on transient
//! errors, the TLS mode, authentication; and `--serverinfo`.

use super::{DebugSink, Failure, Report};
use crate::config::{Auth, Profile, TlsMode, Transport};
use crate::exit::Sysexit;
use crate::smtp::auth::Credentials;
use crate::smtp::stream::{Target, parse_target};
use crate::smtp::{Error, Identity, PlaintextAuth, Protocol, SessionOptions, Smtp, TlsOptions};

/// Where the password of a PKCS#12 client certificate comes from (empty
/// when unset).
pub const CLIENT_CERT_PASSWORD_ENV: &str = crate::config::CLIENT_CERT_PASSWORD_ENV;

/// The engine's options for a profile.
pub fn session_options(p: &Profile) -> Result<SessionOptions, Failure> {
    let mut tls = TlsOptions::new();
    tls.verify = p.tls_verify;
    tls.ca_file = p.tls_ca_file.clone();
    tls.fingerprint = p.tls_fingerprint;
    if let Some(cert) = &p.tls_client_cert {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                Failure::new(
                    Sysexit::Config,
                    format!("cannot read {}: {e}", path.display()),
                )
            })
        };
        let identity = match &p.tls_client_key {
            Some(key) => Identity::from_pkcs8(&read(cert)?, &read(key)?).map_err(|e| {
                Failure::new(
                    Sysexit::Config,
                    format!(
                        "cannot use the client certificate {} with key {}: {e} (the key must be PEM PKCS#8, \"BEGIN PRIVATE KEY\")",
                        cert.display(),
                        key.display()
                    ),
                )
            })?,
            None => {
                let pass = std::env::var(CLIENT_CERT_PASSWORD_ENV).unwrap_or_default();
                Identity::from_pkcs12(&read(cert)?, &pass).map_err(|e| {
                    Failure::new(
                        Sysexit::Config,
                        format!(
                            "cannot use the PKCS#12 client certificate {}: {e} (its password comes from ${CLIENT_CERT_PASSWORD_ENV})",
                            cert.display()
                        ),
                    )
                })?
            }
        };
        tls.identity = Some(identity);
    }
    let options = SessionOptions {
        local_hostname: p.domain.clone(),
        implicit_tls: p.tls == TlsMode::Tls,
        tls,
        protocol: if p.transport == Transport::Lmtp {
            Protocol::Lmtp
        } else {
            Protocol::Smtp
        },
        chunking: p.bdat,
        plaintext_auth: if p.allow_plaintext_auth {
            PlaintextAuth::Always
        } else {
            PlaintextAuth::Loopback
        },
        ..SessionOptions::default()
    };
    // An explicit timeout caps every step, the final reply included; the
    // engine's defaults give that reply 10 minutes (RFC 5321 4.5.3.2.6).
    Ok(match p.timeout {
        Some(t) => options.with_timeout(t),
        None => options,
    })
}

/// Where to connect for one of the profile's hosts: a port written in
/// the host (`"host:port"`, `"[::1]:2525"`) wins, then the profile's
/// `port`, then the default of its TLS mode; a path is a Unix socket.
pub fn dial(host: &str, p: &Profile) -> Result<(String, Option<u16>), Error> {
    Ok(match parse_target(host, None, p.effective_port())? {
        Target::Inet { host, port } => (host, Some(port)),
        Target::Unix(path) => (path.display().to_string(), None),
    })
}

/// A session with the profile's options and, at `debug_level` 1 or
/// more, its transcript on `debug`.
fn new_session(p: &Profile, debug_level: u8, debug: Option<DebugSink>) -> Result<Smtp, Failure> {
    let mut smtp = Smtp::new(session_options(p)?);
    if let Some(sink) = debug.filter(|_| debug_level > 0) {
        smtp.set_debuglevel(debug_level, sink);
    }
    Ok(smtp)
}

/// Connects to the first host that answers, trying the next on a
/// transient failure, and brings the session to the point of MAIL FROM:
/// STARTTLS as the profile says, then AUTH.
pub(crate) fn open_session(
    p: &Profile,
    debug_level: u8,
    debug: Option<DebugSink>,
) -> Result<(Smtp, String), Failure> {
    let mut smtp = new_session(p, debug_level, debug)?;
    let mut last = None;
    for host in &p.hosts {
        let ctx = format!("relay {host}");
        let r = dial(host, p).and_then(|(name, port)| {
            smtp.connect(&name, port)?;
            if p.tls == TlsMode::Starttls {
                smtp.starttls()?;
            }
            Ok(())
        });
        match r {
            Ok(()) => {
                authenticate(&mut smtp, p).map_err(|f| Failure {
                    message: format!("{ctx}: {}", f.message),
                    ..f
                })?;
                return Ok((smtp, host.clone()));
            }
            Err(e) if e.is_transient() => {
                smtp.close();
                last = Some(Failure::smtp(&ctx, &e));
            }
            Err(e) => return Err(Failure::smtp(&ctx, &e)),
        }
    }
    Err(last.unwrap_or_else(|| Failure::new(Sysexit::Config, "no relay host configured")))
}

fn authenticate(smtp: &mut Smtp, p: &Profile) -> Result<(), Failure> {
    let mech = match (&p.auth, &p.user) {
        (Auth::None, _) | (Auth::Auto, None) => return Ok(()),
        (Auth::Auto, Some(_)) => None,
        (Auth::Mechanism(m), _) => Some(m.name()),
    };
    let is_external = mech.is_some_and(|m| m.eq_ignore_ascii_case("EXTERNAL"));
    let user = p.user.clone().unwrap_or_default();
    if user.is_empty() && !is_external {
        return Err(Failure::new(
            Sysexit::Config,
            format!(
                "auth {} needs a user name: set user in the profile or give --user",
                mech.unwrap_or("auto")
            ),
        ));
    }
    let secret = if is_external {
        Default::default()
    } else {
        p.password()?.ok_or_else(|| {
            Failure::new(
                Sysexit::Config,
                format!(
                    "no password for {user}: set password_command (or password) in the profile, --password-command, or SMTPSEND_PASSWORD"
                ),
            )
        })?
    };
    let creds = Credentials {
        authzid: is_external.then(|| user.clone()).filter(|u| !u.is_empty()),
        user,
        secret,
    };
    smtp.login_with(&creds, mech)
        .map(|_| ())
        .map_err(|e| Failure::smtp("authentication", &e))
}

/// `--serverinfo`: what the relay offers, before and after STARTTLS.
pub fn serverinfo(p: &Profile, debug_level: u8, debug: DebugSink) -> Result<Report, Failure> {
    let host = p.hosts.first().ok_or_else(|| {
        Failure::new(
            Sysexit::Usage,
            "--serverinfo needs a relay: give --host or a profile with a host",
        )
    })?;
    let mut smtp = new_session(p, debug_level, Some(debug))?;
    let ctx = format!("relay {host}");
    let fail = |e: Error| Failure::smtp(&ctx, &e);
    let (name, port) = dial(host, p).map_err(fail)?;
    let greeting = smtp.connect(&name, port).map_err(fail)?;
    let mut out = match port {
        Some(port) => format!("relay: {name} port {port}\n"),
        None => format!("relay: {name}\n"),
    };
    out.push_str(&format!("greeting: {greeting}\n"));
    describe(&mut smtp, &mut out, "").map_err(fail)?;
    if p.tls == TlsMode::Starttls && smtp.has_extn("starttls") {
        smtp.starttls().map_err(fail)?;
        describe(&mut smtp, &mut out, " after STARTTLS").map_err(fail)?;
    }
    let _ = smtp.quit();
    Ok(Report {
        output: out,
        ..Report::default()
    })
}

fn describe(smtp: &mut Smtp, out: &mut String, when: &str) -> Result<(), Error> {
    if let Some(info) = smtp.tls_info() {
        out.push_str(&format!("TLS{when}: yes (TLS 1.2 or later)\n"));
        if let Some(der) = &info.certificate_der {
            out.push_str(&describe_certificate(der));
        }
        out.push_str(&format!(
            "certificate sha256: {} (tls_fingerprint = \"sha256:{}\")\n",
            info.fingerprint_sha256.clone().unwrap_or_default(),
            info.fingerprint_sha256.unwrap_or_default()
        ));
    } else {
        out.push_str(&format!("TLS{when}: no\n"));
    }
    smtp.ehlo_or_helo_if_needed()?;
    out.push_str(&format!("extensions{when}:\n"));
    for (name, params) in smtp.extensions().iter() {
        let line = format!("    {} {params}", name.to_ascii_uppercase());
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let mechs = smtp.extensions().auth_mechanisms();
    out.push_str(&format!(
        "AUTH mechanisms{when}: {}\n",
        if mechs.is_empty() {
            "none".into()
        } else {
            mechs.join(" ")
        }
    ));
    Ok(())
}

/// Subject, issuer and validity of a DER certificate, one per line.
fn describe_certificate(der: &[u8]) -> String {
    let Ok(cert) = openssl::x509::X509::from_der(der) else {
        return "certificate: (cannot be decoded)\n".into();
    };
    let name = |n: &openssl::x509::X509NameRef| {
        n.entries()
            .map(|e| {
                let key = e.object().nid().short_name().unwrap_or("?");
                let val = e.data().to_string().unwrap_or_default();
                format!("{key}={val}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "certificate subject: {}\ncertificate issuer: {}\ncertificate valid: {} to {}\n",
        name(cert.subject_name()),
        name(cert.issuer_name()),
        cert.not_before(),
        cert.not_after()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::{X509, X509NameBuilder};

    fn cert_and_key() -> (X509, PKey<openssl::pkey::Private>) {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "client.example").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }

    #[test]
    fn dial_takes_the_port_from_the_host_then_the_profile_then_the_tls_mode() {
        let p = |port: Option<u16>, tls| Profile {
            port,
            tls,
            ..Profile::default()
        };
        let starttls = p(None, TlsMode::Starttls);
        assert_eq!(
            dial("relay.example", &starttls).unwrap(),
            ("relay.example".into(), Some(587))
        );
        assert_eq!(
            dial("127.0.0.1:2525", &starttls).unwrap(),
            ("127.0.0.1".into(), Some(2525))
        );
        assert_eq!(
            dial("[::1]:2525", &starttls).unwrap(),
            ("::1".into(), Some(2525))
        );
        assert_eq!(
            dial("::1", &p(None, TlsMode::Tls)).unwrap(),
            ("::1".into(), Some(465))
        );
        let explicit = p(Some(26), TlsMode::None);
        assert_eq!(
            dial("relay.example", &explicit).unwrap(),
            ("relay.example".into(), Some(26))
        );
        assert_eq!(
            dial("relay.example:27", &explicit).unwrap(),
            ("relay.example".into(), Some(27))
        );
        assert_eq!(
            dial("/run/lmtp.sock", &explicit).unwrap(),
            ("/run/lmtp.sock".into(), None)
        );
        assert!(dial("relay.example:x", &explicit).is_err());
    }

    #[test]
    fn client_certificate_as_pem_pair_or_pkcs12() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_and_key();
        let cert_path = dir.path().join("c.pem");
        let key_path = dir.path().join("k.pem");
        std::fs::write(&cert_path, cert.to_pem().unwrap()).unwrap();
        std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let p = Profile {
            tls_client_cert: Some(cert_path.clone()),
            tls_client_key: Some(key_path),
            ..Profile::default()
        };
        assert!(session_options(&p).unwrap().tls.identity.is_some());

        let p12 = openssl::pkcs12::Pkcs12::builder()
            .name("client")
            .pkey(&key)
            .cert(&cert)
            .build2("")
            .unwrap();
        let p12_path = dir.path().join("c.p12");
        std::fs::write(&p12_path, p12.to_der().unwrap()).unwrap();
        let p = Profile {
            tls_client_cert: Some(p12_path),
            tls_client_key: None,
            ..Profile::default()
        };
        assert!(session_options(&p).unwrap().tls.identity.is_some());

        // A key that does not parse is a configuration error naming both files.
        let bad_key = dir.path().join("bad.pem");
        std::fs::write(
            &bad_key,
            b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let p = Profile {
            tls_client_cert: Some(cert_path),
            tls_client_key: Some(bad_key),
            ..Profile::default()
        };
        let f = session_options(&p).err().unwrap();
        assert_eq!(f.exit, Sysexit::Config);
        assert!(f.message.contains("bad.pem"), "{}", f.message);
    }
}
