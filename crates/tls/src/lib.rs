//! TLS as Envoy sets it up, on rustls with the `ring` provider: certificates and keys from PEM,
//! the certificate a client gets (by SNI and key type, as Envoy's default selector), client
//! certificates checked against a CA and Envoy's SAN matchers, and Envoy's defaults for
//! versions, cipher suites and key exchange groups.
//!
//! Nothing here knows Envoy's protos: the model crate validates them and calls in with bytes,
//! and the data plane uses the configurations built here. `RESEARCH.md` beside this crate
//! records what Envoy, BoringSSL and rustls do where they differ.

mod certified_key;
mod client;
mod client_auth;
mod error;
mod pem;
mod provider;
mod sans;
mod server;

pub use certified_key::certified_key;
pub use client::{ClientSettings, ClientTls, ServerValidation};
pub use client_auth::{ClientAuth, SanCheck};
pub use error::TlsError;
pub use pem::{certificates, private_key};
pub use provider::{provider, provider_for};
pub use sans::{CertificateFacts, PeerSans};
pub use server::{ServerConfigs, ServerSettings, TlsVersion};

pub use rustls;
