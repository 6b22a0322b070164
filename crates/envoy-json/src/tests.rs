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
