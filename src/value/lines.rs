//! Content lines: physical line splitting (CRLF, LF or CR), unfolding at the byte level, and
//! splitting one logical line into name, parameters and value.

/// Reads the logical (unfolded) lines of iCalendar bytes, one at a time (a lending iterator:
/// a folded line is joined into a buffer the reader reuses).
///
/// Folds are removed before any decoding, so a fold inside a UTF-8 sequence is harmless. Empty
/// lines are yielded (as empty slices) so callers can report them; a physical line that starts
/// with a space or tab continues the previous one.
#[derive(Debug, Clone)]
pub(crate) struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
    breaks: Breaks<'a>,
    joined: Vec<u8>,
}

/// One logical line and the byte offset where it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'l> {
    pub(crate) offset: usize,
    /// Offset just past the line's terminator (and its continuation lines).
    pub(crate) end: usize,
    pub(crate) text: &'l [u8],
    /// Whether the line holds a NUL byte: iCalendar allows no control character but tab in a
    /// content line, and a NUL is the one databases (Postgres `text`) and C strings cannot
    /// hold, so readers treat such a line as malformed.
    pub(crate) nul: bool,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0, breaks: Breaks::new(data), joined: Vec::new() }
    }

    /// The next physical line from `at`: (content end, start of the next line).
    #[inline]
    fn physical(&mut self, at: usize) -> (usize, usize) {
        match self.breaks.next_from(at) {
            None => (self.data.len(), self.data.len()),
            Some(end) => {
                let crlf = self.data.get(end) == Some(&b'\r') && self.data.get(end + 1) == Some(&b'\n');
                (end, if crlf { end + 2 } else { end + 1 })
            }
        }
    }

    fn continues_at(&self, at: usize) -> bool {
        matches!(self.data.get(at), Some(b' ' | b'\t'))
    }

    /// The next logical line, or `None` at the end.
    #[inline]
    pub(crate) fn next_line(&mut self) -> Option<Line<'_>> {
        if self.pos >= self.data.len() {
            return None;
        }
        let start = self.pos;
        let (end, mut next) = self.physical(start);
        let data = self.data;
        let first = data.get(start..end).unwrap_or_default();
        if !self.continues_at(next) || end == start {
            self.pos = next;
            let nul = self.breaks.nul_since(start);
            return Some(Line { offset: start, end: next, text: first, nul });
        }
        self.joined.clear();
        self.joined.extend_from_slice(first);
        while self.continues_at(next) {
            let (cend, cnext) = self.physical(next);
            self.joined.extend_from_slice(data.get(next + 1..cend).unwrap_or_default());
            next = cnext;
        }
        self.pos = next;
        let nul = self.breaks.nul_since(start);
        Some(Line { offset: start, end: next, text: &self.joined, nul })
    }
}

/// Finds line terminators (CR or LF) a 64-byte block at a time: one bit mask per block instead
/// of one search call per line.
#[derive(Debug, Clone)]
struct Breaks<'a> {
    data: &'a [u8],
    /// Start of the block `mask` describes.
    block: usize,
    /// Terminator positions in the block, as bits; cleared as they are passed.
    mask: u64,
    /// The last NUL byte passed: control bytes other than terminators are passed over one by
    /// one anyway, so noting NULs costs nothing on clean data.
    nul: Option<usize>,
}

const BLOCK: usize = 64;

