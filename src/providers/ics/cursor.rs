//! The cursor of feed sources: HTTP validators and a hash of the text.

use crate::id::Cursor;

/// Validators kept in a cursor: `etag`, `last-modified` and the body hash, one per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Validators {
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
    pub(crate) hash: Option<String>,
}

impl Validators {
    pub(crate) fn from_cursor(cursor: Option<&Cursor>) -> Self {
        let mut v = Self::default();
        for line in cursor.map(Cursor::as_str).unwrap_or_default().lines() {
            match line.split_once(' ') {
                Some(("etag", x)) => v.etag = Some(x.to_owned()),
                Some(("last-modified", x)) => v.last_modified = Some(x.to_owned()),
                Some(("xxh3", x)) => v.hash = Some(x.to_owned()),
                _ => {}
            }
        }
        v
    }

    pub(crate) fn to_cursor(&self) -> Cursor {
        let mut text = String::new();
        for (k, v) in [("etag", &self.etag), ("last-modified", &self.last_modified), ("xxh3", &self.hash)] {
            if let Some(v) = v.as_ref().filter(|v| !v.contains(['\r', '\n'])) {
                text.push_str(k);
                text.push(' ');
                text.push_str(v);
                text.push('\n');
            }
        }
        Cursor::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_round_trip_through_cursors() {
        let v = Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Tue, 01 Dec 2026 10:00:00 GMT".into()),
            hash: Some("ff".into()),
        };
        assert_eq!(Validators::from_cursor(Some(&v.to_cursor())), v);
        assert_eq!(Validators::from_cursor(None), Validators::default());
        let injected = Validators { etag: Some("x\nxxh3 00".into()), ..Validators::default() };
        assert_eq!(Validators::from_cursor(Some(&injected.to_cursor())), Validators::default());
    }
}
