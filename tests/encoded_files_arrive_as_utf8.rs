//! Files in a job's `encoding` reach Loki as UTF-8: a UTF-16LE file with a byte order mark
//! and CRLF/LF lines, and a windows-1252 file, each tailed by its own job through the real
//! binary.

use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::receiver::Receiver;

const STAGES: &str = "      - static_labels:\n          env: test\n";

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn utf16le_and_windows_1252_files_arrive_as_utf8() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("wide.log");
    let legacy = dir.path().join("legacy.log");
    let mut wide_content = vec![0xFF, 0xFE];
    wide_content.extend(utf16le("première\r\nzweite Zeile ü\n"));
    std::fs::write(&wide, &wide_content).unwrap();
    std::fs::write(&legacy, b"caf\xe9 cr\xe8me\n\x80 42\n").unwrap();

    let cfg = file_job_config(
        &receiver.url(),
        &dir.path().join("p.yaml"),
        &wide.display().to_string(),
        "",
        STAGES,
    )
    .replace(
        "  - job_name: app\n",
        "  - job_name: app\n    encoding: UTF-16LE\n",
    ) + &format!(
        "  - job_name: legacy\n    encoding: windows-1252\n    static_configs:\n      - targets: [localhost]\n        labels:\n          job: legacy\n          __path__: {}\n",
        legacy.display()
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);

    let got = receiver.wait_for_entries(4, Duration::from_secs(20)).await;
    let lines_of = |job: &str| -> Vec<String> {
        got.iter()
            .filter(|e| e.labels.get("job").map(String::as_str) == Some(job))
            .map(|e| e.line.clone())
            .collect()
    };
    assert_eq!(lines_of("app"), vec!["première\r", "zweite Zeile ü"]);
    assert_eq!(lines_of("legacy"), vec!["café crème", "€ 42"]);
    assert_eq!(agent.metric("tailward_invalid_utf8_lines_total"), 0.0);
}
