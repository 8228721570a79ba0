//! The `nginx_access` and `nginx_error` presets on what a real nginx (Debian package
//! `nginx`) writes for requests a hostile client sends: TLS bytes to a plain-HTTP port,
//! HTTP/0.9, spaces and lower-case methods, absolute URIs, CONNECT, quotes and UTF-8 in
//! headers, and request lines, paths and headers imitating the log's own structure
//! (`", host: "`, `, client: 6.6.6.6, server: `, `", upstream: "`). Whatever the client wrote,
//! the peer address read is nginx's (127.0.0.1), never one the client chose, and an error
//! record whose context the client imitated is marked ambiguous rather than misread.
//!
//! nginx runs in the foreground as a single process on a loopback port with everything in a
//! temp dir, as in `nginx_presets_with_real_nginx`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use serde_json::Value;
use tailward::metrics::Metrics;
use tailward::model::labels::LabelSet;
use tailward::pipeline::stages::StageConfig;
use tailward::pipeline::{
    BuildContext, PipelineEntry, build_stages, release_stages, run_stages, value_as_string,
};

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const JSON_FORMAT: &str = r#"{"remote_addr":"$remote_addr","request":"$request","status":$status,"ua":"$http_user_agent"}"#;

fn start_nginx(dir: &Path) -> (Killed, u16) {
    let port = free_port();
    // Nothing listens here: proxying to it fails, so nginx logs an upstream.
    let dead_port = free_port();
    let d = dir.display();
    let conf = format!(
        r#"pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    access_log {d}/access.log combined;
    log_format j escape=json '{JSON_FORMAT}';
    access_log {d}/access.json j;
    server {{
        listen 127.0.0.1:{port};
        server_name test.local;
        root {d}/www;
        location /up/ {{ proxy_pass http://127.0.0.1:{dead_port}; }}
    }}
}}
"#
    );
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "home\n").unwrap();
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.join("error.log"))
        .args(["-g", "daemon off; master_process off;"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx is installed by scripts/test (Debian package nginx)");
    let nginx = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (nginx, port)
}

/// What each request is, in the order sent (one access line each).
const REQUESTS: &[(&str, &[u8])] = &[
    ("tls", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x9a\x8f\xa7\x1f"),
    ("http09", b"GET /\r\n\r\n"),
    ("space", b"GET /a b.html HTTP/1.1\r\nHost: test.local\r\n\r\n"),
    ("lower", b"get / HTTP/1.1\r\nHost: test.local\r\n\r\n"),
    ("absolute", b"GET http://test.local/index.html HTTP/1.1\r\nHost: test.local\r\n\r\n"),
    ("connect", b"CONNECT test.local:443 HTTP/1.1\r\nHost: test.local\r\n\r\n"),
    (
        "headers",
        b"GET /index.html HTTP/1.1\r\nHost: test.local\r\nUser-Agent: say \"hi\" \\ \xd0\x9f\r\nReferer: x\", host: \"evil\r\n\r\n",
    ),
    ("request_host", b"GET /nope\", host: \"evil HTTP/1.1\r\nHost: test.local\r\n\r\n"),
    (
        "path_client",
        b"GET /missing%2C%20client%3A%206.6.6.6%2C%20server%3A%20x HTTP/1.1\r\nHost: test.local\r\n\r\n",
    ),
    (
        "referer_upstream",
        b"GET /up/x HTTP/1.1\r\nHost: test.local\r\nReferer: https://r/\", upstream: \"http://6.6.6.6/\r\n\r\n",
    ),
];

fn send(port: u16, bytes: &[u8]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(bytes).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
}

/// The entries `text`'s lines become through `stages_yaml`.
fn run(stages_yaml: &str, text: &str) -> Vec<PipelineEntry> {
    let value: Value = tailward::config::yaml::from_str(stages_yaml).unwrap();
    let configs: Vec<StageConfig> = serde_json::from_value(value).unwrap();
    let metrics = Arc::new(Metrics::new());
    let ctx = BuildContext::new("hostile", metrics.clone());
    let mut stages = build_stages("pipeline_stages", &configs, &ctx).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let read_time = DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").unwrap();
    let mut done = Vec::new();
    let mut consumed = Vec::new();
    runtime.block_on(async {
        for line in text.lines() {
            let entry = PipelineEntry::new(
                LabelSet::from_pairs([("job", "hostile")]),
                line.to_string(),
                read_time,
            );
            run_stages(&mut stages, 0, entry, &metrics, &mut done, &mut consumed).await;
        }
        release_stages(
            &mut stages,
            Instant::now(),
            true,
            &metrics,
            &mut done,
            &mut consumed,
        )
        .await;
    });
    done
}

fn fields(e: &PipelineEntry) -> BTreeMap<String, String> {
    e.extracted
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), value_as_string(v)?.into_owned())))
        .collect()
}

