//! String, header and query-parameter matchers (`type.matcher.v3`, `route.v3.HeaderMatcher`),
//! with Envoy's matching semantics.

use envoy_types::pb::envoy::config::route::v3::{
    self as route, header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    self as matcher, regex_matcher::EngineType, string_matcher::MatchPattern,
};
use envoy_types::pb::envoy::r#type::v3::Int64Range;

use crate::error::{Result, ValidationError, Within};
use crate::proto_value::header_name;

/// Upper bound on a compiled regex, so a hostile pattern cannot take the proxy's memory. Envoy
/// bounds RE2 program size instead; the units differ, the purpose is the same.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A compiled RE2-compatible regex that must match the whole input, as Envoy's `safe_regex`.
#[derive(Debug, Clone)]
pub struct FullRegex {
    /// The pattern as configured (shown in dumps and errors).
    pattern: String,
    /// The pattern anchored at both ends.
    anchored: regex::Regex,
    /// The pattern unanchored, for substitutions (`regex_rewrite`) that replace every match.
    unanchored: regex::Regex,
}

impl FullRegex {
    pub(crate) fn new(pattern: &str, field: &str) -> Result<Self> {
        if pattern.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        let build = |p: &str| {
            regex::RegexBuilder::new(p)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| ValidationError::new(field, format!("invalid regex: {e}")))
        };
        Ok(Self {
            pattern: pattern.to_string(),
            anchored: build(&format!("^(?:{pattern})$"))?,
            unanchored: build(pattern)?,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole input matches.
    pub fn is_full_match(&self, input: &str) -> bool {
        self.anchored.is_match(input)
    }

    /// Replaces every match with `substitution` (`\1`-style groups as in RE2, converted).
    pub fn replace_all<'a>(&self, input: &'a str, substitution: &str) -> std::borrow::Cow<'a, str> {
        self.unanchored.replace_all(input, substitution)
    }
}

impl PartialEq for FullRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

/// `type.matcher.v3.RegexMatcher` (the engine choice is deprecated and ignored, as in Envoy).
pub(crate) fn regex_matcher(proto: &matcher::RegexMatcher) -> Result<FullRegex> {
    let matcher::RegexMatcher { regex, engine_type } = proto;
    // `google_re2` only tunes program-size limits; REGEX_SIZE_LIMIT plays that role here.
    let _: &Option<EngineType> = engine_type;
    FullRegex::new(regex, "regex")
}

/// A `type.matcher.v3.RegexMatchAndSubstitute` (`regex_rewrite`).
#[derive(Debug, Clone, PartialEq)]
pub struct RegexSubstitution {
    pub pattern: FullRegex,
    /// RE2 substitution with `\N` groups converted to the `${N}` syntax of the `regex` crate.
    pub substitution: String,
}

pub(crate) fn regex_substitution(
    proto: &matcher::RegexMatchAndSubstitute,
) -> Result<RegexSubstitution> {
    let matcher::RegexMatchAndSubstitute {
        pattern,
        substitution,
    } = proto;
    let pattern = match pattern {
        Some(p) => regex_matcher(p).within("pattern")?,
        None => return Err(ValidationError::required("pattern")),
    };
    crate::proto_value::header_value(substitution, "substitution")?;
    Ok(RegexSubstitution {
        pattern,
        substitution: re2_substitution(substitution),
    })
}

