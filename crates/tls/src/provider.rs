//! The crypto provider: rustls's `ring` backend, narrowed to Envoy's defaults.

use std::sync::{Arc, OnceLock};

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};

use crate::error::TlsError;

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

/// BoringSSL's names of the TLS 1.2 suites rustls offers.
fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    Some(match name {
        "ECDHE-ECDSA-AES128-GCM-SHA256" => cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-ECDSA-AES256-GCM-SHA384" => cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-ECDSA-CHACHA20-POLY1305" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "ECDHE-RSA-AES128-GCM-SHA256" => cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-RSA-AES256-GCM-SHA384" => cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-RSA-CHACHA20-POLY1305" => cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

/// Suites BoringSSL knows and rustls does not offer (RSA key exchange, CBC, 3DES, PSK), and
/// TLS 1.3's, which a list cannot turn off: left out of what a list offers.
const NOT_OFFERED: &[&str] = &[
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA",
    "DES-CBC3-SHA",
    "ECDHE-PSK-AES128-CBC-SHA",
    "ECDHE-PSK-AES256-CBC-SHA",
    "ECDHE-PSK-CHACHA20-POLY1305",
    "PSK-AES128-CBC-SHA",
    "PSK-AES256-CBC-SHA",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The provider for a context's `tls_params`: its TLS 1.2 `cipher_suites` (BoringSSL names,
/// `[A|B]` equal-preference groups flattened in order; TLS 1.3's three always stay, as in
/// Envoy) and `ecdh_curves` (`X25519`, `P-256`, `P-384`). Empty lists keep Envoy's defaults.
/// A name BoringSSL would not know is an error, as Envoy's; one rustls does not offer is
/// left out; a list that leaves nothing is an error.
pub fn provider_for(
    cipher_suites: &[String],
    ecdh_curves: &[String],
) -> Result<Arc<CryptoProvider>, TlsError> {
    let base = provider();
    if cipher_suites.is_empty() && ecdh_curves.is_empty() {
        return Ok(base);
    }
    let mut suites: Vec<SupportedCipherSuite> = base
        .cipher_suites
        .iter()
        .filter(|s| s.tls13().is_some())
        .copied()
        .collect();
    if cipher_suites.is_empty() {
        suites = base.cipher_suites.clone();
    } else {
        let mut tls12 = 0;
        let names = cipher_suites.iter().flat_map(|entry| {
            entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split('|')
        });
        for name in names {
            match tls12_suite(name) {
                Some(suite) if !suites.contains(&suite) => {
                    suites.push(suite);
                    tls12 += 1;
                }
                Some(_) => {}
                None if NOT_OFFERED.contains(&name) => {}
                None => {
                    return Err(TlsError::at(
                        "tls_params.cipher_suites",
                        format!("unknown cipher suite {name}"),
                    ));
                }
            }
        }
        if tls12 == 0 {
            return Err(TlsError::at(
                "tls_params.cipher_suites",
                "none of these TLS 1.2 cipher suites is offered (rustls offers ECDHE with AES-GCM or ChaCha20-Poly1305)",
            ));
        }
    }
    let kx_groups = if ecdh_curves.is_empty() {
        base.kx_groups.clone()
    } else {
        let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
        for name in ecdh_curves {
            let group: &'static dyn SupportedKxGroup = match name.as_str() {
                "X25519" => kx_group::X25519,
                "P-256" => kx_group::SECP256R1,
                "P-384" => kx_group::SECP384R1,
                other => {
                    return Err(TlsError::at(
                        "tls_params.ecdh_curves",
                        format!("{other} is not offered (X25519, P-256 and P-384 are)"),
                    ));
                }
            };
            groups.push(group);
        }
        groups
    };
    Ok(Arc::new(CryptoProvider {
        cipher_suites: suites,
        kx_groups,
        ..(*base).clone()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_string()).collect()
    }

    #[test]
    fn tls_params_lists_map_onto_rustls() {
        let istio = strings(&[
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
            "AES256-GCM-SHA384",
        ]);
        let provider = provider_for(&istio, &strings(&["P-256"])).expect("valid");
        let tls12: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.tls13().is_none())
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            tls12,
            [
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            ]
        );
        assert_eq!(provider.cipher_suites.len(), 3 + 4, "TLS 1.3's stay");
        assert_eq!(provider.kx_groups.len(), 1);
        let unknown = provider_for(&strings(&["NOT-A-SUITE"]), &[]).expect_err("unknown");
        assert_eq!(unknown.field, Some("tls_params.cipher_suites"));
        assert!(provider_for(&strings(&["AES128-GCM-SHA256"]), &[]).is_err());
        assert!(provider_for(&[], &strings(&["P-521"])).is_err());
    }
}
