//! What the running service's sandbox does to the positions file: checked once at start, so
//! a positions file that cannot survive a restart is reported before lines are re-sent.
//!
//! Under systemd, `PrivateTmp=` gives the service its own /tmp (seen in
//! `/proc/self/mountinfo` as a bind mount whose root is a `systemd-private-*` directory),
//! which other processes do not see and which is deleted when the service stops: a positions
//! file there (Promtail's documented `/tmp/positions.yaml`) is lost at every restart, so every
//! file is read again from its start. `ProtectSystem=` and `ReadOnlyPaths=` mount paths
//! read-only: positions there can never be saved. Owns reading the mount table and wording the
//! warning; it must not change the config or the mounts.

use std::path::{Component, Path, PathBuf};

/// One line of `/proc/self/mountinfo`: where it is mounted, what of its filesystem it shows,
/// and its per-mount options.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    root: String,
    point: PathBuf,
    read_only: bool,
}

/// mountinfo escapes space, tab, newline and backslash as `\040`-style octal.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(code as char);
            i += 4;
            continue;
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let (root, point, options) = (fields.get(3)?, fields.get(4)?, fields.get(5)?);
            Some(Mount {
                root: unescape(root),
                point: PathBuf::from(unescape(point)),
                read_only: options.split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

/// `path` with `.` and `..` resolved lexically (symlinks are not followed: the mount that
/// holds the name is what the check is about).
fn normalise(path: &Path, cwd: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in cwd.join(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The warning for a positions file at `path`, given the mount table and the working
/// directory; `None` when nothing is wrong.
fn warning_for(path: &Path, mountinfo: &str, cwd: &Path) -> Option<String> {
    let file = normalise(path, cwd);
    let dir = file.parent().unwrap_or(Path::new("/"));
    // The last mount over the longest matching point is the one in force (mountinfo lists
    // mounts in the order they were made; `max_by_key` keeps the last of equal maxima).
    let mounts = parse_mountinfo(mountinfo);
    let mount = mounts
        .iter()
        .filter(|m| dir.starts_with(&m.point))
        .max_by_key(|m| m.point.components().count())?;
    let shown = file.display();
    if mount.root.contains("/systemd-private-") {
        return Some(format!(
            "the positions file {shown} is in this service's private {} (systemd \
             PrivateTmp=): no other process sees it and systemd deletes it when the service \
             stops, so after every restart all files are read again from their start. Set \
             positions.filename to /var/lib/tailward/positions.yaml (see \"Moving from \
             Promtail\" in README.md for carrying Promtail's positions over)",
            mount.point.display()
        ));
    }
    if mount.read_only {
        return Some(format!(
            "the positions file {shown} is on a read-only mount ({}; under systemd, \
             ProtectSystem= or ReadOnlyPaths= do this): positions cannot be saved, so after a \
             restart files are read again from their start. Set positions.filename to \
             /var/lib/tailward/positions.yaml, or add its directory to ReadWritePaths=",
            mount.point.display()
        ));
    }
    None
}

/// The warning for the positions file `path` in this process's mount namespace, if any.
pub fn positions_warning(path: &Path) -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    warning_for(path, &mountinfo, &cwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 254:0 /tmp/systemd-private-6f3a-tailward.service-Xy1/tmp /tmp rw,nosuid,nodev - ext4 /dev/vda rw
31 22 254:0 /var/tmp/systemd-private-6f3a-tailward.service-Zq2/tmp /var/tmp rw - ext4 /dev/vda rw
32 22 254:0 /usr /usr ro,relatime - ext4 /dev/vda rw
33 22 254:0 /var/lib/tailward /var/lib/tailward rw,relatime - ext4 /dev/vda rw
34 22 254:0 /etc /etc ro,relatime - ext4 /dev/vda rw
35 22 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn a_private_tmp_stacked_on_a_tmpfs_tmp_is_the_one_in_force() {
        // As systemd-nspawn (and most hosts) have it: /tmp is a tmpfs, and PrivateTmp= mounts
        // the service's own directory over it.
        const STACKED: &str = "\
276 275 0:42 / /tmp rw,nosuid,nodev shared:74 master:2 - tmpfs tmpfs rw
319 276 0:42 /systemd-private-06019-tailward.service-yIXQUI/tmp /tmp rw,nosuid,nodev shared:75 master:2 - tmpfs tmpfs rw
";
        let w = warning_for(Path::new("/tmp/positions.yaml"), STACKED, Path::new("/"));
        assert!(w.is_some_and(|w| w.contains("private /tmp (systemd PrivateTmp=)")));
    }

    #[test]
    fn private_tmp_is_named_with_the_fix() {
        let w = warning_for(Path::new("/tmp/positions.yaml"), MOUNTS, Path::new("/")).unwrap();
        assert!(w.contains("private /tmp (systemd PrivateTmp=)"), "{w}");
        assert!(w.contains("/var/lib/tailward/positions.yaml"), "{w}");
        let w = warning_for(
            Path::new("/var/tmp/p/positions.yaml"),
            MOUNTS,
            Path::new("/"),
        );
        assert!(w.unwrap().contains("private /var/tmp"));
    }

    #[test]
    fn read_only_mounts_are_named_and_writable_ones_pass() {
        let w = warning_for(
            Path::new("/etc/promtail/positions.yaml"),
            MOUNTS,
            Path::new("/"),
        )
        .unwrap();
        assert!(w.contains("read-only mount (/etc;"), "{w}");
        assert_eq!(
            warning_for(
                Path::new("positions.yaml"),
                MOUNTS,
                Path::new("/var/lib/tailward")
            ),
            None
        );
        assert_eq!(
            warning_for(Path::new("/mnt/with space/p.yaml"), MOUNTS, Path::new("/")),
            None
        );
        let w = warning_for(
            Path::new("/var/lib/../../usr/p.yaml"),
            MOUNTS,
            Path::new("/"),
        );
        assert!(w.unwrap().contains("read-only mount (/usr;"));
    }

    #[test]
    fn no_warning_outside_a_sandbox() {
        let host = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n";
        assert_eq!(
            warning_for(Path::new("/tmp/positions.yaml"), host, Path::new("/")),
            None
        );
    }
}