/// Bit `i` set when byte `i` of a 64-byte chunk is below 0x0E, which CR and LF are: eight bytes
/// at a time in a `u64` (SWAR), then packed to one bit per byte. The lowest bit of each word is
/// exact; higher ones may be false (a borrow), so [`Breaks`] checks the byte of every hit.
fn chunk_mask(chunk: &[u8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut mask = 0u64;
    for (i, word) in chunk.chunks_exact(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_le_bytes(bytes);
        let hits = (w.wrapping_sub(ONES * 0x0E) & !w & HIGH) >> 7;
        // Gathers bit 8k to bit 56 + k (no two partial products meet, so no carries).
        mask |= (hits.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * i);
    }
    mask
}

impl<'a> Breaks<'a> {
    fn new(data: &'a [u8]) -> Self {
        let mut breaks = Self { data, block: 0, mask: 0, nul: None };
        breaks.mask = breaks.block_mask(0);
        breaks
    }

    fn block_mask(&self, block: usize) -> u64 {
        let rest = self.data.get(block..).unwrap_or_default();
        if let Some(chunk) = rest.get(..BLOCK) {
            return chunk_mask(chunk);
        }
        // The last, partial block: zero bytes are not terminators.
        let mut padded = [0u8; BLOCK];
        for (slot, &b) in padded.iter_mut().zip(rest) {
            *slot = b;
        }
        chunk_mask(&padded)
    }

    /// Whether a NUL byte was passed at or after `start`.
    fn nul_since(&self, start: usize) -> bool {
        self.nul.is_some_and(|at| at >= start)
    }

    /// The first terminator at or after `at`.
    #[inline]
    fn next_from(&mut self, at: usize) -> Option<usize> {
        if at >= self.block + BLOCK || at < self.block {
            self.block = at - at % BLOCK;
            self.mask = self.block_mask(self.block);
        }
        // Forget terminators before `at` (`at - block` < 64).
        self.mask &= u64::MAX << (at - self.block);
        loop {
            while self.mask == 0 {
                self.block += BLOCK;
                if self.block >= self.data.len() {
                    return None;
                }
                self.mask = self.block_mask(self.block);
            }
            let at = self.block + self.mask.trailing_zeros() as usize;
            if matches!(self.data.get(at), Some(b'\n' | b'\r')) {
                return Some(at);
            }
            // A tab or another control byte (or a borrow's false hit).
            if self.data.get(at) == Some(&0) {
                self.nul = Some(at);
            }
            self.mask &= self.mask - 1;
        }
    }
}

/// Bytes allowed in a property or parameter name: letters, digits, `-` and `_`.
const NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        #[allow(clippy::cast_possible_truncation)] // b < 256
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// A content line split into its parts; all slices borrow the unfolded line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContentLine<'a> {
    pub(crate) name: &'a [u8],
    /// Everything between the name and the value separator, starting with `;` (or empty).
    pub(crate) params: &'a [u8],
    pub(crate) value: &'a [u8],
}

impl<'a> ContentLine<'a> {
    /// Splits `name *(";" param) ":" value`. The value separator is the first `:` outside a
    /// quoted parameter value. Returns `None` when the line has no separator or no name.
    pub(crate) fn split(line: &'a [u8]) -> Option<Self> {
        let name_end = memchr::memchr2(b';', b':', line).filter(|&n| n > 0)?;
        let (name, rest) = line.split_at(name_end);
        if !name.iter().all(|&b| NAME_BYTE[usize::from(b)]) {
            return None;
        }
        if rest.first() == Some(&b':') {
            return Some(Self { name, params: &[], value: rest.get(1..)? });
        }
        let sep = value_separator(rest, 0)?;
        Some(Self { name, params: rest.get(..sep)?, value: rest.get(sep + 1..)? })
    }

    /// Whether the name equals `upper` (an upper-case ASCII name), ignoring case.
    pub(crate) fn is(&self, upper: &[u8]) -> bool {
        self.name.eq_ignore_ascii_case(upper)
    }

    /// Iterates over the parameters as (name, value) pairs; the value is as written, quotes
    /// included.
    pub(crate) fn params(&self) -> Params<'a> {
        Params { rest: self.params }
    }

    /// The value of parameter `upper`, without surrounding quotes.
    pub(crate) fn param(&self, upper: &[u8]) -> Option<&'a [u8]> {
        self.params().find(|(n, _)| n.eq_ignore_ascii_case(upper)).map(|(_, v)| unquote(v))
    }
}

/// The length of the property name that starts `line`: the run of name bytes.
pub(crate) fn name_len(line: &[u8]) -> usize {
    line.iter().position(|&b| !NAME_BYTE[usize::from(b)]).unwrap_or(line.len())
}

/// Where the value starts: the offset of the first `:` at or after `from` that lies outside
/// double quotes (parameter values may quote `:` and `;`). `None` when there is none, or a
/// quote is never closed.
pub(crate) fn value_separator(line: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let i = at + memchr::memchr2(b'"', b':', line.get(at..)?)?;
        if line.get(i) == Some(&b':') {
            return Some(i);
        }
        // An opening quote: skip to the closing one.
        at = i + 1 + memchr::memchr(b'"', line.get(i + 1..)?)? + 1;
    }
}

