//! The syslog source receives what real senders send: util-linux `logger` over TCP (newline
//! and octet-counted framing) and UDP, RFC 5424 and RFC 3164, and rsyslog forwarding with
//! `omfwd` (octet-counted RFC 5424 over TCP) as Promtail documents it. Every message arrives
//! once, labelled from the relabeled `__syslog_*` meta labels. Garbage, an oversized frame
//! and a connection left half-open are counted and close only their own connection; a
//! reload re-binds a changed listener; shutdown ships what was received.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::receiver::{ReceivedEntry, Receiver};
use crate::support::{eventually, watch_for_stragglers};

/// A port nothing listens on now (the test binds it next).
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const RELABEL: &str = r#"
    relabel_configs:
      - {source_labels: [__syslog_message_app_name], target_label: app}
      - {source_labels: [__syslog_message_severity], target_label: level}
      - {source_labels: [__syslog_message_facility], target_label: facility}
      - {source_labels: [__syslog_message_hostname], target_label: host}
      - {source_labels: [__syslog_message_msg_id], target_label: msgid}
      - {source_labels: [__syslog_message_sd_test_32473_k], target_label: sd_k}
      - {source_labels: [__syslog_connection_ip_address], target_label: ip}
      - {source_labels: [__syslog_connection_hostname], target_label: conn_host}
"#;

/// A job `name` listening on `port` with `protocol` and `format`.
fn job(name: &str, protocol: &str, port: u16, format: &str, extra: &str) -> String {
    format!(
        r#"  - job_name: {name}
    syslog:
      listen_address: 127.0.0.1:{port}
      listen_protocol: {protocol}
      syslog_format: {format}
      label_structured_data: true
      idle_timeout: 2s
      labels: {{job: {name}}}
{extra}{RELABEL}"#
    )
}

fn config(dir: &Path, url: &str, jobs: &[String]) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 10s
positions:
  filename: {positions}
clients:
  - url: {url}
    batchwait: 100ms
scrape_configs:
{jobs}"#,
            positions = dir.join("positions.yaml").display(),
            jobs = jobs.join("")
        ),
    )
}

/// Waits until `n` syslog listeners are bound (they start after the HTTP server).
fn wait_listening(agent: &AgentProcess, n: usize) {
    let bound = agent.wait_until(Duration::from_secs(20), |a| {
        a.stderr_text().matches("syslog listening").count() >= n
    });
    assert!(bound, "{}", agent.stderr_text());
}

