//! The time an HTTP/1.1 client has to finish a request head it has begun, as Envoy's
//! connection manager gives it: the stream exists from the head's first byte, so
//! `request_headers_timeout` runs from there ("request header timeout"), and so does
//! `stream_idle_timeout`, which no header byte resets ("stream timeout", flag `SI`). Either
//! way the client gets a 408 and the connection closes. hyper's own head timer runs from the
//! moment it waits for a head, idle keep-alive time included, and closes without a word, so
//! it serves as the connection's `idle_timeout` only (`http_server.rs`).
//!
//! The connection's IO is wrapped ([`TimedHeadIo`]): the first bytes read while no request
//! is open begin a head; if the codec must wait for more of it, the deadline is armed; the
//! codec handing the request over ends the head; the request's body ending (or a request
//! without one) opens the wait for the next. When the deadline passes, the 408 is written
//! straight to the socket and hyper reads the end of the stream. A head that arrives whole
//! (nearly all of them) costs two atomic stores and no timer.
//! HTTP/2 is not covered: a stream's header block is one frame sequence that the codec
//! bounds by size, and the connection's idle timeout and keepalive apply.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::codec_sniff::Prefixed;
use crate::framing_conflict::FramingScan;
use crate::write_through::write_through;

/// Which limit ended a head, if one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadTimeout {
    /// `request_headers_timeout`: 408 "request header timeout".
    Headers,
    /// `stream_idle_timeout`: 408 "stream timeout", flag `SI`.
    Idle,
}

/// The connection's place between requests, shared by its IO and its requests.
#[derive(Debug)]
pub(crate) struct HeadWatch {
    state: AtomicU8,
    /// Requests handed over so far: the number of the next head.
    handed: AtomicU32,
    /// The number of the first head with both `Content-Length` and `Transfer-Encoding`
    /// (`NO_CONFLICT`: none yet).
    conflict_head: AtomicU32,
}

const NO_CONFLICT: u32 = u32::MAX;

impl Default for HeadWatch {
    fn default() -> Self {
        HeadWatch {
            state: AtomicU8::new(AWAITING_HEAD),
            handed: AtomicU32::new(0),
            conflict_head: AtomicU32::new(NO_CONFLICT),
        }
    }
}

/// What the codec handing a request over means for the connection's heads.
#[derive(Debug)]
pub(crate) struct HandedOver {
    /// Held by the request while its body is still to come (the next head starts after it).
    pub body_end: Option<BodyEnd>,
    /// Its head had both `Content-Length` and `Transfer-Encoding` (`framing_conflict.rs`).
    pub framing_conflict: bool,
}

const AWAITING_HEAD: u8 = 0;
const IN_HEAD: u8 = 1;
const IN_REQUEST: u8 = 2;
const TIMED_OUT_HEADERS: u8 = 3;
const TIMED_OUT_IDLE: u8 = 4;
/// Upgraded: the connection carries a tunnel, not heads.
const TUNNELLED: u8 = 5;

impl HeadWatch {
    /// The codec handed a request over; `has_body`: its body is still to come.
    pub(crate) fn request_started(self: &Arc<Self>, has_body: bool) -> HandedOver {
        // One connection's requests are handed over one at a time, on its worker's thread.
        let index = self.handed.load(Ordering::Relaxed);
        self.handed.store(index.wrapping_add(1), Ordering::Relaxed);
        let framing_conflict = self.conflict_head.load(Ordering::Relaxed) == index;
        let body_end = if has_body {
            self.state.store(IN_REQUEST, Ordering::Relaxed);
            Some(BodyEnd(self.clone()))
        } else {
            self.state.store(AWAITING_HEAD, Ordering::Relaxed);
            None
        };
        HandedOver {
            body_end,
            framing_conflict,
        }
    }

    /// The connection became a tunnel (a 101 went out): nothing read from now on is a head.
    pub(crate) fn tunnelled(&self) {
        self.state.store(TUNNELLED, Ordering::Relaxed);
    }

    /// The limit that ended the connection's last head, if one did.
    pub(crate) fn timed_out(&self) -> Option<HeadTimeout> {
        match self.state.load(Ordering::Relaxed) {
            TIMED_OUT_HEADERS => Some(HeadTimeout::Headers),
            TIMED_OUT_IDLE => Some(HeadTimeout::Idle),
            _ => None,
        }
    }
}

/// Held by a request whose body is still to come; dropped when the body ends (or is given
/// up), which opens the wait for the next head.
#[derive(Debug, Clone)]
pub(crate) struct BodyEnd(Arc<HeadWatch>);

