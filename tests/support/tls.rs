//! A throw-away PKI for TLS tests: one test CA and server certificates that
//! are valid, self-signed, for the wrong host, expired, or from an unknown CA.
//!
//! Owns certificate generation (openssl crate, EC P-256 keys so it is fast
//! even in debug builds) and the client-side connector helper. Key material is
//! generated once per test process and cached; every [`TestPki`] value gets
//! its own temporary directory holding the PEM files, removed on drop.
//!
//! Never use anything here outside tests: the keys are not protected.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use native_tls::{Certificate, Identity, TlsConnector};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

/// Which server certificate a [`TestPki`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// For `localhost`, 127.0.0.1 and ::1, signed by the test CA, valid now.
    Valid,
    /// For `localhost` (same SANs) but self-signed: no CA vouches for it.
    SelfSigned,
    /// Signed by the test CA, but only for `wrong.example`.
    WrongHost,
    /// For `localhost`, signed by the test CA, expired yesterday.
    Expired,
    /// For `localhost`, signed by a second CA that nobody trusts.
    UnknownCa,
}

const KINDS: usize = 5;

impl CertKind {
    fn index(self) -> usize {
        match self {
            CertKind::Valid => 0,
            CertKind::SelfSigned => 1,
            CertKind::WrongHost => 2,
            CertKind::Expired => 3,
            CertKind::UnknownCa => 4,
        }
    }
}

/// A key and its certificate, both PEM (key in PKCS#8).
#[derive(Clone)]
struct Pair {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

/// Test certificates for one scenario, plus their PEM files on disk.
///
/// `ca_pem`/`ca_path` are always the *trusted* test CA (the same for every
/// kind), so a client configured with `ca_path` accepts [`TestPki::new`] and
/// must refuse every other constructor's server certificate.
pub struct TestPki {
    /// Which server certificate this is.
    pub kind: CertKind,
    /// The trusted test CA certificate, PEM.
    pub ca_pem: Vec<u8>,
    /// `ca_pem` written to a file (lives as long as this value).
    pub ca_path: PathBuf,
    /// The server certificate, PEM.
    pub cert_pem: Vec<u8>,
    /// The server certificate, DER (for fingerprint pins).
    pub cert_der: Vec<u8>,
    /// SHA-256 of `cert_der`.
    pub cert_sha256: [u8; 32],
    /// The server key, PKCS#8 PEM.
    pub key_pem: Vec<u8>,
    /// `cert_pem` written to a file.
    pub cert_path: PathBuf,
    /// `key_pem` written to a file.
    pub key_path: PathBuf,
    /// The server identity for `native_tls::TlsAcceptor`.
    pub identity: Identity,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("kind", &self.kind)
            .field("ca_path", &self.ca_path)
            .field("cert_sha256", &self.cert_sha256_hex())
            .finish_non_exhaustive()
    }
}

impl TestPki {
    /// A valid server certificate for localhost, signed by the test CA.
    pub fn new() -> TestPki {
        TestPki::of(CertKind::Valid)
    }

    /// A self-signed server certificate for localhost.
    pub fn self_signed() -> TestPki {
        TestPki::of(CertKind::SelfSigned)
    }

    /// A CA-signed server certificate for `wrong.example` only.
    pub fn wrong_host() -> TestPki {
        TestPki::of(CertKind::WrongHost)
    }

    /// A CA-signed server certificate for localhost that has expired.
    pub fn expired() -> TestPki {
        TestPki::of(CertKind::Expired)
    }

    /// A server certificate for localhost signed by an untrusted CA.
    pub fn unknown_ca() -> TestPki {
        TestPki::of(CertKind::UnknownCa)
    }

    /// The PKI for `kind`, with its files in a fresh temporary directory.
    pub fn of(kind: CertKind) -> TestPki {
        let ca = trusted_ca();
        let leaf = leaf(kind);
        let dir = tempfile::tempdir().expect("tempdir for test PKI");
        let ca_path = dir.path().join("ca.pem");
        let cert_path = dir.path().join("server.pem");
        let key_path = dir.path().join("server.key");
        std::fs::write(&ca_path, &ca.cert_pem).expect("write ca.pem");
        std::fs::write(&cert_path, &leaf.cert_pem).expect("write server.pem");
        std::fs::write(&key_path, &leaf.key_pem).expect("write server.key");
        let x509 = X509::from_pem(&leaf.cert_pem).expect("parse our own cert");
        let cert_der = x509.to_der().expect("cert to DER");
        let digest = x509.digest(MessageDigest::sha256()).expect("digest");
        let mut cert_sha256 = [0u8; 32];
        cert_sha256.copy_from_slice(&digest);
        TestPki {
            kind,
            ca_pem: ca.cert_pem.clone(),
            ca_path,
            cert_pem: leaf.cert_pem.clone(),
            cert_der,
            cert_sha256,
            key_pem: leaf.key_pem.clone(),
            cert_path,
            key_path,
            identity: identity_of(kind),
            _dir: dir,
        }
    }

    /// `cert_sha256` as lowercase hex without separators.
    pub fn cert_sha256_hex(&self) -> String {
        hex(&self.cert_sha256)
    }

