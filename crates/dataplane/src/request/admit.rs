//! The connection manager's checks on a request's head before anything else reads it, as
//! Envoy's codecs make them: one authority, header size, underscores in header names,
//! HTTP/1.0, and no h2c upgrade.

use http::Version;
use http::header::{CONNECTION, HOST, HeaderValue, UPGRADE};
use outrider_model::HttpConnectionManager;

use super::error::ProxyError;
use crate::framing_conflict::FramingConflict;
use crate::underscore_headers;

/// Refuses what the codec would not let through; drops underscore headers under `DROP_HEADER`.
/// `secure`: the connection is TLS (an absolute-form target may then say `https`).
pub(super) fn admit<B>(
    request: &mut http::Request<B>,
    hcm: &HttpConnectionManager,
    secure: bool,
) -> Result<(), ProxyError> {
    // Envoy's HTTP/1 codec: `Content-Length` with `Transfer-Encoding` is refused
    // (`allow_chunked_length` is not accepted).
    if request.extensions().get::<FramingConflict>().is_some() {
        return Err(ProxyError::ConflictingFraming);
    }
    let has_authority = one_authority(request, secure)?;
    if request.version() != Version::HTTP_2 {
        ignore_h2c_upgrade(request.headers_mut());
    }
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
    // No `Host`, no `:authority`: Envoy's connection manager answers 400
    // `missing_host_header` (HTTP/1.0 gets no default host, `default_host_for_http_10` is
    // refused).
    if !has_authority {
        return Err(ProxyError::MissingHost);
    }
    Ok(())
}

/// Settles the request's one authority, the one routing reads and the upstream gets, as
/// Envoy's codecs do: an HTTP/1 absolute-form target replaces `Host` (RFC 9112 §3.2.2) and
/// becomes origin-form, its userinfo dropped and a scheme other than `http` refused; an
/// HTTP/2 `host` header beside `:authority` is dropped (RFC 9113 §8.3.1, Envoy's
/// `http2_discard_host_header`); more than one `Host`, or an authority with a byte Envoy's
/// validator refuses, is refused.
/// Whether the request has an authority at all.
fn one_authority<B>(request: &mut http::Request<B>, secure: bool) -> Result<bool, ProxyError> {
    let several = request.headers().get_all(HOST).iter().nth(1).is_some();
    if request.version() == Version::HTTP_2 {
        if request.uri().authority().is_some() {
            request.headers_mut().remove(HOST);
        } else if several {
            return Err(ProxyError::InvalidHost);
        }
    } else if several {
        return Err(ProxyError::InvalidHost);
    } else if request.uri().scheme().is_some() {
        from_absolute_form(request, secure)?;
    }
    let authority = match request.headers().get(HOST) {
        Some(host) => host.as_bytes(),
        None => match request.uri().authority() {
            Some(authority) => authority.as_str().as_bytes(),
            // Refused later, after the HTTP/1.0 check, in Envoy's order.
            None => return Ok(false),
        },
    };
    if authority.is_empty() || !authority.iter().all(|&b| authority_byte(b)) {
        return Err(ProxyError::InvalidHost);
    }
    Ok(true)
}

/// An HTTP/1 absolute-form target (`GET http://a.example/x`): its host and port become the
/// `Host`, its path and query the target, as Envoy's codec splits it.
fn from_absolute_form<B>(request: &mut http::Request<B>, secure: bool) -> Result<(), ProxyError> {
    let uri = request.uri();
    // `https` only over TLS, as Envoy.
    let scheme_ok = uri.scheme_str().is_some_and(|s| {
        s.eq_ignore_ascii_case("http") || (secure && s.eq_ignore_ascii_case("https"))
    });
    if !scheme_ok {
        return Err(ProxyError::InvalidUrl);
    }
    let Some(authority) = uri.authority() else {
        return Err(ProxyError::InvalidUrl);
    };
    let host_and_port = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, host)| host);
    let host = HeaderValue::from_str(host_and_port).map_err(|_| ProxyError::InvalidHost)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let origin_form = http::Uri::try_from(path).map_err(|_| ProxyError::InvalidUrl)?;
    request.headers_mut().insert(HOST, host);
    *request.uri_mut() = origin_form;
    Ok(())
}

