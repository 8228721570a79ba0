//! The `auth` preset scored on the project's shared sample collection (`../shared/data/auth`
//! beside the repository; not copied in: loghub's licence and the Elastic License 2.0 keep
//! most of it out). For each family (sshd, pam, sudo, su, shadow, cron, other) it prints how
//! many lines the preset recognised (gave an `event`) and how many ground-truth fields it
//! agreed on, plus the syslog header's agreement.
//!
//! A measurement, not a target: the forms the preset accepts are built from the writing
//! programs' sources (README, "The auth preset"), never from these samples, so this test
//! asserts only floors a little under today's score. It also fails when an entry goes
//! missing, the collection's layout changed, or the collection is absent;
//! `TAILWARD_SHARED_DATA` points at another copy.
//!
//! Ground truth: loghub's structured CSVs (each line's template with `<*>` for the values;
//! the value's field is named by the template's words around it), Filebeat's and Elastic
//! integrations' expected output (ECS fields mapped to the preset's names).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;
use tailward::pipeline::{PipelineEntry, value_as_string};

type Fields = BTreeMap<String, String>;

fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("TAILWARD_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")),
    };
    let auth = dir.join("auth");
    auth.is_dir().then_some(auth)
}

/// Runs `lines` through the preset (headers without an offset in `location`, RFC3164 years
/// inferred from `read_time`).
fn run(lines: &[String], read_time: &str, location: &str) -> Vec<PipelineEntry> {
    let stages = format!("[{{preset: {{name: auth, parameters: {{location: {location}}}}}}}]");
    let (done, _) = crate::support::stage_runner::run_lines(&stages, "score", read_time, lines);
    assert_eq!(done.len(), lines.len(), "one entry per line");
    done
}

fn extracted(e: &PipelineEntry) -> Fields {
    e.extracted
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), value_as_string(v)?.into_owned())))
        .collect()
}

/// Lines as a file reader hands them on (without `\n`, and without a `\r` before it).
fn lines_of(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[derive(Default)]
struct Family {
    lines: usize,
    accepted: usize,
    compared: usize,
    agreed: usize,
    misses: Vec<String>,
}

#[derive(Default)]
struct Score {
    families: BTreeMap<&'static str, Family>,
    header: Family,
}

impl Score {
    fn line(&mut self, family: &'static str, got: &Fields, want: &Fields, what: &str) {
        let f = self.families.entry(family).or_default();
        f.lines += 1;
        if got.contains_key("event") {
            f.accepted += 1;
        } else if f.misses.len() < 8 {
            f.misses.push(format!("not recognised: {what}"));
        }
        for (field, value) in want {
            f.compared += 1;
            if agrees(field, value, got) {
                f.agreed += 1;
            } else if f.misses.len() < 8 {
                f.misses.push(format!(
                    "{field}: truth {value:?}, preset {:?} ({what})",
                    got_value(field, got)
                ));
            }
        }
    }

    fn header(&mut self, got: &Fields, want: &Fields, what: &str) {
        let f = &mut self.header;
        f.lines += 1;
        if got.contains_key("message") {
            f.accepted += 1;
        }
        for (field, value) in want {
            f.compared += 1;
            if got.get(field) == Some(value) {
                f.agreed += 1;
            } else if f.misses.len() < 8 {
                f.misses.push(format!(
                    "{field}: truth {value:?}, preset {:?} ({what})",
                    got.get(field)
                ));
            }
        }
    }
}

/// `source_addr` is the remote end whichever way the preset filed it.
fn got_value<'a>(field: &str, got: &'a Fields) -> Option<&'a String> {
    match field {
        "source_addr" => got.get("source_ip").or_else(|| got.get("source_host")),
        _ => got.get(field),
    }
}

fn agrees(field: &str, want: &str, got: &Fields) -> bool {
    got_value(field, got).is_some_and(|g| g == want)
}

fn family_of_program(program: &str, message: &str) -> &'static str {
    let base = program.split('(').next().unwrap_or(program);
    if program.contains("(pam_") || message.starts_with("pam_") || message.starts_with("PAM ") {
        return "pam";
    }
    match base {
        "sshd" | "sshd-session" | "sshd-auth" => "sshd",
        "sudo" => "sudo",
        "su" => "su",
        "useradd" | "groupadd" | "usermod" | "userdel" | "groupdel" | "passwd" | "chpasswd"
        | "chfn" | "chsh" | "chage" | "gpasswd" => "shadow",
        "CRON" | "cron" | "crond" => "cron",
        _ => "other",
    }
}

