//! Real-derived input for the throughput bench (issue 21): every line of the real samples in
//! `../shared/data` (or `$TAILWARD_REAL_DATA`), cycled in their own order until the target
//! size, with the parts that vary on a real host varied on each pass: IPv4 addresses, user
//! names, numbers in request paths, and the timestamp (rewritten from a running clock in the
//! line's own layout, so its zone, fraction and padding stay the sample's). Every other byte
//! is the sample's, so the mix of forms and the line lengths stay those of the real logs; the
//! bench prints both for the samples and for its output so that can be checked.
//!
//! Which samples feed which kind: `nginx` the nginx access logs, `auth` the auth/syslog
//! files, `json` the JSON-lines files, `nginx_error` the nginx error logs, `app` the
//! multi-line application logs (Python tracebacks among them), `raw` all of those plus the nginx error and
//! multi-line samples. This reads files outside the repository on purpose: it is for bench
//! runs on a developer's machine, never for CI, and says so when the data is missing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use regex::Regex;

/// One piece of a template line.
enum Piece {
    Text(String),
    Ipv4,
    User,
    /// A run of this many digits inside a request path.
    Digits(usize),
    Clock(Layout),
}

#[derive(Clone, Copy)]
enum Layout {
    /// `02/Jan/2006:15:04:05` (nginx access; the zone after it stays the sample's).
    Nginx,
    /// `Jan _2 15:04:05` (syslog / auth.log).
    Syslog,
    /// `2006-01-02T15:04:05` with the sample's separator between date and time.
    Iso(char),
    /// `2006/01/02 15:04:05` (nginx error log).
    NginxError,
}

pub struct Corpus {
    kind: &'static str,
    templates: Vec<Vec<Piece>>,
    /// The sample lines as read, for the mix and length check.
    samples: Vec<String>,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const USERS: [&str; 12] = [
    "root", "admin", "deploy", "ubuntu", "alice", "git", "oracle", "test", "postgres", "www-data",
    "jenkins", "bob",
];

fn data_dir() -> PathBuf {
    match std::env::var_os("TAILWARD_REAL_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    }
}

/// The sample files of `kind`: (directory, accepted file-name endings).
fn sources(kind: &str) -> Vec<(&'static str, &'static [&'static str])> {
    const ACCESS: (&str, &[&str]) = ("nginx-access", &[".log"]);
    const ERROR: (&str, &[&str]) = ("nginx-error", &[".log"]);
    const AUTH: (&str, &[&str]) = ("auth", &[".log"]);
    const JSON: (&str, &[&str]) = ("json", &[".jsonl", ".input.log"]);
    const MULTILINE: (&str, &[&str]) = ("multiline", &[".log"]);
    match kind {
        "nginx" => vec![ACCESS],
        "auth" => vec![AUTH],
        "json" => vec![JSON],
        "nginx_error" => vec![ERROR],
        "app" => vec![MULTILINE],
        _ => vec![ACCESS, ERROR, AUTH, JSON, MULTILINE],
    }
}

/// Reads the samples of `kind` and cuts each line into template pieces.
pub fn load(kind: &'static str) -> Result<Corpus, String> {
    let root = data_dir();
    let mut samples = Vec::new();
    for (dir, endings) in sources(kind) {
        let dir = root.join(dir);
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            format!(
                "real-derived input needs the samples in {} ({e}); run the bench from a checkout \
                 beside shared/, set TAILWARD_REAL_DATA, or use `generated`",
                dir.display()
            )
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                endings.iter().any(|end| name.ends_with(end))
            })
            .collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let text = String::from_utf8_lossy(&bytes);
            samples.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned),
            );
        }
    }
    if samples.is_empty() {
        return Err(format!(
            "no sample lines for {kind} under {}",
            root.display()
        ));
    }
    let cutter = Cutter::new();
    let templates = samples.iter().map(|l| cutter.cut(l)).collect();
    Ok(Corpus {
        kind,
        templates,
        samples,
    })
}

struct Cutter {
    clock: Regex,
    ipv4: Regex,
    user: Regex,
    request_path: Regex,
    digits: Regex,
}

