//! Reading whole iCalendar feeds: a streaming scan for structure, then keys and fingerprints
//! per component, without building a tree and without parsing fields.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::analyze::{Analysis, Analyzer, analyze};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, RawText};
use crate::fingerprint::{FingerprintPolicy, canonicalize};
use crate::ics::zones::{Resolution, Zones};
use crate::id::{CalendarId, EventKey, RecurrenceId, Uid};
use crate::source::Snapshot;
use crate::state::DigestMap;
use crate::value::date::{basic_date, basic_date_time};
use crate::value::lines::{ContentLine, Lines};

/// Bounds on what [`read_feed`] accepts; beyond them it fails with
/// [`ErrorKind::LimitExceeded`] instead of spending memory or time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// Deepest BEGIN nesting (VCALENDAR > VEVENT > VALARM is 3). Default 16.
    pub max_depth: usize,
    /// Longest logical (unfolded) line, in bytes. Default 4 MiB (inline attachments).
    pub max_line_bytes: usize,
    /// Largest single component, in bytes. Default 16 MiB.
    pub max_component_bytes: usize,
    /// Most components in one feed. Default 2,000,000.
    pub max_components: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_depth: 16, max_line_bytes: 4 << 20, max_component_bytes: 16 << 20, max_components: 2_000_000 }
    }
}

/// How [`read_feed`] reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Which properties fingerprints ignore.
    pub policy: FingerprintPolicy,
    /// Input bounds.
    pub limits: Limits,
    /// Threads that may read one large feed (above 4 MiB of UTF-8 text) in parallel pieces; 1
    /// (the default) reads on the calling thread only. Scoped OS threads, joined before the
    /// read returns. The result holds the same events, problems and warnings as a sequential
    /// read (events whose RECURRENCE-ID zone is defined in an earlier piece come last, as a
    /// sequential read puts events whose zone is defined later); a read falls back to
    /// sequential when a piece cannot be read on its own.
    pub threads: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self { policy: FingerprintPolicy::default(), limits: Limits::default(), threads: 1 }
    }
}

impl ReadOptions {
    /// Sets how many threads may read one large feed (see [`threads`](Self::threads)).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Sets the fingerprint policy.
    #[must_use]
    pub fn policy(mut self, policy: FingerprintPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// A component that could not be read: where, which UID (when known) and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Problem {
    /// Byte offset in the feed where the component (or line) starts.
    pub offset: usize,
    /// The component's UID, when it had one.
    pub uid: Option<String>,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: ", self.offset)?;
        if let Some(uid) = &self.uid {
            write!(f, "{uid}: ")?;
        }
        f.write_str(&self.reason)
    }
}

/// What [`read_feed`] found in a feed.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
#[non_exhaustive]
pub struct FeedRead {
    /// Every VEVENT that could be read, in feed order (duplicates included: the planner picks).
    pub events: Vec<Event>,
    /// Components or lines that could not be read. Any problem makes the read incomplete.
    pub problems: Vec<Problem>,
    /// Recoverable oddities (a BOM, blank lines, text that is not UTF-8, unknown zones, …).
    pub warnings: Vec<String>,
    /// How many VCALENDAR objects the feed held.
    pub calendars: usize,
}

impl FeedRead {
    /// Whether every component was read: only then may deletions be inferred.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.problems.is_empty()
    }

    /// The events as a [`Snapshot`] (incomplete when there were problems), plus every problem and
    /// warning as text.
    pub fn into_snapshot(self) -> (Snapshot, Vec<String>) {
        let complete = self.is_complete();
        let mut notes: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        notes.extend(self.warnings);
        let snapshot = if complete { Snapshot::complete(self.events) } else { Snapshot::incomplete(self.events) };
        (snapshot, notes)
    }
}

