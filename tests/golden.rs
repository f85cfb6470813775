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

/// A Google event resource with everything a host sees; its rendering and fingerprint are as
/// much a promise as the fingerprint of an ICS component.
#[cfg(feature = "google")]
const GOOGLE: &str = r#"{"kind":"calendar#event","etag":"\"3412345678901234\"","id":"4f1ab2c3d4e5f6a7b8c9d0e1f2","status":"confirmed",
"htmlLink":"https://www.google.com/calendar/event?eid=NGYxYWIy","created":"2026-10-01T10:00:00.000Z","updated":"2026-11-20T08:15:42.123Z",
"summary":"Design review, phase 2","description":"Agenda:\n1. Risks; 2. Budget","location":"Room 4\\B",
"colorId":"5","creator":{"email":"ann@example.com","self":true},
"organizer":{"email":"ann@example.com","displayName":"Ann Lee","self":true},
"start":{"dateTime":"2026-12-07T10:00:00+01:00","timeZone":"Europe/Berlin"},"end":{"dateTime":"2026-12-07T11:30:00+01:00","timeZone":"Europe/Berlin"},
"recurrence":["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10","EXDATE;TZID=Europe/Berlin:20261221T100000"],
"transparency":"opaque","visibility":"private","iCalUID":"4f1ab2c3d4e5f6a7b8c9d0e1f2@google.com","sequence":2,
"attendees":[{"email":"ann@example.com","displayName":"Ann Lee","organizer":true,"self":true,"responseStatus":"accepted"},
{"email":"bo@example.com","displayName":"Doe, Bo","responseStatus":"tentative","optional":true},
{"email":"room4@resource.calendar.google.com","displayName":"Room 4","resource":true,"responseStatus":"accepted"}],
"hangoutLink":"https://meet.google.com/abc-defg-hij","conferenceData":{"entryPoints":[{"entryPointType":"video","uri":"https://meet.google.com/abc-defg-hij"}]},
"reminders":{"useDefault":false,"overrides":[{"method":"popup","minutes":10}]},"eventType":"default"}"#;

#[cfg(feature = "google")]
fn google(json: &str) -> calscope::Event {
    let cal = calscope::CalendarId::new("golden").unwrap();
    calscope::GoogleSource::event_from_json(&cal, json, &FingerprintPolicy::default()).unwrap().unwrap()
}

#[cfg(feature = "google")]
#[test]
fn google_rendering_and_fingerprint_are_pinned() {
    let e = google(GOOGLE);
    assert_eq!(
        e.raw(),
        "BEGIN:VEVENT\r\nUID:4f1ab2c3d4e5f6a7b8c9d0e1f2@google.com\r\nDTSTAMP:20261120T081542Z\r\nCREATED:20261001T100000Z\r\n\
LAST-MODIFIED:20261120T081542Z\r\nDTSTART;TZID=Europe/Berlin:20261207T100000\r\nDTEND;TZID=Europe/Berlin:20261207T113000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10\r\nEXDATE;TZID=Europe/Berlin:20261221T100000\r\nSUMMARY:Design review\\, phase 2\r\n\
DESCRIPTION:Agenda:\\n1. Risks\\; 2. Budget\r\nLOCATION:Room 4\\\\B\r\nSTATUS:CONFIRMED\r\nTRANSP:OPAQUE\r\nCLASS:PRIVATE\r\n\
ORGANIZER;CN=Ann Lee:mailto:ann@example.com\r\nATTENDEE;CN=Ann Lee;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:ann@examp\r\n \
le.com\r\nATTENDEE;CN=\"Doe, Bo\";ROLE=OPT-PARTICIPANT;PARTSTAT=TENTATIVE:mailto:bo@exa\r\n mple.com\r\n\
ATTENDEE;CN=Room 4;CUTYPE=RESOURCE;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:m\r\n ailto:room4@resource.calendar.google.com\r\n\
SEQUENCE:2\r\nX-GOOGLE-EVENT-TYPE:default\r\nEND:VEVENT\r\n"
    );
    assert_eq!(e.fingerprint().to_string(), "c9baf8fa0d39d3134b5957f4131a5fc6");
}

#[cfg(feature = "google")]
#[test]
fn google_churn_without_an_edit_keeps_the_fingerprint() {
    let base = google(GOOGLE).fingerprint();
    let churned = GOOGLE
        .replace("\"3412345678901234\"", "\"9999999999999999\"")
        .replace("2026-11-20T08:15:42.123Z", "2026-11-29T23:59:59.000Z")
        .replace("\"sequence\":2", "\"sequence\":7")
        .replace("eid=NGYxYWIy", "eid=other")
        .replace("\"minutes\":10", "\"minutes\":30")
        .replace("\"colorId\":\"5\"", "\"colorId\":\"9\"")
        .replace("\"self\":true", "\"self\":false")
        .replace("abc-defg-hij", "xyz-uvwx-rst")
        .replace("\"created\":\"2026-10-01T10:00:00.000Z\",", "");
    assert_ne!(churned, GOOGLE);
    assert_eq!(google(&churned).fingerprint(), base, "{churned}");
    // A visible edit moves it.
    assert_ne!(google(&GOOGLE.replace("phase 2", "phase 3")).fingerprint(), base);
    assert_ne!(google(&GOOGLE.replace("\"tentative\"", "\"declined\"")).fingerprint(), base);
}