/// The bytes Envoy's authority validator lets through (RFC 3986's host and port
/// characters, and `@` for HTTP/1's userinfo).
fn authority_byte(byte: u8) -> bool {
    AUTHORITY_BYTES[usize::from(byte)]
}

/// [`authority_byte`] as a table: one load per byte of every request's authority.
const AUTHORITY_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric();
        byte += 1;
    }
    let others = b"!$%&'()*+,-.:;=@[]_~";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// Envoy's HTTP/1 codec ignores an upgrade to h2c (what `curl --http2` asks for over
/// plain HTTP): it removes `Upgrade`, `HTTP2-Settings` and their `Connection` tokens, and the
/// request is served over HTTP/1.1.
fn ignore_h2c_upgrade(headers: &mut http::HeaderMap) {
    let h2c = headers
        .get(UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"h2c"));
    if !h2c {
        return;
    }
    headers.remove(UPGRADE);
    headers.remove("http2-settings");
    let kept: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case("upgrade")
                && !t.eq_ignore_ascii_case("http2-settings")
        })
        .map(str::to_string)
        .collect();
    headers.remove(CONNECTION);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join(","))
    {
        headers.insert(CONNECTION, value);
    }
}

/// Envoy's `HeaderMap::byteSize`: every name and value, `:method`, `:path` and `:authority`
/// included (the authority once: a `Host` header is it).
fn header_bytes<B>(request: &http::Request<B>) -> usize {
    let uri = request.uri();
    let authority = if request.headers().contains_key(HOST) {
        0
    } else {
        uri.authority().map_or(0, |a| a.as_str().len())
    };
    let pseudo = request.method().as_str().len()
        + uri.path_and_query().map_or(0, |p| p.as_str().len())
        + authority;
    request.headers().iter().fold(pseudo, |sum, (name, value)| {
        sum + name.as_str().len() + value.len()
    })
}

#[cfg(test)]
mod tests {
    use http::{Request, Version};

    use super::{ProxyError, authority_byte, header_bytes, ignore_h2c_upgrade, one_authority};

