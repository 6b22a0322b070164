//! Arbitrary bytes as an encoded Bootstrap: every static cluster and listener goes through the
//! same validation as xDS resources, so this reaches the whole model from one entry point.
#![no_main]

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use libfuzzer_sys::fuzz_target;
use outrider::bootstrap::{Overrides, check};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(proto) = Bootstrap::decode(data) {
        let _ = check(proto, &Overrides::default());
    }
});
