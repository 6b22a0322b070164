//! The request path as Envoy's connection manager leaves it before routing
//! (`maybeNormalizePath`): escaped slashes (`%2F`, `%5C`) kept, refused, unescaped and
//! forwarded, or unescaped and redirected to; RFC 3986 normalisation (`normalize_path`: dot
//! segments, unreserved characters unescaped, `\` as `/`, characters that must be escaped
//! escaped, as Chromium's path canonicaliser that Envoy uses); then `merge_slashes`. The
//! query is never touched. Routing and the upstream both see the result.

use std::borrow::Cow;
use std::fmt::Write as _;

use outrider_model::{EscapedSlashes, HttpConnectionManager};

/// What the connection manager does with the request after normalising its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathVerdict {
    /// Route it with this path and query (`None`: unchanged).
    Continue(Option<String>),
    /// Redirect the client to this path and query (307), for `UNESCAPE_AND_REDIRECT`.
    Redirect(String),
    /// Refuse it (400).
    Reject,
}

/// Whether `hcm` changes paths at all (most connection managers do not: nothing is scanned).
pub(crate) fn normalizes(hcm: &HttpConnectionManager) -> bool {
    hcm.normalize_path || hcm.merge_slashes || hcm.escaped_slashes != EscapedSlashes::KeepUnchanged
}

/// The verdict for `path_and_query` under `hcm`'s settings.
pub(crate) fn normalize(path_and_query: &str, hcm: &HttpConnectionManager) -> PathVerdict {
    let (path, query) = match path_and_query.find('?') {
        Some(at) => path_and_query.split_at(at),
        None => (path_and_query, ""),
    };
    let mut path = Cow::Borrowed(path);
    let mut redirect = false;
    if hcm.escaped_slashes != EscapedSlashes::KeepUnchanged
        && let Some(unescaped) = unescape_slashes(&path)
    {
        match hcm.escaped_slashes {
            EscapedSlashes::RejectRequest => return PathVerdict::Reject,
            EscapedSlashes::UnescapeAndRedirect => redirect = true,
            EscapedSlashes::UnescapeAndForward | EscapedSlashes::KeepUnchanged => {}
        }
        path = Cow::Owned(unescaped);
    }
    if hcm.normalize_path {
        let canonical = canonical_path(&path);
        if canonical != path {
            path = Cow::Owned(canonical);
        }
    }
    // After normalisation, to catch what percent-encoding hid.
    if hcm.merge_slashes && path.contains("//") {
        path = Cow::Owned(merge_slashes(&path));
    }
    let changed = match path {
        Cow::Borrowed(_) => None,
        Cow::Owned(path) => Some(format!("{path}{query}")),
    };
    match (redirect, changed) {
        (true, Some(target)) => PathVerdict::Redirect(target),
        (_, changed) => PathVerdict::Continue(changed),
    }
}

