//! Losing the server: resuming on a new stream with the last accepted state, serving the last
//! configuration while the server is down, reconnecting with backoff, and not spinning on a
//! server that re-sends a NACKed version at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::config_dump::ConfigDump;
use super::super::context::{ClientSetup, Ctx, POLL, ack_of, listen_again, request, response};
use super::super::resources::{free_port, inline_listener, invalid_cluster, static_cluster};
use super::super::runner::Scenario;
use super::super::subscription::{describe, describe_last, initial_versions};
use super::super::{Failure, Mode};
use super::{BOTH, clusters_active, listeners_active};
use crate::recorder::RecordedRequest;
use crate::type_url::CLUSTER;
use crate::{Behavior, ResponseOrigin, ServerOptions, Snapshot};

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "reconnect_resumes",
            modes: BOTH,
            checks: "after the stream drops, a new stream resumes: no old nonce, (SotW) the last \
                     accepted version, (delta) the versions held",
            slow: false,
            run: |ctx| Box::pin(reconnect_resumes(ctx)),
        },
        Scenario {
            name: "serves_last_config_while_server_down",
            modes: BOTH,
            checks: "with the server down the configuration stays, reconnect attempts are spaced \
                     (≤ 5 in 2 s, ≤ 10 connections), and the client resumes when the server is \
                     back on its port",
            slow: true,
            run: |ctx| Box::pin(serves_last_config_while_server_down(ctx)),
        },
        Scenario {
            name: "no_busy_loop_on_nack",
            modes: BOTH,
            checks: "against a server re-sending the NACKed version at once, the client sends \
                     ≤ 10 requests in 3 s and keeps its last good configuration",
            slow: true,
            run: |ctx| Box::pin(no_busy_loop_on_nack(ctx)),
        },
    ]
}

/// The first CDS request of a new stream resumes what the client has for `cluster`.
fn check_resume(
    ctx: &Ctx,
    first: &RecordedRequest,
    accepted_version: &str,
    cluster: &str,
    cluster_version: &str,
) -> Result<(), Failure> {
    ensure!(
        first.response_nonce().is_empty(),
        "the first CDS request of the new stream carries a nonce of the old one: {}",
        describe(first)
    );
    match ctx.mode() {
        Mode::Sotw => ensure!(
            first.version_info() == accepted_version,
            "the first CDS request of the new stream carries version_info {:?}; expected the \
             last accepted {accepted_version:?}",
            first.version_info()
        ),
        Mode::Delta => ensure!(
            initial_versions(first).get(cluster).map(String::as_str) == Some(cluster_version),
            "the first CDS request of the new stream does not give {cluster}'s version \
             {cluster_version:?} in initial_resource_versions: {}",
            describe(first)
        ),
    }
    Ok(())
}

async fn reconnect_resumes(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    server.set_snapshot(Snapshot::new("v1").with(static_cluster("rc-a")?));
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    let sent = response(&server, "the CDS response v1", |r| {
        r.stream_id == stream.id && r.type_url == CLUSTER
    })
    .await?;
    ack_of(&server, &sent).await?;
    client
        .wait_dump("rc-a active", false, |d| clusters_active(d, &["rc-a"]))
        .await?;

    ensure!(server.drop_streams() > 0, "no stream was open to drop");
    let second = ctx.connected_stream(&server, stream.id).await?;
    let first = request(&server, "the first CDS request of the new stream", |r| {
        r.stream_id == second.id && r.type_url() == CLUSTER
    })
    .await?;
    let rc_a = server
        .snapshot()
        .resource_version(CLUSTER, "rc-a")
        .unwrap_or_default()
        .to_string();
    check_resume(&ctx, &first, "v1", "rc-a", &rc_a)?;

    let cluster = static_cluster("rc-b")?;
    server.update_snapshot(|s| {
        s.insert(&cluster);
        s.set_version("v2");
    });
    client
        .wait_dump("rc-b, sent on the new stream, active", false, |d| {
            clusters_active(d, &["rc-a", "rc-b"])
        })
        .await?;
    Ok(())
}

