//! The journal source: Promtail's `journal:` scrape config, read through
//! `journalctl --output=json --follow` (as Vector does), so no libsystemd is linked.
//!
//! Owns running journalctl (from the saved cursor, or `max_age` back), turning each entry
//! into a line with labels (`labels`, then `relabel_configs` over `__journal_*` fields) and
//! its own timestamp, and announcing each entry's cursor to delivery through its
//! [`CursorPosition`](crate::delivery::positions::CursorPosition), which saves it under
//! `cursor-<job>` once the entry is delivered. It must not read journal files itself.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use crate::config::{JournalTargetConfig, ScrapeConfig};
use crate::delivery::positions::PositionsView;
use crate::metrics::JournalMetrics;
use crate::model::ack::{AckToken, SourceId};
use crate::model::entry::LineBatch;
use crate::model::labels::LabelSet;
use crate::sources::relabel::Relabeler;

/// Where Promtail keeps a journal job's cursor in positions.
pub fn cursor_key(job: &str) -> String {
    format!("cursor-{job}")
}

/// A running journal reader's settings.
pub struct JournalSource {
    job: String,
    config: JournalTargetConfig,
    relabelers: Vec<Relabeler>,
    /// This machine's id, which keeps a job without `path` to the local machine's entries.
    machine_id: Option<String>,
    metrics: Option<JournalMetrics>,
}

impl JournalSource {
    pub fn new(
        job: &ScrapeConfig,
        config: &JournalTargetConfig,
        relabelers: Vec<Relabeler>,
    ) -> Self {
        let machine_id = if config.path.is_empty() {
            local_machine_id()
        } else {
            None
        };
        if config.path.is_empty() && machine_id.is_none() {
            tracing::warn!(
                job = %job.job_name,
                "no machine id in /etc/machine-id: the journal job reads every machine's \
                 journal it finds, not only this one's"
            );
        }
        JournalSource {
            job: job.job_name.clone(),
            config: config.clone(),
            relabelers,
            machine_id,
            metrics: None,
        }
    }

    /// Counts entries handed on and skipped in Promtail's journal target series.
    pub fn with_metrics(mut self, metrics: JournalMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// journalctl's arguments: after `cursor` when there is one, else `max_age` back.
    fn arguments(&self, cursor: Option<&str>) -> Vec<String> {
        let mut args: Vec<String> = [
            "--output=json",
            "--follow",
            "--no-tail",
            "--all",
            "--no-pager",
            "--quiet",
            // `--follow` alone keeps to the boot journalctl takes as current: the one in
            // /proc/sys/kernel/random/boot_id, which in a container under the unit's
            // ProtectProc= is the host's (nothing matches, nothing is shipped), and after a
            // reboot skips what the previous boot wrote past the saved cursor. Promtail
            // reads every boot; `--merge` is journalctl's only way to follow them all.
            "--merge",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !self.config.path.is_empty() {
            args.push(format!("--directory={}", self.config.path));
        }
        match cursor {
            Some(c) => args.push(format!("--after-cursor={c}")),
            None => {
                let since = Utc::now().timestamp() - self.config.max_age.0.as_secs() as i64;
                args.push(format!("--since=@{}", since.max(0)));
            }
        }
        args.extend(matches(&self.config.matches, self.machine_id.as_deref()));
        args
    }

    /// Reads until `stop`; restarts journalctl (after the last entry handed on) if it exits.
    pub async fn run(
        self,
        positions: PositionsView,
        out: mpsc::Sender<LineBatch>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (position, mut cursor) = positions.open_cursor(&cursor_key(&self.job));
        let mut seq = 0u64;
        loop {
            let args = self.arguments(cursor.as_deref());
            let mut child = match Command::new("journalctl")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(job = %self.job, error = %e, "cannot run journalctl; the journal job reads nothing");
                    break;
                }
            };
            let Some(stdout) = child.stdout.take() else {
                break;
            };
            let mut lines = BufReader::new(stdout).lines();
            let stopped = loop {
                let line = tokio::select! {
                    line = lines.next_line() => line,
                    _ = stop.wait_for(|s| *s) => break true,
                };
                let Ok(Some(line)) = line else { break false };
                let Some(entry) = self.entry(&line) else {
                    continue;
                };
                seq += 1;
                position.note_cursor(seq, &entry.cursor);
                cursor = Some(entry.cursor.clone());
                if let Some(m) = &self.metrics {
                    match (&entry.line, &entry.labels) {
                        (None, _) => m.parsing_errors.with_label_values(&["no_message"]).inc(),
                        (_, None) => m.parsing_errors.with_label_values(&["empty_labels"]).inc(),
                        _ => m.lines.inc(),
                    }
                }
                let Some(batch) = entry.batch(position.id(), seq) else {
                    continue;
                };
                // The cursor's position waits for this entry from now on.
                position.issue(&batch);
                if out.send(batch).await.is_err() {
                    break true;
                }
            };
            if stopped {
                let _ = child.kill().await;
                break;
            }
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err).await;
            }
            let status = child.wait().await;
            tracing::error!(
                job = %self.job,
                status = ?status.ok(),
                stderr = %err.trim(),
                "journalctl exited; restarting it after the last entry read"
            );
            let stop_now = tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stop_now {
                break;
            }
        }
        position.close(seq);
    }

    /// One journalctl JSON line as an entry; `None` (and a debug line) when it is not one.
    fn entry(&self, line: &str) -> Option<JournalEntry> {
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(job = %self.job, error = %e, "journalctl printed a line that is not JSON");
                return None;
            }
        };
        let object = value.as_object()?;
        let mut fields = BTreeMap::new();
        for (k, v) in object {
            if let Some(text) = field_text(v) {
                fields.insert(k.clone(), text);
            }
        }
        let cursor = fields.remove("__CURSOR")?;
        let micros: i64 = fields
            .get("__REALTIME_TIMESTAMP")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let timestamp = Utc
            .timestamp_micros(micros)
            .single()
            .map(|t| t.fixed_offset())
            .unwrap_or_else(crate::model::clock::now);
        // Address fields (`__CURSOR`, timestamps) are not journal fields.
        fields.retain(|k, _| !k.starts_with("__"));
        let line = if self.config.json {
            serde_json::to_string(&fields).ok()
        } else {
            // Promtail skips entries without a MESSAGE; the cursor still moves past them.
            fields.get("MESSAGE").cloned()
        };
        let labels = self.labels(&fields);
        Some(JournalEntry {
            cursor,
            timestamp,
            line,
            labels,
        })
    }

    /// `labels`, then relabeling over `__journal_*`; `None` when relabeling drops the entry
    /// or leaves no label (Loki needs at least one).
    fn labels(&self, fields: &BTreeMap<String, String>) -> Option<LabelSet> {
        let mut labels: BTreeMap<String, String> = self.config.labels.clone();
        for (k, v) in fields {
            labels.insert(format!("__journal_{}", k.to_ascii_lowercase()), v.clone());
        }
        if let Some(keyword) = fields.get("PRIORITY").and_then(|p| priority_keyword(p)) {
            labels.insert("__journal_priority_keyword".into(), keyword.into());
        }
        if !self.relabelers.iter().all(|r| r.apply(&mut labels)) {
            return None;
        }
        let set = LabelSet::from_pairs(labels.into_iter().filter(|(k, _)| !k.starts_with("__")));
        (!set.is_empty()).then_some(set)
    }
}

