//! [`Store`](crate::Store) implementations. `memory` is always compiled.

pub(crate) mod memory;
