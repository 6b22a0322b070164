//! Delta-only rules: subscription requests carry changes only (and no stale nonce), and the first
//! request per type after a reconnect carries `initial_resource_versions` of what the client
//! has, NACKed versions excluded.

use super::super::Failure;
use super::super::context::{ClientSetup, Ctx, answer_to, request, response};
use super::super::resources::{eds_cluster, endpoints, invalid_cluster, static_cluster};
use super::super::runner::Scenario;
use super::super::subscription::{describe, initial_versions, repeated_subscriptions};
use super::{DELTA, clusters_active, has, has_endpoints};
use crate::recorder::RecordedRequest;
use crate::server::ManagementServer;
use crate::type_url::{CLUSTER, ENDPOINT};
use crate::{ServerOptions, Snapshot};

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "subscriptions_carry_changes_only",
            modes: DELTA,
            checks: "EDS subscribe/unsubscribe carry only the change; a change sent on its own \
                     carries no response_nonce",
            slow: false,
            run: |ctx| Box::pin(subscriptions_carry_changes_only(ctx)),
        },
        Scenario {
            name: "initial_resource_versions_on_reconnect",
            modes: DELTA,
            checks: "after a reconnect the first request per type carries the versions the client \
                     has, not the NACKed one, so the server re-sends it",
            slow: false,
            run: |ctx| Box::pin(initial_resource_versions_on_reconnect(ctx)),
        },
    ]
}

/// `request` subscribes to exactly `subscribe` and unsubscribes exactly `unsubscribe`, and
/// carries a nonce only as the (first) answer to a response.
fn check_change(
    server: &ManagementServer,
    request: &RecordedRequest,
    subscribe: &[&str],
    unsubscribe: &[&str],
) -> Result<(), Failure> {
    let Some(delta) = request.delta() else {
        fail!("not a delta request: {}", describe(request));
    };
    ensure!(
        delta.resource_names_subscribe == subscribe,
        "the subscription change carries subscribe {:?}; expected only the change {subscribe:?}: {}",
        delta.resource_names_subscribe,
        describe(request)
    );
    ensure!(
        delta.resource_names_unsubscribe == unsubscribe,
        "the subscription change carries unsubscribe {:?}; expected only the change {unsubscribe:?}: {}",
        delta.resource_names_unsubscribe,
        describe(request)
    );
    if !delta.response_nonce.is_empty() {
        let earlier = server.requests().into_iter().find(|r| {
            r.seq < request.seq
                && r.stream_id == request.stream_id
                && r.type_url() == request.type_url()
                && r.response_nonce() == delta.response_nonce
        });
        if let Some(earlier) = earlier {
            fail!(
                "a subscription change sent on its own carries response_nonce {:?}, already \
                 answered by an earlier request:\n  {}\n  {}",
                delta.response_nonce,
                describe(&earlier),
                describe(request)
            );
        }
    }
    Ok(())
}

fn eds_snapshot(version: &str, names: &[&str]) -> Result<Snapshot, Failure> {
    let mut snapshot = Snapshot::new(version);
    for (i, name) in names.iter().enumerate() {
        snapshot.insert(&eds_cluster(name, None, None)?);
        let port = 18090 + u16::try_from(i).unwrap_or(0);
        snapshot.insert(&endpoints(name, &[port])?);
    }
    Ok(snapshot)
}

async fn subscriptions_carry_changes_only(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    server.set_snapshot(eds_snapshot("v1", &["dl-a", "dl-b"])?);
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("dl-a and dl-b active with endpoints", true, |d| {
            clusters_active(d, &["dl-a", "dl-b"])?;
            has_endpoints(d, "dl-a")?;
            has_endpoints(d, "dl-b")
        })
        .await?;

    let mark = server.request_count();
    server.set_snapshot(eds_snapshot("v2", &["dl-a", "dl-b", "dl-c"])?);
    let added = request(&server, "the EDS request subscribing to dl-c", |r| {
        r.seq >= mark
            && r.stream_id == stream.id
            && r.type_url() == ENDPOINT
            && r.delta()
                .is_some_and(|d| has(&d.resource_names_subscribe, "dl-c"))
    })
    .await?;
    check_change(&server, &added, &["dl-c"], &[])?;
    client
        .wait_dump("dl-c active with endpoints", true, |d| {
            clusters_active(d, &["dl-c"])?;
            has_endpoints(d, "dl-c")
        })
        .await?;

    let mark = server.request_count();
    server.set_snapshot(eds_snapshot("v3", &["dl-b", "dl-c"])?);
    let removed = request(&server, "the EDS request unsubscribing from dl-a", |r| {
        r.seq >= mark
            && r.stream_id == stream.id
            && r.type_url() == ENDPOINT
            && r.delta()
                .is_some_and(|d| has(&d.resource_names_unsubscribe, "dl-a"))
    })
    .await?;
    check_change(&server, &removed, &[], &["dl-a"])?;

    let repeated = repeated_subscriptions(&server.requests(), stream.id, ENDPOINT);
    ensure!(
        repeated.is_empty(),
        "names subscribed again while already subscribed (request seq, name): {repeated:?}"
    );
    Ok(())
}

