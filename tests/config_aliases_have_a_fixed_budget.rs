//! Config loading has a fixed memory budget: a YAML alias bomb (each anchor a list of nine
//! aliases of the one before), padded to 100 KB with ordinary values, is refused with an
//! error naming the file, and the process never grows past 100 MB while reading it. The
//! child's peak RSS is its own (`wait4`), not that of other processes the test binary ran.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tailward");

/// The billion-laughs document: nine levels of nine aliases each (9^9 strings if expanded),
/// after `padding` bytes of plain list items (which once raised the parser's own limit).
fn alias_bomb(padding: usize) -> String {
    let mut doc = String::from("padding:\n");
    while doc.len() < padding {
        doc.push_str("  - just some padding value to make the document large\n");
    }
    doc.push_str(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for level in 'b'..='j' {
        doc.push_str(&format!("{level}: &{level} ["));
        doc.push_str(&vec![format!("*{prev}"); 9].join(","));
        doc.push_str("]\n");
        prev = level;
    }
    doc
}

/// Runs `tailward -check-syntax` on `path`; returns (exit code, stderr, peak RSS in KiB).
fn check_syntax_with_peak_rss(path: &std::path::Path) -> (i32, String, i64) {
    // Reaped below with wait4, which (unlike Child::wait) reports the child's own peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(BIN)
        .arg(format!("-config.file={}", path.display()))
        .arg("-check-syntax")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unreaped child; status and usage point to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(
        reaped,
        pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, text, usage.ru_maxrss)
}

#[test]
fn padded_alias_bomb_is_refused_within_100_mb() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.yaml");
    let doc = alias_bomb(100 * 1024);
    assert!(doc.len() >= 100 * 1024);
    std::fs::write(&path, &doc).unwrap();
    let (code, stderr, peak_kib) = check_syntax_with_peak_rss(&path);
    assert_eq!(code, 1, "refused: {stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: aliases (*name) expand to more than",
            path.display()
        )),
        "the error names the file and the cause: {stderr}"
    );
    assert!(stderr.contains("alias bomb"), "{stderr}");
    assert!(
        peak_kib < 100 * 1024,
        "peak RSS {} MiB while refusing the bomb",
        peak_kib / 1024
    );
}

#[test]
fn ordinary_anchor_reuse_is_well_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("promtail.yaml");
    let mut doc = String::from(
        "server: {http_listen_port: 0}\nclients: [{url: http://127.0.0.1:9/loki/api/v1/push}]\n\
         scrape_configs:\n  - job_name: job0\n    static_configs:\n      - labels: &common\n\
         \x20         env: prod\n          team: platform\n          __path__: /tmp/none-0.log\n",
    );
    for i in 1..200 {
        doc.push_str(&format!(
            "  - job_name: job{i}\n    static_configs:\n      - labels:\n          <<: *common\n          __path__: /tmp/none-{i}.log\n"
        ));
    }
    std::fs::write(&path, doc).unwrap();
    let (code, stderr, _) = check_syntax_with_peak_rss(&path);
    assert_eq!(code, 0, "{stderr}");
}
