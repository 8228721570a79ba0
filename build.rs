//! Build-time facts for `promtail_build_info`: the compiler's version (its `goversion`
//! label). Revision and branch come from TAILWARD_REVISION / TAILWARD_BRANCH when set.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TAILWARD_REVISION");
    println!("cargo:rerun-if-env-changed=TAILWARD_BRANCH");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TAILWARD_RUSTC_VERSION={version}");
}