impl Cutter {
    fn new() -> Cutter {
        Cutter {
            clock: Regex::new(
                r"(?P<nginx>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2})|(?P<iso>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})|(?P<nerr>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})|^(?P<syslog>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})",
            )
            .expect("clock regex"),
            ipv4: Regex::new(r"\b(?:\d{1,3}\.){3}\d{1,3}\b").expect("ip regex"),
            user: Regex::new(
                r"(?:[Ff]or (?:invalid user )?|[Ii]nvalid user |user[= ]|sudo: +|by )([a-z_][a-z0-9_.-]*)",
            )
            .expect("user regex"),
            request_path: Regex::new(r#""[A-Z]+ (/[^ "]*)"#).expect("path regex"),
            digits: Regex::new(r"\d{2,}").expect("digits regex"),
        }
    }

    /// Spans (start, end, piece) to vary in `line`, first the clock, then addresses, users
    /// and path numbers; overlapping spans keep the first found.
    fn cut(&self, line: &str) -> Vec<Piece> {
        let mut spans: Vec<(usize, usize, Piece)> = Vec::new();
        if let Some(c) = self.clock.captures(line) {
            let (m, layout) = if let Some(m) = c.name("nginx") {
                (m, Layout::Nginx)
            } else if let Some(m) = c.name("iso") {
                let sep = line[m.start() + 10..].chars().next().unwrap_or('T');
                (m, Layout::Iso(sep))
            } else if let Some(m) = c.name("nerr") {
                (m, Layout::NginxError)
            } else {
                let m = c.name("syslog").expect("one group matched");
                (m, Layout::Syslog)
            };
            spans.push((m.start(), m.end(), Piece::Clock(layout)));
        }
        for m in self.ipv4.find_iter(line) {
            spans.push((m.start(), m.end(), Piece::Ipv4));
        }
        for c in self.user.captures_iter(line) {
            let m = c.get(1).expect("group 1");
            if m.as_str() != "unknown" {
                spans.push((m.start(), m.end(), Piece::User));
            }
        }
        if let Some(c) = self.request_path.captures(line) {
            let path = c.get(1).expect("group 1");
            for d in self.digits.find_iter(path.as_str()) {
                let start = path.start() + d.start();
                spans.push((start, start + d.len(), Piece::Digits(d.len())));
            }
        }
        spans.sort_by_key(|s| s.0);
        let mut pieces = Vec::new();
        let mut at = 0;
        for (start, end, piece) in spans {
            if start < at {
                continue;
            }
            if start > at {
                pieces.push(Piece::Text(line[at..start].to_owned()));
            }
            pieces.push(piece);
            at = end;
        }
        pieces.push(Piece::Text(format!("{}\n", &line[at..])));
        pieces
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

impl Corpus {
    /// Writes `target` bytes of lines cycled from the samples; returns (lines, bytes).
    pub fn generate(&self, path: &Path, target: usize) -> (usize, usize) {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create log"));
        let (mut lines, mut bytes) = (0usize, 0usize);
        let mut rng = Rng(0x2545f4914f6cdd1d);
        let mut line = String::new();
        'cycles: loop {
            for template in &self.templates {
                if bytes >= target {
                    break 'cycles;
                }
                line.clear();
                render(template, lines, &mut rng, &mut line);
                out.write_all(line.as_bytes()).expect("write log");
                lines += 1;
                bytes += line.len();
            }
        }
        out.flush().expect("flush log");
        (lines, bytes)
    }

    /// Prints mean line length and the mix of forms, of the samples and of `path`.
    pub fn print_check(&self, path: &Path) {
        let written = std::fs::read_to_string(path).unwrap_or_default();
        let out: Vec<&str> = written.lines().collect();
        let describe = |lines: &[&str]| {
            let n = lines.len().max(1);
            let mean = lines.iter().map(|l| l.len() + 1).sum::<usize>() as f64 / n as f64;
            let mut forms: BTreeMap<&'static str, usize> = BTreeMap::new();
            for l in lines {
                *forms.entry(form(self.kind, l)).or_default() += 1;
            }
            let mix: Vec<String> = forms
                .iter()
                .map(|(f, c)| format!("{f} {:.1}%", 100.0 * *c as f64 / n as f64))
                .collect();
            format!("{n} lines, mean {mean:.1} bytes; {}", mix.join(", "))
        };
        let samples: Vec<&str> = self.samples.iter().map(String::as_str).collect();
        println!("  {:<6} samples: {}", self.kind, describe(&samples));
        println!("  {:<6} output:  {}", self.kind, describe(&out));
    }
}

fn render(template: &[Piece], i: usize, rng: &mut Rng, line: &mut String) {
    use std::fmt::Write as _;
    // Ten lines a second, from 2026-11-27 00:00:00.
    let secs = i / 10;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let day = 1 + (secs / 86_400) % 28;
    for piece in template {
        let _ = match piece {
            Piece::Text(t) => {
                line.push_str(t);
                Ok(())
            }
            Piece::Ipv4 => {
                let r = rng.next();
                write!(
                    line,
                    "{}.{}.{}.{}",
                    1 + r % 223,
                    (r >> 8) % 256,
                    (r >> 16) % 256,
                    1 + (r >> 24) % 254
                )
            }
            Piece::User => {
                line.push_str(USERS[(rng.next() % USERS.len() as u64) as usize]);
                Ok(())
            }
            Piece::Digits(n) => {
                let r = rng.next();
                let n = *n.min(&18);
                write!(line, "{:0n$}", r % 10u64.pow(n as u32))
            }
            Piece::Clock(Layout::Nginx) => {
                write!(line, "{day:02}/{}/2026:{h:02}:{m:02}:{s:02}", MONTHS[10])
            }
            Piece::Clock(Layout::Syslog) => {
                write!(line, "{} {day:>2} {h:02}:{m:02}:{s:02}", MONTHS[10])
            }
            Piece::Clock(Layout::Iso(sep)) => {
                write!(line, "2026-11-{day:02}{sep}{h:02}:{m:02}:{s:02}")
            }
            Piece::Clock(Layout::NginxError) => {
                write!(line, "2026/11/{day:02} {h:02}:{m:02}:{s:02}")
            }
        };
    }
}

/// The form of a line, for the mix check: status class for nginx access, program (and
/// sshd's event) for auth, the timestamp key for JSON, the family for raw.
fn form(kind: &str, line: &str) -> &'static str {
    match kind {
        "nginx" => match line.split("\" ").nth(1).and_then(|r| r.bytes().next()) {
            Some(b'2') => "2xx",
            Some(b'3') => "3xx",
            Some(b'4') => "4xx",
            Some(b'5') => "5xx",
            _ => "other",
        },
        "auth" => {
            let rest = line.get(16..).unwrap_or("");
            let program = rest.split(' ').nth(1).unwrap_or("");
            if program.starts_with("sshd") {
                let msg = rest.split(": ").nth(1).unwrap_or("");
                match msg.split(' ').next().unwrap_or("") {
                    "Accepted" => "sshd Accepted",
                    "Failed" => "sshd Failed",
                    "Invalid" | "input_userauth_request:" => "sshd invalid user",
                    "pam_unix(sshd:auth):" | "pam_unix(sshd:session):" => "sshd pam_unix",
                    _ => "sshd other",
                }
            } else if program.starts_with("sudo") {
                "sudo"
            } else if program.starts_with("CRON") || program.starts_with("cron") {
                "cron"
            } else if program.starts_with("su") {
                "su"
            } else {
                "other"
            }
        }
        "json" => {
            if !line.starts_with('{') {
                "not json"
            } else if line.contains("\"timestamp\"") {
                "timestamp"
            } else if line.contains("\"@timestamp\"") {
                "@timestamp"
            } else if line.contains("\"time\"") || line.contains("\"ts\"") {
                "time/ts"
            } else {
                "no time"
            }
        }
        _ => {
            if line.starts_with('{') {
                "json"
            } else if line.contains("] \"") {
                "access"
            } else if line.contains(" [error] ") || line.contains(" [warn] ") {
                "nginx error"
            } else if line.len() > 15 && line.as_bytes()[3] == b' ' {
                "syslog"
            } else {
                "other"
            }
        }
    }
}
