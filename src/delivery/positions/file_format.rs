//! The `positions.yaml` format: Promtail's `positions:` map (path to quoted offset) and, beside
//! it, the `identities:` map (path to device, inode and head fingerprint) and the `sources:`
//! map (path to the number of the source that read it, so a restart that resumes the same
//! file goes on as the same source), parsed and rendered in Promtail's layout, and written
//! atomically (temp file, fsync, rename, directory fsync; mode 0600).
//!
//! Owns only text and the file on disk; it must not know sources, acknowledgements or what
//! an entry means.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::Deserialize;

use super::key::{bytes_of, is_binary, key_of_bytes, readable_key};
use crate::delivery::file_identity::FileIdentity;
use crate::model::ack::SourceId;

#[derive(Deserialize)]
struct PositionsFile {
    #[serde(default)]
    positions: Option<BTreeMap<String, String>>,
    #[serde(default)]
    identities: Option<BTreeMap<String, String>>,
    #[serde(default)]
    sources: Option<BTreeMap<String, String>>,
}

/// What a positions file holds. Identities and sources are kept only for saved paths.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Loaded {
    pub(super) saved: BTreeMap<String, String>,
    pub(super) identities: BTreeMap<String, FileIdentity>,
    pub(super) sources: BTreeMap<String, SourceId>,
}

pub(super) fn parse(text: &str) -> Result<Loaded, String> {
    if text.trim().is_empty() {
        return Ok(Default::default());
    }
    let text = lift_binary_keys(text)?;
    let file: PositionsFile = crate::config::yaml::from_str(&text).map_err(|e| e.to_string())?;
    let section =
        |map: Option<BTreeMap<String, String>>| -> Result<BTreeMap<String, String>, String> {
            map.unwrap_or_default()
                .into_iter()
                .map(|(k, v)| Ok((key_text(k)?, v)))
                .collect()
        };
    let saved = section(file.positions)?;
    // An identity or source we cannot read only costs the rename detection, or the
    // disk buffer's recognition of lines it already holds, for that path.
    let identities = section(file.identities)?
        .into_iter()
        .filter(|(path, _)| saved.contains_key(path))
        .filter_map(|(path, id)| FileIdentity::parse(&id).map(|id| (path, id)))
        .collect();
    let sources = section(file.sources)?
        .into_iter()
        .filter(|(path, _)| saved.contains_key(path))
        .filter_map(|(path, id)| Some((path, SourceId(id.parse().ok()?))))
        .collect();
    Ok(Loaded {
        saved,
        identities,
        sources,
    })
}

/// Marks a key that was written `!!binary` (base64 follows): the YAML parser drops that
/// tag, and a path never holds a NUL.
const LIFTED: &str = "\0binary:";

/// Rewrites the `!!binary` keys of the file (ours, and Promtail's for names that are not
/// UTF-8: `!!binary <base64>: "<offset>"`, or for long names `? !!binary |` with the base64
/// on the lines below and `: "<offset>"` after them) as quoted keys [`key_text`] knows, since
/// the YAML parser reads the tagged text as a plain string.
fn lift_binary_keys(text: &str) -> Result<std::borrow::Cow<'_, str>, String> {
    if !text.contains("!!binary") {
        return Ok(std::borrow::Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(rest) = trimmed.strip_prefix("!!binary ") {
            // `!!binary <base64>: <value>`
            let (b64, value) = rest
                .split_once(':')
                .ok_or_else(|| format!("a !!binary key without a value: {line:?}"))?;
            push_lifted(&mut out, indent, b64.trim(), value);
            continue;
        }
        let Some(rest) = trimmed
            .strip_prefix("? ")
            .and_then(|r| r.trim_start().strip_prefix("!!binary"))
        else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        // `? !!binary <base64>` or `? !!binary |` + base64 lines, then `: <value>`.
        let mut b64: String = rest
            .trim()
            .trim_start_matches(['|', '>', '-', '+'])
            .trim()
            .to_string();
        let value = loop {
            let Some(next) = lines.next() else {
                return Err("a !!binary key without a value".into());
            };
            let t = next.trim_start();
            if let Some(v) = t.strip_prefix(':') {
                break v;
            }
            b64.push_str(t.trim());
        };
        push_lifted(&mut out, indent, &b64, value);
    }
    Ok(std::borrow::Cow::Owned(out))
}

fn push_lifted(out: &mut String, indent: &str, b64: &str, value: &str) {
    out.push_str(indent);
    out.push('"');
    out.push_str("\\0binary:");
    out.push_str(b64);
    out.push_str("\":");
    out.push_str(value);
    out.push('\n');
}

/// A key of the file: a path as text, or a path that is not UTF-8, written `!!binary` (the
/// base64 of its bytes) by us and by Promtail's YAML library, as lifted.
fn key_text(key: String) -> Result<String, String> {
    use base64::Engine as _;
    match key.strip_prefix(LIFTED) {
        None => Ok(key),
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("a !!binary key is not base64: {e}"))?;
            Ok(key_of_bytes(&bytes))
        }
    }
}

/// Renders Promtail's layout: `positions:` then `  <path>: "<offset>"`, keys quoted only when
/// plain YAML would misread them; then the identities and sources in the same layout.
pub(super) fn render(
    map: &BTreeMap<String, String>,
    identities: &BTreeMap<String, FileIdentity>,
    sources: &BTreeMap<String, SourceId>,
) -> String {
    let mut out = String::from("positions:\n");
    for (k, v) in map {
        push_entry(&mut out, k, v);
    }
    push_section(&mut out, "identities", map, identities, |id| id.to_string());
    push_section(&mut out, "sources", map, sources, |id| id.0.to_string());
    out
}

fn push_section<T>(
    out: &mut String,
    name: &str,
    map: &BTreeMap<String, String>,
    values: &BTreeMap<String, T>,
    text: impl Fn(&T) -> String,
) {
    let mut known = values
        .iter()
        .filter(|(k, _)| map.contains_key(*k))
        .peekable();
    if known.peek().is_none() {
        return;
    }
    out.push_str(name);
    out.push_str(":\n");
    for (k, v) in known {
        push_entry(out, k, &text(v));
    }
}

fn push_entry(out: &mut String, key: &str, value: &str) {
    use base64::Engine as _;
    out.push_str("  ");
    let binary = is_binary(key);
    if binary {
        // YAML text cannot hold these bytes; the readable form follows as a comment.
        out.push_str("!!binary ");
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes_of(key)));
    } else if needs_quotes(key) {
        crate::model::labels::quote_go_into(key, out);
    } else {
        out.push_str(key);
    }
    out.push_str(": ");
    crate::model::labels::quote_go_into(value, out);
    if binary {
        out.push_str("  # ");
        for c in readable_key(key).chars() {
            // A comment ends at the line's end: nothing may start a new one.
            out.push(if c.is_control() { '?' } else { c });
        }
    }
    out.push('\n');
}

fn needs_quotes(key: &str) -> bool {
    key.is_empty()
        || key.contains(": ")
        || key.contains(" #")
        || key.ends_with(':')
        || key.starts_with(|c: char| "!&*-?{}[],#|>@`\"'%: ".contains(c))
        || key.chars().any(|c| c.is_control())
}

pub(super) fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "positions".into())
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
