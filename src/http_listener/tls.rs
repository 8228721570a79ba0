//! The HTTP server's TLS, from dskit's `server.http_tls_config`, `tls_min_version` and
//! `tls_cipher_suites`, with rustls and the ring provider.
//!
//! Owns reading the certificate, key and client CA (files or inline PEM) once at start and
//! mapping dskit's (Go's) names onto rustls: a setting that cannot be honoured is refused with
//! the key it came from, never ignored. It must not accept connections.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig as RustlsServerConfig, SupportedProtocolVersion};
use tokio_rustls::TlsAcceptor;

use crate::config::{ServerConfig, ServerTlsConfig};

/// The acceptor for `server.http_tls_config`, or `None` when it names no certificate (plain
/// HTTP, as dskit serves then).
pub fn acceptor(server: &ServerConfig) -> Result<Option<TlsAcceptor>, String> {
    let tls = &server.http_tls_config;
    if tls.cert.is_empty() && tls.cert_file.is_empty() {
        if tls.is_empty() {
            return Ok(None);
        }
        return Err(
            "server.http_tls_config: a key or client CA is set but no certificate: set cert_file (or cert) and key_file (or key)"
                .into(),
        );
    }
    let provider = Arc::new(provider(&server.tls_cipher_suites)?);
    let versions = versions(&server.tls_min_version)?;
    let chain = certificates(tls)?;
    let key = private_key(tls)?;
    let builder = RustlsServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("server.tls_min_version: unusable TLS versions: {e}"))?;
    let builder = match client_verifier(tls, provider)? {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!("server.http_tls_config: the certificate and key do not make a usable pair: {e}")
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

fn read_pem(inline: &str, file: &str, inline_key: &str, file_key: &str) -> Result<Vec<u8>, String> {
    if !inline.is_empty() {
        if !file.is_empty() {
            return Err(format!(
                "server.http_tls_config: at most one of {inline_key} and {file_key}"
            ));
        }
        return Ok(inline.as_bytes().to_vec());
    }
    std::fs::read(file)
        .map_err(|e| format!("server.http_tls_config.{file_key}: cannot read {file:?}: {e}"))
}

fn certificates(tls: &ServerTlsConfig) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(&tls.cert, &tls.cert_file, "cert", "cert_file")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("server.http_tls_config.cert_file: not a PEM certificate: {e}"))?;
    if chain.is_empty() {
        return Err("server.http_tls_config.cert_file: no certificate in the PEM data".into());
    }
    Ok(chain)
}

fn private_key(tls: &ServerTlsConfig) -> Result<PrivateKeyDer<'static>, String> {
    if tls.key.is_empty() && tls.key_file.is_empty() {
        return Err("server.http_tls_config.key_file: a certificate needs its private key".into());
    }
    let pem = read_pem(&tls.key, &tls.key_file, "key", "key_file")?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("server.http_tls_config.key_file: not a PEM private key: {e}"))
}

/// Go's `tls.ClientAuthType` as exporter-toolkit (dskit's TLS code) reads it.
fn client_verifier(
    tls: &ServerTlsConfig,
    provider: Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, String> {
    let has_ca = !tls.client_ca.is_empty() || !tls.client_ca_file.is_empty();
    let verify = |allow_unauthenticated: bool| -> Result<_, String> {
        if !has_ca {
            return Err(format!(
                "server.http_tls_config.client_ca_file: client_auth_type {} needs the CA that signs client certificates",
                tls.client_auth_type
            ));
        }
        let pem = read_pem(
            &tls.client_ca,
            &tls.client_ca_file,
            "client_ca",
            "client_ca_file",
        )?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                format!("server.http_tls_config.client_ca_file: not a PEM certificate: {e}")
            })?;
            roots.add(cert).map_err(|e| {
                format!("server.http_tls_config.client_ca_file: unusable CA certificate: {e}")
            })?;
        }
        let builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let builder = if allow_unauthenticated {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map(Some)
            .map_err(|e| format!("server.http_tls_config.client_ca_file: {e}"))
    };
    match tls.client_auth_type.as_str() {
        "" | "NoClientCert" => {
            if has_ca {
                // exporter-toolkit refuses this too: a CA that checks nothing is a mistake.
                return Err(
                    "server.http_tls_config.client_auth_type: a client CA is configured but no client auth type; set VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                        .into(),
                );
            }
            Ok(None)
        }
        "VerifyClientCertIfGiven" => verify(true),
        "RequireAndVerifyClientCert" => verify(false),
        "RequestClientCert" | "RequireAnyClientCert" => Err(format!(
            "server.http_tls_config.client_auth_type: {} accepts client certificates without verifying them, which tailward does not do; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file",
            tls.client_auth_type
        )),
        other => Err(format!(
            "server.http_tls_config.client_auth_type: unknown value {other:?}: expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        )),
    }
}

/// `tls_min_version` in Go's names. rustls has no TLS 1.0 or 1.1, so a lower minimum is
/// met by 1.2 (never less than asked).
fn versions(min: &str) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    match min {
        "" | "VersionTLS10" | "VersionTLS11" | "VersionTLS12" => {
            Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12])
        }
        "VersionTLS13" => Ok(vec![&rustls::version::TLS13]),
        other => Err(format!(
            "server.tls_min_version: unknown value {other:?}: expected VersionTLS10, VersionTLS11, VersionTLS12 or VersionTLS13"
        )),
    }
}

