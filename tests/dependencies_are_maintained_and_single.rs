//! The crates issue 15 moved off stay gone, and the one crate that was in the tree twice is
//! there once: checked on the lockfile, so a dependency bump that brings them back fails here.

const LOCKFILE: &str = include_str!("../Cargo.lock");

/// The versions of `name` that Cargo.lock holds.
fn locked_versions(name: &str) -> Vec<String> {
    let mut versions = Vec::new();
    let mut lines = LOCKFILE.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"")
            && let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = "))
        {
            versions.push(v.trim_matches('"').to_string());
        }
    }
    versions
}

#[test]
fn deprecated_and_unmaintained_crates_are_not_in_the_lockfile() {
    // serde_yaml: deprecated by its author; rustls-pemfile: unmaintained (RUSTSEC-2025-0134).
    for name in ["serde_yaml", "rustls-pemfile"] {
        assert_eq!(
            locked_versions(name),
            Vec::<String>::new(),
            "{name} is locked"
        );
    }
}

#[test]
fn base64_is_in_the_tree_once() {
    let versions = locked_versions("base64");
    assert_eq!(versions.len(), 1, "base64 versions locked: {versions:?}");
    // The reader itself: a crate that is surely there is found.
    assert_eq!(locked_versions("tokio").len(), 1);
}
