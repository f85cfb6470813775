//! The JSON Microsoft Graph answers, as far as calscope reads it. Unknown fields are ignored;
//! every field calscope reads is optional, so a missing one is a decision, never a failure.

use serde::Deserialize;

/// One page of `GET /me/calendars`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CalendarsPage {
    #[serde(default)]
    pub(crate) value: Vec<GraphCalendar>,
    #[serde(rename = "@odata.nextLink")]
    pub(crate) next_link: Option<String>,
}

/// One calendar of the mailbox.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GraphCalendar {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) hex_color: Option<String>,
    #[serde(default)]
    pub(crate) is_default_calendar: bool,
    #[serde(default)]
    pub(crate) can_edit: bool,
}

/// One page of a `calendarView/delta` round.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeltaPage {
    #[serde(default)]
    pub(crate) value: Vec<GraphEvent>,
    #[serde(rename = "@odata.nextLink")]
    pub(crate) next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    pub(crate) delta_link: Option<String>,
}

/// An event row: an instance (single, occurrence, exception), a removal (`@removed`), or a
/// partial occurrence row (only `id`, `type`, `start`, `end`, `seriesMasterId`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GraphEvent {
    pub(crate) id: Option<String>,
    #[serde(rename = "@removed")]
    pub(crate) removed: Option<serde_json::Value>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) series_master_id: Option<String>,
    pub(crate) original_start: Option<String>,
    #[serde(rename = "iCalUId")]
    pub(crate) ical_uid: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) body: Option<ItemBody>,
    pub(crate) location: Option<Location>,
    pub(crate) start: Option<DateTimeZone>,
    pub(crate) end: Option<DateTimeZone>,
    pub(crate) is_all_day: Option<bool>,
    pub(crate) is_cancelled: Option<bool>,
    pub(crate) show_as: Option<String>,
    pub(crate) sensitivity: Option<String>,
    pub(crate) organizer: Option<Recipient>,
    pub(crate) attendees: Option<Vec<Attendee>>,
    pub(crate) created_date_time: Option<String>,
    pub(crate) last_modified_date_time: Option<String>,
}

/// A body: text or HTML.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ItemBody {
    pub(crate) content_type: Option<String>,
    pub(crate) content: Option<String>,
}

/// A location.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Location {
    pub(crate) display_name: Option<String>,
}

/// `dateTimeTimeZone`: a local date-time and the zone it is in.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DateTimeZone {
    pub(crate) date_time: Option<String>,
    pub(crate) time_zone: Option<String>,
}

/// An organizer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Recipient {
    pub(crate) email_address: Option<EmailAddress>,
}

/// A name and an address.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct EmailAddress {
    pub(crate) name: Option<String>,
    pub(crate) address: Option<String>,
}

/// An attendee.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attendee {
    pub(crate) email_address: Option<EmailAddress>,
    pub(crate) status: Option<ResponseStatus>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
}

/// An attendee's response.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ResponseStatus {
    pub(crate) response: Option<String>,
}

/// An error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) error: ErrorDetail,
}

/// The detail of an error answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    pub(crate) code: Option<String>,
}

/// The `error.code` of an error body, when it has one.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body).ok()?.error.code
}
