//! What the client subscribes to and what it removes: exact EDS and RDS name sets (proved against
//! a go-control-plane style ADS-strict server), SotW deletion by omission, delta deletion only by
//! `removed_resources`.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, Resource};

use super::super::Failure;
use super::super::config_dump::ConfigDump;
use super::super::context::{ClientSetup, Ctx, WAIT, ack_of, response, until};
use super::super::resources::{
    eds_cluster, endpoints, free_port, inline_listener, rds_listener, route, static_cluster,
};
use super::super::runner::Scenario;
use super::super::subscription::subscribed_names;
use super::{BOTH, DELTA, SOTW, clusters_active, has, has_endpoints, listeners_active};
use crate::server::ManagementServer;
use crate::type_url::{self, CLUSTER, ENDPOINT, ROUTE};
use crate::{Behavior, ResponseOrigin, ServerOptions, Snapshot, pack};

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "eds_names_exact",
            modes: BOTH,
            checks: "the EDS subscription is exactly the EDS names of all clusters as they come \
                     and go; an ADS-strict server still serves every endpoint",
            slow: false,
            run: |ctx| Box::pin(eds_names_exact(ctx)),
        },
        Scenario {
            name: "rds_names_exact",
            modes: BOTH,
            checks: "the RDS subscription is exactly the route names of all listeners as they \
                     come and go; an ADS-strict server still serves every route",
            slow: false,
            run: |ctx| Box::pin(rds_names_exact(ctx)),
        },
        Scenario {
            name: "deletion_by_omission",
            modes: SOTW,
            checks: "clusters and listeners missing from a response are removed (an empty \
                     response removes all); a referenced route configuration missing from an \
                     RDS response stays",
            slow: false,
            run: |ctx| Box::pin(deletion_by_omission(ctx)),
        },
        Scenario {
            name: "deletion_only_by_removed_resources",
            modes: DELTA,
            checks: "a response that does not list a resource keeps it; removed_resources \
                     removes it",
            slow: false,
            run: |ctx| Box::pin(deletion_only_by_removed_resources(ctx)),
        },
    ]
}

/// Waits until the client's subscription to `type_url` on `stream_id` is exactly `expected`.
async fn wait_subscription(
    server: &ManagementServer,
    stream_id: u64,
    type_url: &str,
    expected: &[&str],
) -> Result<(), Failure> {
    let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_string()).collect();
    let what = format!(
        "the {} subscription of stream {stream_id} equals {expected:?}",
        type_url::short_name(type_url)
    );
    until(&what, WAIT, || {
        let names = subscribed_names(&server.requests(), stream_id, type_url);
        if names == expected {
            Ok(())
        } else {
            Err(format!("it is {names:?}"))
        }
    })
    .await
}

/// The listener is neither active nor warming (Envoy may still show it draining).
fn listener_gone(dump: &ConfigDump, name: &str) -> Result<(), String> {
    match dump.listener(name) {
        Some(l) if l.active.is_some() || l.warming.is_some() => {
            Err(format!("listener {name} is still there"))
        }
        _ => Ok(()),
    }
}

fn cluster_gone(dump: &ConfigDump, name: &str) -> Result<(), String> {
    if dump.has_cluster(name) {
        Err(format!("cluster {name} is still there"))
    } else {
        Ok(())
    }
}

async fn eds_names_exact(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx
        .server(ServerOptions::default().ads_strict(true))
        .await?;
    server.set_snapshot(
        Snapshot::new("v1")
            .with(eds_cluster("ex-a", Some("ex-a-svc"), None)?)
            .with(eds_cluster("ex-b", None, None)?)
            .with(endpoints("ex-a-svc", &[18084])?)
            .with(endpoints("ex-b", &[18085])?),
    );
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("both EDS clusters active with their endpoints", true, |d| {
            clusters_active(d, &["ex-a", "ex-b"])?;
            has_endpoints(d, "ex-a-svc")?;
            has_endpoints(d, "ex-b")
        })
        .await?;
    wait_subscription(&server, stream.id, ENDPOINT, &["ex-a-svc", "ex-b"]).await?;

    server.set_snapshot(
        Snapshot::new("v2")
            .with(eds_cluster("ex-a", Some("ex-a-svc"), None)?)
            .with(eds_cluster("ex-c", None, None)?)
            .with(endpoints("ex-a-svc", &[18084])?)
            .with(endpoints("ex-c", &[18086])?),
    );
    client
        .wait_dump("ex-c active with its endpoints, ex-b gone", true, |d| {
            clusters_active(d, &["ex-a", "ex-c"])?;
            has_endpoints(d, "ex-a-svc")?;
            has_endpoints(d, "ex-c")?;
            cluster_gone(d, "ex-b")
        })
        .await?;
    wait_subscription(&server, stream.id, ENDPOINT, &["ex-a-svc", "ex-c"]).await
}

async fn rds_names_exact(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx
        .server(ServerOptions::default().ads_strict(true))
        .await?;
    let (port1, port2, port3) = (free_port()?, free_port()?, free_port()?);
    server.set_snapshot(
        Snapshot::new("v1")
            .with(static_cluster("ex-target")?)
            .with(rds_listener("ex-l1", port1, "ex-r1")?)
            .with(rds_listener("ex-l2", port2, "ex-r2")?)
            .with(route("ex-r1", "ex-target")?)
            .with(route("ex-r2", "ex-target")?),
    );
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("both listeners active with their routes", false, |d| {
            listeners_active(d, &["ex-l1", "ex-l2"])?;
            for name in ["ex-r1", "ex-r2"] {
                d.route_config(name)
                    .ok_or_else(|| format!("no route configuration {name}"))?;
            }
            Ok(())
        })
        .await?;
    wait_subscription(&server, stream.id, ROUTE, &["ex-r1", "ex-r2"]).await?;

    server.set_snapshot(
        Snapshot::new("v2")
            .with(static_cluster("ex-target")?)
            .with(rds_listener("ex-l1", port1, "ex-r1")?)
            .with(rds_listener("ex-l3", port3, "ex-r3")?)
            .with(route("ex-r1", "ex-target")?)
            .with(route("ex-r3", "ex-target")?),
    );
    client
        .wait_dump("ex-l3 active with its routes, ex-l2 gone", false, |d| {
            listeners_active(d, &["ex-l1", "ex-l3"])?;
            d.route_config("ex-r3")
                .ok_or("no route configuration ex-r3")?;
            listener_gone(d, "ex-l2")
        })
        .await?;
    wait_subscription(&server, stream.id, ROUTE, &["ex-r1", "ex-r3"]).await
}

