//! The `positions.yaml` format: Promtail's `positions:` map (path to quoted offset) and the
//! `identities:` map beside it, parsed and rendered in Promtail's layout, and written
//! atomically (temp file, fsync, rename; mode 0600).
//!
//! Owns only text and the file on disk; it must not know sources, acknowledgements or what
//! an entry means.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::Deserialize;

use crate::delivery::file_identity::FileIdentity;

#[derive(Deserialize)]
struct PositionsFile {
    #[serde(default)]
    positions: Option<BTreeMap<String, String>>,
    #[serde(default)]
    identities: Option<BTreeMap<String, String>>,
}

pub(super) type Maps = (BTreeMap<String, String>, BTreeMap<String, FileIdentity>);

pub(super) fn parse(text: &str) -> Result<Maps, String> {
    if text.trim().is_empty() {
        return Ok(Default::default());
    }
    let file: PositionsFile = crate::config::yaml::from_str(text).map_err(|e| e.to_string())?;
    let positions = file.positions.unwrap_or_default();
    // An identity we cannot read only costs the rename detection for that path.
    let identities = file
        .identities
        .unwrap_or_default()
        .into_iter()
        .filter(|(path, _)| positions.contains_key(path))
        .filter_map(|(path, id)| FileIdentity::parse(&id).map(|id| (path, id)))
        .collect();
    Ok((positions, identities))
}

/// Renders Promtail's layout: `positions:` then `  <path>: "<offset>"`, keys quoted only when
/// plain YAML would misread them; then the identities in the same layout.
pub(super) fn render(
    map: &BTreeMap<String, String>,
    identities: &BTreeMap<String, FileIdentity>,
) -> String {
    let mut out = String::from("positions:\n");
    for (k, v) in map {
        push_entry(&mut out, k, v);
    }
    let known: Vec<_> = identities
        .iter()
        .filter(|(k, _)| map.contains_key(*k))
        .collect();
    if !known.is_empty() {
        out.push_str("identities:\n");
        for (k, id) in known {
            push_entry(&mut out, k, &id.to_string());
        }
    }
    out
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
