//! The compile-time check behind `model_coverage.rs` in the data plane and the root crate:
//! where each field of a model type is acted on. A type is taken apart without `..`, so a
//! field added to the model does not build until it is listed with the files that act on it;
//! and each listed file must name the field, so the list cannot drift from the code. A field
//! nothing acts on must say why (`unread`); the model should then reject it or list it as
//! harmless (`IGNORED_FIELDS`) instead of keeping it.

/// Whether `source` uses `field` as a field: a whole identifier, outside comments and string
/// literals, read (`x.field`, not a method call `x.field()`) or taken apart or built
/// (`field: …`, `field,` or `field }` directly inside braces, not a declaration `pub field:`
/// or `let field:`).
#[doc(hidden)]
pub const fn names(source: &str, field: &str) -> bool {
    let (source, field) = (source.as_bytes(), field.as_bytes());
    // The innermost open bracket: a pattern or literal is directly inside `{`.
    let mut brackets = [0u8; 64];
    let mut depth = 0;
    let mut at = 0;
    while at < source.len() {
        let b = source[at];
        if b == b'/' && at + 1 < source.len() && source[at + 1] == b'/' {
            at = line_end(source, at);
        } else if b == b'/' && at + 1 < source.len() && source[at + 1] == b'*' {
            at = block_comment_end(source, at);
        } else if b == b'(' || b == b'[' || b == b'{' {
            if depth < brackets.len() {
                brackets[depth] = b;
            }
            depth += 1;
            at += 1;
        } else if b == b')' || b == b']' || b == b'}' {
            depth = depth.saturating_sub(1);
            at += 1;
        } else if b == b'"' {
            at = string_end(source, at);
        } else if b == b'\'' && is_char_literal(source, at) {
            at = char_literal_end(source, at);
        } else if word(b) {
            let end = word_end(source, at);
            let raw = same(source, at, end, b"r") || same(source, at, end, b"br");
            if raw && opens_raw_string(source, end) {
                at = raw_string_end(source, end);
                continue;
            }
            let in_braces = depth > 0 && depth <= brackets.len() && brackets[depth - 1] == b'{';
            if same(source, at, end, field) && used_as_field(source, at, end, in_braces) {
                return true;
            }
            at = end;
        } else {
            at += 1;
        }
    }
    false
}

const fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const fn word_end(source: &[u8], mut at: usize) -> usize {
    while at < source.len() && word(source[at]) {
        at += 1;
    }
    at
}

/// Past the `*/` closing the block comment at `at` (nested ones included).
const fn block_comment_end(source: &[u8], mut at: usize) -> usize {
    let mut depth = 0;
    while at + 1 < source.len() {
        if source[at] == b'/' && source[at + 1] == b'*' {
            depth += 1;
            at += 2;
        } else if source[at] == b'*' && source[at + 1] == b'/' {
            depth -= 1;
            at += 2;
            if depth == 0 {
                return at;
            }
        } else {
            at += 1;
        }
    }
    source.len()
}

const fn line_end(source: &[u8], mut at: usize) -> usize {
    while at < source.len() && source[at] != b'\n' {
        at += 1;
    }
    at
}

