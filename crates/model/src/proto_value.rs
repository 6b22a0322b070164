//! Conversion of protobuf well-known values (Duration, wrappers, Percent, enums, Any, header
//! strings) into plain Rust values, with the PGV checks Envoy applies to them.

use std::time::Duration;

use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, Percent, fractional_percent};
use envoy_types::pb::google::protobuf::{
    Any, BoolValue, Duration as PbDuration, UInt32Value, UInt64Value,
};

use crate::error::{Result, ValidationError};

/// The largest Duration protobuf allows (10 000 years), as Envoy's `DurationUtil` checks.
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

/// A `google.protobuf.Duration` that must be a valid, non-negative duration.
pub(crate) fn duration(value: &PbDuration, field: &str) -> Result<Duration> {
    let PbDuration { seconds, nanos } = *value;
    if seconds < 0 || nanos < 0 {
        return Err(ValidationError::new(field, "must not be negative"));
    }
    if seconds > MAX_DURATION_SECONDS || nanos >= 1_000_000_000 {
        return Err(ValidationError::new(field, "duration out of range"));
    }
    // Both checked non-negative and in range above, so the casts are lossless.
    Ok(Duration::new(seconds as u64, nanos as u32))
}

/// An optional Duration (PGV `gte {}`).
pub(crate) fn opt_duration(value: &Option<PbDuration>, field: &str) -> Result<Option<Duration>> {
    value.as_ref().map(|d| duration(d, field)).transpose()
}

/// An optional Duration that must be strictly positive when set (PGV `gt {}`).
pub(crate) fn opt_positive_duration(
    value: &Option<PbDuration>,
    field: &str,
) -> Result<Option<Duration>> {
    match opt_duration(value, field)? {
        Some(d) if d.is_zero() => Err(ValidationError::new(field, "must be greater than 0s")),
        other => Ok(other),
    }
}

/// An optional positive Duration with a default when unset.
pub(crate) fn positive_duration_or(
    value: &Option<PbDuration>,
    field: &str,
    default: Duration,
) -> Result<Duration> {
    Ok(opt_positive_duration(value, field)?.unwrap_or(default))
}

/// A required positive Duration (PGV `required: true, gt {}`).
pub(crate) fn required_positive_duration(
    value: &Option<PbDuration>,
    field: &str,
) -> Result<Duration> {
    opt_positive_duration(value, field)?.ok_or_else(|| ValidationError::required(field))
}

/// A timeout where unset means `default` and an explicit 0 disables it (`None`), as Envoy's
/// `PROTOBUF_GET_MS_OR_DEFAULT` followed by "0 = disabled".
pub(crate) fn timeout_or(
    value: &Option<PbDuration>,
    field: &str,
    default: Option<Duration>,
) -> Result<Option<Duration>> {
    Ok(match opt_duration(value, field)? {
        None => default,
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
    })
}

pub(crate) fn u32_or(value: &Option<UInt32Value>, default: u32) -> u32 {
    value.as_ref().map_or(default, |v| v.value)
}

pub(crate) fn u64_or(value: &Option<UInt64Value>, default: u64) -> u64 {
    value.as_ref().map_or(default, |v| v.value)
}

pub(crate) fn bool_or(value: &Option<BoolValue>, default: bool) -> bool {
    value.as_ref().map_or(default, |v| v.value)
}

/// An optional UInt32Value with an inclusive range rule.
pub(crate) fn u32_in(
    value: &Option<UInt32Value>,
    field: &str,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
) -> Result<u32> {
    let v = u32_or(value, default);
    if value.is_some() && !range.contains(&v) {
        return Err(out_of_range(field, &range));
    }
    Ok(v)
}

pub(crate) fn out_of_range<T: std::fmt::Display>(
    field: &str,
    range: &std::ops::RangeInclusive<T>,
) -> ValidationError {
    ValidationError::new(
        field,
        format!("must be between {} and {}", range.start(), range.end()),
    )
}

/// A `type.v3.Percent` (PGV: 0 ≤ value ≤ 100; NaN fails the rule too).
pub(crate) fn percent_or(value: &Option<Percent>, field: &str, default: f64) -> Result<f64> {
    match value {
        None => Ok(default),
        Some(Percent { value }) if (0.0..=100.0).contains(value) => Ok(*value),
        Some(_) => Err(ValidationError::new(
            format!("{field}.value"),
            "must be between 0 and 100",
        )),
    }
}

