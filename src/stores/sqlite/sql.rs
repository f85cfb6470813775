//! What the SQLite store's files share: the text form of time columns (written and read) and
//! the mapping of SQLite errors.

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};

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
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return Self::Long(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        let mut b = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                if let Some(d) = b.get_mut(i) {
                    // n % 10 < 10: the digit fits a byte.
                    *d = b'0' + (n % 10) as u8;
                }
                n /= 10;
            }
        };
        put(0, 4, year.unsigned_abs());
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        Self::Short(b)
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            Self::Short(b) => std::str::from_utf8(b).unwrap_or_default(),
            Self::Long(s) => s,
        }
    }
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
