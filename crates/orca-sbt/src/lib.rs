//! orca-sbt
