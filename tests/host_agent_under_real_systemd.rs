//! The host agent under a real systemd: the .deb built from this tree (crate::support::deb)
//! installed with dpkg in a booted Debian container (crate::support::container), run by the
//! shipped unit with its sandbox unchanged, pushing to a receiver on the host's loopback.
//!
//! Three containers, each booted once for the checks that share its state: the package's
//! life (install, start on READY=1, status, exposure, reload, upgrade, purge), shipping
//! (files and the container's own journal, across `systemctl restart` and a watchdog kill),
//! and the sandbox (what the service may write and read, and positions under /tmp).
//! A machine that cannot boot a container fails these tests with the reason.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::container::Container;
use crate::support::deb;
use crate::support::numbered_lines::{Tally, append, line, number_of};
use crate::support::receiver::{ReceivedEntry, Receiver};
use crate::support::{eventually, watch_for_stragglers};

const UNIT: &str = "tailward.service";
const CONFIG: &str = "/etc/tailward/config.yaml";
const POSITIONS: &str = "/var/lib/tailward/positions.yaml";
const WAIT: Duration = Duration::from_secs(60);
/// Time for an entry that must not arrive (a duplicate, an excluded one) to arrive anyway.
const STRAGGLERS: Duration = Duration::from_secs(2);

/// A config pushing to `url` quickly, with positions at `positions`, and `jobs` (YAML list
/// items at two spaces).
fn agent_config(url: &str, positions: &str, jobs: &str) -> String {
    format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 5s
positions:
  filename: {positions}
  sync_period: 200ms
clients:
  - url: {url}
    batchwait: 100ms
    backoff_config:
      min_period: 50ms
      max_period: 500ms
      max_retries: 100
scrape_configs:
{jobs}"#
    )
}

fn file_job(name: &str, path: &str) -> String {
    format!(
        "  - job_name: {name}\n    static_configs:\n      - targets: [localhost]\n        \
         labels: {{job: {name}, __path__: {path}}}\n"
    )
}

/// Installs `deb` with dpkg; returns what dpkg printed.
fn install(c: &Container, deb: &Path) -> String {
    let inside = c.copy_in(deb);
    c.run(&format!("dpkg -i {inside} 2>&1"))
}

fn write_config(c: &Container, yaml: &str) {
    // Into the installed file, so its owner and mode (root:tailward 0640) stay.
    std::fs::write(c.path(CONFIG), yaml).expect("write the agent's config");
}

fn with_label<'a>(entries: &'a [ReceivedEntry], name: &str, value: &str) -> Vec<&'a ReceivedEntry> {
    entries
        .iter()
        .filter(|e| e.labels.get(name).map(String::as_str) == Some(value))
        .collect()
}

fn lines_of_job(receiver: &Receiver, job: &str) -> Vec<String> {
    with_label(&receiver.received(), "job", job)
        .into_iter()
        .map(|e| e.line.clone())
        .collect()
}

async fn wait_for_job(receiver: &Receiver, job: &str, n: usize) {
    let arrived = eventually(WAIT, || lines_of_job(receiver, job).len() >= n).await;
    assert!(
        arrived,
        "job {job}: {} of {n} entries arrived",
        lines_of_job(receiver, job).len()
    );
}

fn tally(lines: &[String], expected: std::ops::Range<usize>) -> Tally {
    Tally::of(lines.iter().map(String::as_str), expected, number_of)
}

/// The offset saved for `file` in the positions file at `positions` (a host path).
fn saved_offset(positions: &Path, file: &str) -> Option<u64> {
    let text = std::fs::read_to_string(positions).ok()?;
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix(&format!("{file}:"))
            .and_then(|v| v.trim().trim_matches('"').parse().ok())
    })
}

