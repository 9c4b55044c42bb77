//! orca-agent
