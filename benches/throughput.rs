//! Throughput benchmark: ships a generated log (64 MiB by default) of one of four kinds
//! through the pipeline Promtail's published figures used for that kind, into a local
//! endpoint that answers 204, and prints MiB of log per CPU-second of the agent, wall
//! throughput and the agent's peak RSS.
//!
//! Two wall figures: `MiB/s` runs from the agent's start to the last entry accepted, so it
//! includes the final `batchwait` (1 s by default), which the last, partly filled batch waits
//! out as Promtail's would; `shipping` is the rate up to the last push sent because its batch
//! was full, which is what a longer file sustains.
//!
//! Kinds (Promtail 2.7.5 reference, MiB per CPU-second): `raw` (no stages; 37.9), `json`
//! (json extracting timestamp, level, message, logger + labels level, logger + timestamp;
//! 16.0), `nginx` (one regex with named groups + labels method, status + timestamp from
//! time_local; 9.4), `auth` (syslog header regex + a second regex on the message + labels
//! program, outcome; 8.9).
//!
//! `files1000` and `reference` are the whole-agent modes of throughput/modes.rs.
//!
//! `json+wal` is `json` through the client's disk buffer (`wal: {enabled: true}`, fsync
//! periodic, the default).
//!
//! `push` is the `raw` lines pushed to a `loki_push_api` job by loopback senders instead of
//! read from a file (see `push_sender`); `kLines/CPU-s` compares it with `raw` per entry.
//! `syslog` and `gelf` (network sources, no stages, beside `raw`, the same generated lines
//! from a file): a loopback sender writes each line as an octet-counted RFC 5424 message
//! over one TCP connection, or as an uncompressed GELF datagram (with at most
//! [`GELF_WINDOW`] messages not yet received by the agent, since UDP has no back-pressure);
//! they print entries per CPU-second beside the MiB figures.
//!
//! Run: `cargo bench --bench throughput -- [KIND|all] [MiB]` (default: all, 64).
//!
//! Input: `real` (lines derived from the real samples in ../shared/data, see real_lines.rs)
//! or `generated` (this file's generator); both by default, real first.
//!
//! Run: `cargo bench --bench throughput -- [KIND|all] [real|generated] [MiB]` (default: all,
//! both, 64). `TAILWARD_BENCH_BIN` runs another build of the binary (a before/after pair in
//! one run); `TAILWARD_BENCH_WRAP` runs it under a command such as
//! `valgrind --tool=callgrind`, ended by SIGTERM so the tool writes its counts.
//! It measures the real binary as a user runs it: same config path, default batch settings,
//! acknowledgement-based positions on. Completion is read from the agent's own
//! `promtail_sent_entries_total`, so the sink does no decoding work of its own.

mod agent_process;
#[path = "throughput/modes.rs"]
mod modes;
mod push_sender;
#[path = "throughput/real_lines.rs"]
mod real_lines;
#[path = "throughput/summary.rs"]
mod summary;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_tailward");

/// The binary measured: `TAILWARD_BENCH_BIN` (another build, for a before/after pair in one
/// sitting) or this build's.
pub(crate) fn bench_bin() -> String {
    std::env::var("TAILWARD_BENCH_BIN").unwrap_or_else(|_| BIN.to_owned())
}

