//! Which HTTP codec a downstream connection speaks: HTTP/2 with prior knowledge (h2c) opens
//! with the connection preface (RFC 9113 §3.4); anything else is HTTP/1.x. The bytes read to
//! decide are given back to the codec first ([`Prefixed`]).
//!
//! Deciding here rather than in hyper-util's `auto` builder gives each codec its own request
//! service (`http_server.rs`): HTTP/2 spawns each stream as a task, moving the request's future
//! at every hand-over, so it boxes that future and moves a pointer; HTTP/1.1 keeps the future
//! in the connection's own slot, where a box would be an allocation per request for nothing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::downstream_io::DownstreamIo;
use crate::write_through::write_through;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Http1,
    Http2,
}

/// Reads until the bytes are the HTTP/2 preface or cannot be: one read for almost every
/// client, whose first segment holds its whole preface or request line.
pub(crate) async fn sniff(mut stream: DownstreamIo) -> io::Result<(Codec, Prefixed)> {
    let mut prefix = [0u8; H2_PREFACE.len()];
    let mut filled = 0;
    let codec = loop {
        let read = stream.read(&mut prefix[filled..]).await?;
        let end = filled + read;
        // A client that closes before deciding gets the HTTP/1.1 codec, which sees the end.
        if read == 0 || prefix[filled..end] != H2_PREFACE[filled..end] {
            filled = end;
            break Codec::Http1;
        }
        filled = end;
        if filled == H2_PREFACE.len() {
            break Codec::Http2;
        }
    };
    let prefixed = Prefixed {
        prefix,
        start: 0,
        end: filled,
        stream,
    };
    Ok((codec, prefixed))
}

/// A connection whose first bytes were read already: reads return them before the socket's.
pub(crate) struct Prefixed {
    prefix: [u8; H2_PREFACE.len()],
    start: usize,
    end: usize,
    stream: DownstreamIo,
}

impl Prefixed {
    /// The connection.
    pub(crate) fn stream(&self) -> &DownstreamIo {
        &self.stream
    }

    /// The connection, for a reply written outside the codec (`head_timer.rs`).
    pub(crate) fn stream_mut(&mut self) -> &mut DownstreamIo {
        &mut self.stream
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start < this.end {
            let count = (this.end - this.start).min(buf.remaining());
            buf.put_slice(&this.prefix[this.start..this.start + count]);
            this.start += count;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

write_through!(Prefixed, stream);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// What the server side of a connection sniffs, and then reads, when a client sends
    /// `chunks` (each written and flushed on its own) and closes.
    async fn sniffed(chunks: &[&[u8]]) -> (Codec, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let client = tokio::spawn(async move {
            let mut client = TcpStream::connect(address).await.expect("connect");
            client.set_nodelay(true).expect("nodelay");
            for chunk in chunks {
                client.write_all(&chunk).await.expect("write");
                client.flush().await.expect("flush");
                tokio::task::yield_now().await;
            }
        });
        let (server, _) = listener.accept().await.expect("accept");
        let (codec, mut prefixed) = sniff(DownstreamIo::Plain(server)).await.expect("sniff");
        client.await.expect("client");
        let mut all = Vec::new();
        prefixed.read_to_end(&mut all).await.expect("read");
        (codec, all)
    }

    #[tokio::test]
    async fn the_preface_means_http2_and_every_byte_is_read_again() {
        let sent = [&H2_PREFACE[..], b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"].concat();
        let (codec, read) = sniffed(&[&sent]).await;
        assert_eq!(codec, Codec::Http2);
        assert_eq!(read, sent);
    }

    #[tokio::test]
    async fn a_preface_split_across_segments_is_still_http2() {
        let (codec, read) = sniffed(&[b"PRI * HT", b"TP/2.0\r\n\r\nSM\r\n", b"\r\n"]).await;
        assert_eq!(codec, Codec::Http2);
        assert_eq!(read, H2_PREFACE);
    }

    #[tokio::test]
    async fn a_request_line_is_http1_even_one_sharing_the_first_letters() {
        for request in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"PRI / HTTP/1.1\r\n\r\n",
            b"P",
        ] {
            let (codec, read) = sniffed(&[request]).await;
            assert_eq!(codec, Codec::Http1, "{request:?}");
            assert_eq!(read, request);
        }
    }

    #[tokio::test]
    async fn a_client_that_closes_at_once_gets_http1_and_an_end() {
        let (codec, read) = sniffed(&[]).await;
        assert_eq!(codec, Codec::Http1);
        assert!(read.is_empty());
    }
}