/// What must not change while the server is away: the dynamic clusters and listeners.
fn config_state(dump: &ConfigDump) -> String {
    let mut clusters: Vec<String> = dump
        .dynamic_clusters()
        .iter()
        .map(|c| {
            format!(
                "{}@{}{}",
                c.name,
                c.version_info,
                if c.warming { " warming" } else { "" }
            )
        })
        .collect();
    clusters.sort();
    let mut listeners: Vec<String> = dump
        .dynamic_listeners()
        .iter()
        .map(|l| {
            let active = l.active.as_ref().map(|s| s.version_info.as_str());
            format!("{} active={active:?}", l.name)
        })
        .collect();
    listeners.sort();
    format!("clusters {clusters:?} listeners {listeners:?}")
}

/// "A handful": at most this many reconnect attempts in the first 2 s without a server.
const MAX_ATTEMPTS_IN_2S: usize = 5;

/// Connections (times since the server went down, in order) grouped into attempts: a client may
/// open a second connection at once when the first is cut (a transport-level retry), so
/// connections less than 100 ms after the previous one belong to its attempt. The raw count is
/// capped separately, so a client that spins every few milliseconds still fails.
fn reconnect_attempts(connections: &[Duration]) -> usize {
    let mut attempts = 0;
    let mut last: Option<Duration> = None;
    for at in connections {
        if last.is_none_or(|previous| at.saturating_sub(previous) >= Duration::from_millis(100)) {
            attempts += 1;
        }
        last = Some(*at);
    }
    attempts
}

async fn serves_last_config_while_server_down(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx.server(ServerOptions::default()).await?;
    let address = server.addr();
    let listener = inline_listener("sd-l", free_port()?, "sd-a")?;
    server.set_snapshot(
        Snapshot::new("v1")
            .with(static_cluster("sd-a")?)
            .with(listener.clone()),
    );
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    let stream = ctx.connected_stream(&server, 0).await?;
    let sent = response(&server, "the CDS response v1", |r| {
        r.stream_id == stream.id && r.type_url == CLUSTER
    })
    .await?;
    ack_of(&server, &sent).await?;
    let before = client
        .wait_dump("sd-a and sd-l active", false, |d| {
            clusters_active(d, &["sd-a"])?;
            listeners_active(d, &["sd-l"])?;
            Ok(config_state(d))
        })
        .await?;
    let sd_a = server
        .snapshot()
        .resource_version(CLUSTER, "sd-a")
        .unwrap_or_default()
        .to_string();

    server.shutdown().await;
    drop(server);
    // Stand in for the server on its port, accepting and at once closing every connection, to
    // count the client's attempts.
    let standin = listen_again(address).await?;
    let attempts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let counter = {
        let attempts = attempts.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = standin.accept().await {
                attempts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Instant::now());
                drop(socket);
            }
        })
    };
    let down_since = Instant::now();
    let window = Duration::from_secs(3);
    while down_since.elapsed() < window {
        let now = config_state(&client.dump(false).await?);
        if now != before {
            counter.abort();
            fail!(
                "the configuration changed while the server was down:\n  before {before}\n  now    {now}"
            );
        }
        tokio::time::sleep(POLL * 2).await;
    }
    counter.abort();
    // The aborted task drops the stand-in listener; wait for that before listening again.
    let _ = counter.await;
    let connections: Vec<Duration> = attempts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|t| t.duration_since(down_since))
        .collect();
    let shown: Vec<String> = connections
        .iter()
        .map(|d| format!("{:.2}s", d.as_secs_f64()))
        .collect();
    ensure!(
        !connections.is_empty(),
        "the client made no attempt to reconnect in {window:?} while the server was down"
    );
    let early: Vec<Duration> = connections
        .iter()
        .copied()
        .filter(|d| *d < Duration::from_secs(2))
        .collect();
    let attempts_early = reconnect_attempts(&early);
    ensure!(
        attempts_early <= MAX_ATTEMPTS_IN_2S && early.len() <= 2 * MAX_ATTEMPTS_IN_2S,
        "the client tried to reconnect {attempts_early} times ({} connections) in 2 s while the \
         server was down, at {shown:?}: no backoff",
        early.len()
    );
    let ready = client.ready().await?;
    ensure!(
        ready.status == 200,
        "/ready answers {} while the server is down; the last configuration is still served",
        ready.status
    );

    ctx.note(format!(
        "{} reconnect attempts ({} connections) in 3 s down, at {shown:?}",
        reconnect_attempts(&connections),
        connections.len()
    ));
    let restarted = ctx.server_at(address, ServerOptions::default()).await?;
    let restarted_at = Instant::now();
    restarted.set_snapshot(
        Snapshot::new("v2")
            .with(static_cluster("sd-a")?)
            .with(static_cluster("sd-b")?)
            .with(listener),
    );
    // Backoff may have grown while the server was down (Envoy caps it at 30 s).
    ctx.connected_stream_within(&restarted, 0, Duration::from_secs(35))
        .await?;
    ctx.note(format!(
        "back {:.1}s after the restart",
        restarted_at.elapsed().as_secs_f64()
    ));
    let first = request(
        &restarted,
        "the first CDS request to the restarted server",
        |r| r.type_url() == CLUSTER,
    )
    .await?;
    check_resume(&ctx, &first, "v1", "sd-a", &sd_a)?;
    client
        .wait_dump("sd-b, from the restarted server, active", false, |d| {
            clusters_active(d, &["sd-a", "sd-b"])
        })
        .await?;
    Ok(())
}

