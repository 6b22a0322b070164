//! `Lookup`: how a host name becomes addresses; `SystemLookup` asks the system resolver.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

/// A lookup taking longer counts as a failure (the last addresses stay). Envoy's c-ares
/// resolver gives up after about as long.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves host names. A trait so the refresh loops can be tested without a resolver.
pub trait Lookup: Send + Sync + 'static {
    /// Every address of `hostname`, IPv4 and IPv6, in the resolver's order of preference.
    fn lookup(&self, hostname: &str) -> impl Future<Output = io::Result<Vec<IpAddr>>> + Send;
}

/// The system resolver (`getaddrinfo`: `/etc/hosts`, `/etc/resolv.conf`, nsswitch), on tokio's
/// blocking pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    async fn lookup(&self, hostname: &str) -> io::Result<Vec<IpAddr>> {
        let answer = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((hostname, 0)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "DNS lookup timed out"))??;
        Ok(answer.map(|a| a.ip()).collect())
    }
}