/// Reads an iCalendar feed (one or more VCALENDAR objects) into events of `calendar`.
///
/// - Structure is found by a byte-level scan: CRLF, LF and CR endings, folds (also inside UTF-8
///   sequences), a BOM, blank lines and junk around calendars are accepted; VTIMEZONEs are
///   read for normalization (wherever they appear) and never become events; VTODO, VJOURNAL,
///   VFREEBUSY and unknown components are skipped with a warning.
/// - Each VEVENT gets its key and fingerprint. A VEVENT without UID gets a synthesized one,
///   `calscope-synth-<fingerprint>` (with `-2`, `-3`, … for identical copies): stable across
///   fetches as long as the content is; an edit shows as a delete plus an insert.
/// - A VEVENT that cannot be read (a malformed line, no usable DTSTART, an unreadable RRULE or
///   RECURRENCE-ID, outside any VCALENDAR, over the size limit) is reported as a [`Problem`]
///   and left out; duplicates of one key that SEQUENCE and LAST-MODIFIED cannot order are
///   reported too. Any problem makes the read incomplete, so no deletions are inferred.
/// - Text that is not UTF-8 is decoded as Windows-1252, with a warning.
///
/// # Errors
/// [`ErrorKind::Parse`] when the input is not a usable iCalendar stream: no VCALENDAR, a
/// component left open (truncated), END not matching BEGIN, an invalid component name (NUL or
/// control bytes in the structure). [`ErrorKind::LimitExceeded`] when a [`Limits`] bound is
/// crossed. Nothing is returned in either case, so nothing can be deleted.
///
/// # Example
/// ```
/// use calscope::{CalendarId, ics::{read_feed, ReadOptions}};
/// let feed = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTART:20260105T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
/// let read = read_feed(&CalendarId::new("work")?, feed, &ReadOptions::default())?;
/// assert_eq!(read.events.len(), 1);
/// assert!(read.is_complete());
/// # Ok::<(), calscope::Error>(())
/// ```
pub fn read_feed(calendar: &CalendarId, bytes: &[u8], options: &ReadOptions) -> Result<FeedRead> {
    read_feed_owned(calendar, bytes.to_vec(), options)
}

/// [`read_feed`] over a buffer the caller gives away: when it is UTF-8, events share it as their
/// text without copying (see [`Event::detach`]).
///
/// # Errors
/// As [`read_feed`].
pub fn read_feed_owned(calendar: &CalendarId, bytes: Vec<u8>, options: &ReadOptions) -> Result<FeedRead> {
    match String::from_utf8(bytes) {
        Ok(text) => read_feed_shared(calendar, Arc::new(text), options),
        Err(e) => read_feed_inner(calendar, None, &Feed::Bytes(e.into_bytes()), options),
    }
}

/// [`read_feed`] over text already shared: events share it without a copy.
pub(crate) fn read_feed_shared(calendar: &CalendarId, text: Arc<String>, options: &ReadOptions) -> Result<FeedRead> {
    let shared = Some(Arc::clone(&text));
    read_feed_inner(calendar, shared.as_ref(), &Feed::Shared(text), options)
}

fn read_feed_inner(
    calendar: &CalendarId,
    shared: Option<&Arc<String>>,
    bytes: &Feed,
    options: &ReadOptions,
) -> Result<FeedRead> {
    let all = bytes.as_bytes();
    let policy = Arc::new(options.policy.clone());
    let (data, base) = match all.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, 3),
        None => (all, 0),
    };
    let pieces =
        if shared.is_some() && data.len() >= PARALLEL_MIN_BYTES { split(data, options.threads) } else { vec![] };
    let parallel =
        if pieces.len() > 1 { read_pieces(calendar, options, &policy, shared, data, base, &pieces) } else { None };
    let (mut reader, scan) = if let Some(read) = parallel {
        read
    } else {
        let mut reader = Reader::new(calendar, options, &policy, shared.cloned());
        // Sized generously: untouched capacity costs address space, not memory, and a growing
        // vector would briefly hold two copies of every event.
        reader.events.reserve(data.len() / 256);
        let scan = scan(data, base, &mut reader, false)?;
        scan.check_closed()?;
        (reader, scan)
    };
    if base > 0 {
        reader.warnings.insert(0, "byte order mark skipped".to_owned());
    }
    if scan.calendars == 0 {
        return Err(ScanError::NoCalendar.into());
    }
    if scan.components > options.limits.max_components {
        return Err(ScanError::TooMany { max: options.limits.max_components }.into());
    }
    if scan.blank_lines > 0 {
        reader.warnings.push(format!("{} blank lines skipped", scan.blank_lines));
    }
    if scan.outside_lines > 0 {
        reader.warnings.push(format!("{} lines outside any VCALENDAR ignored", scan.outside_lines));
    }
    // Events whose RECURRENCE-ID names a zone defined later in the feed (feed offsets).
    for (start, end, analysis) in std::mem::take(&mut reader.deferred) {
        let bytes = all.get(start..end).unwrap_or_default();
        reader.vevent(bytes, start, analysis);
    }
    let mut skipped: Vec<_> = std::mem::take(&mut reader.skipped).into_iter().collect();
    skipped.sort();
    for (name, n) in skipped {
        reader.warnings.push(format!("{n} {name} components skipped (calscope syncs VEVENTs)"));
    }
    if reader.empty_rrules > 0 {
        reader.warnings.push(format!("{} empty RRULE lines ignored", reader.empty_rrules));
    }
    let mut events = std::mem::take(&mut reader.events);
    events.shrink_to_fit();
    // TZIDs only this feed defines: its events read them as the zone each definition matches.
    let (aliases, note) = reader.zones.aliases();
    reader.warnings.extend(note);
    if !aliases.is_empty() {
        let aliases = Arc::new(aliases);
        for e in &mut events {
            e.set_zones(&aliases);
        }
    }
    let offsets = std::mem::take(&mut reader.offsets);
    reader.check_duplicates(&events, &offsets);
    Ok(FeedRead { events, problems: reader.problems, warnings: reader.warnings, calendars: scan.calendars })
}

