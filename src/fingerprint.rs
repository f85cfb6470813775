//! Content fingerprints: 128 bits over a canonical form of one component.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::{Xxh3, xxh3_64, xxh3_128};

use crate::error::{Error, Result};
use crate::value::lines::{ContentLine, Lines};

/// A 128-bit content fingerprint of one component. Its text form is 32 lowercase hexadecimal
/// digits.
///
/// # The algorithm (a compatibility promise)
///
/// Stored rows keep the fingerprint they were written with. If the algorithm changed, every row
/// of every calendar would look changed after an upgrade and be rewritten, so the algorithm is
/// pinned by golden tests and only ever changes with a new major version.
///
/// 1. The component's bytes are split into physical lines at CRLF, LF or a lone CR, and
///    unfolded at the byte level (a line starting with a space or tab continues the previous
///    one; the one whitespace byte is dropped). Empty lines are skipped.
/// 2. Each logical line is split into name, parameters and value. The name and the parameter
///    names are upper-cased (ASCII); parameter and property values are kept byte for byte as
///    given. Parameters are sorted by (name, value). A line without a `name:` separator is
///    kept whole as an opaque line.
/// 3. Properties whose name is in the [`FingerprintPolicy`]'s volatile set are skipped, at every
///    nesting level.
/// 4. Each remaining line is hashed with XXH3-128 over a length-prefixed encoding of its parts.
///    A nested component (`VALARM`) is hashed recursively and counts as one line of its parent.
/// 5. A component's hash is XXH3-128 over a version tag, its upper-cased name and the sorted
///    hashes of its lines, so property order, folding and line endings never matter, while a
///    repeated line counts twice.
///
/// # Volatile properties
///
/// The default set is `DTSTAMP`, `LAST-MODIFIED`, `CREATED`, `PRODID` and `SEQUENCE`:
///
/// - `DTSTAMP` is the time the *file* was generated; feeds regenerate it on every fetch.
/// - `LAST-MODIFIED` and `CREATED` are metadata some servers regenerate on export; a real
///   change of content also changes a property that is fingerprinted.
/// - `PRODID` names the exporting software and can appear inside components after a
///   re-serialization.
/// - `SEQUENCE` is bumped by organizers *together with* the change it announces (time,
///   place, rule), which is fingerprinted; some exporters bump it on every export. Excluding
///   it costs no real change and saves those rewrites. The planner still reads SEQUENCE to
///   pick a winner among duplicates.
///
/// A consequence: a stored row's copy of these properties reflects the last *real* change,
/// not the latest fetch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(u128);

/// A 128-bit hash of one component's bytes exactly as the source sent them, minus its volatile
/// lines (see [`FingerprintPolicy`]). Its text form is 32 lowercase hexadecimal digits.
///
/// It is the planner's fast path: when a source sends a component byte for byte as before
/// (apart from volatile lines such as a regenerated DTSTAMP), the source hash matches the stored
/// one and the event is unchanged without computing its [`Fingerprint`]. When it differs, the
/// fingerprint decides, so a source that re-serializes (reorders properties, refolds lines,
/// changes line endings) costs time, never a write.
///
/// Equal source hashes imply equal fingerprints under any policy: the bytes that remain after
/// removing the volatile lines are the bytes the fingerprint reads. Unlike the fingerprint, the
/// source hash carries no compatibility promise: a store that keeps it from an older version
/// only loses the fast path for rows whose hash differs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceHash(u128);

/// The shared 128-bit hash behaviour: raw value, bytes, hex text and serde as hex text.
macro_rules! hash128 {
    ($t:ident) => {
        impl $t {
            /// Wraps a raw 128-bit value (as stored by a host).
            #[must_use]
            pub const fn from_u128(value: u128) -> Self {
                Self(value)
            }

            /// The raw 128-bit value.
            #[must_use]
            pub const fn as_u128(self) -> u128 {
                self.0
            }

            /// The 16 bytes, big-endian (the order of the hex form).
            #[must_use]
            pub const fn to_bytes(self) -> [u8; 16] {
                self.0.to_be_bytes()
            }

            /// Reads the 16 bytes written by [`to_bytes`](Self::to_bytes).
            #[must_use]
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(u128::from_be_bytes(bytes))
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:032x}", self.0)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({})"), self)
            }
        }

        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                let bad = || Error::invalid(concat!(stringify!($t), " is not 32 hex digits"));
                if s.len() != 32 {
                    return Err(bad());
                }
                u128::from_str_radix(s, 16).map(Self).map_err(|_| bad())
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hash128!(Fingerprint);
hash128!(SourceHash);

