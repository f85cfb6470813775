//! The JSON the Calendar API v3 answers, as far as calscope reads it. Unknown fields are
//! ignored; every field calscope reads is optional, so a missing one is a mapping decision,
//! never a parse failure.

use serde::Deserialize;

/// One page of `users/me/calendarList`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CalendarListPage {
    #[serde(default)]
    pub(crate) items: Vec<CalendarListEntry>,
    pub(crate) next_page_token: Option<String>,
}

/// One calendar of the account.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CalendarListEntry {
    pub(crate) id: String,
    pub(crate) summary: Option<String>,
    pub(crate) summary_override: Option<String>,
    pub(crate) background_color: Option<String>,
    pub(crate) time_zone: Option<String>,
    pub(crate) access_role: Option<String>,
    #[serde(default)]
    pub(crate) primary: bool,
    #[serde(default)]
    pub(crate) deleted: bool,
}

/// One page of `calendars/{id}/events`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventsPage {
    #[serde(default)]
    pub(crate) items: Vec<GoogleEvent>,
    pub(crate) next_page_token: Option<String>,
    pub(crate) next_sync_token: Option<String>,
}

/// An event resource.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GoogleEvent {
    pub(crate) id: Option<String>,
    pub(crate) status: Option<String>,
    #[serde(rename = "iCalUID")]
    pub(crate) ical_uid: Option<String>,
    pub(crate) recurring_event_id: Option<String>,
    pub(crate) original_start_time: Option<EventDateTime>,
    pub(crate) summary: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) start: Option<EventDateTime>,
    pub(crate) end: Option<EventDateTime>,
    #[serde(default)]
    pub(crate) end_time_unspecified: bool,
    #[serde(default)]
    pub(crate) recurrence: Vec<String>,
    pub(crate) transparency: Option<String>,
    pub(crate) visibility: Option<String>,
    pub(crate) organizer: Option<Person>,
    #[serde(default)]
    pub(crate) attendees: Vec<Attendee>,
    pub(crate) sequence: Option<i64>,
    pub(crate) created: Option<String>,
    pub(crate) updated: Option<String>,
    pub(crate) event_type: Option<String>,
}

/// A start, an end or an original start: a date (all-day) or a date-time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventDateTime {
    pub(crate) date: Option<String>,
    pub(crate) date_time: Option<String>,
    pub(crate) time_zone: Option<String>,
}

/// The organizer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Person {
    pub(crate) email: Option<String>,
    pub(crate) display_name: Option<String>,
}

/// One attendee.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attendee {
    pub(crate) email: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) response_status: Option<String>,
    #[serde(default)]
    pub(crate) optional: bool,
    #[serde(default)]
    pub(crate) resource: bool,
}

/// An error answer: `{"error": {"code", "message", "errors": [{"domain", "reason"}]}}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) error: ErrorDetail,
}

/// The detail of an error answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub(crate) errors: Vec<ErrorItem>,
}

/// One reason of an error answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorItem {
    pub(crate) reason: Option<String>,
}

/// The first `errors[].reason` of an error body, when it has one.
pub(crate) fn error_reason(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    parsed.error.errors.into_iter().find_map(|e| e.reason)
}
