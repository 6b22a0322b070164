//! A request head with both `Content-Length` and `Transfer-Encoding`, which Envoy answers
//! 400 (RFC 9112 §6.3 lets a server refuse it; it is the classic smuggling vector). hyper
//! keeps `Transfer-Encoding`, drops `Content-Length` before the request reaches us and closes
//! the connection after the response, so nothing can be smuggled; but to answer as Envoy
//! does, the HTTP/1.1 connection's IO (`head_timer.rs`) scans each head's line starts for
//! the two names as its bytes pass. Only lines starting with `c` or `t` are looked at, so a
//! head costs a `memchr` per line and a few compares.
//!
//! A head read in the same chunk as the end of the previous one (pipelining) is not scanned:
//! hyper handles it as above (chunked wins, the connection closes), which is safe, but it is
//! not refused.

/// Put in the extensions of a request whose head had both headers: refused (400, `DPE`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FramingConflict;

/// The longest name looked for, with its colon.
const KEEP: usize = 18;
const CONTENT_LENGTH: &[u8] = b"content-length:";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding:";

/// One head's scan.
#[derive(Debug, Default)]
pub(crate) struct FramingScan {
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

    /// A head begins with the next bytes.
    pub(crate) fn begin(&mut self) {
        *self = FramingScan {
            request_line: true,
            ..Self::default()
        };
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

    /// Whether the head had both headers.
    pub(crate) fn conflict(&self) -> bool {
        self.content_length && self.transfer_encoding
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
            // hyper does).
            self.done = !self.request_line;
        } else if self.request_line {
            self.request_line = false;
        } else if self.candidate {
            let prefix = &self.prefix[..self.prefix_len];
            let starts = |name: &[u8]| {
                prefix.len() >= name.len() && prefix[..name.len()].eq_ignore_ascii_case(name)
            };
            self.content_length |= starts(CONTENT_LENGTH);
            self.transfer_encoding |= starts(TRANSFER_ENCODING);
        }
        self.line_len = 0;
        self.prefix_len = 0;
        self.candidate = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `head` fed in `chunks` pieces of `size` bytes.
    fn scanned(head: &[u8], size: usize) -> FramingScan {
        let mut scan = FramingScan::idle();
        scan.begin();
        for chunk in head.chunks(size) {
            scan.feed(chunk);
        }
        scan
    }

    #[test]
    fn both_headers_are_found_however_the_head_is_split() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTRANSFER-ENCODING: chunked\r\n\r\n";
        for size in 1..head.len() {
            assert!(scanned(head, size).conflict(), "split every {size} bytes");
        }
        let one = b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(!scanned(one, 7).conflict());
        let other = b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ncontent-type: x\r\n\r\n";
        assert!(!scanned(other, 3).conflict());
    }

    #[test]
    fn the_scan_stops_at_the_end_of_the_head() {
        // The body says the names too: not headers.
        let head =
            b"POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(!scanned(head, head.len()).conflict());
        // Neither the request line nor a header value counts.
        let line = b"GET /transfer-encoding:x HTTP/1.1\r\nx: content-length: 1\r\ncontent-length: 0\r\n\r\n";
        assert!(!scanned(line, 5).conflict());
        // Nothing is scanned before a head begins.
        let mut idle = FramingScan::idle();
        idle.feed(b"GET / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n");
        assert!(!idle.conflict());
    }
}