impl Fingerprint {
    /// Fingerprints one component's text under `policy`.
    ///
    /// # Example
    /// ```
    /// use calscope::{Fingerprint, FingerprintPolicy};
    /// let policy = FingerprintPolicy::default();
    /// let a = Fingerprint::of_component(b"BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Hi\r\nDTSTAMP:20240101T000000Z\r\nEND:VEVENT\r\n", &policy);
    /// let b = Fingerprint::of_component(b"BEGIN:VEVENT\nDTSTAMP:20250101T000000Z\nsummary:Hi\nUID:1\nEND:VEVENT", &policy);
    /// assert_eq!(a, b);
    /// ```
    #[must_use]
    pub fn of_component(component: &[u8], policy: &FingerprintPolicy) -> Self {
        canonicalize(component, policy).fingerprint
    }
}

/// Which properties a fingerprint ignores. Configurable per source.
///
/// # Example
/// ```
/// use calscope::FingerprintPolicy;
/// // A feed that rewrites an X- property on every export:
/// let policy = FingerprintPolicy::default().with_volatile("X-MS-OLK-AUTOFILLLOCATION");
/// assert!(policy.is_volatile("dtstamp"));
/// assert!(policy.is_volatile("X-MS-OLK-AUTOFILLLOCATION"));
/// ```
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FingerprintPolicy {
    volatile: Vec<String>,
}

/// The default volatile properties; see [`Fingerprint`] for the reasons.
pub const DEFAULT_VOLATILE: [&str; 5] = ["CREATED", "DTSTAMP", "LAST-MODIFIED", "PRODID", "SEQUENCE"];

impl Default for FingerprintPolicy {
    fn default() -> Self {
        Self::with_volatile_set(DEFAULT_VOLATILE)
    }
}

impl FingerprintPolicy {
    /// A policy that ignores exactly `names` (case-insensitive). An empty set fingerprints
    /// every property.
    #[must_use]
    pub fn with_volatile_set<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut volatile: Vec<String> = names.into_iter().map(|n| n.as_ref().to_ascii_uppercase()).collect();
        volatile.sort();
        volatile.dedup();
        Self { volatile }
    }

    /// This policy plus one more volatile property.
    #[must_use]
    pub fn with_volatile(mut self, name: &str) -> Self {
        let name = name.to_ascii_uppercase();
        if let Err(at) = self.volatile.binary_search(&name) {
            self.volatile.insert(at, name);
        }
        self
    }

    /// Whether property `name` is ignored (case-insensitive).
    #[must_use]
    pub fn is_volatile(&self, name: &str) -> bool {
        self.is_volatile_bytes(name.as_bytes())
    }

    pub(crate) fn is_volatile_bytes(&self, name: &[u8]) -> bool {
        self.volatile.iter().any(|v| v.as_bytes().eq_ignore_ascii_case(name))
    }

    /// The ignored property names, upper-cased and sorted.
    #[must_use]
    pub fn volatile(&self) -> &[String] {
        &self.volatile
    }
}

/// A compact per-property summary of a component, kept beside its fingerprint so a plan can
/// say *which* properties changed.
///
/// One 64-bit entry per top-level property line (and per nested component): 32 bits of the
/// property name's hash and 32 bits of the line's hash, sorted. The text form is the entries
/// as 16-hex-digit groups.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct PropertyDigest(Box<[u64]>);

impl PropertyDigest {
    /// The digest as bytes (8 per entry, big-endian), for storage.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|e| e.to_be_bytes()).collect()
    }

    /// Reads bytes written by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the length is not a
    /// multiple of 8.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() % 8 != 0 {
            return Err(Error::invalid("property digest length is not a multiple of 8"));
        }
        let mut entries: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_be_bytes(b)
            })
            .collect();
        entries.sort_unstable();
        Ok(Self(entries.into_boxed_slice()))
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the digest has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Name hashes of the properties whose lines differ between `self` and `other`.
    pub(crate) fn differing_names(&self, other: &Self) -> Vec<u32> {
        let (mine, theirs) = (&self.0, &other.0);
        let (mut i, mut j) = (0, 0);
        let mut names = Vec::new();
        loop {
            let diff = match (mine.get(i), theirs.get(j)) {
                (None, None) => break,
                (Some(&x), Some(&y)) if x == y => {
                    i += 1;
                    j += 1;
                    continue;
                }
                (Some(&x), Some(&y)) if x < y => {
                    i += 1;
                    x
                }
                (Some(&x), None) => {
                    i += 1;
                    x
                }
                (_, Some(&y)) => {
                    j += 1;
                    y
                }
            };
            #[allow(clippy::cast_possible_truncation)] // the upper half is the name hash
            names.push((diff >> 32) as u32);
        }
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl fmt::Debug for PropertyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PropertyDigest({} entries)", self.0.len())
    }
}

