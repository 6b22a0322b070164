//! `cluster_manager`'s reporting fields: `outlier_detection.event_service` (host events over
//! EventReportingService), `outlier_detection.event_log_path` (outlier events as JSON lines) and
//! `load_stats_config` (LRS). Each gRPC service must name a static, plaintext HTTP/2 cluster of
//! the bootstrap, as the ADS server must. The rest of `cluster_manager` is ignored (`ignored.rs`).

use std::path::PathBuf;

use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, cluster_manager};
use envoy_types::pb::envoy::config::cluster::v3::Cluster as ClusterProto;
use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
use envoy_types::pb::envoy::config::core::v3::event_service_config::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, ApiVersion, EventServiceConfig, GrpcService, HeaderValue,
};
use outrider_report::{GrpcTarget, ReportConfig};
use tonic::metadata::{Ascii, MetadataKey};

use super::grpc_static_cluster;

/// The reporters the bootstrap configures; errors are (field path, reason).
pub(super) fn report_config(
    proto: &Bootstrap,
    clusters: &[ClusterProto],
) -> Result<ReportConfig, (String, String)> {
    let mut config = ReportConfig::default();
    let Some(manager) = &proto.cluster_manager else {
        return Ok(config);
    };
    if let Some(outlier) = &manager.outlier_detection {
        let cluster_manager::OutlierDetection {
            event_log_path,
            event_service,
        } = outlier;
        if !event_log_path.is_empty() {
            config.event_log_path = Some(PathBuf::from(event_log_path));
        }
        if let Some(service) = event_service {
            config.event_service = Some(event_service_target(service, clusters)?);
        }
    }
    if let Some(source) = &manager.load_stats_config {
        config.load_stats = Some(load_stats_target(source, clusters)?);
    }
    Ok(config)
}

fn event_service_target(
    service: &EventServiceConfig,
    clusters: &[ClusterProto],
) -> Result<GrpcTarget, (String, String)> {
    let at = "cluster_manager.outlier_detection.event_service";
    match &service.config_source_specifier {
        Some(ConfigSourceSpecifier::GrpcService(grpc)) => grpc_target(
            grpc,
            clusters,
            &format!("{at}.grpc_service"),
            "event reporting",
        ),
        None => Err((format!("{at}.grpc_service"), "required".into())),
    }
}

/// `load_stats_config`: an `ApiConfigSource` of one gRPC service, as Envoy requires.
fn load_stats_target(
    source: &ApiConfigSource,
    clusters: &[ClusterProto],
) -> Result<GrpcTarget, (String, String)> {
    let at = |field: &str| format!("cluster_manager.load_stats_config.{field}");
    match ApiType::try_from(source.api_type) {
        // Envoy takes either for LRS: there is only one LRS protocol.
        Ok(ApiType::Grpc | ApiType::DeltaGrpc) => {}
        Ok(other) => {
            return Err((
                at("api_type"),
                format!(
                    "{} is not supported: load reports go over GRPC",
                    other.as_str_name()
                ),
            ));
        }
        Err(_) => {
            return Err((at("api_type"), format!("unknown value {}", source.api_type)));
        }
    }
    if source.transport_api_version != ApiVersion::V3 as i32 {
        // Envoy rejects AUTO and V2 here too.
        return Err((at("transport_api_version"), "must be V3".into()));
    }
    if !source.cluster_names.is_empty() {
        return Err((
            at("cluster_names"),
            "is for REST sources: a GRPC source names its cluster in grpc_services".into(),
        ));
    }
    let [service] = source.grpc_services.as_slice() else {
        return Err((
            at("grpc_services"),
            format!(
                "exactly one gRPC service is supported, got {}",
                source.grpc_services.len()
            ),
        ));
    };
    grpc_target(service, clusters, &at("grpc_services[0]"), "load reporting")
}

fn grpc_target(
    service: &GrpcService,
    clusters: &[ClusterProto],
    at: &str,
    purpose: &str,
) -> Result<GrpcTarget, (String, String)> {
    let (_, cluster) = grpc_static_cluster(service, clusters, at, purpose)?;
    let mut initial_metadata = Vec::with_capacity(service.initial_metadata.len());
    for (index, header) in service.initial_metadata.iter().enumerate() {
        let pair = metadata_pair(header)
            .map_err(|reason| (format!("{at}.initial_metadata[{index}]"), reason))?;
        initial_metadata.push(pair);
    }
    Ok(GrpcTarget {
        cluster: cluster.name.clone(),
        initial_metadata,
    })
}

/// A header of `initial_metadata` as gRPC metadata (ASCII key and value).
fn metadata_pair(header: &HeaderValue) -> Result<(String, String), String> {
    let HeaderValue {
        key,
        value,
        raw_value,
    } = header;
    let value = if value.is_empty() && !raw_value.is_empty() {
        String::from_utf8(raw_value.clone())
            .map_err(|_| "raw_value: must be ASCII text".to_string())?
    } else {
        value.clone()
    };
    let key = key.to_ascii_lowercase();
    MetadataKey::<Ascii>::from_bytes(key.as_bytes())
        .map_err(|_| format!("key: {key:?} is not a valid gRPC metadata key"))?;
    if key.ends_with("-bin") {
        return Err(format!("key: binary metadata ({key:?}) is not supported"));
    }
    // gRPC's ASCII metadata: printable ASCII only (HTTP would also take obs-text).
    if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err("value: must be printable ASCII".into());
    }
    Ok((key, value))
}
