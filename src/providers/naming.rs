//! How an API provider names the calendars it serves: one calendar under the host's id, or
//! every calendar of an account under a prefix.

use crate::error::{Error, ErrorKind, Result};
use crate::id::CalendarId;

/// Which calendars a source serves, and under which ids.
pub(crate) enum Naming {
    /// Every calendar of the account, as `PREFIX/…`.
    Account(String),
    /// One calendar (its id at the provider) under the host's id.
    One { id: CalendarId, remote: String },
}

/// What a host id names.
pub(crate) enum Named<'a> {
    /// The provider's id of the one calendar.
    One(&'a str),
    /// The part of an account's id after `PREFIX/`.
    InAccount(&'a str),
}

impl Naming {
    /// What `id` names.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] for an id this source does not serve.
    pub(crate) fn resolve<'a>(&'a self, id: &'a CalendarId) -> Result<Named<'a>> {
        let not_ours = || Error::new(ErrorKind::NotFound, format!("this source does not serve {id}"));
        match self {
            Self::One { id: own, remote } if own == id => Ok(Named::One(remote)),
            Self::One { .. } => Err(not_ours()),
            Self::Account(prefix) => id
                .as_str()
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|rest| !rest.is_empty())
                .map(Named::InAccount)
                .ok_or_else(not_ours),
        }
    }
}
