//! Warming and readiness: clusters wait for their endpoints and listeners for their routes,
//! `initial_fetch_timeout` ends the wait, an absent resource becomes DOES_NOT_EXIST after 15 s,
//! `/ready` follows the initial configuration, and changes apply in make-before-break order.

use std::time::{Duration, Instant};

use super::super::Failure;
use super::super::config_dump::ConfigDump;
use super::super::context::{ClientSetup, Ctx, POLL, RunningClient, WAIT, request};
use super::super::resources::{
    eds_cluster, endpoints, free_port, rds_listener, route, static_cluster,
};
use super::super::runner::Scenario;
use super::{BOTH, clusters_active, has, has_endpoints, listeners_active};
use crate::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use crate::{Behavior, ServerOptions, Snapshot};

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "cluster_warms_until_endpoints",
            modes: BOTH,
            checks: "an EDS cluster without endpoints stays warming, then is active once they come",
            slow: false,
            run: |ctx| Box::pin(cluster_warms_until_endpoints(ctx)),
        },
        Scenario {
            name: "listener_warms_until_routes",
            modes: BOTH,
            checks: "a listener without its route configuration stays warming, then is active",
            slow: false,
            run: |ctx| Box::pin(listener_warms_until_routes(ctx)),
        },
        Scenario {
            name: "initial_fetch_timeout_ends_warming",
            modes: BOTH,
            checks: "initial_fetch_timeout 1s on eds_config ends warming without endpoints",
            slow: false,
            run: |ctx| Box::pin(initial_fetch_timeout_ends_warming(ctx)),
        },
        Scenario {
            name: "does_not_exist_after_15s",
            modes: BOTH,
            checks: "a subscribed EDS name the server never has is DOES_NOT_EXIST ~15 s after \
                     the subscription, not before",
            slow: true,
            run: |ctx| Box::pin(does_not_exist_after_15s(ctx)),
        },
        Scenario {
            name: "ready_after_initial_config",
            modes: BOTH,
            checks: "/ready is 503 before the initial configuration and 200 LIVE after",
            slow: false,
            run: |ctx| Box::pin(ready_after_initial_config(ctx)),
        },
        Scenario {
            name: "make_before_break_order",
            modes: BOTH,
            checks: "a new listener whose routes use a new cluster is active no earlier than \
                     that cluster with its endpoints",
            slow: false,
            run: |ctx| Box::pin(make_before_break_order(ctx)),
        },
    ]
}

async fn cluster_warms_until_endpoints(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    // No EDS type at all: EDS requests stay unanswered (an empty answer or a delta removal
    // would tell the client the endpoints do not exist).
    let mut snapshot = Snapshot::new("v1").with(eds_cluster("warm-c", None, Some("0s"))?);
    snapshot.remove_type(ENDPOINT);
    server.set_snapshot(snapshot);
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    request(&server, "the EDS request for warm-c", |r| {
        r.type_url() == ENDPOINT && has(r.resource_names(), "warm-c")
    })
    .await?;
    client
        .wait_dump(
            "warm-c warming while its endpoints are withheld",
            false,
            |d| {
                if d.active_cluster("warm-c").is_some() {
                    return Err("warm-c is active without its endpoints".into());
                }
                d.warming_cluster("warm-c")
                    .map(|_| ())
                    .ok_or_else(|| "warm-c is not in dynamic_warming_clusters".into())
            },
        )
        .await?;
    let assignment = endpoints("warm-c", &[18087])?;
    server.update_snapshot(|s| {
        s.insert(&assignment);
    });
    client
        .wait_dump("warm-c active with its endpoints", true, |d| {
            clusters_active(d, &["warm-c"])?;
            if d.warming_cluster("warm-c").is_some() {
                return Err("warm-c is still warming too".into());
            }
            has_endpoints(d, "warm-c")
        })
        .await?;
    Ok(())
}

