//! One attempt at the upstream: pick an endpoint, give the request its final authority and
//! attempt count, send it within the deadline, and record how it went in the endpoint's state
//! (stats, outlier detection, `x-envoy-immediate-health-check-fail`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use outrider_model::{ForwardAction, VirtualHost};
use outrider_tables::{ClusterEntry, EndpointState};
use outrider_upstream::Balancer;
use outrider_upstream::outlier::{Outcome, record};

use super::error::ProxyError;
use super::upstream_headers::Target;
use crate::headers::{ATTEMPT_COUNT, IMMEDIATE_HEALTH_CHECK_FAIL, X_FORWARDED_HOST};
use crate::local_reply::ProxyBody;
use crate::no_healthy::explain;
use crate::pool::{Limits, SendError, Upstream};
use crate::routing::auto_host;

/// What every attempt of one request shares.
pub(crate) struct Attempts<'a> {
    pub entry: &'a Arc<ClusterEntry>,
    pub balancer: &'a Balancer,
    pub client: &'a Upstream,
    pub action: &'a ForwardAction,
    pub vhost: &'a VirtualHost,
    pub method: &'a http::Method,
    pub target: &'a Target,
    /// For RING_HASH and MAGLEV.
    pub hash: Option<u64>,
    /// The whole request's deadline (route timeout).
    pub deadline: Option<Instant>,
    pub per_try_timeout: Option<Duration>,
    /// Put the reason in `x-outrider-no-healthy-upstream`.
    pub explain: bool,
}

/// An attempt that reached an endpoint (or tried to).
pub(crate) struct Tried {
    pub endpoint: Arc<EndpointState>,
    pub address: SocketAddr,
    /// What outlier detection and the retry policy see.
    pub outcome: Outcome,
    /// The answer and how long the endpoint took; or a failure another attempt may get past.
    pub result: Result<(Response<Incoming>, Duration), ProxyError>,
}

/// An attempt with its endpoint picked and its request built, ready to send.
pub(crate) struct Started {
    pub endpoint: Arc<EndpointState>,
    pub address: SocketAddr,
    pub request: Request<ProxyBody>,
    /// The earlier of the route's deadline and this try's own.
    pub deadline: Option<Instant>,
    pub at: Instant,
}

/// What sending an attempt's request gave: `None` when its deadline passed first.
pub(crate) type Sent = Option<Result<Response<Incoming>, SendError>>;

