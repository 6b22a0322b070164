//! Arbitrary bytes as the body of an xDS resource of each type: decode and validate must never
//! panic. The first byte picks the type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrider_xds::{ResourceType, check_resource};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let kind = ResourceType::ALL[usize::from(selector) % ResourceType::ALL.len()];
    let _ = check_resource(kind, bytes);
});
