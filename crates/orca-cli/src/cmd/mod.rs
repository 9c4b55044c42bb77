//! One file per command.

pub mod agent;
pub mod backup;
pub mod bench;
pub mod completions;
pub mod demo;
pub mod gc;
pub mod get;
pub mod jobs;
pub mod ls;
pub mod put;
pub mod repo;
pub mod rm;
pub mod store;
pub mod vault;
pub mod verify;
