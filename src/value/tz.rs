//! Time zone names to rules.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset as _, TimeZone as _, Utc};
use chrono_tz::Tz;

/// Resolves a TZID by name: an IANA name (with the `/`-prefixed and Olson-path forms some
/// exporters write, `/mozilla.org/20050126_1/Europe/Berlin`, reduced to the name), then a
/// Windows zone name (`W. Europe Standard Time`).
pub(crate) fn resolve(tzid: &str) -> Option<Tz> {
    let tzid = tzid.trim().trim_matches('"');
    if let Ok(tz) = tzid.parse::<Tz>() {
        return Some(tz);
    }
    if let Some(iana) = super::windows_zones::to_iana(tzid) {
        return iana.parse().ok();
    }
    // Try the longest suffix that is a known zone name ("/mozilla.org/.../Europe/Berlin").
    let mut rest = tzid;
    while let Some(pos) = rest.find('/') {
        rest = rest.get(pos + 1..).unwrap_or_default();
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
            let before =
                local.checked_sub_signed(chrono::Duration::hours(3)).map(|probe| tz.from_local_datetime(&probe));
            let offset = match before {
                Some(LocalResult::Single(t) | LocalResult::Ambiguous(t, _)) => t.offset().fix(),
                _ => return Utc.from_utc_datetime(&local),
            };
            let utc = local.checked_sub_signed(chrono::Duration::seconds(i64::from(offset.local_minus_utc())));
            Utc.from_utc_datetime(&utc.unwrap_or(local))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S").unwrap()
    }

    #[test]
    fn gaps_move_forward_and_ambiguous_times_take_the_first() {
        let berlin = resolve("Europe/Berlin").unwrap();
        // 02:30 does not exist on 2026-03-29: read with the pre-gap offset (+01:00) = 01:30Z.
        assert_eq!(to_utc(berlin, at("20260329T023000")).to_rfc3339(), "2026-03-29T01:30:00+00:00");
        // 02:30 occurs twice on 2026-10-25: the first (+02:00) = 00:30Z.
        assert_eq!(to_utc(berlin, at("20261025T023000")).to_rfc3339(), "2026-10-25T00:30:00+00:00");
    }

    #[test]
    fn olson_paths_resolve() {
        assert_eq!(resolve("/mozilla.org/20050126_1/Europe/Berlin"), Some(chrono_tz::Europe::Berlin));
        assert_eq!(resolve("\"Europe/Paris\""), Some(chrono_tz::Europe::Paris));
        assert_eq!(resolve("Mars/Olympus"), None);
    }
}
