//! The respond phase for an upstream's answer: hop-by-hop headers out, Envoy's response
//! headers in (`x-envoy-upstream-service-time`, attempt count), generated cookies, an upgrade
//! handed to its tunnel, and the access log's flags. Failures become local replies in
//! `error.rs`; the route's response header mutations apply to both, in `mod.rs`.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use outrider_model::{HttpConnectionManager, VirtualHost};
use outrider_upstream::BreakerGuard;

use crate::headers::{ATTEMPT_COUNT, UPSTREAM_SERVICE_TIME, strip_hop_by_hop};
use crate::local_reply::{Flagged, ProxyBody, ResponseFlag};
use crate::routing::GeneratedCookie;
use crate::stream_body::StreamBody;
use crate::stream_clock::StreamClock;
use crate::upgrade;

/// An upstream's answer and what shapes it for the client.
pub(crate) struct Answer<'a> {
    pub response: Response<Incoming>,
    /// How long the answering attempt took.
    pub elapsed: Duration,
    pub upstream: SocketAddr,
    /// Attempts made, this one included.
    pub attempts: u32,
    /// The policy would have retried this answer, but no retry was left (`URX`).
    pub retries_exhausted: bool,
    /// The client's side of an upgrade, joined to the upstream's on a 101.
    pub downstream_upgrade: Option<upgrade::Downstream>,
    /// The request's `max_requests` unit: an upgraded stream holds it until the tunnel ends.
    pub active_request: BreakerGuard,
    pub hcm: &'a HttpConnectionManager,
    pub vhost: &'a VirtualHost,
    pub set_cookies: &'a [GeneratedCookie],
    pub clock: Option<&'a Rc<StreamClock>>,
}

pub(crate) fn upstream_answer(answer: Answer<'_>) -> Response<ProxyBody> {
    let Answer {
        mut response,
        elapsed,
        upstream,
        attempts,
        retries_exhausted,
        downstream_upgrade,
        active_request,
        hcm,
        vhost,
        set_cookies,
        clock,
    } = answer;
    if let Some(clock) = clock {
        clock.response_started();
    }
    let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let upgraded = match downstream_upgrade.filter(|_| switched) {
        Some(downstream) => {
            upgrade::tunnel(&mut response, downstream, active_request, clock.cloned());
            true
        }
        None => {
            drop(active_request);
            false
        }
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgraded);
    if !hcm.suppress_envoy_headers
        && let Ok(millis) = u64::try_from(elapsed.as_millis())
    {
        parts
            .headers
            .insert(UPSTREAM_SERVICE_TIME, HeaderValue::from(millis));
    }
    if vhost.include_attempt_count_in_response {
        parts
            .headers
            .insert(ATTEMPT_COUNT, HeaderValue::from(attempts));
    }
    for cookie in set_cookies {
        // The model checked that name and path are header-safe.
        if let Ok(value) = HeaderValue::try_from(cookie.set_cookie_value()) {
            parts.headers.append(header::SET_COOKIE, value);
        }
    }
    // The bytes after a 101 belong to the tunnel, not to a body.
    let body = if upgraded {
        Either::Right(Full::default())
    } else {
        Either::Left(StreamBody::response(body, clock))
    };
    let response = Response::from_parts(parts, body);
    if retries_exhausted {
        response.flagged(ResponseFlag::UpstreamRetryLimitExceeded, Some(upstream))
    } else if hcm.access_log.is_empty() {
        // Only the access log reads it: no extension map allocated without one.
        response
    } else {
        response.unflagged(Some(upstream))
    }
}
