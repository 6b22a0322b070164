//! Forwarding a request to its cluster: pick an endpoint, send, and retry per the route's
//! policy (to a different endpoint when there is one), within the route timeout and each try's
//! own; every attempt's outcome goes into the endpoint's state (and an answer with
//! `x-envoy-immediate-health-check-fail` into its health checking).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};

use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use outrider_model::{ForwardAction, HttpConnectionManager, RetryOn, RetryPolicy, VirtualHost};
use outrider_tables::{EndpointState, Snapshot};
use outrider_upstream::outlier::{Outcome, record};
use outrider_upstream::{try_request, try_retry};

use crate::headers::{
    ATTEMPT_COUNT, EXPECTED_TIMEOUT_MS, IMMEDIATE_HEALTH_CHECK_FAIL, MAX_RETRIES, ORIGINAL_PATH,
    RETRY_ON, UPSTREAM_SERVICE_TIME, UPSTREAM_TIMEOUT_MS, X_FORWARDED_HOST, add_forwarded, millis,
    number, strip_hop_by_hop,
};
use crate::http1_pool::{Limits, SendError};
use crate::local_reply::{Flagged, ProxyBody, ResponseFlag, local_reply};
use crate::no_healthy::explain;
use crate::route_headers::RouteHeaders;
use crate::routing::{GeneratedCookie, auto_host};
use crate::upgrade;
use crate::worker_context::WorkerContext;

/// Envoy's default route timeout.
const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
/// Bodies up to this size are kept so that the request can be retried (Envoy buffers up to the
/// listener's buffer limit, 1 MiB by default); larger ones are streamed and not retried.
const RETRY_BUFFER_LIMIT: u64 = 1024 * 1024;

pub(crate) struct ForwardContext<'a> {
    pub worker: &'a Rc<WorkerContext>,
    pub snapshot: &'a Snapshot,
    pub hcm: &'a HttpConnectionManager,
    pub vhost: &'a VirtualHost,
    pub route_headers: &'a RouteHeaders<'a>,
    pub action: &'a ForwardAction,
    pub peer: SocketAddr,
    pub grpc: bool,
    pub started: Instant,
}

/// What routing decided for this request, owned so the request can be taken apart.
pub(crate) struct Plan {
    /// `None` when the route names its cluster by a header the request lacks.
    pub cluster: Option<String>,
    /// For RING_HASH and MAGLEV.
    pub hash: Option<u64>,
    /// The path and query to send when a prefix or regex rewrite changed it (`None`: the
    /// request's own, sent without copying).
    pub path: Option<String>,
    /// A new `:authority`/`Host`, when the route rewrites it.
    pub authority: Option<String>,
    /// Cookies a hash policy generated for this client: sent with the upstream's answer (not
    /// with local replies), as Envoy's router does.
    pub set_cookies: Vec<GeneratedCookie>,
}

/// The request body as it can be sent: streamed once, or kept for retries.
enum Body {
    Stream(Option<Incoming>),
    Kept(Bytes),
}

