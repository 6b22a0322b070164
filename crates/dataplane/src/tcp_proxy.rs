//! `envoy.filters.network.tcp_proxy`: bytes both ways between the downstream connection and an
//! endpoint of the cluster, with the same balancing and connect-failure accounting as HTTP, and
//! half-close passed on (a FIN one way does not end the other way). A drained listener's
//! connections are closed once `--drain-time-s` has passed, as Envoy closes them.

use std::net::SocketAddr;
use std::rc::Rc;

use outrider_model::{TcpProxy, TcpProxyCluster};
use outrider_upstream::outlier::{Outcome, record};
use tokio::sync::watch;

use crate::downstream_io::DownstreamIo;
use crate::drain::DrainSignal;
use crate::pool::connect as upstream_connect;
use crate::worker_context::WorkerContext;

pub(crate) async fn serve_tcp_proxy(
    context: Rc<WorkerContext>,
    config: &TcpProxy,
    mut downstream: DownstreamIo,
    peer: SocketAddr,
    drained: watch::Receiver<bool>,
) {
    let cluster = match &config.cluster {
        TcpProxyCluster::Cluster(name) => name.clone(),
        TcpProxyCluster::Weighted(weighted) => {
            let total: u64 = weighted.iter().map(|(_, w)| u64::from(*w)).sum();
            let mut pick = rand::random::<u64>() % total.max(1);
            let mut chosen = weighted.first().map(|(n, _)| n.clone()).unwrap_or_default();
            for (name, weight) in weighted {
                if pick < u64::from(*weight) {
                    chosen = name.clone();
                    break;
                }
                pick -= u64::from(*weight);
            }
            chosen
        }
    };
    let snapshot = context.tables.load_full();
    let Some(entry) = snapshot.cluster(&cluster).cloned() else {
        tracing::debug!(%cluster, %peer, "tcp_proxy: no such cluster; closing");
        return;
    };
    let balancer = context.balancer(&entry);
    let attempts = config.max_connect_attempts.max(1);
    let mut tried = Vec::new();
    for _ in 0..attempts {
        let avoid: Vec<_> = tried.iter().collect();
        let Ok(pick) = balancer.pick(None, &avoid) else {
            tracing::debug!(%cluster, %peer, "tcp_proxy: no healthy upstream; closing");
            return;
        };
        let endpoint = pick.endpoint;
        let Some(address) = endpoint.address.ip() else {
            return;
        };
        let connected = upstream_connect::connect(
            address,
            &upstream_connect::ConnectOptions::of(
                &entry.config,
                upstream_connect::Carries::Bytes,
                &context.cluster_tls_stats,
            ),
            &entry.state,
            &endpoint,
        )
        .await;
        match connected {
            Ok((mut upstream, _open)) => {
                record(&entry, &endpoint, Outcome::Connected);
                let copied = tokio::io::copy_bidirectional(&mut downstream, &mut upstream);
                tokio::select! {
                    result = copied => if let Err(e) = result {
                        tracing::debug!(%cluster, %peer, error = %e, "tcp_proxy connection ended");
                    },
                    () = DrainSignal::new(drained, context.options.drain_time).over() => {
                        tracing::debug!(%cluster, %peer, "drain time over; closing the connection");
                    }
                }
                return;
            }
            Err(_) => {
                record(&entry, &endpoint, Outcome::ConnectFailure);
                tried.push(endpoint);
            }
        }
    }
}
