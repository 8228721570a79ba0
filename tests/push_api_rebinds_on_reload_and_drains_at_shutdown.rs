//! A SIGHUP that moves a `loki_push_api` job's listener (here to another address) re-binds
//! it there (the old one closes) and loses none of the entries acknowledged before; at
//! shutdown the listener stops taking connections, the request in hand is still answered 204
//! once its entries are delivered, and the agent exits.

use std::net::TcpStream;
use std::time::Duration;

use crate::support::agent_process::AgentProcess;
use crate::support::push_client::{post_at, protobuf_push, push_port, receiving_config};
use crate::support::receiver::{Receiver, Reply};

/// A push job on a random port of `host`.
fn push_job(host: &str) -> String {
    format!(
        "    loki_push_api:\n      server:\n        http_listen_address: {host}\n        http_listen_port: 0\n"
    )
}

fn push(host: &str, port: u16, line: &str) -> u16 {
    post_at(
        host,
        port,
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &protobuf_push(
            r#"{job="pushed"}"#,
            &[(1_700_000_000_000_000_000, line, &[])],
        ),
    )
    .status
}

fn accepts(host: &str, port: u16) -> bool {
    TcpStream::connect((host, port)).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_moves_the_listener_to_its_new_address_and_loses_nothing() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = receiving_config(dir.path(), &receiver.url(), "", &push_job("127.0.0.1"));
    let agent = AgentProcess::start(&config, &[]);
    let old = push_port(&agent, 1);
    assert_eq!(push("127.0.0.1", old, "before the reload"), 204);
    // Another address: the job changes, so its listener is bound again there.
    receiving_config(dir.path(), &receiver.url(), "", &push_job("127.0.0.2"));
    agent.signal(libc::SIGHUP);
    let new = push_port(&agent, 2);
    assert!(
        agent.wait_until(Duration::from_secs(10), |_| !accepts("127.0.0.1", old)),
        "the old listener still takes connections"
    );
    assert_eq!(push("127.0.0.2", new, "after the reload"), 204);
    let entries = receiver.wait_for_entries(2, Duration::from_secs(20)).await;
    let mut lines: Vec<&str> = entries.iter().map(|e| e.line.as_str()).collect();
    lines.sort();
    assert_eq!(lines, ["after the reload", "before the reload"]);
    assert_eq!(agent.metric("promtail_config_reload_success_total"), 1.0);
    let _ = agent.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_answers_the_request_in_hand_once_delivered_then_exits() {
    let receiver = Receiver::start().await;
    // Loki takes its time with the first push: the request is still waiting at SIGTERM.
    receiver.script(vec![Reply::Delay(Duration::from_millis(1500))]);
    let dir = tempfile::tempdir().unwrap();
    let config = receiving_config(dir.path(), &receiver.url(), "", &push_job("127.0.0.1"));
    let mut agent = AgentProcess::start(&config, &[]);
    let port = push_port(&agent, 1);
    let in_hand = std::thread::spawn(move || push("127.0.0.1", port, "in hand at shutdown"));
    assert!(agent.wait_until(Duration::from_secs(10), |a| {
        a.metric("tailward_push_entries_total") >= 1.0
    }));
    // Past the client's batchwait: the push is with Loki, which holds it; now stop.
    std::thread::sleep(Duration::from_millis(400));
    agent.signal_term();
    assert!(
        agent.wait_until(Duration::from_secs(10), |_| !accepts("127.0.0.1", port)),
        "the listener still takes connections after SIGTERM"
    );
    assert_eq!(
        in_hand.join().unwrap(),
        204,
        "the request in hand is answered once its entries are delivered"
    );
    let status = agent.wait_exit(Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{status:?}: {}", agent.stderr_text());
    let entries = receiver.received();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].line, "in hand at shutdown");
}
