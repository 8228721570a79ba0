//! A real systemd for end-to-end tests: a Debian tree made once per machine with debootstrap
//! (cached outside the repository, keyed by its recipe) and booted under systemd-nspawn, each
//! container on a writable overlay of that tree. Containers share the host's network, so an
//! agent inside reaches a receiver on the host's loopback.
//!
//! Owns building and caching the tree, booting a container, running commands in it (through
//! `nsenter` into its namespaces) and tearing it down. It must not know what the tests check.
//! A machine that cannot build or boot a container fails the test with the reason: nothing is
//! skipped.

use std::fs::{self, File};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Beyond debootstrap's minbase: systemd as PID 1 and the bus systemctl talks to. Nothing
/// else, so what the package needs and does not declare (procps for /bin/kill, say) shows.
const INCLUDE: &str = "systemd,systemd-sysv,dbus";

/// What `finish_tree` adds, in words. Part of the cache key: change it with the steps.
const STEPS: &str = "v1: /etc/hosts naming localhost (a Debian install has one, debootstrap \
                     writes none); /var/log/journal, so journald keeps a persistent journal";

/// Where trees are kept: outside the repository and any clone of it, so CI's fresh clones
/// reuse the machine's tree.
fn cache_root() -> PathBuf {
    std::env::var_os("TAILWARD_CONTAINER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/tailward-test"))
}

fn command_exists(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The host's Debian release (`VERSION_CODENAME`), which the tree copies.
fn host_suite() -> String {
    let text = fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("cannot build a container tree: no VERSION_CODENAME in /etc/os-release (not Debian?)"))
}

/// The Debian mirror apt uses for `suite` (its `main` component): deb822 `.sources` files
/// and one-line `sources.list` entries. debootstrap must fetch from it, as nothing else may
/// be reachable.
fn apt_mirror(suite: &str) -> Option<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        if file.extension().is_some_and(|e| e == "sources") {
            for stanza in text.split("\n\n") {
                let field = |name: &str| {
                    stanza.lines().find_map(|l| {
                        l.strip_prefix(name)
                            .and_then(|rest| rest.strip_prefix(':'))
                            .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                    })
                };
                let (Some(uris), Some(suites), Some(components)) =
                    (field("URIs"), field("Suites"), field("Components"))
                else {
                    continue;
                };
                if suites.iter().any(|s| s == suite)
                    && components.iter().any(|c| c == "main")
                    && let Some(uri) = uris.into_iter().next()
                {
                    return Some(uri);
                }
            }
        } else {
            for line in text.lines() {
                let words: Vec<&str> = line
                    .split_whitespace()
                    .filter(|w| !w.starts_with('['))
                    .collect();
                if let ["deb", uri, s, components @ ..] = words.as_slice()
                    && *s == suite
                    && components.contains(&"main")
                {
                    return Some(uri.to_string());
                }
            }
        }
    }
    None
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Fails the test, saying why this machine cannot run containers, when it cannot.
fn require_container_support() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "cannot boot a container: systemd-nspawn and debootstrap need root (run scripts/test as root)"
    );
    for (tool, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
        ("nsenter", "util-linux"),
    ] {
        assert!(
            command_exists(tool),
            "cannot boot a container: {tool} is missing (Debian package {package}; scripts/test installs it)"
        );
    }
}