impl Attempts<'_> {
    /// Starts attempt number `number` (from 1), avoiding the endpoints in `avoid`: picks the
    /// endpoint and builds its request. An error is final: no endpoint to try, or a request
    /// that cannot be built. (Sending is awaited by the caller, so that no extra future is
    /// moved per attempt.)
    // Inlined so that the built request is not moved through a `Result`.
    #[inline(always)]
    pub(crate) fn start(
        &self,
        number: u32,
        mut headers: HeaderMap,
        body: ProxyBody,
        avoid: &[&Arc<EndpointState>],
    ) -> Result<Started, ProxyError> {
        let entry = self.entry;
        let endpoint = match self.balancer.pick(self.hash, avoid) {
            Ok(pick) => pick.endpoint,
            Err(why) => {
                return Err(ProxyError::NoHealthyUpstream {
                    explanation: self.explain.then(|| explain(entry, &why)),
                });
            }
        };
        // DNS endpoints are resolved by the upstream layer; until then they cannot serve.
        let Some(address) = endpoint.address.ip() else {
            return Err(ProxyError::NoHealthyUpstream { explanation: None });
        };
        if self.vhost.include_request_attempt_count {
            headers.insert(ATTEMPT_COUNT, HeaderValue::from(number));
        }
        let authority = self.authority(&endpoint, &mut headers);
        let request = self
            .client
            .uri(authority, address, self.target.path.clone())
            .and_then(|uri| {
                let mut request = Request::builder()
                    .method(self.method.clone())
                    .uri(uri)
                    .body(body)?;
                *request.headers_mut() = headers;
                Ok(request)
            })
            .map_err(|_| ProxyError::InvalidUpstreamRequest)?;
        let at = Instant::now();
        let deadline = match (self.deadline, self.per_try_timeout) {
            (Some(d), Some(t)) => Some(d.min(at + t)),
            (d, t) => d.or(t.map(|t| at + t)),
        };
        endpoint.active_requests.fetch_add(1, Relaxed);
        Ok(Started {
            endpoint,
            address,
            request,
            deadline,
            at,
        })
    }

    /// The circuit breakers and host the attempt's request is sent under.
    pub(crate) fn limits<'s>(&'s self, endpoint: &'s Arc<EndpointState>) -> Limits<'s> {
        Limits {
            state: &self.entry.state,
            endpoint,
            breakers: &self.entry.config.circuit_breakers,
            priority: self.action.priority,
        }
    }

    /// Gives up on a started attempt whose stream ended while it was out.
    pub(crate) fn abandon(&self, endpoint: &EndpointState) {
        endpoint.active_requests.fetch_sub(1, Relaxed);
    }

    /// Records how a sent attempt went (stats, outlier detection, immediate health-check
    /// failure). An error is final: a circuit breaker refused.
    #[inline(always)]
    pub(crate) fn finish(
        &self,
        endpoint: Arc<EndpointState>,
        address: SocketAddr,
        at: Instant,
        sent: Sent,
    ) -> Result<Tried, ProxyError> {
        let entry = self.entry;
        endpoint.active_requests.fetch_sub(1, Relaxed);
        let counters = entry.state.counters.local();
        let (outcome, result) = match sent {
            // The circuit breaker refused: nothing reached the endpoint, nothing to record or
            // retry (Envoy's `UO`).
            Some(Err(SendError::Overflow)) => return Err(ProxyError::Overflow),
            // The client broke its own request: nothing against the endpoint (outlier
            // detection, host and load-report counts), never retried.
            Some(Err(SendError::ClientBody(how))) => {
                return Err(ProxyError::RequestBodyFailed(how));
            }
            Some(Ok(response)) => {
                counters.upstream_rq_completed.fetch_add(1, Relaxed);
                if let Some(class) = counters.by_class(response.status().as_u16()) {
                    class.fetch_add(1, Relaxed);
                }
                // Envoy's router: a host that answers so fails active health checking at once
                // (its session applies it), if its cluster health-checks it. The header goes
                // on to the client.
                if !entry.config.health_checks.is_empty()
                    && !endpoint.active_health_check_disabled
                    && response.headers().contains_key(IMMEDIATE_HEALTH_CHECK_FAIL)
                {
                    endpoint.health_check.signal_immediate_fail();
                }
                let outcome = Outcome::Response(response.status().as_u16());
                (outcome, Ok((response, at.elapsed())))
            }
            Some(Err(error)) => {
                tracing::debug!(%address, %error, "upstream failure");
                let outcome = match error {
                    SendError::Connect(_) => Outcome::ConnectFailure,
                    _ => Outcome::Reset,
                };
                (outcome, Err(ProxyError::from_send(&error, address)))
            }
            None => {
                if self.deadline.is_some_and(|d| Instant::now() >= d) {
                    counters.upstream_rq_timeout.fetch_add(1, Relaxed);
                } else {
                    counters.upstream_rq_per_try_timeout.fetch_add(1, Relaxed);
                }
                let timeout = ProxyError::Timeout { upstream: address };
                (Outcome::Timeout, Err(timeout))
            }
        };
        record(entry, &endpoint, outcome);
        Ok(Tried {
            endpoint,
            address,
            outcome,
            result,
        })
    }

    /// The attempt's authority for an HTTP/2 upstream (`None` for HTTP/1.1, where it is the
    /// `Host` header): the prepared one, unless `auto_host_rewrite` takes the endpoint's
    /// hostname, which Envoy's router applies once it has picked the host.
    fn authority<'e>(
        &'e self,
        endpoint: &'e EndpointState,
        headers: &mut HeaderMap,
    ) -> Option<&'e str> {
        let http2 = self.client.is_http2();
        let Some(host) = auto_host(self.action, &endpoint.hostname) else {
            return self.target.authority.as_deref();
        };
        if self.action.append_x_forwarded_host {
            let original = if http2 {
                self.target
                    .authority
                    .as_deref()
                    .and_then(|a| HeaderValue::from_str(a).ok())
            } else {
                headers.get(header::HOST).cloned()
            };
            if let Some(original) = original {
                headers.append(X_FORWARDED_HOST, original);
            }
        }
        if !http2 && let Ok(value) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, value);
        }
        http2.then_some(host)
    }
}
