//! Content lines: physical line splitting (CRLF, LF or CR), unfolding at the byte level, and
//! splitting one logical line into name, parameters and value.

use std::borrow::Cow;

/// Iterates over the logical (unfolded) lines of iCalendar bytes.
///
/// Folds are removed before any decoding, so a fold inside a UTF-8 sequence is harmless. Empty
/// lines are yielded (as empty slices) so callers can report them; a physical line that starts
/// with a space or tab continues the previous one.
#[derive(Debug, Clone)]
pub(crate) struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
}

/// One logical line and the byte offset where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Line<'a> {
    pub(crate) offset: usize,
    /// Offset just past the line's terminator (and its continuation lines).
    pub(crate) end: usize,
    pub(crate) text: Cow<'a, [u8]>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// The next physical line from `at`: (content end, start of the next line).
    fn physical(&self, at: usize) -> (usize, usize) {
        let rest = self.data.get(at..).unwrap_or_default();
        match memchr::memchr2(b'\n', b'\r', rest) {
            None => (self.data.len(), self.data.len()),
            Some(i) => {
                let end = at + i;
                let next =
                    if rest.get(i) == Some(&b'\r') && rest.get(i + 1) == Some(&b'\n') { end + 2 } else { end + 1 };
                (end, next)
            }
        }
    }

    fn continues_at(&self, at: usize) -> bool {
        matches!(self.data.get(at), Some(b' ' | b'\t'))
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        if self.pos >= self.data.len() {
            return None;
        }
        let start = self.pos;
        let (end, mut next) = self.physical(start);
        let first = self.data.get(start..end).unwrap_or_default();
        if !self.continues_at(next) || end == start {
            self.pos = next;
            return Some(Line { offset: start, end: next, text: Cow::Borrowed(first) });
        }
        let mut text = first.to_vec();
        while self.continues_at(next) {
            let (cend, cnext) = self.physical(next);
            text.extend_from_slice(self.data.get(next + 1..cend).unwrap_or_default());
            next = cnext;
        }
        self.pos = next;
        Some(Line { offset: start, end: next, text: Cow::Owned(text) })
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
        // Parameters: the value starts at the first ':' outside double quotes.
        let mut at = 0;
        loop {
            let i = at + memchr::memchr2(b'"', b':', rest.get(at..)?)?;
            if rest.get(i) == Some(&b':') {
                return Some(Self { name, params: rest.get(..i)?, value: rest.get(i + 1..)? });
            }
            // An opening quote: skip to the closing one.
            at = i + 1 + memchr::memchr(b'"', rest.get(i + 1..)?)? + 1;
        }
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
        Lines::new(data).map(|l| l.text.into_owned()).collect()
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
