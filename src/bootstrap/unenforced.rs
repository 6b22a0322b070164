//! Bootstrap sections whose effect is not built: each makes the bootstrap invalid (file, field
//! path, what is missing), because an operator who set one expects it to hold. Sections that
//! change nothing a client, an upstream or the control plane sees are listed as ignored instead
//! (`ignored.rs`).

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::bootstrap::v3::runtime_layer::LayerSpecifier;
use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
use envoy_types::pb::envoy::config::core::v3::{ApiConfigSource, ApiVersion, GrpcService};

use super::overload::{GLOBAL_CONNECTIONS_RUNTIME_KEY, limited_listener};
use super::runtime_flags::{KEYS, static_runtime};

/// The first section set whose effect is not built, as (field path, what is missing).
#[allow(
    deprecated,
    reason = "deprecated fields still change behaviour when set"
)]
pub fn check(proto: &Bootstrap) -> Result<(), (String, String)> {
    let mut checks: Vec<(bool, String, &str)> = Vec::new();
    let mut check = |set: bool, path: &str, what: &'static str| {
        checks.push((set, path.to_string(), what));
    };
    if let Some(admin) = &proto.admin {
        // Istio's bootstrap logs admin requests to /dev/null, which is what we do.
        check(
            admin.access_log.iter().any(|log| !discards(log)),
            "admin.access_log",
            "admin requests are not logged",
        );
        check(
            !admin.access_log_path.is_empty() && admin.access_log_path != "/dev/null",
            "admin.access_log_path",
            "admin requests are not logged",
        );
    }
    if let Some(path) = foreign_runtime(proto) {
        check(
            true,
            &path,
            "not a runtime key Outrider reads: its own outrider.* keys (see the README) and Envoy's connection limits are; Envoy's other runtime keys are not",
        );
    }
    check(
        proto.hds_config.is_some(),
        "hds_config",
        "no health discovery service is run",
    );
    check(
        !proto.header_prefix.is_empty(),
        "header_prefix",
        "Envoy's x-envoy-* headers keep their prefix",
    );
    for (set, path) in [
        (proto.use_tcp_for_dns_lookups, "use_tcp_for_dns_lookups"),
        (
            proto.dns_resolution_config.is_some(),
            "dns_resolution_config",
        ),
        (
            proto.typed_dns_resolver_config.is_some(),
            "typed_dns_resolver_config",
        ),
    ] {
        check(set, path, "DNS clusters use the system resolver");
    }
    check(
        !proto.flags_path.is_empty(),
        "flags_path",
        "flag files are not read",
    );
    check(
        proto.tracing.as_ref().is_some_and(|t| t.http.is_some()),
        "tracing.http",
        "no traces are sent and no trace headers added",
    );
    if let Some(dynamic) = &proto.dynamic_resources {
        check(
            !dynamic.lds_resources_locator.is_empty(),
            "dynamic_resources.lds_resources_locator",
            "xdstp:// locators are not supported",
        );
        check(
            !dynamic.cds_resources_locator.is_empty(),
            "dynamic_resources.cds_resources_locator",
            "xdstp:// locators are not supported",
        );
        if let Some(ads) = &dynamic.ads_config {
            ads_config(ads, &mut check);
        }
    }
    if let Some(manager) = &proto.cluster_manager {
        check(
            !manager.local_cluster_name.is_empty(),
            "cluster_manager.local_cluster_name",
            "no zone-aware routing",
        );
        check(
            manager.upstream_bind_config.is_some(),
            "cluster_manager.upstream_bind_config",
            "the upstream source address is not set",
        );
        if let Some(source) = &manager.load_stats_config {
            for (i, service) in source.grpc_services.iter().enumerate() {
                grpc_service(
                    service,
                    &format!("cluster_manager.load_stats_config.grpc_services[{i}]"),
                    &mut check,
                );
            }
        }
        if let Some(service) = manager
            .outlier_detection
            .as_ref()
            .and_then(|o| o.event_service.as_ref())
            .and_then(|e| e.config_source_specifier.as_ref())
        {
            use envoy_types::pb::envoy::config::core::v3::event_service_config::ConfigSourceSpecifier;
            let ConfigSourceSpecifier::GrpcService(service) = service;
            grpc_service(
                service,
                "cluster_manager.outlier_detection.event_service.grpc_service",
                &mut check,
            );
        }
    }
    match checks.into_iter().find(|(set, _, _)| *set) {
        Some((_, path, what)) => Err((path, format!("not supported yet: {what}"))),
        None => Ok(()),
    }
}

