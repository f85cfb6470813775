//! In-repo emulators of services no test can reach from here.

pub(crate) mod google;
pub(crate) mod graph;