/// Feeds smaller than this are read on one thread whatever [`ReadOptions::threads`] says.
const PARALLEL_MIN_BYTES: usize = 4 << 20;

/// Where to cut `data` into up to `n` pieces: each piece after the first starts at a line
/// `BEGIN:VEVENT` (found after an even share of the bytes). Answers the start of every piece.
fn split(data: &[u8], n: usize) -> Vec<usize> {
    let mut starts = vec![0];
    for i in 1..n {
        let target = data.len() / n * i;
        let from = target.max(starts.last().copied().unwrap_or(0) + 1);
        let Some(found) = data.get(from..).and_then(|rest| memchr::memmem::find(rest, b"\nBEGIN:VEVENT")) else {
            break;
        };
        starts.push(from + found + 1);
    }
    starts
}

/// Reads the pieces on scoped threads and merges them into what one reader would hold. `None`
/// when a piece cannot be read on its own (a cut inside a component, an error anywhere, UIDs to
/// synthesize, whose numbering spans the feed): the caller then reads sequentially, which also
/// gives the exact error.
fn read_pieces<'a>(
    calendar: &'a CalendarId,
    options: &'a ReadOptions,
    policy: &Arc<FingerprintPolicy>,
    shared: Option<&Arc<String>>,
    data: &[u8],
    base: usize,
    starts: &[usize],
) -> Option<(Reader<'a>, Scan)> {
    let ranges: Vec<(usize, usize)> =
        starts.iter().zip(starts.iter().skip(1).chain(std::iter::once(&data.len()))).map(|(&a, &b)| (a, b)).collect();
    let last = ranges.len() - 1;
    let results: Vec<Option<(Reader<'a>, Scan)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .enumerate()
            .map(|(i, &(start, end))| {
                let piece = data.get(start..end).unwrap_or_default();
                let shared = shared.cloned();
                scope.spawn(move || {
                    let mut reader = Reader::new(calendar, options, policy, shared);
                    // The first piece's reader takes in the others': room for all of them.
                    reader.events.reserve(if i == 0 { data.len() } else { piece.len() } / 256);
                    let scan = scan(piece, base + start, &mut reader, i > 0).ok()?;
                    let whole = if i == last { scan.check_closed().is_ok() } else { scan.ends_in_calendar };
                    (whole && reader.synthesized.is_empty()).then_some((reader, scan))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().ok().flatten()).collect()
    });
    let mut pieces = results.into_iter();
    let (mut reader, mut scan) = pieces.next()??;
    for piece in pieces {
        let (other, more) = piece?;
        reader.absorb(other);
        scan.calendars += more.calendars;
        scan.components += more.components;
        scan.blank_lines += more.blank_lines;
        scan.outside_lines += more.outside_lines;
    }
    Some((reader, scan))
}

/// The input, as text to share or as bytes to decode per component.
enum Feed {
    Shared(Arc<String>),
    Bytes(Vec<u8>),
}

impl Feed {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Shared(s) => s.as_bytes(),
            Self::Bytes(b) => b,
        }
    }
}

/// What the structural scan counted, and where it ended.
struct Scan {
    calendars: usize,
    components: usize,
    blank_lines: usize,
    outside_lines: usize,
    /// The innermost component still open at the end (none for a whole feed).
    open: Option<Name>,
    /// Whether exactly one VCALENDAR is open at the end (where a piece of a feed ends).
    ends_in_calendar: bool,
}

impl Scan {
    /// A whole feed closes every component it opens.
    fn check_closed(&self) -> Result<()> {
        match self.open {
            Some(open) => {
                Err(ScanError::Unterminated { name: String::from_utf8_lossy(open.as_slice()).into_owned() }.into())
            }
            None => Ok(()),
        }
    }
}

