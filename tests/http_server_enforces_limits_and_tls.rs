//! The HTTP server as an attacker or a careless operator meets it: idle, half-sent and
//! flooding connections are closed on time and cannot stop `/ready`, shipping or positions;
//! `/reload` refuses GET; `server.http_tls_config` is honoured (TLS only, client
//! certificates when asked), and a certificate that cannot be read stops the agent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::agent_process::{AgentProcess, BIN, file_job_config, http_get, write_config};
use crate::support::receiver::Receiver;

/// Raises this process's descriptor limit so the test can hold `n` sockets.
fn allow_descriptors(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < n {
            lim.rlim_cur = n.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// True once the peer has closed `s` (EOF or reset); false while it stays open.
fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn with_server_keys(config: String, keys: &str) -> String {
    config.replacen(
        "  graceful_shutdown_timeout: 5s\n",
        &format!("  graceful_shutdown_timeout: 5s\n{keys}"),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed_and_cannot_stop_ready_or_positions() {
    const SOCKETS: usize = 2000;
    allow_descriptors(SOCKETS as u64 + 512);
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let positions = dir.path().join("positions.yaml");
    let config = with_server_keys(
        file_job_config(
            &receiver.url(),
            &positions,
            &log.display().to_string(),
            "",
            "      []",
        ),
        "  http_server_read_timeout: 2s\n  http_server_idle_timeout: 3s\n",
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &config), &[]);
    let port = agent.port;

    // Connections that say nothing, and connections that send half a request and stop:
    // together far more than the default limit of 256.
    let mut held = Vec::new();
    for i in 0..SOCKETS {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        if i % 4 == 0 {
            let _ = s.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        }
        held.push(s);
    }
    assert!(held.len() > 1000, "only {} sockets connected", held.len());

    // While they are open, the agent keeps answering, shipping and saving positions.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ready = (0, String::new());
    while Instant::now() < deadline {
        ready = std::panic::catch_unwind(|| http_get(port, "/ready")).unwrap_or((0, String::new()));
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 200, "/ready from a fresh connection: {ready:?}");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for n in 0..50 {
        writeln!(f, "line {n}").unwrap();
    }
    let size = std::fs::metadata(&log).unwrap().len();
    let saved = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| t.contains(&format!("\"{size}\"")))
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !(receiver.received().len() == 50 && saved(&positions)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        receiver.received().len(),
        50,
        "lines shipped during the flood"
    );
    assert!(
        saved(&positions),
        "positions saved during the flood: {:?}",
        std::fs::read_to_string(&positions)
    );

    // Every held connection is closed by the agent once the timeouts pass (header 2 s,
    // idle 3 s), none is left open for good.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut open: Vec<TcpStream> = held;
    while Instant::now() < deadline && !open.is_empty() {
        open.retain_mut(|s| !closed_by_peer(s));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        open.is_empty(),
        "{} connections still open after the timeouts",
        open.len()
    );
    let after = http_get(port, "/ready");
    assert_eq!(after.0, 200);
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "x\n").unwrap();
    let config = with_server_keys(
        file_job_config(
            &receiver.url(),
            &dir.path().join("positions.yaml"),
            &log.display().to_string(),
            "",
            "      []",
        ),
        "  http_server_read_timeout: 1s\n  http_server_idle_timeout: 1s\n",
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &config), &[]);
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // Keep-alive: the connection stays for another request, but not for ever.
    let opened = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let waited = opened.elapsed();
    assert!(
        waited < Duration::from_secs(4),
        "idle keep-alive connection closed after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_get_and_takes_post() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "x\n").unwrap();
    let config = with_server_keys(
        file_job_config(
            &receiver.url(),
            &dir.path().join("positions.yaml"),
            &log.display().to_string(),
            "",
            "      []",
        ),
        "  enable_runtime_reload: true\n",
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &config), &[]);
    assert_eq!(
        agent.get("/reload").0,
        405,
        "a cross-site GET must not reload"
    );
    assert_eq!(agent.metric("promtail_config_reload_success_total"), 0.0);
    assert_eq!(agent.post("/reload").0, 200);
    assert_eq!(agent.metric("promtail_config_reload_success_total"), 1.0);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all made here.
struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
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
    let client = CertificateParams::new(vec!["client.test".to_string()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// GET `path` over TLS, trusting `ca_pem`, optionally with a client certificate. `Err` is
/// the handshake or I/O failure.
fn https_get(
    port: u16,
    path: &str,
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => Ok(String::from_utf8_lossy(&out).into_owned()),
        // Some servers close without close_notify; what arrived still counts.
        Err(_) if !out.is_empty() => Ok(String::from_utf8_lossy(&out).into_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn tls_config(dir: &Path, receiver: &Receiver, pki: &Pki, client_auth: &str) -> String {
    std::fs::write(dir.join("server.crt"), &pki.server_cert).unwrap();
    std::fs::write(dir.join("server.key"), &pki.server_key).unwrap();
    std::fs::write(dir.join("ca.crt"), &pki.ca_pem).unwrap();
    let log = dir.join("app.log");
    std::fs::write(&log, "x\n").unwrap();
    let client = if client_auth.is_empty() {
        String::new()
    } else {
        format!(
            "    client_auth_type: {client_auth}\n    client_ca_file: {}\n",
            dir.join("ca.crt").display()
        )
    };
    with_server_keys(
        file_job_config(
            &receiver.url(),
            &dir.join("positions.yaml"),
            &log.display().to_string(),
            "",
            "      []",
        ),
        &format!(
            "  http_tls_config:\n    cert_file: {}\n    key_file: {}\n{client}",
            dir.join("server.crt").display(),
            dir.join("server.key").display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_server_answers_over_tls_and_refuses_plain_http() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let config = tls_config(dir.path(), &receiver, &pki, "");
    let agent = AgentProcess::start(&write_config(dir.path(), &config), &[]);
    // Ready once its file is tailed, which follows the listener by a moment.
    let mut resp = String::new();
    let ready = crate::support::wait_until(Duration::from_secs(10), || {
        resp = https_get(agent.port, "/ready", &pki.ca_pem, None).unwrap_or_default();
        resp.starts_with("HTTP/1.1 200")
    });
    assert!(ready, "{resp}");
    assert!(resp.ends_with("Ready"), "{resp}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        !String::from_utf8_lossy(&out).contains("Ready"),
        "plain HTTP was served: {:?}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_server_requires_a_client_certificate_when_configured() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let config = tls_config(dir.path(), &receiver, &pki, "RequireAndVerifyClientCert");
    let agent = AgentProcess::start(&write_config(dir.path(), &config), &[]);
    let mut with = String::new();
    let ready = crate::support::wait_until(Duration::from_secs(10), || {
        with = https_get(
            agent.port,
            "/ready",
            &pki.ca_pem,
            Some((&pki.client_cert, &pki.client_key)),
        )
        .unwrap_or_default();
        with.starts_with("HTTP/1.1 200")
    });
    assert!(ready, "{with}");
    // Ready now, with a certificate; without one nothing is served.
    let without = https_get(agent.port, "/ready", &pki.ca_pem, None);
    assert!(
        without.as_ref().map_or(true, |r| !r.contains("Ready")),
        "served without a client certificate: {without:?}"
    );
}

#[test]
fn a_missing_certificate_file_stops_the_agent_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "x\n").unwrap();
    let missing = dir.path().join("no-such-cert.pem");
    let config = with_server_keys(
        file_job_config(
            "http://127.0.0.1:9/loki/api/v1/push",
            &dir.path().join("positions.yaml"),
            &log.display().to_string(),
            "",
            "      []",
        ),
        &format!(
            "  http_tls_config:\n    cert_file: {}\n    key_file: {}\n",
            missing.display(),
            dir.path().join("no-such-key.pem").display()
        ),
    );
    let path = write_config(dir.path(), &config);
    let out = std::process::Command::new(BIN)
        .arg(format!("-config.file={}", path.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("cert_file"),
        "{stderr}"
    );
}
