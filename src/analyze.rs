//! The guard scan of one component: its key properties, structure checks and source hash, in
//! one pass that splits only the lines it has to.
//!
//! The canonical [`Fingerprint`](crate::Fingerprint) (sorted parameters, property order
//! ignored) costs several hashes per line; this pass costs a name scan per line and one
//! streaming hash per component. The fingerprint is computed later, only for events whose
//! [`SourceHash`] does not settle the comparison.

use chrono::{DateTime, Utc};
use xxhash_rust::xxh3::xxh3_128;

use crate::fingerprint::{FingerprintPolicy, SourceHash};
use crate::value::date::{basic_date, basic_date_time};
use crate::value::lines::{ContentLine, Lines, name_len, value_separator};

/// The properties read from a component in its scan.
#[derive(Default, Debug)]
pub(crate) struct KeyFields {
    pub(crate) uid: Option<String>,
    /// (value, TZID, VALUE=DATE, RANGE=THISANDFUTURE)
    pub(crate) rid: Option<(String, Option<String>, bool, bool)>,
    pub(crate) sequence: Option<i64>,
    pub(crate) last_modified: Option<DateTime<Utc>>,
    /// DTSTART: `None` when missing, the value when it is not a readable DATE or DATE-TIME.
    pub(crate) dtstart: Option<Result<(), String>>,
    /// Why the first unreadable RRULE is unreadable.
    pub(crate) rrule_problem: Option<String>,
    /// `RRULE:` lines with nothing after the colon (ignored).
    pub(crate) empty_rrules: usize,
}

/// What the scan of one component found.
#[derive(Debug)]
pub(crate) struct Analysis {
    pub(crate) source_hash: SourceHash,
    pub(crate) fields: KeyFields,
    /// The deepest BEGIN nesting seen (1 for a component without sub-components).
    pub(crate) max_depth: usize,
    /// Byte offset (in the component) of the first line that is not `name[;params]:value`.
    pub(crate) first_malformed: Option<usize>,
}

/// Scans a whole component.
pub(crate) fn analyze(component: &[u8], policy: &FingerprintPolicy) -> Analysis {
    let mut analyzer = Analyzer::default();
    let mut lines = Lines::new(component);
    while let Some(line) = lines.next_line() {
        if analyzer.is_done() {
            break;
        }
        analyzer.line(line.offset, line.end, line.text, line.nul, policy);
    }
    analyzer.finish(component)
}

/// [`analyze`] fed line by line, so a feed scanner can analyze components as it passes them.
/// One analyzer serves one fingerprint policy.
#[derive(Default)]
pub(crate) struct Analyzer {
    fields: KeyFields,
    /// Byte ranges (in the component) of volatile lines, folds included.
    volatile: Vec<(usize, usize)>,
    depth: usize,
    max_depth: usize,
    started: bool,
    done: bool,
    first_malformed: Option<usize>,
    /// The policy's volatile names as a one-word Bloom filter (see [`filter_bit`]): most
    /// lines are ruled out without comparing names.
    volatile_filter: Option<u64>,
    /// The last RRULE found readable: feeds repeat a few rules across thousands of events.
    valid_rrule: Vec<u8>,
}

/// A name's bit in the volatile filter, from its length and its first and last bytes (case
/// folded).
fn filter_bit(name: &[u8]) -> u64 {
    let edge = |b: Option<&u8>| usize::from(b.map_or(0, u8::to_ascii_uppercase));
    let mix = name.len().wrapping_mul(31) ^ edge(name.first()).wrapping_mul(7) ^ edge(name.last());
    1 << (mix % 64)
}

/// Tags the source hash so it can never be mistaken for another hash of the same bytes.
const SOURCE_TAG: &[u8] = b"calscope-source-v1";

impl Analyzer {
    /// Feeds the logical line `text`, spanning bytes `offset..end` of the component; `nul`
    /// says it holds a NUL byte, which makes it malformed.
    ///
    /// The structure rules are the canonical form's: the first BEGIN opens the component,
    /// properties before it open an unnamed one, lines after its END are ignored.
    pub(crate) fn line(&mut self, offset: usize, end: usize, text: &[u8], nul: bool, policy: &FingerprintPolicy) {
        if self.done || text.is_empty() {
            return;
        }
        if nul {
            self.first_malformed.get_or_insert(offset);
        }
        let n = name_len(text);
        let name = text.get(..n).unwrap_or_default();
        let separator = match text.get(n) {
            Some(b':') if n > 0 => Some(n),
            Some(b';') if n > 0 => value_separator(text, n),
            _ => None,
        };
        let Some(separator) = separator else {
            if self.started {
                self.first_malformed.get_or_insert(offset);
            }
            return;
        };
        if n == 5 && name.eq_ignore_ascii_case(b"BEGIN") {
            self.started = true;
            self.depth += 1;
            self.max_depth = self.max_depth.max(self.depth);
            return;
        }
        if !self.started {
            self.started = true;
            self.depth = 1;
            self.max_depth = self.max_depth.max(1);
        }
        if n == 3 && name.eq_ignore_ascii_case(b"END") {
            self.depth = self.depth.saturating_sub(1);
            self.done = self.depth == 0;
            return;
        }
        let filter = *self
            .volatile_filter
            .get_or_insert_with(|| policy.volatile().iter().fold(0u64, |mask, v| mask | filter_bit(v.as_bytes())));
        if filter & filter_bit(name) != 0 && policy.is_volatile_bytes(name) {
            self.volatile.push((offset, end));
        }
        // Most lines are none of the key properties: rule them out by name length first.
        if self.depth == 1 && matches!(n, 3 | 5 | 7 | 8 | 13) {
            let cl = ContentLine {
                name,
                params: text.get(n..separator).unwrap_or_default(),
                value: text.get(separator + 1..).unwrap_or_default(),
            };
            read_key_field(&mut self.fields, &cl, &mut self.valid_rrule);
        }
    }

