//! Bootstrap fields Outrider reads but does not act on. An Envoy bootstrap carries many sections
//! (runtime, stats sinks, tracing, overload manager…) that do not change what configuration we
//! take or how we take it; we accept them so the same file works, and say which ones we ignore.
//! Every field is named here (the struct is destructured whole), so a new field in a newer
//! envoy-types is a compile error until someone decides about it.

use envoy_types::pb::envoy::config::bootstrap::v3::{
    Admin, Bootstrap, ClusterManager, bootstrap, cluster_manager,
};
use envoy_types::pb::envoy::config::core::v3::event_service_config::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{ApiConfigSource, EventServiceConfig, GrpcService};

/// The paths of the fields that are set and ignored, in the bootstrap's order.
pub fn ignored_fields(proto: &Bootstrap) -> Vec<&'static str> {
    #[allow(deprecated)]
    let Bootstrap {
        // Acted on.
        node: _,
        static_resources,
        dynamic_resources,
        admin,
        // Ignored: below, when set.
        node_context_params,
        cluster_manager,
        // Refused by `unenforced.rs` (layered_runtime: all but our own keys).
        hds_config: _,
        flags_path: _,
        stats_sinks,
        deferred_stat_options,
        stats_config,
        stats_flush_interval,
        watchdog,
        watchdogs,
        tracing,
        layered_runtime: _,
        // Read by `overload.rs`, which refuses what is not built.
        overload_manager,
        enable_dispatcher_stats,
        header_prefix: _,
        stats_server_version_override,
        use_tcp_for_dns_lookups: _,
        dns_resolution_config: _,
        typed_dns_resolver_config: _,
        bootstrap_extensions,
        fatal_actions,
        config_sources,
        default_config_source,
        default_socket_interface,
        certificate_provider_instances,
        inline_headers,
        perf_tracing_file_path,
        default_regex_engine,
        xds_delegate_extension,
        xds_config_tracker_extension,
        listener_manager,
        application_log_config,
        grpc_async_client_manager_config,
        memory_allocator_manager,
        enable_worker_cpu_affinity,
        stats_flush,
        stats_eviction,
    } = proto;
    let mut ignored = Vec::new();
    let mut note = |set: bool, path: &'static str| {
        if set {
            ignored.push(path);
        }
    };
    note(!node_context_params.is_empty(), "node_context_params");
    if let Some(statics) = static_resources {
        let bootstrap::StaticResources {
            listeners: _,
            clusters: _,
            secrets,
        } = statics;
        note(!secrets.is_empty(), "static_resources.secrets");
    }
    #[allow(deprecated)]
    if let Some(dynamic) = dynamic_resources {
        let bootstrap::DynamicResources {
            lds_config: _,
            cds_config: _,
            ads_config: _,
            lds_resources_locator,
            cds_resources_locator,
        } = dynamic;
        // Refused by `unenforced.rs`.
        let _ = (lds_resources_locator, cds_resources_locator);
    }
    #[allow(deprecated)]
    if let Some(admin) = admin {
        let Admin {
            address: _,
            // Refused by `unenforced.rs` (unless to /dev/null).
            access_log: _,
            access_log_path: _,
            // Read by `load` (the admin server serves only those paths).
            allow_paths: _,
            profile_path,
            socket_options,
            ignore_global_conn_limit: _,
        } = admin;
        note(!profile_path.is_empty(), "admin.profile_path");
        note(!socket_options.is_empty(), "admin.socket_options");
    }
    if let Some(manager) = cluster_manager {
        cluster_manager_ignored(manager, &mut note);
    }
    note(!stats_sinks.is_empty(), "stats_sinks");
    note(deferred_stat_options.is_some(), "deferred_stat_options");
    note(stats_config.is_some(), "stats_config");
    note(stats_flush_interval.is_some(), "stats_flush_interval");
    // Polled monitors' period: the connection limit is checked at each accept.
    note(
        overload_manager
            .as_ref()
            .is_some_and(|m| m.refresh_interval.is_some()),
        "overload_manager.refresh_interval",
    );
    // Oneofs: noted by the field a document sets, which is what the report matches.
    note(stats_flush.is_some(), "stats_flush_on_admin");
    note(watchdog.is_some(), "watchdog");
    note(watchdogs.is_some(), "watchdogs");
    // Only its http provider does anything (refused by `unenforced.rs`).
    note(
        tracing.as_ref().is_some_and(|t| t.http.is_none()),
        "tracing",
    );
    note(*enable_dispatcher_stats, "enable_dispatcher_stats");
    note(
        stats_server_version_override.is_some(),
        "stats_server_version_override",
    );
    note(!bootstrap_extensions.is_empty(), "bootstrap_extensions");
    note(!fatal_actions.is_empty(), "fatal_actions");
    note(!config_sources.is_empty(), "config_sources");
    note(default_config_source.is_some(), "default_config_source");
    note(
        !default_socket_interface.is_empty(),
        "default_socket_interface",
    );
    note(
        !certificate_provider_instances.is_empty(),
        "certificate_provider_instances",
    );
    note(!inline_headers.is_empty(), "inline_headers");
    note(!perf_tracing_file_path.is_empty(), "perf_tracing_file_path");
    note(default_regex_engine.is_some(), "default_regex_engine");
    note(xds_delegate_extension.is_some(), "xds_delegate_extension");
    note(
        xds_config_tracker_extension.is_some(),
        "xds_config_tracker_extension",
    );
    note(listener_manager.is_some(), "listener_manager");
    note(application_log_config.is_some(), "application_log_config");
    note(
        grpc_async_client_manager_config.is_some(),
        "grpc_async_client_manager_config",
    );
    note(
        memory_allocator_manager.is_some(),
        "memory_allocator_manager",
    );
    note(*enable_worker_cpu_affinity, "enable_worker_cpu_affinity");
    note(stats_eviction.is_some(), "stats_eviction_interval");
    ignored
}

