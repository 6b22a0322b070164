//! The `strftime` form of `%START_TIME(...)%`, as Envoy's `DateFormatter` reads it: the usual
//! conversions (always in UTC, as Envoy prints access-log times), `%s` for seconds since the
//! epoch and `%f` / `%1f` … `%9f` for fractions of a second. A conversion we do not print is
//! refused by name rather than written verbatim.

use crate::error::{Result, ValidationError};

/// A parsed time format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat(pub Vec<TimePart>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimePart {
    Text(String),
    /// `%Y`: 2026.
    Year,
    /// `%y`: 26.
    YearOfCentury,
    /// `%m`: 01 to 12.
    Month,
    /// `%d`: 01 to 31.
    Day,
    /// `%e`: day of the month padded with a space.
    DaySpacePadded,
    /// `%j`: 001 to 366.
    DayOfYear,
    /// `%H`: 00 to 23.
    Hour,
    /// `%M`.
    Minute,
    /// `%S`.
    Second,
    /// `%s`: seconds since the epoch.
    EpochSeconds,
    /// `%f` (9 digits) or `%Nf` (N digits) of the second.
    Fraction(u8),
    /// `%a` (`Mon`) and `%A` (`Monday`).
    Weekday {
        full: bool,
    },
    /// `%b` / `%h` (`Dec`) and `%B` (`December`).
    MonthName {
        full: bool,
    },
    /// `%z`: `+0000` (times are UTC).
    Offset,
    /// `%Z`: `UTC`.
    Zone,
}

/// Parses the argument of `%START_TIME(...)%`.
pub(crate) fn parse_time_format(text: &str) -> Result<TimeFormat> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        let conversion = chars.next().ok_or_else(|| {
            ValidationError::new("", format!("START_TIME format {text:?} ends with a lone %"))
        })?;
        let colon = || TimePart::Text(":".into());
        let dash = || TimePart::Text("-".into());
        let slash = || TimePart::Text("/".into());
        let more = match conversion {
            '%' => {
                literal.push('%');
                continue;
            }
            'Y' => vec![TimePart::Year],
            'y' => vec![TimePart::YearOfCentury],
            'm' => vec![TimePart::Month],
            'd' => vec![TimePart::Day],
            'e' => vec![TimePart::DaySpacePadded],
            'j' => vec![TimePart::DayOfYear],
            'H' => vec![TimePart::Hour],
            'M' => vec![TimePart::Minute],
            'S' => vec![TimePart::Second],
            's' => vec![TimePart::EpochSeconds],
            'f' => vec![TimePart::Fraction(9)],
            'a' => vec![TimePart::Weekday { full: false }],
            'A' => vec![TimePart::Weekday { full: true }],
            'b' | 'h' => vec![TimePart::MonthName { full: false }],
            'B' => vec![TimePart::MonthName { full: true }],
            'z' => vec![TimePart::Offset],
            'Z' => vec![TimePart::Zone],
            'T' => vec![
                TimePart::Hour,
                colon(),
                TimePart::Minute,
                colon(),
                TimePart::Second,
            ],
            'R' => vec![TimePart::Hour, colon(), TimePart::Minute],
            'F' => vec![
                TimePart::Year,
                dash(),
                TimePart::Month,
                dash(),
                TimePart::Day,
            ],
            'D' => vec![
                TimePart::Month,
                slash(),
                TimePart::Day,
                slash(),
                TimePart::YearOfCentury,
            ],
            digit @ '1'..='9' if chars.clone().next() == Some('f') => {
                chars.next();
                // The arm's pattern guarantees a digit from 1 to 9.
                vec![TimePart::Fraction(
                    digit.to_digit(10).map_or(9, |d| d as u8),
                )]
            }
            other => {
                return Err(ValidationError::not_enforced(
                    "",
                    &format!("the START_TIME conversion %{other} (in {text:?})"),
                ));
            }
        };
        if !literal.is_empty() {
            parts.push(TimePart::Text(std::mem::take(&mut literal)));
        }
        parts.extend(more);
    }
    if !literal.is_empty() {
        parts.push(TimePart::Text(literal));
    }
    Ok(TimeFormat(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_and_shorthands() {
        let format = parse_time_format("%F %3f|%s%%").expect("a format");
        assert_eq!(
            format.0,
            [
                TimePart::Year,
                TimePart::Text("-".into()),
                TimePart::Month,
                TimePart::Text("-".into()),
                TimePart::Day,
                TimePart::Text(" ".into()),
                TimePart::Fraction(3),
                TimePart::Text("|".into()),
                TimePart::EpochSeconds,
                TimePart::Text("%".into()),
            ]
        );
    }

    #[test]
    fn unknown_conversions_are_refused_by_name() {
        let error = parse_time_format("%Y %U").expect_err("refused");
        assert!(error.to_string().contains("%U"), "{error}");
        assert!(parse_time_format("%Y %").is_err());
    }
}