/// RE2 writes groups as `\1`; the `regex` crate as `${1}` and treats `$` specially.
fn re2_substitution(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(d) if d.is_ascii_digit() => {
                    out.push_str("${");
                    out.push(*d);
                    out.push('}');
                    chars.next();
                }
                Some('\\') => {
                    out.push('\\');
                    chars.next();
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// `type.matcher.v3.StringMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub struct StringMatcher {
    pub pattern: StringPattern,
    /// ASCII case-insensitive (no effect on `Regex`, as in Envoy).
    pub ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StringPattern {
    /// The pattern strings are stored lower-cased when `ignore_case` is set.
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(FullRegex),
}

impl StringMatcher {
    pub fn matches(&self, value: &str) -> bool {
        let lowered;
        let value = if self.ignore_case && !matches!(self.pattern, StringPattern::Regex(_)) {
            lowered = value.to_ascii_lowercase();
            lowered.as_str()
        } else {
            value
        };
        match &self.pattern {
            StringPattern::Exact(p) => value == p,
            StringPattern::Prefix(p) => value.starts_with(p.as_str()),
            StringPattern::Suffix(p) => value.ends_with(p.as_str()),
            StringPattern::Contains(p) => value.contains(p.as_str()),
            StringPattern::Regex(r) => r.is_full_match(value),
        }
    }

    pub fn from_proto(proto: &matcher::StringMatcher) -> Result<Self> {
        let matcher::StringMatcher {
            ignore_case,
            match_pattern,
        } = proto;
        let fold = |s: &str| {
            if *ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        let non_empty = |s: &str, field: &str| {
            if s.is_empty() {
                Err(ValidationError::new(field, "must not be empty"))
            } else {
                Ok(fold(s))
            }
        };
        let pattern = match match_pattern {
            Some(MatchPattern::Exact(s)) => StringPattern::Exact(fold(s)),
            Some(MatchPattern::Prefix(s)) => StringPattern::Prefix(non_empty(s, "prefix")?),
            Some(MatchPattern::Suffix(s)) => StringPattern::Suffix(non_empty(s, "suffix")?),
            Some(MatchPattern::Contains(s)) => StringPattern::Contains(non_empty(s, "contains")?),
            Some(MatchPattern::SafeRegex(r)) => {
                StringPattern::Regex(regex_matcher(r).within("safe_regex")?)
            }
            Some(MatchPattern::Custom(_)) => return Err(ValidationError::unsupported("custom")),
            None => {
                return Err(ValidationError::new(
                    "match_pattern",
                    "one of exact, prefix, suffix, contains or safe_regex is required",
                ));
            }
        };
        Ok(Self {
            pattern,
            ignore_case: *ignore_case,
        })
    }
}

/// `route.v3.HeaderMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatcher {
    /// Lower case.
    pub name: String,
    pub rule: HeaderMatchRule,
    pub invert_match: bool,
    /// Match a missing header as if it were present with an empty value.
    pub treat_missing_header_as_empty: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HeaderMatchRule {
    /// `present_match: true` (or no rule at all): the header is present; `false`: absent.
    Present(bool),
    /// The value parses as an integer in `[start, end)`.
    Range {
        start: i64,
        end: i64,
    },
    Value(StringMatcher),
}

impl HeaderMatcher {
    pub(crate) fn from_proto(proto: &route::HeaderMatcher) -> Result<Self> {
        let route::HeaderMatcher {
            name,
            invert_match,
            treat_missing_header_as_empty,
            header_match_specifier,
        } = proto;
        let name = header_name(name, "name")?;
        let string = |pattern: StringPattern| {
            HeaderMatchRule::Value(StringMatcher {
                pattern,
                ignore_case: false,
            })
        };
        let non_empty = |s: &String, field: &str| {
            if s.is_empty() {
                Err(ValidationError::new(field, "must not be empty"))
            } else {
                Ok(s.clone())
            }
        };
        let rule = match header_match_specifier {
            None => HeaderMatchRule::Present(true),
            Some(HeaderMatchSpecifier::ExactMatch(s)) => string(StringPattern::Exact(s.clone())),
            Some(HeaderMatchSpecifier::PrefixMatch(s)) => {
                string(StringPattern::Prefix(non_empty(s, "prefix_match")?))
            }
            Some(HeaderMatchSpecifier::SuffixMatch(s)) => {
                string(StringPattern::Suffix(non_empty(s, "suffix_match")?))
            }
            Some(HeaderMatchSpecifier::ContainsMatch(s)) => {
                string(StringPattern::Contains(non_empty(s, "contains_match")?))
            }
            Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => string(StringPattern::Regex(
                regex_matcher(r).within("safe_regex_match")?,
            )),
            Some(HeaderMatchSpecifier::RangeMatch(Int64Range { start, end })) => {
                if start >= end {
                    return Err(ValidationError::new(
                        "range_match",
                        "start must be less than end",
                    ));
                }
                HeaderMatchRule::Range {
                    start: *start,
                    end: *end,
                }
            }
            Some(HeaderMatchSpecifier::PresentMatch(present)) => HeaderMatchRule::Present(*present),
            Some(HeaderMatchSpecifier::StringMatch(m)) => {
                HeaderMatchRule::Value(StringMatcher::from_proto(m).within("string_match")?)
            }
        };
        Ok(Self {
            name,
            rule,
            invert_match: *invert_match,
            treat_missing_header_as_empty: *treat_missing_header_as_empty,
        })
    }

    /// Envoy's `HeaderUtility::matchHeaders` for one matcher. `value` is the header's value
    /// (multiple values joined with `,`), `None` when absent.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let value = match value {
            None if self.treat_missing_header_as_empty => Some(""),
            other => other,
        };
        let matched = match (&self.rule, value) {
            (HeaderMatchRule::Present(present), v) => v.is_some() == *present,
            (_, None) => return false,
            (HeaderMatchRule::Range { start, end }, Some(v)) => {
                v.parse::<i64>().is_ok_and(|n| *start <= n && n < *end)
            }
            (HeaderMatchRule::Value(m), Some(v)) => m.matches(v),
        };
        matched != self.invert_match
    }
}

/// `route.v3.QueryParameterMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryParameterMatcher {
    pub name: String,
    /// `None`: the parameter must be present (with any value).
    pub value: Option<StringMatcher>,
}

impl QueryParameterMatcher {
    pub(crate) fn from_proto(proto: &route::QueryParameterMatcher) -> Result<Self> {
        let route::QueryParameterMatcher {
            name,
            query_parameter_match_specifier,
        } = proto;
        if name.is_empty() || name.len() > 1024 {
            return Err(ValidationError::new("name", "must be 1 to 1024 bytes long"));
        }
        let value = match query_parameter_match_specifier {
            Some(QueryParameterMatchSpecifier::StringMatch(m)) => {
                Some(StringMatcher::from_proto(m).within("string_match")?)
            }
            // Envoy treats `present_match: false` like no specifier: presence is required.
            Some(QueryParameterMatchSpecifier::PresentMatch(_)) | None => None,
        };
        Ok(Self {
            name: name.clone(),
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re2_substitutions_convert() {
        assert_eq!(re2_substitution(r"/\1/x"), "/${1}/x");
        assert_eq!(re2_substitution(r"a$b\\c"), r"a$$b\c");
    }

    #[test]
    fn regex_must_match_whole_input() {
        let r = FullRegex::new("/api/[0-9]+", "regex").expect("valid regex");
        assert!(r.is_full_match("/api/12"));
        assert!(!r.is_full_match("/api/12/x"));
        assert!(!r.is_full_match("x/api/12"));
        assert_eq!(
            FullRegex::new("(", "regex").map_err(|e| e.path),
            Err("regex".to_string())
        );
    }

    #[test]
    fn string_matcher_ignore_case() {
        let m = StringMatcher {
            pattern: StringPattern::Prefix("/abc".into()),
            ignore_case: true,
        };
        assert!(m.matches("/ABCdef"));
    }
}