    /// Whether the component's END was seen: later lines are ignored.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The analysis of `component` (the bytes the lines came from); resets the analyzer for
    /// the next component, keeping its buffers.
    pub(crate) fn finish(&mut self, component: &[u8]) -> Analysis {
        // The bytes minus the volatile lines, one segment at a time: each segment's one-shot
        // hash is chained into the running one (one-shot hashes of a few hundred bytes cost a
        // fraction of a streaming hasher's set-up). Each removed range is a whole logical line
        // with its folds and terminator, so equal segments mean equal non-volatile lines, hence
        // equal fingerprints. (Where the volatile lines sit is part of the hash: a feed that
        // adds or drops one costs the slow path, never a wrong answer.)
        let mut hash = xxh3_128(SOURCE_TAG);
        let mut at = 0;
        let mut segment = |from: usize, to: usize| {
            let mut pair = [0u8; 32];
            pair[..16].copy_from_slice(&hash.to_le_bytes());
            pair[16..].copy_from_slice(&xxh3_128(component.get(from..to).unwrap_or_default()).to_le_bytes());
            hash = xxh3_128(&pair);
        };
        for &(start, end) in &self.volatile {
            segment(at, start);
            at = end;
        }
        segment(at, component.len());
        let analysis = Analysis {
            source_hash: SourceHash::from_u128(hash),
            fields: std::mem::take(&mut self.fields),
            max_depth: self.max_depth,
            first_malformed: self.first_malformed,
        };
        self.volatile.clear();
        self.depth = 0;
        self.max_depth = 0;
        self.started = false;
        self.done = false;
        self.first_malformed = None;
        analysis
    }
}

fn read_key_field(fields: &mut KeyFields, line: &ContentLine<'_>, valid_rrule: &mut Vec<u8>) {
    let is_date = || line.param(b"VALUE").is_some_and(|v| v.eq_ignore_ascii_case(b"DATE"));
    let value = || {
        let v = line.value.trim_ascii();
        match std::str::from_utf8(v) {
            Ok(v) => std::borrow::Cow::Borrowed(v),
            Err(_) => std::borrow::Cow::Owned(String::from_utf8_lossy(v).into_owned()),
        }
    };
    if line.is(b"UID") {
        if fields.uid.is_none() {
            fields.uid = Some(value().into_owned());
        }
    } else if line.is(b"RECURRENCE-ID") {
        let tzid = line.param(b"TZID").map(|t| String::from_utf8_lossy(t).into_owned());
        let is_date = is_date();
        let range = line.param(b"RANGE").is_some_and(|v| v.eq_ignore_ascii_case(b"THISANDFUTURE"));
        fields.rid = Some((value().into_owned(), tzid, is_date, range));
    } else if line.is(b"SEQUENCE") {
        fields.sequence = value().parse().ok();
    } else if line.is(b"LAST-MODIFIED") {
        fields.last_modified = crate::value::date::utc_time(&value());
    } else if line.is(b"DTSTART") {
        let v = value();
        fields.dtstart = Some(if usable_time(&v) { Ok(()) } else { Err(v.into_owned()) });
    } else if line.is(b"RRULE") {
        let rule = value();
        if rule.is_empty() {
            fields.empty_rrules += 1;
        } else if fields.rrule_problem.is_none() && rule.as_bytes() != valid_rrule.as_slice() {
            match check_rrule(&rule) {
                Ok(()) => {
                    valid_rrule.clear();
                    valid_rrule.extend_from_slice(rule.as_bytes());
                }
                Err(why) => fields.rrule_problem = Some(format!("unreadable RRULE {rule:?}: {why}")),
            }
        }
    }
}

