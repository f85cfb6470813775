//! What the Postgres store's files share: the mapping of Postgres errors.

use tokio_postgres::error::SqlState;

use crate::error::{Error, ErrorKind};

/// Maps a Postgres error: serialization failures and deadlocks are conflicts (retryable);
/// everything else is a storage failure naming what was being done.
pub(super) fn storage(what: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| {
        let kind = match e.code() {
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
                ErrorKind::Conflict
            }
            _ => ErrorKind::Storage,
        };
        Error::new(kind, format!("postgres {what}")).with_source(e)
    }
}