/// The single pass: structure, nesting, calendar-level lines, and every top-level component
/// handed to the reader as it closes.
fn scan(data: &[u8], base: usize, reader: &mut Reader<'_>, in_calendar: bool) -> Result<Scan> {
    let options = reader.options;
    let limits = &options.limits;
    let mut stack: Vec<Name> = Vec::new();
    if in_calendar {
        stack.extend(component_name(b"VCALENDAR"));
    }
    // The VEVENT being passed: analyzed (keys and fingerprint) in the same pass.
    let mut analyzer = Analyzer::default();
    let mut active: Option<usize> = None;
    // The top-level component being passed: (name, start, inside a VCALENDAR).
    let mut current: Option<(Name, usize, bool)> = None;
    let mut components = 0usize;
    let mut calendars = 0usize;
    let mut blank_lines = 0usize;
    let mut outside_lines = 0usize;
    let mut lines = Lines::new(data);
    while let Some(line) = lines.next_line() {
        let text: &[u8] = line.text;
        let at = line.offset + base;
        if text.len() > limits.max_line_bytes {
            return Err(ScanError::LineTooLong { at, max: limits.max_line_bytes }.into());
        }
        if text.is_empty() {
            blank_lines += usize::from(!stack.is_empty());
            continue;
        }
        if let Some(start) = active {
            analyzer.line(
                line.offset.saturating_sub(start),
                line.end.saturating_sub(start),
                text,
                line.nul,
                &options.policy,
            );
        }
        let Some((is_begin, name)) = structure(text) else {
            match stack.as_slice() {
                [] => outside_lines += 1,
                [cal] if cal.as_slice() == b"VCALENDAR" && ContentLine::split(text).is_none() => {
                    reader.problem(at, None, "unreadable calendar-level line");
                }
                _ => {}
            }
            continue;
        };
        let name = component_name(name).ok_or(ScanError::BadName { at })?;
        if is_begin {
            let top_level = is_top_level(&stack, name);
            if stack.len() >= limits.max_depth {
                return Err(ScanError::TooDeep { at, max: limits.max_depth }.into());
            }
            if stack.is_empty() && name.as_slice() == b"VCALENDAR" {
                calendars += 1;
            }
            if top_level {
                components += 1;
                if components > limits.max_components {
                    return Err(ScanError::TooMany { max: limits.max_components }.into());
                }
                let in_calendar = !stack.is_empty();
                if name.as_slice() == b"VEVENT" && in_calendar {
                    analyzer.line(0, line.end.saturating_sub(line.offset), text, line.nul, &options.policy);
                    active = Some(line.offset);
                }
                current = Some((name, line.offset, in_calendar));
            }
            stack.push(name);
            continue;
        }
        match stack.pop() {
            Some(open) if open == name => {}
            // The last line, cut off mid-way: the feed was truncated.
            Some(open) if line.end >= data.len() && !data.ends_with(b"\n") && !data.ends_with(b"\r") => {
                return Err(
                    ScanError::CutOff { name: String::from_utf8_lossy(open.as_slice()).into_owned(), at }.into()
                );
            }
            open => return Err(unbalanced(name, open, at).into()),
        }
        if let Some((name, start, in_calendar)) = current.take_if(|_| is_top_level(&stack, name)) {
            let bytes = data.get(start..line.end).unwrap_or_default();
            let analysis = active.take().map(|_| analyzer.finish(bytes));
            reader.component(name, bytes, (start, line.end), base, in_calendar, analysis);
        }
    }
    let ends_in_calendar = matches!(stack.as_slice(), [cal] if cal.as_slice() == b"VCALENDAR");
    Ok(Scan { calendars, components, blank_lines, outside_lines, open: stack.last().copied(), ends_in_calendar })
}

/// Whether a component `name` directly inside `stack` is a top-level one: a VCALENDAR's child,
/// or anything but a VCALENDAR outside of one (a stray component).
fn is_top_level(stack: &[Name], name: Name) -> bool {
    match stack {
        [] => name.as_slice() != b"VCALENDAR",
        [cal] => cal.as_slice() == b"VCALENDAR",
        _ => false,
    }
}

fn unbalanced(name: Name, open: Option<Name>, at: usize) -> ScanError {
    let end = String::from_utf8_lossy(name.as_slice()).into_owned();
    match open {
        Some(open) => ScanError::Mismatch { end, begin: String::from_utf8_lossy(open.as_slice()).into_owned(), at },
        None => ScanError::Orphan { end, at },
    }
}

/// Why a feed is not a usable iCalendar stream (private; mapped to [`Error`]).
#[derive(Debug, thiserror::Error)]
enum ScanError {
    #[error("not an iCalendar stream: no VCALENDAR")]
    NoCalendar,
    #[error("truncated: BEGIN:{name} is never closed")]
    Unterminated { name: String },
    #[error("truncated: the feed ends mid-line at byte {at}, inside BEGIN:{name}")]
    CutOff { name: String, at: usize },
    #[error("END:{end} does not match BEGIN:{begin} at byte {at}")]
    Mismatch { end: String, begin: String, at: usize },
    #[error("END:{end} without BEGIN at byte {at}")]
    Orphan { end: String, at: usize },
    #[error("invalid component name at byte {at}")]
    BadName { at: usize },
    #[error("line at byte {at} is longer than {max} bytes")]
    LineTooLong { at: usize, max: usize },
    #[error("components nest deeper than {max} at byte {at}")]
    TooDeep { at: usize, max: usize },
    #[error("more than {max} components")]
    TooMany { max: usize },
}

