//! The request body as attempts send it: streamed once, or kept so that a retry can send it
//! again.

use std::rc::Rc;

use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body as _, Incoming};

use super::error::ProxyError;
use crate::head_timer::BodyEnd;
use crate::local_reply::ProxyBody;
use crate::memory_bursts::KEPT_BODY_BYTES;
use crate::retry_buffers::KeptBody;
use crate::stream_body::{BodyBytes, BodyFailure, StreamBody, caused_by_client_body};
use crate::stream_clock::StreamClock;

pub(crate) enum RequestBody {
    Stream(Option<StreamBody>),
    Kept(KeptBody),
}

/// Whether a request body is read whole before the first attempt, so that a retry can send
/// it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keeping {
    /// Kept: a retry may need it.
    Keep,
    /// Streamed: no retry can happen.
    NotNeeded,
    /// Streamed, and the request loses its retries (Envoy's `retry_or_shadow_abandoned`):
    /// its size is unknown or over the route's limit, or the proxy already keeps its whole
    /// budget of bodies.
    Abandoned,
}

impl RequestBody {
    /// Whether to read the body whole before the first attempt: when a retry may need it
    /// again, its size is known and at most `limit` (the route's
    /// `per_request_buffer_limit_bytes`, else the listener's
    /// `per_connection_buffer_limit_bytes`, 1 MiB by default, as Envoy buffers for retries), and
    /// the bodies kept by every worker stay within `budget` (approximately: workers check
    /// and add without a lock). Otherwise it is streamed to the first attempt, which is then
    /// the only one.
    pub(crate) fn keeping(body: &Incoming, may_retry: bool, limit: u32, budget: u64) -> Keeping {
        if !may_retry {
            return Keeping::NotNeeded;
        }
        let fits = body.size_hint().exact().is_some_and(|n| {
            n <= u64::from(limit) && KEPT_BODY_BYTES.now().saturating_add(n) <= budget
        });
        if fits {
            Keeping::Keep
        } else {
            Keeping::Abandoned
        }
    }

    /// `end`: dropped when the body has been read (see `head_timer.rs`).
    pub(crate) fn streamed(
        body: Incoming,
        clock: Option<&Rc<StreamClock>>,
        counted: Option<BodyBytes>,
        end: Option<BodyEnd>,
    ) -> Self {
        Self::Stream(Some(StreamBody::request(body, clock, counted, end)))
    }

    pub(crate) async fn kept(
        body: Incoming,
        clock: Option<&Rc<StreamClock>>,
        counted: Option<BodyBytes>,
        end: Option<BodyEnd>,
    ) -> Result<Self, ProxyError> {
        let body = StreamBody::request(body, clock, counted, end);
        match body.collect().await {
            Ok(collected) => Ok(Self::Kept(KeptBody::new(collected.to_bytes()))),
            Err(error) => {
                let how = caused_by_client_body(&*error).unwrap_or(BodyFailure::Malformed);
                Err(ProxyError::RequestBodyFailed(how))
            }
        }
    }

    /// Whether another attempt can send the body again.
    pub(crate) fn replayable(&self) -> bool {
        matches!(self, Self::Kept(_))
    }

    /// The body for the next attempt (empty once a streamed body is gone).
    pub(crate) fn next(&mut self) -> ProxyBody {
        match self {
            Self::Kept(kept) => Either::Right(Full::new(kept.bytes().clone())),
            Self::Stream(stream) => match stream.take() {
                Some(stream) => Either::Left(stream),
                None => Either::Right(Full::default()),
            },
        }
    }
}
