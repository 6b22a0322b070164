use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;

use super::*;

#[test]
fn reads_snake_and_camel_case_durations_and_typed_any() {
    let yaml = r#"
name: backend
connectTimeout: 0.25s
type: EDS
eds_cluster_config: { eds_config: { ads: {} } }
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: { http2_protocol_options: {} }
"#;
    let cluster: Cluster = from_yaml_str(yaml).expect("valid cluster");
    assert_eq!(cluster.name, "backend");
    let timeout = cluster.connect_timeout.expect("connect_timeout set");
    assert_eq!((timeout.seconds, timeout.nanos), (0, 250_000_000));
    let any = &cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    );
    assert!(!any.value.is_empty());
}

#[test]
fn unknown_field_error_names_the_path() {
    let yaml = "static_resources:\n  clusters:\n  - name: a\n    connect_timeuot: 1s\n";
    let err = from_yaml_str::<Bootstrap>(yaml).expect_err("typo must be rejected");
    let JsonError::Field { path, reason } = err else {
        panic!("expected a field error, got {err}");
    };
    assert_eq!(path, "static_resources.clusters[0].connect_timeuot");
    assert_eq!(reason, "unknown field");
}

#[test]
fn prints_snake_case_with_type_first() {
    let cluster: Cluster =
        from_yaml_str("name: a\nconnect_timeout: 2s\nlb_policy: LEAST_REQUEST\n").expect("valid");
    let any = envoy_types::pb::google::protobuf::Any {
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
        value: prost::Message::encode_to_vec(&cluster),
    };
    let value = any_to_value(&any.type_url, &any.value).expect("printable");
    let text = serde_json::to_string(&value).expect("serialisable");
    assert_eq!(
        text,
        r#"{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":"a","connect_timeout":"2s","lb_policy":"LEAST_REQUEST"}"#
    );
}

#[test]
fn syntax_error_is_reported() {
    let err = from_yaml_str::<Cluster>("name: [unclosed").expect_err("bad yaml");
    assert!(matches!(err, JsonError::Syntax(_)), "{err}");
}

#[test]
fn enum_names_are_read_in_any_case_as_envoy_reads_them() {
    use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    let c: Cluster = from_yaml_str(
        "name: c\ntype: strict_dns\nlb_policy: round_robin\ndns_lookup_family: v4_only\n\
         health_checks: [ { timeout: 1s, interval: 1s, http_health_check: { path: /, codec_client_type: http2 } } ]\n",
    )
    .expect("lower-case enum names");
    assert_eq!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::StrictDns as i32
        ))
    );
    assert_eq!(c.lb_policy, cluster::LbPolicy::RoundRobin as i32);
    assert_eq!(c.dns_lookup_family, cluster::DnsLookupFamily::V4Only as i32);
    let Some(
        envoy_types::pb::envoy::config::core::v3::health_check::HealthChecker::HttpHealthCheck(h),
    ) = &c.health_checks[0].health_checker
    else {
        panic!("an HTTP check")
    };
    assert_eq!(h.codec_client_type, 1, "HTTP2, inside a list");

    // Inside an Any too.
    let l: Listener = from_yaml_str(
        "name: l\nfilter_chains: [ { filters: [ { name: hcm, typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: s, codec_type: http1 } } ] } ]\n",
    )
    .expect("lower case inside an Any");
    let any = l.filter_chains[0].filters[0]
        .config_type
        .clone()
        .expect("typed config");
    let envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any) = any
    else {
        panic!("typed config")
    };
    let hcm = <envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager as prost::Message>::decode(any.value.as_slice()).expect("HCM");
    assert_eq!(hcm.codec_type, 1, "HTTP1");

    // A name that is no enum value in any case is still an error, at its path.
    let err = from_yaml_str::<Cluster>("name: c\nlb_policy: roundrobin\n").expect_err("unknown");
    assert!(err.to_string().starts_with("lb_policy"), "{err}");
}
