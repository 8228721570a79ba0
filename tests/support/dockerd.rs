//! A real Docker daemon for end-to-end tests: Debian's `dockerd` (package docker.io, which
//! starts its own containerd) run in a temporary directory with its own `--data-root`,
//! `--exec-root`, socket and pidfile, no bridge and no iptables, so tests never touch a
//! host's daemon nor each other's. Images are made without a registry: busybox-static's
//! `/bin/busybox` in a rootfs with applet symlinks, `tar | docker import`.
//!
//! Owns starting, restarting and stopping the daemon and running the `docker` CLI against
//! it. It must not know what the tests check. A daemon that cannot start fails the test with
//! its log: nothing is skipped.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's CLI (a `docker` earlier in PATH may be another build).
pub const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const BUSYBOX: &str = "/bin/busybox";

/// The image every test container runs.
pub const IMAGE: &str = "tailward-busybox:1";

/// Applets the containers use.
const APPLETS: &[&str] = &[
    "sh", "seq", "sleep", "echo", "cat", "yes", "head", "printf", "true",
];

pub struct Dockerd {
    dir: tempfile::TempDir,
    socket: PathBuf,
    child: Option<Child>,
    driver: &'static str,
    /// More daemon flags (a TLS listener).
    extra: Vec<String>,
}

impl Dockerd {
    /// Starts a daemon (overlay2, or vfs where overlay2 cannot mount) and imports [`IMAGE`].
    pub fn start() -> Dockerd {
        let dir = tempfile::Builder::new()
            .prefix("tw-dockerd")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("docker.sock");
        Self::start_at(dir, socket)
    }

    /// As [`Self::start`] with the socket at `socket` (a test pointing the agent at a daemon
    /// that is not there yet starts it here later).
    pub fn start_at(dir: tempfile::TempDir, socket: PathBuf) -> Dockerd {
        Self::start_with(dir, socket, Vec::new())
    }

    /// As [`Self::start_at`] with more daemon flags (`-H tcp://...`, `--tlsverify`, ...).
    pub fn start_with(dir: tempfile::TempDir, socket: PathBuf, extra: Vec<String>) -> Dockerd {
        let mut d = Dockerd {
            dir,
            socket,
            child: None,
            driver: "overlay2",
            extra,
        };
        if let Err(log) = d.launch() {
            eprintln!("dockerd with overlay2 did not start; trying vfs:\n{log}");
            d.driver = "vfs";
            if let Err(log) = d.launch() {
                panic!("dockerd ({DOCKERD}, Debian package docker.io) did not start:\n{log}");
            }
        }
        d.import_image();
        d
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `host:` for docker_sd_configs.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("dockerd.log")
    }

    fn launch(&mut self) -> Result<(), String> {
        let root = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(DOCKERD)
            .arg(format!("--data-root={}", root.join("data").display()))
            .arg(format!("--exec-root={}", root.join("exec").display()))
            .arg(format!("--pidfile={}", root.join("docker.pid").display()))
            .arg(format!("--host=unix://{}", self.socket.display()))
            .arg("--iptables=false")
            .arg("--bridge=none")
            .arg(format!("--storage-driver={}", self.driver))
            .arg("--shutdown-timeout=1")
            .arg("--log-level=warn")
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {DOCKERD} (install docker.io): {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.ping() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("dockerd exited ({status}):\n{}", self.log_tail()));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "dockerd did not answer within 60s:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Whether the daemon answers `GET /_ping`.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(&self.socket) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
    }

    /// Stops the daemon (its containers stop with it); [`Self::restart`] brings it back.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the daemon we started.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.launch() {
            panic!("dockerd did not start again:\n{log}");
        }
    }

    /// Runs the CLI against this daemon.
    pub fn try_docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {DOCKER} (install docker.io): {e}"))
    }

    /// Runs the CLI; its standard output, trimmed. Panics with its error when it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.try_docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts a detached container running `script` under sh, with `--network none`;
    /// `extra` goes before the image (`-t`, `--name x`, `--label k=v`). Its ID.
    pub fn run(&self, extra: &[&str], script: &str) -> String {
        let mut args = vec!["run", "-d", "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        self.docker(&args)
    }

    /// Waits until the container has exited.
    pub fn wait_exit(&self, id: &str) {
        self.docker(&["wait", id]);
    }

    fn import_image(&self) {
        let rootfs = self.dir.path().join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).expect("rootfs");
        std::fs::copy(BUSYBOX, bin.join("busybox"))
            .unwrap_or_else(|e| panic!("{BUSYBOX} (Debian package busybox-static): {e}"));
        for applet in APPLETS {
            let link = bin.join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", &link).expect("applet link");
            }
        }
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar");
        let import = Command::new(DOCKER)
            .arg("-H")
            .arg(self.host())
            .args(["import", "-", IMAGE])
            .stdin(tar.stdout.take().expect("tar output"))
            .output()
            .expect("docker import");
        let tarred = tar.wait().expect("tar");
        assert!(tarred.success(), "tar of the rootfs failed");
        assert!(
            import.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&import.stderr)
        );
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.try_docker(&["ps", "-aq"]);
            let ids = String::from_utf8_lossy(&ids.stdout).to_string();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.try_docker(&args);
            }
        }
        // A daemon stopped cleanly has unmounted its layers; what is left is files.
        self.stop();
    }
}