impl fmt::Display for PropertyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &*self.0 {
            write!(f, "{e:016x}")?;
        }
        Ok(())
    }
}

impl FromStr for PropertyDigest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.len() % 16 != 0 || !s.is_ascii() {
            return Err(Error::invalid("property digest is not groups of 16 hex digits"));
        }
        let mut bytes = Vec::with_capacity(s.len() / 2);
        for chunk in s.as_bytes().chunks_exact(16) {
            let text = std::str::from_utf8(chunk).map_err(|_| Error::invalid("property digest is not hex"))?;
            let v = u64::from_str_radix(text, 16).map_err(|_| Error::invalid("property digest is not hex"))?;
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        Self::from_bytes(&bytes)
    }
}

impl Serialize for PropertyDigest {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PropertyDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The hash of an (upper-case) property name as used in [`PropertyDigest`] entries.
#[allow(clippy::cast_possible_truncation)] // 32 bits are enough to name a property
pub(crate) fn name_hash(upper: &[u8]) -> u32 {
    xxh3_64(upper) as u32
}

/// What [`canonicalize`] computes for one component.
#[derive(Debug, Clone)]
pub(crate) struct Canonical {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) digest: PropertyDigest,
}

const VERSION_TAG: &[u8] = b"calscope-fingerprint-v1";
const TAG_PROPERTY: u8 = 1;
const TAG_OPAQUE: u8 = 2;

struct Frame {
    name: Vec<u8>,
    entries: Vec<(u32, u128)>,
}

impl Frame {
    /// Sorts the entries and hashes the frame; returns (name hash, hash). The entries stay
    /// sorted in place for the caller to read.
    fn seal(&mut self) -> (u32, u128) {
        self.entries.sort_unstable_by_key(|&(_, h)| h);
        let mut hasher = Xxh3::new();
        hasher.update(VERSION_TAG);
        push_part(&mut hasher, &self.name);
        for (_, h) in &self.entries {
            hasher.update(&h.to_le_bytes());
        }
        (name_hash(&self.name), hasher.digest128())
    }
}

fn push_part(hasher: &mut Xxh3, part: &[u8]) {
    // Lengths above u32::MAX cannot occur: components are capped far below that.
    #[allow(clippy::cast_possible_truncation)]
    hasher.update(&(part.len() as u32).to_le_bytes());
    hasher.update(part);
}

fn put_part(buf: &mut Vec<u8>, part: &[u8]) {
    #[allow(clippy::cast_possible_truncation)]
    buf.extend_from_slice(&(part.len() as u32).to_le_bytes());
    buf.extend_from_slice(part);
}

/// Compares parameter names ignoring ASCII case, then values byte for byte.
fn param_order(a: &(&[u8], &[u8]), b: &(&[u8], &[u8])) -> std::cmp::Ordering {
    a.0.iter().map(u8::to_ascii_uppercase).cmp(b.0.iter().map(u8::to_ascii_uppercase)).then_with(|| a.1.cmp(b.1))
}