/// Waits until positions hold every line of `files` and have not changed for a second (the
/// journal cursors settled too).
async fn wait_for_saved_positions(c: &Container, files: &[&str]) {
    let positions = c.path(POSITIONS);
    let mut last = String::new();
    let mut since = Instant::now();
    let settled = eventually(WAIT, || {
        let now = std::fs::read_to_string(&positions).unwrap_or_default();
        if now != last {
            last = now;
            since = Instant::now();
        }
        let all_saved = files.iter().all(|f| {
            let size = std::fs::metadata(c.path(f)).map(|m| m.len()).ok();
            size.is_some() && saved_offset(&positions, f) == size
        });
        all_saved && since.elapsed() > Duration::from_secs(1)
    })
    .await;
    assert!(settled, "positions never settled:\n{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn package_installs_starts_on_ready_reloads_upgrades_and_purges() {
    let receiver = Receiver::start().await;
    let c = Container::boot("tw-package");
    // The reload below must work without procps (it brings /bin/kill), which the package
    // does not pull in and minimal images lack.
    c.run("! test -e /bin/kill && ! test -e /usr/bin/kill");

    let dpkg = install(&c, deb::package());
    assert!(
        !dpkg.to_lowercase().contains("warning"),
        "dpkg -i warned:\n{dpkg}"
    );
    let passwd = c.run("getent passwd tailward");
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {passwd}");
    assert_eq!(fields[5], "/var/lib/tailward", "{passwd}");
    assert!(fields[6].ends_with("nologin"), "{passwd}");
    let groups = c.run("id -nG tailward");
    for group in ["tailward", "adm", "systemd-journal"] {
        assert!(
            groups.split_whitespace().any(|g| g == group),
            "tailward is not in {group}: {groups}"
        );
    }
    for (path, expected) in [
        ("/usr/bin/tailward", "755 root root"),
        (CONFIG, "640 root tailward"),
        ("/var/lib/tailward", "750 tailward tailward"),
        ("/lib/systemd/system/tailward.service", "644 root root"),
    ] {
        let got = c.run(&format!("stat -L -c '%a %U %G' {path}"));
        assert_eq!(got.trim(), expected, "{path}");
    }
    // The operator enables it once the config points at Loki.
    assert_eq!(
        c.sh_text("systemctl is-enabled tailward").trim(),
        "disabled"
    );

    // Type=notify: start waits for READY=1. An agent that refuses its config never says it,
    // and the start fails instead of the unit passing for active.
    write_config(&c, "scrape_configz: []\n");
    let refused = c.sh("systemctl start tailward");
    assert!(!refused.status.success(), "started on a config it refuses");
    assert_ne!(c.sh_text("systemctl is-active tailward").trim(), "active");
    c.run("systemctl stop tailward");

    let app = "/var/log/app.log";
    let app2 = "/var/log/app2.log";
    append(&c.path(app), 0, 20);
    let one_job = agent_config(&receiver.url(), POSITIONS, &file_job("app", app));
    write_config(&c, &one_job);
    let cursor = c.journal_cursor();
    c.run("systemd-analyze log-level debug");
    c.run("systemctl enable --now tailward 2>&1");
    c.run("systemd-analyze log-level info");
    assert_eq!(c.run("systemctl is-active tailward").trim(), "active");
    let started = c.journal_after(UNIT, &cursor);
    let ready = started
        .find("Got notification message from PID")
        .and_then(|i| started[i..].find("READY=1").map(|j| i + j))
        .unwrap_or_else(|| panic!("no READY=1 heard by systemd:\n{started}"));
    let running = started
        .find("Changed start -> running")
        .unwrap_or_else(|| panic!("never running:\n{started}"));
    assert!(ready < running, "active before READY=1 arrived:\n{started}");
    wait_for_job(&receiver, "app", 20).await;
    let status = c.run("systemctl status tailward --no-pager");
    assert!(
        status.contains("Status: \"tailing ") && status.contains(" entries sent\""),
        "STATUS= not shown:\n{status}"
    );

    // The exposure systemd computes for the unit as loaded, sandbox and all.
    let security = c.run("systemd-analyze security tailward.service --no-pager");
    let exposure: f64 = security
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for tailward.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{security}"));
    eprintln!("systemd-analyze security tailward.service in the container: {exposure}");
    assert!(exposure <= 1.5, "exposure {exposure} > 1.5:\n{security}");

    // Reload: a second job starts; the agent says RELOADING=1, then READY=1.
    let pid = c.property(UNIT, "MainPID");
    append(&c.path(app2), 0, 10);
    let two_jobs = agent_config(
        &receiver.url(),
        POSITIONS,
        &format!("{}{}", file_job("app", app), file_job("app2", app2)),
    );
    write_config(&c, &two_jobs);
    let cursor = c.journal_cursor();
    c.run("systemd-analyze log-level debug");
    c.run("systemctl reload tailward 2>&1");
    wait_for_job(&receiver, "app2", 10).await;
    c.run("systemd-analyze log-level info");
    let reloaded = c.journal_after(UNIT, &cursor);
    let reloading = reloaded
        .lines()
        .position(|l| l.contains("Got notification message") && l.contains("RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 heard by systemd:\n{reloaded}"));
    let ready_again = reloaded
        .lines()
        .skip(reloading)
        .any(|l| l.contains("Got notification message") && l.contains("READY=1"));
    assert!(ready_again, "no READY=1 after RELOADING=1:\n{reloaded}");
    assert_eq!(
        c.property(UNIT, "MainPID"),
        pid,
        "reload restarted the agent"
    );

    // A broken config is refused, said so in the journal, and the running one goes on.
    let cursor = c.journal_cursor();
    write_config(&c, "scrape_configs: [unclosed\n");
    c.run("systemctl reload tailward 2>&1");
    let said = eventually(WAIT, || {
        c.journal_after(UNIT, &cursor)
            .contains("config reload failed; keeping the running config")
    })
    .await;
    assert!(said, "{}", c.journal_after(UNIT, &cursor));
    assert_eq!(c.run("systemctl is-active tailward").trim(), "active");
    assert_eq!(c.property(UNIT, "MainPID"), pid);
    append(&c.path(app), 20, 30);
    wait_for_job(&receiver, "app", 30).await;
    let cursor = c.journal_cursor();
    write_config(&c, &two_jobs);
    c.run("systemctl reload tailward 2>&1");
    let applied = eventually(WAIT, || {
        c.journal_after(UNIT, &cursor).contains("config reloaded")
    })
    .await;
    assert!(applied, "{}", c.journal_after(UNIT, &cursor));

    // Upgrade over the running package: the service restarts on the new package, with the
    // operator's config and the positions it had.
    wait_for_saved_positions(&c, &[app, app2]).await;
    let config_before = std::fs::read_to_string(c.path(CONFIG)).unwrap();
    install(&c, deb::upgrade());
    let version = c.run("dpkg-query -W -f='${Version}' tailward");
    assert!(version.ends_with("-2"), "upgraded to {version}");
    let new_pid = c.property(UNIT, "MainPID");
    assert!(
        new_pid != pid && new_pid != "0",
        "not restarted by the upgrade"
    );
    assert_eq!(c.run("systemctl is-active tailward").trim(), "active");
    assert_eq!(
        std::fs::read_to_string(c.path(CONFIG)).unwrap(),
        config_before,
        "the upgrade replaced the operator's config"
    );
    append(&c.path(app), 30, 40);
    wait_for_job(&receiver, "app", 40).await;
    watch_for_stragglers(STRAGGLERS).await;
    let t = tally(&lines_of_job(&receiver, "app"), 0..40);
    assert!(t.exactly_once(), "app across the upgrade: {t}");
    let t = tally(&lines_of_job(&receiver, "app2"), 0..10);
    assert!(t.exactly_once(), "app2 across the upgrade: {t}");

    // Purge removes everything the package made.
    c.run("apt-get purge -y tailward 2>&1");
    for gone in [
        "getent passwd tailward",
        "getent group tailward",
        "test -e /etc/tailward",
        "test -e /var/lib/tailward",
        "test -e /usr/bin/tailward",
        "test -e /lib/systemd/system/tailward.service",
        "test -e /etc/systemd/system/multi-user.target.wants/tailward.service",
    ] {
        assert!(
            !c.sh(gone).status.success(),
            "still there after apt purge: {gone}"
        );
    }
    assert_eq!(c.property(UNIT, "LoadState"), "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn files_and_the_journal_arrive_across_restart_and_a_watchdog_kill() {
    let receiver = Receiver::start().await;
    let c = Container::boot("tw-ship");
    install(&c, deb::package());
    // Older than journal_recent's max_age by the time the agent starts.
    c.run("echo aged-entry | systemd-cat -t probe-age");
    let aged_at = Instant::now();
    // A shorter watchdog than the shipped 30 s, so its kill comes quickly; the sandbox is
    // the shipped unit's.
    let drop_in = c.path("/etc/systemd/system/tailward.service.d");
    std::fs::create_dir_all(&drop_in).unwrap();
    std::fs::write(drop_in.join("watchdog.conf"), "[Service]\nWatchdogSec=3s\n").unwrap();
    c.run("systemctl daemon-reload");

    let app = "/var/log/app.log";
    let jobs = format!(
        r#"{}  - job_name: journal
    journal:
      labels: {{job: journal}}
    relabel_configs:
      - source_labels: [__journal_syslog_identifier]
        target_label: program
      - source_labels: [__journal_priority_keyword]
        target_label: level
  - job_name: journal_dir
    journal:
      path: /var/log/journal
      json: true
      matches: SYSLOG_IDENTIFIER=probe-logger + SYSLOG_IDENTIFIER=probe-age
      labels: {{job: journal_dir}}
  - job_name: journal_recent
    journal:
      max_age: 2s
      matches: SYSLOG_IDENTIFIER=probe-age
      labels: {{job: journal_recent}}
"#,
        file_job("app", app)
    );
    write_config(&c, &agent_config(&receiver.url(), POSITIONS, &jobs));
    append(&c.path(app), 0, 20);
    let age = Duration::from_secs(3);
    std::thread::sleep(age.saturating_sub(aged_at.elapsed()));
    c.run("systemctl enable --now tailward 2>&1");

    let cat_lines = |from: usize, to: usize| {
        let text: Vec<String> = (from..to).map(line).collect();
        c.run(&format!(
            "printf '%s\\n' {} | systemd-cat -t probe-cat",
            text.iter()
                .map(|l| format!("'{l}'"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    };
    cat_lines(0, 10);
    let logger: Vec<String> = (0..10)
        .map(|i| format!("logger -t probe-logger -p user.err '{}'", line(i)))
        .collect();
    c.run(&logger.join(" && "));
    c.run("echo fresh-entry | systemd-cat -t probe-age");

    // What the journal job (no path) shipped of one identifier.
    let program = |p: &str| -> Vec<String> {
        with_label(&receiver.received(), "program", p)
            .into_iter()
            .filter(|e| e.labels.get("job").map(String::as_str) == Some("journal"))
            .map(|e| e.line.clone())
            .collect()
    };
    wait_for_job(&receiver, "app", 20).await;
    let arrived = eventually(WAIT, || {
        program("probe-cat").len() >= 10 && program("probe-logger").len() >= 10
    })
    .await;
    assert!(
        arrived,
        "the journal job (no path) read {} of 10 systemd-cat and {} of 10 logger entries from \
         the container's journal",
        program("probe-cat").len(),
        program("probe-logger").len()
    );
    wait_for_job(&receiver, "journal_dir", 12).await;
    wait_for_job(&receiver, "journal_recent", 1).await;
    watch_for_stragglers(STRAGGLERS).await;

    let entries = receiver.received();
    let logger_levels: Vec<&str> = with_label(&entries, "program", "probe-logger")
        .iter()
        .filter_map(|e| e.labels.get("level").map(String::as_str))
        .collect();
    assert!(
        logger_levels.len() == 10 && logger_levels.iter().all(|l| *l == "error"),
        "logger -p user.err entries labelled {logger_levels:?}"
    );
    // path + matches + json: only the two identifiers, every field as JSON.
    let dir_messages: Vec<String> = lines_of_job(&receiver, "journal_dir")
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("journal_dir line is not JSON ({e}): {l}"));
            assert!(v.get("_MACHINE_ID").is_some(), "not every field: {l}");
            v["MESSAGE"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let mut expected: Vec<String> = (0..10).map(line).collect();
    expected.extend(["aged-entry".to_string(), "fresh-entry".to_string()]);
    let mut got = dir_messages.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "journal_dir with path and matches");
    // max_age: the entry older than it was not read at the first start.
    assert_eq!(lines_of_job(&receiver, "journal_recent"), ["fresh-entry"]);

    // systemctl restart: files and journal cursors resume where they were.
    c.run("systemctl restart tailward 2>&1");
    append(&c.path(app), 20, 30);
    cat_lines(10, 15);
    wait_for_job(&receiver, "app", 30).await;
    assert!(eventually(WAIT, || program("probe-cat").len() >= 15).await);
    watch_for_stragglers(STRAGGLERS).await;
    let t = tally(&lines_of_job(&receiver, "app"), 0..30);
    assert!(t.exactly_once(), "app across systemctl restart: {t}");
    let t = tally(&program("probe-cat"), 0..15);
    assert!(t.exactly_once(), "journal across systemctl restart: {t}");
    let t = tally(&program("probe-logger"), 0..10);
    assert!(t.exactly_once(), "journal across systemctl restart: {t}");
    assert_eq!(lines_of_job(&receiver, "journal_dir").len(), 12);
    assert_eq!(lines_of_job(&receiver, "journal_recent").len(), 1);

    // The watchdog: a stopped agent feeds nothing, systemd kills and restarts it, and it
    // resumes from what it had saved.
    wait_for_saved_positions(&c, &[app]).await;
    let pid = c.property(UNIT, "MainPID");
    c.run("systemctl kill --kill-whom=main --signal=SIGSTOP tailward");
    let stopped = Instant::now();
    append(&c.path(app), 30, 40);
    cat_lines(15, 20);
    let restarted = eventually(WAIT, || {
        c.property(UNIT, "NRestarts") == "1"
            && c.property(UNIT, "ActiveState") == "active"
            && c.property(UNIT, "MainPID") != pid
    })
    .await;
    let journal = c.journal(UNIT);
    assert!(
        restarted,
        "the watchdog did not restart a stopped agent:\n{journal}"
    );
    eprintln!(
        "a SIGSTOPped agent was restarted by the watchdog after {:?}",
        stopped.elapsed()
    );
    assert!(journal.contains("Watchdog timeout"), "{journal}");
    wait_for_job(&receiver, "app", 40).await;
    assert!(eventually(WAIT, || program("probe-cat").len() >= 20).await);
    watch_for_stragglers(STRAGGLERS).await;
    let t = tally(&lines_of_job(&receiver, "app"), 0..40);
    assert!(t.exactly_once(), "app across the watchdog's kill: {t}");
    let t = tally(&program("probe-cat"), 0..20);
    assert!(t.exactly_once(), "journal across the watchdog's kill: {t}");

    // Fed all along (three starts, WatchdogSec=3s): the agent never warned it was not.
    let journal = c.journal(UNIT);
    assert!(
        !journal.contains("watchdog not fed"),
        "a warning that cries wolf:\n{journal}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_keeps_the_agent_to_its_state_directory_and_out_of_home() {
    let receiver = Receiver::start().await;
    let c = Container::boot("tw-sandbox");
    install(&c, deb::package());
    let denied_dirs = [
        "/var/log/tailward-probe",
        "/etc/tailward-probe",
        "/opt/tailward-probe",
    ];
    c.run(&format!(
        "useradd --create-home alice && chmod 755 /home/alice && \
         echo '{}' > /home/alice/notes.log && chmod 644 /home/alice/notes.log && \
         install -d -o tailward -g tailward {}",
        line(0),
        denied_dirs.join(" ")
    ));
    // Outside the sandbox the tailward user may do all that the unit forbids below: what
    // stops it there is the unit.
    let touch_all: Vec<String> = denied_dirs
        .iter()
        .map(|d| format!("touch {d}/x && rm {d}/x"))
        .collect();
    c.run(&format!(
        "runuser -u tailward -- sh -c 'cat /home/alice/notes.log >/dev/null && {}'",
        touch_all.join(" && ")
    ));

    let app = "/var/log/app.log";
    // Positions under /tmp, as 37 of 51 public Promtail configs keep them; PrivateTmp=yes
    // gives the service a /tmp of its own.
    let tmp_positions = "/tmp/positions.yaml";
    let jobs = format!(
        "{}{}",
        file_job("app", app),
        file_job("home", "/home/alice/notes.log")
    );
    write_config(&c, &agent_config(&receiver.url(), tmp_positions, &jobs));
    append(&c.path(app), 0, 10);
    c.run("systemctl enable --now tailward 2>&1");
    wait_for_job(&receiver, "app", 10).await;

    // As the service's user, in the service's own mount namespace.
    let as_service = |cmd: &str| {
        c.sh(&format!(
            "nsenter --target=$(systemctl show -p MainPID --value tailward) --mount \
             --setuid=$(id -u tailward) --setgid=$(id -g tailward) sh -c '{cmd}'"
        ))
    };
    for dir in denied_dirs {
        let out = as_service(&format!("touch {dir}/x"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Read-only file system"),
            "the service could write to {dir}: {err}"
        );
    }
    let home = as_service("cat /home/alice/notes.log");
    assert!(
        !home.status.success(),
        "the service could read /home: {}",
        String::from_utf8_lossy(&home.stdout)
    );
    let state = as_service("touch /var/lib/tailward/probe && rm /var/lib/tailward/probe");
    assert!(
        state.status.success(),
        "the service cannot write its StateDirectory: {}",
        String::from_utf8_lossy(&state.stderr)
    );
    watch_for_stragglers(STRAGGLERS).await;
    assert!(
        lines_of_job(&receiver, "home").is_empty(),
        "a file under /home was shipped"
    );

    // The positions file is in the service's private /tmp, not the container's.
    let saved = eventually(WAIT, || {
        let out = as_service(&format!("cat {tmp_positions}"));
        String::from_utf8_lossy(&out.stdout).contains(app)
    })
    .await;
    assert!(saved, "no positions in the service's /tmp");
    assert!(!c.sh(&format!("test -e {tmp_positions}")).status.success());
    // Let the position of every line be saved before the restart.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Positions under a PrivateTmp= /tmp: systemd empties it when the service stops, so after
    // `systemctl restart` every line is sent again. The agent cannot prevent that, but it
    // says so, clearly, at every start (src/agent/sandbox.rs).
    c.run("systemctl restart tailward 2>&1");
    wait_for_job(&receiver, "app", 20).await;
    watch_for_stragglers(STRAGGLERS).await;
    let t = tally(&lines_of_job(&receiver, "app"), 0..10);
    assert!(
        t.missing.is_empty() && t.repeated.len() == 10,
        "positions under /tmp with PrivateTmp=yes: expected every line sent twice: {t}"
    );
    let journal = c.run("journalctl -u tailward --no-pager -o cat 2>&1");
    let mounts = c.run("grep -E ' /tmp | /var/tmp ' /proc/$(systemctl show -p MainPID --value tailward)/mountinfo || true");
    assert!(
        journal.contains("private /tmp (systemd PrivateTmp=)")
            && journal.contains("/var/lib/tailward/positions.yaml"),
        "the start under a private /tmp warns and says where to move positions:\n{journal}\nthe service's /tmp mounts:\n{mounts}"
    );
}
