//! The rustls configuration of one client, built once from `tls_config` with the ring provider.
//!
//! Owns: trusted roots (the configured CA alone, as Promtail's Go client trusts it, else the
//! system store), the client certificate, `server_name` (the name the server certificate is
//! verified against), `insecure_skip_verify`, and TLS version bounds. Every file is read here
//! at spawn; a failure names the config key. It must not build the HTTP client.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme, SupportedProtocolVersion};

use super::ClientError;
use crate::config::TlsConfig;

/// Builds the client's TLS configuration. `https` says whether the push URL needs it at once:
/// an http URL only meets TLS through a redirect, so a missing trust store is not fatal then.
pub(crate) fn client_config(
    tls: &TlsConfig,
    https: bool,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = protocol_versions(tls)?;
    let verifier = server_verifier(tls, https, &provider)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| {
            err(
                "tls_config.min_version",
                format!("unusable TLS versions: {e}"),
            )
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_certificate(tls)? {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            err(
                cert_key(tls),
                format!("unusable client certificate or key: {e}"),
            )
        })?,
        None => builder.with_no_client_auth(),
    };
    // Promtail builds its client with HTTP/2 disabled; offer only HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn err(key: &str, message: impl Into<String>) -> ClientError {
    ClientError {
        key: key.to_string(),
        message: message.into(),
    }
}

fn cert_key(tls: &TlsConfig) -> &'static str {
    if tls.cert.is_empty() {
        "tls_config.cert_file"
    } else {
        "tls_config.cert"
    }
}

fn protocol_versions(
    tls: &TlsConfig,
) -> Result<Vec<&'static SupportedProtocolVersion>, ClientError> {
    // rustls has no TLS 1.0/1.1; a minimum below 1.2 therefore means 1.2.
    let rank = |key: &str, v: &str| match v {
        "" => Ok(None),
        "TLS10" | "TLS11" | "TLS12" => Ok(Some(12)),
        "TLS13" => Ok(Some(13)),
        other => Err(err(
            key,
            format!("unknown TLS version {other:?}: expected TLS10, TLS11, TLS12 or TLS13"),
        )),
    };
    let min = rank("tls_config.min_version", &tls.min_version)?.unwrap_or(12);
    let max = match tls.max_version.as_str() {
        "TLS10" | "TLS11" => {
            return Err(err(
                "tls_config.max_version",
                "TLS 1.0 and 1.1 are not supported: expected TLS12 or TLS13",
            ));
        }
        v => rank("tls_config.max_version", v)?.unwrap_or(13),
    };
    if min > max {
        return Err(err(
            "tls_config.min_version",
            "expected min_version <= max_version",
        ));
    }
    let mut versions = Vec::new();
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    Ok(versions)
}

