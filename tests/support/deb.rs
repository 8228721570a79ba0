//! The Debian package of this tree, built by cargo-deb (which scripts/test installs) from the
//! debug binary this test run built: once per run, shared by every test that installs or
//! inspects it (no second, release build inside the suite; a release package is `cargo deb`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One cargo-deb at a time: both write into target/.
static BUILDING: Mutex<()> = Mutex::new(());

/// The package as `cargo deb` makes it (revision 1).
pub fn package() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| build("1"))
}

/// The same package with a higher revision (2), for upgrading over [`package`].
pub fn upgrade() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| build("2"))
}

fn build(revision: &str) -> PathBuf {
    let _one = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deb-{revision}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("package directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(ROOT)
        .args(["deb", "--no-build", "--profile", "dev", "--fast"])
        .args(["--deb-revision", revision, "-o"])
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo deb (scripts/test installs cargo-deb): {e}"));
    assert!(
        out.status.success(),
        "cargo deb failed (scripts/test installs cargo-deb 3.8.0):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_dir(&dir)
        .expect("package directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("cargo deb wrote a .deb")
}
