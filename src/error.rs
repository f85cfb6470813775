//! The crate's one public error type.

use std::error::Error as StdError;
use std::fmt;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a form callers can `match` on.
///
/// New kinds may be added in minor releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A value handed to calscope is not valid (an empty id, a control character in a UID, …).
    InvalidInput,
    /// Calendar data could not be read as a whole (not iCalendar, truncated, …).
    Parse,
    /// Input exceeded a configured limit (nesting depth, line length, component count, size).
    LimitExceeded,
    /// The source no longer accepts the stored cursor; a full snapshot is needed.
    CursorExpired,
    /// The calendar changed in the store since it was loaded (compare-and-set failed).
    Conflict,
    /// A complete snapshot was empty while the store holds events; nothing was deleted.
    EmptySnapshot,
    /// The plan would delete or update more than the allowed share of the calendar.
    MassChange,
    /// A change touched a number of rows other than one: the apply was rolled back.
    ScopeViolation,
    /// The calendar or resource does not exist at the source.
    NotFound,
    /// The source refused the credentials.
    Unauthorized,
    /// An operation took longer than allowed.
    Timeout,
    /// The network or the remote service failed.
    Transport,
    /// The source asked to slow down (HTTP 429, or a provider's rate-limit answer) and the
    /// retries allowed were spent.
    RateLimited,
    /// The store failed.
    Storage,
    /// A worker's lease on a calendar was taken over (it expired and another worker claimed
    /// the calendar): the outcome it reported was refused, so the newer one stands.
    LeaseLost,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// A short lowercase description of the kind.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid input",
            Self::Parse => "unreadable calendar data",
            Self::LimitExceeded => "limit exceeded",
            Self::CursorExpired => "cursor expired",
            Self::Conflict => "concurrent modification",
            Self::EmptySnapshot => "empty snapshot refused",
            Self::MassChange => "mass change refused",
            Self::ScopeViolation => "scope violation",
            Self::NotFound => "not found",
            Self::Unauthorized => "unauthorized",
            Self::Timeout => "timed out",
            Self::Transport => "transport failure",
            Self::RateLimited => "rate limited",
            Self::Storage => "storage failure",
            Self::LeaseLost => "lease lost",
            Self::Other => "error",
        }
    }
}

/// Every kind, with its snake-case code (as serde writes it).
const CODES: [(ErrorKind, &str); 16] = [
    (ErrorKind::InvalidInput, "invalid_input"),
    (ErrorKind::Parse, "parse"),
    (ErrorKind::LimitExceeded, "limit_exceeded"),
    (ErrorKind::CursorExpired, "cursor_expired"),
    (ErrorKind::Conflict, "conflict"),
    (ErrorKind::EmptySnapshot, "empty_snapshot"),
    (ErrorKind::MassChange, "mass_change"),
    (ErrorKind::ScopeViolation, "scope_violation"),
    (ErrorKind::NotFound, "not_found"),
    (ErrorKind::Unauthorized, "unauthorized"),
    (ErrorKind::Timeout, "timeout"),
    (ErrorKind::Transport, "transport"),
    (ErrorKind::RateLimited, "rate_limited"),
    (ErrorKind::Storage, "storage"),
    (ErrorKind::LeaseLost, "lease_lost"),
    (ErrorKind::Other, "other"),
];

impl ErrorKind {
    /// The kind's snake-case code, as serde writes it (`rate_limited`): for database columns
    /// and metrics labels.
    #[must_use]
    pub fn code(self) -> &'static str {
        CODES.iter().find(|(k, _)| *k == self).map_or("other", |(_, c)| c)
    }

    /// The kind of a [`code`](Self::code); `None` for an unknown code.
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        CODES.iter().find(|(_, c)| *c == code).map(|(k, _)| *k)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible calscope operation: a [`ErrorKind`], a short message and an
/// optional underlying cause.
pub struct Error {
    kind: ErrorKind,
    message: Box<str>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// Creates an error of `kind` with a short lowercase message.
    ///
    /// # Example
    /// ```
    /// use calscope::{Error, ErrorKind};
    /// let err = Error::new(ErrorKind::Timeout, "feed did not answer in 30 s");
    /// assert_eq!(err.kind(), ErrorKind::Timeout);
    /// assert!(err.is_retryable());
    /// ```
    #[must_use]
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into().into_boxed_str(), source: None }
    }

    /// Attaches the underlying cause, reachable through [`std::error::Error::source`].
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the cause.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying the same operation again later may succeed.
    ///
    /// True for [`ErrorKind::Conflict`], [`ErrorKind::Timeout`], [`ErrorKind::Transport`] and
    /// [`ErrorKind::RateLimited`].
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Conflict | ErrorKind::Timeout | ErrorKind::Transport | ErrorKind::RateLimited)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() { f.write_str(self.kind.as_str()) } else { f.write_str(&self.message) }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind, kind.as_str())
    }
}