fn server_verifier(
    tls: &TlsConfig,
    https: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, ClientError> {
    let system_roots = tls.ca.is_empty() && tls.ca_file.is_empty();
    if !https && system_roots && !tls.insecure_skip_verify {
        // An http URL meets TLS only through a redirect, if ever: reading and parsing the
        // system store (a tenth of a short run's CPU) waits until a handshake needs it.
        if !tls.server_name.is_empty() && ServerName::try_from(tls.server_name.clone()).is_err() {
            return Err(invalid_server_name(tls));
        }
        return Ok(Arc::new(SystemRootsOnFirstUse {
            tls: tls.clone(),
            provider: provider.clone(),
            verifier: std::sync::OnceLock::new(),
        }));
    }
    build_server_verifier(tls, https, provider)
}

fn build_server_verifier(
    tls: &TlsConfig,
    https: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, ClientError> {
    let roots = trusted_roots(tls)?;
    let algorithms = provider.signature_verification_algorithms;
    if tls.insecure_skip_verify {
        return Ok(Arc::new(AcceptAnyCertificate { algorithms }));
    }
    if roots.is_empty() {
        if https {
            return Err(err(
                "tls_config.ca_file",
                "no trusted CA certificates: the system certificate store is empty or unreadable; \
                 set tls_config.ca_file",
            ));
        }
        return Ok(Arc::new(NoTrustedRoots { algorithms }));
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| {
            err(
                "tls_config.ca_file",
                format!("unusable CA certificates: {e}"),
            )
        })?;
    if tls.server_name.is_empty() {
        return Ok(webpki);
    }
    let name =
        ServerName::try_from(tls.server_name.clone()).map_err(|_| invalid_server_name(tls))?;
    Ok(Arc::new(VerifyAs {
        inner: webpki,
        name,
    }))
}

fn invalid_server_name(tls: &TlsConfig) -> ClientError {
    err(
        "tls_config.server_name",
        format!(
            "{:?} is not a valid DNS name or IP address",
            tls.server_name
        ),
    )
}

fn trusted_roots(tls: &TlsConfig) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    let configured = match (tls.ca.is_empty(), tls.ca_file.is_empty()) {
        (false, false) => {
            return Err(err(
                "tls_config.ca_file",
                "at most one of ca and ca_file may be configured",
            ));
        }
        (false, true) => Some((
            "tls_config.ca",
            "inline ca".to_string(),
            tls.ca.as_bytes().to_vec(),
        )),
        (true, false) => Some((
            "tls_config.ca_file",
            tls.ca_file.clone(),
            read_file("tls_config.ca_file", &tls.ca_file)?,
        )),
        (true, true) => None,
    };
    match configured {
        Some((key, source, pem)) => {
            let certs = parse_certificates(key, &source, &pem)?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| err(key, format!("{source}: unusable CA certificate: {e}")))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            if !native.errors.is_empty() {
                tracing::debug!(errors = ?native.errors, "some system CA certificates could not be loaded");
            }
            roots.add_parsable_certificates(native.certs);
        }
    }
    Ok(roots)
}

fn client_certificate(
    tls: &TlsConfig,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, ClientError> {
    if !tls.cert.is_empty() && !tls.cert_file.is_empty() {
        return Err(err(
            "tls_config.cert_file",
            "at most one of cert and cert_file may be configured",
        ));
    }
    if !tls.key.is_empty() && !tls.key_file.is_empty() {
        return Err(err(
            "tls_config.key_file",
            "at most one of key and key_file may be configured",
        ));
    }
    let has_cert = !tls.cert.is_empty() || !tls.cert_file.is_empty();
    let has_key = !tls.key.is_empty() || !tls.key_file.is_empty();
    match (has_cert, has_key) {
        (false, false) => return Ok(None),
        (true, false) => {
            return Err(err(
                "tls_config.key_file",
                "a client certificate needs its key: set key_file or key",
            ));
        }
        (false, true) => {
            return Err(err(
                "tls_config.cert_file",
                "a client key needs its certificate: set cert_file or cert",
            ));
        }
        (true, true) => {}
    }
    let (cert_key, cert_source, cert_pem) = if tls.cert.is_empty() {
        (
            "tls_config.cert_file",
            tls.cert_file.clone(),
            read_file("tls_config.cert_file", &tls.cert_file)?,
        )
    } else {
        (
            "tls_config.cert",
            "inline cert".to_string(),
            tls.cert.as_bytes().to_vec(),
        )
    };
    let chain = parse_certificates(cert_key, &cert_source, &cert_pem)?;
    let (key_key, key_source, key_pem) = if tls.key.is_empty() {
        (
            "tls_config.key_file",
            tls.key_file.clone(),
            read_file("tls_config.key_file", &tls.key_file)?,
        )
    } else {
        (
            "tls_config.key",
            "inline key".to_string(),
            tls.key.as_bytes().to_vec(),
        )
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => err(
            key_key,
            format!("{key_source}: no private key found in PEM"),
        ),
        e => err(key_key, format!("{key_source}: invalid PEM: {e}")),
    })?;
    Ok(Some((chain, key)))
}