/// The cached tree for this machine, built first if missing. Concurrent callers, in this
/// process or another, wait for one build.
pub fn tree() -> PathBuf {
    require_container_support();
    let suite = host_suite();
    let mut hash = Sha256::new();
    hash.update(format!("{suite}\nminbase\n{INCLUDE}\n{STEPS}"));
    let key: String = hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache_root().join(format!("{suite}-{key}"));
    let tree = dir.join("tree");
    // The tree is renamed into place only once complete.
    if tree.is_dir() {
        return tree;
    }
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot build a container tree: {}: {e}", dir.display()));
    let lock = File::create(dir.join("lock"))
        .unwrap_or_else(|e| panic!("cannot build a container tree: lock file: {e}"));
    // SAFETY: a valid descriptor; the lock is released when `lock` is closed.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } == 0;
    assert!(locked, "cannot lock {}", dir.display());
    if tree.is_dir() {
        return tree;
    }
    let mirror = apt_mirror(&suite).unwrap_or_else(|| {
        panic!("cannot build a container tree: apt has no mirror for {suite} main in /etc/apt/sources.list*")
    });
    let partial = dir.join("partial");
    // Left by a build that was interrupted.
    if partial.exists() {
        let _ = fs::remove_dir_all(&partial);
    }
    let log = dir.join("debootstrap.log");
    let log_file = File::create(&log).expect("debootstrap log");
    let started = Instant::now();
    eprintln!(
        "building the container tree {} (debootstrap {suite} from {mirror}; once per machine)",
        tree.display()
    );
    let status = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={INCLUDE}"))
        .arg(&suite)
        .arg(&partial)
        .arg(&mirror)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .status()
        .unwrap_or_else(|e| panic!("cannot run debootstrap: {e}"));
    assert!(
        status.success(),
        "cannot build a container tree: debootstrap failed ({status}); the end of {}:\n{}",
        log.display(),
        tail(&log, 30)
    );
    finish_tree(&partial);
    fs::rename(&partial, &tree).expect("move the finished tree into place");
    eprintln!("container tree built in {:?}", started.elapsed());
    tree
}

/// The steps of [`STEPS`].
fn finish_tree(root: &Path) {
    fs::write(
        root.join("etc/hosts"),
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    )
    .expect("write /etc/hosts");
    fs::create_dir_all(root.join("var/log/journal")).expect("create /var/log/journal");
}

/// A booted container. Dropping it powers it off and removes its overlay.
pub struct Container {
    name: String,
    nspawn: Child,
    /// The container's PID 1 (systemd), as the host sees it.
    leader: u32,
    root: PathBuf,
    overlay: bool,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The children of `pid` whose command name is `comm`.
fn child_named(pid: u32, comm: &str) -> Option<u32> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for task in tasks.filter_map(Result::ok) {
        let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let name = fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            if name.trim() == comm {
                return Some(child);
            }
        }
    }
    None
}

