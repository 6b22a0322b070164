//! What real servers do that a tidy one does not, as go-control-plane v0.12 (grpc-go) does it:
//! a NACKed version re-sent at once in a new random order, an empty name list read as a
//! wildcard, stale nonces ignored, reporting streams whose response headers come late or never;
//! and the node on every request unless the bootstrap says otherwise.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::data::cluster::v3::OutlierDetectionEvent;
use envoy_types::pb::envoy::data::core::v3::HealthCheckEvent;
use envoy_types::pb::envoy::data::core::v3::health_check_event::Event as HealthEventKind;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::super::admin::AdminClient;
use super::super::context::{ClientSetup, Ctx, POLL, WAIT, request, response};
use super::super::resources::{
    eds_cluster, endpoints, free_port, inline_listener, invalid_cluster, rds_listener, route,
    static_cluster, static_cluster_at,
};
use super::super::runner::Scenario;
use super::super::subscription::describe;
use super::super::upstream::{UPSTREAM_BODY, Upstream};
use super::super::{Failure, Mode};
use super::{BOTH, SOTW, clusters_active, listeners_active};
use crate::recorder::RecordedRequest;
use crate::type_url::{CLUSTER, ENDPOINT};
use crate::{Behavior, ResponseOrigin, ServerOptions, Snapshot};

/// How many invalid clusters the NACK storm scenario sends.
const STORM_CLUSTERS: usize = 20;
/// How long after a fix a client that holds back repeated NACKs may take to pick it up: a
/// server like go-control-plane answers only the client's next request, which may be held back
/// up to Outrider's 5 s (`MAX_REPEAT_NACK_DELAY`); plus a second for a loaded machine.
const FIX_PICKUP: Duration = Duration::from_secs(6);
/// "Within a second": recovery after an empty snapshot, events and reports reaching the server.
const PROMPT: Duration = Duration::from_secs(1);

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "nack_storm_in_random_order",
            modes: BOTH,
            checks: "against a server that re-sends 20 invalid clusters at once after each NACK \
                     (go-control-plane in SotW; stricter than it in delta), in a new random order \
                     each time, the client sends ≤ 20 NACKs in 5 s and \
                     picks up the fixed version within 6 s",
            slow: true,
            run: |ctx| Box::pin(nack_storm_in_random_order(ctx)),
        },
        Scenario {
            name: "node_on_every_request",
            modes: BOTH,
            checks: "by default (set_node_on_first_message_only: false) every request carries \
                     the node",
            slow: false,
            run: |ctx| Box::pin(node_on_every_request(ctx)),
        },
        Scenario {
            name: "node_on_first_request_only",
            modes: BOTH,
            checks: "with set_node_on_first_message_only: true only each stream's first request \
                     carries the node",
            slow: false,
            run: |ctx| Box::pin(node_on_first_request_only(ctx)),
        },
        Scenario {
            name: "empty_snapshot_then_full",
            modes: BOTH,
            checks: "after an empty snapshot then the full one, from a server that reads an \
                     empty name list as a wildcard and ignores stale nonces, traffic flows \
                     again within 1 s on the same stream",
            slow: false,
            run: |ctx| Box::pin(empty_snapshot_then_full(ctx)),
        },
        Scenario {
            name: "reports_without_response_headers",
            // The reporting streams are the same whatever the ADS flavour.
            modes: SOTW,
            checks: "a health-check transition and an outlier ejection reach a StreamEvents \
                     server that sends no headers within 1 s, on one stream; load reports reach \
                     an LRS server whose headers come with its first response",
            slow: false,
            run: |ctx| Box::pin(reports_without_response_headers(ctx)),
        },
    ]
}