    #[test]
    fn an_h2c_upgrade_is_ignored() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "connection",
            http::HeaderValue::from_static("Upgrade, HTTP2-Settings, keep-alive"),
        );
        headers.insert("upgrade", http::HeaderValue::from_static("h2c"));
        headers.insert(
            "http2-settings",
            http::HeaderValue::from_static("AAMAAABkAAQCAAAAAAIAAAAA"),
        );
        ignore_h2c_upgrade(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["connection"], "keep-alive");
        // Only h2c: a WebSocket upgrade is the route's to decide.
        let mut websocket = http::HeaderMap::new();
        websocket.insert("connection", http::HeaderValue::from_static("upgrade"));
        websocket.insert("upgrade", http::HeaderValue::from_static("websocket"));
        ignore_h2c_upgrade(&mut websocket);
        assert_eq!(websocket.len(), 2);
    }

    /// The `Host` headers left after `one_authority`, or the refusal.
    fn settled(version: Version, uri: &str, hosts: &[&str]) -> Result<Vec<String>, ProxyError> {
        let mut builder = Request::get(uri).version(version);
        for host in hosts {
            builder = builder.header("host", *host);
        }
        let mut request = builder.body(()).expect("a valid request");
        one_authority(&mut request, false)?;
        let authority = request.uri().authority().map(|a| a.to_string());
        let host = request.headers().get_all("host").iter();
        let host: Vec<String> = host
            .map(|h| h.to_str().unwrap_or("?").to_string())
            .collect();
        // What routing reads (`RequestView`) is what goes upstream.
        if let (Some(authority), Some(host)) = (&authority, host.first()) {
            assert_eq!(authority, host);
        }
        Ok(host)
    }

    #[test]
    fn one_authority_per_request() {
        const HTTP_11: Version = Version::HTTP_11;
        const HTTP_2: Version = Version::HTTP_2;
        type Case<'a> = (Version, &'a str, &'a [&'a str], Option<&'a [&'a str]>);
        let cases: [Case<'_>; 7] = [
            // Origin form: the one Host stays.
            (HTTP_11, "/a", &["a.example"], Some(&["a.example"])),
            // Absolute form: the target's authority wins over Host (RFC 9112 §3.2.2).
            (
                HTTP_11,
                "http://public.example/s",
                &["admin.internal"],
                Some(&["public.example"]),
            ),
            (
                HTTP_11,
                "http://public.example/s",
                &[],
                Some(&["public.example"]),
            ),
            // Several Host headers: refused.
            (HTTP_11, "/a", &["a.example", "b.example"], None),
            // HTTP/2: `host` beside `:authority` is dropped; alone, it is the authority.
            (
                HTTP_2,
                "http://public.example/s",
                &["admin.internal"],
                Some(&[]),
            ),
            (HTTP_2, "/s", &["a.example"], Some(&["a.example"])),
            (HTTP_2, "/s", &["a.example", "b.example"], None),
        ];
        for (version, uri, hosts, expected) in cases {
            let got = settled(version, uri, hosts);
            match expected {
                Some(expected) => assert_eq!(
                    got.as_deref().ok(),
                    Some(
                        expected
                            .iter()
                            .map(|h| h.to_string())
                            .collect::<Vec<_>>()
                            .as_slice()
                    ),
                    "{version:?} {uri} {hosts:?}"
                ),
                None => assert!(
                    matches!(got, Err(ProxyError::InvalidHost)),
                    "{version:?} {uri} {hosts:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn the_authority_table_is_envoys_set() {
        let allowed: String = (0..=255u8)
            .filter(|&b| authority_byte(b))
            .map(char::from)
            .collect();
        assert_eq!(
            allowed,
            "!$%&'()*+,-.0123456789:;=@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz~"
        );
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_its_host() {
        let mut request = Request::get("http://user:pw@public.example:8080/s?q=1")
            .header("host", "admin.internal")
            .body(())
            .expect("a valid request");
        one_authority(&mut request, false).expect("settled");
        assert_eq!(request.headers()["host"], "public.example:8080");
        assert_eq!(request.uri(), "/s?q=1");
        assert_eq!(request.uri().authority(), None);
    }

    #[test]
    fn authorities_envoy_refuses_are_refused() {
        const HTTP_10: Version = Version::HTTP_10;
        const HTTP_11: Version = Version::HTTP_11;
        const HTTP_2: Version = Version::HTTP_2;
        // No authority anywhere, HTTP/1.0 included (Envoy: `missing_host_header`).
        for version in [HTTP_10, HTTP_11, HTTP_2] {
            let request = Request::get("/a").version(version).body(());
            assert_eq!(
                one_authority(&mut request.expect("a valid request"), false).ok(),
                Some(false)
            );
        }
        // Bytes outside the authority characters, and an empty Host.
        for host in ["a.example/x", "a example", "a\\b", "a{b}", ""] {
            let got = settled(HTTP_11, "/a", &[host]);
            assert!(
                matches!(got, Err(ProxyError::InvalidHost)),
                "{host:?}: {got:?}"
            );
        }
        let mut request = Request::get("/a").body(()).expect("a valid request");
        let non_utf8 = http::HeaderValue::from_bytes(b"caf\xc3\xa9.example").expect("obs-text");
        request.headers_mut().insert("host", non_utf8);
        let got = one_authority(&mut request, false);
        assert!(matches!(got, Err(ProxyError::InvalidHost)), "{got:?}");
        // Absolute form with another scheme (or https over plaintext).
        for uri in ["https://a.example/", "ftp://a.example/", "ws://a.example/"] {
            let got = settled(HTTP_11, uri, &["a.example"]);
            assert!(matches!(got, Err(ProxyError::InvalidUrl)), "{uri}: {got:?}");
        }
    }

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
