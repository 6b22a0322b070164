//! The crypto provider: rustls's `ring` backend, narrowed to Envoy's defaults.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite, kx_group};

/// `ring` with Envoy's default cipher suites, in its order of preference (TLS 1.3's three,
/// then ECDHE with AES-128-GCM or ChaCha20, then AES-256-GCM; no CBC, no RSA key exchange)
/// and its default key exchange groups (X25519, then P-256). `ring` builds without a C
/// toolchain beyond what `cc` needs and is lighter to build than `aws-lc-rs`.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            // Deprecated in recent rustls (no post-quantum groups in `ring`), yet the only
            // way to its provider.
            #[allow(deprecated)]
            let ring = rustls::crypto::ring::default_provider();
            Arc::new(CryptoProvider {
                cipher_suites: vec![
                    cipher_suite::TLS13_AES_128_GCM_SHA256,
                    cipher_suite::TLS13_AES_256_GCM_SHA384,
                    cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                    cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                    cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                ],
                kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
                ..ring
            })
        })
        .clone()
}
