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
use envoy_types::pb::google::protobuf::value::Kind;

/// Every Outrider runtime key starts with this.
pub const PREFIX: &str = "outrider.";

/// `x-outrider-no-healthy-upstream` on 503s for want of an endpoint (default on).
pub const NO_HEALTHY_UPSTREAM_HEADER: &str = "outrider.no_healthy_upstream_header";

/// The value of a boolean runtime key, if a static layer sets it; a value of another type is an
/// error that names the layer and key.
pub fn runtime_bool(bootstrap: &Bootstrap, key: &str) -> Result<Option<bool>, (String, String)> {
    let mut value = None;
    let layers = bootstrap
        .layered_runtime
        .iter()
        .flat_map(|r| r.layers.iter());
    for (index, layer) in layers.enumerate() {
        let Some(LayerSpecifier::StaticLayer(fields)) = &layer.layer_specifier else {
            continue;
        };
        if let Some(set) = fields.fields.get(key) {
            match &set.kind {
                Some(Kind::BoolValue(b)) => value = Some(*b),
                _ => {
                    return Err((
                        format!("layered_runtime.layers[{index}].static_layer.{key}"),
                        "must be true or false".into(),
                    ));
                }
            }
        }
    }
    Ok(value)
}
