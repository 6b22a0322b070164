//! Arbitrary text as a bootstrap file: parse (YAML/JSON) and check must never panic.
#![no_main]

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use libfuzzer_sys::fuzz_target;
use outrider::bootstrap::{Overrides, check};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(proto) = outrider_envoy_json::from_yaml_str::<Bootstrap>(text) {
        let _ = check(proto, &Overrides::default());
    }
});
