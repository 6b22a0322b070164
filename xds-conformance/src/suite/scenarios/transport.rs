//! The transport rules: the node on every stream, ACK and NACK contents, invalid and duplicate
//! resources, unrequested resources, wildcard CDS/LDS.

use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use serde_json::json;

use super::super::context::{ClientSetup, Ctx, NODE_CLUSTER, answer_to, request, response};
use super::super::resources::{
    eds_cluster, endpoints, free_port, inline_listener, invalid_cluster, static_cluster,
};
use super::super::runner::Scenario;
use super::super::subscription::describe;
use super::super::{Failure, Mode};
use super::{BOTH, clusters_active, duplicated, has, has_endpoints, listeners_active, normalized};
use crate::recorder::StreamInfo;
use crate::type_url::{CLUSTER, ENDPOINT, LISTENER};
use crate::{Behavior, ServerOptions, Snapshot};

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "node_on_every_stream",
            modes: BOTH,
            checks: "the first request of every stream (also after a reconnect) carries the full node",
            slow: false,
            run: |ctx| Box::pin(node_on_every_stream(ctx)),
        },
        Scenario {
            name: "ack_matches_response",
            modes: BOTH,
            checks: "one ACK per response: its nonce, (SotW) its version, no error_detail",
            slow: false,
            run: |ctx| Box::pin(ack_matches_response(ctx)),
        },
        Scenario {
            name: "nack_keeps_last_good_version",
            modes: BOTH,
            checks: "an invalid cluster is NACKed with its name and reason, the valid ones are \
                     applied, its last good version stays active with error_state",
            slow: false,
            run: |ctx| Box::pin(nack_keeps_last_good_version(ctx)),
        },
        Scenario {
            name: "duplicate_names_nacked",
            modes: BOTH,
            checks: "a response naming a resource twice is NACKed and nothing of it applied",
            slow: false,
            run: |ctx| Box::pin(duplicate_names_nacked(ctx)),
        },
        Scenario {
            name: "unrequested_resources_ignored",
            modes: BOTH,
            checks: "EDS resources the client did not ask for are ignored (ACKed, not applied)",
            slow: false,
            run: |ctx| Box::pin(unrequested_resources_ignored(ctx)),
        },
        Scenario {
            name: "wildcard_cds_lds",
            modes: BOTH,
            checks: "the first CDS and LDS requests subscribe to everything and get everything",
            slow: false,
            run: |ctx| Box::pin(wildcard_cds_lds(ctx)),
        },
    ]
}

fn check_node(ctx: &Ctx, stream: &StreamInfo) -> Result<(), Failure> {
    let Some(node) = &stream.node else {
        fail!("the first request of stream {} carries no node", stream.id);
    };
    let at = format!("the node of stream {}'s first request", stream.id);
    ensure!(
        node.id == ctx.node_id(),
        "{at}: id {:?}, expected the bootstrap's {:?}",
        node.id,
        ctx.node_id()
    );
    ensure!(
        node.cluster == NODE_CLUSTER,
        "{at}: cluster {:?}, expected the bootstrap's {NODE_CLUSTER:?}",
        node.cluster
    );
    ensure!(
        !node.user_agent_name.is_empty(),
        "{at}: user_agent_name is empty"
    );
    let versioned = match &node.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentVersion(version)) => !version.is_empty(),
        Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build.version.is_some(),
        None => false,
    };
    ensure!(
        versioned,
        "{at}: neither user_agent_version nor user_agent_build_version is set"
    );
    Ok(())
}

async fn node_on_every_stream(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    server.set_snapshot(Snapshot::new("v1").with(static_cluster("node-a")?));
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let first = ctx.connected_stream(&server, 0).await?;
    check_node(&ctx, &first)?;
    client
        .wait_dump("cluster node-a active", false, |d| {
            clusters_active(d, &["node-a"])
        })
        .await?;
    ensure!(server.drop_streams() > 0, "no stream was open to drop");
    let second = ctx.connected_stream(&server, first.id).await?;
    check_node(&ctx, &second)
}

