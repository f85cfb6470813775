//! [`Store`](crate::Store) implementations. `memory` is always compiled; `sqlite` with the
//! `sqlite` feature.

pub(crate) mod memory;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
