//! WebSocket echo at `/ws` (RFC 6455 over an HTTP/1.1 upgrade): every data frame comes back
//! unchanged, pings get pongs, a close is answered with a close. Enough to check that a proxy
//! passes upgrades through; not a general WebSocket implementation (no extensions, no h2
//! extended CONNECT).

use base64::Engine as _;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::handler::{Body, full, text};

/// Appended to the client's key before hashing (RFC 6455 section 1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Frames larger than this close the connection with 1009 (message too big).
const MAX_FRAME: u64 = 16 * 1024 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_TOO_BIG: u16 = 1009;

pub(crate) fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.uri().path() == "/ws"
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Answers the handshake and, once hyper hands over the connection, echoes on it in a task of
/// its own (an upgraded connection outlives its HTTP request).
pub(crate) fn accept(
    req: &mut Request<Incoming>,
    shutdown: watch::Receiver<bool>,
) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return text(
            StatusCode::BAD_REQUEST,
            "missing sec-websocket-key\n".into(),
        );
    };
    if req
        .headers()
        .get("sec-websocket-version")
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut response = text(
            StatusCode::UPGRADE_REQUIRED,
            "only WebSocket version 13 is supported\n".into(),
        );
        response
            .headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return response;
    }
    let accept = accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                if let Err(e) = echo(TokioIo::new(upgraded), shutdown).await {
                    tracing::debug!(error = %e, "websocket echo ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut response = Response::new(full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert("sec-websocket-accept", accept);
    }
    response
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

enum ReadOutcome {
    Frame(Frame),
    /// The peer broke the protocol: close with this code.
    Violation(u16),
}

async fn echo<S>(mut stream: S, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let outcome = tokio::select! {
            outcome = read_frame(&mut stream) => outcome?,
            () = crate::server::stopped(&mut shutdown) => {
                return write_close(&mut stream, CLOSE_GOING_AWAY).await;
            }
        };
        let frame = match outcome {
            ReadOutcome::Frame(frame) => frame,
            ReadOutcome::Violation(code) => return write_close(&mut stream, code).await,
        };
        match frame.opcode {
            OP_CONTINUATION | OP_TEXT | OP_BINARY => {
                write_frame(&mut stream, frame.fin, frame.opcode, &frame.payload).await?;
            }
            OP_PING => write_frame(&mut stream, true, OP_PONG, &frame.payload).await?,
            OP_PONG => {}
            OP_CLOSE => {
                // Echoing the peer's close payload (its status code) completes the handshake.
                write_frame(&mut stream, true, OP_CLOSE, &frame.payload).await?;
                return stream.shutdown().await;
            }
            _ => return write_close(&mut stream, CLOSE_PROTOCOL_ERROR).await,
        }
    }
}

async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<ReadOutcome> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    let fin = head[0] & 0x80 != 0;
    let opcode = head[0] & 0x0F;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7F {
        126 => u64::from(stream.read_u16().await?),
        127 => stream.read_u64().await?,
        n => u64::from(n),
    };
    // Clients must mask every frame (RFC 6455 section 5.1); reserved bits need an extension.
    if !masked || head[0] & 0x70 != 0 {
        return Ok(ReadOutcome::Violation(CLOSE_PROTOCOL_ERROR));
    }
    if len > MAX_FRAME {
        return Ok(ReadOutcome::Violation(CLOSE_TOO_BIG));
    }
    let mut mask = [0u8; 4];
    stream.read_exact(&mut mask).await?;
    // Bounded by MAX_FRAME above, so the conversion cannot truncate on 64-bit targets.
    let mut payload = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    stream.read_exact(&mut payload).await?;
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
    Ok(ReadOutcome::Frame(Frame {
        fin,
        opcode,
        payload,
    }))
}

/// Writes one unmasked (server-to-client) frame.
async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    fin: bool,
    opcode: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(10);
    head.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n @ 0..=125 => head.push(n as u8),
        n @ 126..=0xFFFF => {
            head.push(126);
            head.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            head.push(127);
            head.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    stream.write_all(&head).await?;
    stream.write_all(payload).await?;
    stream.flush().await
}

async fn write_close<S: AsyncWrite + Unpin>(stream: &mut S, code: u16) -> std::io::Result<()> {
    write_frame(stream, true, OP_CLOSE, &code.to_be_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn echoes_masked_text_and_answers_close() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (_tx, rx) = watch::channel(false);
        let task = tokio::spawn(echo(server, rx));
        let mask = [1u8, 2, 3, 4];
        let masked: Vec<u8> = b"hi"
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        let mut frame = vec![0x81, 0x80 | 2];
        frame.extend_from_slice(&mask);
        frame.extend_from_slice(&masked);
        client.write_all(&frame).await.expect("io");
        let mut reply = [0u8; 4];
        client.read_exact(&mut reply).await.expect("io");
        assert_eq!(reply, [0x81, 2, b'h', b'i']);

        let mut close = vec![0x88, 0x80 | 2];
        close.extend_from_slice(&mask);
        close.extend_from_slice(&[0x03 ^ 1, 0xE8 ^ 2]);
        client.write_all(&close).await.expect("io");
        let mut reply = [0u8; 4];
        client.read_exact(&mut reply).await.expect("io");
        assert_eq!(reply, [0x88, 2, 0x03, 0xE8]);
        task.await.expect("echo task").expect("echo io");
    }

    #[tokio::test]
    async fn unmasked_client_frames_are_a_protocol_error() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (_tx, rx) = watch::channel(false);
        let task = tokio::spawn(echo(server, rx));
        client.write_all(&[0x81, 1, b'x']).await.expect("io");
        let mut reply = [0u8; 4];
        client.read_exact(&mut reply).await.expect("io");
        assert_eq!(reply, [0x88, 2, 0x03, 0xEA]);
        task.await.expect("echo task").expect("echo io");
    }
}
