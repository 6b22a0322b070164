//! The ADS client: one gRPC stream to the management server, state-of-the-world or delta.
//!
//! The protocol lives in `AdsState`, a state machine that does no I/O; `driver` runs it over
//! tonic, applies its updates to the tables, and only then sends the ACKs it asks for.

mod resource_type;
pub mod status;

pub use resource_type::ResourceType;
pub use status::{ClientStatus, ResourceRecord, ResourceStatus, StreamStatus, UpdateFailure};
