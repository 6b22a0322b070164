//! A downstream connection's bytes: the socket itself, or what TLS decrypts from it (the
//! chain's `transport_socket`). One type for both, so the codecs and the TCP proxy are built
//! once; plaintext pays a branch per read and write.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use outrider_model::DownstreamTls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::rustls::server::Acceptor;
use tokio_rustls::server::TlsStream;

pub(crate) enum DownstreamIo {
    Plain(TcpStream),
    /// Boxed: rustls's connection state is a few KB.
    Tls(Box<TlsStream<TcpStream>>),
}

impl DownstreamIo {
    /// The connection as its filter chain has it: plaintext, or after a TLS handshake that
    /// must end within `timeout` (`transport_socket_connect_timeout`; none by default, as in
    /// Envoy). A client that sends no SNI where the context requires one is refused.
    pub(crate) async fn open(
        stream: TcpStream,
        tls: Option<&DownstreamTls>,
        timeout: Option<Duration>,
    ) -> io::Result<Self> {
        let Some(tls) = tls else {
            return Ok(DownstreamIo::Plain(stream));
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
        let stream = match timeout {
            Some(limit) => tokio::time::timeout(limit, handshake)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timeout"))??,
            None => handshake.await?,
        };
        Ok(DownstreamIo::Tls(Box::new(stream)))
    }

    /// Writes `bytes` now if the socket takes them, without waiting: a short local reply on
    /// a connection about to close.
    pub(crate) fn write_now(&mut self, cx: &mut Context<'_>, bytes: &[u8]) {
        match self {
            DownstreamIo::Plain(stream) => {
                let _ = stream.try_write(bytes);
            }
            DownstreamIo::Tls(stream) => {
                let _ = stream.get_mut().1.writer().write_all(bytes);
                let _ = Pin::new(&mut **stream).poll_flush(cx);
            }
        }
    }
}

impl AsyncRead for DownstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DownstreamIo::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            DownstreamIo::Tls(stream) => Pin::new(&mut **stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DownstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DownstreamIo::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            DownstreamIo::Tls(stream) => Pin::new(&mut **stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DownstreamIo::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            DownstreamIo::Tls(stream) => Pin::new(&mut **stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            DownstreamIo::Plain(stream) => stream.is_write_vectored(),
            DownstreamIo::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DownstreamIo::Plain(stream) => Pin::new(stream).poll_flush(cx),
            DownstreamIo::Tls(stream) => Pin::new(&mut **stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DownstreamIo::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            DownstreamIo::Tls(stream) => Pin::new(&mut **stream).poll_shutdown(cx),
        }
    }
}