/// Past the string literal opening at `at` (raw strings without `"` inside included).
const fn string_end(source: &[u8], mut at: usize) -> usize {
    at += 1;
    while at < source.len() {
        match source[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    at
}

/// `#`s then `"` at `at` (`r#type` is a raw identifier, not a string).
const fn opens_raw_string(source: &[u8], mut at: usize) -> bool {
    while at < source.len() && source[at] == b'#' {
        at += 1;
    }
    at < source.len() && source[at] == b'"'
}

/// Past the raw string whose `#`s or `"` start at `at`: up to `"` and as many `#`s.
const fn raw_string_end(source: &[u8], mut at: usize) -> usize {
    let mut hashes = 0;
    while at < source.len() && source[at] == b'#' {
        hashes += 1;
        at += 1;
    }
    at += 1;
    while at < source.len() {
        if source[at] == b'"' {
            let mut closing = 0;
            while closing < hashes
                && at + 1 + closing < source.len()
                && source[at + 1 + closing] == b'#'
            {
                closing += 1;
            }
            if closing == hashes {
                return at + 1 + hashes;
            }
        }
        at += 1;
    }
    at
}

/// `'x'` or an escape such as `'\n'`, `'\x41'`, `'\u{1F600}'` (a lifetime such as `'a` is
/// not).
const fn is_char_literal(source: &[u8], at: usize) -> bool {
    (at + 2 < source.len() && source[at + 1] != b'\\' && source[at + 2] == b'\'')
        || (at + 1 < source.len() && source[at + 1] == b'\\')
}

const fn char_literal_end(source: &[u8], at: usize) -> usize {
    if source[at + 1] != b'\\' {
        return at + 3;
    }
    // Past the escaped character, then to the closing quote.
    let mut end = at + 3;
    while end < source.len() && source[end] != b'\'' {
        end += 1;
    }
    end + 1
}

const fn same(source: &[u8], start: usize, end: usize, field: &[u8]) -> bool {
    if end - start != field.len() {
        return false;
    }
    let mut i = 0;
    while i < field.len() {
        if source[start + i] != field[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn used_as_field(source: &[u8], start: usize, end: usize, in_braces: bool) -> bool {
    let mut next = end;
    while next < source.len() && source[next].is_ascii_whitespace() {
        next += 1;
    }
    let after = if next < source.len() { source[next] } else { 0 };
    let path = after == b':' && next + 1 < source.len() && source[next + 1] == b':';
    let read = start > 0 && source[start - 1] == b'.' && after != b'(';
    let pattern = in_braces
        && !declared(source, start)
        && ((after == b':' && !path) || after == b',' || after == b'}');
    read || pattern
}

/// Whether the identifier at `start` is declared, not used: after `pub`, `pub(…)` or `let`
/// (`let mut` too).
const fn declared(source: &[u8], start: usize) -> bool {
    let (word_start, word_end) = word_before(source, start);
    if word_end > 0 && source[word_end - 1] == b')' {
        return true;
    }
    if same(source, word_start, word_end, b"pub") || same(source, word_start, word_end, b"let") {
        return true;
    }
    if same(source, word_start, word_end, b"mut") {
        let (before_start, before_end) = word_before(source, word_start);
        return same(source, before_start, before_end, b"let");
    }
    false
}

/// The word (or the one character that is not one) before `at`, past whitespace.
const fn word_before(source: &[u8], at: usize) -> (usize, usize) {
    let mut end = at;
    while end > 0 && source[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && word(source[start - 1]) {
        start -= 1;
    }
    if start == end && end > 0 {
        start = end - 1;
    }
    (start, end)
}

/// `acted_on!(Type { field: ["file.rs", "other.rs"], other: [unread: "why"] })`, or
/// `acted_on!(Enum::Variant { .. })` for a struct-like variant: the files (relative to the
/// file that invokes the macro) that act on each field.
#[macro_export]
macro_rules! acted_on {
    ($Enum:ident :: $Variant:ident { $($field:ident: [$($how:tt)*]),* $(,)? }) => {
        const _: fn(&$Enum) -> bool = |value| matches!(value, $Enum::$Variant { $($field: _,)* });
        $($crate::acted_on!(@field $Variant $field $($how)*);)*
    };
    ($Type:ident { $($field:ident: [$($how:tt)*]),* $(,)? }) => {
        const _: fn(&$Type) = |value| {
            let $Type { $($field: _,)* } = value;
        };
        $($crate::acted_on!(@field $Type $field $($how)*);)*
    };
    (@field $Type:ident $field:ident unread: $why:literal) => {};
    (@field $Type:ident $field:ident $($file:literal),+ $(,)?) => {
        $(
            const _: () = assert!(
                $crate::coverage::names(include_str!($file), stringify!($field)),
                concat!($file, " does not name ", stringify!($Type), ".", stringify!($field)),
            );
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::names;

    #[test]
    fn a_field_is_named_only_as_a_whole_identifier() {
        assert!(names("let x = c.max_requests;", "max_requests"));
        assert!(!names("c.max_requests_per_connection", "max_requests"));
        assert!(!names("c.total_max_requests", "max_requests"));
        assert!(!names("", "max_requests"));
    }

    #[test]
    fn a_field_is_named_only_where_code_uses_it_as_one() {
        // Read, taken apart, or built.
        assert!(names(
            "let Limits { max_requests, .. } = l;",
            "max_requests"
        ));
        assert!(names("let Limits { max_requests } = l;", "max_requests"));
        assert!(names("Limits { max_requests: 3 }", "max_requests"));
        assert!(names("c\n    .max_requests\n    .get()", "max_requests"));
        // Not in comments, strings, method calls, paths or as a plain word.
        assert!(!names("// max_requests: the limit", "max_requests"));
        assert!(!names(r#"let s = "max_requests: x";"#, "max_requests"));
        assert!(!names("c.default()", "default"));
        assert!(!names("T::default", "default"));
        assert!(!names("let default = 3;", "default"));
        assert!(!names(
            r##"let s = r#"{"max_requests": 1}"#;"##,
            "max_requests"
        ));
        assert!(names(
            r##"let s = r#"a "quoted" b"#; c.max_requests"##,
            "max_requests"
        ));
        assert!(names("let r#type = 1; c.max_requests", "max_requests"));
        assert!(!names(
            "/* c.max_requests /* nested */ still */ x",
            "max_requests"
        ));
        assert!(names(r"let q = '\u{22}'; c.max_requests", "max_requests"));
        // Declarations and parameters are not uses.
        assert!(!names("struct L { pub max_requests: u32 }", "max_requests"));
        assert!(!names(
            "struct L { pub(crate) max_requests: u32 }",
            "max_requests"
        ));
        assert!(!names("fn f(a: u32, max_requests: u32) {}", "max_requests"));
        assert!(!names("{ let max_requests: u32 = 1; }", "max_requests"));
        assert!(!names("{ let mut max_requests: u32 = 1; }", "max_requests"));
        assert!(names(
            "match l { L { mut max_requests, .. } => {} }",
            "max_requests"
        ));
        // A char literal of a quote does not open a string.
        assert!(names("let q = '\"'; c.default", "default"));
        assert!(names("fn f<'a>(c: &'a C) -> u32 { c.max }", "max"));
    }
}
