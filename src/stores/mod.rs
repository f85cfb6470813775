//! [`Store`](crate::Store) implementations. `memory` is always compiled; `sqlite` and `postgres`
//! with their features.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod columns;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod instances;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
