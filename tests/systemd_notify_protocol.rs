//! Plays systemd: listens on a `NOTIFY_SOCKET` datagram socket and checks what the agent
//! says over its life: `READY=1` once it tails, `WATCHDOG=1` every half `WATCHDOG_USEC`,
//! `STATUS=` with files and sent entries, `RELOADING=1` then `READY=1` around SIGHUP, and
//! `STOPPING=1` at shutdown.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::receiver::Receiver;

/// Every datagram the agent sent, with when it arrived.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<(Instant, String)>>>);

impl Heard {
    fn listen(socket: UnixDatagram) -> Heard {
        let heard = Heard::default();
        let out = heard.clone();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                        out.0.lock().unwrap().push((Instant::now(), msg));
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if Arc::strong_count(&out.0) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        heard
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.0.lock().unwrap().clone()
    }

    /// Index of the first message from `from` on that has the line `line`.
    fn wait_for(&self, from: usize, line: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.all();
            if let Some(i) = all
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, (_, m))| m.lines().any(|l| l == line))
                .map(|(i, _)| i)
            {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no {line:?} after message {from}; heard: {:?}",
                all.iter().map(|(_, m)| m).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_speaks_sd_notify_ready_watchdog_reload_and_stopping() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
    let cfg = file_job_config(
        &receiver.url(),
        &dir.path().join("positions.yaml"),
        &log.display().to_string(),
        "",
        "      - static_labels:\n          env: test\n",
    );
    let config = write_config(dir.path(), &cfg);
    let sock_path = dir.path().join("notify.sock");
    let heard = Heard::listen(UnixDatagram::bind(&sock_path).unwrap());

    // systemd's WatchdogSec=2s: the agent must ping at least every 2 s, and means to every 1 s.
    let watchdog_usec = 2_000_000u64;
    let agent = AgentProcess::start_with_env(
        &config,
        &[],
        &[
            ("NOTIFY_SOCKET", &sock_path.display().to_string()),
            ("WATCHDOG_USEC", &watchdog_usec.to_string()),
        ],
    );

    let ready = heard.wait_for(0, "READY=1", Duration::from_secs(20));
    assert!(
        heard.all()[ready].1.contains("STATUS=tailing"),
        "READY=1 comes with a status: {:?}",
        heard.all()[ready].1
    );
    receiver.wait_for_entries(3, Duration::from_secs(20)).await;

    // Watch the watchdog for a while: the pings and the gaps between them over 5.5 s are
    // what is judged, so the window is the scenario, not a wait for something.
    let watch_from = heard.all().len();
    std::thread::sleep(Duration::from_millis(5500));
    let pings: Vec<Instant> = heard.all()[watch_from..]
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect();
    assert!(
        pings.len() >= 3,
        "expected a WATCHDOG=1 about every second over 5.5 s, got {}",
        pings.len()
    );
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap < Duration::from_micros(watchdog_usec),
            "a watchdog gap of {gap:?} would have got the agent killed"
        );
        assert!(
            gap >= Duration::from_millis(500),
            "WATCHDOG=1 every {gap:?}: should be half WATCHDOG_USEC (1 s), not faster"
        );
    }
    // The status follows what was sent.
    let status_seen = heard.all().iter().any(|(_, m)| {
        m.lines()
            .any(|l| l == "STATUS=tailing 1 files, 3 entries sent")
    });
    assert!(
        status_seen,
        "no up-to-date STATUS=: {:?}",
        heard.all().iter().map(|(_, m)| m).collect::<Vec<_>>()
    );

    // SIGHUP: RELOADING=1, then READY=1 again.
    let before_reload = heard.all().len();
    agent.signal(libc::SIGHUP);
    let reloading = heard.wait_for(before_reload, "RELOADING=1", Duration::from_secs(10));
    let reloading_msg = heard.all()[reloading].1.clone();
    assert!(
        reloading_msg.contains("MONOTONIC_USEC="),
        "RELOADING=1 carries MONOTONIC_USEC for Type=notify-reload: {reloading_msg:?}"
    );
    heard.wait_for(reloading + 1, "READY=1", Duration::from_secs(10));
    assert!(agent.wait_until(Duration::from_secs(5), |a| {
        a.metric("promtail_config_reload_success_total") == 1.0
    }));

    // Shutdown: STOPPING=1.
    let before_stop = heard.all().len();
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
    heard.wait_for(before_stop, "STOPPING=1", Duration::from_secs(5));
}

#[test]
fn without_notify_socket_the_agent_runs_and_tails() {
    // The agent must not need systemd: same config, no NOTIFY_SOCKET, and it still serves.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "x\n").unwrap();
    let cfg = file_job_config(
        "http://127.0.0.1:9/loki/api/v1/push",
        &dir.path().join("positions.yaml"),
        &log.display().to_string(),
        "",
        "      - static_labels:\n          env: test\n",
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    assert!(agent.wait_until(Duration::from_secs(10), |a| a.get("/ready").0 == 200));
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("sd_notify failed"), "{stderr}");
}