pub(crate) async fn forward(
    cx: ForwardContext<'_>,
    plan: Plan,
    mut parts: http::request::Parts,
    body: Incoming,
) -> Response<ProxyBody> {
    let cluster_name = plan.cluster;
    let Some(entry) = cluster_name
        .as_deref()
        .and_then(|n| cx.snapshot.cluster(n))
        .cloned()
    else {
        let status = StatusCode::from_u16(cx.action.cluster_not_found_response_code)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        // Not in the tables: never sent by CDS, removed, or still warming (waiting for its
        // endpoints; `/config_dump` tells which).
        let explanation = cx.worker.options.explain_no_healthy_upstream.then(|| {
            let name = cluster_name
                .as_deref()
                .unwrap_or("(named by a missing request header)");
            format!("cluster {name}: not found (unknown to this proxy, or still warming)")
        });
        return local_reply(
            status,
            "",
            cx.grpc,
            explanation.map(|e| ("x-outrider-no-healthy-upstream", e)),
        )
        .flagged(ResponseFlag::NoClusterFound, None);
    };

    // An HTTP/1.1 upgrade (WebSocket) goes through only if the route or the listener enables
    // it; Envoy refuses the others with a 403.
    let upgrade = upgrade::requested(parts.version, &parts.headers);
    if upgrade
        .as_deref()
        .is_some_and(|kind| !upgrade::allowed(kind, cx.hcm, cx.action))
    {
        return local_reply(StatusCode::FORBIDDEN, "", cx.grpc, None);
    }
    let downstream_upgrade = upgrade.and_then(|_| upgrade::take_downstream(&mut parts.extensions));

    let counters = entry.state.counters.local();
    // EDS `drop_overloads` (one category, as Envoy supports): shed this share of requests
    // before they take any resource.
    if let Some(drop) = entry.endpoints.drop_overloads.first()
        && drop.parts_per_million > 0
        && rand::random::<u32>() % 1_000_000 < drop.parts_per_million
    {
        counters.upstream_rq_drop_overload.fetch_add(1, Relaxed);
        return local_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "drop_overload",
            cx.grpc,
            None,
        )
        .flagged(ResponseFlag::DropOverload, None);
    }
    counters.upstream_rq_total.fetch_add(1, Relaxed);
    let breakers = &entry.config.circuit_breakers;
    let Some(active_request) = try_request(&entry.state, breakers, cx.action.priority) else {
        return overflow_reply(cx.grpc, cx.hcm.suppress_envoy_headers);
    };

    // Timeouts: the header wins over the route; 0 disables. The route's is Envoy's 15 s when
    // unset and `None` for `0s` (no timeout), as the model converted it.
    let route_timeout = millis(&parts.headers, &UPSTREAM_TIMEOUT_MS)
        .or(cx.action.timeout)
        .unwrap_or(Duration::ZERO);
    let deadline = (!route_timeout.is_zero()).then(|| cx.started + route_timeout);
    // Borrowed from the route; copied only when a request header changes it.
    let mut policy: Option<Cow<'_, RetryPolicy>> = cx
        .action
        .retry_policy
        .as_ref()
        .or(cx.vhost.retry_policy.as_ref())
        .map(Cow::Borrowed);
    if let Some(retry_on) = parts.headers.get(&RETRY_ON).and_then(|v| v.to_str().ok()) {
        let policy = policy
            .get_or_insert_with(|| Cow::Owned(RetryPolicy::default()))
            .to_mut();
        policy.retry_on = policy.retry_on | RetryOn::parse(retry_on);
    }
    if let (Some(policy), Some(max)) = (policy.as_mut(), number(&parts.headers, &MAX_RETRIES)) {
        policy.to_mut().num_retries = max;
    }

    // Headers for the upstream.
    strip_hop_by_hop(&mut parts.headers, downstream_upgrade.is_some());
    add_forwarded(&mut parts.headers, cx.hcm, cx.peer.ip());
    if !route_timeout.is_zero()
        && !cx.hcm.suppress_envoy_headers
        && let Ok(millis) = u64::try_from(route_timeout.as_millis())
    {
        // The default timeout's value is a static: no allocation on the common path.
        let value = if route_timeout == DEFAULT_ROUTE_TIMEOUT {
            HeaderValue::from_static("15000")
        } else {
            HeaderValue::from(millis)
        };
        parts.headers.insert(EXPECTED_TIMEOUT_MS, value);
    }
    if !cx.route_headers.is_empty() {
        cx.route_headers.apply_to_request(&mut parts.headers);
    }
    let path = match plan.path.map(PathAndQuery::try_from) {
        Some(Ok(rewritten)) => {
            // Envoy keeps the path the client sent for the upstream to see.
            if !cx.hcm.suppress_envoy_headers
                && let Some(original) = parts.uri.path_and_query()
                && let Ok(value) = HeaderValue::from_str(original.as_str())
            {
                parts.headers.insert(ORIGINAL_PATH, value);
            }
            rewritten
        }
        // A rewrite produced what cannot be a request target.
        Some(Err(_)) => return local_reply(StatusCode::BAD_REQUEST, "", cx.grpc, None),
        None => parts
            .uri
            .path_and_query()
            .filter(|p| !p.as_str().is_empty())
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    };
    let client = cx
        .worker
        .client(&entry.config, parts.version == Version::HTTP_2);
    // An HTTP/1.1 upstream needs a Host header: an HTTP/2 downstream carried the authority in
    // `:authority` instead.
    if !client.is_http2()
        && !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, value);
    }
    if let Some(authority) = &plan.authority
        && let Ok(value) = HeaderValue::from_str(authority)
    {
        if cx.action.append_x_forwarded_host
            && let Some(original) = parts.headers.get(header::HOST).cloned()
        {
            parts.headers.append(X_FORWARDED_HOST, original);
        }
        parts.headers.insert(header::HOST, value);
    }
    // An HTTP/2 upstream gets the client's authority (or the rewritten one) as `:authority`,
    // and no Host header that could contradict it.
    let authority: Option<String> = if client.is_http2() {
        match parts.headers.remove(header::HOST) {
            Some(host) => host.to_str().ok().map(str::to_owned),
            None => parts.uri.authority().map(|a| a.as_str().to_owned()),
        }
    } else {
        None
    };

    // The body: kept when it may be needed again.
    let replayable = policy.as_ref().is_some_and(|p| p.num_retries > 0);
    let small = body_size_hint(&body).is_some_and(|n| n <= RETRY_BUFFER_LIMIT);
    let mut body = if replayable && small {
        match body.collect().await {
            Ok(collected) => Body::Kept(collected.to_bytes()),
            Err(_) => {
                return local_reply(StatusCode::BAD_REQUEST, "", cx.grpc, None);
            }
        }
    } else {
        Body::Stream(Some(body))
    };
    let max_retries = match &body {
        Body::Kept(_) => policy.as_ref().map_or(0, |p| p.num_retries),
        Body::Stream(_) => 0,
    };

    let balancer = cx.worker.balancer(&entry);
    let mut tried: Vec<Arc<EndpointState>> = Vec::new();
    let mut attempt: u32 = 0;
    let mut retry_guard = None;
    loop {
        let avoid: Vec<&Arc<EndpointState>> = tried.iter().collect();
        let endpoint = match balancer.pick(plan.hash, &avoid) {
            Ok(pick) => pick.endpoint,
            Err(why) => {
                counters.upstream_cx_none_healthy.fetch_add(1, Relaxed);
                tracing::debug!(cluster = %entry.config.name, flag = ResponseFlag::NoHealthyUpstream.code(), "no healthy upstream");
                let explanation = cx
                    .worker
                    .options
                    .explain_no_healthy_upstream
                    .then(|| explain(&entry, &why));
                return local_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no healthy upstream",
                    cx.grpc,
                    explanation.map(|e| ("x-outrider-no-healthy-upstream", e)),
                )
                .flagged(ResponseFlag::NoHealthyUpstream, None);
            }
        };
        let Some(address) = endpoint.address.ip() else {
            // DNS endpoints are resolved by the upstream layer; until then they cannot serve.
            return local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "no healthy upstream",
                cx.grpc,
                None,
            )
            .flagged(ResponseFlag::NoHealthyUpstream, None);
        };
        let request_body: ProxyBody = match &mut body {
            Body::Kept(bytes) => Either::Right(Full::new(bytes.clone())),
            Body::Stream(stream) => match stream.take() {
                Some(stream) => Either::Left(stream),
                None => Either::Right(Full::default()),
            },
        };
        // The headers are copied only while another attempt may still need them.
        let mut headers = if attempt < max_retries {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        if cx.vhost.include_request_attempt_count {
            headers.insert(ATTEMPT_COUNT, HeaderValue::from(attempt + 1));
        }
        // Envoy's router rewrites the host for `auto_host_rewrite` once it has picked the host.
        let attempt_authority = match auto_host(cx.action, &endpoint.hostname) {
            Some(host) => {
                let original = if client.is_http2() {
                    authority
                        .as_deref()
                        .and_then(|a| HeaderValue::from_str(a).ok())
                } else {
                    headers.get(header::HOST).cloned()
                };
                if cx.action.append_x_forwarded_host
                    && let Some(original) = original
                {
                    headers.append(X_FORWARDED_HOST, original);
                }
                if !client.is_http2()
                    && let Ok(value) = HeaderValue::from_str(host)
                {
                    headers.insert(header::HOST, value);
                }
                client.is_http2().then_some(host)
            }
            None => authority.as_deref(),
        };
        let built = client
            .uri(attempt_authority, address, path.clone())
            .and_then(|uri| build_request(&parts, headers, uri, request_body));
        let upstream_request = match built {
            Ok(request) => request,
            Err(_) => return local_reply(StatusCode::BAD_REQUEST, "", cx.grpc, None),
        };
        let per_try = policy.as_ref().and_then(|p| p.per_try_timeout);
        let try_deadline = match (deadline, per_try) {
            (Some(d), Some(t)) => Some(d.min(Instant::now() + t)),
            (d, t) => d.or(t.map(|t| Instant::now() + t)),
        };
        let attempt_started = Instant::now();
        endpoint.active_requests.fetch_add(1, Relaxed);
        let limits = Limits {
            state: &entry.state,
            endpoint: &endpoint,
            breakers,
            priority: cx.action.priority,
        };
        let sent = client.send(address, upstream_request, &limits);
        let result = match try_deadline {
            Some(at) => tokio::time::timeout_at(at.into(), sent).await.ok(),
            None => Some(sent.await),
        };
        endpoint.active_requests.fetch_sub(1, Relaxed);
        if let Some(Err(SendError::Overflow)) = &result {
            // The circuit breaker refused: nothing reached the endpoint, nothing to record or
            // retry (Envoy's `UO`).
            return overflow_reply(cx.grpc, cx.hcm.suppress_envoy_headers);
        }
        match &result {
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
            }
            None if deadline.is_some_and(|d| Instant::now() >= d) => {
                counters.upstream_rq_timeout.fetch_add(1, Relaxed);
            }
            None => {
                counters.upstream_rq_per_try_timeout.fetch_add(1, Relaxed);
            }
            Some(Err(_)) => {}
        }
        let outcome = match &result {
            None => Outcome::Timeout,
            Some(Ok(response)) => Outcome::Response(response.status().as_u16()),
            Some(Err(SendError::Connect(_))) => Outcome::ConnectFailure,
            Some(Err(_)) => Outcome::Reset,
        };
        record(&entry, &endpoint, outcome);

        let wants_retry = policy.as_ref().is_some_and(|p| should_retry(p, outcome));
        let in_time = deadline.is_none_or(|d| Instant::now() < d);
        if wants_retry && in_time && attempt < max_retries {
            // Retries in flight are bounded per cluster (`max_retries`, default 3).
            if let Some(guard) = try_retry(&entry.state, breakers, cx.action.priority) {
                counters.upstream_rq_retry.fetch_add(1, Relaxed);
                tried.push(endpoint);
                attempt += 1;
                let wait = policy
                    .as_ref()
                    .map_or(Duration::ZERO, |p| backoff(p, attempt));
                tokio::time::sleep(wait).await;
                retry_guard = Some(guard);
                continue;
            }
            counters.upstream_rq_retry_overflow.fetch_add(1, Relaxed);
        }
        drop(retry_guard.take());
        let upstream = Some(address);
        return match result {
            Some(Ok(mut response)) => {
                let elapsed = attempt_started.elapsed();
                let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                let upgraded = match downstream_upgrade.filter(|_| upgraded) {
                    Some(downstream) => {
                        upgrade::tunnel(&mut response, downstream, active_request);
                        true
                    }
                    None => false,
                };
                let mut response = downstream_response(response, elapsed, cx.hcm, upgraded);
                if cx.vhost.include_attempt_count_in_response {
                    response
                        .headers_mut()
                        .insert(ATTEMPT_COUNT, HeaderValue::from(attempt + 1));
                }
                for cookie in &plan.set_cookies {
                    // The model checked that name and path are header-safe.
                    if let Ok(value) = HeaderValue::try_from(cookie.set_cookie_value()) {
                        response.headers_mut().append(header::SET_COOKIE, value);
                    }
                }
                if wants_retry {
                    response.flagged(ResponseFlag::UpstreamRetryLimitExceeded, upstream)
                } else {
                    // Only the access log reads it: no extension map allocated without one.
                    if cx.hcm.access_log.is_empty() {
                        response
                    } else {
                        response.unflagged(upstream)
                    }
                }
            }
            None => {
                let flag = ResponseFlag::UpstreamRequestTimeout;
                local_reply(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream request timeout",
                    cx.grpc,
                    None,
                )
                .flagged(flag, upstream)
            }
            Some(Err(e)) => {
                let flag = if matches!(e, SendError::Connect(_)) {
                    ResponseFlag::UpstreamConnectFailure
                } else {
                    ResponseFlag::UpstreamConnectionTermination
                };
                tracing::debug!(flag = flag.code(), error = %e, "upstream failure");
                local_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream connect error or disconnect/reset before headers",
                    cx.grpc,
                    None,
                )
                .flagged(flag, upstream)
            }
        };
    }
}

