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
use crate::tls_stats::{TlsCounters, cipher_name, version_name};

pub(crate) type DownstreamIo = MaybeTls<TlsStream<TcpStream>>;

/// What the access log's TLS operators read of the connection a request came over, in the
/// request's extensions; plaintext requests have none.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionTls(pub Arc<TlsSummary>);

/// A TLS connection as Envoy's command operators print it.
#[derive(Debug)]
pub(crate) struct TlsSummary {
    /// `%REQUESTED_SERVER_NAME%`.
    pub sni: Option<Box<str>>,
    /// `%DOWNSTREAM_TLS_VERSION%`.
    pub version: Option<&'static str>,
    /// `%DOWNSTREAM_TLS_CIPHER%`.
    pub cipher: Option<&'static str>,
    /// `%DOWNSTREAM_PEER_URI_SAN%`, `%DOWNSTREAM_PEER_DNS_SAN%`: joined by `,`.
    pub peer_uri_sans: Option<Box<str>>,
    pub peer_dns_sans: Option<Box<str>>,
}

impl TlsSummary {
    fn of(session: &tokio_rustls::rustls::ServerConnection) -> Self {
        let sans = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| outrider_tls::PeerSans::of(leaf).ok())
            .unwrap_or_default();
        let joined = |names: Vec<String>| (!names.is_empty()).then(|| names.join(",").into());
        TlsSummary {
            sni: session.server_name().map(Into::into),
            version: session.protocol_version().and_then(version_name),
            cipher: session
                .negotiated_cipher_suite()
                .and_then(|suite| cipher_name(u16::from(suite.suite()))),
            peer_uri_sans: joined(sans.uri),
            peer_dns_sans: joined(sans.dns),
        }
    }
}

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

    /// What the access log's operators read of the connection, over TLS.
    pub(crate) fn tls_summary(&self) -> Option<TlsSummary> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(stream) => Some(TlsSummary::of(stream.get_ref().1)),
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
