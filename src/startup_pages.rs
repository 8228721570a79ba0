//! Gives back the resident pages of the agent's own code and read-only data once startup is
//! over.
//!
//! Parsing the config (serde_path_to_error, figment, YAML), compiling regexes, loading TLS
//! roots and building the HTTP stack touch several MiB of the binary that a running agent
//! never executes again, and the kernel maps the code around each page it faults in, so
//! nearly the whole binary stays counted in the agent's RSS. Unmapping those pages leaves
//! them in the page cache: what the agent still runs is mapped again on its next use.
//!
//! Owns only that one `madvise`. It must never touch a mapping whose pages may differ from
//! the file (relocated data, anything written): only the executable's code and its first
//! read-only segment, and only when none of their pages is a private copy (a debugger's or
//! uprobe's breakpoint), since dropping those would silently undo them.

use std::path::Path;

/// Unmaps the pages of the executable's code and first read-only segment; returns how many
/// bytes of address range were released (0 where this is not possible).
pub fn release() -> usize {
    let Ok(exe) = std::env::current_exe() else {
        return 0;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut released = 0;
    for m in releasable(&smaps, &exe) {
        // SAFETY: the range is a whole mapping of the executable file with no private
        // (written) page; MADV_DONTNEED on it only drops page-table entries that the next
        // access fills again from the same file contents.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            released += m.end - m.start;
        }
    }
    released
}

#[derive(Debug, PartialEq)]
struct Mapping {
    start: usize,
    end: usize,
}

/// The mappings of `exe` in `smaps` that are safe to drop: code (`r-xp`) or the segment at
/// file offset 0 (`r--p`: headers, rodata, unwind tables; relocated data lives in a later
/// segment), with no anonymous (copied-on-write) page.
fn releasable(smaps: &str, exe: &Path) -> Vec<Mapping> {
    let exe = exe.to_string_lossy();
    let mut out = Vec::new();
    let mut current: Option<Mapping> = None;
    for line in smaps.lines() {
        if let Some(anon) = line.strip_prefix("Anonymous:") {
            let copied = anon.trim().trim_end_matches("kB").trim() != "0";
            if let Some(m) = current.take()
                && !copied
            {
                out.push(m);
            }
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms), Some(offset)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // A header line: a new mapping starts; the previous candidate (if any) had no
        // Anonymous field and is not trusted.
        current = None;
        let path = fields.nth(2).unwrap_or("");
        let code = perms == "r-xp";
        let first_read_only = perms == "r--p" && offset.trim_start_matches('0').is_empty();
        if path == exe && (code || first_read_only) {
            current = Some(Mapping { start, end });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0429000 r--p 00000000 08:01 123 /usr/bin/tailward
Rss:                3420 kB
Anonymous:             0 kB
55d0a0429000-55d0a0da9000 r-xp 00428000 08:01 123 /usr/bin/tailward
Rss:                8480 kB
Anonymous:             0 kB
55d0a0daa000-55d0a0f16000 r--p 00da8000 08:01 123 /usr/bin/tailward
Rss:                1440 kB
Anonymous:          1440 kB
55d0a0f16000-55d0a0f1b000 rw-p 00f13000 08:01 123 /usr/bin/tailward
Rss:                  20 kB
Anonymous:            20 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 948 kB
Anonymous:             0 kB
";

    #[test]
    fn only_the_executables_code_and_first_read_only_segment_are_released() {
        let got = releasable(SMAPS, Path::new("/usr/bin/tailward"));
        assert_eq!(
            got,
            vec![
                Mapping {
                    start: 0x55d0a0000000,
                    end: 0x55d0a0429000
                },
                Mapping {
                    start: 0x55d0a0429000,
                    end: 0x55d0a0da9000
                },
            ],
            "relocated data (r--p at a later offset) and writable data must stay"
        );
    }

    #[test]
    fn code_with_a_private_copy_of_a_page_is_left_alone() {
        let patched = SMAPS.replacen(
            "Rss:                8480 kB\nAnonymous:             0 kB",
            "Rss:                8480 kB\nAnonymous:             4 kB",
            1,
        );
        let got = releasable(&patched, Path::new("/usr/bin/tailward"));
        assert_eq!(
            got,
            vec![Mapping {
                start: 0x55d0a0000000,
                end: 0x55d0a0429000
            }],
            "a breakpoint's copied page must not be dropped"
        );
    }

    fn resident_code_kib() -> u64 {
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_string_lossy();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_code = false;
        let mut total = 0;
        for line in smaps.lines() {
            if let Some(rss) = line.strip_prefix("Rss:") {
                if in_code {
                    total += rss
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap();
                }
            } else {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() >= 5 && f[0].contains('-') {
                    in_code = f[1] == "r-xp" && f.get(5).copied() == Some(exe.as_ref());
                }
            }
        }
        total
    }

    #[test]
    fn releasing_lowers_the_resident_code_and_the_code_still_runs() {
        let before = resident_code_kib();
        assert!(release() > 0, "the test binary's code is releasable");
        let after = resident_code_kib();
        assert!(
            after < before,
            "resident code {after} KiB after release, {before} KiB before"
        );
        // Code runs again from the page cache.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
