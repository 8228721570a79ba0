//! A SIGHUP that moves a `loki_push_api` job to another port re-binds it there (the old port
//! closes) and loses none of the entries acknowledged before; at shutdown the listener stops
//! taking connections, the request in hand is still answered 204 once its entries are
//! delivered, and the agent exits.

use std::net::TcpStream;
use std::time::Duration;

use crate::support::agent_process::AgentProcess;
use crate::support::push_client::{free_port, post, protobuf_push, receiving_config};
use crate::support::receiver::{Receiver, Reply};

fn push_job(port: u16) -> String {
    format!(
        "    loki_push_api:\n      server:\n        http_listen_address: 127.0.0.1\n        http_listen_port: {port}\n"
    )
}

fn push(port: u16, line: &str) -> u16 {
    post(
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

fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_moves_the_listener_to_its_new_port_and_loses_nothing() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (free_port(), free_port());
    let config = receiving_config(dir.path(), &receiver.url(), "", &push_job(old));
    let agent = AgentProcess::start(&config, &[]);
    assert!(agent.wait_until(Duration::from_secs(20), |_| accepts(old)));
    assert_eq!(push(old, "before the reload"), 204);
    receiving_config(dir.path(), &receiver.url(), "", &push_job(new));
    agent.signal(libc::SIGHUP);
    assert!(
        agent.wait_until(Duration::from_secs(20), |_| accepts(new)),
        "{}",
        agent.stderr_text()
    );
    assert!(
        agent.wait_until(Duration::from_secs(10), |_| !accepts(old)),
        "the old port still listens"
    );
    assert_eq!(push(new, "after the reload"), 204);
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
    let port = free_port();
    let config = receiving_config(dir.path(), &receiver.url(), "", &push_job(port));
    let mut agent = AgentProcess::start(&config, &[]);
    assert!(agent.wait_until(Duration::from_secs(20), |_| accepts(port)));
    let in_hand = std::thread::spawn(move || push(port, "in hand at shutdown"));
    assert!(agent.wait_until(Duration::from_secs(10), |a| {
        a.metric("tailward_push_entries_total") >= 1.0
    }));
    // Past the client's batchwait: the push is with Loki, which holds it; now stop.
    std::thread::sleep(Duration::from_millis(400));
    agent.signal_term();
    assert!(
        agent.wait_until(Duration::from_secs(10), |_| !accepts(port)),
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
