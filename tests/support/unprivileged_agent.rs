//! Runs the real `tailward` binary as an unprivileged user, so file permissions apply to it
//! as they do on a host where the agent is not root: as `nobody` through util-linux `setpriv`
//! when the tests run as root, as the current user otherwise.
//!
//! It owns only starting and stopping that process and reading its log; HTTP and metric
//! parsing are [`super::agent_process`]'s. It must not change what the agent is given.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::agent_process::{BIN, http_get, metric_value};

pub fn running_as_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Gives `dir` to the user the agent will run as (so it can write its positions file there)
/// and lets everyone traverse it; a no-op when not root.
pub fn hand_over_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    if running_as_root() {
        let status = Command::new("chown")
            .arg("nobody:nogroup")
            .arg(dir)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown nobody:nogroup {}", dir.display());
    }
}

pub struct UnprivilegedAgent {
    child: Child,
    pub port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The thread copying stderr; finished once the pipe is closed.
    reader: JoinHandle<()>,
}

impl UnprivilegedAgent {
    /// Starts `tailward -config.file=<config>` and waits until its server listens.
    pub fn start(config: &Path) -> UnprivilegedAgent {
        let mut cmd = if running_as_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--",
                BIN,
            ]);
            c
        } else {
            Command::new(BIN)
        };
        let mut child = cmd
            .arg(format!("-config.file={}", config.display()))
            .env("TAILWARD_LOG", "info,tailward=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tailward (setpriv is in Debian's util-linux)");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("stderr piped");
        let reader = {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    stderr.lock().unwrap().push(line);
                }
            })
        };
        let mut agent = UnprivilegedAgent {
            child,
            port: 0,
            stderr,
            reader,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(port) = agent.listening_port() {
                agent.port = port;
                return agent;
            }
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("tailward exited early ({status}):\n{}", agent.stderr_text());
            }
            assert!(
                Instant::now() < deadline,
                "tailward did not start listening:\n{}",
                agent.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn listening_port(&self) -> Option<u16> {
        let lines = self.stderr.lock().unwrap();
        lines.iter().find_map(|l| {
            let addr = l
                .split("server listening")
                .nth(1)?
                .split("address=")
                .nth(1)?;
            addr.split_whitespace()
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The process id while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        self.alive().then(|| self.child.id())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// See [`super::agent_process::AgentProcess::metric`].
    pub fn metric(&self, series: &str) -> f64 {
        let (_, body) = http_get(self.port, "/metrics");
        metric_value(&body, series)
    }

    /// Sends SIGTERM and waits up to `within` for the exit; `None` if it did not exit (the
    /// process is then killed).
    pub fn terminate_within(mut self, within: Duration) -> (Option<ExitStatus>, String) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // All it wrote, not what the reader thread happened to have copied yet.
                super::wait_until(Duration::from_secs(5), || self.reader.is_finished());
                return (Some(status), self.stderr_text());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return (None, self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for UnprivilegedAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