    /// A client connector that trusts only this PKI's test CA.
    pub fn connector(&self) -> TlsConnector {
        connector_trusting(&self.ca_pem)
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

/// The server identity for `kind`, without writing any file.
pub fn identity_of(kind: CertKind) -> Identity {
    let leaf = leaf(kind);
    Identity::from_pkcs8(&leaf.cert_pem, &leaf.key_pem).expect("identity from our own PEM")
}

/// The trusted test CA certificate, PEM (the same for the whole process).
pub fn test_ca_pem() -> &'static [u8] {
    &trusted_ca().cert_pem
}

/// A client-side connector whose only trust anchor is `ca_pem` (TLS ≥ 1.2).
pub fn connector_trusting(ca_pem: &[u8]) -> TlsConnector {
    let ca = Certificate::from_pem(ca_pem).expect("CA PEM");
    TlsConnector::builder()
        .add_root_certificate(ca)
        .disable_built_in_roots(true)
        .min_protocol_version(Some(native_tls::Protocol::Tlsv12))
        .build()
        .expect("TLS connector")
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn trusted_ca() -> &'static Pair {
    static CA: OnceLock<Pair> = OnceLock::new();
    CA.get_or_init(|| make_ca("smtpsend test CA"))
}

fn untrusted_ca() -> &'static Pair {
    static CA: OnceLock<Pair> = OnceLock::new();
    CA.get_or_init(|| make_ca("nobody trusts this CA"))
}

fn leaf(kind: CertKind) -> &'static Pair {
    static LEAVES: [OnceLock<Pair>; KINDS] = [const { OnceLock::new() }; KINDS];
    LEAVES[kind.index()].get_or_init(|| {
        let now = unix_now();
        let day = 24 * 3600;
        let valid = (now - 3600, now + 30 * day);
        match kind {
            CertKind::Valid => make_leaf("localhost", true, valid, Some(trusted_ca())),
            CertKind::SelfSigned => make_leaf("localhost", true, valid, None),
            CertKind::WrongHost => make_leaf("wrong.example", false, valid, Some(trusted_ca())),
            CertKind::Expired => make_leaf(
                "localhost",
                true,
                (now - 60 * day, now - day),
                Some(trusted_ca()),
            ),
            CertKind::UnknownCa => make_leaf("localhost", true, valid, Some(untrusted_ca())),
        }
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("EC keygen")).expect("PKey")
}

fn random_serial() -> openssl::asn1::Asn1Integer {
    let mut bn = BigNum::new().expect("bignum");
    bn.rand(120, MsbOption::MAYBE_ZERO, false).expect("rand");
    bn.to_asn1_integer().expect("serial")
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut b = X509NameBuilder::new().expect("name builder");
    b.append_entry_by_text("O", "smtpsend tests").expect("O");
    b.append_entry_by_text("CN", cn).expect("CN");
    b.build()
}

fn pair(cert: &X509, key: &PKey<Private>) -> Pair {
    Pair {
        cert_pem: cert.to_pem().expect("cert PEM"),
        key_pem: key.private_key_to_pem_pkcs8().expect("key PEM"),
    }
}

fn make_ca(cn: &str) -> Pair {
    let key = new_key();
    let now = unix_now();
    let mut b = X509Builder::new().expect("x509 builder");
    b.set_version(2).expect("v3");
    b.set_serial_number(&random_serial()).expect("serial");
    let subject = name(cn);
    b.set_subject_name(&subject).expect("subject");
    b.set_issuer_name(&subject).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::from_unix(now - 3600).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::from_unix(now + 3650 * 24 * 3600).expect("time"))
        .expect("not after");
    b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
        .expect("bc");
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .expect("ski");
    b.append_extension(ski).expect("ski");
    b.sign(&key, MessageDigest::sha256()).expect("sign CA");
    pair(&b.build(), &key)
}

/// A server certificate for `host` (plus the loopback IPs when `loopback_ips`),
/// valid over `(not_before, not_after)` in Unix seconds, signed by `issuer`
/// or by itself when `issuer` is `None`.
fn make_leaf(host: &str, loopback_ips: bool, validity: (i64, i64), issuer: Option<&Pair>) -> Pair {
    let key = new_key();
    let issuer = issuer.map(|p| {
        (
            X509::from_pem(&p.cert_pem).expect("issuer cert"),
            PKey::private_key_from_pem(&p.key_pem).expect("issuer key"),
        )
    });
    let mut b = X509Builder::new().expect("x509 builder");
    b.set_version(2).expect("v3");
    b.set_serial_number(&random_serial()).expect("serial");
    let subject = name(host);
    b.set_subject_name(&subject).expect("subject");
    match &issuer {
        Some((cert, _)) => b.set_issuer_name(cert.subject_name()).expect("issuer"),
        None => b.set_issuer_name(&subject).expect("issuer"),
    }
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::from_unix(validity.0).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::from_unix(validity.1).expect("time"))
        .expect("not after");
    b.append_extension(BasicConstraints::new().build().expect("bc"))
        .expect("bc");
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    b.append_extension(ExtendedKeyUsage::new().server_auth().build().expect("eku"))
        .expect("eku");
    let mut san = SubjectAlternativeName::new();
    san.dns(host);
    if loopback_ips {
        san.ip("127.0.0.1").ip("::1");
    }
    let san = san
        .build(&b.x509v3_context(issuer.as_ref().map(|(c, _)| c.as_ref()), None))
        .expect("san");
    b.append_extension(san).expect("san");
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(issuer.as_ref().map(|(c, _)| c.as_ref()), None))
        .expect("ski");
    b.append_extension(ski).expect("ski");
    if let Some((cert, _)) = &issuer {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&b.x509v3_context(Some(cert), None))
            .expect("aki");
        b.append_extension(aki).expect("aki");
    }
    let signer = issuer.as_ref().map(|(_, k)| k).unwrap_or(&key);
    b.sign(signer, MessageDigest::sha256()).expect("sign leaf");
    pair(&b.build(), &key)
}
