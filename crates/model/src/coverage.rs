//! The compile-time check behind `model_coverage.rs` in the data plane and the root crate:
//! where each field of a model type is acted on. A type is taken apart without `..`, so a
//! field added to the model does not build until it is listed with the files that act on it;
//! and each listed file must name the field, so the list cannot drift from the code. A field
//! nothing acts on must say why (`unread`); the model should then reject it or list it as
//! harmless (`IGNORED_FIELDS`) instead of keeping it.

/// Whether `source` has `field` as a whole identifier.
#[doc(hidden)]
pub const fn names(source: &str, field: &str) -> bool {
    const fn word(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_'
    }
    let (source, field) = (source.as_bytes(), field.as_bytes());
    let mut at = 0;
    while at + field.len() <= source.len() {
        let mut same = true;
        let mut i = 0;
        while i < field.len() {
            if source[at + i] != field[i] {
                same = false;
                break;
            }
            i += 1;
        }
        let before = at == 0 || !word(source[at - 1]);
        let after = at + field.len() == source.len() || !word(source[at + field.len()]);
        if same && before && after {
            return true;
        }
        at += 1;
    }
    false
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
        assert!(names("max_requests", "max_requests"));
        assert!(!names("c.max_requests_per_connection", "max_requests"));
        assert!(!names("c.total_max_requests", "max_requests"));
        assert!(!names("", "max_requests"));
    }
}
