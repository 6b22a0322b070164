//! Forwarding a planned request to its cluster: admission (cluster, upgrade, drop overload,
//! `max_requests`), the upstream headers, then attempts until one answers or the retry
//! policy, the retry budget or the route timeout says stop.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use http::{Response, StatusCode, Version};
use hyper::body::Incoming;
use outrider_model::{ForwardAction, HttpConnectionManager, VirtualHost};
use outrider_tables::{ClusterEntry, EndpointState, Snapshot};
use outrider_upstream::try_request;

use super::attempt::Attempts;
use super::body::{Keeping, RequestBody};
use super::error::ProxyError;
use super::plan::Plan;
use super::respond::{Answer, upstream_answer};
use super::retry::Retries;
use super::upstream_headers::{Upstream, prepare};
use crate::access_log::ForwardedRequest;
use crate::head_timer::BodyEnd;
use crate::local_reply::ProxyBody;
use crate::pool::SendError;
use crate::route_headers::RouteHeaders;
use crate::stream_body::BodyBytes;
use crate::stream_clock::{Expired, StreamClock, StreamTimeout, within};
use crate::upgrade;
use crate::worker_context::WorkerContext;

pub(crate) struct ForwardContext<'a> {
    pub worker: &'a Rc<WorkerContext>,
    pub snapshot: &'a Snapshot,
    pub hcm: &'a HttpConnectionManager,
    pub vhost: &'a VirtualHost,
    pub route_headers: &'a RouteHeaders<'a>,
    pub action: &'a ForwardAction,
    pub started: Instant,
    /// The stream's timers, when it has any.
    pub clock: Option<&'a Rc<StreamClock>>,
    /// Where the request as forwarded goes for the access log (`None`: no access logs).
    pub forwarded: Option<&'a mut Option<ForwardedRequest>>,
}

