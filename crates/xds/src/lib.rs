//! The ADS client: one gRPC stream to the management server, state-of-the-world or delta.
//!
//! The protocol lives in [`AdsState`], a state machine that does no I/O; [`AdsClient`] runs it
//! over tonic, applies its updates to the tables, and only then sends the ACKs it asks for.

mod ads_state;
mod backoff;
mod config_cache;
mod driver;
mod resource_type;
mod response_stream;
pub mod status;
mod subscription;
mod validate;

pub use ads_state::{AdsConfig, AdsState, DOES_NOT_EXIST_TIMEOUT, Now, Outbound, Step};
pub use backoff::Backoff;
pub use driver::AdsClient;
pub use resource_type::ResourceType;
pub use response_stream::{ResponseStream, StreamEvent};
pub use status::{
    ClientStatus, LiveVersion, ResourceRecord, ResourceStatus, StreamStatus, UpdateCounts,
    UpdateFailure,
};
pub use validate::check_resource;
