//! A `loki_push_api` job whose `server.http_tls_config` names a certificate and requires
//! client certificates takes pushes from a second tailward that presents one (`tls_config`
//! of its client), and refuses plain HTTP on that port.

use std::io::Write;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::push_client::{post, protobuf_push, push_port, receiving_config};
use crate::support::receiver::Receiver;

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made here, as files.
fn pki(dir: &std::path::Path) -> [std::path::PathBuf; 5] {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["sender.test".to_string()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    let files = [
        ("ca.pem", ca.pem()),
        ("server.pem", server.pem()),
        ("server.key", server_key.serialize_pem()),
        ("client.pem", client.pem()),
        ("client.key", client_key.serialize_pem()),
    ];
    files.map(|(name, pem)| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sender_with_a_client_certificate_pushes_over_tls_and_plain_http_is_refused() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let [ca, server_cert, server_key, client_cert, client_key] = pki(dir.path());
    let port = 0;
    let job = format!(
        "    loki_push_api:\n      server:\n        http_listen_address: 127.0.0.1\n        http_listen_port: {port}\n        http_tls_config:\n          cert_file: {}\n          key_file: {}\n          client_auth_type: RequireAndVerifyClientCert\n          client_ca_file: {}\n",
        server_cert.display(),
        server_key.display(),
        ca.display()
    );
    let first = AgentProcess::start(
        &receiving_config(dir.path(), &receiver.url(), "", &job),
        &[],
    );
    let port = push_port(&first, 1);
    let plain = post(
        port,
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &protobuf_push(r#"{job="plain"}"#, &[(1, "over plain http", &[])]),
    );
    assert_ne!(plain.status, 204, "plain HTTP on the TLS port: {plain:?}");

    let sender_dir = tempfile::tempdir().unwrap();
    let log = sender_dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let second = AgentProcess::start(
        &write_config(
            sender_dir.path(),
            &format!(
                r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {positions}
clients:
  - url: https://127.0.0.1:{port}/loki/api/v1/push
    batchwait: 100ms
    tls_config:
      ca_file: {ca}
      cert_file: {cert}
      key_file: {key}
scrape_configs:
  - job_name: app
    static_configs:
      - labels: {{job: app, __path__: {log}}}
"#,
                positions = sender_dir.path().join("positions.yaml").display(),
                ca = ca.display(),
                cert = client_cert.display(),
                key = client_key.display(),
                log = log.display(),
            ),
        ),
        &[],
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for i in 0..20 {
        writeln!(f, "secret line {i}").unwrap();
    }
    drop(f);
    let entries = receiver.wait_for_entries(20, Duration::from_secs(30)).await;
    assert_eq!(entries.len(), 20, "{}", second.stderr_text());
    assert!(entries.iter().all(|e| e.line.starts_with("secret line")));
    let _ = second.terminate();
    let _ = first.terminate();
}
