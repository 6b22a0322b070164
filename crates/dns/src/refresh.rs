//! The refresh loop of one DNS cluster config: resolve every host name, publish the expanded
//! endpoints when they changed, wait, repeat.

use std::sync::Arc;

use outrider_model::{Cluster, ClusterLoadAssignment, Discovery, DnsSettings};
use outrider_tables::{Change, Tables};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::expand::{DnsKind, ResolvedHosts, expand, hostnames, record};
use crate::lookup::Lookup;
use crate::schedule::RefreshSchedule;

/// The kind and settings of a DNS cluster; `None` for the other kinds.
pub(crate) fn dns_discovery(cluster: &Cluster) -> Option<(DnsKind, &DnsSettings)> {
    match &cluster.discovery {
        Discovery::StrictDns(s) => Some((DnsKind::Strict, s)),
        Discovery::LogicalDns(s) => Some((DnsKind::Logical, s)),
        Discovery::Static | Discovery::Eds { .. } => None,
    }
}

/// Runs until aborted (or, with no host name to resolve, after the first publication).
/// `resolved` starts with what the previous loop of this cluster knew and always holds the
/// last good addresses, for the next loop to start from.
pub(crate) async fn refresh<L: Lookup>(
    tables: Arc<Tables>,
    config: Arc<Cluster>,
    lookup: Arc<L>,
    resolved: watch::Sender<ResolvedHosts>,
) {
    let Some((kind, settings)) = dns_discovery(&config) else {
        return;
    };
    let empty;
    let assignment = match &config.load_assignment {
        Some(a) => a,
        None => {
            empty = ClusterLoadAssignment::empty(config.name());
            &empty
        }
    };
    let names = hostnames(assignment);
    let mut schedule = RefreshSchedule::new(settings);
    // The first round always publishes: the tables hold this config's endpoints only then.
    let mut published: Option<Arc<ClusterLoadAssignment>> = None;
    loop {
        let failed = resolve_all(&config, kind, settings, &names, &lookup, &resolved).await;
        let expanded = expand(assignment, kind, &resolved.borrow());
        if published.as_deref() != Some(&expanded) {
            let expanded = Arc::new(expanded);
            tables.apply([Change::SetResolvedEndpoints {
                config: Arc::clone(&config),
                assignment: Arc::clone(&expanded),
            }]);
            published = Some(expanded);
        }
        if names.is_empty() {
            return;
        }
        tokio::time::sleep(schedule.next_delay(failed, rand::random())).await;
    }
}

/// Looks every name up at once and records the answers; returns whether any lookup failed.
async fn resolve_all<L: Lookup>(
    config: &Cluster,
    kind: DnsKind,
    settings: &DnsSettings,
    names: &[String],
    lookup: &Arc<L>,
    resolved: &watch::Sender<ResolvedHosts>,
) -> bool {
    let mut lookups = JoinSet::new();
    for name in names {
        let (lookup, name) = (Arc::clone(lookup), name.clone());
        lookups.spawn(async move {
            let answer = lookup.lookup(&name).await;
            (name, answer)
        });
    }
    let mut failed = false;
    while let Some(done) = lookups.join_next().await {
        match done {
            Ok((name, Ok(addresses))) => resolved.send_modify(|r| {
                record(r, kind, settings.lookup_family, &name, &addresses);
            }),
            Ok((name, Err(error))) => {
                failed = true;
                tracing::warn!(
                    cluster = %config.name(),
                    hostname = %name,
                    %error,
                    "DNS resolution failed; keeping the last addresses"
                );
            }
            // A lookup task that panicked or was cancelled: a failed round all the same.
            Err(error) => {
                failed = true;
                tracing::warn!(cluster = %config.name(), %error, "DNS lookup task failed");
            }
        }
    }
    failed
}
