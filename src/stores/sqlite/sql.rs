//! What the SQLite store's files share: the text form of time columns (written and read) and
//! the mapping of SQLite errors.

use chrono::{DateTime, Utc};

use crate::error::{Error, ErrorKind};

/// Maps a SQLite error to a storage error naming what failed.
pub(super) fn storage(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::new(ErrorKind::Storage, format!("sqlite {what}")).with_source(e)
}

/// The text of a time column, `YYYY-MM-DDTHH:MM:SSZ`: built on the stack for years 0–9999
/// (every write binds two), by chrono's formatter otherwise.
pub(super) enum TimeText {
    Short([u8; 20]),
    Long(String),
}

impl TimeText {
    pub(super) fn of(t: DateTime<Utc>) -> Self {
        let secs = t.timestamp();
        let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = civil(days);
        if !(0..=9999).contains(&year) {
            return Self::Long(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        let mut b = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, mut n: i64| {
            for i in (at..at + width).rev() {
                if let Some(d) = b.get_mut(i) {
                    *d = b'0' + u8::try_from(n % 10).unwrap_or(0);
                }
                n /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, day_secs / 3600);
        put(14, 2, day_secs / 60 % 60);
        put(17, 2, day_secs % 60);
        Self::Short(b)
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            Self::Short(b) => std::str::from_utf8(b).unwrap_or_default(),
            Self::Long(s) => s,
        }
    }
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`): a few integer operations where chrono's calendar fields cost
/// hundreds of instructions, on a path every written row takes twice.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

pub(super) fn time_text(t: Option<DateTime<Utc>>) -> Option<TimeText> {
    t.map(TimeText::of)
}

/// Reads a time column (`YYYY-MM-DDTHH:MM:SSZ`, as [`TimeText`] writes it) without chrono's
/// general parser, which dominated busy queries; other forms go through it.
pub(super) fn time(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() == 20 && b.get(4) == Some(&b'-') && b.get(10) == Some(&b'T') && b.get(19) == Some(&b'Z') {
        let num = |from: usize, to: usize| -> Option<u32> {
            b.get(from..to)?.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
        };
        let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0, 4)?).ok()?, num(5, 7)?, num(8, 10)?)?;
        return Some(date.and_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)?.and_utc());
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text_is_chrono_s_format() {
        let mut t = "0000-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let end = "9999-12-31T23:59:59Z".parse::<DateTime<Utc>>().unwrap();
        // About every day of years 0–5, then a stride of some 92 days to 9999.
        let mut step = chrono::Duration::seconds(86_400 + 3_607);
        while t <= end {
            let text = TimeText::of(t);
            assert_eq!(text.as_str(), t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            assert_eq!(time(text.as_str()), Some(t));
            if t.timestamp() > -62_000_000_000 {
                step = chrono::Duration::seconds(7_919_999);
            }
            t += step;
        }
        for s in ["1969-12-31T23:59:59Z", "2000-02-29T12:00:00Z", "2100-03-01T00:00:00Z", "1970-01-01T00:00:00Z"] {
            let t: DateTime<Utc> = s.parse().unwrap();
            assert_eq!(TimeText::of(t).as_str(), s);
        }
        let far = "-0001-12-31T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert!(matches!(TimeText::of(far), TimeText::Long(_)));
    }
}
