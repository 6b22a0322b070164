//! A gRPC channel to a cluster of our own, as the tables have it at connect time (so a DNS
//! refresh or a changed static cluster is followed on the next reconnect): h2c, since gRPC
//! needs HTTP/2 and the bootstrap only accepts plaintext HTTP/2 clusters for these services.

use std::time::Duration;

use outrider_model::EndpointAddress;
pub(crate) use outrider_model::error_chain;
use outrider_tables::Tables;
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::config::GrpcTarget;

/// Connects to one endpoint of the target's cluster. Successive `attempt`s rotate through the
/// cluster's healthy endpoints (all of them if none is healthy), so one dead endpoint does not
/// stall reporting.
pub(crate) async fn connect(
    tables: &Tables,
    target: &GrpcTarget,
    attempt: usize,
) -> Result<Channel, String> {
    let (uri, connect_timeout, keepalive) = {
        let snapshot = tables.load();
        let entry = snapshot
            .cluster(&target.cluster)
            .ok_or_else(|| format!("no cluster named {:?}", target.cluster))?;
        let all: Vec<_> = entry.endpoints.endpoints().collect();
        let healthy: Vec<_> = all.iter().filter(|e| e.is_healthy()).collect();
        let candidates: Vec<_> = if healthy.is_empty() {
            all.iter().collect()
        } else {
            healthy
        };
        if candidates.is_empty() {
            return Err(format!("cluster {:?} has no endpoint", target.cluster));
        }
        let endpoint = candidates[attempt % candidates.len()];
        (
            uri(&endpoint.address),
            entry.config.connect_timeout,
            entry.config.tcp_keepalive,
        )
    };
    let endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| format!("{uri}: {e}"))?
        .connect_timeout(connect_timeout)
        // A control plane that vanishes without closing the connection (a dead node, a dropped
        // route) must end the stream so we reconnect elsewhere, as the ADS client does.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let endpoint = with_tcp_keepalive(endpoint, keepalive);
    endpoint
        .connect()
        .await
        .map_err(|e| format!("connecting to {uri}: {}", error_chain(&e)))
}

/// The cluster's `upstream_connection_options.tcp_keepalive` on a gRPC channel's socket (for the
/// ADS client too).
pub fn with_tcp_keepalive(
    endpoint: Endpoint,
    keepalive: Option<outrider_model::TcpKeepalive>,
) -> Endpoint {
    let Some(keepalive) = keepalive else {
        return endpoint;
    };
    // tonic turns SO_KEEPALIVE on only with a time; the OS default (2 h) is what Envoy leaves.
    endpoint
        .tcp_keepalive(Some(
            keepalive
                .time
                .unwrap_or(std::time::Duration::from_secs(7200)),
        ))
        .tcp_keepalive_interval(keepalive.interval)
        .tcp_keepalive_retries(keepalive.probes)
}

/// Adds the target's `initial_metadata` to a request; pairs that are not valid metadata are
/// skipped (the bootstrap has already rejected them).
pub(crate) fn add_metadata<T>(request: &mut tonic::Request<T>, target: &GrpcTarget) {
    for (key, value) in &target.initial_metadata {
        let (Ok(key), Ok(value)) = (
            MetadataKey::<Ascii>::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) else {
            continue;
        };
        request.metadata_mut().insert(key, value);
    }
}

fn uri(address: &EndpointAddress) -> String {
    match address {
        EndpointAddress::Ip(socket) => format!("http://{socket}"),
        EndpointAddress::Dns { hostname, port } if hostname.contains(':') => {
            format!("http://[{hostname}]:{port}")
        }
        EndpointAddress::Dns { hostname, port } => format!("http://{hostname}:{port}"),
    }
}
