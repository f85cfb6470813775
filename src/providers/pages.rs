//! The bound on every paging loop of the API providers: a server that pages forever, repeats a
//! page token or link, or sends more items than a cap stops the fetch with
//! [`ErrorKind::LimitExceeded`] before anything is written.

use std::collections::HashSet;

use crate::error::{Error, ErrorKind, Result};

/// Counts one listing's pages and items against its caps.
pub(crate) struct Pages<'a> {
    what: &'a str,
    shown: &'a str,
    page_cap: usize,
    item_cap: usize,
    paged: usize,
    counted: usize,
    seen: HashSet<String>,
}

impl<'a> Pages<'a> {
    /// A listing called `what` from the server `shown`.
    pub(crate) fn new(what: &'a str, shown: &'a str, max_pages: usize, max_items: usize) -> Self {
        Self { what, shown, page_cap: max_pages, item_cap: max_items, paged: 0, counted: 0, seen: HashSet::new() }
    }

    /// One more page holding `items` items.
    ///
    /// # Errors
    /// [`ErrorKind::LimitExceeded`] past either cap.
    pub(crate) fn page(&mut self, items: usize) -> Result<()> {
        self.paged += 1;
        self.counted = self.counted.saturating_add(items);
        if self.paged > self.page_cap {
            return Err(self.exceeded(&format!("paged past {} pages", self.page_cap)));
        }
        if self.counted > self.item_cap {
            return Err(self.exceeded(&format!("sent more than {} items", self.item_cap)));
        }
        Ok(())
    }

    /// The token or link of the next page.
    ///
    /// # Errors
    /// [`ErrorKind::LimitExceeded`] when it was handed out before in this listing.
    pub(crate) fn next(&mut self, token: &str) -> Result<()> {
        if self.seen.insert(token.to_owned()) { Ok(()) } else { Err(self.exceeded("repeated a page")) }
    }

    fn exceeded(&self, why: &str) -> Error {
        Error::new(ErrorKind::LimitExceeded, format!("{}: {} {why}", self.shown, self.what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_repeats_stop_a_listing() {
        let mut pages = Pages::new("events.list", "https://x", 2, 10);
        assert!(pages.page(4).is_ok() && pages.next("a").is_ok() && pages.page(4).is_ok());
        assert_eq!(pages.page(0).unwrap_err().kind(), ErrorKind::LimitExceeded, "a third page");
        let mut pages = Pages::new("events.list", "https://x", 100, 10);
        assert!(pages.page(10).is_ok());
        assert_eq!(pages.page(1).unwrap_err().kind(), ErrorKind::LimitExceeded, "an eleventh item");
        let mut pages = Pages::new("events.list", "https://x", 100, 100);
        assert!(pages.next("a").is_ok() && pages.next("b").is_ok());
        assert_eq!(pages.next("a").unwrap_err().kind(), ErrorKind::LimitExceeded, "a repeated token");
    }
}
