//! Envoy's payload matcher for TCP checks: every expected block must be found in the bytes
//! received, in order, each after the end of the previous one (not necessarily adjacent).

/// Whether `received` contains every block of `expected`, in order.
pub(crate) fn matches(expected: &[Vec<u8>], received: &[u8]) -> bool {
    let mut from = 0;
    for block in expected {
        if block.is_empty() {
            continue;
        }
        let Some(rest) = received.get(from..) else {
            return false;
        };
        match find(rest, block) {
            Some(at) => from += at + block.len(),
            None => return false,
        }
    }
    true
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_match_in_order_with_gaps() {
        let expected = vec![b"HTTP/1.1".to_vec(), b"200".to_vec()];
        assert!(matches(&expected, b"HTTP/1.1 200 OK\r\n"));
        assert!(!matches(&expected, b"HTTP/1.1 503 Service Unavailable\r\n"));
        // Order matters.
        assert!(!matches(&expected, b"200 HTTP/1.1"));
        // Not yet everything: a later read may complete it.
        assert!(!matches(&expected, b"HTTP/1."));
    }

    #[test]
    fn repeated_blocks_need_separate_occurrences() {
        let expected = vec![b"ab".to_vec(), b"ab".to_vec()];
        assert!(!matches(&expected, b"xab"));
        assert!(matches(&expected, b"abab"));
        assert!(matches(&[], b""));
    }
}