/// The log as the tailer reads it: bytes that are not UTF-8 as U+FFFD.
fn read_log(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

fn wait_for_lines(path: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_log(path).lines().count() < n {
        assert!(Instant::now() < deadline, "{} lines never came", n);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn client_text_never_decides_the_peer_and_imitated_context_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let (nginx, port) = start_nginx(dir.path());
    for (_, bytes) in REQUESTS {
        send(port, bytes);
    }
    wait_for_lines(&dir.path().join("access.log"), REQUESTS.len());
    wait_for_lines(&dir.path().join("access.json"), REQUESTS.len());
    drop(nginx);
    let access = read_log(&dir.path().join("access.log"));
    let got = run("- preset: nginx_access\n", &access);
    assert_eq!(got.len(), REQUESTS.len(), "{access}");
    let mut by_name = BTreeMap::new();
    for ((name, _), e) in REQUESTS.iter().zip(&got) {
        let f = fields(e);
        assert_eq!(
            f.get("remote_addr").map(String::as_str),
            Some("127.0.0.1"),
            "{name}: {f:?}"
        );
        assert!(f.contains_key("status"), "{name}: {f:?}");
        assert!(!f.contains_key("ambiguous"), "{name}: {f:?}");
        by_name.insert(*name, f);
    }
    let get = |name: &str, key: &str| by_name[name].get(key).cloned();
    assert_eq!(get("tls", "method"), None);
    assert_eq!(get("tls", "status").as_deref(), Some("400"));
    assert_eq!(get("http09", "method").as_deref(), Some("GET"));
    assert_eq!(get("http09", "protocol"), None);
    assert_eq!(get("space", "path").as_deref(), Some("/a b.html"));
    assert_eq!(get("lower", "method"), None);
    assert_eq!(get("absolute", "path").as_deref(), Some("/index.html"));
    assert_eq!(get("connect", "method").as_deref(), Some("CONNECT"));
    assert_eq!(get("connect", "path"), None);
    assert_eq!(
        get("headers", "http_user_agent").as_deref(),
        Some("say \"hi\" \\ \u{41f}")
    );
    assert_eq!(
        get("headers", "http_referer").as_deref(),
        Some("x\", host: \"evil")
    );
    assert_eq!(
        get("request_host", "request").as_deref(),
        Some("GET /nope\", host: \"evil HTTP/1.1")
    );

    // escape=json: the same fields, quotes escaped as \".
    let json = read_log(&dir.path().join("access.json"));
    let preset = format!(
        "- preset:\n    name: nginx_access\n    parameters:\n      log_format: {}\n      escape: json\n",
        serde_json::to_string(JSON_FORMAT).unwrap()
    );
    let got = run(&preset, &json);
    assert_eq!(got.len(), REQUESTS.len(), "{json}");
    for ((name, _), e) in REQUESTS.iter().zip(&got) {
        let f = fields(e);
        assert_eq!(
            f.get("remote_addr").map(String::as_str),
            Some("127.0.0.1"),
            "{name}: {f:?}"
        );
        assert!(!f.contains_key("ambiguous"), "{name}: {f:?}");
        if *name == "request_host" {
            assert_eq!(
                f.get("request").map(String::as_str),
                Some("GET /nope\", host: \"evil HTTP/1.1")
            );
        }
    }

    // The error log: a client address is always nginx's, an upstream never the client's.
    let error = read_log(&dir.path().join("error.log"));
    let got = run(
        "- preset:\n    name: nginx_error\n    parameters: {location: UTC}\n",
        &error,
    );
    let records: Vec<BTreeMap<String, String>> = got.iter().map(fields).collect();
    for f in &records {
        assert!(f.contains_key("level"), "not parsed: {f:?}");
        if let Some(client) = f.get("client") {
            assert_eq!(client, "127.0.0.1", "{f:?}");
        }
        assert!(
            !f.values().any(|v| v.contains("6.6.6.6"))
                || f.contains_key("ambiguous")
                || f.get("message").is_some_and(|m| m.contains("6.6.6.6")),
            "client text read as a field: {f:?}"
        );
        assert!(
            !f.get("upstream").is_some_and(|u| u.contains("6.6.6.6")),
            "{f:?}"
        );
    }
    let find = |needle: &str| {
        records
            .iter()
            .find(|f| f.get("message").is_some_and(|m| m.contains(needle)))
            .unwrap_or_else(|| panic!("no record with {needle:?} in:\n{error}"))
    };
    let path_client = find("open() ");
    assert_eq!(
        path_client.get("ambiguous").map(String::as_str),
        Some("true")
    );
    assert_eq!(path_client.get("client"), None);
    let upstream = find("to upstream");
    assert_eq!(upstream.get("ambiguous").map(String::as_str), Some("true"));
    assert_eq!(
        upstream.get("client").map(String::as_str),
        Some("127.0.0.1")
    );
    assert_eq!(upstream.get("upstream"), None);
    let tls = find("client sent invalid method");
    assert!(tls.contains_key("request"), "{tls:?}");
    assert_eq!(tls.get("method"), None);
}
