//! Upstream selection and protection: `Balancer` picks an endpoint of a cluster (priority
//! levels, panic mode, locality weights, and the ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH
//! and MAGLEV policies, reading host health live), the circuit-breaker guards limit a
//! cluster's connections, pending requests, requests and retries, and `outlier` ejects hosts
//! that fail (Envoy's outlier detection).

mod balancer;
mod circuit_breaker;
mod edf;
pub mod events;
mod health;
mod health_summary;
mod least_request;
mod locality;
pub mod outlier;
mod priority;
mod random;
mod rng;
mod round_robin;

pub use balancer::{Balancer, Pick};
pub use circuit_breaker::{
    BreakerGuard, Resource, connection_over_limit, remaining, try_acquire, try_connection,
    try_pending, try_request, try_retry,
};
pub use health::NoHealthyUpstream;
