//! The generated bench feed: ~700 bytes per event with real-world features (folded lines,
//! CRLF, overrides listed before masters, Windows zone names, long Outlook UIDs, attendees,
//! alarms). Shared by the benches and the `gen_feed` example.

/// Builds a feed of `n` events; `stamp` changes every DTSTAMP.
#[allow(dead_code)] // each bench uses some of these
pub(crate) fn feed(n: usize, stamp: u32) -> Vec<u8> {
    feed_variant(n, stamp, 0)
}

/// [`feed`] where every 100th event's SUMMARY carries `variant` (0: as in [`feed`]): two
/// variants differ in exactly 1 % of events.
pub(crate) fn feed_variant(n: usize, stamp: u32, variant: u32) -> Vec<u8> {
    let mut out = String::with_capacity(n * 620);
    out.push_str("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calscope//bench//EN\r\nBEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n");
    let mut i = 0;
    while i < n {
        let uid = format!(
            "040000008200E00074C5B7101A82E00800000000{i:016X}1D8A3B4C5D6E7F80910000000000000000100000004A8B9C0D1E2F{i:08}"
        );
        let (master_day, over) = (1 + i % 28, i % 10 == 0 && i + 1 < n);
        if over {
            // Google lists the override before its master.
            let summary = summary("Moved occurrence", i, variant);
            out.push_str(&event(&uid, Some(&format!("202602{master_day:02}T100000")), i + 1, stamp, &summary));
            i += 1;
        }
        out.push_str(&event(&uid, None, i, stamp, &summary("Weekly planning", i, variant)));
        i += 1;
    }
    out.push_str("END:VCALENDAR\r\n");
    out.into_bytes()
}

/// The SUMMARY of event number `i`: every 100th carries the variant.
fn summary(base: &str, i: usize, variant: u32) -> String {
    if variant != 0 && i % 100 == 0 { format!("{base} v{variant}") } else { base.to_owned() }
}

fn event(uid: &str, rid: Option<&str>, i: usize, stamp: u32, summary: &str) -> String {
    let folded_uid = format!("UID:{uid}");
    let (head, tail) = folded_uid.split_at(74);
    let rid_line = rid.map(|r| format!("RECURRENCE-ID;TZID=W. Europe Standard Time:{r}\r\n")).unwrap_or_default();
    format!(
        "BEGIN:VEVENT\r\n{head}\r\n {tail}\r\n{rid_line}DTSTAMP:20260101T{:06}Z\r\nDTSTART;TZID=W. Europe Standard Time:202602{:02}T100000\r\nDTEND;TZID=W. Europe Standard Time:202602{:02}T110000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\nSUMMARY:{summary} {i}\r\nDESCRIPTION:Agenda: review the roadmap\\, the open issues and the release plan f\r\n or the next quarter. Dial-in details follow.\r\nLOCATION:Room {}\r\nORGANIZER;CN=Planner:mailto:planner@example.com\r\nATTENDEE;CN=\"Doe, Jane\";ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:jane@example.com\r\nSEQUENCE:0\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n",
        stamp % 235_959,
        1 + i % 28,
        1 + i % 28,
        i % 40
    )
}