/// ring's provider with the TLS 1.2 suites cut to `tls_cipher_suites` (Go's names, comma
/// separated); as in Go, TLS 1.3 suites are not configurable and stay.
fn provider(suites: &str) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    let wanted: Vec<&str> = suites
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(provider);
    }
    let name_of = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
    for w in &wanted {
        // Go also names the ChaCha20 suites without their hash.
        let known = provider.cipher_suites.iter().any(|s| {
            let n = name_of(s);
            n == *w || n.strip_suffix("_SHA256") == Some(w)
        });
        if !known {
            let supported: Vec<String> = provider
                .cipher_suites
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS12)
                .map(name_of)
                .collect();
            return Err(format!(
                "server.tls_cipher_suites: {w:?} is not supported; supported TLS 1.2 suites: {}",
                supported.join(", ")
            ));
        }
    }
    provider.cipher_suites.retain(|s| {
        let n = name_of(s);
        s.version() == &rustls::version::TLS13
            || wanted
                .iter()
                .any(|w| n == *w || n.strip_suffix("_SHA256") == Some(w))
    });
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_certificate_means_plain_http_and_a_stray_key_is_refused() {
        let mut server = ServerConfig::default();
        assert!(acceptor(&server).unwrap().is_none());
        server.http_tls_config.key_file = "/etc/key.pem".into();
        assert!(acceptor(&server).err().unwrap().contains("no certificate"));
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let mut server = ServerConfig::default();
        server.http_tls_config.cert_file = "/nonexistent/cert.pem".into();
        server.http_tls_config.key_file = "/nonexistent/key.pem".into();
        let e = acceptor(&server).err().unwrap();
        assert!(
            e.contains("cert_file") && e.contains("/nonexistent/cert.pem"),
            "{e}"
        );
    }

    #[test]
    fn cipher_suites_in_go_names_filter_tls12_and_unknown_ones_are_refused() {
        let p = provider(
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        )
        .unwrap();
        let tls12: Vec<String> = p
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(tls12.len(), 2, "{tls12:?}");
        assert!(
            p.cipher_suites
                .iter()
                .any(|s| s.version() == &rustls::version::TLS13)
        );
        let e = provider("TLS_RSA_WITH_RC4_128_SHA").unwrap_err();
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn min_version_and_client_auth_names_follow_go() {
        assert_eq!(versions("VersionTLS13").unwrap().len(), 1);
        assert_eq!(versions("").unwrap().len(), 2);
        assert!(versions("TLS13").is_err());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = ServerTlsConfig {
            client_auth_type: "RequireAnyClientCert".into(),
            ..ServerTlsConfig::default()
        };
        assert!(client_verifier(&tls, provider.clone()).is_err());
        tls.client_auth_type = "RequireAndVerifyClientCert".into();
        assert!(
            client_verifier(&tls, provider.clone())
                .unwrap_err()
                .contains("client_ca_file")
        );
        tls.client_auth_type = String::new();
        tls.client_ca_file = "/ca.pem".into();
        assert!(client_verifier(&tls, provider).is_err());
    }
}
