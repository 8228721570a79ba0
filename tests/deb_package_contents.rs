//! The Debian package: `cargo deb` (cargo-deb, which scripts/test installs) builds it from
//! the binary this test run built (crate::support::deb), and `dpkg-deb` shows it holds the
//! binary, the shipped unit, the reference config as a conffile, and a postinst that creates
//! the system user; the binary is stripped.
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

/// The section names of a little-endian ELF64 file (what `readelf -S` lists).
fn elf_section_names(path: &Path) -> Vec<String> {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(elf[4], 2, "ELF64");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 0x18);
    (0..shnum)
        .map(|i| {
            let start = strtab + u32_at(header(i));
            let end = start + elf[start..].iter().position(|&b| b == 0).unwrap();
            String::from_utf8_lossy(&elf[start..end]).into_owned()
        })
        .collect()
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
    // The binary is stripped: no debug sections (its line tables go to the dbgsym package).
    // `.debug_gdb_scripts` is a loaded section (gdb's pretty-printer hook), not debug info.
    let is_debug_info = |s: &&String| s.starts_with(".debug_") && *s != ".debug_gdb_scripts";
    let built = elf_section_names(Path::new(env!("CARGO_BIN_EXE_tailward")));
    assert!(
        built.iter().any(|s| is_debug_info(&s)),
        "the test build has line tables, so the check can see them: {built:?}"
    );
    let sections = elf_section_names(&root.join("usr/bin/tailward"));
    assert!(sections.iter().any(|s| s == ".text"), "{sections:?}");
    let debug: Vec<&String> = sections.iter().filter(is_debug_info).collect();
    assert!(
        debug.is_empty(),
        "/usr/bin/tailward is not stripped: {debug:?}"
    );
    // Its line tables are in the dbgsym package beside it.
    let ddeb = std::fs::read_dir(deb.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "ddeb"))
        .expect("cargo deb wrote a -dbgsym .ddeb");
    let symbols = run(Command::new("dpkg-deb").arg("-c").arg(&ddeb));
    assert!(
        symbols
            .lines()
            .any(|l| l.contains("./usr/lib/debug/.build-id/") && l.ends_with(".debug")),
        "{symbols}"
    );
    assert!(!contents.contains("/usr/lib/debug/"), "{contents}");
    let check = run(Command::new(root.join("usr/bin/tailward"))
        .arg(format!(
            "-config.file={}",
            root.join("etc/tailward/config.yaml").display()
        ))
        .arg("-check-syntax"));
    assert!(check.contains("Valid config file!"), "{check}");
}