/// The digest entry of one property line: (name hash, line hash).
fn hash_property(cl: &ContentLine<'_>, buf: &mut Vec<u8>) -> (u32, u128) {
    buf.clear();
    buf.push(TAG_PROPERTY);
    #[allow(clippy::cast_possible_truncation)]
    buf.extend_from_slice(&(cl.name.len() as u32).to_le_bytes());
    let name_at = buf.len();
    buf.extend_from_slice(cl.name);
    let upper = buf.get_mut(name_at..).unwrap_or_default();
    upper.make_ascii_uppercase();
    let name = name_hash(upper);
    // Most lines have a handful of parameters: sort them on the stack.
    let mut inline: [(&[u8], &[u8]); 8] = [(&[], &[]); 8];
    let mut count = 0usize;
    let mut spill: Vec<(&[u8], &[u8])> = Vec::new();
    for p in cl.params() {
        match inline.get_mut(count) {
            Some(slot) if spill.is_empty() => *slot = p,
            _ => {
                if spill.is_empty() {
                    spill.extend_from_slice(&inline);
                }
                spill.push(p);
            }
        }
        count += 1;
    }
    let params: &mut [(&[u8], &[u8])] =
        if spill.is_empty() { inline.get_mut(..count).unwrap_or_default() } else { &mut spill };
    params.sort_unstable_by(param_order);
    #[allow(clippy::cast_possible_truncation)]
    buf.extend_from_slice(&(params.len() as u32).to_le_bytes());
    for (n, v) in params.iter() {
        #[allow(clippy::cast_possible_truncation)]
        buf.extend_from_slice(&(n.len() as u32).to_le_bytes());
        let at = buf.len();
        buf.extend_from_slice(n);
        buf.get_mut(at..).unwrap_or_default().make_ascii_uppercase();
        put_part(buf, v);
    }
    put_part(buf, cl.value);
    (name, xxh3_128(buf))
}

/// Canonicalizes one component fed line by line (see [`canonicalize`]). Reusable: `finish`
/// resets it, keeping its buffers for the next component.
#[derive(Default)]
pub(crate) struct Canonicalizer {
    stack: Vec<Frame>,
    top: Option<Frame>,
    spare: Vec<Frame>,
    buf: Vec<u8>,
    started: bool,
}

impl Canonicalizer {
    /// Whether the component's END was seen: later lines are ignored.
    pub(crate) fn is_done(&self) -> bool {
        self.top.is_some()
    }

    fn open(&mut self, name: &[u8]) {
        let mut frame = self.spare.pop().unwrap_or_else(|| Frame { name: Vec::new(), entries: Vec::with_capacity(32) });
        frame.name.clear();
        frame.name.extend(name.iter().map(u8::to_ascii_uppercase));
        frame.entries.clear();
        self.stack.push(frame);
    }

    /// Closes the innermost frame into its parent, or makes it the top.
    fn close(&mut self) {
        if let Some(mut frame) = self.stack.pop() {
            if let Some(parent) = self.stack.last_mut() {
                parent.entries.push(frame.seal());
                self.spare.push(frame);
            } else if self.top.is_none() {
                self.top = Some(frame);
            } else {
                self.spare.push(frame);
            }
        }
    }

    /// Feeds one logical line.
    pub(crate) fn line(&mut self, text: &[u8], policy: &FingerprintPolicy) {
        if self.is_done() || text.is_empty() {
            return;
        }
        let Some(cl) = ContentLine::split(text) else {
            if self.started {
                if let Some(frame) = self.stack.last_mut() {
                    self.buf.clear();
                    self.buf.push(TAG_OPAQUE);
                    self.buf.extend_from_slice(text);
                    frame.entries.push((name_hash(b""), xxh3_128(&self.buf)));
                }
            }
            return;
        };
        if cl.is(b"BEGIN") {
            self.started = true;
            self.open(cl.value);
            return;
        }
        if !self.started {
            // Properties before any BEGIN: an unnamed component.
            self.started = true;
            self.open(b"");
        }
        if cl.is(b"END") {
            self.close();
            return;
        }
        if !policy.is_volatile_bytes(cl.name) {
            let entry = hash_property(&cl, &mut self.buf);
            if let Some(frame) = self.stack.last_mut() {
                frame.entries.push(entry);
            }
        }
    }

    /// The fingerprint and digest; unbalanced nesting is closed first. Resets for reuse.
    pub(crate) fn finish(&mut self) -> Canonical {
        while !self.stack.is_empty() {
            self.close();
        }
        let mut top = self.top.take().unwrap_or_else(|| Frame { name: Vec::new(), entries: Vec::new() });
        let (_, fingerprint) = top.seal();
        let mut digest: Vec<u64> = top
            .entries
            .iter()
            .map(|&(nh, h)| {
                #[allow(clippy::cast_possible_truncation)]
                let low = h as u32;
                (u64::from(nh) << 32) | u64::from(low)
            })
            .collect();
        digest.sort_unstable();
        self.spare.push(top);
        let canonical =
            Canonical { fingerprint: Fingerprint(fingerprint), digest: PropertyDigest(digest.into_boxed_slice()) };
        self.started = false;
        canonical
    }
}