async fn deletion_by_omission(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    let (port1, port2) = (free_port()?, free_port()?);
    server.set_snapshot(
        Snapshot::new("v1")
            .with(static_cluster("del-a")?)
            .with(static_cluster("del-b")?)
            .with(rds_listener("del-l1", port1, "del-r")?)
            .with(inline_listener("del-l2", port2, "del-a")?)
            .with(route("del-r", "del-a")?),
    );
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("everything of v1 active", false, |d| {
            clusters_active(d, &["del-a", "del-b"])?;
            listeners_active(d, &["del-l1", "del-l2"])?;
            d.route_config("del-r")
                .map(|_| ())
                .ok_or_else(|| "no route configuration del-r".into())
        })
        .await?;

    // v2 leaves out del-b, del-l2 and (from RDS) del-r, which del-l1 still references.
    server.set_snapshot(
        Snapshot::new("v2")
            .with(static_cluster("del-a")?)
            .with(rds_listener("del-l1", port1, "del-r")?),
    );
    client
        .wait_dump("del-b and del-l2 removed", false, |d| {
            cluster_gone(d, "del-b")?;
            listener_gone(d, "del-l2")
        })
        .await?;
    let rds = response(&server, "the RDS response v2 without del-r", |r| {
        r.stream_id == stream.id && r.type_url == ROUTE && r.version == "v2"
    })
    .await?;
    ensure!(
        rds.resource_names.is_empty(),
        "suite bug: the RDS response v2 carries {:?}",
        rds.resource_names
    );
    ack_of(&server, &rds).await?;
    let dump = client.dump(false).await?;
    ensure!(
        clusters_active(&dump, &["del-a"]).is_ok() && listeners_active(&dump, &["del-l1"]).is_ok(),
        "del-a or del-l1, still in the snapshot, was removed: {}",
        dump.summary()
    );
    ensure!(
        dump.route_config("del-r").is_some(),
        "the route configuration del-r, missing from the RDS response but still referenced by \
         del-l1, was removed: {}",
        dump.summary()
    );

    // An empty response removes every cluster and listener.
    server.set_snapshot(Snapshot::new("v3"));
    client
        .wait_dump("every dynamic cluster and listener removed", false, |d| {
            cluster_gone(d, "del-a")?;
            listener_gone(d, "del-l1")
        })
        .await?;
    Ok(())
}

async fn deletion_only_by_removed_resources(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    server.set_snapshot(
        Snapshot::new("v1")
            .with(static_cluster("dd-a")?)
            .with(static_cluster("dd-b")?),
    );
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("dd-a and dd-b active", false, |d| {
            clusters_active(d, &["dd-a", "dd-b"])
        })
        .await?;

    // A response with only dd-c: in delta it adds dd-c and removes nothing. The server is
    // silenced first and already holds dd-c at the injected version, so nothing it sends of its
    // own accord can add or remove anything meanwhile.
    server.set_behavior(Behavior {
        silent: true,
        ..Behavior::default()
    });
    let with_c = Snapshot::new("v2")
        .with(static_cluster("dd-a")?)
        .with(static_cluster("dd-b")?)
        .with(static_cluster("dd-c")?);
    let c_version = with_c
        .resource_version(CLUSTER, "dd-c")
        .unwrap_or_default()
        .to_string();
    server.set_snapshot(with_c);
    let nonce = server.next_nonce();
    let raw = DeltaDiscoveryResponse {
        system_version_info: "raw-1".into(),
        type_url: CLUSTER.into(),
        resources: vec![Resource {
            name: "dd-c".into(),
            version: c_version,
            resource: Some(pack(&static_cluster("dd-c")?)),
            ..Default::default()
        }],
        nonce: nonce.clone(),
        ..Default::default()
    };
    ensure!(server.push_raw_delta(raw) > 0, "no delta stream was open");
    let sent = response(&server, "the injected response with dd-c", |r| {
        r.origin == ResponseOrigin::Raw && r.nonce == nonce
    })
    .await?;
    ack_of(&server, &sent).await?;
    let dump = client.dump(false).await?;
    ensure!(
        clusters_active(&dump, &["dd-a", "dd-b", "dd-c"]).is_ok(),
        "after a response listing only dd-c, expected dd-a, dd-b and dd-c active: {}",
        dump.summary()
    );
    server.set_behavior(Behavior::default());

    server.set_snapshot(
        Snapshot::new("v3")
            .with(static_cluster("dd-a")?)
            .with(static_cluster("dd-c")?),
    );
    let removal = response(&server, "the response removing dd-b", |r| {
        r.type_url == CLUSTER && has(&r.removed, "dd-b")
    })
    .await?;
    ack_of(&server, &removal).await?;
    client
        .wait_dump("dd-b removed by removed_resources", false, |d| {
            clusters_active(d, &["dd-a", "dd-c"])?;
            cluster_gone(d, "dd-b")
        })
        .await?;
    Ok(())
}
