//! `/control_plane`: the state of the ADS stream and a count of resources per status, in one
//! short JSON answer. Envoy spreads this over stats (`control_plane.connected_state`) and CSDS;
//! an operator asking "is the proxy talking to its control plane, and is it happy?" wants it in
//! one place. Outrider-specific: Envoy has no such page.

use std::collections::BTreeMap;
use std::time::SystemTime;

use outrider_xds::{ClientStatus, ResourceStatus};
use serde_json::{Value, json};

use crate::xds_record::timestamp;

pub(crate) fn control_plane_json(status: &ClientStatus) -> Value {
    let stream = &status.stream;
    let mut types = BTreeMap::new();
    for (kind, records) in &status.resources {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for record in records.values() {
            let name = match record.status {
                ResourceStatus::Requested => "requested",
                ResourceStatus::Acked => "acked",
                ResourceStatus::Nacked => "nacked",
                ResourceStatus::DoesNotExist => "does_not_exist",
                ResourceStatus::Timeout => "timeout",
            };
            *counts.entry(name).or_default() += 1;
            if record.warming {
                *counts.entry("warming").or_default() += 1;
            }
        }
        let version = status.type_versions.get(kind).cloned().unwrap_or_default();
        types.insert(
            kind.short_name(),
            json!({ "version_info": version, "resources": counts }),
        );
    }
    json!({
        "server": stream.server,
        "mode": if stream.delta { "DELTA_GRPC" } else { "GRPC" },
        "connected": stream.connected,
        "streams_opened": stream.streams_opened,
        "last_error": stream.last_error,
        "last_response": stream.last_response.map(rfc3339),
        "initialized": status.initialized,
        "types": types,
    })
}

/// A wall-clock time as Envoy prints protobuf timestamps (`2026-11-21T04:57:02.031Z`).
fn rfc3339(time: SystemTime) -> Value {
    outrider_envoy_json::to_value(&timestamp(time)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use outrider_xds::{ResourceRecord, ResourceType, StreamStatus};

    use super::*;

    #[test]
    fn counts_resources_per_status_and_shows_the_stream() {
        let mut status = ClientStatus {
            stream: StreamStatus {
                server: "http://127.0.0.1:18000".into(),
                delta: true,
                connected: false,
                last_error: Some("connecting: connection refused".into()),
                last_response: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
                streams_opened: 3,
            },
            ..ClientStatus::default()
        };
        let clusters = status.resources.entry(ResourceType::Cluster).or_default();
        let mut warming = ResourceRecord::requested();
        warming.status = ResourceStatus::Acked;
        warming.warming = true;
        clusters.insert("a".into(), warming);
        let mut nacked = ResourceRecord::requested();
        nacked.status = ResourceStatus::Nacked;
        clusters.insert("b".into(), nacked);
        status
            .type_versions
            .insert(ResourceType::Cluster, "7".into());

        let value = control_plane_json(&status);
        assert_eq!(
            value,
            json!({
                "server": "http://127.0.0.1:18000",
                "mode": "DELTA_GRPC",
                "connected": false,
                "streams_opened": 3,
                "last_error": "connecting: connection refused",
                "last_response": "2023-11-14T22:13:20.123Z",
                "initialized": false,
                "types": { "cds": { "version_info": "7",
                    "resources": { "acked": 1, "nacked": 1, "warming": 1 } } },
            })
        );
    }
}