/// Removes one pair of surrounding double quotes.
pub(crate) fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// Iterator over `;name=value` parameters, honoring quotes.
#[derive(Debug, Clone)]
pub(crate) struct Params<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest.strip_prefix(b";").unwrap_or(self.rest);
        if rest.is_empty() {
            self.rest = rest;
            return None;
        }
        // The parameter ends at the next ';' outside double quotes (or at the end).
        let mut at = 0;
        let end = loop {
            let Some(i) = memchr::memchr2(b'"', b';', rest.get(at..).unwrap_or_default()) else { break rest.len() };
            let i = at + i;
            if rest.get(i) == Some(&b';') {
                break i;
            }
            match memchr::memchr(b'"', rest.get(i + 1..).unwrap_or_default()) {
                Some(j) => at = i + 1 + j + 1,
                None => break rest.len(),
            }
        };
        let (param, tail) = rest.split_at(end);
        self.rest = tail;
        Some(match param.iter().position(|&b| b == b'=') {
            Some(eq) => (param.get(..eq).unwrap_or_default(), param.get(eq + 1..).unwrap_or_default()),
            None => (param, &[][..]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(data: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Lines::new(data);
        let mut out = Vec::new();
        while let Some(l) = lines.next_line() {
            out.push(l.text.to_vec());
        }
        out
    }

    #[test]
    fn lines_holding_a_nul_are_marked() {
        let pad = "x".repeat(70); // a NUL in a later block than its line's start
        let data = format!("A:clean\r\nB:{pad}\0y\r\n \tfolded\r\nC:\ttab\r\nD:{pad}\r\n \0\r\nE:x");
        let mut lines = Lines::new(data.as_bytes());
        let mut marks = Vec::new();
        while let Some(l) = lines.next_line() {
            marks.push((l.text.first().copied(), l.nul));
        }
        let want = [(b'A', false), (b'B', true), (b'C', false), (b'D', true), (b'E', false)];
        assert_eq!(marks, want.map(|(c, n)| (Some(c), n)));
    }

    #[test]
    fn terminators_across_blocks() {
        // Lines of every length around the 64-byte block size, with every ending.
        for ending in ["\r\n", "\n", "\r"] {
            let lines: Vec<String> = (0..200).map(|i| format!("X-{i}:{}", "v".repeat(i % 131))).collect();
            let data = lines.iter().map(|l| [l.as_str(), ending].concat()).collect::<String>();
            let want: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
            assert_eq!(texts(data.as_bytes()), want, "ending {ending:?}");
            let unterminated = data.strip_suffix(ending).unwrap();
            assert_eq!(texts(unterminated.as_bytes()), want, "ending {ending:?}, no final terminator");
        }
    }

    #[test]
    fn unfolds_all_line_endings() {
        let want = vec![b"A:hello world".to_vec(), b"B:x".to_vec()];
        assert_eq!(texts(b"A:hello\r\n  world\r\nB:x\r\n"), want);
        assert_eq!(texts(b"A:hello\n  world\nB:x"), want);
        assert_eq!(texts(b"A:hello\r  world\rB:x\r"), want);
        assert_eq!(texts(b"A:hello\r\n\t world\nB:x"), want);
    }

    #[test]
    fn fold_inside_utf8_sequence_is_joined_before_decoding() {
        let data = "S:caf\u{e9}".as_bytes();
        let mut folded = data[..5].to_vec();
        folded.extend_from_slice(b"\r\n ");
        folded.extend_from_slice(&data[5..]);
        assert_eq!(texts(&folded), vec![data.to_vec()]);
    }

    #[test]
    fn splits_name_params_value_with_quotes() {
        let line = br#"ATTENDEE;CN="Doe: John";ROLE=REQ-PARTICIPANT:mailto:j@x.org"#;
        let cl = ContentLine::split(line).unwrap();
        assert_eq!(cl.name, b"ATTENDEE");
        assert_eq!(cl.value, b"mailto:j@x.org");
        let params: Vec<_> = cl.params().collect();
        assert_eq!(params, vec![(&b"CN"[..], &br#""Doe: John""#[..]), (&b"ROLE"[..], &b"REQ-PARTICIPANT"[..])]);
        assert_eq!(cl.param(b"CN"), Some(&b"Doe: John"[..]));
        assert!(ContentLine::split(b"no separator").is_none());
        assert!(ContentLine::split(b":value").is_none());
        assert!(ContentLine::split(b" :2.0").is_none());
        let odd = ContentLine::split(br#"X;A="1;2";B=3;C="4:5":v"#).unwrap();
        assert_eq!(odd.value, b"v");
        let params: Vec<_> = odd.params().collect();
        assert_eq!(params, vec![(&b"A"[..], &br#""1;2""#[..]), (&b"B"[..], &b"3"[..]), (&b"C"[..], &br#""4:5""#[..])]);
        assert!(ContentLine::split(b"SUM\0MARY:x").is_none());
    }
}