async fn nack_storm_in_random_order(mut ctx: Ctx) -> Result<(), Failure> {
    // go-control-plane's delta server does not re-send a NACKed version; this one does, in
    // both modes (stricter than the real one for delta).
    let behavior = Behavior {
        resend_nacked_delta: true,
        ..Behavior::go_control_plane()
    };
    let server = ctx.server_with(ServerOptions::default(), behavior).await?;
    server.set_snapshot(Snapshot::new("v1").with(static_cluster("storm-good")?));
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("storm-good active", false, |d| {
            clusters_active(d, &["storm-good"])
        })
        .await?;

    let bad_names: Vec<String> = (0..STORM_CLUSTERS)
        .map(|i| format!("storm-bad-{i}"))
        .collect();
    let mut bad = Snapshot::new("v2").with(static_cluster("storm-good")?);
    for name in &bad_names {
        bad = bad.with(invalid_cluster(name)?);
    }
    let mark = server.request_count();
    server.set_snapshot(bad);
    let first = request(&server, "the NACK of the invalid clusters", |r| {
        r.seq >= mark && r.type_url() == CLUSTER && r.is_nack()
    })
    .await?;
    // A bounded observation window: the rule is about what does not happen during it.
    let window = Duration::from_secs(5);
    tokio::time::sleep_until(tokio::time::Instant::from_std(first.at + window)).await;
    let nacks: Vec<RecordedRequest> = server
        .requests()
        .into_iter()
        .filter(|r| {
            r.at >= first.at && r.at < first.at + window && r.type_url() == CLUSTER && r.is_nack()
        })
        .collect();
    let resends: Vec<Vec<String>> = server
        .responses()
        .into_iter()
        .filter(|r| r.origin == ResponseOrigin::Resend && r.type_url == CLUSTER)
        .map(|r| r.resource_names)
        .collect();
    ensure!(
        resends.len() >= 2 && resends.windows(2).any(|w| w[0] != w[1]),
        "suite bug: the server did not re-send the NACKed version in new orders ({} re-sends)",
        resends.len()
    );
    ensure!(
        nacks.len() <= STORM_CLUSTERS,
        "{} NACKs in {window:?} against a server that re-sends the rejected version at once in \
         a new order ({} re-sends): the client sees each re-send as new; the last ones:\n{}",
        nacks.len(),
        resends.len(),
        nacks
            .iter()
            .rev()
            .take(5)
            .map(describe)
            .collect::<Vec<_>>()
            .join("\n")
    );
    ctx.note(format!(
        "{} NACKs in 5 s; the server re-sent {} times",
        nacks.len(),
        resends.len()
    ));

    let mut fixed = Snapshot::new("v3").with(static_cluster("storm-good")?);
    for name in &bad_names {
        fixed = fixed.with(static_cluster(name)?);
    }
    let fixed_at = std::time::Instant::now();
    server.set_snapshot(fixed);
    let all: Vec<&str> = bad_names.iter().map(String::as_str).collect();
    client
        .wait_dump_for("the fixed version in use", false, FIX_PICKUP, |d| {
            clusters_active(d, &all)
        })
        .await?;
    ctx.note(format!(
        "the fix was in use {:.1} s after the server had it",
        fixed_at.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Serves an EDS cluster, its endpoints, an RDS listener and its routes, and returns every
/// request of the client's stream once all four types were answered.
async fn requests_of_a_full_config(
    ctx: &mut Ctx,
    setup: ClientSetup,
    prefix: &str,
) -> Result<Vec<RecordedRequest>, Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    let (cluster, listener, routes) = (
        format!("{prefix}-c"),
        format!("{prefix}-l"),
        format!("{prefix}-r"),
    );
    server.set_snapshot(
        Snapshot::new("v1")
            .with(eds_cluster(&cluster, None, None)?)
            .with(endpoints(&cluster, &[18081])?)
            .with(rds_listener(&listener, free_port()?, &routes)?)
            .with(route(&routes, &cluster)?),
    );
    let mut client = ctx.client(&server, setup).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("the cluster and the listener active", false, |d| {
            clusters_active(d, &[cluster.as_str()])?;
            listeners_active(d, &[listener.as_str()])
        })
        .await?;
    // The ACK of the last response: every type has had its subscription and its answer.
    let routes_response = response(&server, "the RDS response", |r| {
        r.stream_id == stream.id && r.resource_names.contains(&routes)
    })
    .await?;
    request(&server, "the answer to the RDS response", |r| {
        r.stream_id == stream.id && r.response_nonce() == routes_response.nonce
    })
    .await?;
    let requests: Vec<RecordedRequest> = server
        .requests()
        .into_iter()
        .filter(|r| r.stream_id == stream.id)
        .collect();
    ensure!(
        requests.len() >= 6,
        "only {} requests on the stream for four types",
        requests.len()
    );
    Ok(requests)
}

async fn node_on_every_request(mut ctx: Ctx) -> Result<(), Failure> {
    let requests = requests_of_a_full_config(&mut ctx, ClientSetup::default(), "ne").await?;
    let node_id = ctx.node_id();
    for request in &requests {
        ensure!(
            request.node().is_some_and(|n| n.id == node_id),
            "a request without the node (set_node_on_first_message_only is false, so the node \
             goes on every request): {}",
            describe(request)
        );
    }
    ctx.note(format!("{} requests, each with the node", requests.len()));
    Ok(())
}

async fn node_on_first_request_only(mut ctx: Ctx) -> Result<(), Failure> {
    let setup = ClientSetup {
        node_on_first_message_only: true,
        ..ClientSetup::default()
    };
    let requests = requests_of_a_full_config(&mut ctx, setup, "nf").await?;
    let node_id = ctx.node_id();
    ensure!(
        requests[0].node().is_some_and(|n| n.id == node_id),
        "the stream's first request carries no node: {}",
        describe(&requests[0])
    );
    for request in &requests[1..] {
        ensure!(
            request.node().is_none(),
            "a later request carries the node although set_node_on_first_message_only is true: \
             {}",
            describe(request)
        );
    }
    Ok(())
}

/// GETs `/` through the client's listener at `address` until the upstream answers, or fails
/// after `timeout`; returns how long it took.
async fn traffic_flows(address: SocketAddr, timeout: Duration) -> Result<Duration, Failure> {
    let started = tokio::time::Instant::now();
    let listener = AdminClient::new(address);
    loop {
        let last = match listener.get("/").await {
            Ok(r) if r.status == 200 && r.body == UPSTREAM_BODY => return Ok(started.elapsed()),
            Ok(r) => format!("{} {:?}", r.status, r.body),
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= timeout {
            fail!("no answer from the upstream through {address} within {timeout:?}: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn empty_snapshot_then_full(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx
        .server_with(
            ServerOptions::default().ads_strict(true),
            Behavior::go_control_plane(),
        )
        .await?;
    let upstream = Upstream::start().await?;
    let port = free_port()?;
    let full = |version: &str| -> Result<Snapshot, Failure> {
        Ok(Snapshot::new(version)
            .with(eds_cluster("ef-c", None, None)?)
            .with(endpoints("ef-c", &[upstream.port()])?)
            .with(rds_listener("ef-l", port, "ef-r")?)
            .with(route("ef-r", "ef-c")?))
    };
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    server.set_snapshot(full("v1")?);
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    traffic_flows(address, WAIT).await?;

    // The control plane restarts, or read a half-written file: nothing, for a moment.
    let mark = server.response_count();
    server.set_snapshot(Snapshot::new("v2"));
    client
        .wait_dump("everything removed by the empty snapshot", false, |d| {
            if d.has_cluster("ef-c") || d.listener("ef-l").is_some() {
                Err("ef-c or ef-l is still there".into())
            } else {
                Ok(())
            }
        })
        .await?;
    if ctx.mode() == Mode::Sotw {
        // The client's EDS request without names reads as a wildcard: the server answers it
        // (with nothing) under a new nonce, which the client's next EDS request must carry.
        response(
            &server,
            "the EDS response to the emptied subscription",
            |r| r.seq >= mark && r.type_url == ENDPOINT && r.version == "v2",
        )
        .await?;
    }

    server.set_snapshot(full("v3")?);
    let took = traffic_flows(address, PROMPT).await.map_err(|e| {
        let eds: Vec<String> = server
            .requests()
            .iter()
            .filter(|r| r.type_url() == ENDPOINT)
            .rev()
            .take(4)
            .map(describe)
            .collect();
        Failure::new(format!(
            "{e}\n  the last EDS requests (a stale nonce is ignored by this server):\n    {}",
            eds.join("\n    ")
        ))
    })?;
    let streams = server.streams();
    ensure!(
        streams.len() == 1 && streams[0].id == stream.id && streams[0].closed_at.is_none(),
        "the client needed a new stream to recover: {:?}",
        streams
            .iter()
            .map(|s| (s.id, s.close_reason.clone()))
            .collect::<Vec<_>>()
    );
    ctx.note(format!(
        "traffic again {} ms after the full snapshot",
        took.as_millis()
    ));
    Ok(())
}

/// `any` as an `M`, if it is one.
fn decoded<M: Message + Name + Default>(any: &Any) -> Option<M> {
    (any.type_url == M::type_url())
        .then(|| M::decode(any.value.as_slice()).ok())
        .flatten()
}

/// The first event (received or to come within [`WAIT`]) that `pred` accepts, with when it
/// arrived.
async fn first_event(
    server: &crate::ManagementServer,
    pred: impl Fn(&Any) -> bool,
) -> Option<(SystemTime, Any)> {
    let request = server
        .wait_for_event_request(|r| r.request.events.iter().any(&pred), WAIT)
        .await?;
    let event = request.request.events.into_iter().find(|e| pred(e))?;
    Some((request.received, event))
}

/// How long after its own timestamp an event arrived.
fn delay(
    received: SystemTime,
    timestamp: Option<&envoy_types::pb::google::protobuf::Timestamp>,
) -> Duration {
    let Some(ts) = timestamp else {
        return Duration::MAX;
    };
    let at = SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(ts.seconds).unwrap_or(0),
            u32::try_from(ts.nanos).unwrap_or(0),
        );
    received.duration_since(at).unwrap_or(Duration::ZERO)
}

async fn reports_without_response_headers(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx
        .server_with(ServerOptions::default(), Behavior::go_control_plane())
        .await?;
    server.set_load_reporting(&[], Duration::from_millis(200), true, false);
    let upstream = Upstream::start().await?;
    let (dead, port) = (free_port()?, free_port()?);
    // A health-checked host whose first check passes (a transition to healthy), and a host
    // that refuses connections: two failures (503 each) eject it.
    let checked = static_cluster_at(
        "rp-hc",
        upstream.port(),
        "health_checks:\n- { timeout: 1s, interval: 0.2s, unhealthy_threshold: 1, \
         healthy_threshold: 1, tcp_health_check: {} }",
    )?;
    let failing = static_cluster_at(
        "rp-od",
        dead,
        "outlier_detection: { consecutive_5xx: 2, max_ejection_percent: 100 }",
    )?;
    server.set_snapshot(
        Snapshot::new("v1")
            .with(checked)
            .with(failing)
            .with(inline_listener("rp-l", port, "rp-od")?),
    );
    let setup = ClientSetup {
        reporting: true,
        ..ClientSetup::default()
    };
    let mut client = ctx.client(&server, setup).await?;
    client
        .wait_dump("the clusters and the listener active", false, |d| {
            clusters_active(d, &["rp-hc", "rp-od"])?;
            listeners_active(d, &["rp-l"])
        })
        .await?;

    let add_healthy = |any: &Any| {
        decoded::<HealthCheckEvent>(any).is_some_and(|e| {
            e.cluster_name == "rp-hc"
                && matches!(e.event, Some(HealthEventKind::AddHealthyEvent(_)))
        })
    };
    let Some((received, event)) = first_event(&server, add_healthy).await else {
        fail!(
            "rp-hc's add_healthy_event did not reach the server within {WAIT:?} (event streams              opened: {}, events received: {}); a client that waits for the response headers              before sending more never gets them from a grpc-go handler",
            server.event_streams_opened(),
            server.received_events().len()
        );
    };
    let event: HealthCheckEvent = decoded(&event).unwrap_or_default();
    let hc_delay = delay(received, event.timestamp.as_ref());
    ensure!(
        hc_delay <= PROMPT,
        "rp-hc's add_healthy_event arrived {hc_delay:?} after its timestamp"
    );

    let listener = AdminClient::new(SocketAddr::from(([127, 0, 0, 1], port)));
    for _ in 0..2 {
        let answer = listener.get("/").await?;
        ensure!(
            answer.status == 503,
            "a request to the refusing rp-od got {} {:?}, expected 503",
            answer.status,
            answer.body
        );
    }
    let ejected = |any: &Any| {
        decoded::<OutlierDetectionEvent>(any).is_some_and(|e| e.cluster_name == "rp-od")
    };
    let Some((received, event)) = first_event(&server, ejected).await else {
        fail!("no outlier ejection of rp-od reached the server within {WAIT:?}");
    };
    let event: OutlierDetectionEvent = decoded(&event).unwrap_or_default();
    let od_delay = delay(received, event.timestamp.as_ref());
    ensure!(
        od_delay <= PROMPT,
        "rp-od's ejection arrived {od_delay:?} after its timestamp"
    );
    ensure!(
        server.event_streams_opened() == 1,
        "{} event streams: the client reconnected instead of streaming on the first",
        server.event_streams_opened()
    );

    let Some(reports) = server.wait_for_load_reports(2, WAIT).await else {
        fail!(
            "no load report after the first request within {WAIT:?} ({} LRS streams)",
            server.load_report_streams_opened()
        );
    };
    // The server answers the first request at once with a 200 ms interval.
    let first_report = reports[1].received.duration_since(reports[0].received);
    ensure!(
        reports[1].stream_id == reports[0].stream_id && first_report <= PROMPT,
        "the first load report came {first_report:?} after the stream's first request (LRS \
         streams {} and {})",
        reports[0].stream_id,
        reports[1].stream_id
    );
    ensure!(
        reports[1].request.node.is_some(),
        "a load report without the node (Envoy sends it on every LRS request)"
    );
    ctx.note(format!(
        "health event after {} ms, ejection after {} ms, first load report after {} ms",
        hc_delay.as_millis(),
        od_delay.as_millis(),
        first_report.as_millis()
    ));
    Ok(())
}
