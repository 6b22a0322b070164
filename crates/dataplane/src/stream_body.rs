//! A body that crosses the proxy (the client's request going up, the upstream's response
//! coming down), reporting its activity to the stream's clock. A response body also enforces
//! the stream's idle and duration limits once the response head has gone: when one is
//! reached the body fails, and hyper resets the stream (closes an HTTP/1 connection), as
//! Envoy ends a stream whose response has begun.

use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use crate::head_timer::BodyEnd;
use crate::stream_clock::{StreamClock, StreamTimeout};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct StreamBody {
    inner: Incoming,
    watch: Option<Watch>,
    /// Counts the data bytes that pass, for the access log (`%BYTES_RECEIVED%`).
    counted: Option<BodyBytes>,
    /// The client's request body: its failures are the client's ([`ClientBodyFailed`]).
    from_client: bool,
    /// Held until the request body ends: the connection's next head is timed from then.
    end: Option<BodyEnd>,
}

/// What a request body fails with when the client broke it (malformed chunked framing, a
/// reset stream, a closed connection): the upstream pool finds it in the send error's causes
/// and knows that the request failed on the client's side, not the endpoint's.
#[derive(Debug)]
pub(crate) struct ClientBodyFailed(hyper::Error);

impl std::fmt::Display for ClientBodyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client's request body failed: {}", self.0)
    }
}

impl std::error::Error for ClientBodyFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl ClientBodyFailed {
    /// How the client broke it.
    fn failure(&self) -> BodyFailure {
        if client_went_away(&self.0) {
            BodyFailure::ClientGone
        } else {
            BodyFailure::Malformed
        }
    }
}

/// How a client broke its request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFailure {
    /// Bad framing (chunk sizes, chunk extensions…): a protocol error (`DPE`).
    Malformed,
    /// The client closed its connection before the body's end: nobody is left to answer
    /// (Envoy logs code 0 and `DC`).
    ClientGone,
}

/// Whether hyper's body error is the connection ending early (an end of file where the body
/// still had bytes to come), rather than bytes it could not read.
fn client_went_away(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() {
        return true;
    }
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        if error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::UnexpectedEof)
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// How the client's request body failed, if that is what failed `error` (an upstream
/// send's, or the body's own).
pub(crate) fn caused_by_client_body(
    error: &(dyn std::error::Error + 'static),
) -> Option<BodyFailure> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(failed) = error.downcast_ref::<ClientBodyFailed>() {
            return Some(failed.failure());
        }
        cause = error.source();
    }
    None
}

/// The bytes of a request body read so far; shared with the request's access-log entry,
/// which puts it in the request's extensions (only when there are access logs; extensions
/// must be `Send`, hence the atomic, uncontended on the worker's one thread).
#[derive(Clone, Default)]
pub(crate) struct BodyBytes(Arc<AtomicU64>);

impl BodyBytes {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Relaxed);
    }
}

struct Watch {
    clock: Rc<StreamClock>,
    /// The client's request (its end completes the request) rather than the response.
    request: bool,
    /// A response body's timer, armed the first time it waits.
    timer: Option<Pin<Box<Sleep>>>,
}

/// The error a response body ends with when its stream reaches a limit.
#[derive(Debug)]
pub(crate) struct StreamTimedOut(pub StreamTimeout);

impl std::fmt::Display for StreamTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            StreamTimeout::Idle => f.write_str("stream idle timeout"),
            StreamTimeout::Request => f.write_str("request timeout"),
            StreamTimeout::MaxDuration => f.write_str("stream max duration reached"),
        }
    }
}

impl std::error::Error for StreamTimedOut {}

impl StreamBody {
    /// The client's request body, watched by `clock` if the stream has one, its bytes
    /// counted into `counted` if given.
    pub(crate) fn request(
        inner: Incoming,
        clock: Option<&Rc<StreamClock>>,
        counted: Option<BodyBytes>,
        end: Option<BodyEnd>,
    ) -> Self {
        let mut body = Self::watched(inner, clock, true);
        body.counted = counted;
        body.from_client = true;
        body.end = end;
        body
    }

    /// The upstream's response body, watched by `clock` if the stream has one.
    pub(crate) fn response(inner: Incoming, clock: Option<&Rc<StreamClock>>) -> Self {
        Self::watched(inner, clock, false)
    }

    fn watched(inner: Incoming, clock: Option<&Rc<StreamClock>>, request: bool) -> Self {
        StreamBody {
            inner,
            watch: clock.map(|clock| Watch {
                clock: clock.clone(),
                request,
                timer: None,
            }),
            counted: None,
            from_client: false,
            end: None,
        }
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let ended = matches!(&polled, Poll::Ready(None | Some(Err(_))))
            || (polled.is_ready() && this.inner.is_end_stream());
        if ended {
            this.end = None;
        }
        let polled = match polled {
            Poll::Ready(Some(Err(e))) if this.from_client => {
                let failed = ClientBodyFailed(e);
                if let Some(watch) = &this.watch {
                    watch.clock.client_body_failed(failed.failure());
                }
                return Poll::Ready(Some(Err(Box::new(failed))));
            }
            polled => polled,
        };
        if let (Some(counted), Poll::Ready(Some(Ok(frame)))) = (&this.counted, &polled)
            && let Some(data) = frame.data_ref()
        {
            counted.add(data.len());
        }
        let Some(watch) = &mut this.watch else {
            return polled.map_err(Into::into);
        };
        match &polled {
            Poll::Ready(Some(Ok(_))) if watch.request => {
                watch.clock.touch();
                if this.inner.is_end_stream() {
                    watch.clock.request_complete();
                }
            }
            Poll::Ready(Some(Ok(_))) => {
                if let Some(which) = watch.clock.touch_response() {
                    return Poll::Ready(Some(Err(Box::new(StreamTimedOut(which)))));
                }
            }
            Poll::Ready(None) if watch.request => watch.clock.request_complete(),
            Poll::Pending if !watch.request => {
                if let Poll::Ready(which) = watch.clock.poll_expiry(&mut watch.timer, cx) {
                    return Poll::Ready(Some(Err(Box::new(StreamTimedOut(which)))));
                }
            }
            _ => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
