//! Wiring of a running proxy: tables, admin server (own thread), and the xDS client and DNS
//! resolver on the control runtime.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use arc_swap::ArcSwap;
use envoy_types::pb::envoy::admin::v3::CommandLineOptions;
use outrider_admin::{AdminState, ServerInfoSource};
use outrider_dataplane::{Dataplane, DataplaneOptions};
use outrider_tables::{Change, Tables};
use outrider_upstream::events::EventBus;
use outrider_xds::{AdsClient, AdsConfig, AdsState, ClientStatus, Now};
use tonic::transport::Endpoint;

use crate::bootstrap::LoadedBootstrap;

/// How the process was started, for `/server_info`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub concurrency: usize,
    /// How long drained listeners' connections may finish (`--drain-time-s`).
    pub drain_time: Duration,
    pub admin_address_path: Option<PathBuf>,
    pub log_level: String,
}

/// Runs the proxy on the caller's runtime until `shutdown` completes or an operator POSTs
/// `/quitquitquit`.
pub async fn serve(
    bootstrap: LoadedBootstrap,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if !bootstrap.ignored.is_empty() {
        tracing::warn!(
            fields = %bootstrap.ignored.join(", "),
            "bootstrap fields that Outrider accepts but does not act on"
        );
    }
    // Counters get one shard per worker: set before any cluster state is built.
    outrider_tables::set_worker_count(options.concurrency);
    let tables = Arc::new(Tables::new());
    let mut statics: Vec<Change> = Vec::new();
    statics.extend(
        bootstrap
            .static_clusters
            .iter()
            .cloned()
            .map(Change::UpsertCluster),
    );
    statics.extend(
        bootstrap
            .static_listeners
            .iter()
            .cloned()
            .map(Change::UpsertListener),
    );
    tables.apply(statics);
    // The bootstrap is read: the Envoy descriptor pool it needed can go until `/config_dump`.
    outrider_envoy_json::release_pool();

    let status = Arc::new(ArcSwap::from_pointee(ClientStatus {
        // Without xDS the configuration is complete from the start.
        initialized: bootstrap.ads.is_none(),
        ..ClientStatus::default()
    }));

    let dataplane = Arc::new(
        Dataplane::start(
            tables.clone(),
            DataplaneOptions {
                concurrency: options.concurrency,
                drain_time: options.drain_time,
                explain_no_healthy_upstream: bootstrap.explain_no_healthy_upstream,
                max_downstream_connections: bootstrap.max_downstream_connections,
                listener_connection_limits: bootstrap.listener_connection_limits.clone(),
                retry_buffer_budget: bootstrap.retry_buffer_budget,
            },
        )
        .context("starting the data plane workers")?,
    );

    // Host events (outlier ejections, health-check transitions) for every producer and
    // reporter: each takes a clone.
    let events = EventBus::default();
    // Host events and load to the control plane (cluster_manager's event_service,
    // event_log_path and load_stats_config); subscribed to the bus from here on.
    let reporter = outrider_report::Reporter::new(
        bootstrap.report.clone(),
        tables.clone(),
        &events,
        bootstrap.node.clone(),
    );
    let report_stats = reporter.stats();

    let admin = match bootstrap.admin_address {
        None => None,
        Some(address) => {
            let listener = std::net::TcpListener::bind(address)
                .with_context(|| format!("binding the admin address {address}"))?;
            let bound = dataplane.clone();
            let http_stats = dataplane.http_stats();
            let state = AdminState::new(
                Arc::new(bootstrap.proto.clone()),
                status.clone(),
                server_info(&bootstrap, &options),
            )
            .with_listeners(Arc::new(move || {
                bound
                    .listeners()
                    .into_iter()
                    .map(|l| (l.config.name.clone(), l.address))
                    .collect()
            }))
            .with_tables(tables.clone())
            .with_allow_paths(bootstrap.admin_allow_paths.clone())
            .with_stats(Arc::new(move || crate::stats::http_stats(&http_stats)))
            .with_stats({
                let dataplane = dataplane.clone();
                Arc::new(move || {
                    let connections = dataplane.downstream_connections();
                    crate::stats::listener_stats(&dataplane.listeners(), &connections)
                })
            })
            .with_stats(Arc::new(move || crate::stats::report_stats(&report_stats)))
            .with_stats({
                let tls_stats = dataplane.tls_stats();
                Arc::new(move || crate::stats::tls_stats(&tls_stats))
            })
            .with_stats({
                let tls_stats = dataplane.cluster_tls_stats();
                Arc::new(move || crate::stats::cluster_tls_stats(&tls_stats))
            })
            .with_drain_listeners({
                let dataplane = dataplane.clone();
                Arc::new(move |inbound_only| dataplane.drain_listeners(inbound_only))
            })
            .with_logging(Arc::new(|level| match level {
                Some(level) => crate::logging::set_level(level),
                None => Ok(crate::logging::current()),
            }));
            let handle =
                outrider_admin::spawn(listener, state).context("starting the admin server")?;
            tracing::info!(address = %handle.local_addr, "admin interface listening");
            if let Some(path) = &options.admin_address_path {
                std::fs::write(path, handle.local_addr.to_string())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Some(handle)
        }
    };
    let mut quit = admin.as_ref().map(|a| a.quit_requested());
    let quit = async move {
        match quit.as_mut() {
            Some(quit) => {
                let _ = quit.wait_for(|q| *q).await;
            }
            None => std::future::pending().await,
        }
    };
    let stop = async {
        tokio::select! {
            () = shutdown => {}
            () = quit => tracing::info!("shutdown requested through the admin interface"),
        }
    };

    let xds = match bootstrap.ads.clone() {
        Some(ads) => Some(ads_client(&bootstrap, ads, tables.clone(), status.clone())?),
        None => None,
    };
    let xds = async move {
        match xds {
            Some(client) => client.run(std::future::pending()).await,
            None => std::future::pending().await,
        }
    };
    // Host names of STRICT_DNS and LOGICAL_DNS clusters; its refresh loops end with it.
    let dns = outrider_dns::run(tables.clone(), outrider_dns::SystemLookup);
    // Outlier detection: one detector per cluster that has it, woken by the data plane.
    let outliers = outrider_upstream::outlier::run(tables.clone(), events.clone());
    // Active health checks: one session per (cluster, host, check), started and stopped as
    // the tables change.
    let health_checks = outrider_health_check::run(tables.clone(), events.clone());
    let reports = reporter.run();
    let heap = give_back_drained_bursts();
    // The control thread: the xDS client, the DNS resolver, the outlier detectors, the health
    // checker, the reporters and the listener manager, until asked to stop.
    tokio::select! {
        () = stop => {}
        () = xds => {}
        () = dns => {}
        () = outliers => {}
        () = health_checks => {}
        () = reports => {}
        () = heap => {}
        () = dataplane.run(std::future::pending()) => {}
    }
    if let Some(admin) = admin {
        admin.shutdown();
        admin.join().context("admin server")?;
    }
    // The last reference: dropping it ends the workers and their connections.
    drop(dataplane);
    Ok(())
}

/// Every 2 s: once a burst of request bodies kept for retries, or of open connections, has
/// drained, the heap's free pages go back to the kernel (see
/// `outrider_dataplane::heap_trim_due`).
async fn give_back_drained_bursts() {
    let mut every = tokio::time::interval(Duration::from_secs(2));
    loop {
        every.tick().await;
        if outrider_dataplane::heap_trim_due() {
            outrider_heap::release_free_memory();
        }
    }
}

fn ads_client(
    bootstrap: &LoadedBootstrap,
    ads: crate::bootstrap::AdsServer,
    tables: Arc<Tables>,
    status: Arc<ArcSwap<ClientStatus>>,
) -> anyhow::Result<AdsClient> {
    let config = AdsConfig {
        node: bootstrap.node.clone(),
        delta: ads.delta,
        node_on_first_request_only: ads.node_on_first_request_only,
        lds: ads.lds.clone(),
        cds: ads.cds.clone(),
        server: ads.uri.clone(),
    };
    let state = AdsState::new(
        config,
        bootstrap.static_clusters.clone(),
        bootstrap.static_listeners.clone(),
        Now::real(),
    );
    let endpoint = Endpoint::from_shared(ads.uri.clone())
        .with_context(|| format!("ADS server address {}", ads.uri))?
        .connect_timeout(ads.connect_timeout)
        // A management server that vanishes without closing the connection (a dead node, a
        // dropped route) must end the stream so we reconnect elsewhere.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let keepalive = bootstrap
        .static_clusters
        .iter()
        .find(|c| c.name == ads.cluster)
        .and_then(|c| c.tcp_keepalive);
    let endpoint = outrider_report::with_tcp_keepalive(endpoint, keepalive);
    tracing::info!(server = %ads.uri, delta = ads.delta, "subscribing over ADS");
    // The initial configuration's decoding is the heap's peak at start-up; once it is in,
    // what it freed goes back to the kernel.
    Ok(
        AdsClient::new(state, endpoint, tables, status).on_initialized(|| {
            outrider_heap::release_free_memory();
        }),
    )
}

fn server_info(bootstrap: &LoadedBootstrap, options: &RunOptions) -> ServerInfoSource {
    ServerInfoSource {
        version: format!(
            "{}/{}/Clean/RELEASE/BoringSSL",
            env!("OUTRIDER_GIT_SHA"),
            env!("CARGO_PKG_VERSION")
        ),
        hot_restart_version: "disabled".to_string(),
        command_line_options: CommandLineOptions {
            concurrency: u32::try_from(options.concurrency).unwrap_or(u32::MAX),
            config_path: bootstrap.file.display().to_string(),
            log_level: options.log_level.clone(),
            service_node: bootstrap.node.id.clone(),
            service_cluster: bootstrap.node.cluster.clone(),
            ..CommandLineOptions::default()
        },
        started: SystemTime::now(),
        node: bootstrap.node.clone(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn termination_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
