//! `RequestView`: the parts of a request that routing reads, borrowed from the hyper request,
//! and Envoy's way of reading headers (pseudo-headers included) and query parameters from it.

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue, Method};

/// What routing looks at; borrowed from the request, so building one costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// `:authority` (HTTP/2) or `Host` (HTTP/1), as received: may include `:port`.
    pub authority: &'a str,
    /// `:path`: the path with its query string.
    pub path_and_query: &'a str,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The downstream connection is TLS (`:scheme` is `https`).
    pub scheme_is_https: bool,
    /// `content-type` starts with `application/grpc`.
    pub is_grpc: bool,
}

impl<'a> RequestView<'a> {
    /// A view of `parts`: the authority comes from the URI (HTTP/2, absolute-form HTTP/1) or else
    /// the `Host` header, as Envoy's codecs fill `:authority`.
    pub fn from_parts(parts: &'a http::request::Parts, scheme_is_https: bool) -> Self {
        Self::from_parts_with_grpc(parts, scheme_is_https, is_grpc_request(&parts.headers))
    }

    /// [`RequestView::from_parts`] for a request already known to be gRPC or not.
    pub fn from_parts_with_grpc(
        parts: &'a http::request::Parts,
        scheme_is_https: bool,
        is_grpc: bool,
    ) -> Self {
        let authority = match parts.uri.authority() {
            Some(a) => a.as_str(),
            None => parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        };
        let path_and_query = parts.uri.path_and_query().map_or("", |p| p.as_str());
        Self {
            authority,
            path_and_query,
            method: &parts.method,
            headers: &parts.headers,
            scheme_is_https,
            is_grpc,
        }
    }

    /// The path without query string or fragment: what path matchers look at.
    pub fn path(&self) -> &'a str {
        path_without_query(self.path_and_query)
    }

    /// `:scheme` of the downstream request.
    pub fn scheme(&self) -> &'static str {
        if self.scheme_is_https {
            "https"
        } else {
            "http"
        }
    }

    /// The value a header matcher sees for `name` (lower case): pseudo-headers come from the
    /// view, several values of one header are joined with `,` (Envoy's
    /// `getAllOfHeaderAsString`). Allocates only for repeated headers or non-UTF-8 bytes.
    pub fn header_value(&self, name: &str) -> Option<Cow<'a, str>> {
        if let Some(pseudo) = self.pseudo_header(name) {
            return Some(Cow::Borrowed(pseudo));
        }
        let mut values = self.headers.get_all(name).iter();
        let first = values.next()?;
        match values.next() {
            None => Some(value_str(first)),
            Some(second) => {
                let mut joined = value_str(first).into_owned();
                for v in std::iter::once(second).chain(values) {
                    joined.push(',');
                    joined.push_str(&value_str(v));
                }
                Some(Cow::Owned(joined))
            }
        }
    }

    /// The first value of header `name` (lower case), pseudo-headers included: what Envoy uses
    /// for `cluster_header`, `host_rewrite_header` and similar single-value reads.
    pub fn first_header_value(&self, name: &str) -> Option<Cow<'a, str>> {
        if let Some(pseudo) = self.pseudo_header(name) {
            return Some(Cow::Borrowed(pseudo));
        }
        self.headers.get(name).map(value_str)
    }

    /// Every value of header `name` (lower case), pseudo-headers included, as separate values.
    pub(crate) fn header_values(&self, name: &str) -> HeaderValues<'a> {
        match self.pseudo_header(name) {
            Some(pseudo) => HeaderValues::Pseudo(Some(pseudo)),
            None => HeaderValues::Map(self.headers.get_all(name).iter()),
        }
    }

    fn pseudo_header(&self, name: &str) -> Option<&'a str> {
        if !name.starts_with(':') {
            return None;
        }
        match name {
            ":authority" => Some(self.authority),
            ":path" => Some(self.path_and_query),
            ":method" => Some(self.method.as_str()),
            ":scheme" => Some(self.scheme()),
            _ => None,
        }
    }

    /// The first value of query parameter `name`, undecoded, as Envoy's `parseQueryString`
    /// reads it: a parameter without `=` has the empty value.
    pub fn query_parameter(&self, name: &str) -> Option<&'a str> {
        query_parameters(self.path_and_query)
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// The values of one header, without allocating.
pub(crate) enum HeaderValues<'a> {
    Pseudo(Option<&'a str>),
    Map(http::header::ValueIter<'a, HeaderValue>),
}

impl<'a> Iterator for HeaderValues<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Pseudo(v) => v.take().map(Cow::Borrowed),
            Self::Map(values) => values.next().map(value_str),
        }
    }
}

/// A header value as text. HTTP allows obs-text bytes that are not UTF-8; matching those
/// lossily is the best a `&str` matcher can do, and they are rare enough to allocate for.
fn value_str(value: &HeaderValue) -> Cow<'_, str> {
    String::from_utf8_lossy(value.as_bytes())
}

/// Envoy's `PathUtil::removeQueryAndFragment`.
pub(crate) fn path_without_query(path_and_query: &str) -> &str {
    match path_and_query.find(['?', '#']) {
        Some(end) => &path_and_query[..end],
        None => path_and_query,
    }
}

/// `(name, value)` pairs after the first `?`, split on `&`, undecoded (Envoy's
/// `QueryParamsMulti::parseQueryString`).
pub(crate) fn query_parameters(path_and_query: &str) -> impl Iterator<Item = (&str, &str)> {
    let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(move |_| !query.is_empty())
        .map(|param| param.split_once('=').unwrap_or((param, "")))
}

/// The request's `content-type` says gRPC.
pub fn is_grpc_request(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|c| is_grpc_content_type(c.as_bytes()))
}

/// Envoy's `Grpc::Common::hasGrpcContentType`: `application/grpc` (case-sensitive, as in
/// Envoy), alone or followed by `+suffix` or `;parameters`.
pub fn is_grpc_content_type(content_type: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    content_type.len() >= GRPC.len()
        && &content_type[..GRPC.len()] == GRPC
        && matches!(content_type.get(GRPC.len()), None | Some(b'+' | b';'))
}