/// Whether a DTSTART value is a readable DATE or DATE-TIME (a DATE-TIME under VALUE=DATE is
/// accepted: venue feeds write it).
fn usable_time(value: &str) -> bool {
    let v = value.trim_ascii();
    let v = v.strip_suffix(['Z', 'z']).unwrap_or(v);
    basic_date_time(v).is_some() || basic_date(v).is_some()
}

/// Checks an RRULE: known parts only, FREQ present, no part twice.
fn check_rrule(rule: &str) -> std::result::Result<(), String> {
    const PARTS: [&str; 14] = [
        "FREQ",
        "UNTIL",
        "COUNT",
        "INTERVAL",
        "BYSECOND",
        "BYMINUTE",
        "BYHOUR",
        "BYDAY",
        "BYMONTHDAY",
        "BYYEARDAY",
        "BYWEEKNO",
        "BYMONTH",
        "BYSETPOS",
        "WKST",
    ];
    const FREQS: [&str; 7] = ["SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"];
    // Known parts seen so far, as bits of PARTS (X- parts may repeat). Bytes, not `str::split`:
    // this runs for every RRULE of every event.
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_ascii_uppercase();
    let mut seen = 0u16;
    for part in rule.as_bytes().split(|&b| b == b';').map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()) {
        let Some(eq) = part.iter().position(|&b| b == b'=') else {
            return Err(format!("part {:?} has no value", String::from_utf8_lossy(part)));
        };
        let (name, value) = part.split_at(eq);
        let (name, value) = (name.trim_ascii(), value.get(1..).unwrap_or_default().trim_ascii());
        let Some(index) = PARTS.iter().position(|p| p.as_bytes().eq_ignore_ascii_case(name)) else {
            if name.get(..2).is_some_and(|x| x.eq_ignore_ascii_case(b"X-")) {
                continue;
            }
            return Err(format!("unknown part {}", text(name)));
        };
        let bit = 1u16 << index;
        if seen & bit != 0 {
            return Err(format!("{} given twice", text(name)));
        }
        seen |= bit;
        if index == 0 && !FREQS.iter().any(|f| f.as_bytes().eq_ignore_ascii_case(value)) {
            return Err(format!("unknown FREQ {}", String::from_utf8_lossy(value)));
        }
    }
    if seen & 1 == 0 {
        return Err("no FREQ".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrule_checks() {
        assert!(check_rrule("FREQ=WEEKLY;BYDAY=MO,TU").is_ok());
        assert!(check_rrule("FREQ=DAILY;UNTL=20191023").is_err());
        assert!(check_rrule("BYDAY=MO").is_err());
        assert!(check_rrule("FREQ=DAILY;FREQ=WEEKLY").is_err());
        assert!(check_rrule("FREQ=DAILY;X-NAME=1;X-NAME=2").is_ok());
    }

    fn hash(text: &str) -> SourceHash {
        analyze(text.as_bytes(), &FingerprintPolicy::default()).source_hash
    }

    const EV: &str =
        "BEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\n";

    #[test]
    fn source_hash_ignores_volatile_lines_only() {
        assert_eq!(hash(EV), hash(&EV.replace("20260101T000000Z", "20991231T235959Z")));
        let folded_stamp = EV.replace("DTSTAMP:20260101T000000Z", "DTSTAMP:2026\r\n 0101T000000Z");
        assert_eq!(hash(EV), hash(&folded_stamp));
        let two_stamps = EV.replace("SUMMARY:x", "DTSTAMP:1\r\nSUMMARY:x");
        assert_eq!(hash(&two_stamps), hash(&two_stamps.replace("DTSTAMP:1", "DTSTAMP:2")));
        // Any other byte counts, including the ones the fingerprint forgives.
        assert_ne!(hash(EV), hash(&EV.replace("SUMMARY:x", "SUMMARY:y")));
        assert_ne!(hash(EV), hash(&EV.replace("\r\n", "\n")));
        assert_ne!(hash(EV), hash(&EV.replace("SUMMARY:x", "SUMMARY:\r\n x")));
    }

    #[test]
    fn keys_depth_and_malformed_lines() {
        let text = EV.replace(
            "SUMMARY:x\r\n",
            "SUMMARY:x\r\nRECURRENCE-ID;TZID=Europe/Berlin;RANGE=THISANDFUTURE:20260105T100000\r\nBEGIN:VALARM\r\nUID:inner\r\nnot a line\r\nEND:VALARM\r\n",
        );
        let a = analyze(text.as_bytes(), &FingerprintPolicy::default());
        assert_eq!(a.fields.uid.as_deref(), Some("1"));
        let (value, tzid, is_date, range) = a.fields.rid.unwrap();
        assert_eq!(
            (value.as_str(), tzid.as_deref(), is_date, range),
            ("20260105T100000", Some("Europe/Berlin"), false, true)
        );
        assert_eq!(a.max_depth, 2);
        assert_eq!(a.first_malformed, text.find("not a line"));
    }
}