async fn no_busy_loop_on_nack(mut ctx: Ctx) -> Result<(), Failure> {
    let server = ctx
        .server_with(
            ServerOptions::default(),
            Behavior {
                resend_nacked: true,
                resend_nacked_delta: true,
                ..Behavior::default()
            },
        )
        .await?;
    server.set_snapshot(Snapshot::new("v1").with(static_cluster("bl-a")?));
    let mut client = ctx.client(&server, ClientSetup::default()).await?;
    ctx.connected_stream(&server, 0).await?;
    client
        .wait_dump("bl-a active", false, |d| clusters_active(d, &["bl-a"]))
        .await?;

    let mark = server.request_count();
    server.set_snapshot(
        Snapshot::new("v2")
            .with(static_cluster("bl-a")?)
            .with(invalid_cluster("bl-bad")?),
    );
    let nack = request(&server, "the NACK of the invalid bl-bad", |r| {
        r.seq >= mark && r.type_url() == CLUSTER && r.is_nack()
    })
    .await?;
    // A bounded observation window: the rule is about what does not happen during it.
    let window = Duration::from_secs(3);
    tokio::time::sleep_until(tokio::time::Instant::from_std(nack.at + window)).await;
    let requests = server.requests();
    let in_window: Vec<RecordedRequest> = requests
        .iter()
        .filter(|r| r.at >= nack.at && r.at < nack.at + window)
        .cloned()
        .collect();
    let resent = server
        .responses()
        .iter()
        .filter(|r| r.origin == ResponseOrigin::Resend)
        .count();
    ensure!(
        resent > 0,
        "suite bug: the server never re-sent the NACKed version"
    );
    ensure!(
        in_window.len() <= 10,
        "{} requests in {window:?} against a server that re-sends the NACKed version at once \
         (it re-sent {resent} times): the client spins; the last ones:\n{}",
        in_window.len(),
        describe_last(&in_window, 8)
    );
    ctx.note(format!(
        "{} requests in 3 s after the first NACK; the server re-sent {resent} times",
        in_window.len()
    ));
    client.ensure_running()?;
    let dump = client.dump(false).await?;
    ensure!(
        clusters_active(&dump, &["bl-a"]).is_ok(),
        "bl-a, valid all along, is no longer active: {}",
        dump.summary()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_close_together_are_one_attempt() {
        let ms = Duration::from_millis;
        assert_eq!(reconnect_attempts(&[]), 0);
        assert_eq!(
            reconnect_attempts(&[ms(370), ms(371), ms(1060), ms(1061)]),
            2
        );
        assert_eq!(reconnect_attempts(&[ms(0), ms(150), ms(300)]), 3);
        // A spinning client is one long "attempt"; the connection cap catches it.
        let spinning: Vec<Duration> = (0..100).map(|i| ms(i * 10)).collect();
        assert_eq!(reconnect_attempts(&spinning), 1);
    }
}