/// One RFC4180 record per line (loghub's CSVs quote fields with commas; no field spans lines).
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => fields.push(std::mem::take(&mut field)),
                _ => field.push(c),
            }
        }
        fields.push(field);
        out.push(fields);
    }
    out
}

/// The values of `content` for the `<*>` of `template`, each named by the words around it.
fn template_fields(template: &str, content: &str) -> Option<Fields> {
    let parts: Vec<&str> = template.split("<*>").collect();
    let pattern = parts
        .iter()
        .map(|p| regex::escape(p))
        .collect::<Vec<_>>()
        .join("(.*?)");
    let re = regex::Regex::new(&format!("^{pattern}$")).ok()?;
    let caps = re.captures(content)?;
    let mut fields = Fields::new();
    for (i, value) in caps.iter().skip(1).enumerate() {
        let value = value.map_or("", |m| m.as_str());
        let before = parts[i].trim_end();
        let after = parts[i + 1].trim_start();
        let name = if before.ends_with("rhost=") {
            "source_addr"
        } else if before.ends_with("euid=") {
            continue;
        } else if before.ends_with("uid=") {
            "uid"
        } else if before.ends_with("user=") {
            "user"
        } else if before.ends_with(" port") {
            "source_port"
        } else if before.ends_with("message repeated") {
            "login_attempts"
        } else if before.ends_with("PAM") && after.starts_with("more authentication") {
            "attempts"
        } else if before.ends_with("getaddrinfo for") {
            "source_host"
        } else if before.ends_with('[') && after.starts_with(']') {
            "source_ip"
        } else if before.ends_with(" from") || before.ends_with("closed by") {
            "source_addr"
        } else if before.ends_with(" for")
            || before.ends_with("invalid user")
            || before.ends_with("illegal user")
            || before.ends_with("Invalid user")
            || before.ends_with("for user")
        {
            "user"
        } else {
            continue;
        };
        let mut value = value.trim();
        if name == "source_port" {
            // `port <*>]` in a repeated message's template also takes the ` ssh2`.
            value = value.split(' ').next().unwrap_or(value);
        }
        if !value.is_empty() {
            fields.insert(name.to_string(), value.to_string());
        }
    }
    // Values the template kept as fixed text.
    for part in &parts {
        for word in part.split(' ') {
            if let Some(v) = word.strip_prefix("user=").filter(|v| !v.is_empty()) {
                fields.insert("user".into(), v.to_string());
            }
        }
        if let Some(r) = part.split_once("authentication failures for ") {
            let user = r.1.trim_end_matches(" [preauth]");
            fields.insert("user".into(), user.to_string());
        }
    }
    Some(fields)
}

fn time_text(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&Utc).format("%b %-d %H:%M:%S").to_string()
}

/// loghub: `<name>.log` with `<name>.log_structured.csv`. `host_column` names the hostname's
/// column, `program` the program's column or (`=name`) the program of every line.
fn score_loghub(
    dir: &std::path::Path,
    name: &str,
    read_time: &str,
    host_column: &str,
    program: &str,
    score: &mut Score,
) {
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap();
    let csv = std::fs::read_to_string(dir.join(format!("{name}.log_structured.csv"))).unwrap();
    let lines = lines_of(&log);
    let records = csv_records(&csv);
    let header = &records[0];
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .unwrap_or_else(|| panic!("{name}: no column {n}"))
    };
    let (c_month, c_day, c_time) = if header.iter().any(|h| h == "Month") {
        (col("Month"), col("Date"), col("Time"))
    } else {
        (col("Date"), col("Day"), col("Time"))
    };
    let c_host = col(host_column);
    let fixed_program = program.strip_prefix('=');
    let c_comp = fixed_program.map_or_else(|| col(program), |_| 0);
    let c_pid = col(if header.iter().any(|h| h == "Pid") {
        "Pid"
    } else {
        "PID"
    });
    let (c_content, c_template) = (col("Content"), col("EventTemplate"));
    let rows = &records[1..];
    assert_eq!(rows.len(), lines.len(), "{name}: one CSV record per line");
    let entries = run(&lines, read_time, "UTC");
    for (i, (row, entry)) in rows.iter().zip(&entries).enumerate() {
        let got = extracted(entry);
        let what = format!("{name} line {}", i + 1);
        let program: &str = fixed_program.unwrap_or(&row[c_comp]);
        // loghub trims the message; pam_unix leaves a space after an empty `user`.
        let content = row[c_content].trim_end();
        let mut want_header = Fields::new();
        want_header.insert(
            "time".into(),
            format!("{} {} {}", row[c_month], row[c_day].trim(), row[c_time]),
        );
        want_header.insert("hostname".into(), row[c_host].clone());
        want_header.insert("program".into(), program.to_string());
        if !row[c_pid].is_empty() {
            want_header.insert("pid".into(), row[c_pid].clone());
        }
        want_header.insert("message".into(), content.to_string());
        let mut got_header = got.clone();
        if let Some(m) = got_header.get_mut("message") {
            *m = m.trim_end().to_string();
        }
        if got.contains_key("message") {
            got_header.insert("time".into(), time_text(entry.timestamp));
        }
        score.header(&got_header, &want_header, &what);
        let family = family_of_program(program, content);
        if family == "other" && !program.contains("login") && program != "klogind" {
            // Not an authentication program (ftpd, kernel, cups, ...): header only.
            continue;
        }
        let want = template_fields(&row[c_template], content).unwrap_or_default();
        score.line(family, &got, &want, &what);
    }
}