fn read_file(key: &str, path: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| err(key, format!("reading {path}: {e}")))
}

fn parse_certificates(
    key: &str,
    source: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(key, format!("{source}: invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(err(key, format!("{source}: no certificate found in PEM")));
    }
    Ok(certs)
}

/// Verifies the chain as WebPKI does, but against `name` instead of the URL's host.
///
/// rustls still sends the URL's host as SNI; only verification uses `name`.
#[derive(Debug)]
struct VerifyAs {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The system store's verifier of a client whose URL is http, built at its first handshake
/// (a redirect to https) exactly as an https client builds it at spawn.
struct SystemRootsOnFirstUse {
    tls: TlsConfig,
    provider: Arc<CryptoProvider>,
    verifier: std::sync::OnceLock<Result<Arc<dyn ServerCertVerifier>, String>>,
}

impl SystemRootsOnFirstUse {
    fn inner(&self) -> Result<&Arc<dyn ServerCertVerifier>, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                build_server_verifier(&self.tls, false, &self.provider).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl fmt::Debug for SystemRootsOnFirstUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SystemRootsOnFirstUse")
    }
}

impl ServerCertVerifier for SystemRootsOnFirstUse {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `insecure_skip_verify`: any certificate for any name, as Go's InsecureSkipVerify. The
/// handshake signatures are still checked, so the peer must hold the certificate's key.
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

/// Refuses every certificate: no roots could be loaded and none were configured.
struct NoTrustedRoots {
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for AcceptAnyCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptAnyCertificate")
    }
}

impl fmt::Debug for NoTrustedRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoTrustedRoots")
    }
}

macro_rules! handshake_signatures_via {
    ($algorithms:ident) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.$algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.$algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.$algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_via!(algorithms);
}

impl ServerCertVerifier for NoTrustedRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General(
            "no trusted CA certificates: the system store is empty; set tls_config.ca_file".into(),
        ))
    }

    handshake_signatures_via!(algorithms);
}

/// A throwaway CA and a certificate it signed for `server_name`, for TLS tests.
#[cfg(test)]
pub(super) struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