/// `cluster_manager`: the reporting fields are acted on (`report.rs`); the rest is not.
fn cluster_manager_ignored(manager: &ClusterManager, note: &mut impl FnMut(bool, &'static str)) {
    let ClusterManager {
        local_cluster_name,
        outlier_detection,
        upstream_bind_config,
        load_stats_config,
        enable_deferred_cluster_creation,
    } = manager;
    // Refused by `unenforced.rs`.
    let _ = (local_cluster_name, upstream_bind_config);
    if let Some(outlier) = outlier_detection {
        let cluster_manager::OutlierDetection {
            event_log_path: _,
            event_service,
        } = outlier;
        if let Some(EventServiceConfig {
            config_source_specifier: Some(ConfigSourceSpecifier::GrpcService(service)),
        }) = event_service
        {
            grpc_service_ignored(service, &EVENT_SERVICE_PATHS, note);
        }
    }
    if let Some(source) = load_stats_config {
        let ApiConfigSource {
            api_type: _,
            transport_api_version: _,
            cluster_names: _,
            grpc_services,
            refresh_delay,
            request_timeout,
            rate_limit_settings,
            // Envoy's LRS client sends the node on every request whatever this says; so do we.
            set_node_on_first_message_only: _,
            config_validators,
        } = source;
        note(
            refresh_delay.is_some(),
            "cluster_manager.load_stats_config.refresh_delay",
        );
        note(
            request_timeout.is_some(),
            "cluster_manager.load_stats_config.request_timeout",
        );
        note(
            rate_limit_settings.is_some(),
            "cluster_manager.load_stats_config.rate_limit_settings",
        );
        note(
            !config_validators.is_empty(),
            "cluster_manager.load_stats_config.config_validators",
        );
        for service in grpc_services {
            grpc_service_ignored(service, &LOAD_STATS_PATHS, note);
        }
    }
    note(
        *enable_deferred_cluster_creation,
        "cluster_manager.enable_deferred_cluster_creation",
    );
}

/// The paths of a `GrpcService`'s fields we do not act on, at one place in the bootstrap.
struct GrpcServicePaths {
    timeout: &'static str,
    retry_policy: &'static str,
    envoy_grpc_retry_policy: &'static str,
    max_receive_message_length: &'static str,
    skip_envoy_headers: &'static str,
}

macro_rules! grpc_service_paths {
    ($at:literal) => {
        GrpcServicePaths {
            timeout: concat!($at, ".timeout"),
            retry_policy: concat!($at, ".retry_policy"),
            envoy_grpc_retry_policy: concat!($at, ".envoy_grpc.retry_policy"),
            max_receive_message_length: concat!($at, ".envoy_grpc.max_receive_message_length"),
            skip_envoy_headers: concat!($at, ".envoy_grpc.skip_envoy_headers"),
        }
    };
}

const EVENT_SERVICE_PATHS: GrpcServicePaths =
    grpc_service_paths!("cluster_manager.outlier_detection.event_service.grpc_service");
const LOAD_STATS_PATHS: GrpcServicePaths =
    grpc_service_paths!("cluster_manager.load_stats_config.grpc_services[0]");

/// `timeout` and the retry policies do not apply to a stream that lives for the process; we
/// neither set `:authority` overrides nor Envoy's own headers.
fn grpc_service_ignored(
    service: &GrpcService,
    paths: &GrpcServicePaths,
    note: &mut impl FnMut(bool, &'static str),
) {
    let GrpcService {
        timeout,
        initial_metadata: _,
        retry_policy,
        target_specifier,
    } = service;
    note(timeout.is_some(), paths.timeout);
    note(retry_policy.is_some(), paths.retry_policy);
    if let Some(TargetSpecifier::EnvoyGrpc(envoy_grpc)) = target_specifier {
        let EnvoyGrpc {
            cluster_name: _,
            authority,
            retry_policy,
            max_receive_message_length,
            skip_envoy_headers,
        } = envoy_grpc;
        // Refused by `unenforced.rs`.
        let _ = authority;
        note(retry_policy.is_some(), paths.envoy_grpc_retry_policy);
        note(
            max_receive_message_length.is_some(),
            paths.max_receive_message_length,
        );
        note(*skip_envoy_headers, paths.skip_envoy_headers);
    }
}