struct JournalEntry {
    cursor: String,
    timestamp: DateTime<FixedOffset>,
    /// `None` when the entry has no MESSAGE (and `json` is off): skipped.
    line: Option<String>,
    /// `None` when relabeling dropped the entry or left no label: skipped.
    labels: Option<LabelSet>,
}

impl JournalEntry {
    /// The entry as a one-line batch carrying its own timestamp; `None` when it has no labels
    /// (its cursor still counts, so it is not read again).
    fn batch(self, source: SourceId, seq: u64) -> Option<LineBatch> {
        let labels = self.labels?;
        let line = self.line?;
        let mut batch = LineBatch::new(Arc::new(labels), self.timestamp);
        batch.push(&line, Some(AckToken::line(source, seq)));
        Some(batch)
    }
}

/// journalctl's matches for `matches`. `--merge` also opens other machines' journals
/// (systemd-journal-remote's, containers' linked into /var/log/journal), which Promtail's
/// reader leaves out unless given a `path`: with `machine_id`, every OR group (`+`) is kept
/// to this machine's entries.
fn matches(matches: &str, machine_id: Option<&str>) -> Vec<String> {
    let Some(id) = machine_id else {
        return matches.split_whitespace().map(str::to_string).collect();
    };
    let this_machine = format!("_MACHINE_ID={id}");
    let mut args = vec![this_machine.clone()];
    for word in matches.split_whitespace() {
        args.push(word.to_string());
        if word == "+" {
            args.push(this_machine.clone());
        }
    }
    args
}

/// /etc/machine-id (machine-id(5): 32 lowercase hexadecimal digits), if it holds one.
fn local_machine_id() -> Option<String> {
    let text = std::fs::read_to_string("/etc/machine-id").ok()?;
    let id = text.trim();
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// journalctl's JSON: a string, a byte array for binary data, or an array of either when a
/// field repeats (the first value is taken, as Promtail's reader does).
fn field_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) if items.iter().all(|i| i.is_u64()) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(|i| i.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        serde_json::Value::Array(items) => items.first().and_then(field_text),
        _ => None,
    }
}