/// ECS field -> the preset's name.
const ECS_FIELDS: &[(&str, &str)] = &[
    ("source.ip", "source_ip"),
    ("source.port", "source_port"),
    ("system.auth.ssh.dropped_ip", "source_ip"),
    ("user.name", "user"),
    ("user.id", "uid"),
    ("user.effective.name", "target_user"),
    ("group.name", "group"),
    ("group.id", "gid"),
    ("system.auth.ssh.method", "auth_method"),
    ("system.auth.ssh.signature", "signature"),
    ("system.auth.sudo.command", "command"),
    ("system.auth.sudo.pwd", "pwd"),
    ("system.auth.sudo.tty", "tty"),
    ("system.auth.sudo.user", "target_user"),
    ("system.auth.sudo.error", "reason"),
    ("system.auth.useradd.home", "home"),
    ("system.auth.useradd.shell", "shell"),
    ("system.auth.useradd.name", "user"),
    ("system.auth.useradd.uid", "uid"),
    ("system.auth.useradd.gid", "gid"),
    ("system.auth.groupadd.name", "group"),
    ("system.auth.groupadd.gid", "gid"),
    ("system.auth.user", "user"),
    ("system.auth.ssh.ip", "source_ip"),
    ("system.auth.ssh.port", "source_port"),
];

const ECS_HEADER: &[(&str, &str)] = &[
    ("host.hostname", "hostname"),
    ("process.name", "program"),
    ("process.pid", "pid"),
    ("system.auth.pid", "pid"),
    ("system.auth.hostname", "hostname"),
];

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        Value::Number(n) => {
            out.insert(prefix.to_string(), n.to_string());
        }
        _ => {}
    }
}

/// Filebeat / Elastic integrations: `<log>` with `<expected>` (a list, or `{expected: [..]}`),
/// one object per line in order.
fn score_ecs(
    dir: &std::path::Path,
    log: &str,
    expected: &str,
    read_time: &str,
    location: &str,
    score: &mut Score,
) {
    let lines = lines_of(&std::fs::read_to_string(dir.join(log)).unwrap());
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(expected)).unwrap()).unwrap();
    let list = match &json {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o["expected"].as_array().unwrap().clone(),
        _ => panic!("{expected}: unexpected layout"),
    };
    assert_eq!(
        list.len(),
        lines.len(),
        "{log}: one expected object per line"
    );
    let entries = run(&lines, read_time, location);
    for (i, (want, entry)) in list.iter().zip(&entries).enumerate() {
        let mut flat = BTreeMap::new();
        flatten("", want, &mut flat);
        let got = extracted(entry);
        let what = format!("{log} line {}", i + 1);
        let mut want_header = Fields::new();
        for (ecs, ours) in ECS_HEADER {
            if let Some(v) = flat.get(*ecs) {
                want_header.insert(ours.to_string(), v.clone());
            }
        }
        if let Some(t) = flat.get("@timestamp") {
            let t = DateTime::parse_from_rfc3339(t).unwrap();
            want_header.insert("time".into(), t.with_timezone(&Utc).to_rfc3339());
        }
        let mut got_header = got.clone();
        got_header.insert(
            "time".into(),
            entry.timestamp.with_timezone(&Utc).to_rfc3339(),
        );
        score.header(&got_header, &want_header, &what);
        let program = flat.get("process.name").cloned().unwrap_or_default();
        let message = got.get("message").cloned().unwrap_or_default();
        let family = family_of_program(&program, &message);
        let mut want_fields = Fields::new();
        for (ecs, ours) in ECS_FIELDS {
            if let Some(v) = flat.get(*ecs) {
                want_fields.insert(ours.to_string(), v.clone());
            }
        }
        score.line(family, &got, &want_fields, &what);
    }
}

