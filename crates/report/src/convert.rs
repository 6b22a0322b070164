//! Host events as Envoy's protos: `OutlierEvent` → `envoy.data.cluster.v3.OutlierDetectionEvent`,
//! `HealthEvent` → `envoy.data.core.v3.HealthCheckEvent`, each packable in a `google.protobuf.Any`
//! for `StreamEventsRequest.events`.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::data::cluster::v3 as cluster_event;
use envoy_types::pb::envoy::data::core::v3 as health_event;
use envoy_types::pb::google::protobuf::{Any, Timestamp, UInt64Value};
use outrider_upstream::events::{
    EjectionAction, EjectionDetail, EjectionType, HealthCheckFailureType, HealthCheckerType,
    HealthEvent, HealthTransition, HostEvent, OutlierEvent,
};
use prost::{Message, Name};

/// The event as the `Any` the event stream carries.
pub fn to_any(event: &HostEvent) -> Any {
    match event {
        HostEvent::Outlier(e) => pack(&outlier_event(e)),
        HostEvent::Health(e) => pack(&health_check_event(e)),
    }
}

pub fn outlier_event(event: &OutlierEvent) -> cluster_event::OutlierDetectionEvent {
    let OutlierEvent {
        ejection_type,
        action,
        cluster_name,
        address: _,
        num_ejections,
        enforced,
        timestamp,
        secs_since_last_action,
        detail,
    } = event;
    use cluster_event::outlier_detection_event::Event;
    let detail = detail.as_ref().map(|detail| match detail {
        EjectionDetail::Consecutive => {
            Event::EjectConsecutiveEvent(cluster_event::OutlierEjectConsecutive {})
        }
        EjectionDetail::SuccessRate {
            host_success_rate,
            cluster_average_success_rate,
            cluster_success_rate_ejection_threshold,
        } => Event::EjectSuccessRateEvent(cluster_event::OutlierEjectSuccessRate {
            host_success_rate: *host_success_rate,
            cluster_average_success_rate: *cluster_average_success_rate,
            cluster_success_rate_ejection_threshold: *cluster_success_rate_ejection_threshold,
        }),
        EjectionDetail::FailurePercentage { host_success_rate } => {
            Event::EjectFailurePercentageEvent(cluster_event::OutlierEjectFailurePercentage {
                host_success_rate: *host_success_rate,
            })
        }
    });
    cluster_event::OutlierDetectionEvent {
        r#type: ejection_type_proto(*ejection_type) as i32,
        timestamp: Some(timestamp_proto(*timestamp)),
        secs_since_last_action: secs_since_last_action.map(|value| UInt64Value { value }),
        cluster_name: cluster_name.clone(),
        upstream_url: event.upstream_url(),
        action: match action {
            EjectionAction::Eject => cluster_event::Action::Eject,
            EjectionAction::Uneject => cluster_event::Action::Uneject,
        } as i32,
        num_ejections: *num_ejections,
        enforced: *enforced,
        event: detail,
    }
}

fn ejection_type_proto(ejection_type: EjectionType) -> cluster_event::OutlierEjectionType {
    use cluster_event::OutlierEjectionType as Proto;
    match ejection_type {
        EjectionType::Consecutive5xx => Proto::Consecutive5xx,
        EjectionType::ConsecutiveGatewayFailure => Proto::ConsecutiveGatewayFailure,
        EjectionType::SuccessRate => Proto::SuccessRate,
        EjectionType::ConsecutiveLocalOriginFailure => Proto::ConsecutiveLocalOriginFailure,
        EjectionType::SuccessRateLocalOrigin => Proto::SuccessRateLocalOrigin,
        EjectionType::FailurePercentage => Proto::FailurePercentage,
        EjectionType::FailurePercentageLocalOrigin => Proto::FailurePercentageLocalOrigin,
    }
}

pub fn health_check_event(event: &HealthEvent) -> health_event::HealthCheckEvent {
    let HealthEvent {
        checker,
        cluster_name,
        address,
        transition,
        timestamp,
    } = event;
    use health_event::health_check_event::Event;
    let transition = match transition {
        HealthTransition::EjectUnhealthy { failure_type } => {
            Event::EjectUnhealthyEvent(health_event::HealthCheckEjectUnhealthy {
                failure_type: failure_type_proto(*failure_type) as i32,
                // Not carried by our events; 0 is the proto's "unset".
                http_status_code: 0,
            })
        }
        HealthTransition::AddHealthy { first_check } => {
            Event::AddHealthyEvent(health_event::HealthCheckAddHealthy {
                first_check: *first_check,
            })
        }
        HealthTransition::Failure {
            failure_type,
            first_check,
        } => Event::HealthCheckFailureEvent(health_event::HealthCheckFailure {
            failure_type: failure_type_proto(*failure_type) as i32,
            first_check: *first_check,
            http_status_code: 0,
        }),
        HealthTransition::Degraded => {
            Event::DegradedHealthyHost(health_event::DegradedHealthyHost {})
        }
        HealthTransition::NoLongerDegraded => {
            Event::NoLongerDegradedHost(health_event::NoLongerDegradedHost {})
        }
    };
    health_event::HealthCheckEvent {
        health_checker_type: match checker {
            HealthCheckerType::Http => health_event::HealthCheckerType::Http,
            HealthCheckerType::Tcp => health_event::HealthCheckerType::Tcp,
            HealthCheckerType::Grpc => health_event::HealthCheckerType::Grpc,
        } as i32,
        host: Some(address_proto(*address)),
        cluster_name: cluster_name.clone(),
        timestamp: Some(timestamp_proto(*timestamp)),
        metadata: None,
        locality: None,
        event: Some(transition),
    }
}

fn failure_type_proto(failure: HealthCheckFailureType) -> health_event::HealthCheckFailureType {
    use health_event::HealthCheckFailureType as Proto;
    match failure {
        HealthCheckFailureType::Active => Proto::Active,
        HealthCheckFailureType::Passive => Proto::Passive,
        HealthCheckFailureType::Network => Proto::Network,
        HealthCheckFailureType::NetworkTimeout => Proto::NetworkTimeout,
    }
}

/// A core `Address` with its `socket_address`.
pub fn address_proto(address: SocketAddr) -> Address {
    socket_address(address.ip().to_string(), address.port())
}

pub(crate) fn socket_address(host: String, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: host,
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..SocketAddress::default()
        })),
    }
}

/// A wall-clock time as a proto `Timestamp` (times before 1970 are clamped to it).
pub fn timestamp_proto(time: SystemTime) -> Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        // Below 10^9, so it fits.
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

fn pack<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

#[cfg(test)]
mod tests;