/// Envoy's answer when a circuit breaker is open.
fn overflow_reply(grpc: bool, suppress_envoy_headers: bool) -> Response<ProxyBody> {
    local_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        grpc,
        (!suppress_envoy_headers).then(|| ("x-envoy-overloaded", "true".to_string())),
    )
    .flagged(ResponseFlag::UpstreamOverflow, None)
}

fn body_size_hint(body: &Incoming) -> Option<u64> {
    use hyper::body::Body as _;
    body.size_hint().exact()
}

fn build_request(
    parts: &http::request::Parts,
    headers: http::HeaderMap,
    uri: Uri,
    body: ProxyBody,
) -> Result<Request<ProxyBody>, http::Error> {
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(body)?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Envoy's retry conditions.
fn should_retry(policy: &RetryPolicy, outcome: Outcome) -> bool {
    let on = policy.retry_on;
    match outcome {
        // Envoy counts any reset, a failed connect included, as a 5xx and a gateway error
        // (`RetryStateImpl::wouldRetryFromReset`).
        Outcome::ConnectFailure => {
            on.contains(RetryOn::CONNECT_FAILURE)
                || on.contains(RetryOn::RESET)
                || on.contains(RetryOn::FIVE_XX)
                || on.contains(RetryOn::GATEWAY_ERROR)
        }
        Outcome::Reset => {
            on.contains(RetryOn::RESET)
                || on.contains(RetryOn::FIVE_XX)
                || on.contains(RetryOn::GATEWAY_ERROR)
        }
        Outcome::Timeout => on.contains(RetryOn::FIVE_XX) || on.contains(RetryOn::GATEWAY_ERROR),
        // A TCP proxy's outcome; an HTTP attempt never ends so.
        Outcome::Connected => false,
        Outcome::Response(status) => {
            (on.contains(RetryOn::FIVE_XX) && status >= 500)
                || (on.contains(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504))
                || (on.contains(RetryOn::RETRIABLE_4XX) && status == 409)
                || (on.contains(RetryOn::RETRIABLE_STATUS_CODES)
                    && policy.retriable_status_codes.contains(&status))
        }
    }
}

/// Envoy's jittered exponential back-off: a random wait in [0, base·2^n), capped at max.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    let ceiling = policy
        .back_off_base
        .saturating_mul(factor)
        .min(policy.back_off_max);
    let millis = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::random::<u64>() % millis)
}

fn downstream_response(
    response: Response<Incoming>,
    upstream_time: Duration,
    hcm: &HttpConnectionManager,
    upgraded: bool,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgraded);
    if !hcm.suppress_envoy_headers
        && let Ok(millis) = u64::try_from(upstream_time.as_millis())
    {
        parts
            .headers
            .insert(UPSTREAM_SERVICE_TIME, HeaderValue::from(millis));
    }
    if upgraded {
        // The bytes after a 101 belong to the tunnel, not to a body.
        return Response::from_parts(parts, Either::Right(Full::default()));
    }
    Response::from_parts(parts, Either::Left(body))
}
