//! The fingerprint algorithm is a compatibility promise: stored rows keep the fingerprint they
//! were written with, so a change here would rewrite every row of every host after an upgrade.
//! These values must never change within a major version.

use calscope::{Fingerprint, FingerprintPolicy};

const SIMPLE: &str = "BEGIN:VEVENT\r\nUID:golden-1@calscope\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z\r\nDTEND:20260105T100000Z\r\nSUMMARY:Weekly planning\r\nEND:VEVENT\r\n";

const RICH: &str = "BEGIN:VEVENT\r\nUID:golden-2@calscope\r\nDTSTAMP:20260101T000000Z\r\nSEQUENCE:3\r\nDTSTART;TZID=Europe/Berlin:20260105T100000\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\nEXDATE;TZID=Europe/Berlin:20260112T100000\r\nORGANIZER;CN=Ann:mailto:ann@example.com\r\nATTENDEE;ROLE=REQ-PARTICIPANT;CN=\"Doe, Bo\";PARTSTAT=ACCEPTED:mailto:bo@example.com\r\nLOCATION:Room 1\\, floor 2\r\nDESCRIPTION:Line one\\nline two with a long text that folds over the seventy-fiv\r\n e octet limit\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n";

const OVERRIDE: &str = "BEGIN:VEVENT\nUID:golden-2@calscope\nRECURRENCE-ID;TZID=Europe/Berlin:20260119T100000\nDTSTART;TZID=Europe/Berlin:20260119T110000\nDURATION:PT1H\nSUMMARY:Moved\nEND:VEVENT\n";

fn fp(text: &str) -> String {
    Fingerprint::of_component(text.as_bytes(), &FingerprintPolicy::default()).to_string()
}

#[test]
fn golden_fingerprints_are_pinned() {
    assert_eq!(fp(SIMPLE), "570ce0f81f9a2e71940b2f168b5d462e");
    assert_eq!(fp(RICH), "36cc0d725fe7088a90b28e63fefa5da3");
    assert_eq!(fp(OVERRIDE), "ed8c5da83990dcefe0353f7ee51ebdbf");
}

#[test]
fn golden_policy_without_volatile_set_is_pinned() {
    let all = FingerprintPolicy::with_volatile_set::<_, &str>([]);
    assert_eq!(Fingerprint::of_component(SIMPLE.as_bytes(), &all).to_string(), "16c4699067f286ee004fb4c59d893984");
}

#[test]
fn default_volatile_set_is_pinned() {
    assert_eq!(FingerprintPolicy::default().volatile(), ["CREATED", "DTSTAMP", "LAST-MODIFIED", "PRODID", "SEQUENCE"]);
}

#[test]
fn golden_fingerprint_survives_reserialization() {
    // What a server re-serialization does: LF endings, other order, other case, new DTSTAMP,
    // bumped SEQUENCE, different folding.
    let reserialized = "BEGIN:VEVENT\nsummary:Weekly plan\n ning\nDTEND:20260105T100000Z\nSEQUENCE:9\ndtstart:20260105T090000Z\nDTSTAMP:20991231T235959Z\nUID:golden-1@calscope\nEND:VEVENT";
    assert_eq!(fp(reserialized), "570ce0f81f9a2e71940b2f168b5d462e");
}
