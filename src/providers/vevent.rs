//! Writing VEVENTs for providers whose servers answer JSON (Google, Microsoft Graph): content
//! lines folded at 75 octets, TEXT values escaped, parameter values quoted, addresses cleaned,
//! so that nothing a server sends can end a line or start a property.

/// Content lines, folded at 75 octets (on character boundaries) and joined with CRLF.
#[derive(Default)]
pub(crate) struct Lines(String);

impl Lines {
    pub(crate) fn push(&mut self, line: &str) {
        let mut width = 0usize;
        for c in line.chars() {
            let len = c.len_utf8();
            if width + len > 75 {
                self.0.push_str("\r\n ");
                width = 1;
            }
            self.0.push(c);
            width += len;
        }
        self.0.push_str("\r\n");
    }

    pub(crate) fn property(&mut self, name: &str, params: &str, value: &str) {
        self.push(&format!("{name}{params}:{value}"));
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }
}

/// A TEXT value (RFC 5545, 3.3.11): backslash, semicolon, comma and newlines escaped; other
/// control characters dropped.
pub(crate) fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A parameter value: quoted when it holds `:`, `;` or `,`; quotes and controls dropped.
pub(crate) fn param(value: &str) -> String {
    let clean: String = value.chars().filter(|c| !c.is_control() && *c != '"').collect();
    if clean.contains([':', ';', ',']) { format!("\"{clean}\"") } else { clean }
}

/// A calendar address without anything that could end the line.
pub(crate) fn address(email: &str) -> String {
    email.chars().filter(|c| !c.is_control() && !c.is_whitespace()).collect()
}

/// An RFC 3339 instant as a UTC basic DATE-TIME (`20261201T080000Z`).
pub(crate) fn utc_basic(value: &str) -> Option<String> {
    let at = chrono::DateTime::parse_from_rfc3339(value.trim()).ok()?.with_timezone(&chrono::Utc);
    Some(at.format("%Y%m%dT%H%M%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_lines_fold_on_character_boundaries() {
        assert_eq!(text("a,b;c\\d\ne\r"), "a\\,b\\;c\\\\d\\ne");
        let mut l = Lines::default();
        l.push(&format!("SUMMARY:{}", "ü".repeat(60)));
        let folded = l.finish();
        assert!(folded.split("\r\n").all(|line| line.len() <= 75), "{folded}");
        assert_eq!(folded.replace("\r\n ", ""), format!("SUMMARY:{}\r\n", "ü".repeat(60)));
    }

    #[test]
    fn params_and_addresses_cannot_break_the_line() {
        assert_eq!(param("Doe, Jane"), "\"Doe, Jane\"");
        assert_eq!(param("a\"b\r\n;c"), "\"ab;c\"");
        assert_eq!(address("a@b\r\nATTENDEE:x y"), "a@bATTENDEE:xy");
    }
}
