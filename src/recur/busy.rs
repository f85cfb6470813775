//! The busy rule and interval merging.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::details::{EventStatus, Transparency};

/// Whether an instance blocks its time.
///
/// The rule (RFC 4791, 7.10, and its FBTYPE table), one row each:
///
/// | instance | busy |
/// |---|---|
/// | `TRANSP:TRANSPARENT`, any status | free |
/// | `STATUS:CANCELLED` | free |
/// | zero length (or an end before its start) | free |
/// | `STATUS:TENTATIVE` | tentative (busy, reported as tentative) |
/// | anything else (`CONFIRMED`, no status, an unknown status) | busy |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Busy {
    /// The time stays free.
    Free,
    /// The time is taken, tentatively.
    Tentative,
    /// The time is taken.
    Busy,
}

impl Busy {
    /// The busy state of an instance from `start` to `end` with these properties.
    ///
    /// # Example
    /// ```
    /// use calscope::{Busy, EventStatus, Transparency};
    /// use chrono::{TimeZone, Utc};
    /// let (a, b) = (Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(), Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap());
    /// assert_eq!(Busy::of(None, None, a, b), Busy::Busy);
    /// assert_eq!(Busy::of(Some(&EventStatus::Tentative), None, a, b), Busy::Tentative);
    /// assert_eq!(Busy::of(None, Some(Transparency::Transparent), a, b), Busy::Free);
    /// assert_eq!(Busy::of(None, None, a, a), Busy::Free);
    /// ```
    #[must_use]
    pub fn of(
        status: Option<&EventStatus>,
        transparency: Option<Transparency>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Self {
        match (transparency, status) {
            (Some(Transparency::Transparent), _) | (_, Some(EventStatus::Cancelled)) => Self::Free,
            _ if end <= start => Self::Free,
            (_, Some(EventStatus::Tentative)) => Self::Tentative,
            _ => Self::Busy,
        }
    }
}

/// A half-open stretch of busy time, `[start, end)`, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BusyInterval {
    /// Where it begins.
    pub start: DateTime<Utc>,
    /// Where it ends (exclusive).
    pub end: DateTime<Utc>,
    /// Whether only tentative instances cover it.
    pub tentative: bool,
}

impl BusyInterval {
    /// A busy (`tentative` false) or tentative interval.
    #[must_use]
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>, tentative: bool) -> Self {
        Self { start, end, tentative }
    }
}

