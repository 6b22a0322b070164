//! `headers_with_underscores_action`: what the connection manager does with a request header
//! whose name contains `_` (Envoy's codecs check it as they parse, before anything else).

use http::{HeaderMap, HeaderName};
use outrider_model::UnderscoreHeaders;

/// Applies `action` to `headers`; `true` when the request must be refused (400).
pub(crate) fn refused(headers: &mut HeaderMap, action: UnderscoreHeaders) -> bool {
    let has_underscore = |name: &HeaderName| name.as_str().contains('_');
    if action == UnderscoreHeaders::Allow || !headers.keys().any(has_underscore) {
        return false;
    }
    match action {
        UnderscoreHeaders::Allow => false,
        UnderscoreHeaders::RejectRequest => true,
        UnderscoreHeaders::DropHeader => {
            // Allocates only for a request that has such a header.
            let names: Vec<HeaderName> = headers
                .keys()
                .filter(|n| has_underscore(n))
                .cloned()
                .collect();
            for name in names {
                headers.remove(name);
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        for name in ["x_one", "x-two", "x_three"] {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static("v"));
        }
        headers
    }

    #[test]
    fn each_action() {
        let mut allowed = headers();
        assert!(!refused(&mut allowed, UnderscoreHeaders::Allow));
        assert_eq!(allowed.len(), 3);
        assert!(refused(&mut headers(), UnderscoreHeaders::RejectRequest));
        let mut dropped = headers();
        assert!(!refused(&mut dropped, UnderscoreHeaders::DropHeader));
        assert_eq!(dropped.keys().collect::<Vec<_>>(), ["x-two"]);
        let mut clean = HeaderMap::new();
        clean.insert("x-ok", HeaderValue::from_static("v"));
        assert!(!refused(&mut clean, UnderscoreHeaders::RejectRequest));
    }
}