/// `%2F`/`%2f` to `/` and `%5C`/`%5c` to `\` (Envoy's `unescapeSlashes`); `None` when the path
/// has none.
fn unescape_slashes(path: &str) -> Option<String> {
    if !path.contains('%') {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    let mut found = false;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or("");
        let replacement = if escape.eq_ignore_ascii_case("%2F") {
            Some('/')
        } else if escape.eq_ignore_ascii_case("%5C") {
            Some('\\')
        } else {
            None
        };
        match replacement {
            Some(c) => {
                out.push(c);
                found = true;
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    found.then_some(out)
}

/// Envoy's `mergeSlashes`: runs of `/` become one, a leading and a trailing `/` are kept.
fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    let mut first = true;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if !first {
            out.push('/');
        }
        out.push_str(segment);
        first = false;
    }
    if path.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// RFC 3986 path normalisation as Chromium's `CanonicalizePath` (which Envoy's
/// `normalize_path` uses) does it on what an HTTP request target can hold.
fn canonical_path(path: &str) -> String {
    // Segments between separators (`/`, and `\` as one), each canonicalised on its own.
    let mut segments: Vec<String> = Vec::new();
    let body = path.strip_prefix(['/', '\\']).unwrap_or(path);
    let mut ends_as_directory = false;
    for raw in body.split(['/', '\\']) {
        let segment = canonical_segment(raw);
        // `..;x` and `.;x` count as dot segments (Envoy strips their parameters first).
        let dots = segment.split(';').next().unwrap_or("");
        match dots {
            "." => ends_as_directory = true,
            ".." => {
                segments.pop();
                ends_as_directory = true;
            }
            _ => {
                segments.push(segment);
                ends_as_directory = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if ends_as_directory || out.is_empty() {
        out.push('/');
    }
    out
}

/// One segment: escapes of unreserved characters decoded (so `%2e` is a dot), characters a
/// path may not hold escaped, and every other escape kept as written.
fn canonical_segment(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let Some(decoded) = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                out.push_str(&raw[i..i + 3]);
            }
            i += 3;
            continue;
        }
        if must_escape(b) {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
        i += 1;
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes Chromium escapes in a path: controls, space, `"`, `<`, `>`, `` ` ``, `{`, `}`, and
/// anything outside ASCII.
fn must_escape(b: u8) -> bool {
    b <= b' ' || b >= 0x7f || matches!(b, b'"' | b'<' | b'>' | b'`' | b'{' | b'}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::test_support;

    fn verdict(hcm_fields: &str, path: &str) -> PathVerdict {
        normalize(path, &test_support::hcm(hcm_fields))
    }

    fn continues(path: &str) -> PathVerdict {
        PathVerdict::Continue(Some(path.to_string()))
    }

    #[test]
    fn rfc_3986_normalisation() {
        let on = "      normalize_path: true\n";
        let cases = [
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../../a", "/a"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/%2e%2E/b", "/b"),
            ("/a/..;x=1/b", "/b"),
            ("/%7Euser/%41b", "/~user/Ab"),
            ("/a\\b", "/a/b"),
            ("/a/{b}?q=/../x", "/a/%7Bb%7D?q=/../x"),
            ("/a//b/../c", "/a//c"),
        ];
        for (path, expected) in cases {
            assert_eq!(verdict(on, path), continues(expected), "{path}");
        }
        // Nothing to change, including escapes that stay escaped.
        for path in ["/a/b?x=1", "/a/%2fb", "/a/%zz%3F"] {
            assert_eq!(verdict(on, path), PathVerdict::Continue(None), "{path}");
        }
    }

    #[test]
    fn merged_slashes_and_escaped_slash_actions() {
        let merge = "      merge_slashes: true\n";
        assert_eq!(verdict(merge, "//a///b//?q=//"), continues("/a/b/?q=//"));
        assert_eq!(verdict(merge, "/a/b"), PathVerdict::Continue(None));
        // Without merge_slashes a path goes as sent.
        assert_eq!(verdict("", "//m//x"), PathVerdict::Continue(None));
        let escaped = |action: &str| format!("      path_with_escaped_slashes_action: {action}\n");
        assert_eq!(
            verdict(&escaped("REJECT_REQUEST"), "/a%2Fb"),
            PathVerdict::Reject
        );
        assert_eq!(
            verdict(&escaped("UNESCAPE_AND_FORWARD"), "/a%2fb%5Cc"),
            continues("/a/b\\c")
        );
        assert_eq!(
            verdict(&escaped("UNESCAPE_AND_REDIRECT"), "/a%2Fb?x"),
            PathVerdict::Redirect("/a/b?x".to_string())
        );
        assert_eq!(
            verdict(&escaped("REJECT_REQUEST"), "/a%20b"),
            PathVerdict::Continue(None)
        );
        // Unescaped, then normalised and merged, as Envoy orders them.
        let all = format!(
            "{}      normalize_path: true\n      merge_slashes: true\n",
            escaped("UNESCAPE_AND_FORWARD")
        );
        assert_eq!(verdict(&all, "/a%2F%2F..%5Cb"), continues("/a/b"));
    }
}