impl Drop for BodyEnd {
    fn drop(&mut self) {
        let _ = self.0.state.compare_exchange(
            IN_REQUEST,
            AWAITING_HEAD,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// The limits a head is held to, measured from its first byte.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HeadLimits {
    pub headers: Option<Duration>,
    pub idle: Option<Duration>,
}

impl HeadLimits {
    /// The first limit to pass, and how long it gives.
    fn first(self) -> Option<(Duration, HeadTimeout)> {
        let headers = self.headers.map(|d| (d, HeadTimeout::Headers));
        let idle = self.idle.map(|d| (d, HeadTimeout::Idle));
        [headers, idle]
            .into_iter()
            .flatten()
            .min_by_key(|(d, _)| *d)
    }
}

/// An HTTP/1.1 connection's IO, timing the heads read through it.
pub(crate) struct TimedHeadIo {
    inner: Prefixed,
    watch: Arc<HeadWatch>,
    limit: Option<(Duration, HeadTimeout)>,
    /// Armed while a head that has begun waits for more bytes; kept and reset for the next.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether `deadline` is set for the head being read.
    armed: bool,
    /// The head being read, scanned for conflicting framing headers.
    framing: FramingScan,
    /// The `server` header of the 408.
    server: Option<HeaderValue>,
}

/// Envoy's local reply for a head out of time, with the connection manager's `server`
/// header if it sends one.
fn reply(which: HeadTimeout, server: Option<&HeaderValue>) -> Vec<u8> {
    let body = match which {
        HeadTimeout::Headers => "request header timeout",
        HeadTimeout::Idle => "stream timeout",
    };
    let mut bytes = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n",
        body.len()
    )
    .into_bytes();
    if let Some(server) = server {
        bytes.extend_from_slice(b"server: ");
        bytes.extend_from_slice(server.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"connection: close\r\n\r\n");
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

impl TimedHeadIo {
    pub(crate) fn new(
        inner: Prefixed,
        watch: Arc<HeadWatch>,
        limits: HeadLimits,
        server: Option<HeaderValue>,
    ) -> Self {
        TimedHeadIo {
            inner,
            watch,
            limit: limits.first(),
            deadline: None,
            armed: false,
            framing: FramingScan::idle(),
            server,
        }
    }

    /// Whether the head being read is out of time (and the 408 written): the stream ends.
    fn head_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some((_, which)) = self.limit else {
            return false;
        };
        if !self.armed || self.watch.state.load(Ordering::Relaxed) != IN_HEAD {
            return false;
        }
        let Some(deadline) = self.deadline.as_mut() else {
            return false;
        };
        if deadline.as_mut().poll(cx).is_pending() {
            return false;
        }
        let state = match which {
            HeadTimeout::Headers => TIMED_OUT_HEADERS,
            HeadTimeout::Idle => TIMED_OUT_IDLE,
        };
        self.watch.state.store(state, Ordering::Relaxed);
        // An idle connection's send buffer takes a short reply whole; if it cannot, the
        // client gets the close alone.
        let reply = reply(which, self.server.as_ref());
        self.inner.stream_mut().write_now(cx, &reply);
        true
    }

    /// The read is waiting for more of a head that has begun: its deadline runs (from about
    /// its first byte: a head read whole in one go, the usual case, never touches a timer).
    fn head_waiting(&mut self, cx: &mut Context<'_>) -> bool {
        let Some((limit, _)) = self.limit else {
            return false;
        };
        if self.armed || self.watch.state.load(Ordering::Relaxed) != IN_HEAD {
            return false;
        }
        let at = Instant::now() + limit;
        match &mut self.deadline {
            Some(deadline) => deadline.as_mut().reset(at),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        self.armed = true;
        self.head_expired(cx)
    }
}

impl AsyncRead for TimedHeadIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.head_expired(cx) {
            // The end of the stream: hyper gives the head up and closes.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                // The first bytes of a head: it has begun.
                let begun = this.watch.state.compare_exchange(
                    AWAITING_HEAD,
                    IN_HEAD,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                let in_head = match begun {
                    Ok(_) => {
                        this.armed = false;
                        // Unless the scan is already in it (pipelined after a head with no
                        // body).
                        if this.framing.is_done() {
                            this.framing
                                .begin(this.watch.handed.load(Ordering::Relaxed));
                        }
                        true
                    }
                    Err(state) => state == IN_HEAD,
                };
                if in_head {
                    this.framing.feed(&buf.filled()[before..]);
                    if let Some(index) = this.framing.take_conflict() {
                        // The first one: the connection closes after answering it.
                        let _ = this.watch.conflict_head.compare_exchange(
                            NO_CONFLICT,
                            index,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                }
            }
            Poll::Pending if this.head_waiting(cx) => return Poll::Ready(Ok(())),
            _ => {}
        }
        polled
    }
}

write_through!(TimedHeadIo, inner);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_limit_to_pass_decides() {
        let s = Duration::from_secs;
        let both = HeadLimits {
            headers: Some(s(10)),
            idle: Some(s(300)),
        };
        assert_eq!(both.first(), Some((s(10), HeadTimeout::Headers)));
        let idle_first = HeadLimits {
            headers: Some(s(10)),
            idle: Some(s(5)),
        };
        assert_eq!(idle_first.first(), Some((s(5), HeadTimeout::Idle)));
        assert_eq!(HeadLimits::default().first(), None);
    }

    #[test]
    fn a_body_still_to_come_holds_the_next_head_wait() {
        let watch = Arc::new(HeadWatch::default());
        watch.state.store(IN_HEAD, Ordering::Relaxed);
        let end = watch
            .request_started(true)
            .body_end
            .expect("a body to come");
        assert_eq!(watch.state.load(Ordering::Relaxed), IN_REQUEST);
        drop(end);
        assert_eq!(watch.state.load(Ordering::Relaxed), AWAITING_HEAD);
        watch.state.store(IN_HEAD, Ordering::Relaxed);
        assert!(watch.request_started(false).body_end.is_none());
        assert_eq!(watch.state.load(Ordering::Relaxed), AWAITING_HEAD);
        assert_eq!(watch.timed_out(), None);
    }

    #[test]
    fn a_framing_conflict_reaches_the_request_of_its_head() {
        let watch = Arc::new(HeadWatch::default());
        watch.conflict_head.store(1, Ordering::Relaxed);
        let conflicts: Vec<bool> = (0..3)
            .map(|_| watch.request_started(false).framing_conflict)
            .collect();
        assert_eq!(conflicts, [false, true, false]);
    }
}