fn logger(args: &[&str]) {
    let out = Command::new("logger")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("util-linux logger must be installed (Debian bsdutils): {e}"));
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn by_line(entries: &[ReceivedEntry]) -> BTreeMap<String, Vec<&ReceivedEntry>> {
    let mut m: BTreeMap<String, Vec<&ReceivedEntry>> = BTreeMap::new();
    for e in entries {
        m.entry(e.line.clone()).or_default().push(e);
    }
    m
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the resolver names 127.0.0.1 (getent: hosts file, then DNS), with the trailing
/// dot Go's net.LookupAddr gives Promtail.
fn loopback_name() -> String {
    let out = Command::new("getent")
        .args(["hosts", "127.0.0.1"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let name = text
        .split_whitespace()
        .nth(1)
        .expect("127.0.0.1 has a name");
    format!("{name}.")
}

fn hostname() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn logger_over_tcp_and_udp_in_both_formats_and_framings() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (tcp5424, udp5424, tcp3164, udp3164) = (
        free_tcp_port(),
        free_udp_port(),
        free_tcp_port(),
        free_udp_port(),
    );
    let cfg = config(
        dir.path(),
        &receiver.url(),
        &[
            job("tcp5424", "tcp", tcp5424, "rfc5424", ""),
            job("udp5424", "udp", udp5424, "rfc5424", ""),
            job("tcp3164", "tcp", tcp3164, "rfc3164", ""),
            job("udp3164", "udp", udp3164, "rfc3164", ""),
        ],
    );
    let agent = AgentProcess::start(&cfg, &[]);
    wait_listening(&agent, 4);
    let (p1, p2, p3, p4) = (
        tcp5424.to_string(),
        udp5424.to_string(),
        tcp3164.to_string(),
        udp3164.to_string(),
    );
    let common = |port: &str, transport: &str| -> Vec<String> {
        ["--server", "127.0.0.1", "--port", port, transport]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let sd = ["--sd-id", "test@32473", "--sd-param", "k=\"v\""];
    let mut sends: Vec<Vec<String>> = Vec::new();
    for (i, (port, transport, format, octets)) in [
        (&p1, "--tcp", "--rfc5424", false),
        (&p1, "--tcp", "--rfc5424", true),
        (&p2, "--udp", "--rfc5424", false),
        (&p2, "--udp", "--rfc5424", true),
        (&p3, "--tcp", "--rfc3164", false),
        (&p3, "--tcp", "--rfc3164", true),
        (&p4, "--udp", "--rfc3164", false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut args = common(port, transport);
        args.push(format.into());
        if octets {
            args.push("--octet-count".into());
        }
        args.extend(["-t", "app", "-p", "local4.notice"].map(String::from));
        if format == "--rfc5424" {
            args.extend(["--msgid", "ID47"].map(String::from));
            args.extend(sd.map(String::from));
        }
        args.push(format!("message {i} {transport} {format} octets={octets}"));
        sends.push(args);
    }
    for args in &sends {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        logger(&args);
    }
    receiver
        .wait_for_entries(sends.len(), Duration::from_secs(20))
        .await;
    watch_for_stragglers(Duration::from_millis(500)).await;
    let entries = receiver.received();
    let lines = by_line(&entries);
    assert_eq!(lines.len(), sends.len(), "{:#?}", entries);
    let host = hostname();
    let conn_host = loopback_name();
    for (i, args) in sends.iter().enumerate() {
        let line = args.last().unwrap();
        let got = lines
            .get(line)
            .unwrap_or_else(|| panic!("{line:?} missing: {entries:#?}"));
        assert_eq!(got.len(), 1, "{line:?} arrived {} times", got.len());
        let job = match (
            args.contains(&"--tcp".to_string()),
            args.contains(&"--rfc5424".to_string()),
        ) {
            (true, true) => "tcp5424",
            (false, true) => "udp5424",
            (true, false) => "tcp3164",
            (false, false) => "udp3164",
        };
        let mut want = vec![
            ("job", job),
            ("app", "app"),
            ("level", "notice"),
            ("facility", "local4"),
            ("host", host.as_str()),
            ("ip", "127.0.0.1"),
            ("conn_host", conn_host.as_str()),
        ];
        if job.ends_with("5424") {
            want.extend([("msgid", "ID47"), ("sd_k", "v")]);
        }
        assert_eq!(got[0].labels, labels(&want), "message {i}: {line}");
    }
    assert_eq!(
        agent.metric("promtail_syslog_target_entries_total"),
        sends.len() as f64
    );
    assert_eq!(
        agent.metric("promtail_syslog_target_parsing_errors_total"),
        0.0
    );
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}

/// rsyslog in the foreground, from a config in `dir`.
struct Rsyslog(Child);

impl Rsyslog {
    fn start(dir: &Path, conf: &str) -> Rsyslog {
        let path = dir.join("rsyslog.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&path)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("rsyslogd must be installed (Debian rsyslog): {e}"));
        Rsyslog(child)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_forwards_octet_counted_rfc5424_over_tcp() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (listen, rsyslog_in) = (free_tcp_port(), free_udp_port());
    let cfg = config(
        dir.path(),
        &receiver.url(),
        &[job("rsyslog", "tcp", listen, "rfc5424", "")],
    );
    let agent = AgentProcess::start(&cfg, &[]);
    wait_listening(&agent, 1);
    let work = dir.path().join("rsyslog-work");
    std::fs::create_dir(&work).unwrap();
    let _rsyslog = Rsyslog::start(
        dir.path(),
        &format!(
            r#"global(workDirectory="{work}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{rsyslog_in}")
action(type="omfwd" target="127.0.0.1" port="{listen}" protocol="tcp"
       TCP_Framing="octet-counted" Template="RSYSLOG_SyslogProtocol23Format")
"#,
            work = work.display()
        ),
    );
    // rsyslog's UDP input is ready some time after start; send until the first arrives.
    let port = rsyslog_in.to_string();
    let first = eventually(Duration::from_secs(20), || {
        logger(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--udp",
            "--rfc3164",
            "-t",
            "probe",
            "-p",
            "daemon.warning",
            "probe",
        ]);
        std::thread::sleep(Duration::from_millis(200));
        !receiver.received().is_empty()
    })
    .await;
    assert!(
        first,
        "nothing came through rsyslog:\n{}",
        agent.stderr_text()
    );
    let n = 50;
    for i in 0..n {
        logger(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--udp",
            "--rfc3164",
            "-t",
            "worker",
            "-p",
            "daemon.warning",
            &format!("forwarded {i}"),
        ]);
    }
    // rsyslog's %msg% keeps the space that followed `TAG:` in the RFC 3164 message it
    // received; MSG is shipped verbatim, as Promtail ships it.
    let want = |e: &ReceivedEntry| e.line.starts_with(" forwarded ");
    let ok = eventually(Duration::from_secs(20), || {
        receiver.received().iter().filter(|e| want(e)).count() >= n
    })
    .await;
    watch_for_stragglers(Duration::from_millis(500)).await;
    let entries = receiver.received();
    let forwarded: Vec<&ReceivedEntry> = entries.iter().filter(|e| want(e)).collect();
    assert!(
        ok,
        "{} of {n} arrived: {:?}",
        forwarded.len(),
        entries.iter().map(|e| &e.line).take(5).collect::<Vec<_>>()
    );
    let lines = by_line(&entries);
    for i in 0..n {
        let got = &lines[&format!(" forwarded {i}")];
        assert_eq!(got.len(), 1, "forwarded {i} arrived {} times", got.len());
        assert_eq!(got[0].labels.get("app").map(String::as_str), Some("worker"));
        assert_eq!(
            got[0].labels.get("level").map(String::as_str),
            Some("warning")
        );
        assert_eq!(
            got[0].labels.get("facility").map(String::as_str),
            Some("daemon")
        );
    }
    assert_eq!(
        agent.metric("promtail_syslog_target_parsing_errors_total"),
        0.0
    );
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_oversized_and_half_open_connections_do_not_stop_the_others() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let cfg = config(
        dir.path(),
        &receiver.url(),
        &[job(
            "tcp",
            "tcp",
            port,
            "rfc5424",
            "      max_message_length: 200\n",
        )],
    );
    let agent = AgentProcess::start(&cfg, &[]);
    wait_listening(&agent, 1);
    let addr = format!("127.0.0.1:{port}");
    // Bytes that name no framing: that connection is closed and counted.
    let mut garbage = TcpStream::connect(&addr).unwrap();
    garbage
        .write_all(b"\x00\xffGET / HTTP/1.1\r\n\r\n")
        .unwrap();
    // Half-open: a message without its newline, then silence; shipped when idle_timeout
    // (2s) closes the connection.
    let mut half_open = TcpStream::connect(&addr).unwrap();
    half_open
        .write_all(b"<14>1 - - halfopen - - - waited for the idle timeout")
        .unwrap();
    // A truncated octet-counted frame that never completes.
    let mut truncated = TcpStream::connect(&addr).unwrap();
    truncated
        .write_all(b"150 <14>1 - - cut - - - never")
        .unwrap();
    // An oversized frame (skipped, counted), then a good one on the same connection; a
    // header that breaks off (shipped whole, counted) on another.
    let mut oversized = TcpStream::connect(&addr).unwrap();
    let big = format!("<14>1 - - big - - - {}", "x".repeat(300));
    let after = "<14>1 - - after - - - after the oversized frame";
    oversized
        .write_all(format!("{} {big}{} {after}", big.len(), after.len()).as_bytes())
        .unwrap();
    let mut broken = TcpStream::connect(&addr).unwrap();
    broken
        .write_all(b"<14>1 yesterday host app - - - broken header\n")
        .unwrap();
    drop(broken);
    let p = port.to_string();
    logger(&[
        "--server",
        "127.0.0.1",
        "--port",
        &p,
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "-t",
        "good",
        "still delivered",
    ]);
    receiver.wait_for_entries(4, Duration::from_secs(20)).await;
    watch_for_stragglers(Duration::from_millis(500)).await;
    let entries = receiver.received();
    let lines: Vec<&str> = {
        let mut l: Vec<&str> = entries.iter().map(|e| e.line.as_str()).collect();
        l.sort();
        l
    };
    assert_eq!(
        lines,
        [
            "<14>1 yesterday host app - - - broken header",
            "after the oversized frame",
            "still delivered",
            "waited for the idle timeout",
        ],
        "{entries:#?}"
    );
    // The garbage connection, the oversized frame, the broken header and, once idle_timeout
    // closed it, the frame that never completed.
    let counted = agent.wait_until(Duration::from_secs(20), |a| {
        a.metric("promtail_syslog_target_parsing_errors_total") >= 4.0
    });
    assert!(counted, "{}", agent.stderr_text());
    assert_eq!(
        agent.metric("promtail_syslog_target_parsing_errors_total"),
        4.0
    );
    assert_eq!(
        agent.metric("tailward_source_dropped_total{reason=\"too_long\",source=\"syslog\"}"),
        1.0
    );
    let mut buf = [0u8; 1];
    use std::io::Read;
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        garbage.read(&mut buf).unwrap_or(0),
        0,
        "garbage connection closed"
    );
    drop((half_open, truncated, oversized));
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_rebinds_a_changed_listener_and_shutdown_ships_what_was_received() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = (free_tcp_port(), free_tcp_port());
    let cfg = config(
        dir.path(),
        &receiver.url(),
        &[job("tcp", "tcp", before, "rfc5424", "")],
    );
    let agent = AgentProcess::start(&cfg, &[]);
    wait_listening(&agent, 1);
    let send = |port: u16, text: &str| {
        logger(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-t",
            "app",
            text,
        ]);
    };
    send(before, "before reload");
    receiver.wait_for_entries(1, Duration::from_secs(20)).await;
    config(
        dir.path(),
        &receiver.url(),
        &[job("tcp", "tcp", after, "rfc5424", "")],
    );
    agent.signal(libc::SIGHUP);
    let rebound = eventually(Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", after)).is_ok()
    })
    .await;
    assert!(rebound, "{}", agent.stderr_text());
    assert!(
        TcpStream::connect(("127.0.0.1", before)).is_err(),
        "the old listener is closed"
    );
    // Many messages on one connection, then SIGTERM as soon as the first arrived: what the
    // sender delivered before the agent stopped is shipped.
    let mut stream = TcpStream::connect(("127.0.0.1", after)).unwrap();
    let n = 500;
    for i in 0..n {
        let m = format!("<14>1 - - app - - - after reload {i}");
        write!(stream, "{} {m}", m.len()).unwrap();
    }
    stream.flush().unwrap();
    drop(stream);
    let started = eventually(Duration::from_secs(20), || {
        receiver
            .received()
            .iter()
            .any(|e| e.line.starts_with("after reload"))
    })
    .await;
    assert!(started, "{}", agent.stderr_text());
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
    let entries = receiver.received();
    let lines = by_line(&entries);
    assert_eq!(lines["before reload"].len(), 1);
    for i in 0..n {
        let got = lines.get(&format!("after reload {i}")).map(Vec::len);
        assert_eq!(got, Some(1), "after reload {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_max_connections_are_refused_and_counted() {
    use std::io::Read;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let cfg = config(
        dir.path(),
        &receiver.url(),
        &[job(
            "tcp",
            "tcp",
            port,
            "rfc5424",
            "      max_connections: 3\n",
        )],
    );
    let agent = AgentProcess::start(&cfg, &[]);
    wait_listening(&agent, 1);
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    // Each held connection has sent a message, so all three were accepted.
    for (i, s) in held.iter_mut().enumerate() {
        let m = format!("<14>1 - - app - - - held {i}");
        write!(s, "{} {m}", m.len()).unwrap();
    }
    receiver.wait_for_entries(3, Duration::from_secs(20)).await;
    let mut refused = TcpStream::connect(("127.0.0.1", port)).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(refused.read(&mut buf).unwrap_or(0), 0, "closed at once");
    let counted = agent.wait_until(Duration::from_secs(10), |a| {
        a.metric("tailward_syslog_refused_connections_total") == 1.0
    });
    assert!(counted, "{}", agent.stderr_text());
    // A place frees up when a connection ends.
    drop(held.pop());
    let p = port.to_string();
    let delivered = eventually(Duration::from_secs(20), || {
        let _ = Command::new("logger")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &p,
                "--tcp",
                "--octet-count",
                "--rfc5424",
                "-t",
                "app",
                "after a place freed",
            ])
            .output();
        std::thread::sleep(Duration::from_millis(200));
        receiver
            .received()
            .iter()
            .any(|e| e.line == "after a place freed")
    })
    .await;
    assert!(delivered, "{}", agent.stderr_text());
    drop(held);
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}

/// A CA, a server certificate and a client certificate, all made here, written to `dir`.
fn write_pki(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let pair = |name: &str, san: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![san.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    };
    pair("server", "localhost");
    pair("client", "client.test");
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_forwards_over_tls_with_a_client_certificate() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_pki(d);
    let (listen, rsyslog_in) = (free_tcp_port(), free_udp_port());
    let tls = format!(
        "      tls_config:\n        cert_file: {}\n        key_file: {}\n        ca_file: {}\n",
        d.join("server.pem").display(),
        d.join("server-key.pem").display(),
        d.join("ca.pem").display()
    );
    let cfg = config(
        d,
        &receiver.url(),
        &[job("tls", "tcp", listen, "rfc5424", &tls)],
    );
    let agent = AgentProcess::start(&cfg, &[]);
    wait_listening(&agent, 1);
    // Plain TCP to the TLS listener gets nothing through.
    let mut plain = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    let m = "<14>1 - - app - - - sent in the clear";
    // The agent may close it at once (no TLS record), so the write may fail.
    let _ = write!(plain, "{} {m}", m.len());
    drop(plain);
    let work = d.join("rsyslog-work");
    std::fs::create_dir(&work).unwrap();
    let has_gtls = Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
        || Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").exists();
    assert!(
        has_gtls,
        "rsyslog's TLS driver must be installed (Debian rsyslog-gnutls)"
    );
    let _rsyslog = Rsyslog::start(
        d,
        &format!(
            r#"global(workDirectory="{work}"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{rsyslog_in}")
action(type="omfwd" target="127.0.0.1" port="{listen}" protocol="tcp"
       StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/certvalid"
       TCP_Framing="octet-counted" Template="RSYSLOG_SyslogProtocol23Format")
"#,
            work = work.display(),
            ca = d.join("ca.pem").display(),
            cert = d.join("client.pem").display(),
            key = d.join("client-key.pem").display(),
        ),
    );
    let port = rsyslog_in.to_string();
    let arrived = eventually(Duration::from_secs(30), || {
        logger(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--udp",
            "--rfc3164",
            "-t",
            "tls",
            "over tls",
        ]);
        std::thread::sleep(Duration::from_millis(300));
        receiver.received().iter().any(|e| e.line == " over tls")
    })
    .await;
    assert!(
        arrived,
        "nothing came through rsyslog over TLS:\n{}",
        agent.stderr_text()
    );
    // A TLS client without a certificate is refused; the same client with one gets through.
    let send_tls = |with_cert: bool, text: &str| {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let read = |f: &str| std::fs::read(d.join(f)).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&read("ca.pem")) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = if with_cert {
            builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(&read("client.pem"))
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_slice(&read("client-key.pem")).unwrap(),
                )
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let mut sock = TcpStream::connect(("127.0.0.1", listen)).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let m = format!("<14>1 - - app - - - {text}");
        // Refused, the handshake or the write fails; either way nothing may arrive.
        let _ = write!(tls, "{} {m}", m.len()).and_then(|()| tls.flush());
        conn.send_close_notify();
        let _ = conn.write_tls(&mut sock);
        // Read until the server closes: a socket closed with the server's handshake messages
        // unread is reset, and a reset can discard the frame before the server reads it.
        let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
        let mut sink = [0u8; 4096];
        while matches!(std::io::Read::read(&mut sock, &mut sink), Ok(n) if n > 0) {}
    };
    send_tls(false, "without a client certificate");
    send_tls(true, "with a client certificate");
    receiver.wait_for_entries(2, Duration::from_secs(20)).await;
    watch_for_stragglers(Duration::from_millis(500)).await;
    let entries = receiver.received();
    let lines: Vec<&str> = entries.iter().map(|e| e.line.as_str()).collect();
    assert!(lines.contains(&"with a client certificate"), "{lines:?}");
    assert!(
        !lines.contains(&"without a client certificate") && !lines.contains(&"sent in the clear"),
        "{lines:?}"
    );
    assert_eq!(
        entries[0].labels.get("app").map(String::as_str),
        Some("tls")
    );
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}
