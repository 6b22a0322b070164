use std::time::Duration;

use envoy_types::pb::envoy::data::cluster::v3::outlier_detection_event::Event as OutlierDetail;
use envoy_types::pb::envoy::data::core::v3::health_check_event::Event as HealthDetail;

use super::*;
use crate::event_log::{host_event_json_line, json_line};

/// 2024-01-02T03:04:05.678Z
fn time() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_704_164_645, 678_000_000)
}

fn ejection(ejection_type: EjectionType, detail: Option<EjectionDetail>) -> OutlierEvent {
    OutlierEvent {
        ejection_type,
        action: EjectionAction::Eject,
        cluster_name: "backend".into(),
        address: "10.0.0.1:8080".parse().expect("address"),
        num_ejections: 3,
        enforced: true,
        timestamp: time(),
        secs_since_last_action: Some(42),
        detail,
    }
}

#[test]
fn an_ejection_carries_every_field() {
    let proto = outlier_event(&ejection(
        EjectionType::SuccessRate,
        Some(EjectionDetail::SuccessRate {
            host_success_rate: 50,
            cluster_average_success_rate: 90,
            cluster_success_rate_ejection_threshold: 52,
        }),
    ));
    assert_eq!(
        proto,
        cluster_event::OutlierDetectionEvent {
            r#type: cluster_event::OutlierEjectionType::SuccessRate as i32,
            timestamp: Some(Timestamp {
                seconds: 1_704_164_645,
                nanos: 678_000_000
            }),
            secs_since_last_action: Some(UInt64Value { value: 42 }),
            cluster_name: "backend".into(),
            upstream_url: "tcp://10.0.0.1:8080".into(),
            action: cluster_event::Action::Eject as i32,
            num_ejections: 3,
            enforced: true,
            event: Some(OutlierDetail::EjectSuccessRateEvent(
                cluster_event::OutlierEjectSuccessRate {
                    host_success_rate: 50,
                    cluster_average_success_rate: 90,
                    cluster_success_rate_ejection_threshold: 52,
                }
            )),
        }
    );
}

#[test]
fn every_ejection_type_and_detail_maps_to_envoys() {
    let cases = [
        (EjectionType::Consecutive5xx, "CONSECUTIVE_5XX"),
        (
            EjectionType::ConsecutiveGatewayFailure,
            "CONSECUTIVE_GATEWAY_FAILURE",
        ),
        (EjectionType::SuccessRate, "SUCCESS_RATE"),
        (
            EjectionType::ConsecutiveLocalOriginFailure,
            "CONSECUTIVE_LOCAL_ORIGIN_FAILURE",
        ),
        (
            EjectionType::SuccessRateLocalOrigin,
            "SUCCESS_RATE_LOCAL_ORIGIN",
        ),
        (EjectionType::FailurePercentage, "FAILURE_PERCENTAGE"),
        (
            EjectionType::FailurePercentageLocalOrigin,
            "FAILURE_PERCENTAGE_LOCAL_ORIGIN",
        ),
    ];
    for (ours, name) in cases {
        let proto = outlier_event(&ejection(ours, Some(EjectionDetail::Consecutive)));
        let theirs = cluster_event::OutlierEjectionType::try_from(proto.r#type).expect("known");
        assert_eq!(theirs.as_str_name(), name);
        assert_eq!(ours.envoy_name(), name);
    }
    let consecutive = outlier_event(&ejection(
        EjectionType::Consecutive5xx,
        Some(EjectionDetail::Consecutive),
    ));
    assert_eq!(
        consecutive.event,
        Some(OutlierDetail::EjectConsecutiveEvent(
            cluster_event::OutlierEjectConsecutive {}
        ))
    );
    let failure_percentage = outlier_event(&ejection(
        EjectionType::FailurePercentage,
        Some(EjectionDetail::FailurePercentage {
            host_success_rate: 10,
        }),
    ));
    assert_eq!(
        failure_percentage.event,
        Some(OutlierDetail::EjectFailurePercentageEvent(
            cluster_event::OutlierEjectFailurePercentage {
                host_success_rate: 10
            }
        ))
    );
}

#[test]
fn an_unejection_has_no_detail_and_may_have_no_previous_action() {
    let mut event = ejection(EjectionType::Consecutive5xx, None);
    event.action = EjectionAction::Uneject;
    event.enforced = false;
    event.secs_since_last_action = None;
    let proto = outlier_event(&event);
    assert_eq!(proto.action, cluster_event::Action::Uneject as i32);
    assert_eq!(proto.secs_since_last_action, None);
    assert_eq!(proto.event, None);
    assert!(!proto.enforced);
}

fn health(transition: HealthTransition) -> HealthEvent {
    HealthEvent {
        checker: HealthCheckerType::Grpc,
        cluster_name: "backend".into(),
        address: "[::1]:9000".parse().expect("address"),
        transition,
        timestamp: time(),
    }
}

#[test]
fn a_health_event_carries_every_field() {
    let proto = health_check_event(&health(HealthTransition::EjectUnhealthy {
        failure_type: HealthCheckFailureType::NetworkTimeout,
    }));
    assert_eq!(
        proto,
        health_event::HealthCheckEvent {
            health_checker_type: health_event::HealthCheckerType::Grpc as i32,
            host: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "::1".into(),
                    port_specifier: Some(PortSpecifier::PortValue(9000)),
                    ..SocketAddress::default()
                })),
            }),
            cluster_name: "backend".into(),
            timestamp: Some(Timestamp {
                seconds: 1_704_164_645,
                nanos: 678_000_000
            }),
            metadata: None,
            locality: None,
            event: Some(HealthDetail::EjectUnhealthyEvent(
                health_event::HealthCheckEjectUnhealthy {
                    failure_type: health_event::HealthCheckFailureType::NetworkTimeout as i32,
                    http_status_code: 0,
                }
            )),
        }
    );
}