/// Busy intervals in any order, clipped to `[from, to)`, as sorted, disjoint intervals: busy
/// where any interval is busy, tentative where only tentative ones are. Intervals that overlap
/// or touch merge; where a tentative stretch meets a busy one, the two touch and stay apart.
/// Empty intervals (and everything outside the window) are dropped.
///
/// # Example
/// ```
/// use calscope::busy::{BusyInterval, merge};
/// use chrono::{TimeZone, Utc};
/// let h = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
/// let merged = merge(
///     [BusyInterval::new(h(10), h(12), true), BusyInterval::new(h(9), h(11), false), BusyInterval::new(h(12), h(13), true)],
///     h(0),
///     h(23),
/// );
/// assert_eq!(merged, [BusyInterval::new(h(9), h(11), false), BusyInterval::new(h(11), h(13), true)]);
/// ```
#[must_use]
pub fn merge(
    intervals: impl IntoIterator<Item = BusyInterval>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<BusyInterval> {
    // A sweep over the boundaries: +1 where an interval starts, -1 where it ends.
    let mut edges: Vec<Edge> = Vec::new();
    for i in intervals {
        let (start, end) = (i.start.max(from), i.end.min(to));
        if start < end {
            edges.push((start, i.tentative, 1));
            edges.push((end, i.tentative, -1));
        }
    }
    edges.sort_unstable_by_key(|&(at, _, _)| at);
    sweep(&edges)
}

/// One interval boundary: the instant, whether the interval is tentative, +1 for a start and
/// -1 for an end.
type Edge = (DateTime<Utc>, bool, i32);

/// [`merge`] of lists that are each merged already (sorted and disjoint, as [`merge`] answers
/// them: one calendar's busy time). Busy time is the union of the lists' busy intervals,
/// tentative time the union of their tentative ones less the busy time; each union is built
/// in linear pairwise passes, never sorted. This is a busy query over many calendars.
pub(crate) fn merge_lists(lists: &[&[BusyInterval]], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<BusyInterval> {
    if lists.iter().all(|l| l.iter().all(|i| !i.tentative)) {
        // Busy time only (the common case): the union of the lists as they are, clipped once.
        let firsts = lists
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => union_two(a, b),
                _ => pair.iter().flat_map(|l| l.iter().copied()).collect(),
            })
            .collect();
        let mut all = union_all(firsts);
        all.retain_mut(|i| {
            (i.start, i.end) = (i.start.max(from), i.end.min(to));
            i.start < i.end
        });
        return all;
    }
    let clip = |i: &BusyInterval| {
        let (start, end) = (i.start.max(from), i.end.min(to));
        (start < end).then_some((start, end))
    };
    let part = |tentative: bool| -> Vec<Vec<Span>> {
        lists
            .iter()
            .map(|list| list.iter().filter(|i| i.tentative == tentative).filter_map(clip).collect::<Vec<Span>>())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let busy = union_all(part(false));
    let tentative = union_all(part(true));
    if tentative.is_empty() {
        return busy.into_iter().map(|(s, e)| BusyInterval::new(s, e, false)).collect();
    }
    // Tentative time outside the busy time, interleaved with it in order.
    let mut out = Vec::with_capacity(busy.len() + tentative.len());
    let mut b = busy.iter().peekable();
    for &(mut start, end) in &tentative {
        while let Some(&&(bs, be)) = b.peek() {
            if be <= start {
                out.push(BusyInterval::new(bs, be, false));
                b.next();
                continue;
            }
            if bs >= end {
                break;
            }
            // The busy interval overlaps this tentative one: the part before it is tentative.
            if bs > start {
                out.push(BusyInterval::new(start, bs, true));
            }
            start = start.max(be);
            if be > end {
                break;
            }
            out.push(BusyInterval::new(bs, be, false));
            b.next();
        }
        if start < end {
            out.push(BusyInterval::new(start, end, true));
        }
    }
    out.extend(b.map(|&(s, e)| BusyInterval::new(s, e, false)));
    out
}

/// A plain time span.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// What [`union_two`] joins: something with a start and an end.
trait Extent: Copy {
    fn start(&self) -> DateTime<Utc>;
    fn end(&self) -> DateTime<Utc>;
    fn end_mut(&mut self) -> &mut DateTime<Utc>;
}

impl Extent for Span {
    fn start(&self) -> DateTime<Utc> {
        self.0
    }
    fn end(&self) -> DateTime<Utc> {
        self.1
    }
    fn end_mut(&mut self) -> &mut DateTime<Utc> {
        &mut self.1
    }
}

impl Extent for BusyInterval {
    fn start(&self) -> DateTime<Utc> {
        self.start
    }
    fn end(&self) -> DateTime<Utc> {
        self.end
    }
    fn end_mut(&mut self) -> &mut DateTime<Utc> {
        &mut self.end
    }
}

/// The union of sorted, disjoint lists: sorted, disjoint, and what touches or overlaps joined.
fn union_all<T: Extent>(mut runs: Vec<Vec<T>>) -> Vec<T> {
    while runs.len() > 1 {
        let mut next = Vec::with_capacity(runs.len().div_ceil(2));
        let mut pairs = runs.into_iter();
        while let Some(a) = pairs.next() {
            next.push(match pairs.next() {
                Some(b) => union_two(&a, &b),
                None => a,
            });
        }
        runs = next;
    }
    let mut one = runs.pop().unwrap_or_default();
    // A single list may still hold extents that touch: join them too.
    one.dedup_by(|next, last| {
        if next.start() <= last.end() {
            *last.end_mut() = last.end().max(next.end());
            true
        } else {
            false
        }
    });
    one
}

/// The union of two sorted, disjoint lists, joining what touches or overlaps.
fn union_two<T: Extent>(left: &[T], right: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(left.len() + right.len());
    let (mut at_left, mut at_right) = (0, 0);
    loop {
        let next = match (left.get(at_left), right.get(at_right)) {
            (Some(l), Some(r)) if r.start() < l.start() => {
                at_right += 1;
                *r
            }
            (Some(l), _) => {
                at_left += 1;
                *l
            }
            (None, Some(r)) => {
                at_right += 1;
                *r
            }
            (None, None) => break,
        };
        match out.last_mut() {
            Some(last) if next.start() <= last.end() => *last.end_mut() = last.end().max(next.end()),
            _ => out.push(next),
        }
    }
    out
}

/// The sweep over edges in time order: busy where any busy interval is open, else tentative
/// where a tentative one is.
fn sweep(edges: &[Edge]) -> Vec<BusyInterval> {
    let mut out: Vec<BusyInterval> = Vec::new();
    let (mut busy, mut tentative) = (0i64, 0i64);
    let mut open: Option<(DateTime<Utc>, bool)> = None;
    let mut i = 0;
    while let Some(&(at, _, _)) = edges.get(i) {
        // Every edge at this instant, then the state that holds from it on.
        while let Some(&(_, is_tentative, delta)) = edges.get(i).filter(|e| e.0 == at) {
            if is_tentative {
                tentative += i64::from(delta);
            } else {
                busy += i64::from(delta);
            }
            i += 1;
        }
        let state = if busy > 0 {
            Some(false)
        } else if tentative > 0 {
            Some(true)
        } else {
            None
        };
        if open.map(|(_, t)| t) != state {
            if let Some((start, t)) = open.take() {
                out.push(BusyInterval::new(start, at, t));
            }
            open = state.map(|t| (at, t));
        }
    }
    out
}

/// Merged intervals as plain time spans: touching intervals (busy next to tentative) coalesce.
#[must_use]
pub fn spans(merged: &[BusyInterval]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for i in merged {
        match out.last_mut() {
            Some(last) if last.1 >= i.start => last.1 = last.1.max(i.end),
            _ => out.push((i.start, i.end)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn h(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap()
    }

    // The busy rule, one test per row of its table.

    #[test]
    fn transparent_is_free_whatever_the_status() {
        for status in [None, Some(EventStatus::Confirmed), Some(EventStatus::Tentative), Some(EventStatus::Cancelled)] {
            assert_eq!(Busy::of(status.as_ref(), Some(Transparency::Transparent), h(9), h(10)), Busy::Free);
        }
    }

    #[test]
    fn cancelled_is_free() {
        assert_eq!(Busy::of(Some(&EventStatus::Cancelled), Some(Transparency::Opaque), h(9), h(10)), Busy::Free);
    }

    #[test]
    fn zero_length_is_free() {
        assert_eq!(Busy::of(None, None, h(9), h(9)), Busy::Free);
        assert_eq!(Busy::of(None, None, h(10), h(9)), Busy::Free);
    }

    #[test]
    fn tentative_is_busy_reported_as_tentative() {
        assert_eq!(Busy::of(Some(&EventStatus::Tentative), Some(Transparency::Opaque), h(9), h(10)), Busy::Tentative);
    }

    #[test]
    fn anything_else_is_busy() {
        for status in [None, Some(EventStatus::Confirmed), Some(EventStatus::Other("X-MAYBE".into()))] {
            assert_eq!(Busy::of(status.as_ref(), None, h(9), h(10)), Busy::Busy);
        }
    }

    // Merging.

    #[test]
    fn overlapping_and_touching_intervals_merge_and_the_window_clips() {
        let merged = merge(
            [
                BusyInterval::new(h(14), h(15), false),
                BusyInterval::new(h(9), h(10), false),
                BusyInterval::new(h(10), h(11), false),
                BusyInterval::new(h(9), h(9), false),
                BusyInterval::new(h(3), h(8), false),
                BusyInterval::new(h(20), h(23), false),
            ],
            h(6),
            h(21),
        );
        assert_eq!(
            merged,
            [
                BusyInterval::new(h(6), h(8), false),
                BusyInterval::new(h(9), h(11), false),
                BusyInterval::new(h(14), h(15), false),
                BusyInterval::new(h(20), h(21), false),
            ]
        );
        assert!(merge([BusyInterval::new(h(1), h(2), false)], h(3), h(4)).is_empty());
    }

    #[test]
    fn busy_wins_over_tentative_and_spans_coalesce() {
        let merged = merge(
            [
                BusyInterval::new(h(8), h(12), true),
                BusyInterval::new(h(9), h(10), false),
                BusyInterval::new(h(12), h(13), true),
            ],
            h(0),
            h(23),
        );
        assert_eq!(
            merged,
            [
                BusyInterval::new(h(8), h(9), true),
                BusyInterval::new(h(9), h(10), false),
                BusyInterval::new(h(10), h(13), true),
            ]
        );
        assert_eq!(spans(&merged), [(h(8), h(13))]);
    }

    /// Lists merged each (one per calendar) merge pairwise to what sorting all their
    /// intervals gives, for lists of any count, lengths, overlaps and tentative mixes.
    #[test]
    fn merging_merged_lists_equals_merging_everything() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let base = h(0);
        for round in 0..300 {
            let k = 1 + next(7);
            let mut lists = Vec::new();
            let mut all = Vec::new();
            for _ in 0..k {
                let raw: Vec<BusyInterval> = (0..next(30))
                    .map(|_| {
                        let s = i64::try_from(next(500)).unwrap();
                        let len = i64::try_from(next(40)).unwrap();
                        let at = |m: i64| base + chrono::Duration::minutes(m);
                        // Every other round busy time only (the fast path), else a tentative mix.
                        BusyInterval::new(at(s), at(s + len), round % 2 == 1 && next(3) == 0)
                    })
                    .collect();
                all.extend(raw.iter().copied());
                lists.push(merge(raw, h(1), h(7)));
            }
            let refs: Vec<&[BusyInterval]> = lists.iter().map(Vec::as_slice).collect();
            assert_eq!(merge_lists(&refs, h(1), h(7)), merge(all, h(1), h(7)), "round {round}");
        }
    }
}