const KINDS: &[&str] = &[
    "raw", "json", "json+wal", "nginx", "auth", "push", "syslog", "gelf",
];
const INPUTS: &[&str] = &["real", "generated"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(64);
    let kinds: Vec<&str> = match args.iter().find(|a| KINDS.contains(&a.as_str())) {
        Some(k) => vec![k.as_str()],
        None => KINDS.to_vec(),
    };
    let bin = bench_bin();
    let number = |default: usize| args.iter().find_map(|a| a.parse().ok()).unwrap_or(default);
    let inputs: Vec<&str> = match args.iter().find(|a| INPUTS.contains(&a.as_str())) {
        Some(i) => vec![i.as_str()],
        None => INPUTS.to_vec(),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind sink");
    let sink_addr = listener.local_addr().expect("sink addr");
    // Arrival time and body size of every push, for the shipping rate.
    let pushes: Pushes = Arc::default();
    let recorded = pushes.clone();
    runtime.spawn(async move {
        let app = Router::new().route(
            "/loki/api/v1/push",
            post(move |body: axum::body::Bytes| {
                recorded
                    .lock()
                    .expect("pushes")
                    .push((Instant::now(), body.len()));
                async { StatusCode::NO_CONTENT }
            }),
        );
        let _ = axum::serve(listener, app).await;
    });

    // `all` (or no kind named) runs every kind on both inputs, then every whole-agent mode,
    // and closes with one summary table of all the figures.
    let every_mode = !args.iter().any(|a| KINDS.contains(&a.as_str()));
    if args.iter().any(|a| a == "files1000") {
        modes::files1000(&bin, sink_addr, number(30) as u64, stages("nginx"));
        return;
    }
    if args.iter().any(|a| a == "sources") {
        modes::sources(&bin, sink_addr, number(64), stages("nginx"));
        return;
    }
    if args.iter().any(|a| a == "reference") {
        modes::reference(&bin, sink_addr, number(16));
        return;
    }
    println!(
        "machine: {} CPUs; protobuf+snappy, batchsize 1 MiB, batchwait 1s, ack positions on",
        cpus()
    );
    println!(
        "{:<9} {:<8} {:>8} {:>6} {:>6} {:>9} {:>10} {:>7} {:>6} {:>8} {:>7}",
        "input",
        "kind",
        "lines",
        "MiB",
        "wall s",
        "MiB/CPU-s",
        "lines/CPU-s",
        "us/line",
        "MiB/s",
        "shipping",
        "RSS MiB"
    );
    println!(
        "(wall s and MiB/s: start to the last entry, including the final batchwait; shipping: \
         MiB/s up to the last full batch)"
    );
    for input in inputs {
        for &kind in &kinds {
            let dir = tempfile::tempdir().expect("temp dir");
            let (data, wal) = match kind.strip_suffix("+wal") {
                Some(data) => (data, true),
                None if kind == "push" => ("raw", false),
                None => (kind, false),
            };
            // The network sources' senders make their own lines (the generator's raw ones).
            if NETWORK_KINDS.contains(&kind) {
                if input == "generated" {
                    network_kind(kind, dir.path(), mib, sink_addr);
                }
                continue;
            }
            let log = dir.path().join(format!("{data}.log"));
            let (lines, bytes) = if input == "real" {
                let corpus = match real_lines::load(static_kind(data)) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("{e}");
                        std::process::exit(2);
                    }
                };
                let made = corpus.generate(&log, mib * 1024 * 1024);
                if !wal {
                    corpus.print_check(&log);
                }
                made
            } else {
                generate(data, &log, mib * 1024 * 1024)
            };
            pushes.lock().expect("pushes").clear();
            let run = if kind == "push" {
                push_sender::ship(dir.path(), &log, sink_addr, lines, &pushes)
            } else {
                ship(dir.path(), &log, data, wal, sink_addr, lines, &pushes)
            };
            let mib_f = bytes as f64 / (1024.0 * 1024.0);
            let (shipped_at, shipped_share) = run.shipping;
            println!(
                "{input:<9} {kind:<8} {lines:>8} {mib_f:>6.1} {:>6.2} {:>9.1} {:>10.0} {:>7.3} {:>6.1} {:>8.1} {:>7.1}",
                run.wall.as_secs_f64(),
                mib_f / run.cpu_seconds,
                lines as f64 / run.cpu_seconds,
                run.cpu_seconds * 1e6 / lines as f64,
                mib_f / run.wall.as_secs_f64(),
                mib_f * shipped_share / shipped_at.as_secs_f64(),
                run.peak_rss_kib as f64 / 1024.0
            );
            summary::record(
                kind,
                input,
                lines as f64,
                mib_f,
                run.cpu_seconds,
                run.peak_rss_kib as f64 / 1024.0,
            );
        }
    }
    if every_mode {
        println!();
        modes::files1000(&bin, sink_addr, 30, stages("nginx"));
        println!();
        modes::reference(&bin, sink_addr, 16);
        println!();
        modes::sources(&bin, sink_addr, mib, stages("nginx"));
        summary::print();
    }
}

fn static_kind(kind: &str) -> &'static str {
    match kind {
        "json" => "json",
        "nginx" => "nginx",
        "auth" => "auth",
        _ => "raw",
    }
}

pub(crate) struct Run {
    /// From start until the last entry was accepted (including the final batchwait).
    pub(crate) wall: Duration,
    /// When the last full batch was accepted, and the share of the lines sent by then.
    pub(crate) shipping: (Duration, f64),
    pub(crate) cpu_seconds: f64,
    pub(crate) peak_rss_kib: u64,
}

