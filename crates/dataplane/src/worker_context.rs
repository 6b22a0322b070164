//! What one worker keeps for itself: its upstream connection pools and the balancers and
//! compiled routes it built, each cached against the `Arc` of the configuration it came from
//! and rebuilt lazily when that changes. `RefCell`, not locks: only this worker's thread sees it.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::rc::Rc;
use std::sync::Arc;

use outrider_model::{Cluster, RouteConfiguration, UpstreamProtocol};
use outrider_tables::{ClusterEntry, Tables};
use outrider_upstream::Balancer;

use crate::DataplaneOptions;
use crate::access_log::AccessLogBuffers;
use crate::fast_map::FastMap;
use crate::http_stats::{HttpStats, HttpStatsRegistry};
use crate::pool::{Http1Pool, Http2Pool, Upstream};
use crate::routing::CompiledRoutes;
use crate::tls_stats::TlsStatsRegistry;

/// One cluster's connection pools on this worker.
struct UpstreamPools {
    config: Arc<Cluster>,
    http1: Option<Rc<Http1Pool>>,
    http2: Option<Rc<Http2Pool>>,
}

impl UpstreamPools {
    fn upstream(&mut self, http2: bool, tls_stats: &TlsStatsRegistry) -> Upstream {
        let cluster = &self.config;
        if http2 {
            let pool = self
                .http2
                .get_or_insert_with(|| Rc::new(Http2Pool::new(cluster, tls_stats)));
            Upstream::Http2(pool.clone())
        } else {
            let pool = self
                .http1
                .get_or_insert_with(|| Rc::new(Http1Pool::new(cluster, tls_stats)));
            Upstream::Http1(pool.clone())
        }
    }
}

pub(crate) struct WorkerContext {
    /// This worker's access-log lines waiting to be written.
    pub access_log: Rc<AccessLogBuffers>,
    pub tables: Arc<Tables>,
    pub options: DataplaneOptions,
    http_stats_registry: HttpStatsRegistry,
    /// Listeners' `ssl.*` counters, shared by the workers.
    pub tls_stats: TlsStatsRegistry,
    /// Clusters' `ssl.*` counters, shared by the workers.
    pub cluster_tls_stats: TlsStatsRegistry,
    /// This worker's view of the registry, so a connection finds its counters without a lock.
    http_stats: RefCell<FastMap<String, HttpStats>>,
    pools: RefCell<FastMap<String, UpstreamPools>>,
    balancers: RefCell<FastMap<String, Rc<Balancer>>>,
    routes: RefCell<FastMap<String, Rc<CompiledRoutes>>>,
}

impl WorkerContext {
    pub(crate) fn new(
        tables: Arc<Tables>,
        options: DataplaneOptions,
        http_stats_registry: HttpStatsRegistry,
        (tls_stats, cluster_tls_stats): (TlsStatsRegistry, TlsStatsRegistry),
    ) -> Self {
        WorkerContext {
            access_log: Rc::new(AccessLogBuffers::default()),
            tables,
            options,
            http_stats_registry,
            tls_stats,
            cluster_tls_stats,
            http_stats: RefCell::new(FastMap::default()),
            pools: RefCell::new(FastMap::default()),
            balancers: RefCell::new(FastMap::default()),
            routes: RefCell::new(FastMap::default()),
        }
    }

    /// The client (and so the connection pool) for a cluster, speaking HTTP/2 when the cluster
    /// says so (or follows a downstream that does).
    pub(crate) fn client(&self, cluster: &Arc<Cluster>, downstream_h2: bool) -> Upstream {
        let http2 = match cluster.http.protocol {
            UpstreamProtocol::Http2 => true,
            UpstreamProtocol::UseDownstream => downstream_h2,
            UpstreamProtocol::Http1 => false,
        };
        let mut pools = self.pools.borrow_mut();
        if let Some(entry) = pools.get_mut(cluster.name.as_str())
            && Arc::ptr_eq(&entry.config, cluster)
        {
            return entry.upstream(http2, &self.cluster_tls_stats);
        }
        // New cluster, or new settings (timeouts, protocol): new pools; the old connections
        // close as their requests finish. (Only here is the name copied.)
        let fresh = UpstreamPools {
            config: cluster.clone(),
            http1: None,
            http2: None,
        };
        let entry = match pools.entry(cluster.name.clone()) {
            Entry::Occupied(mut occupied) => {
                occupied.insert(fresh);
                occupied.into_mut()
            }
            Entry::Vacant(vacant) => vacant.insert(fresh),
        };
        entry.upstream(http2, &self.cluster_tls_stats)
    }

    /// The `http.<prefix>.*` counters of a connection manager.
    pub(crate) fn http_stats(&self, prefix: &str) -> HttpStats {
        let mut cache = self.http_stats.borrow_mut();
        if let Some(stats) = cache.get(prefix) {
            return stats.clone();
        }
        let stats = self.http_stats_registry.get(prefix);
        cache.insert(prefix.to_string(), stats.clone());
        stats
    }

    /// This worker's balancer for a cluster's current endpoints.
    pub(crate) fn balancer(&self, entry: &Arc<ClusterEntry>) -> Rc<Balancer> {
        let mut balancers = self.balancers.borrow_mut();
        if let Some(balancer) = balancers.get(entry.config.name.as_str())
            && balancer.is_current(entry)
        {
            return balancer.clone();
        }
        let balancer = Rc::new(Balancer::new(entry));
        balancers.insert(entry.config.name.clone(), balancer.clone());
        balancer
    }

    /// The compiled form of a route configuration.
    pub(crate) fn routes(&self, config: &Arc<RouteConfiguration>) -> Rc<CompiledRoutes> {
        let mut routes = self.routes.borrow_mut();
        if let Some(compiled) = routes.get(config.name.as_str())
            && compiled.is_compiled_from(config)
        {
            return compiled.clone();
        }
        let compiled = Rc::new(CompiledRoutes::new(config));
        routes.insert(config.name.clone(), compiled.clone());
        compiled
    }
}
