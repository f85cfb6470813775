//! Time zone names to rules.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset as _, TimeZone as _, Utc};
use chrono_tz::Tz;

/// A time zone of the tz database: the zone in which floating times and dates are read, and
/// in which a series recurs.
///
/// # Example
/// ```
/// use calscope::Zone;
/// assert_eq!(Zone::named("W. Europe Standard Time")?.name(), "Europe/Berlin");
/// assert_eq!(Zone::UTC.name(), "UTC");
/// # Ok::<(), calscope::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Zone(pub(crate) Tz);

impl Zone {
    /// UTC.
    pub const UTC: Self = Self(Tz::UTC);

    /// A zone by IANA name (`Europe/Berlin`), Windows name (`W. Europe Standard Time`) or an
    /// exporter's Olson path (`/mozilla.org/20050126_1/Europe/Berlin`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when no zone has that name.
    pub fn named(name: &str) -> crate::error::Result<Self> {
        resolve(name).map(Self).ok_or_else(|| crate::error::Error::invalid(format!("unknown time zone {name:?}")))
    }

    /// The zone's IANA name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// A wall-clock time in this zone as UTC (a time in a DST gap moves forward by the gap, an
    /// ambiguous one takes the first of its two instants).
    #[must_use]
    pub fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        if self.0 == Tz::UTC {
            return Utc.from_utc_datetime(&local);
        }
        to_utc(self.0, local)
    }

    /// The wall-clock time of an instant in this zone.
    #[must_use]
    pub fn wall(&self, at: DateTime<Utc>) -> NaiveDateTime {
        if self.0 == Tz::UTC {
            return at.naive_utc();
        }
        at.with_timezone(&self.0).naive_local()
    }
}

impl Default for Zone {
    fn default() -> Self {
        Self::UTC
    }
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

/// TZIDs a feed defines itself (its VTIMEZONEs) under names the tz database does not know,
/// each with the tz database zone whose offsets the definition matches: how that feed's events
/// read their times, and in which zone their series recur.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ZoneAliases(Vec<(String, Tz)>);

impl ZoneAliases {
    /// No aliases: TZIDs resolve by name only.
    pub(crate) const NONE: Self = Self(Vec::new());

    /// Aliases from (TZID as written, zone) pairs.
    pub(crate) fn new(mut pairs: Vec<(String, Tz)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        Self(pairs)
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many TZIDs have an alias.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The zone of a TZID: by name ([`resolve`]), else by this feed's definition of it.
    pub(crate) fn resolve(&self, tzid: &str) -> Option<Tz> {
        resolve(tzid).or_else(|| {
            let key = tzid.trim().trim_matches('"');
            self.0.iter().find(|(name, _)| name == key).map(|(_, tz)| *tz)
        })
    }
}

/// The primary zone of every Windows zone name (CLDR's), in table order: the zones a
/// definition-only TZID is first matched against.
pub(crate) fn primary_zones() -> impl Iterator<Item = Tz> {
    super::windows_zones::primaries().filter_map(|name| name.parse().ok())
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
