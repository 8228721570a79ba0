//! Cargo.toml's `rust-version` is the lowest toolchain that builds Cargo.lock: the highest
//! `rust-version` among the locked packages (`cargo metadata`), and README asks for the same.
//! (clippy's incompatible_msrv, on by default, holds our own code to it.) An older toolchain
//! then stops at once with cargo's clear message instead of failing deep in a dependency.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// "1.91" or "1.88.0" as (1, 91, 0), (1, 88, 0).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// The host's target triple, as rustc names it.
fn host_triple() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

#[test]
fn rust_version_is_what_the_lockfile_needs_and_what_readme_asks_for() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The packages built here: others' sources (Windows, Android) need not be downloaded.
    let out = Command::new(cargo)
        .current_dir(ROOT)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .arg(format!("--filter-platform={}", host_triple()))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let ours = packages
        .iter()
        .find(|p| p["name"] == "tailward")
        .and_then(|p| p["rust_version"].as_str())
        .expect("Cargo.toml sets rust-version")
        .to_string();
    let (needed, by) = packages
        .iter()
        .filter(|p| p["name"] != "tailward")
        .filter_map(|p| {
            let rv = p["rust_version"].as_str()?;
            Some((
                version(rv),
                format!("{} {} ({rv})", p["name"], p["version"]),
            ))
        })
        .max()
        .expect("locked packages declare rust-version");
    assert_eq!(
        version(&ours),
        needed,
        "rust-version = {ours:?}, but the lockfile needs exactly what {by} asks for"
    );

    // Every "X.Y or newer" in README names the same toolchain.
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let asked: Vec<&str> = readme
        .split(" or newer")
        .filter_map(|before| before.rsplit([' ', '`', '(']).next())
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    assert!(
        !asked.is_empty(),
        "README names no Rust version (\"1.xx or newer\")"
    );
    for v in asked {
        assert_eq!(
            version(v),
            version(&ours),
            "README asks for Rust {v}, Cargo.toml's rust-version is {ours}"
        );
    }
}