async fn ack_matches_response(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    server.set_snapshot(Snapshot::new("v1").with(static_cluster("ack-a")?));
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    let sotw = ctx.mode() == Mode::Sotw;

    let steps = [("v1", "ack-a"), ("v2", "ack-b"), ("v3", "ack-c")];
    let mut nonces = Vec::new();
    for (version, name) in steps {
        if version != "v1" {
            let cluster = static_cluster(name)?;
            server.update_snapshot(|s| {
                s.insert(&cluster);
                s.set_version(version);
            });
        }
        let sent = response(&server, &format!("the CDS response {version}"), |r| {
            r.stream_id == stream.id && r.type_url == CLUSTER && r.version == version
        })
        .await?;
        let answer = answer_to(&server, &sent).await?;
        ensure!(
            answer.error_message().is_none(),
            "the valid CDS response {version} was NACKed: {}",
            describe(&answer)
        );
        if sotw {
            ensure!(
                answer.version_info() == version,
                "the ACK of the CDS response {version} carries version_info {:?}",
                answer.version_info()
            );
        }
        let cluster = client
            .wait_dump(&format!("cluster {name} active"), false, |d| {
                d.active_cluster(name)
                    .ok_or_else(|| format!("{name} is not active"))
            })
            .await?;
        if sotw {
            ensure!(
                cluster.version_info == version,
                "cluster {name} shows version_info {:?}, expected {version:?}",
                cluster.version_info
            );
        }
        nonces.push(sent.nonce);
    }
    // Exactly one answer per response, counted once later responses were answered: a second
    // answer to an earlier one would have arrived by then.
    let requests = server.requests();
    for nonce in &nonces[..nonces.len() - 1] {
        let answers: Vec<String> = requests
            .iter()
            .filter(|r| {
                r.stream_id == stream.id && r.type_url() == CLUSTER && r.response_nonce() == nonce
            })
            .map(describe)
            .collect();
        ensure!(
            answers.len() == 1,
            "{} requests answer the CDS response with nonce {nonce:?} (expected exactly one):\n{}",
            answers.len(),
            answers.join("\n")
        );
    }
    // LDS is answered too, although it holds no listener.
    let lds = response(&server, "the LDS response", |r| {
        r.stream_id == stream.id && r.type_url == LISTENER
    })
    .await?;
    let answer = answer_to(&server, &lds).await?;
    ensure!(
        answer.error_message().is_none(),
        "the empty LDS response was NACKed: {}",
        describe(&answer)
    );
    if sotw {
        ensure!(
            answer.version_info() == lds.version,
            "the ACK of the LDS response {:?} carries version_info {:?}",
            lds.version,
            answer.version_info()
        );
    }
    Ok(())
}

async fn nack_keeps_last_good_version(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    server.set_snapshot(
        Snapshot::new("v1")
            .with(static_cluster("nack-good")?)
            .with(static_cluster("nack-bad")?),
    );
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("the first version active", false, |d| {
            clusters_active(d, &["nack-good", "nack-bad"])
        })
        .await?;

    let mark = server.response_count();
    server.set_snapshot(
        Snapshot::new("v2")
            .with(static_cluster("nack-good")?)
            .with(static_cluster("nack-new")?)
            .with(invalid_cluster("nack-bad")?),
    );
    let sent = response(&server, "the CDS response with the invalid nack-bad", |r| {
        r.seq >= mark && r.type_url == CLUSTER && has(&r.resource_names, "nack-bad")
    })
    .await?;
    let answer = answer_to(&server, &sent).await?;
    let Some(message) = answer.error_message() else {
        fail!(
            "a response with an invalid cluster (nack-bad, connect_timeout: 0s) was ACKed: {}",
            describe(&answer)
        );
    };
    ensure!(
        message.contains("nack-bad"),
        "the NACK's error_detail does not name the invalid cluster nack-bad: {message:?}"
    );
    ensure!(
        !message.contains("nack-new"),
        "the NACK's error_detail blames the valid cluster nack-new: {message:?}"
    );
    if ctx.mode() == Mode::Sotw {
        ensure!(
            answer.version_info() == "v1",
            "the NACK carries version_info {:?}, expected the last accepted \"v1\"",
            answer.version_info()
        );
    }

    let (bad, type_version) = client
        .wait_dump(
            "the valid nack-new applied and nack-bad kept with its error",
            false,
            |d| {
                clusters_active(d, &["nack-good", "nack-new"])?;
                let bad = d
                    .active_cluster("nack-bad")
                    .ok_or("nack-bad (its last good version) is not active")?;
                if bad.error_state.is_none() {
                    return Err("nack-bad has no error_state".into());
                }
                Ok((bad, d.clusters_version()))
            },
        )
        .await?;
    ensure!(
        bad.field("connect_timeout") == Some(&json!("1s")),
        "the nack-bad in use is not its last good version: connect_timeout {:?}",
        bad.field("connect_timeout")
    );
    let Some(error) = &bad.error_state else {
        fail!("nack-bad has no error_state");
    };
    ensure!(
        normalized(&error.details).contains("connecttimeout"),
        "nack-bad's error_state.details does not give the reason (connect_timeout): {:?}",
        error.details
    );
    let failed_name = error
        .failed_configuration
        .as_ref()
        .and_then(|c| c.get("name"))
        .and_then(|n| n.as_str());
    ensure!(
        failed_name == Some("nack-bad"),
        "nack-bad's error_state.failed_configuration is not the rejected cluster: {:?}",
        error.failed_configuration
    );
    if let Some(status) = &bad.client_status {
        ensure!(
            status == "NACKED",
            "nack-bad's client_status is {status}, expected NACKED"
        );
    }
    if ctx.mode() == Mode::Sotw {
        ensure!(
            type_version == "v1",
            "the clusters' version_info is {type_version:?}, expected the last accepted \"v1\""
        );
    }
    Ok(())
}