/// syslog(3) priority names, as Promtail's `__journal_priority_keyword`.
fn priority_keyword(priority: &str) -> Option<&'static str> {
    Some(match priority {
        "0" => "emerg",
        "1" => "alert",
        "2" => "crit",
        "3" => "error",
        "4" => "warning",
        "5" => "notice",
        "6" => "info",
        "7" => "debug",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelabelConfig;

    fn source(json: bool, relabel: Vec<RelabelConfig>) -> JournalSource {
        let job = ScrapeConfig {
            job_name: "journal".into(),
            relabel_configs: relabel,
            ..ScrapeConfig::default()
        };
        let config = JournalTargetConfig {
            json,
            labels: BTreeMap::from([("job".to_string(), "systemd-journal".to_string())]),
            ..JournalTargetConfig::default()
        };
        let relabelers = job
            .relabel_configs
            .iter()
            .map(|rc| Relabeler::new(rc).unwrap())
            .collect();
        JournalSource::new(&job, &config, relabelers)
    }

    const LINE: &str = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000123456","MESSAGE":"hello","_SYSTEMD_UNIT":"ssh.service","PRIORITY":"3","BIN":[104,105]}"#;

    #[test]
    fn message_labels_timestamp_and_relabeled_journal_fields() {
        let unit = RelabelConfig {
            source_labels: vec!["__journal__systemd_unit".into()],
            target_label: "unit".into(),
            ..RelabelConfig::default()
        };
        let level = RelabelConfig {
            source_labels: vec!["__journal_priority_keyword".into()],
            target_label: "level".into(),
            ..RelabelConfig::default()
        };
        let e = source(false, vec![unit, level]).entry(LINE).unwrap();
        assert_eq!(e.line.as_deref(), Some("hello"));
        assert_eq!(e.cursor, "s=1;i=2");
        assert_eq!(e.timestamp.timestamp_micros(), 1_700_000_000_123_456);
        let labels = e.labels.unwrap();
        assert_eq!(labels.get("unit"), Some("ssh.service"));
        assert_eq!(labels.get("level"), Some("error"));
        assert_eq!(labels.get("job"), Some("systemd-journal"));
        assert!(labels.iter().all(|(k, _)| !k.starts_with("__")));
    }

    #[test]
    fn json_mode_ships_every_field_but_address_fields() {
        let e = source(true, Vec::new()).entry(LINE).unwrap();
        let v: serde_json::Value = serde_json::from_str(e.line.as_deref().unwrap()).unwrap();
        assert_eq!(v["MESSAGE"], "hello");
        assert_eq!(v["BIN"], "hi");
        assert!(v.get("__CURSOR").is_none() && v.get("__REALTIME_TIMESTAMP").is_none());
    }

    #[test]
    fn entry_without_message_is_skipped_and_relabel_drop_drops() {
        let e = source(false, Vec::new())
            .entry(r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1"}"#)
            .unwrap();
        assert!(e.line.is_none(), "no MESSAGE, but its cursor still moves");
        let drop_ssh = RelabelConfig {
            source_labels: vec!["__journal__systemd_unit".into()],
            regex: "ssh.service".into(),
            action: crate::config::RelabelAction::Drop,
            ..RelabelConfig::default()
        };
        let e = source(false, vec![drop_ssh]).entry(LINE).unwrap();
        assert!(e.labels.is_none(), "dropped, but its cursor still moves");
    }

    #[test]
    fn arguments_start_after_the_cursor_or_max_age_back() {
        let s = source(false, Vec::new());
        let with = s.arguments(Some("s=1"));
        assert!(with.contains(&"--after-cursor=s=1".to_string()));
        assert!(!with.iter().any(|a| a.starts_with("--since")));
        let without = s.arguments(None);
        let since: i64 = without
            .iter()
            .find_map(|a| a.strip_prefix("--since=@"))
            .unwrap()
            .parse()
            .unwrap();
        let expected = Utc::now().timestamp() - 7 * 3600;
        assert!((since - expected).abs() <= 2, "{since} vs {expected}");
    }

    #[test]
    fn every_boot_is_followed_and_only_this_machines_entries_without_a_path() {
        let mut s = source(false, Vec::new());
        s.config.matches = "_SYSTEMD_UNIT=a.service + _SYSTEMD_UNIT=b.service PRIORITY=3".into();
        s.machine_id = Some("0123456789abcdef0123456789abcdef".into());
        let args = s.arguments(None);
        assert!(args.contains(&"--follow".to_string()) && args.contains(&"--merge".to_string()));
        let id = "_MACHINE_ID=0123456789abcdef0123456789abcdef";
        let matches: Vec<&str> = args
            .iter()
            .map(String::as_str)
            .skip_while(|a| a.starts_with("--"))
            .collect();
        assert_eq!(
            matches,
            [
                id,
                "_SYSTEMD_UNIT=a.service",
                "+",
                id,
                "_SYSTEMD_UNIT=b.service",
                "PRIORITY=3"
            ]
        );
    }

    #[test]
    fn a_path_reads_every_machine_and_boot_in_it() {
        let job = ScrapeConfig {
            job_name: "journal".into(),
            ..ScrapeConfig::default()
        };
        let config = JournalTargetConfig {
            path: "/var/log/journal".into(),
            matches: "PRIORITY=3".into(),
            ..JournalTargetConfig::default()
        };
        let args = JournalSource::new(&job, &config, Vec::new()).arguments(Some("c"));
        assert!(args.contains(&"--merge".to_string()));
        assert!(args.contains(&"--directory=/var/log/journal".to_string()));
        assert!(
            !args.iter().any(|a| a.starts_with("_MACHINE_ID=")),
            "{args:?}"
        );
        assert_eq!(args.last().map(String::as_str), Some("PRIORITY=3"));
    }
}