impl From<ScanError> for Error {
    fn from(e: ScanError) -> Self {
        let kind = match e {
            ScanError::LineTooLong { .. } | ScanError::TooDeep { .. } | ScanError::TooMany { .. } => {
                ErrorKind::LimitExceeded
            }
            _ => ErrorKind::Parse,
        };
        Error::new(kind, e.to_string())
    }
}

/// `BEGIN:`/`END:` lines (case-insensitive keyword), with the raw name.
fn structure(line: &[u8]) -> Option<(bool, &[u8])> {
    // Most lines are properties: one byte rules them out.
    if !matches!(line.first(), Some(b'B' | b'b' | b'E' | b'e')) {
        return None;
    }
    let starts = |prefix: &[u8]| line.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix));
    if starts(b"BEGIN:") {
        line.get(6..).map(|name| (true, name))
    } else if starts(b"END:") {
        line.get(4..).map(|name| (false, name))
    } else {
        None
    }
}

/// Longest component name the scanner accepts.
const MAX_NAME: usize = 64;

/// An upper-cased component name, stored inline (no allocation per BEGIN/END line).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Name {
    bytes: [u8; MAX_NAME],
    len: u8,
}

impl Name {
    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_slice()))
    }
}

/// A component name, upper-cased: letters, digits, `-` and `_` only (trailing spaces
/// tolerated), at most [`MAX_NAME`] bytes.
fn component_name(raw: &[u8]) -> Option<Name> {
    let trimmed = raw.trim_ascii_end();
    let ok = !trimmed.is_empty()
        && trimmed.len() <= MAX_NAME
        && trimmed.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    if !ok {
        return None;
    }
    let mut bytes = [0u8; MAX_NAME];
    for (slot, b) in bytes.iter_mut().zip(trimmed) {
        *slot = b.to_ascii_uppercase();
    }
    Some(Name { bytes, len: u8::try_from(trimmed.len()).ok()? })
}

struct Reader<'a> {
    calendar: &'a CalendarId,
    options: &'a ReadOptions,
    /// The fingerprint policy, shared by every event for its deferred fingerprint.
    policy: Arc<FingerprintPolicy>,
    zones: Zones,
    warnings: Vec<String>,
    problems: Vec<Problem>,
    synthesized: HashMap<u128, usize>,
    empty_rrules: usize,
    /// The whole feed as text, when it is UTF-8: events point into it.
    shared: Option<Arc<String>>,
    events: Vec<Event>,
    offsets: Vec<usize>,
    /// VEVENTs waiting for a VTIMEZONE defined later: (start, end, analysis) in feed offsets.
    deferred: Vec<(usize, usize, Option<Analysis>)>,
    skipped: HashMap<String, usize>,
}

impl<'a> Reader<'a> {
    fn new(
        calendar: &'a CalendarId,
        options: &'a ReadOptions,
        policy: &Arc<FingerprintPolicy>,
        shared: Option<Arc<String>>,
    ) -> Self {
        Reader {
            calendar,
            options,
            policy: Arc::clone(policy),
            zones: Zones::default(),
            warnings: Vec::new(),
            problems: Vec::new(),
            synthesized: HashMap::new(),
            empty_rrules: 0,
            shared,
            events: Vec::new(),
            offsets: Vec::new(),
            deferred: Vec::new(),
            skipped: HashMap::new(),
        }
    }

    /// Takes in what the reader of the next piece of the feed found.
    fn absorb(&mut self, next: Reader<'_>) {
        self.zones.absorb(next.zones);
        self.warnings.extend(next.warnings);
        self.problems.extend(next.problems);
        self.empty_rrules += next.empty_rrules;
        self.events.extend(next.events);
        self.offsets.extend(next.offsets);
        self.deferred.extend(next.deferred);
        for (name, n) in next.skipped {
            *self.skipped.entry(name).or_default() += n;
        }
    }
    fn problem(&mut self, offset: usize, uid: Option<&str>, reason: impl Into<String>) {
        self.problems.push(Problem { offset, uid: uid.map(str::to_owned), reason: reason.into() });
    }