async fn listener_warms_until_routes(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    let mut snapshot = Snapshot::new("v1")
        .with(static_cluster("warm-target")?)
        .with(rds_listener("warm-l", free_port()?, "warm-r")?);
    snapshot.remove_type(ROUTE);
    server.set_snapshot(snapshot);
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    request(&server, "the RDS request for warm-r", |r| {
        r.type_url() == ROUTE && has(r.resource_names(), "warm-r")
    })
    .await?;
    client
        .wait_dump("warm-l warming while its routes are withheld", false, |d| {
            let listener = d.listener("warm-l").ok_or("no listener warm-l")?;
            if listener.active.is_some() {
                return Err("warm-l is active without its route configuration".into());
            }
            listener
                .warming
                .map(|_| ())
                .ok_or_else(|| "warm-l has no warming_state".into())
        })
        .await?;
    let routes = route("warm-r", "warm-target")?;
    server.update_snapshot(|s| {
        s.insert(&routes);
    });
    client
        .wait_dump("warm-l active with its routes", false, |d| {
            let listener = d.listener("warm-l").ok_or("no listener warm-l")?;
            if listener.active.is_none() || listener.warming.is_some() {
                return Err("warm-l is not (only) active".into());
            }
            d.route_config("warm-r")
                .map(|_| ())
                .ok_or_else(|| "no route configuration warm-r".into())
        })
        .await?;
    Ok(())
}

async fn initial_fetch_timeout_ends_warming(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    let mut snapshot = Snapshot::new("v1").with(eds_cluster("ift-c", None, Some("1s"))?);
    snapshot.remove_type(ENDPOINT);
    server.set_snapshot(snapshot);
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    // Sampled often enough to see the 1 s of warming before the timeout ends it.
    let mut seen_warming = false;
    client
        .wait_dump(
            "ift-c active once initial_fetch_timeout (1s) passed",
            false,
            |d| {
                if d.warming_cluster("ift-c").is_some() {
                    seen_warming = true;
                }
                clusters_active(d, &["ift-c"])
            },
        )
        .await?;
    ensure!(
        seen_warming,
        "ift-c was never seen warming: it became active at once although its endpoints never came"
    );
    let eds_responses = server
        .responses()
        .iter()
        .filter(|r| r.type_url == ENDPOINT)
        .count();
    ensure!(
        eds_responses == 0,
        "suite bug: the server answered EDS {eds_responses} times"
    );
    Ok(())
}

/// How the client reports `name` of `type_url`: CSDS on the admin port where served, else the
/// `client_status` of the endpoint configuration in `/config_dump?include_eds`.
async fn reported_status(
    client: &mut RunningClient,
    type_url: &str,
    name: &str,
) -> Result<(Option<String>, &'static str), String> {
    if let Ok(resources) = client.admin().client_status().await {
        let status = resources
            .into_iter()
            .find(|r| r.type_url == type_url && r.name == name)
            .map(|r| r.client_status);
        return Ok((status, "CSDS"));
    }
    let dump = client
        .dump(true)
        .await
        .map_err(|e| format!("neither CSDS nor the dump: {e}"))?;
    let status = dump.endpoint_config(name).and_then(|e| e.client_status);
    Ok((status, "/config_dump"))
}

