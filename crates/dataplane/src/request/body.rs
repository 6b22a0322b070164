//! The request body as attempts send it: streamed once, or kept so that a retry can send it
//! again.

use std::rc::Rc;

use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body as _, Incoming};

use super::error::ProxyError;
use crate::local_reply::ProxyBody;
use crate::retry_buffers::KeptBody;
use crate::stream_body::{BodyBytes, StreamBody};
use crate::stream_clock::StreamClock;

pub(crate) enum RequestBody {
    Stream(Option<StreamBody>),
    Kept(KeptBody),
}

impl RequestBody {
    /// Whether to read the body whole before the first attempt: when a retry may need it
    /// again and its size is known and at most `limit` (the route's
    /// `per_request_buffer_limit_bytes`, 1 MiB by default, as Envoy buffers for retries).
    /// Otherwise it is streamed to the first attempt, which is then the only one.
    pub(crate) fn worth_keeping(body: &Incoming, may_retry: bool, limit: u32) -> bool {
        may_retry
            && body
                .size_hint()
                .exact()
                .is_some_and(|n| n <= u64::from(limit))
    }

    pub(crate) fn streamed(
        body: Incoming,
        clock: Option<&Rc<StreamClock>>,
        counted: Option<BodyBytes>,
    ) -> Self {
        Self::Stream(Some(StreamBody::request(body, clock, counted)))
    }

    pub(crate) async fn kept(
        body: Incoming,
        clock: Option<&Rc<StreamClock>>,
        counted: Option<BodyBytes>,
    ) -> Result<Self, ProxyError> {
        let body = StreamBody::request(body, clock, counted);
        match body.collect().await {
            Ok(collected) => Ok(Self::Kept(KeptBody::new(collected.to_bytes()))),
            Err(_) => Err(ProxyError::RequestBodyFailed),
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
