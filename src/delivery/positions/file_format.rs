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
    use figment::providers::{Format, Yaml};
    let file: PositionsFile = figment::Figment::from(Yaml::string(text))
        .extract()
        .map_err(|e| e.to_string())?;
    let saved = file.positions.unwrap_or_default();
    // An identity or source we cannot read only costs the rename detection, or the
    // disk buffer's recognition of lines it already holds, for that path.
    let identities = file
        .identities
        .unwrap_or_default()
        .into_iter()
        .filter(|(path, _)| saved.contains_key(path))
        .filter_map(|(path, id)| FileIdentity::parse(&id).map(|id| (path, id)))
        .collect();
    let sources = file
        .sources
        .unwrap_or_default()
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
    out.push_str("  ");
    if needs_quotes(key) {
        crate::model::labels::quote_go_into(key, out);
    } else {
        out.push_str(key);
    }
    out.push_str(": ");
    crate::model::labels::quote_go_into(value, out);
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