    /// A top-level component has closed: read it according to its kind.
    fn component(
        &mut self,
        name: Name,
        bytes: &[u8],
        (start, end): (usize, usize),
        base: usize,
        in_calendar: bool,
        analysis: Option<Analysis>,
    ) {
        match (name.as_slice(), in_calendar) {
            (b"VEVENT", true) => {
                if self.needs_later_zone(analysis.as_ref()) {
                    self.deferred.push((start + base, end + base, analysis));
                } else {
                    self.vevent(bytes, start + base, analysis);
                }
            }
            (b"VEVENT", false) => self.problem(start + base, None, "VEVENT outside any VCALENDAR"),
            (b"VTIMEZONE", _) => {
                let notes = self.zones.add(bytes);
                self.warnings.extend(notes);
            }
            (other, _) => *self.skipped.entry(String::from_utf8_lossy(other).into_owned()).or_default() += 1,
        }
    }

    /// Whether the RECURRENCE-ID names a zone that neither the tz database nor the zones seen so
    /// far define: it may be defined later in the feed.
    fn needs_later_zone(&self, analysis: Option<&Analysis>) -> bool {
        let Some((_, Some(tzid), _, _)) = analysis.and_then(|a| a.fields.rid.as_ref()) else { return false };
        crate::value::tz::resolve(tzid).is_none() && !self.zones.defines(tzid)
    }

    fn vevent(&mut self, bytes: &[u8], offset: usize, scanned: Option<Analysis>) {
        if let Some(event) = self.event(bytes, offset, scanned) {
            self.events.push(event);
            self.offsets.push(offset);
        }
    }

    fn event(&mut self, bytes: &[u8], offset: usize, scanned: Option<Analysis>) -> Option<Event> {
        if bytes.len() > self.options.limits.max_component_bytes {
            self.problem(
                offset,
                None,
                format!("component larger than {} bytes", self.options.limits.max_component_bytes),
            );
            return None;
        }
        // A shared buffer was validated as a whole; component ranges lie on line boundaries.
        let shared = self.shared.clone();
        let shared_text = shared.as_ref().and_then(|buf| buf.get(offset..offset + bytes.len()));
        let text: Cow<'_, str> = if let Some(t) = shared_text.or_else(|| std::str::from_utf8(bytes).ok()) {
            Cow::Borrowed(t)
        } else {
            self.warnings.push(format!("byte {offset}: text is not UTF-8; decoded as Windows-1252"));
            Cow::Owned(decode_windows_1252(bytes))
        };
        // The scan analyzed the bytes; text that had to be decoded is analyzed again as stored.
        let analysis = match (scanned, &text) {
            (Some(a), Cow::Borrowed(_)) => a,
            _ => analyze(text.as_bytes(), &self.options.policy),
        };
        let uid_text = analysis.fields.uid.clone().filter(|u| !u.is_empty());
        let uid_ref = uid_text.as_deref();
        if let Some(at) = analysis.first_malformed {
            self.problem(offset + at, uid_ref, "malformed content line");
            return None;
        }
        match &analysis.fields.dtstart {
            Some(Ok(())) => {}
            Some(Err(value)) => {
                self.problem(offset, uid_ref, format!("unreadable DTSTART {value:?}"));
                return None;
            }
            None => {
                self.problem(offset, uid_ref, "no DTSTART");
                return None;
            }
        }
        if let Some(why) = &analysis.fields.rrule_problem {
            self.problem(offset, uid_ref, why.clone());
            return None;
        }
        self.empty_rrules += analysis.fields.empty_rrules;
        let mut canonical = None;
        let uid = match uid_text.as_deref().map(Uid::new) {
            Some(Ok(uid)) => uid,
            Some(Err(e)) => {
                self.problem(offset, uid_ref, format!("invalid UID: {e}"));
                return None;
            }
            None => {
                let canon = canonicalize(text.as_bytes(), &self.options.policy);
                let uid = self.synthesize(canon.fingerprint)?;
                canonical = Some(canon);
                uid
            }
        };
        let recurrence_id = match &analysis.fields.rid {
            None => None,
            Some((value, tzid, is_date, range)) => {
                if let Some(rid) = self.recurrence_id(value, tzid.as_deref(), *is_date, offset) {
                    Some(rid.with_this_and_future(*range))
                } else {
                    self.problem(offset, uid_ref, format!("unreadable RECURRENCE-ID {value:?}"));
                    return None;
                }
            }
        };
        let key = EventKey::new(self.calendar.clone(), uid, recurrence_id);
        let raw = match (&text, &self.shared) {
            (Cow::Borrowed(_), Some(buf)) => RawText::shared(buf, offset, offset + bytes.len()),
            _ => RawText::owned(text.into_owned()),
        };
        let event = Event::assemble(key, &analysis, raw, Some(Arc::clone(&self.policy)));
        Some(match canonical {
            Some(canon) => event.with_canonical(canon),
            None => event,
        })
    }

    fn synthesize(&mut self, fp: crate::Fingerprint) -> Option<Uid> {
        let n = self.synthesized.entry(fp.as_u128()).or_default();
        *n += 1;
        let text = if *n == 1 { format!("calscope-synth-{fp}") } else { format!("calscope-synth-{fp}-{n}") };
        Uid::new(text).ok()
    }

    fn recurrence_id(&mut self, value: &str, tzid: Option<&str>, is_date: bool, offset: usize) -> Option<RecurrenceId> {
        let value = value.trim();
        let Some(tzid) = tzid else {
            return RecurrenceId::from_ical(value, None, is_date).ok();
        };
        if is_date || value.len() == 8 {
            return basic_date(value).map(RecurrenceId::date);
        }
        // A TZID on a UTC value: the Z wins (the value is explicit), as for DTSTART.
        if value.ends_with(['Z', 'z']) {
            return RecurrenceId::from_ical(value, None, false).ok();
        }
        let local = basic_date_time(value)?;
        let (utc, how) = self.zones.to_utc(tzid, local);
        if how == Resolution::Fallback {
            self.warnings.push(format!("byte {offset}: unknown time zone {tzid:?}; RECURRENCE-ID read as UTC"));
        }
        Some(RecurrenceId::instant(utc))
    }

    /// Reports keys whose copies differ in content and cannot be ordered by SEQUENCE or
    /// LAST-MODIFIED: the planner still picks one deterministically, but the feed is ambiguous.
    fn check_duplicates(&mut self, events: &[Event], offsets: &[usize]) {
        // Count by key digest first (cheap); group only the keys that repeat.
        let mut counts: DigestMap<u32> = DigestMap::default();
        for e in events {
            *counts.entry(e.key_digest()).or_default() += 1;
        }
        let mut by_key: HashMap<&EventKey, Vec<&Event>> = HashMap::new();
        let mut last_offset: HashMap<&EventKey, usize> = HashMap::new();
        for (e, &at) in events.iter().zip(offsets) {
            if counts.get(&e.key_digest()).is_some_and(|&n| n > 1) {
                by_key.entry(e.key()).or_default().push(e);
                last_offset.insert(e.key(), at);
            }
        }
        let mut ambiguous: Vec<&EventKey> = Vec::new();
        let mut duplicates = 0usize;
        for (key, copies) in &by_key {
            if copies.len() < 2 {
                continue;
            }
            duplicates += 1;
            let top = copies.iter().map(|e| e.recency()).max();
            let leaders: Vec<_> = copies.iter().filter(|e| Some(e.recency()) == top).collect();
            if leaders.iter().any(|e| e.fingerprint() != leaders.first().map_or(e.fingerprint(), |l| l.fingerprint())) {
                ambiguous.push(key);
            }
        }
        ambiguous.sort();
        for key in ambiguous {
            let at = last_offset.get(key).copied().unwrap_or_default();
            self.problem(
                at,
                Some(key.uid.as_str()),
                "copies with this key differ and SEQUENCE/LAST-MODIFIED cannot order them",
            );
        }
        if duplicates > 0 {
            self.warnings.push(format!("{duplicates} keys appear more than once; the newest copy is kept"));
        }
    }
}