/// Promtail's benchmark pipeline for `kind`, as `pipeline_stages` YAML lines.
fn stages(kind: &str) -> &'static str {
    match kind {
        "raw" => "[]",
        "json" => {
            r#"
      - json:
          expressions: {timestamp: timestamp, level: level, message: message, logger: logger}
      - labels: {level: "", logger: ""}
      - timestamp: {source: timestamp, format: RFC3339Nano}"#
        }
        "nginx" => {
            r#"
      - regex:
          expression: '^(?P<remote_addr>\S+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>[^"]+)" (?P<status>\d{3}) (?P<body_bytes_sent>\d+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)"'
      - labels: {method: "", status: ""}
      - timestamp: {source: time_local, format: '02/Jan/2006:15:04:05 -0700'}"#
        }
        "auth" => {
            r#"
      - regex:
          expression: '^(?P<time>\w{3} [ \d]\d \d{2}:\d{2}:\d{2}) (?P<host>\S+) (?P<program>[\w./-]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$'
      - regex:
          source: msg
          expression: '^(?P<outcome>Accepted|Failed|Invalid user|Disconnected|pam_unix)'
      - labels: {program: "", outcome: ""}"#
        }
        other => panic!("unknown kind {other}"),
    }
}

pub(crate) type Pushes = Arc<Mutex<Vec<(Instant, usize)>>>;

fn ship(
    dir: &Path,
    log: &Path,
    kind: &str,
    wal: bool,
    sink: SocketAddr,
    lines: usize,
    pushes: &Pushes,
) -> Run {
    let wal_block = if wal {
        format!("    wal: {{enabled: true, dir: {}/wal}}\n", dir.display())
    } else {
        String::new()
    };
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {dir}/positions.yaml}}
clients:
  - url: http://{sink}/loki/api/v1/push
{wal_block}scrape_configs:
  - job_name: {kind}
    static_configs:
      - labels: {{job: {kind}, __path__: {log}}}
    pipeline_stages: {stages}