async fn duplicate_names_nacked(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    server.set_snapshot(Snapshot::new("v1").with(static_cluster("dup-keep")?));
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("dup-keep active", false, |d| {
            clusters_active(d, &["dup-keep"])
        })
        .await?;

    server.set_behavior(Behavior {
        duplicate_resources: true,
        ..Behavior::default()
    });
    let mark = server.response_count();
    server.set_snapshot(
        Snapshot::new("v2")
            .with(static_cluster("dup-keep")?)
            .with(static_cluster("dup-new")?),
    );
    let sent = response(&server, "a CDS response naming a cluster twice", |r| {
        r.seq >= mark && r.type_url == CLUSTER && duplicated(&r.resource_names).is_some()
    })
    .await?;
    let twice = duplicated(&sent.resource_names).unwrap_or_default();
    let answer = answer_to(&server, &sent).await?;
    let Some(message) = answer.error_message() else {
        fail!(
            "a CDS response naming {twice} twice ({:?}) was ACKed: {}",
            sent.resource_names,
            describe(&answer)
        );
    };
    ensure!(
        message.contains(&twice),
        "the NACK's error_detail does not name the duplicated {twice}: {message:?}"
    );
    if ctx.mode() == Mode::Sotw {
        ensure!(
            answer.version_info() == "v1",
            "the NACK carries version_info {:?}, expected the last accepted \"v1\"",
            answer.version_info()
        );
    }
    // The answer follows publication, so whatever the client took from the response is visible.
    let dump = client.dump(false).await?;
    ensure!(
        !dump.has_cluster("dup-new"),
        "dup-new, from the rejected response, was applied: {}",
        dump.summary()
    );
    ensure!(
        dump.active_cluster("dup-keep").is_some(),
        "dup-keep is no longer active: {}",
        dump.summary()
    );
    Ok(())
}

async fn unrequested_resources_ignored(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx
        .server_with(
            ServerOptions::default(),
            Behavior {
                unrequested_resources: true,
                ..Behavior::default()
            },
        )
        .await?;
    server.set_snapshot(
        Snapshot::new("v1")
            .with(eds_cluster("ur-c", None, None)?)
            .with(endpoints("ur-c", &[18082])?)
            .with(endpoints("ur-extra", &[18083])?),
    );
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    let sent = response(
        &server,
        "an EDS response carrying the unrequested ur-extra",
        |r| r.type_url == ENDPOINT && has(&r.resource_names, "ur-extra"),
    )
    .await?;
    let answer = answer_to(&server, &sent).await?;
    ensure!(
        answer.error_message().is_none(),
        "the client NACKed a response because it carried a resource it did not ask for \
         (it must ignore it): {}",
        describe(&answer)
    );
    let dump = client
        .wait_dump("ur-c active with its endpoints", true, |d| {
            clusters_active(d, &["ur-c"])?;
            has_endpoints(d, "ur-c")?;
            Ok(d.clone())
        })
        .await?;
    ensure!(
        dump.endpoint_config("ur-extra").is_none(),
        "the unrequested ur-extra was applied: {}",
        dump.summary()
    );
    let asked = server
        .requests()
        .into_iter()
        .find(|r| r.type_url() == ENDPOINT && has(r.resource_names(), "ur-extra"));
    ensure!(
        asked.is_none(),
        "the client subscribed to ur-extra, which no cluster names: {}",
        asked.as_ref().map(describe).unwrap_or_default()
    );
    Ok(())
}

async fn wildcard_cds_lds(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    server.set_snapshot(
        Snapshot::new("v1")
            .with(static_cluster("wc-a")?)
            .with(static_cluster("wc-b")?)
            .with(inline_listener("wc-l", free_port()?, "wc-a")?),
    );
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    for (url, label) in [(CLUSTER, "CDS"), (LISTENER, "LDS")] {
        let first = request(&server, &format!("the first {label} request"), |r| {
            r.stream_id == stream.id && r.type_url() == url
        })
        .await?;
        let wildcard = match first.delta() {
            Some(delta) => {
                let subscribe = &delta.resource_names_subscribe;
                delta.resource_names_unsubscribe.is_empty()
                    && (subscribe.is_empty() || has(subscribe, "*"))
            }
            None => first.resource_names().iter().all(|n| n == "*"),
        };
        ensure!(
            wildcard,
            "the first {label} request is not a wildcard subscription: {}",
            describe(&first)
        );
    }
    client
        .wait_dump("every cluster and listener of the snapshot", false, |d| {
            clusters_active(d, &["wc-a", "wc-b"])?;
            listeners_active(d, &["wc-l"])
        })
        .await?;
    Ok(())
}
