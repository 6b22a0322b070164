//! TCP health checks: connect, write the `send` payload, and pass once every `receive` block
//! has been read, in order. With no `receive` blocks it is a connect-only check (Envoy then
//! closes at once, without writing `send`).

use outrider_model::TcpHealthCheck;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::outcome::CheckOutcome;
use crate::payload;
use crate::target::Target;

/// Bytes read while waiting for the expected blocks before giving up on the answer (Envoy
/// would wait for the timeout; this bounds the memory a chatty host can take meanwhile).
const MAX_RESPONSE: usize = 1024 * 1024;

pub(crate) struct TcpChecker {
    config: TcpHealthCheck,
    target: Target,
    reuse_connection: bool,
    connection: Option<TcpStream>,
}

impl TcpChecker {
    pub(crate) fn new(config: TcpHealthCheck, target: Target, reuse_connection: bool) -> Self {
        Self {
            config,
            target,
            reuse_connection,
            connection: None,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.connection = None;
    }

    pub(crate) async fn check(&mut self) -> CheckOutcome {
        let mut stream = match self.connection.take() {
            Some(stream) => stream,
            None => match TcpStream::connect(self.target.addr).await {
                Ok(stream) => stream,
                Err(e) => return CheckOutcome::network(format!("connect: {e}")),
            },
        };
        if self.config.receive.is_empty() {
            // Connected: that is the whole check. Dropping the stream closes it.
            return CheckOutcome::passed();
        }
        let _ = stream.set_nodelay(true);
        if !self.config.send.is_empty()
            && let Err(e) = stream.write_all(&self.config.send).await
        {
            return CheckOutcome::network(format!("write: {e}"));
        }
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) => {
                    return CheckOutcome::network(format!(
                        "closed by the host after {} bytes without the expected payload",
                        received.len()
                    ));
                }
                Ok(n) => n,
                Err(e) => return CheckOutcome::network(format!("read: {e}")),
            };
            received.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if payload::matches(&self.config.receive, &received) {
                break;
            }
            if received.len() > MAX_RESPONSE {
                return CheckOutcome::network(format!(
                    "{} bytes received without the expected payload",
                    received.len()
                ));
            }
        }
        if self.reuse_connection {
            self.connection = Some(stream);
        }
        CheckOutcome::passed()
    }
}