/// A `type.v3.FractionalPercent` as parts per million, capped at 100 % as Envoy does.
pub(crate) fn fractional_per_million(value: &FractionalPercent, field: &str) -> Result<u32> {
    use fractional_percent::DenominatorType;
    let FractionalPercent {
        numerator,
        denominator,
    } = *value;
    let scale = match DenominatorType::try_from(denominator) {
        Ok(DenominatorType::Hundred) => 10_000,
        Ok(DenominatorType::TenThousand) => 100,
        Ok(DenominatorType::Million) => 1,
        Err(_) => return Err(unknown_enum(&format!("{field}.denominator"), denominator)),
    };
    Ok(numerator.saturating_mul(scale).min(1_000_000))
}

/// A proto enum value outside the defined set (PGV `defined_only`).
pub(crate) fn unknown_enum(field: &str, value: i32) -> ValidationError {
    ValidationError::new(field, format!("unknown enum value {value}"))
}

/// Decodes an enum field, rejecting undefined values.
pub(crate) fn enum_value<E: TryFrom<i32>>(value: i32, field: &str) -> Result<E> {
    E::try_from(value).map_err(|_| unknown_enum(field, value))
}

/// The message name of an `Any` (the part of its type URL after the last `/`).
pub(crate) fn any_type_name(any: &Any) -> &str {
    any.type_url
        .rsplit_once('/')
        .map_or(any.type_url.as_str(), |(_, name)| name)
}

/// Decodes an `Any` that we already identified as `M` by its type URL.
pub(crate) fn decode_any<M: prost::Message + Default>(any: &Any, field: &str) -> Result<M> {
    M::decode(any.value.as_slice())
        .map_err(|e| ValidationError::new(field, format!("cannot decode {}: {e}", any.type_url)))
}

/// Envoy's `HTTP_HEADER_NAME` rule with `strict: false`: no NUL, CR or LF.
pub(crate) fn header_name(value: &str, field: &str) -> Result<String> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    header_value(value, field)?;
    // Envoy keeps header names lower case (`Http::LowerCaseString`).
    Ok(value.to_ascii_lowercase())
}

/// [`header_name`], kept as the `http` crate's name (refused if that cannot hold it), for names
/// the data plane uses on every request.
pub(crate) fn parsed_header_name(value: &str, field: &str) -> Result<http::HeaderName> {
    let name = header_name(value, field)?;
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ValidationError::new(field, "not a valid header name"))
}

/// Envoy's `HTTP_HEADER_VALUE` rule with `strict: false`: no NUL, CR or LF.
pub(crate) fn header_value(value: &str, field: &str) -> Result<()> {
    if value.contains(['\0', '\r', '\n']) {
        return Err(ValidationError::new(
            field,
            "must not contain NUL, CR or LF characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |seconds, nanos| PbDuration { seconds, nanos };
        assert_eq!(duration(&d(1, 5), "f"), Ok(Duration::new(1, 5)));
        assert_eq!(
            duration(&d(-1, 0), "f").map_err(|e| e.to_string()),
            Err("f: must not be negative".into())
        );
        assert_eq!(
            duration(&d(0, -1), "f").map_err(|e| e.to_string()),
            Err("f: must not be negative".into())
        );
        assert_eq!(
            duration(&d(i64::MAX, 0), "f").map_err(|e| e.to_string()),
            Err("f: duration out of range".into())
        );
        assert_eq!(
            duration(&d(0, 1_000_000_000), "f").map_err(|e| e.to_string()),
            Err("f: duration out of range".into())
        );
        assert_eq!(
            opt_positive_duration(&Some(d(0, 0)), "f").map_err(|e| e.to_string()),
            Err("f: must be greater than 0s".into())
        );
        assert_eq!(
            timeout_or(&Some(d(0, 0)), "f", Some(Duration::from_secs(1))),
            Ok(None)
        );
        assert_eq!(
            timeout_or(&None, "f", Some(Duration::from_secs(1))),
            Ok(Some(Duration::from_secs(1)))
        );
    }

    #[test]
    fn percents() {
        assert_eq!(percent_or(&None, "p", 50.0), Ok(50.0));
        assert_eq!(
            percent_or(&Some(Percent { value: 12.5 }), "p", 50.0),
            Ok(12.5)
        );
        assert!(percent_or(&Some(Percent { value: f64::NAN }), "p", 50.0).is_err());
        assert_eq!(
            percent_or(&Some(Percent { value: 101.0 }), "p", 50.0).map_err(|e| e.to_string()),
            Err("p.value: must be between 0 and 100".into())
        );
        let frac = FractionalPercent {
            numerator: u32::MAX,
            denominator: 0,
        };
        assert_eq!(fractional_per_million(&frac, "f"), Ok(1_000_000));
    }
}
