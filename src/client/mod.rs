//! Placeholder until the Loki client lands (same public API).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ack::AckSender;
use crate::config::{ClientConfig, LimitsConfig};
use crate::entry::Outgoing;
use crate::metrics::Metrics;

pub struct ClientHandle {
    tx: mpsc::Sender<Vec<Outgoing>>,
    task: JoinHandle<()>,
}

impl ClientHandle {
    pub fn sender(&self) -> mpsc::Sender<Vec<Outgoing>> {
        self.tx.clone()
    }
    pub async fn finish(self, deadline: Duration) {
        drop(self.tx);
        let _ = tokio::time::timeout(deadline, self.task).await;
    }
}

#[derive(Debug)]
pub struct ClientError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ClientError {}

pub fn spawn(
    _index: usize,
    _cfg: &ClientConfig,
    _limits: &LimitsConfig,
    _metrics: Arc<Metrics>,
    _acks: AckSender,
) -> Result<ClientHandle, ClientError> {
    let (tx, mut rx) = mpsc::channel::<Vec<Outgoing>>(64);
    let task = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    Ok(ClientHandle { tx, task })
}
