//! `%START_TIME%` as text: Envoy's default form or a configured `strftime` form, in UTC.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use outrider_model::{TimeFormat, TimePart};

/// A moment split into its calendar fields (UTC).
struct Civil {
    epoch_seconds: u64,
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    nanos: u32,
    /// 0 is Sunday.
    weekday: usize,
}

impl Civil {
    fn of(time: SystemTime) -> Civil {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let days = i64::try_from(days).unwrap_or(0);
        let (year, month, day) = civil_from_days(days);
        Civil {
            epoch_seconds: secs,
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            nanos: since.subsec_nanos(),
            // 1970-01-01 was a Thursday.
            weekday: usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0),
        }
    }

    fn day_of_year(&self) -> u32 {
        const BEFORE_MONTH: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let leap = self.year % 4 == 0 && (self.year % 100 != 0 || self.year % 400 == 0);
        let month = usize::try_from(self.month - 1).unwrap_or(0);
        BEFORE_MONTH[month] + self.day + u32::from(leap && self.month > 2)
    }
}

/// `2026-11-21T05:50:01.123Z`, as Envoy prints `%START_TIME%`.
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    let c = Civil::of(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos / 1_000_000
    )
}

/// Appends `time` in `format`.
pub(crate) fn push_formatted(out: &mut String, format: &TimeFormat, time: SystemTime) {
    const WEEKDAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let c = Civil::of(time);
    let short = |name: &'static str, full: bool| if full { name } else { &name[..3] };
    for part in &format.0 {
        // Writing to a String cannot fail.
        let _ = match part {
            TimePart::Text(text) => out.write_str(text),
            TimePart::Year => write!(out, "{:04}", c.year),
            TimePart::YearOfCentury => write!(out, "{:02}", c.year.rem_euclid(100)),
            TimePart::Month => write!(out, "{:02}", c.month),
            TimePart::Day => write!(out, "{:02}", c.day),
            TimePart::DaySpacePadded => write!(out, "{:2}", c.day),
            TimePart::DayOfYear => write!(out, "{:03}", c.day_of_year()),
            TimePart::Hour => write!(out, "{:02}", c.hour),
            TimePart::Minute => write!(out, "{:02}", c.minute),
            TimePart::Second => write!(out, "{:02}", c.second),
            TimePart::EpochSeconds => write!(out, "{}", c.epoch_seconds),
            TimePart::Fraction(digits) => {
                let digits = u32::from(*digits).clamp(1, 9);
                let value = c.nanos / 10u32.pow(9 - digits);
                write!(out, "{value:0width$}", width = digits as usize)
            }
            TimePart::Weekday { full } => out.write_str(short(WEEKDAYS[c.weekday], *full)),
            TimePart::MonthName { full } => {
                let month = usize::try_from(c.month - 1).unwrap_or(0);
                out.write_str(short(MONTHS[month], *full))
            }
            TimePart::Offset => out.write_str("+0000"),
            TimePart::Zone => out.write_str("UTC"),
        };
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use outrider_model::TimePart as P;

    use super::*;

    #[test]
    fn default_form_is_rfc3339_with_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339_millis(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn strftime_parts() {
        // 2000-03-01T08:05:09.123456789Z, a Wednesday, day 61 of a leap year.
        let t = UNIX_EPOCH + Duration::new(951_868_800 + 8 * 3600 + 5 * 60 + 9, 123_456_789);
        let format = TimeFormat(vec![
            P::Weekday { full: false },
            P::Text(" ".into()),
            P::MonthName { full: true },
            P::DaySpacePadded,
            P::Text(" ".into()),
            P::DayOfYear,
            P::Text(" ".into()),
            P::YearOfCentury,
            P::Text(" ".into()),
            P::Fraction(3),
            P::Text(" ".into()),
            P::Fraction(9),
            P::Text(" ".into()),
            P::EpochSeconds,
            P::Offset,
        ]);
        let mut out = String::new();
        push_formatted(&mut out, &format, t);
        assert_eq!(out, "Wed March 1 061 00 123 123456789 951897909+0000");
    }
}
