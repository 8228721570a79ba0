//! The Debian package: `cargo deb` (cargo-deb, which scripts/test installs) builds it from
//! the binary this test run built (crate::support::deb), and `dpkg-deb` shows it holds the binary, the shipped
//! unit, the reference config as a conffile, and a postinst that creates the system user.
//! Fails, never skips, when cargo-deb or dpkg-deb is missing.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn deb_holds_binary_unit_conffile_and_creates_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let deb = crate::support::deb::package();

    let contents = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    let entry = |path: &str| {
        contents
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{contents}"))
            .to_string()
    };
    assert!(entry("/usr/bin/tailward").starts_with("-rwxr-xr-x 0/0 "));
    assert!(entry("/usr/lib/systemd/system/tailward.service").starts_with("-rw-r--r--"));
    // The config may hold Loki credentials: not world-readable.
    assert!(entry("/etc/tailward/config.yaml").starts_with("-rw-r-----"));

    let field = |name: &str| run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name));
    assert_eq!(field("Package").trim(), "tailward");
    assert_eq!(
        field("Version").trim(),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(field("Architecture").trim(), "amd64");
    assert_eq!(field("Section").trim(), "admin");
    let depends = field("Depends");
    assert!(
        depends.contains("adduser"),
        "postinst needs adduser: {depends}"
    );
    assert!(depends.contains("libc6"), "{depends}");

    // Control files: conffiles and maintainer scripts.
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/tailward/config.yaml");
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(postinst.contains("daemon-reload"), "{postinst}");
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    assert!(postrm.contains("purge"), "{postrm}");

    // Files: what ships is what the repository holds, and the binary runs that config.
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    let same = |packaged: &str, source: &str| {
        assert_eq!(
            std::fs::read_to_string(root.join(packaged)).unwrap(),
            std::fs::read_to_string(Path::new(ROOT).join(source)).unwrap(),
            "{packaged} differs from {source}"
        );
    };
    same(
        "usr/lib/systemd/system/tailward.service",
        "examples/systemd/tailward.service",
    );
    same("etc/tailward/config.yaml", "packaging/config.yaml");
    let check = run(Command::new(root.join("usr/bin/tailward"))
        .arg(format!(
            "-config.file={}",
            root.join("etc/tailward/config.yaml").display()
        ))
        .arg("-check-syntax"));
    assert!(check.contains("Valid config file!"), "{check}");
}
