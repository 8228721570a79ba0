//! TLS for a syslog TCP listener, from Promtail's `syslog.tls_config`: the certificate and
//! key it presents (`cert_file`, `key_file`) and, with `ca_file`, client certificates that
//! must be signed by that CA (Go's `RequireAndVerifyClientCert`, as Promtail sets it).
//!
//! Owns reading those files once, when the job is built or started. Promtail parses the other
//! keys of Prometheus' TLS config and ignores them; here a key that would be ignored is
//! refused, naming it. It must not accept connections.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// The acceptor for `tls`, or `None` when it names none of the three files (plain TCP, as
/// Promtail listens then).
pub fn acceptor(tls: &TlsConfig) -> Result<Option<TlsAcceptor>, String> {
    if tls.cert_file.is_empty() && tls.key_file.is_empty() && tls.ca_file.is_empty() {
        return refuse_ignored(tls).map(|()| None);
    }
    refuse_ignored(tls)?;
    if tls.cert_file.is_empty() || tls.key_file.is_empty() {
        return Err("cert_file and key_file are both needed for TLS".into());
    }
    let read =
        |key: &str, path: &str| std::fs::read(path).map_err(|e| format!("{key} {path}: {e}"));
    let chain = CertificateDer::pem_slice_iter(&read("cert_file", &tls.cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cert_file {}: not PEM certificates: {e}", tls.cert_file))?;
    if chain.is_empty() {
        return Err(format!("cert_file {}: no certificate in it", tls.cert_file));
    }
    let key = PrivateKeyDer::from_pem_slice(&read("key_file", &tls.key_file)?)
        .map_err(|e| format!("key_file {}: no usable private key: {e}", tls.key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = if tls.ca_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&read("ca_file", &tls.ca_file)?) {
            let cert =
                cert.map_err(|e| format!("ca_file {}: not a PEM certificate: {e}", tls.ca_file))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {}: unusable CA certificate: {e}", tls.ca_file))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("ca_file {}: {e}", tls.ca_file))?;
        builder.with_client_cert_verifier(verifier)
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("cert_file and key_file do not make a usable pair: {e}"))?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Keys of Prometheus' TLS config that Promtail's syslog listener reads and ignores.
fn refuse_ignored(tls: &TlsConfig) -> Result<(), String> {
    let ignored = [
        ("ca", !tls.ca.is_empty()),
        ("cert", !tls.cert.is_empty()),
        ("key", !tls.key.is_empty()),
        ("server_name", !tls.server_name.is_empty()),
        ("insecure_skip_verify", tls.insecure_skip_verify),
        ("min_version", !tls.min_version.is_empty()),
        ("max_version", !tls.max_version.is_empty()),
    ];
    match ignored.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(format!(
            "{key} is not used by the syslog listener (Promtail ignores it too); it reads \
             only cert_file, key_file and ca_file"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(tls: &TlsConfig) -> String {
        match acceptor(tls) {
            Err(e) => e,
            Ok(_) => panic!("{tls:?} accepted"),
        }
    }

    #[test]
    fn no_files_is_plain_tcp_and_a_lone_key_or_an_ignored_key_is_refused() {
        assert!(acceptor(&TlsConfig::default()).unwrap().is_none());
        let lone = TlsConfig {
            key_file: "/nonexistent/key.pem".into(),
            ..TlsConfig::default()
        };
        assert!(refusal(&lone).contains("cert_file and key_file"));
        let ignored = TlsConfig {
            insecure_skip_verify: true,
            ..TlsConfig::default()
        };
        assert!(refusal(&ignored).starts_with("insecure_skip_verify"));
        let missing = TlsConfig {
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
            ..TlsConfig::default()
        };
        assert!(refusal(&missing).contains("/nonexistent/cert.pem"));
    }
}
