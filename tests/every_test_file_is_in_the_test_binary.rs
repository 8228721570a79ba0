//! The end-to-end tests are one binary (Cargo.toml sets `autotests = false`), so a file in
//! tests/ that tests.rs does not name is never compiled and its tests never run: six files
//! of issue 15 sat unrun that way. Every tests/*.rs file must be a `mod` of tests.rs.

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn every_file_in_tests_is_a_module_of_tests_rs() {
    let dir = std::path::Path::new(ROOT).join("tests");
    let binary = std::fs::read_to_string(dir.join("tests.rs")).expect("read tests/tests.rs");
    let named: Vec<&str> = binary
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("list tests/") {
        let path = entry.expect("read tests/ entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if stem != "tests" {
                files.push(stem);
            }
        }
    }
    assert!(files.len() > 50, "found only {files:?}");
    let unnamed: Vec<&String> = files
        .iter()
        .filter(|f| !named.contains(&f.as_str()))
        .collect();
    assert!(unnamed.is_empty(), "tests/*.rs never compiled: {unnamed:?}");
}