/// Decodes Windows-1252 (a superset of Latin-1 for printable text) to UTF-8.
fn decode_windows_1252(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{FFFD}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{02C6}',
        '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{FFFD}', '\u{017D}', '\u{FFFD}', '\u{FFFD}', '\u{2018}',
        '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}',
        '\u{203A}', '\u{0153}', '\u{FFFD}', '\u{017E}', '\u{0178}',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => HIGH.get(usize::from(b - 0x80)).copied().unwrap_or('\u{FFFD}'),
            _ => char::from(b),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<FeedRead> {
        read_feed(&CalendarId::new("c").unwrap(), text.as_bytes(), &ReadOptions::default())
    }

    const EV: &str = "BEGIN:VEVENT\r\nUID:1\r\nDTSTART:20260105T090000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\n";

    #[test]
    fn structure_errors_reject_the_feed() {
        let kind = |t: &str| read(t).unwrap_err().kind();
        assert_eq!(kind("BEGIN:VEVENT\nEND:VEVENT\n"), ErrorKind::Parse);
        assert_eq!(kind(&format!("BEGIN:VCALENDAR\r\n{EV}")), ErrorKind::Parse);
        assert_eq!(kind("BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VTODO\nEND:VCALENDAR\n"), ErrorKind::Parse);
        let cut = read(&format!("BEGIN:VCALENDAR\r\n{}", &EV[..EV.len() - 5])).unwrap_err();
        assert!(cut.to_string().starts_with("truncated"), "{cut}");
        assert_eq!(kind("BeGIN:\0\n"), ErrorKind::Parse);
        assert_eq!(kind(""), ErrorKind::Parse);
        let deep = format!("BEGIN:VCALENDAR\n{}", "BEGIN:X\n".repeat(100));
        assert_eq!(kind(&deep), ErrorKind::LimitExceeded);
    }

    #[test]
    fn pieces_are_read_in_parallel_unless_uids_must_be_synthesized() {
        let body: String = (0..200).map(|i| EV.replace("UID:1", &format!("UID:{i}"))).collect();
        let text = format!("BEGIN:VCALENDAR\r\n{body}END:VCALENDAR\r\n");
        let data = text.as_bytes();
        let starts = split(data, 2);
        assert_eq!(starts.len(), 2);
        assert!(data[starts[1]..].starts_with(b"BEGIN:VEVENT"));
        let (c, options) = (CalendarId::new("c").unwrap(), ReadOptions::default());
        let policy = Arc::new(options.policy.clone());
        let shared = Arc::new(text.clone());
        let (reader, scan) = read_pieces(&c, &options, &policy, Some(&shared), data, 0, &starts).unwrap();
        assert_eq!((reader.events.len(), scan.calendars), (200, 1));
        let uidless = text.replace("UID:150\r\n", "");
        let shared = Arc::new(uidless.clone());
        let starts = split(uidless.as_bytes(), 2);
        assert!(read_pieces(&c, &options, &policy, Some(&shared), uidless.as_bytes(), 0, &starts).is_none());
    }

    #[test]
    fn several_calendars_bom_and_junk() {
        let text = format!(
            "\u{feff}junk\r\nBEGIN:VCALENDAR\r\n{EV}END:VCALENDAR\r\n\r\nBEGIN:VCALENDAR\r\n{}END:VCALENDAR\r\ntrailing",
            EV.replace("UID:1", "UID:2")
        );
        let r = read(&text).unwrap();
        assert_eq!((r.calendars, r.events.len()), (2, 2));
        assert!(r.is_complete());
        assert!(r.warnings.iter().any(|w| w.contains("byte order mark")));
        assert!(r.warnings.iter().any(|w| w.contains("outside any VCALENDAR")));
    }

    #[test]
    fn broken_components_are_reported_and_the_rest_kept() {
        let bad = EV.replace("UID:1", "UID:2").replace("DTSTART:20260105T090000Z", "DTSTART:INVALID");
        let r = read(&format!("BEGIN:VCALENDAR\r\n{EV}{bad}END:VCALENDAR\r\n")).unwrap();
        assert_eq!(r.events.len(), 1);
        assert!(!r.is_complete());
        assert_eq!(r.problems[0].uid.as_deref(), Some("2"));
        assert_eq!(r.problems[0].offset, "BEGIN:VCALENDAR\r\n".len() + EV.len());
        let (snapshot, _) = r.into_snapshot();
        assert!(!snapshot.is_complete());
    }

    #[test]
    fn missing_uids_are_synthesized_stably_and_distinctly() {
        let no_uid = EV.replace("UID:1\r\n", "");
        let text =
            format!("BEGIN:VCALENDAR\r\n{no_uid}{no_uid}{}END:VCALENDAR\r\n", no_uid.replace("SUMMARY:x", "SUMMARY:y"));
        let a = read(&text).unwrap();
        let b = read(&text.replace("\r\n", "\n")).unwrap();
        let uids = |r: &FeedRead| r.events.iter().map(|e| e.key().uid.to_string()).collect::<Vec<_>>();
        assert_eq!(uids(&a), uids(&b));
        let mut distinct = uids(&a);
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
        assert!(uids(&a)[1].ends_with("-2"));
    }

    #[test]
    fn nested_components_do_not_end_their_parent() {
        let with_alarm = EV
            .replace("SUMMARY:x\r\n", "SUMMARY:x\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n");
        let r = read(&format!("BEGIN:VCALENDAR\r\n{with_alarm}{with_alarm}END:VCALENDAR\r\n")).unwrap();
        assert_eq!(r.events.len(), 2);
        assert!(r.events[0].raw().ends_with("END:VEVENT\r\n"));
        assert!(r.events[0].raw().contains("END:VALARM"));
    }

    #[test]
    fn latin1_text_is_decoded() {
        let mut bytes =
            format!("BEGIN:VCALENDAR\r\n{}END:VCALENDAR\r\n", EV.replace("SUMMARY:x", "SUMMARY:caf_")).into_bytes();
        let pos = bytes.iter().position(|&b| b == b'_').unwrap();
        bytes[pos] = 0xE9;
        let r = read_feed(&CalendarId::new("c").unwrap(), &bytes, &ReadOptions::default()).unwrap();
        assert_eq!(r.events[0].details().summary.as_deref(), Some("caf\u{e9}"));
    }
}