pub(crate) async fn forward(
    cx: ForwardContext<'_>,
    plan: &Plan<'_>,
    mut parts: http::request::Parts,
    body: Incoming,
) -> Result<Response<ProxyBody>, ProxyError> {
    let entry = cluster(&cx, plan)?;
    // An HTTP/1.1 upgrade (WebSocket) goes through only if the route or the listener enables
    // it; Envoy refuses the others with a 403.
    let upgrade = upgrade::requested(parts.version, &parts.headers);
    if upgrade
        .as_deref()
        .is_some_and(|kind| !upgrade::allowed(kind, cx.hcm, cx.action))
    {
        return Err(ProxyError::UpgradeNotAllowed);
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
        return Err(ProxyError::DropOverload);
    }
    counters.upstream_rq_total.fetch_add(1, Relaxed);
    let breakers = &entry.config.circuit_breakers;
    let active_request =
        try_request(&entry.state, breakers, cx.action.priority).ok_or(ProxyError::Overflow)?;

    let client = cx
        .worker
        .client(&entry.config, parts.version == Version::HTTP_2);
    let upstream = Upstream {
        http2: client.is_http2(),
        upgrade: downstream_upgrade.is_some(),
    };
    let target = prepare(
        &mut parts,
        plan,
        cx.action,
        cx.hcm,
        cx.route_headers,
        upstream,
    )?;
    if let Some(slot) = cx.forwarded {
        let logs = &cx.hcm.access_log;
        let authority = target.authority.as_deref();
        *slot = Some(ForwardedRequest::new(
            &parts.headers,
            &target.path,
            authority,
            logs,
        ));
    }
    let policy = plan.retry.as_deref();
    let counted = parts.extensions.remove::<BodyBytes>();
    let end = parts.extensions.remove::<BodyEnd>();
    // Awaited only when kept: the common case moves no extra future.
    let may_retry = policy.is_some_and(|p| p.num_retries > 0);
    let budget = cx.worker.options.retry_buffer_budget;
    let limit = cx
        .action
        .retry_buffer_limit
        .unwrap_or(cx.hcm.connection_buffer_limit);
    let keeping = RequestBody::keeping(&body, may_retry, limit, budget);
    if keeping == Keeping::Abandoned {
        counters.retry_or_shadow_abandoned.fetch_add(1, Relaxed);
    }
    let mut body = if keeping == Keeping::Keep {
        let kept = std::pin::pin!(RequestBody::kept(body, cx.clock, counted, end));
        within(kept, None, cx.clock.map(|c| &**c))
            .await
            .map_err(|e| stream_timeout(e, cx.clock))??
    } else {
        RequestBody::streamed(body, cx.clock, counted, end)
    };
    let balancer = cx.worker.balancer(&entry);
    let attempts = Attempts {
        entry: &entry,
        balancer: &balancer,
        client: &client,
        action: cx.action,
        vhost: cx.vhost,
        method: &parts.method,
        target: &target,
        hash: plan.hash,
        deadline: plan.timeouts.route.map(|t| cx.started + t),
        per_try_timeout: plan.timeouts.per_try,
        explain: cx.worker.options.explain_no_healthy_upstream,
    };
    let mut retries = Retries::new(policy, body.replayable());
    let mut tried: Vec<Arc<EndpointState>> = Vec::new();
    let mut headers = parts.headers;
    loop {
        let avoid: Vec<&Arc<EndpointState>> = tried.iter().collect();
        // The headers are copied only while another attempt may still need them.
        let attempt_headers = if retries.more_allowed() {
            headers.clone()
        } else {
            std::mem::take(&mut headers)
        };
        let number = retries.attempt_number();
        let started = attempts.start(number, attempt_headers, body.next(), &avoid)?;
        drop(avoid);
        let waited = {
            let limits = attempts.limits(&started.endpoint);
            let sending = std::pin::pin!(client.send(started.address, started.request, &limits));
            within(sending, started.deadline, cx.clock.map(|c| &**c)).await
        };
        let sent = match waited {
            // An HTTP/2 upstream's error does not carry the body's; the clock, there for
            // every request with a body, knows (see `StreamClock::client_body_failed`).
            Ok(Err(SendError::Reset(reset))) => {
                match cx.clock.and_then(|c| c.client_body_failure()) {
                    Some(how) => Some(Err(SendError::ClientBody(how))),
                    None => Some(Err(SendError::Reset(reset))),
                }
            }
            Ok(sent) => Some(sent),
            Err(Expired::Deadline) => None,
            Err(expired) => {
                attempts.abandon(&started.endpoint);
                return Err(stream_timeout(expired, cx.clock));
            }
        };
        let tried_now = attempts.finish(started.endpoint, started.address, started.at, sent)?;
        // A failure only the client could fix is never retried, whatever the policy says.
        let retriable = tried_now
            .result
            .as_ref()
            .err()
            .is_none_or(ProxyError::may_retry);
        let wants_retry = retriable && retries.wants(tried_now.outcome);
        let in_time = attempts.deadline.is_none_or(|d| Instant::now() < d);
        if wants_retry && in_time && retries.more_allowed() {
            match retries.take(&entry.state, breakers, cx.action.priority) {
                Some(wait) => {
                    counters.upstream_rq_retry.fetch_add(1, Relaxed);
                    if policy.is_some_and(|p| p.avoid_previous_hosts) {
                        tried.push(tried_now.endpoint);
                    }
                    let backoff = std::pin::pin!(tokio::time::sleep(wait));
                    within(backoff, None, cx.clock.map(|c| &**c))
                        .await
                        .map_err(|e| stream_timeout(e, cx.clock))?;
                    continue;
                }
                None => {
                    counters.upstream_rq_retry_overflow.fetch_add(1, Relaxed);
                }
            }
        }
        retries.finish();
        let (response, elapsed) = tried_now.result?;
        return Ok(upstream_answer(Answer {
            response,
            elapsed,
            upstream: tried_now.address,
            attempts: number,
            retries_exhausted: wants_retry,
            downstream_upgrade,
            active_request,
            hcm: cx.hcm,
            vhost: cx.vhost,
            set_cookies: &plan.set_cookies,
            clock: cx.clock,
        }));
    }
}

/// The error for a stream limit reached while the request path waited.
fn stream_timeout(expired: Expired, clock: Option<&Rc<StreamClock>>) -> ProxyError {
    let which = match expired {
        Expired::Stream(which) => which,
        // Only the attempt's wait has a deadline of its own, and it handles that.
        Expired::Deadline => StreamTimeout::MaxDuration,
    };
    ProxyError::StreamTimeout {
        which,
        request_complete: clock.is_none_or(|c| c.is_request_complete()),
    }
}

/// The route's cluster from the tables.
fn cluster(cx: &ForwardContext<'_>, plan: &Plan<'_>) -> Result<Arc<ClusterEntry>, ProxyError> {
    let name = plan.cluster.as_deref();
    if let Some(entry) = name.and_then(|n| cx.snapshot.cluster(n)) {
        return Ok(entry.clone());
    }
    // Not in the tables: never sent by CDS, removed, or still warming (waiting for its
    // endpoints; `/config_dump` tells which).
    let explanation = cx.worker.options.explain_no_healthy_upstream.then(|| {
        let name = name.unwrap_or("(named by a missing request header)");
        format!("cluster {name}: not found (unknown to this proxy, or still warming)")
    });
    Err(ProxyError::ClusterNotFound {
        status: StatusCode::from_u16(cx.action.cluster_not_found_response_code)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        explanation,
    })
}
