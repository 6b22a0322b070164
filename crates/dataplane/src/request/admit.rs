//! The connection manager's checks on a request's head before anything else reads it, as
//! Envoy's codecs make them: header size, underscores in header names, HTTP/1.0.

use http::Version;
use outrider_model::HttpConnectionManager;

use super::error::ProxyError;
use crate::underscore_headers;

/// Refuses what the codec would not let through; drops underscore headers under `DROP_HEADER`.
pub(super) fn admit<B>(
    request: &mut http::Request<B>,
    hcm: &HttpConnectionManager,
) -> Result<(), ProxyError> {
    // Envoy's codec limit on the request's header bytes (names and values, pseudo-headers
    // included). hyper's own HTTP/1 buffer cannot go below 8 KiB and counts the raw head, so
    // the exact limit is checked here.
    // And on their number: hyper's HTTP/1 parser counts them itself (set from the same
    // field); HTTP/2 is checked here, where Envoy's codec would reset the stream.
    if header_bytes(request) > hcm.max_request_headers_kb as usize * 1024
        || request.headers().len() > hcm.common.max_headers_count as usize
    {
        return Err(ProxyError::HeadersTooLarge);
    }
    let action = hcm.common.headers_with_underscores;
    if underscore_headers::refused(request.headers_mut(), action) {
        return Err(ProxyError::UnderscoreInHeaderName);
    }
    if request.version() == Version::HTTP_10 && !hcm.http1.accept_http_10 {
        return Err(ProxyError::Http10NotAccepted);
    }
    Ok(())
}

/// Envoy's `HeaderMap::byteSize`: every name and value, `:method`, `:path` and `:authority`
/// included.
fn header_bytes<B>(request: &http::Request<B>) -> usize {
    let uri = request.uri();
    let pseudo = request.method().as_str().len()
        + uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    request.headers().iter().fold(pseudo, |sum, (name, value)| {
        sum + name.as_str().len() + value.len()
    })
}

#[cfg(test)]
mod tests {
    use super::header_bytes;

    #[test]
    fn header_bytes_count_names_values_and_pseudo_headers() {
        let request = http::Request::get("http://a.example/xyz")
            .header("k", "vv")
            .body(())
            .expect("a valid request");
        // GET + /xyz + a.example + k + vv
        assert_eq!(header_bytes(&request), 3 + 4 + 9 + 1 + 2);
    }
}
