//! Runs the real `tailward` binary for end-to-end tests: writes its config, starts it, finds
//! the HTTP port it bound, reads its metrics, stops it with a signal.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tailward");

pub struct AgentProcess {
    child: Child,
    /// Started through a wrapper (strace): the agent is the child's child.
    wrapped: bool,
    pub port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<u8>>>,
    /// The threads copying stderr and stdout; finished once the pipes are closed.
    readers: Vec<JoinHandle<()>>,
}

/// Writes `yaml` to `dir/config.yaml` and returns its path.
pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path
}

impl AgentProcess {
    /// Starts `tailward -config.file=<config> <args>` and waits until its server listens.
    pub fn start(config: &Path, args: &[&str]) -> AgentProcess {
        Self::start_with_env(config, args, &[])
    }

    /// As [`AgentProcess::start`], with extra environment variables (`NOTIFY_SOCKET`, ...).
    pub fn start_with_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> AgentProcess {
        Self::start_under(&[], config, args, env)
    }

    /// As [`AgentProcess::start_with_env`], run through `wrapper` (e.g. `strace -f -o FILE`);
    /// signals then go to the wrapper's child, the agent itself (see [`AgentProcess::signal`]).
    pub fn start_under(
        wrapper: &[&str],
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> AgentProcess {
        Self::launch(wrapper, config, args, env, None)
    }

    /// As [`AgentProcess::start`], with the agent's soft `RLIMIT_NOFILE` lowered to `soft`.
    /// Set in the child only: all tests share this process, and the others must keep theirs.
    pub fn start_with_descriptor_limit(config: &Path, args: &[&str], soft: u64) -> AgentProcess {
        Self::launch(&[], config, args, &[], Some(soft))
    }

    fn launch(
        wrapper: &[&str],
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        descriptor_limit: Option<u64>,
    ) -> AgentProcess {
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut c = Command::new(program);
                c.args(wrapper_args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        if let Some(soft) = descriptor_limit {
            // SAFETY: between fork and exec the closure calls only getrlimit and setrlimit,
            // which are async-signal-safe, on a struct it owns; it allocates nothing.
            unsafe {
                command.pre_exec(move || {
                    let mut lim = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    lim.rlim_cur = soft.min(lim.rlim_max);
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .arg(format!("-config.file={}", config.display()))
            .args(args)
            .env("TAILWARD_LOG", "info,tailward=debug")
            // A test runner started by systemd must not have its agents talk to that systemd.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tailward");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let err_pipe = child.stderr.take().expect("stderr piped");
        let out_pipe = child.stdout.take().expect("stdout piped");
        let mut readers = Vec::new();
        {
            let stderr = stderr.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                    if std::env::var("TAILWARD_TEST_ECHO").is_ok() {
                        eprintln!("[agent] {line}");
                    }
                    stderr.lock().unwrap().push(line);
                }
            }));
        }
        {
            let stdout = stdout.clone();
            readers.push(std::thread::spawn(move || {
                let mut pipe = out_pipe;
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stdout.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }));
        }
        let mut agent = AgentProcess {
            child,
            wrapped: !wrapper.is_empty(),
            port: 0,
            stderr,
            stdout,
            readers,
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
            if Instant::now() > deadline {
                panic!("tailward did not start listening:\n{}", agent.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn listening_port(&self) -> Option<u16> {
        let lines = self.stderr.lock().unwrap();
        lines.iter().find_map(|l| {
            let rest = l.split("server listening").nth(1)?;
            let addr = rest.split("address=").nth(1)?;
            addr.split_whitespace()
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
    }

    /// The agent's process id, to read its /proc entries.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// GET `path` from the agent's HTTP server: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path)
    }

    /// POST `path` (empty body) to the agent's HTTP server: (status, body).
    pub fn post(&self, path: &str) -> (u16, String) {
        http_request(self.port, "POST", path)
    }

    /// The value of the first series whose line starts with `series` (name plus labels as
    /// rendered, e.g. `promtail_sent_entries_total{host="127.0.0.1:1234"}`), summing every
    /// series of a bare metric name when no labels are given.
    pub fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        metric_value(&body, series)
    }

    /// Waits up to `timeout` for `cond` to hold.
    pub fn wait_until(&self, timeout: Duration, mut cond: impl FnMut(&Self) -> bool) -> bool {
        super::wait_until(timeout, || cond(self))
    }

    /// Once the process has exited: waits until everything it wrote to stderr and stdout has
    /// been read, so the text returned is all of it. Bounded: a descendant still holding the
    /// pipes must not hang the test.
    fn read_to_exit(&self) {
        super::wait_until(Duration::from_secs(5), || {
            self.readers.iter().all(JoinHandle::is_finished)
        });
    }

    /// The agent's pid: our child's, or under a wrapper the wrapper's first child's.
    fn agent_pid(&self) -> i32 {
        let pid = self.child.id();
        if !self.wrapped {
            return pid as i32;
        }
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse().ok())
            .unwrap_or(pid as i32)
    }

    /// Sends `signal` (a libc signal number) to the agent without waiting.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own (grand)child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.agent_pid(), signal);
        }
    }

    /// Sends SIGTERM and waits for exit.
    /// SIGKILL: no shutdown, no final save; what is on disk is what a crash leaves.
    pub fn kill_hard(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.read_to_exit();
        self.stderr_text()
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }

    /// The exit status once the process has exited, waiting up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.read_to_exit();
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn terminate(mut self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.read_to_exit();
                return (status, self.stderr_text());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tailward did not stop on SIGTERM:\n{}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` holds an inotify watch on `path` (a directory or a file), from the
/// `fdinfo` of its inotify descriptors: what a test waits for before changing something the
/// process is to hear of by inotify rather than by polling.
pub fn has_inotify_watch(pid: u32, path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    // fdinfo prints the device in the kernel's encoding, major << 20 | minor, both in hex.
    let ino = format!("ino:{:x}", meta.ino());
    let dev = meta.dev();
    let sdev = format!(
        "sdev:{:x}",
        (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev))
    );
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:inotify")
        })
        .filter_map(|fd| {
            std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().display())).ok()
        })
        .any(|info| {
            info.lines()
                .filter_map(|l| l.strip_prefix("inotify "))
                .any(|w| {
                    w.split_whitespace().any(|f| f == ino)
                        && w.split_whitespace().any(|f| f == sdev)
                })
        })
}

pub fn http_get(port: u16, path: &str) -> (u16, String) {
    http_request(port, "GET", path)
}

fn http_request(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to agent");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read response");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, dechunk(&body, &resp))
}

/// Undoes chunked transfer encoding when the response used it.
fn dechunk(body: &str, resp: &str) -> String {
    if !resp
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn metric_value(body: &str, series: &str) -> f64 {
    let bare = !series.contains('{');
    let mut total = 0.0;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let matches = if bare {
            name == series || name.starts_with(&format!("{series}{{"))
        } else {
            name == series
        };
        if matches {
            total += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    total
}

/// A Promtail-style config with one client and one file job; `client_extra` and `stages` are
/// YAML fragments indented for their place (client keys at 4 spaces, stage items at 6).
pub fn file_job_config(
    url: &str,
    positions: &Path,
    path_glob: &str,
    client_extra: &str,
    stages: &str,
) -> String {
    format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 5s
positions:
  filename: {positions}
  sync_period: 200ms
global:
  file_watch_config:
    min_poll_frequency: 25ms
    max_poll_frequency: 100ms
target_config:
  sync_period: 500ms
clients:
  - url: {url}
    batchwait: 100ms
    backoff_config:
      min_period: 50ms
      max_period: 200ms
      max_retries: 20
{client_extra}
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [localhost]
        labels:
          job: app
          __path__: {path_glob}
    pipeline_stages:
{stages}
"#,
        positions = positions.display()
    )
}