/// The ADS source's fields beyond the transport (`api_type`, `grpc_services`, read by
/// `ads_server`) and `set_node_on_first_message_only` (read by the xDS client).
fn ads_config(ads: &ApiConfigSource, check: &mut impl FnMut(bool, &str, &'static str)) {
    let at = "dynamic_resources.ads_config";
    // Envoy refuses AUTO (unset) as well: "V2 (and AUTO) xDS transport protocol versions are
    // deprecated".
    check(
        ads.transport_api_version != ApiVersion::V3 as i32,
        &format!("{at}.transport_api_version"),
        "set it to V3, as Envoy requires (V2 and AUTO are refused)",
    );
    check(
        !ads.cluster_names.is_empty(),
        &format!("{at}.cluster_names"),
        "gRPC services name their cluster in grpc_services",
    );
    check(
        ads.rate_limit_settings.is_some(),
        &format!("{at}.rate_limit_settings"),
        "xDS requests are not rate limited",
    );
    check(
        !ads.config_validators.is_empty(),
        &format!("{at}.config_validators"),
        "no config validators run",
    );
    for (i, service) in ads.grpc_services.iter().enumerate() {
        grpc_service(service, &format!("{at}.grpc_services[{i}]"), check);
        // Envoy takes the xDS reconnect back-off from it.
        let retry = service.retry_policy.is_some()
            || matches!(&service.target_specifier,
                Some(TargetSpecifier::EnvoyGrpc(g)) if g.retry_policy.is_some());
        check(
            retry,
            &format!("{at}.grpc_services[{i}].retry_policy"),
            "the reconnect back-off is Envoy's default (500 ms to 30 s)",
        );
        check(
            !service.initial_metadata.is_empty(),
            &format!("{at}.grpc_services[{i}].initial_metadata"),
            "no metadata is sent on the ADS stream",
        );
    }
}

/// A gRPC service's `:authority` override, which the server would see.
fn grpc_service(service: &GrpcService, at: &str, check: &mut impl FnMut(bool, &str, &'static str)) {
    if let Some(TargetSpecifier::EnvoyGrpc(envoy_grpc)) = &service.target_specifier {
        check(
            !envoy_grpc.authority.is_empty(),
            &format!("{at}.envoy_grpc.authority"),
            "the stream's :authority is the endpoint's address",
        );
    }
}

/// The first runtime layer or key we would not act on: Envoy's own keys bar the connection
/// limits, disk and RTDS layers (an admin layer only takes `/runtime_modify`, which we do not
/// serve, so it holds nothing). Nested static keys are read flattened, as Envoy reads them.
fn foreign_runtime(proto: &Bootstrap) -> Option<String> {
    let runtime = proto.layered_runtime.as_ref()?;
    let layer =
        runtime
            .layers
            .iter()
            .enumerate()
            .find_map(|(i, layer)| match &layer.layer_specifier {
                Some(LayerSpecifier::StaticLayer(_) | LayerSpecifier::AdminLayer(_)) | None => None,
                Some(_) => Some(format!("layered_runtime.layers[{i}]")),
            });
    layer.or_else(|| {
        static_runtime(proto)
            .into_iter()
            .find(|(_, key, _)| {
                !KEYS.contains(&key.as_str())
                    && key != GLOBAL_CONNECTIONS_RUNTIME_KEY
                    && limited_listener(key).is_none()
            })
            .map(|(at, _, _)| at)
    })
}

/// An access log that writes nowhere: a file logger to `/dev/null`.
fn discards(log: &envoy_types::pb::envoy::config::accesslog::v3::AccessLog) -> bool {
    use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType;
    use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
    use prost::{Message, Name};
    match &log.config_type {
        Some(ConfigType::TypedConfig(any))
            if any.type_url.ends_with(&FileAccessLog::full_name()) =>
        {
            FileAccessLog::decode(any.value.as_slice()).is_ok_and(|f| f.path == "/dev/null")
        }
        _ => false,
    }
}
