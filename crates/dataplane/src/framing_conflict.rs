//! A request head with both `Content-Length` and `Transfer-Encoding`, which Envoy answers
//! 400 (RFC 9112 §6.3 lets a server refuse it; it is the classic smuggling vector). hyper
//! keeps `Transfer-Encoding`, drops `Content-Length` before the request reaches us and closes
//! the connection after the response, so nothing can be smuggled; but to answer as Envoy
//! does, the HTTP/1.1 connection's IO (`head_timer.rs`) scans each head's line starts for
//! the two names as its bytes pass. Only lines starting with `c` or `t` are looked at, so a
//! head costs a `memchr` per line and a few compares.
//!
//! Heads are numbered from the connection's first (the number of requests handed over before
//! them), so that a verdict reaches its own request when heads are pipelined. After a head
//! with neither header (no body follows) the scan goes on with the next one in the same
//! bytes; after one with either, the body's end is the codec's to find, and the next head
//! read after it is scanned. A head that starts in the same read as the end of a body is not
//! scanned: hyper handles it as above (chunked wins, the connection closes), which is safe,
//! but it is not refused.

/// Put in the extensions of a request whose head had both headers: refused (400, `DPE`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FramingConflict;

/// The longest name looked for, with its colon.
const KEEP: usize = 18;
const CONTENT_LENGTH: &[u8] = b"content-length:";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding:";

/// The scan of a connection's heads.
#[derive(Debug, Default)]
pub(crate) struct FramingScan {
    /// The number of the head being scanned.
    index: u32,
    /// The first head found with both headers.
    conflict: Option<u32>,
    /// The current line's first bytes, when it may be one of the two headers.
    prefix: [u8; KEEP],
    prefix_len: usize,
    /// Bytes of the current line so far, and its first one.
    line_len: usize,
    first: u8,
    /// The current line may be one of the two headers.
    candidate: bool,
    /// No line has ended yet: the current one is the request line.
    request_line: bool,
    /// The head has ended (or no head is being scanned).
    done: bool,
    content_length: bool,
    transfer_encoding: bool,
}

impl FramingScan {
    /// Nothing is scanned until a head begins.
    pub(crate) fn idle() -> Self {
        FramingScan {
            done: true,
            ..Self::default()
        }
    }

    /// Head `index` begins with the next bytes.
    pub(crate) fn begin(&mut self, index: u32) {
        *self = FramingScan {
            index,
            conflict: self.conflict,
            request_line: true,
            ..Self::default()
        };
    }

    /// Whether no head is being scanned (a new one may begin).
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// More of the head (and maybe what follows it).
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !self.done && !bytes.is_empty() {
            match memchr::memchr(b'\n', bytes) {
                Some(end) => {
                    self.take(&bytes[..end]);
                    self.end_line();
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.take(bytes);
                    return;
                }
            }
        }
    }

    /// The number of the first head found with both headers, once.
    pub(crate) fn take_conflict(&mut self) -> Option<u32> {
        self.conflict.take()
    }

    fn take(&mut self, part: &[u8]) {
        let Some(&first) = part.first() else {
            return;
        };
        if self.line_len == 0 {
            self.first = first;
            self.candidate = !self.request_line && matches!(first | 0x20, b'c' | b't');
        }
        if self.candidate && self.prefix_len < KEEP {
            let n = (KEEP - self.prefix_len).min(part.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&part[..n]);
            self.prefix_len += n;
        }
        self.line_len += part.len();
    }

    fn end_line(&mut self) {
        let empty = self.line_len == 0 || (self.line_len == 1 && self.first == b'\r');
        if empty {
            // The empty line ends the head (one before the request line is skipped, as
            // hyper does). Without either header no body follows: the next bytes are the
            // next head.
            if !self.request_line {
                if self.content_length || self.transfer_encoding {
                    self.done = true;
                } else {
                    self.begin(self.index.wrapping_add(1));
                    return;
                }
            }
        } else if self.request_line {
            self.request_line = false;
        } else if self.candidate {
            let prefix = &self.prefix[..self.prefix_len];
            let starts = |name: &[u8]| {
                prefix.len() >= name.len() && prefix[..name.len()].eq_ignore_ascii_case(name)
            };
            self.content_length |= starts(CONTENT_LENGTH);
            self.transfer_encoding |= starts(TRANSFER_ENCODING);
            if self.content_length && self.transfer_encoding {
                self.conflict = self.conflict.or(Some(self.index));
            }
        }
        self.line_len = 0;
        self.prefix_len = 0;
        self.candidate = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first conflicting head of `heads`, fed in pieces of `size` bytes.
    fn conflict(heads: &[u8], size: usize) -> Option<u32> {
        let mut scan = FramingScan::idle();
        scan.begin(0);
        for chunk in heads.chunks(size) {
            scan.feed(chunk);
        }
        scan.take_conflict()
    }

    #[test]
    fn both_headers_are_found_however_the_head_is_split() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTRANSFER-ENCODING: chunked\r\n\r\n";
        for size in 1..head.len() {
            assert_eq!(conflict(head, size), Some(0), "split every {size} bytes");
        }
        let one = b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(conflict(one, 7), None);
        let other = b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ncontent-type: x\r\n\r\n";
        assert_eq!(conflict(other, 3), None);
    }

    #[test]
    fn the_scan_stops_at_the_end_of_the_head() {
        // The body says the names too: not headers.
        let head =
            b"POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(conflict(head, head.len()), None);
        // Neither the request line nor a header value counts.
        let line = b"GET /transfer-encoding:x HTTP/1.1\r\nx: content-length: 1\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(conflict(line, 5), None);
        // Nothing is scanned before a head begins.
        let mut idle = FramingScan::idle();
        idle.feed(b"GET / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(idle.take_conflict(), None);
    }

    #[test]
    fn pipelined_heads_are_numbered_until_a_body_follows() {
        let heads = b"GET /1 HTTP/1.1\r\nhost: a\r\n\r\n\
            GET /2 HTTP/1.1\r\nhost: a\r\n\r\n\
            POST /3 HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n";
        for size in [1, 7, heads.len()] {
            assert_eq!(conflict(heads, size), Some(2), "split every {size} bytes");
        }
        // A body follows the first head: what comes after it is the codec's to find.
        let body = b"POST /1 HTTP/1.1\r\ncontent-length: 62\r\n\r\n\
            GET /2 HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(conflict(body, body.len()), None);
        // A scan goes on across reads into the next head, and keeps its numbering.
        let mut scan = FramingScan::idle();
        scan.begin(4);
        scan.feed(b"GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\ncontent-length: 3\r\n");
        assert!(!scan.is_done());
        scan.feed(b"transfer-encoding: chunked\r\n\r\n");
        assert!(scan.is_done());
        assert_eq!(scan.take_conflict(), Some(5));
        assert_eq!(scan.take_conflict(), None, "taken once");
    }
}