async fn initial_resource_versions_on_reconnect(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    let v1 = Snapshot::new("v1")
        .with(static_cluster("ir-a")?)
        .with(static_cluster("ir-b")?)
        .with(eds_cluster("ir-e", None, None)?)
        .with(endpoints("ir-e", &[18095])?);
    let good_b = v1
        .resource_version(CLUSTER, "ir-b")
        .unwrap_or_default()
        .to_string();
    server.set_snapshot(v1);
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("ir-a, ir-b, ir-e active", true, |d| {
            clusters_active(d, &["ir-a", "ir-b", "ir-e"])?;
            has_endpoints(d, "ir-e")
        })
        .await?;

    let mark = server.response_count();
    let v2 = Snapshot::new("v2")
        .with(static_cluster("ir-a")?)
        .with(invalid_cluster("ir-b")?)
        .with(static_cluster("ir-c")?)
        .with(eds_cluster("ir-e", None, None)?)
        .with(endpoints("ir-e", &[18095])?);
    let bad_b = v2
        .resource_version(CLUSTER, "ir-b")
        .unwrap_or_default()
        .to_string();
    server.set_snapshot(v2);
    let sent = response(&server, "the CDS response with the invalid ir-b", |r| {
        r.seq >= mark && r.type_url == CLUSTER && has(&r.resource_names, "ir-b")
    })
    .await?;
    let answer = answer_to(&server, &sent).await?;
    ensure!(
        answer.error_message().is_some(),
        "the invalid ir-b (connect_timeout: 0s) was ACKed: {}",
        describe(&answer)
    );
    client
        .wait_dump("ir-c applied", false, |d| clusters_active(d, &["ir-c"]))
        .await?;

    let snapshot = server.snapshot();
    ensure!(server.drop_streams() > 0, "no stream was open to drop");
    let second = ctx.connected_stream(&server, stream.id).await?;

    let first_cds = request(&server, "the first CDS request of the new stream", |r| {
        r.stream_id == second.id && r.type_url() == CLUSTER
    })
    .await?;
    ensure!(
        first_cds.response_nonce().is_empty(),
        "the first CDS request of a new stream carries an old nonce: {}",
        describe(&first_cds)
    );
    let versions = initial_versions(&first_cds);
    for name in ["ir-a", "ir-c"] {
        let expected = snapshot.resource_version(CLUSTER, name).unwrap_or_default();
        ensure!(
            versions.get(name).map(String::as_str) == Some(expected),
            "the first CDS request of the new stream gives {name} version {:?}; it has {expected:?}: {}",
            versions.get(name),
            describe(&first_cds)
        );
    }
    match versions.get("ir-b") {
        None => {}
        Some(v) if *v == good_b => {}
        Some(v) if *v == bad_b => fail!(
            "the first CDS request of the new stream claims the NACKed version of ir-b: {}",
            describe(&first_cds)
        ),
        Some(v) => fail!(
            "the first CDS request of the new stream gives ir-b an unknown version {v:?}: {}",
            describe(&first_cds)
        ),
    }

    let first_eds = request(&server, "the first EDS request of the new stream", |r| {
        r.stream_id == second.id && r.type_url() == ENDPOINT
    })
    .await?;
    let expected = snapshot
        .resource_version(ENDPOINT, "ir-e")
        .unwrap_or_default();
    ensure!(
        initial_versions(&first_eds).get("ir-e").map(String::as_str) == Some(expected),
        "the first EDS request of the new stream does not give ir-e's version {expected:?}: {}",
        describe(&first_eds)
    );

    // Not claiming the NACKed version makes the server send ir-b again; it is rejected again.
    let resent = response(&server, "ir-b sent again on the new stream", |r| {
        r.stream_id == second.id && r.type_url == CLUSTER && has(&r.resource_names, "ir-b")
    })
    .await?;
    let answer = answer_to(&server, &resent).await?;
    ensure!(
        answer.error_message().is_some(),
        "the invalid ir-b, sent again after the reconnect, was ACKed: {}",
        describe(&answer)
    );
    Ok(())
}
