//! A real HTTP/1.1 upstream for scenarios that send traffic through the client: it answers
//! every request `200` with the body `ok`, until dropped.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::Failure;

/// The body of every answer.
pub const UPSTREAM_BODY: &str = "ok";

/// An upstream on 127.0.0.1 (port 0); it stops when dropped.
pub struct Upstream {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Result<Upstream, Failure> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Failure::new(format!("the upstream cannot listen: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| Failure::new(format!("the upstream's address: {e}")))?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = service_fn(|_request| async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            UPSTREAM_BODY.as_bytes(),
                        ))))
                    });
                    // A client that goes away mid-request is not the scenario's concern.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Upstream { address, task })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