#[test]
fn every_health_transition_and_checker_maps_to_envoys() {
    use health_event::HealthCheckFailureType as Failure;
    let cases = [
        (
            HealthTransition::AddHealthy { first_check: true },
            HealthDetail::AddHealthyEvent(health_event::HealthCheckAddHealthy {
                first_check: true,
            }),
        ),
        (
            HealthTransition::Failure {
                failure_type: HealthCheckFailureType::Network,
                first_check: true,
            },
            HealthDetail::HealthCheckFailureEvent(health_event::HealthCheckFailure {
                failure_type: Failure::Network as i32,
                first_check: true,
                http_status_code: 0,
            }),
        ),
        (
            HealthTransition::EjectUnhealthy {
                failure_type: HealthCheckFailureType::Passive,
            },
            HealthDetail::EjectUnhealthyEvent(health_event::HealthCheckEjectUnhealthy {
                failure_type: Failure::Passive as i32,
                http_status_code: 0,
            }),
        ),
        (
            HealthTransition::Failure {
                failure_type: HealthCheckFailureType::Active,
                first_check: false,
            },
            HealthDetail::HealthCheckFailureEvent(health_event::HealthCheckFailure {
                failure_type: Failure::Active as i32,
                first_check: false,
                http_status_code: 0,
            }),
        ),
        (
            HealthTransition::Degraded,
            HealthDetail::DegradedHealthyHost(health_event::DegradedHealthyHost {}),
        ),
        (
            HealthTransition::NoLongerDegraded,
            HealthDetail::NoLongerDegradedHost(health_event::NoLongerDegradedHost {}),
        ),
    ];
    for (ours, theirs) in cases {
        assert_eq!(health_check_event(&health(ours)).event, Some(theirs));
    }
    for (ours, theirs) in [
        (
            HealthCheckerType::Http,
            health_event::HealthCheckerType::Http,
        ),
        (HealthCheckerType::Tcp, health_event::HealthCheckerType::Tcp),
        (
            HealthCheckerType::Grpc,
            health_event::HealthCheckerType::Grpc,
        ),
    ] {
        let mut event = health(HealthTransition::Degraded);
        event.checker = ours;
        assert_eq!(
            health_check_event(&event).health_checker_type,
            theirs as i32
        );
    }
}

#[test]
fn events_pack_into_any_with_their_type_url() {
    let outlier = to_any(&HostEvent::Outlier(ejection(
        EjectionType::Consecutive5xx,
        Some(EjectionDetail::Consecutive),
    )));
    assert_eq!(
        outlier.type_url,
        "type.googleapis.com/envoy.data.cluster.v3.OutlierDetectionEvent"
    );
    let decoded =
        cluster_event::OutlierDetectionEvent::decode(outlier.value.as_slice()).expect("decodes");
    assert_eq!(decoded.upstream_url, "tcp://10.0.0.1:8080");
    let health = to_any(&HostEvent::Health(health(HealthTransition::Degraded)));
    assert_eq!(
        health.type_url,
        "type.googleapis.com/envoy.data.core.v3.HealthCheckEvent"
    );
}

#[test]
fn the_event_log_line_is_envoys_json_with_primitive_defaults_printed() {
    let line = json_line(&ejection(
        EjectionType::Consecutive5xx,
        Some(EjectionDetail::Consecutive),
    ))
    .expect("prints");
    assert_eq!(
        line,
        r#"{"type":"CONSECUTIVE_5XX","timestamp":"2024-01-02T03:04:05.678Z","secs_since_last_action":"42","cluster_name":"backend","upstream_url":"tcp://10.0.0.1:8080","action":"EJECT","num_ejections":3,"enforced":true,"eject_consecutive_event":{}}"#
    );
    let mut uneject = ejection(EjectionType::Consecutive5xx, None);
    uneject.action = EjectionAction::Uneject;
    uneject.enforced = false;
    uneject.secs_since_last_action = None;
    uneject.num_ejections = 0;
    let line = json_line(&uneject).expect("prints");
    assert_eq!(
        line,
        r#"{"type":"CONSECUTIVE_5XX","timestamp":"2024-01-02T03:04:05.678Z","cluster_name":"backend","upstream_url":"tcp://10.0.0.1:8080","action":"UNEJECT","num_ejections":0,"enforced":false}"#
    );
}

#[test]
fn health_check_events_go_to_the_event_log_too() {
    let line = host_event_json_line(&HostEvent::Health(health(
        HealthTransition::EjectUnhealthy {
            failure_type: HealthCheckFailureType::Active,
        },
    )))
    .expect("prints");
    let json: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(json["cluster_name"], "backend", "{line}");
    assert_eq!(json["health_checker_type"], "GRPC", "{line}");
    assert_eq!(
        json["eject_unhealthy_event"]["failure_type"], "ACTIVE",
        "{line}"
    );
}