/// Files without ground truth: only how many lines of each family got an event.
const WITHOUT_TRUTH: &[&str] = &[
    "elastic-integrations__test-auth-ubuntu1204.log",
    "elastic-integrations__test-auth.extra-2-lines.log",
    "insights-core__secure.log",
    "lnav__logfile_syslog.0.log",
    "lnav__logfile_syslog.3.log",
];

fn score_accept_only(dir: &std::path::Path, file: &str, score: &mut Score) {
    let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
        eprintln!("  {file}: not found, left out");
        return;
    };
    let lines = lines_of(&text);
    for (i, entry) in run(&lines, "2013-06-01T00:00:00Z", "UTC")
        .iter()
        .enumerate()
    {
        let got = extracted(entry);
        let program = got.get("program").cloned().unwrap_or_default();
        let message = got.get("message").cloned().unwrap_or_default();
        let family = family_of_program(&program, &message);
        if family == "other" {
            continue;
        }
        let what = format!("{file} line {}", i + 1);
        score.line(family, &got, &Fields::new(), &what);
    }
}

#[test]
fn auth_preset_score_on_the_shared_samples() {
    // CI and every session have the collection beside the repo; without it the score would
    // be a pass that measured nothing.
    let dir = data_dir().expect("shared sample collection ../shared/data/auth");
    let mut score = Score::default();
    // OpenSSH_2k: `Component` holds the hostname; every line is sshd's.
    score_loghub(
        &dir,
        "loghub__OpenSSH_2k",
        "2011-06-01T00:00:00Z",
        "Component",
        "=sshd",
        &mut score,
    );
    // Linux_2k: `Level` holds the hostname, `Component` the program.
    score_loghub(
        &dir,
        "loghub__Linux_2k",
        "2005-12-31T00:00:00Z",
        "Level",
        "Component",
        &mut score,
    );
    score_ecs(
        &dir,
        "elastic-integrations__test-auth.log",
        "elastic-integrations__test-auth.log-expected.json",
        "2022-06-01T00:00:00Z",
        "UTC",
        &mut score,
    );
    // Made with the pipeline's zone at -02:00.
    score_ecs(
        &dir,
        "beats__auth-timestamp.log",
        "beats__auth-timestamp.log-expected.json",
        "2019-07-01T00:00:00Z",
        "Etc/GMT+2",
        &mut score,
    );
    let mut unlabelled = Score::default();
    for file in WITHOUT_TRUTH {
        score_accept_only(&dir, file, &mut unlabelled);
    }
    eprintln!("auth preset on {}:", dir.display());
    eprintln!(
        "  {:<8} {:>6} {:>9} {:>8} {:>17}",
        "family", "lines", "accepted", "", "fields agreed"
    );
    let mut all = Family::default();
    for (name, f) in &score.families {
        print_family(name, f);
        all.lines += f.lines;
        all.accepted += f.accepted;
        all.compared += f.compared;
        all.agreed += f.agreed;
    }
    print_family("all", &all);
    print_family("header", &score.header);
    eprintln!("  without ground truth (accepted only):");
    for (name, f) in &unlabelled.families {
        print_family(name, f);
    }
    for (name, f) in &score.families {
        for m in &f.misses {
            eprintln!("  {name}: {m}");
        }
    }
    for m in &score.header.misses {
        eprintln!("  header: {m}");
    }
    for (name, f) in &unlabelled.families {
        for m in &f.misses {
            eprintln!("  {name} (no truth): {m}");
        }
    }
    assert!(all.lines > 2000, "only {} auth lines scored", all.lines);
    // Floors a little under today's score (98.1% accepted, 99.5% agreed): a regression on
    // real lines fails here; the figures themselves are for reading, not for fitting.
    assert!(
        all.accepted * 100 >= all.lines * 96,
        "accepted {} of {} auth lines",
        all.accepted,
        all.lines
    );
    assert!(
        all.agreed * 1000 >= all.compared * 990,
        "fields agreed {} of {}",
        all.agreed,
        all.compared
    );
}

fn print_family(name: &str, f: &Family) {
    let pct = |a: usize, b: usize| {
        if b == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * a as f64 / b as f64)
        }
    };
    eprintln!(
        "  {:<8} {:>6} {:>9} {:>8} {:>9} {:>7}",
        name,
        f.lines,
        f.accepted,
        pct(f.accepted, f.lines),
        format!("{}/{}", f.agreed, f.compared),
        pct(f.agreed, f.compared)
    );
}
