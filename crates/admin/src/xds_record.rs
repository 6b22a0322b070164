//! How one of the xDS client's resource records reads in Envoy's admin vocabulary: timestamps,
//! `ClientResourceStatus`, `UpdateFailureState`. Shared by `/config_dump` and CSDS.

use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::admin::v3::{ClientResourceStatus, UpdateFailureState};
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use outrider_xds::{ResourceRecord, ResourceStatus, UpdateFailure};

/// Millisecond precision, as Envoy's `TimestampUtil::systemClockToTimestamp`.
pub(crate) fn timestamp(time: SystemTime) -> Timestamp {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => Timestamp {
            seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(since.subsec_millis() * 1_000_000).unwrap_or(0),
        },
        // A clock before 1970 is a broken clock; the epoch is as good an answer as any.
        Err(_) => Timestamp::default(),
    }
}

pub(crate) fn client_status(status: ResourceStatus) -> ClientResourceStatus {
    match status {
        ResourceStatus::Requested => ClientResourceStatus::Requested,
        ResourceStatus::Acked => ClientResourceStatus::Acked,
        ResourceStatus::Nacked => ClientResourceStatus::Nacked,
        ResourceStatus::DoesNotExist => ClientResourceStatus::DoesNotExist,
        ResourceStatus::Timeout => ClientResourceStatus::Timeout,
    }
}

pub(crate) fn error_state(failure: &UpdateFailure) -> UpdateFailureState {
    UpdateFailureState {
        failed_configuration: failure.failed.clone(),
        last_update_attempt: Some(timestamp(failure.time)),
        details: failure.reason.clone(),
        version_info: failure.version.clone(),
    }
}

/// [`error_state`] for a JSON dump: without a rejected configuration we could not print.
pub(crate) fn printable_error_state(failure: &UpdateFailure) -> UpdateFailureState {
    let mut state = error_state(failure);
    state.failed_configuration = state.failed_configuration.filter(printable);
    state
}

/// A rejected resource may carry an extension we have no descriptor for (that may be why it was
/// rejected); printing it would fail the whole dump, so it is left out, which the proto allows
/// ("may not be populated by xDS clients").
fn printable(any: &Any) -> bool {
    outrider_envoy_json::any_to_value(&any.type_url, &any.value).is_ok()
}

/// The record's accepted resource, if any, with the timestamp of that acceptance.
pub(crate) fn last_updated(record: &ResourceRecord) -> Option<Timestamp> {
    record.last_updated.map(timestamp)
}

/// Packs a message into an `Any` with Envoy's `type.googleapis.com/` URL.
pub(crate) fn pack<M: prost::Message + prost::Name>(msg: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: msg.encode_to_vec(),
    }
}
