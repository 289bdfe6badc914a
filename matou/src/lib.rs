//! matou: structured concurrency for Rust, after Miou.
//!
//! This crate is the facade users depend on. It re-exports the scheduler
//! ([`matou_core`]: tasks as resources, explicit placement, the event-source seam,
//! and [`sync`]) and the Unix layer ([`unix`]: epoll, timers, sockets, signals).

pub use matou_core::*;

/// The Unix layer: an epoll event source per worker, timers, sockets, signals.
pub use matou_unix as unix;