#[cfg(test)]
pub(super) fn test_pki(server_name: &str) -> TestPki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tailward test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![server_name.to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    TestPki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> TlsConfig {
        TlsConfig::default()
    }

    fn key_of(r: Result<rustls::ClientConfig, ClientError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.key,
        }
    }

    #[test]
    fn default_config_builds_for_http_and_offers_only_http11() {
        let config = client_config(&tls(), false).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn missing_ca_file_names_the_key() {
        let t = TlsConfig {
            ca_file: "/nonexistent/ca.pem".into(),
            ..tls()
        };
        let e = client_config(&t, true).unwrap_err();
        assert_eq!(e.key, "tls_config.ca_file");
        assert!(e.message.contains("/nonexistent/ca.pem"), "{}", e.message);
    }

    #[test]
    fn ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let t = TlsConfig {
            ca_file: path.to_string_lossy().into_owned(),
            ..tls()
        };
        let e = client_config(&t, true).unwrap_err();
        assert_eq!(e.key, "tls_config.ca_file");
        assert!(e.message.contains("no certificate found"), "{}", e.message);
    }

    #[test]
    fn inline_ca_and_ca_file_together_are_refused() {
        let t = TlsConfig {
            ca: "x".into(),
            ca_file: "y".into(),
            ..tls()
        };
        assert_eq!(key_of(client_config(&t, true)), "tls_config.ca_file");
    }

    #[test]
    fn inline_ca_is_accepted() {
        let t = TlsConfig {
            ca: test_pki("loki.test").ca_pem,
            ..tls()
        };
        assert!(client_config(&t, true).is_ok());
    }

    #[test]
    fn certificate_without_key_and_key_without_certificate_are_refused() {
        let t = TlsConfig {
            cert: test_pki("client").cert_pem,
            ..tls()
        };
        assert_eq!(key_of(client_config(&t, false)), "tls_config.key_file");
        let t = TlsConfig {
            key_file: "/k.pem".into(),
            ..tls()
        };
        assert_eq!(key_of(client_config(&t, false)), "tls_config.cert_file");
    }

    #[test]
    fn client_certificate_and_key_from_files_load() {
        let pki = test_pki("client");
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, pki.cert_pem).unwrap();
        std::fs::write(&key, pki.key_pem).unwrap();
        let t = TlsConfig {
            cert_file: cert.to_string_lossy().into_owned(),
            key_file: key.to_string_lossy().into_owned(),
            ..tls()
        };
        let config = client_config(&t, false).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn key_file_without_a_key_names_the_key_file() {
        let pem = test_pki("client").cert_pem;
        let t = TlsConfig {
            cert: pem.clone(),
            key: pem,
            ..tls()
        };
        let e = client_config(&t, false).unwrap_err();
        assert_eq!(e.key, "tls_config.key");
        assert!(e.message.contains("no private key"), "{}", e.message);
    }

    #[test]
    fn invalid_server_name_is_refused() {
        let t = TlsConfig {
            ca: test_pki("loki.test").ca_pem,
            server_name: "not a name!".into(),
            ..tls()
        };
        assert_eq!(key_of(client_config(&t, true)), "tls_config.server_name");
    }

    #[test]
    fn tls_versions_follow_min_and_max() {
        let versions = |min: &str, max: &str| {
            protocol_versions(&TlsConfig {
                min_version: min.into(),
                max_version: max.into(),
                ..tls()
            })
            .map(|v| v.iter().map(|v| v.version).collect::<Vec<_>>())
        };
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(versions("", "").unwrap(), vec![TLSv1_2, TLSv1_3]);
        assert_eq!(versions("TLS10", "").unwrap(), vec![TLSv1_2, TLSv1_3]);
        assert_eq!(versions("TLS13", "").unwrap(), vec![TLSv1_3]);
        assert_eq!(versions("", "TLS12").unwrap(), vec![TLSv1_2]);
        assert_eq!(
            versions("TLS14", "").unwrap_err().key,
            "tls_config.min_version"
        );
        assert_eq!(
            versions("", "TLS11").unwrap_err().key,
            "tls_config.max_version"
        );
        assert_eq!(
            versions("TLS13", "TLS12").unwrap_err().key,
            "tls_config.min_version"
        );
    }

    #[test]
    fn insecure_skip_verify_accepts_any_certificate() {
        let verifier = AcceptAnyCertificate {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        };
        let pem = test_pki("elsewhere.example").cert_pem;
        let der = parse_certificates("cert", "test", pem.as_bytes()).unwrap();
        let name = ServerName::try_from("anything.example").unwrap();
        assert!(
            verifier
                .verify_server_cert(&der[0], &[], &name, &[], UnixTime::now())
                .is_ok()
        );
    }

    #[test]
    fn an_http_client_still_verifies_a_redirect_target_against_the_system_store() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = server_verifier(&tls(), false, &provider).unwrap();
        let pem = test_pki("loki.test").cert_pem;
        let der = parse_certificates("cert", "test", pem.as_bytes()).unwrap();
        let name = ServerName::try_from("loki.test").unwrap();
        let refused = verifier.verify_server_cert(&der[0], &[], &name, &[], UnixTime::now());
        assert!(
            refused.is_err(),
            "a certificate of an unknown CA is refused: {refused:?}"
        );
        assert_eq!(
            verifier.supported_verify_schemes(),
            provider
                .signature_verification_algorithms
                .supported_schemes()
        );
    }

    #[test]
    fn invalid_server_name_is_refused_for_an_http_url_too() {
        let t = TlsConfig {
            server_name: "not a name!".into(),
            ..tls()
        };
        assert_eq!(key_of(client_config(&t, false)), "tls_config.server_name");
    }
}
