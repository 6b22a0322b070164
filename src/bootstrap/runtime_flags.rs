//! Outrider's switches, set the Envoy way: as keys of a static runtime layer in the bootstrap
//! (`layered_runtime.layers[].static_layer`), so a bootstrap that sets them still loads in Envoy,
//! which ignores keys it does not know. Later layers override earlier ones, as in Envoy.
//!
//! ```yaml
//! layered_runtime:
//!   layers:
//!   - name: static
//!     static_layer:
//!       outrider.no_healthy_upstream_header: false
//! ```

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::bootstrap::v3::runtime_layer::LayerSpecifier;
use envoy_types::pb::google::protobuf::Value;
use envoy_types::pb::google::protobuf::value::Kind;

/// Every Outrider runtime key starts with this.
pub const PREFIX: &str = "outrider.";

/// The Outrider runtime keys there are; another `outrider.*` key is refused, not ignored.
pub const KEYS: [&str; 2] = [NO_HEALTHY_UPSTREAM_HEADER, RETRY_BUFFER_BUDGET_BYTES];

/// `x-outrider-no-healthy-upstream` on 503s for want of an endpoint (default on).
pub const NO_HEALTHY_UPSTREAM_HEADER: &str = "outrider.no_healthy_upstream_header";

/// The most request-body bytes kept for retries at once, by every worker together (default
/// 128 MiB): past it, a body is streamed and its request loses its retries.
pub const RETRY_BUFFER_BUDGET_BYTES: &str = "outrider.retry_buffer_budget_bytes";

/// The value of a boolean runtime key, if a static layer sets it; a value of another type is an
/// error that names the layer and key.
pub fn runtime_bool(bootstrap: &Bootstrap, key: &str) -> Result<Option<bool>, (String, String)> {
    let mut value = None;
    for (at, set, v) in static_runtime(bootstrap) {
        if set != key {
            continue;
        }
        match &v.kind {
            Some(Kind::BoolValue(b)) => value = Some(*b),
            _ => return Err((at, "must be true or false".into())),
        }
    }
    Ok(value)
}

/// The value of a runtime key that holds a whole number (a number, or a string of one), if
/// a static layer sets it; another value is an error that names the layer and key.
pub fn runtime_count(bootstrap: &Bootstrap, key: &str) -> Result<Option<u64>, (String, String)> {
    let mut value = None;
    for (at, set, v) in static_runtime(bootstrap) {
        if set == key {
            value = Some(whole_number(&at, v)?);
        }
    }
    Ok(value)
}

/// A whole number: a number, or a string of one (as Istio writes runtime values).
pub fn whole_number(at: &str, value: &Value) -> Result<u64, (String, String)> {
    let parsed = match &value.kind {
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && *n >= 0.0 => Some(*n as u64),
        Some(Kind::StringValue(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| (at.to_string(), "must be a whole number".to_string()))
}

/// Every key of the static runtime layers, in layer order: (its field path, the key, its
/// value). Nested objects are flattened with `.`, as Envoy's runtime reads them, so
/// `{ overload: { global_downstream_max_connections: 10 } }` is the dotted key.
pub fn static_runtime(proto: &Bootstrap) -> Vec<(String, String, &Value)> {
    fn walk<'a>(at: &str, key: &str, value: &'a Value, out: &mut Vec<(String, String, &'a Value)>) {
        match &value.kind {
            Some(Kind::StructValue(nested)) => {
                for (name, inner) in &nested.fields {
                    walk(
                        &format!("{at}.{name}"),
                        &format!("{key}.{name}"),
                        inner,
                        out,
                    );
                }
            }
            _ => out.push((at.to_string(), key.to_string(), value)),
        }
    }
    let mut entries = Vec::new();
    let layers = proto.layered_runtime.iter().flat_map(|r| r.layers.iter());
    for (index, layer) in layers.enumerate() {
        let Some(LayerSpecifier::StaticLayer(fields)) = &layer.layer_specifier else {
            continue;
        };
        for (name, value) in &fields.fields {
            let at = format!("layered_runtime.layers[{index}].static_layer.{name}");
            walk(&at, name, value, &mut entries);
        }
    }
    entries
}
