//! orca-vault