"#,
            dir = dir.display(),
            log = log.display(),
            stages = stages(kind),
        ),
    )
    .expect("write config");

    let started = Instant::now();
    let (mut child, pid, port) = agent_process::start_agent(&bench_bin(), &config);
    loop {
        let sent = sent_entries(port);
        if sent >= lines as f64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            panic!("only {sent} of {lines} entries sent after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let wall = started.elapsed();
    // The last push is the open batch that waited out batchwait once the file was read; the
    // shipping rate runs to the push before it, the last one sent because its batch was full.
    // Its share of the log is its share of the body bytes (the compression ratio is even).
    let shipping = {
        let pushes = pushes.lock().expect("pushes");
        let total: usize = pushes.iter().map(|&(_, len)| len).sum();
        match pushes.len() {
            n if n >= 3 => {
                let before_last: usize = pushes[..n - 1].iter().map(|&(_, len)| len).sum();
                (
                    pushes[n - 2].0.duration_since(started),
                    before_last as f64 / total as f64,
                )
            }
            _ => (wall, 1.0),
        }
    };
    let run = Run {
        wall,
        shipping,
        cpu_seconds: agent_process::cpu_seconds(pid),
        peak_rss_kib: agent_process::status_kib(pid, "VmHWM"),
    };
    if std::env::var("TAILWARD_BENCH_WRAP")
        .unwrap_or_default()
        .is_empty()
    {
        let _ = child.kill();
    } else {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let _ = child.wait();
    run
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Writes `target` bytes of `kind` lines; returns (lines, bytes).
fn generate(kind: &str, path: &Path, target: usize) -> (usize, usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create log"));
    let (mut lines, mut bytes) = (0usize, 0usize);
    let mut rng = XorShift(0x9e3779b97f4a7c15);
    let mut line = String::new();
    while bytes < target {
        line.clear();
        match kind {
            "raw" => raw_line(&mut line, lines, &mut rng),
            "json" => json_line(&mut line, lines, &mut rng),
            "nginx" => nginx_line(&mut line, lines, &mut rng),
            "auth" => auth_line(&mut line, lines, &mut rng),
            other => panic!("unknown kind {other}"),
        }
        out.write_all(line.as_bytes()).expect("write log");
        lines += 1;
        bytes += line.len();
    }
    out.flush().expect("flush log");
    (lines, bytes)
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn clock(i: usize) -> (usize, usize, usize) {
    let secs = 36_000 + i / 100;
    ((secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

fn raw_line(line: &mut String, i: usize, rng: &mut XorShift) {
    use std::fmt::Write as _;
    let (h, m, s) = clock(i);
    let words = [
        "worker",
        "queue",
        "flushed",
        "connection",
        "retry",
        "cache",
        "miss",
        "ok",
    ];
    let _ = write!(
        line,
        "2026-11-27 {h:02}:{m:02}:{s:02} pid={} ",
        4000 + i % 16
    );
    for _ in 0..8 + rng.next() % 10 {
        line.push_str(rng.pick(&words));
        line.push(' ');
    }
    let _ = writeln!(line, "n={}", rng.next() % 100_000);
}

fn json_line(line: &mut String, i: usize, rng: &mut XorShift) {
    use std::fmt::Write as _;
    let levels = ["INFO", "DEBUG", "WARNING", "ERROR", "INFO", "INFO"];
    let loggers = ["app.routes", "app.db", "app.auth", "werkzeug"];
    let messages = [
        "Request started GET /api/orders",
        "SELECT id, total FROM orders WHERE user_id = ? LIMIT 50",
        "User login succeeded",
        "Request finished 200 in 23ms",
    ];
    let (h, m, s) = clock(i);
    let state = rng.next();
    let _ = writeln!(
        line,
        "{{\"timestamp\": \"2026-11-27T{h:02}:{m:02}:{s:02}.{:06}+00:00\", \"level\": \"{}\", \"logger\": \"{}\", \"message\": \"{}\", \"module\": \"routes\", \"function\": \"index\", \"line\": {}, \"thread\": 140245, \"process\": 4121, \"correlation_id\": \"req-{state:016x}\", \"extra_user_id\": {}}}",
        (i % 100) * 10_000,
        levels[i % levels.len()],
        loggers[i % loggers.len()],
        messages[i % messages.len()],
        40 + i % 200,
        state % 10_000
    );
}

fn nginx_line(line: &mut String, i: usize, rng: &mut XorShift) {
    use std::fmt::Write as _;
    let methods = ["GET", "GET", "GET", "POST", "PUT", "DELETE"];
    let paths = [
        "/",
        "/api/orders",
        "/api/orders/1842",
        "/static/app.js",
        "/login",
        "/api/users?page=2",
    ];
    let statuses = ["200", "200", "200", "304", "404", "500", "302"];
    let agents = [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "curl/8.5.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) Gecko/20100101 Firefox/121.0",
    ];
    let (h, m, s) = clock(i);
    let ip = rng.next();
    let _ = writeln!(
        line,
        "{}.{}.{}.{} - - [27/Nov/2026:{h:02}:{m:02}:{s:02} +0000] \"{} {} HTTP/1.1\" {} {} \"https://shop.example.com/\" \"{}\"",
        10 + ip % 200,
        (ip >> 8) % 256,
        (ip >> 16) % 256,
        (ip >> 24) % 256,
        rng.pick(&methods),
        rng.pick(&paths),
        rng.pick(&statuses),
        rng.next() % 50_000,
        rng.pick(&agents),
    );
}

fn auth_line(line: &mut String, i: usize, rng: &mut XorShift) {
    use std::fmt::Write as _;
    let (h, m, s) = clock(i);
    let users = ["root", "admin", "deploy", "ubuntu", "alice"];
    let ip = rng.next();
    let _ = write!(line, "Nov 27 {h:02}:{m:02}:{s:02} web-1 ");
    let user = rng.pick(&users);
    let port = 30_000 + ip % 30_000;
    let addr = format!("203.0.{}.{}", (ip >> 8) % 256, (ip >> 16) % 256);
    let _ = match rng.next() % 6 {
        0 => writeln!(
            line,
            "sshd[{}]: Accepted publickey for {user} from {addr} port {port} ssh2: RSA SHA256:q8d1fakefingerprint",
            1000 + i % 5000
        ),
        1 => writeln!(
            line,
            "sshd[{}]: Failed password for {user} from {addr} port {port} ssh2",
            1000 + i % 5000
        ),
        2 => writeln!(
            line,
            "sshd[{}]: Invalid user {user} from {addr} port {port}",
            1000 + i % 5000
        ),
        3 => writeln!(
            line,
            "sshd[{}]: Disconnected from authenticating user {user} {addr} port {port} [preauth]",
            1000 + i % 5000
        ),
        4 => writeln!(
            line,
            "sudo:    {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx"
        ),
        _ => writeln!(
            line,
            "CRON[{}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
            1000 + i % 5000
        ),
    };
}

pub(crate) fn sent_entries(port: u16) -> f64 {
    metric_sum(port, "promtail_sent_entries_total")
}

/// The sum of every series of `metric` on the agent's /metrics.
fn metric_sum(port: u16, metric: &str) -> f64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The network source kinds: the `raw` lines, received instead of tailed.
const NETWORK_KINDS: &[&str] = &["syslog", "gelf"];

/// GELF messages sent and not yet counted by the agent, at most: the sender waits for the
/// agent rather than overrunning the socket's buffer (which would drop, uncounted).
const GELF_WINDOW: usize = 1000;

/// Runs one network kind and prints its row (the file kinds' columns, then entries/CPU-s).
fn network_kind(kind: &str, dir: &Path, mib: usize, sink: SocketAddr) {
    let log = dir.join("raw.log");
    let (lines, bytes) = generate("raw", &log, mib * 1024 * 1024);
    let text = std::fs::read_to_string(&log).expect("read generated lines");
    let messages: Vec<&str> = text.lines().collect();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let source = match kind {
        "syslog" => format!(
            "syslog: {{listen_address: '127.0.0.1:{port}', listen_protocol: tcp, labels: {{job: syslog}}}}"
        ),
        _ => format!("gelf: {{listen_address: '127.0.0.1:{port}', labels: {{job: gelf}}}}"),
    };
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {dir}/positions.yaml}}
clients:
  - url: http://{sink}/loki/api/v1/push
scrape_configs:
  - job_name: {kind}
    {source}
"#,
            dir = dir.display(),
        ),
    )
    .expect("write config");
    let started = Instant::now();
    let (mut child, pid, http) = agent_process::start_agent(&bench_bin(), &config);
    // The job's listener is bound once /targets shows it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !page(http, "/targets").contains("(1 targets)") {
        assert!(
            Instant::now() < deadline,
            "the {kind} listener did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sender = match kind {
        "syslog" => send_syslog(port, &messages),
        _ => send_gelf(port, http, &messages),
    };
    let expected = lines as f64 - sender;
    loop {
        let sent = sent_entries(http);
        if sent >= expected {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            panic!("only {sent} of {expected} entries sent after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let wall = started.elapsed();
    let cpu = agent_process::cpu_seconds(pid);
    let rss = agent_process::status_kib(pid, "VmHWM");
    let _ = child.kill();
    let _ = child.wait();
    let mib_f = bytes as f64 / (1024.0 * 1024.0);
    summary::record(kind, "generated", expected, mib_f, cpu, rss as f64 / 1024.0);
    println!(
        "{kind:<8} {lines:>9} {mib_f:>7.1} {:>7.2} {:>10.1} {:>8.1} {:>9} {:>8.1}  {:.0} entries/CPU-s{}",
        wall.as_secs_f64(),
        mib_f / cpu,
        mib_f / wall.as_secs_f64(),
        "-",
        rss as f64 / 1024.0,
        expected / cpu,
        if sender > 0.0 {
            format!(", {sender} dropped")
        } else {
            String::new()
        }
    );
}

/// Writes every line as an octet-counted RFC 5424 message on one connection; none is lost.
fn send_syslog(port: u16, lines: &[&str]) -> f64 {
    let mut stream = std::io::BufWriter::with_capacity(
        64 * 1024,
        TcpStream::connect(("127.0.0.1", port)).expect("connect to the syslog listener"),
    );
    for line in lines {
        let message = format!("<14>1 2026-11-27T10:00:00Z web-1 app 4121 - - {line}");
        write!(stream, "{} {message}", message.len()).expect("send");
    }
    stream.flush().expect("flush");
    0.0
}

/// Sends every line as a GELF datagram, keeping at most [`GELF_WINDOW`] unreceived; returns
/// how many the agent dropped (counted in `tailward_source_dropped_total`).
fn send_gelf(port: u16, http: u16, lines: &[&str]) -> f64 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut escaped = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i % 500 == 0 {
            while i.saturating_sub(metric(http, "promtail_gelf_target_entries_total") as usize)
                >= GELF_WINDOW
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        escaped.clear();
        for c in line.chars() {
            match c {
                '"' => escaped.push_str("\\\""),
                '\\' => escaped.push_str("\\\\"),
                _ => escaped.push(c),
            }
        }
        let message = format!(
            r#"{{"version":"1.1","host":"web-1","short_message":"{escaped}","level":6,"_app":"app"}}"#
        );
        socket
            .send_to(message.as_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
    // Wait until every datagram is counted as received or dropped.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && (metric(http, "promtail_gelf_target_entries_total") as usize) < lines.len()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    metric(http, "tailward_source_dropped_total")
}

/// A page of the agent's HTTP server (empty when it cannot be fetched).
fn page(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// The sum of a series' samples on the agent's /metrics.
fn metric(port: u16, name: &str) -> f64 {
    page(port, "/metrics")
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