impl Container {
    /// Boots a container named `name` from the cached tree and waits until its systemd has
    /// finished starting up.
    pub fn boot(name: &str) -> Container {
        let tree = tree();
        let dir = tempfile::Builder::new()
            .prefix(&format!("tailward-{name}-"))
            .tempdir()
            .expect("container directory");
        let root = dir.path().join("root");
        let upper = dir.path().join("upper");
        let work = dir.path().join("work");
        for d in [&root, &upper, &work] {
            fs::create_dir(d).expect("container directories");
        }
        // An overlay costs nothing per boot; a copy (where overlayfs is missing) a few seconds.
        let overlay = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                tree.display(),
                upper.display(),
                work.display()
            ))
            .arg(&root)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !overlay {
            let copied = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", tree.display()))
                .arg(&root)
                .status()
                .is_ok_and(|s| s.success());
            assert!(copied, "cannot copy the container tree {}", tree.display());
        }
        let log = dir.path().join("nspawn.log");
        let log_file = File::create(&log).expect("nspawn log");
        let started = Instant::now();
        let nspawn = Command::new("systemd-nspawn")
            .args([
                "--quiet",
                // No systemd-machined or host systemd to register with or to make a scope.
                "--register=no",
                "--keep-unit",
                "--link-journal=no",
                "--boot",
            ])
            .arg(format!("--machine={name}"))
            .arg(format!("--directory={}", root.display()))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot boot a container: cannot run systemd-nspawn: {e}"));
        let mut container = Container {
            name: name.to_string(),
            nspawn,
            leader: 0,
            root,
            overlay,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        container.leader = loop {
            if let Some(pid) = child_named(container.nspawn.id(), "systemd") {
                break pid;
            }
            if let Ok(Some(status)) = container.nspawn.try_wait() {
                panic!(
                    "cannot boot a container: systemd-nspawn exited ({status}):\n{}",
                    tail(&container.log, 30)
                );
            }
            assert!(
                Instant::now() < deadline,
                "cannot boot a container: no systemd in it after 60 s:\n{}",
                tail(&container.log, 30)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // Until systemd listens on its private socket, systemctl answers "offline" (or, in
        // the first moments, nothing).
        let state = loop {
            let out = container.sh("timeout 60 systemctl is-system-running --wait");
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !(state.is_empty() || state == "offline") || Instant::now() >= deadline {
                break format!("{state} {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let state = state.trim().to_string();
        assert!(
            state == "running" || state == "degraded",
            "container {name} did not finish booting ({state:?}):\n{}\n{}",
            container.sh_text("systemctl --failed --no-pager; journalctl -b --no-pager | tail -40"),
            tail(&container.log, 30)
        );
        eprintln!(
            "container {name}: booted to {state} in {:?}",
            started.elapsed()
        );
        container
    }

    /// Runs `script` with `sh -c` inside, as root, with a clean environment.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .arg(format!("--target={}", self.leader))
            .arg("--all")
            .args([
                "/usr/bin/env",
                "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                "SYSTEMD_COLORS=0",
                "/bin/sh",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run nsenter: {e}"))
    }

    /// What `script` printed, stdout and stderr, whatever its exit status.
    pub fn sh_text(&self, script: &str) -> String {
        let out = self.sh(script);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Runs `script` and returns its stdout; fails the test, with its output, if it fails.
    pub fn run(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in container {}: `{script}` failed ({}):\n{}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Where the container's `inside` (on its root file system, not a tmpfs mounted in it)
    /// is on the host.
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// Copies the host's `file` into the container's `/root/`; returns its path inside.
    pub fn copy_in(&self, file: &Path) -> String {
        let name = file.file_name().expect("a file name").to_string_lossy();
        let inside = format!("/root/{name}");
        fs::copy(file, self.path(&inside)).expect("copy into the container");
        inside
    }

    /// A unit's property (`systemctl show -p NAME --value`).
    pub fn property(&self, unit: &str, name: &str) -> String {
        self.run(&format!("systemctl show -p {name} --value {unit}"))
            .trim()
            .to_string()
    }

    /// A unit's journal since the container booted.
    pub fn journal(&self, unit: &str) -> String {
        self.run(&format!("journalctl -u {unit} --no-pager -o cat"))
    }

    /// The newest journal entry's cursor, to read what comes after it with [`Self::journal_after`].
    pub fn journal_cursor(&self) -> String {
        self.run("journalctl -n 1 -q --show-cursor --no-pager -o cat | sed -n 's/^-- cursor: //p'")
            .trim()
            .to_string()
    }

    /// A unit's journal after `cursor`.
    pub fn journal_after(&self, unit: &str, cursor: &str) -> String {
        self.run(&format!(
            "journalctl -u {unit} --no-pager -o cat --after-cursor='{cursor}'"
        ))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // systemd-nspawn answers SIGTERM by asking the container's systemd to power off.
        // SAFETY: the pid is our child's, not yet reaped.
        if matches!(self.nspawn.try_wait(), Ok(None)) {
            unsafe { libc::kill(self.nspawn.id() as i32, libc::SIGTERM) };
        }
        let exited = |nspawn: &mut Child, within: Duration| {
            let deadline = Instant::now() + within;
            while matches!(nspawn.try_wait(), Ok(None)) {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            true
        };
        if !exited(&mut self.nspawn, Duration::from_secs(20)) {
            // The container's PID 1 outlives a killed systemd-nspawn; killed itself, it takes
            // every process of the container with it.
            if self.leader != 0 {
                // SAFETY: the container's init, which only this container's nspawn reaps.
                unsafe { libc::kill(self.leader as i32, libc::SIGKILL) };
            }
            if !exited(&mut self.nspawn, Duration::from_secs(5)) {
                let _ = self.nspawn.kill();
                let _ = self.nspawn.wait();
            }
        }
        if self.overlay {
            let unmounted = Command::new("umount")
                .arg(&self.root)
                .status()
                .is_ok_and(|s| s.success());
            if !unmounted {
                let _ = Command::new("umount").arg("-l").arg(&self.root).status();
            }
        }
    }
}