async fn does_not_exist_after_15s(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    let mut snapshot = Snapshot::new("v1").with(eds_cluster("dne-c", Some("dne-ghost"), None)?);
    snapshot.remove_type(ENDPOINT);
    server.set_snapshot(snapshot);
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    let subscribed = request(&server, "the EDS request for dne-ghost", |r| {
        r.type_url() == ENDPOINT && has(r.resource_names(), "dne-ghost")
    })
    .await?;
    let deadline = subscribed.at + Duration::from_secs(22);
    loop {
        client.ensure_running()?;
        let status = reported_status(&mut client, ENDPOINT, "dne-ghost").await;
        let now = Instant::now();
        if let Ok((Some(s), source)) = &status
            && s == "DOES_NOT_EXIST"
        {
            let after = now.duration_since(subscribed.at);
            ensure!(
                after >= Duration::from_secs(13),
                "dne-ghost was DOES_NOT_EXIST {after:?} after the subscription; expected ~15 s"
            );
            ctx.note(format!(
                "DOES_NOT_EXIST {:.1}s after the subscription (via {source})",
                after.as_secs_f64()
            ));
            return Ok(());
        }
        if now >= deadline {
            fail!(
                "dne-ghost (never served) is not DOES_NOT_EXIST 22 s after the subscription; \
                 last status seen: {status:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn ready_after_initial_config(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx
        .server_with(
            ServerOptions::default(),
            Behavior {
                silent: true,
                ..Behavior::default()
            },
        )
        .await?;
    server.set_snapshot(Snapshot::new("v1").with(static_cluster("rdy-a")?));
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    request(&server, "the first CDS request", |r| {
        r.type_url() == CLUSTER
    })
    .await?;
    request(&server, "the first LDS request", |r| {
        r.type_url() == LISTENER
    })
    .await?;
    let before = client.ready().await?;
    ensure!(
        before.status == 503,
        "/ready answered {} {:?} before any configuration arrived; expected 503",
        before.status,
        before.body.trim()
    );
    server.update_behavior(|b| b.silent = false);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = client.ready().await?;
        if now.status == 200 {
            ensure!(
                now.body.trim() == "LIVE",
                "/ready answered 200 with {:?}; expected LIVE",
                now.body.trim()
            );
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            fail!(
                "/ready still answers {} {:?} {WAIT:?} after the configuration was served",
                now.status,
                now.body.trim()
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let dump = client.dump(false).await?;
    ensure!(
        clusters_active(&dump, &["rdy-a"]).is_ok(),
        "/ready is LIVE but rdy-a is not active: {}",
        dump.summary()
    );
    Ok(())
}

/// Violations of make-before-break in one dump: the new listener active before its cluster is.
fn order_violation(dump: &ConfigDump) -> Option<String> {
    if !dump.listener_active("mbb-l2") {
        return None;
    }
    let problem = if dump.route_config("mbb-r2").is_none() {
        "its route configuration mbb-r2 is unknown"
    } else if dump.active_cluster("mbb-new").is_none() {
        "cluster mbb-new, which its routes use, is not active"
    } else if has_endpoints(dump, "mbb-new").is_err() {
        "cluster mbb-new, which its routes use, has no endpoints yet"
    } else {
        return None;
    };
    Some(format!(
        "listener mbb-l2 is active while {problem}: {}",
        dump.summary()
    ))
}

async fn make_before_break_order(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    let (port1, port2) = (free_port()?, free_port()?);
    server.set_snapshot(
        Snapshot::new("v1")
            .with(static_cluster("mbb-old")?)
            .with(rds_listener("mbb-l1", port1, "mbb-r1")?)
            .with(route("mbb-r1", "mbb-old")?),
    );
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("v1 active", false, |d| {
            clusters_active(d, &["mbb-old"])?;
            listeners_active(d, &["mbb-l1"])
        })
        .await?;

    // v2 adds a listener whose routes use a new EDS cluster, with the cluster's endpoints held
    // back: the listener must not go live before the cluster can serve.
    let mut v2 = Snapshot::new("v2")
        .with(static_cluster("mbb-old")?)
        .with(eds_cluster("mbb-new", None, Some("0s"))?)
        .with(rds_listener("mbb-l1", port1, "mbb-r1")?)
        .with(rds_listener("mbb-l2", port2, "mbb-r2")?)
        .with(route("mbb-r1", "mbb-old")?)
        .with(route("mbb-r2", "mbb-new")?);
    v2.remove_type(ENDPOINT);
    server.set_snapshot(v2);
    request(&server, "the EDS request for mbb-new", |r| {
        r.type_url() == ENDPOINT && has(r.resource_names(), "mbb-new")
    })
    .await?;
    request(&server, "the RDS request for mbb-r2", |r| {
        r.type_url() == ROUTE && has(r.resource_names(), "mbb-r2")
    })
    .await?;
    // The RDS answer is in; watch for a while that the listener does not go live early.
    let window_end = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < window_end {
        let dump = client.dump(true).await?;
        if let Some(violation) = order_violation(&dump) {
            fail!("{violation}");
        }
        tokio::time::sleep(POLL).await;
    }
    let assignment = endpoints("mbb-new", &[18088])?;
    server.update_snapshot(|s| {
        s.insert(&assignment);
    });
    // A violation ends the wait at once: it must not be retried away.
    let mut violation = None;
    client
        .wait_dump("mbb-new and then mbb-l2 active", true, |d| {
            if let Some(found) = order_violation(d) {
                violation = Some(found);
                return Ok(());
            }
            clusters_active(d, &["mbb-new"])?;
            has_endpoints(d, "mbb-new")?;
            listeners_active(d, &["mbb-l2"])
        })
        .await?;
    if let Some(violation) = violation {
        fail!("{violation}");
    }
    Ok(())
}
