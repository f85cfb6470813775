//! Time zone names to rules.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

/// Resolves a TZID: an IANA name, with the `/`-prefixed and Olson-path forms some exporters
/// write (`/mozilla.org/20050126_1/Europe/Berlin`) reduced to the name.
pub(crate) fn resolve(tzid: &str) -> Option<Tz> {
    let tzid = tzid.trim().trim_matches('"');
    if let Ok(tz) = tzid.parse::<Tz>() {
        return Some(tz);
    }
    // Try the longest suffix that is a known zone name ("/mozilla.org/.../Europe/Berlin").
    let mut rest = tzid;
    while let Some(pos) = rest.find('/') {
        rest = &rest[pos + 1..];
        if let Ok(tz) = rest.parse::<Tz>() {
            return Some(tz);
        }
    }
    None
}

/// A local time in `tz` as UTC: the earlier of two ambiguous times; a time inside a gap is
/// moved forward by the length of the gap (RFC 5545, 3.3.5).
pub(crate) fn to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(early, _) => early.with_timezone(&Utc),
        LocalResult::None => {
            // Inside a gap: the offset before the gap applies (RFC 5545 "later" rule).
            let probe = local - chrono::Duration::hours(3);
            let offset = match tz.from_local_datetime(&probe) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.offset().fix(),
                LocalResult::None => return Utc.from_utc_datetime(&local),
            };
            Utc.from_utc_datetime(&(local - chrono::Duration::seconds(i64::from(offset.local_minus_utc()))))
        }
    }
}

use chrono::Offset as _;