/// Canonicalizes one component (see [`Fingerprint`] for the algorithm).
///
/// The first `BEGIN` line opens the component; lines before it and after its `END` are
/// ignored. Text without any `BEGIN` is read as the body of an unnamed component. Never fails:
/// malformed lines are hashed as opaque lines and unbalanced nesting is closed at the end.
pub(crate) fn canonicalize(component: &[u8], policy: &FingerprintPolicy) -> Canonical {
    thread_local! {
        // Events are fingerprinted one after another: keep the frames' buffers between them.
        static SPARE: std::cell::RefCell<Canonicalizer> = std::cell::RefCell::new(Canonicalizer::default());
    }
    let run = |c: &mut Canonicalizer| {
        let mut lines = Lines::new(component);
        while let Some(line) = lines.next_line() {
            if c.is_done() {
                break;
            }
            c.line(line.text, policy);
        }
        c.finish()
    };
    SPARE
        .try_with(|cell| cell.try_borrow_mut().ok().map(|mut c| run(&mut c)))
        .ok()
        .flatten()
        .unwrap_or_else(|| run(&mut Canonicalizer::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(text: &str) -> Fingerprint {
        Fingerprint::of_component(text.as_bytes(), &FingerprintPolicy::default())
    }

    const BASE: &str = "BEGIN:VEVENT\r\nUID:a@x\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;TZID=Europe/Berlin;VALUE=DATE-TIME:20240105T100000\r\nSUMMARY:Planning\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n";

    #[test]
    fn insensitive_to_order_case_folding_endings_and_volatile() {
        let reordered = "BEGIN:VEVENT\nsummary:Planning\nBEGIN:VALARM\nTRIGGER:-PT15M\nACTION:DISPLAY\nEND:VALARM\nDTSTART;value=DATE-TIME;tzid=Europe/Berlin:20240105T100000\nUID:a@x\nDTSTAMP:20991231T000000Z\nSEQUENCE:7\nEND:VEVENT";
        assert_eq!(fp(BASE), fp(reordered));
        let folded = BASE.replace("SUMMARY:Planning", "SUMMARY:Plan\r\n ning");
        assert_eq!(fp(BASE), fp(&folded));
        assert_eq!(fp(BASE), fp(&BASE.replace("\r\n", "\r")));
    }

    #[test]
    fn real_changes_change_the_fingerprint() {
        assert_ne!(fp(BASE), fp(&BASE.replace("Planning", "planning")));
        assert_ne!(fp(BASE), fp(&BASE.replace("-PT15M", "-PT10M")));
        assert_ne!(fp(BASE), fp(&BASE.replace("Europe/Berlin", "Europe/Paris")));
        let strict = FingerprintPolicy::with_volatile_set::<_, &str>([]);
        let a = Fingerprint::of_component(BASE.as_bytes(), &strict);
        let b = Fingerprint::of_component(BASE.replace("20240101T000000Z", "20240102T000000Z").as_bytes(), &strict);
        assert_ne!(a, b);
    }

    #[test]
    fn moving_a_property_into_an_alarm_is_a_change() {
        let moved = BASE.replace("SUMMARY:Planning\r\nBEGIN:VALARM\r\n", "BEGIN:VALARM\r\nSUMMARY:Planning\r\n");
        assert_ne!(fp(BASE), fp(&moved));
    }

    #[test]
    fn digest_names_the_changed_property() {
        let p = FingerprintPolicy::default();
        let a = canonicalize(BASE.as_bytes(), &p).digest;
        let b = canonicalize(BASE.replace("Planning", "Review").as_bytes(), &p).digest;
        assert_eq!(a.differing_names(&b), vec![name_hash(b"SUMMARY")]);
        let round: PropertyDigest = a.to_string().parse().unwrap();
        assert_eq!(round, a);
        assert_eq!(PropertyDigest::from_bytes(&a.to_bytes()).unwrap(), a);
    }

    #[test]
    fn text_forms_round_trip() {
        let f = fp(BASE);
        assert_eq!(f.to_string().parse::<Fingerprint>().unwrap(), f);
        assert_eq!(Fingerprint::from_bytes(f.to_bytes()), f);
        assert!("xyz".parse::<Fingerprint>().is_err());
    }
}
