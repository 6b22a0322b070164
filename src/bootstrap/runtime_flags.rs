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

/// `x-outrider-no-healthy-upstream` on 503s for want of an endpoint (default on).
pub const NO_HEALTHY_UPSTREAM_HEADER: &str = "outrider.no_healthy_upstream_header";

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
