//! The suites; each `run` pushes its rows onto the report.

pub mod core;
pub mod fs;
pub mod http;
mod pairing;
pub mod sync;
pub mod unix;
