//! The suites; each `run` pushes its rows onto the report.

pub mod core;
pub mod fs;
mod pairing;
pub mod sync;
pub mod unix;
