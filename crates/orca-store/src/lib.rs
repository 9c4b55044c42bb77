//! orca-store
