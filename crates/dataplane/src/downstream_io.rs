//! A downstream connection's bytes: the socket itself, or what TLS decrypts from it (the
//! chain's `transport_socket`).

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use outrider_model::DownstreamTls;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::rustls::server::Acceptor;
use tokio_rustls::server::TlsStream;

use crate::maybe_tls::MaybeTls;
use crate::tls_stats::TlsCounters;

pub(crate) type DownstreamIo = MaybeTls<TlsStream<TcpStream>>;

/// The SNI of the TLS connection a request came over (`%REQUESTED_SERVER_NAME%`), in the
/// request's extensions; plaintext requests have none.
#[derive(Debug, Clone)]
pub(crate) struct RequestedServerName(pub Arc<str>);

impl MaybeTls<TlsStream<TcpStream>> {
    /// The connection as its filter chain has it: plaintext, or after a TLS handshake that
    /// must end within `timeout` (`transport_socket_connect_timeout`; none by default, as in
    /// Envoy). A client that sends no SNI where the context requires one is refused.
    /// The handshake's outcome goes to `counters` (the listener's `ssl.*`).
    pub(crate) async fn open(
        stream: TcpStream,
        tls: Option<&DownstreamTls>,
        timeout: Option<Duration>,
        counters: Option<&TlsCounters>,
    ) -> io::Result<Self> {
        let Some(tls) = tls else {
            return Ok(MaybeTls::Plain(stream));
        };
        let handshake = async {
            let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
            let hello = start.client_hello();
            if tls.require_sni && hello.server_name().is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "no SNI, and the TLS context requires one",
                ));
            }
            let config = tls.server.for_client(hello.alpn());
            start.into_stream(config).await
        };
        let finished = match timeout {
            Some(limit) => tokio::time::timeout(limit, handshake)
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timeout",
                    ))
                }),
            None => handshake.await,
        };
        match (&finished, counters) {
            (Ok(stream), Some(counters)) => counters.handshake_done(stream.get_ref().1),
            (Err(error), Some(counters)) => counters.handshake_failed(error),
            (_, None) => {}
        }
        Ok(MaybeTls::Tls(Box::new(finished?)))
    }

    /// The SNI the client sent, over TLS.
    pub(crate) fn server_name(&self) -> Option<&str> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(stream) => stream.get_ref().1.server_name(),
        }
    }

    /// Writes `bytes` now if the socket takes them, without waiting: a short local reply on
    /// a connection about to close.
    pub(crate) fn write_now(&mut self, cx: &mut Context<'_>, bytes: &[u8]) {
        match self {
            MaybeTls::Plain(stream) => {
                let _ = stream.try_write(bytes);
            }
            MaybeTls::Tls(stream) => {
                let _ = stream.get_mut().1.writer().write_all(bytes);
                let _ = Pin::new(&mut **stream).poll_flush(cx);
            }
        }
    }
}
