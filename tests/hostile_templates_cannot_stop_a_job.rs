//! A log line chooses what a template does with it: a precision, a count, a size. Such a
//! line must cost its own entry at most, never the job, the agent's memory or its exit code:
//! Go's fmt bounds (`%!(BADPREC)`), one output cap and one step budget per execution, each
//! failure counted, and the lines after it shipped as usual.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::support::stdin_dry_run::stdin_dry_run;

const BIN: &str = env!("CARGO_BIN_EXE_tailward");

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_precision_taken_from_the_line_does_not_stop_the_job() {
    // One line asks for 70,000 digits (the line that used to panic the executor and stop the
    // job for good), one for 10^7 (past Go's limit: %!(BADPREC)); the others are ordinary.
    let stages = r#"      - regex:
          expression: 'prec=(?P<prec>\d+)'
      - template:
          source: formatted
          template: '{{ printf "%.*f" (atoi .prec) 1.5 | len }}'
      - labels:
          formatted:
"#;
    let input = "prec=70000\nprec=10000000\nprec=2 ok\nafter\n";
    let out = stdin_dry_run("{job: test}", stages, input, "UTC", &[]);
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 4, "every line shipped: {lines:?}");
    // 1.5 with 70,000 decimals is 70,002 characters long, as Go prints it.
    assert!(lines[0].contains(r#"formatted="70002""#), "{}", lines[0]);
    // Go prints %!(BADPREC) and formats the rest at the default precision: "%!(BADPREC)1.500000".
    assert!(lines[1].contains(r#"formatted="19""#), "{}", lines[1]);
    assert!(lines[2].contains(r#"formatted="4""#), "{}", lines[2]);
    assert!(lines[3].ends_with("after"), "{}", lines[3]);
}

/// `-stdin -dry-run` under an address-space limit, as a careful operator would run it.
fn run_limited(stages: &str, input: &str, limit_kib: u64) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server:\n  disable: true\npositions:\n  filename: {}/positions.yaml\nclients:\n  - url: http://127.0.0.1:9/loki/api/v1/push\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - labels: {{job: test}}\n    pipeline_stages:\n{stages}",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {limit_kib} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .arg(format!("-config.file={}", cfg.display()))
        .args(["-stdin", "-dry-run", "-log.level=warn"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn template_bombs_under_a_memory_limit_fail_their_entry_not_the_agent() {
    // Each template would build gigabytes, or spin for ever, from a 5-byte line (each line
    // holds an `l`, so every replacement applies).
    let bombs = [
        r#"{{ Replace (repeat 1000000 .Entry) "l" (repeat 10000 .Entry) -1 }}"#,
        r#"{{ cat (repeat 3000000 .Entry) (repeat 3000000 .Entry) (repeat 3000000 .Entry) (repeat 3000000 .Entry) }}"#,
        r#"{{ regexReplaceAll "l" (repeat 1000000 .Entry) (repeat 10000 .Entry) }}"#,
        r#"{{ range 1000000 }}{{ range 1000000 }}{{ end }}{{ end }}"#,
        r#"{{ join (splitList "" (repeat 3000000 .Entry)) (repeat 1000 .Entry) }}"#,
    ];
    let mut stages = String::new();
    for (i, bomb) in bombs.iter().enumerate() {
        stages.push_str(&format!(
            "      - template:\n          source: bomb{i}\n          template: '{}'\n",
            bomb.replace('\'', "''")
        ));
    }
    stages.push_str("      - labels:\n");
    for i in 0..bombs.len() {
        stages.push_str(&format!("          bomb{i}:\n"));
    }
    // 4 GB of address space, the limit the agent aborted under.
    let out = run_limited(&stages, "hello\nworld\n", 4 * 1024 * 1024);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?} (an abort is a signal): {stderr}",
        out.status
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "both lines shipped: {lines:?}\n{stderr}");
    assert!(lines[0].ends_with("hello") && lines[1].ends_with("world"));
    // A failed execution leaves its key unset, so no bomb became a label.
    assert!(
        lines.iter().all(|l| !l.contains("bomb")),
        "a bomb produced a value: {}",
        lines.join("\n").chars().take(300).collect::<String>()
    );
}
