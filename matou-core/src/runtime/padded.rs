//! A value alone on its cache line.
//!
//! Atomics that one thread writes and another reads in a loop (the live
//! counters, an inbox's `head` word, the `call` round-robin counter) are
//! wrapped so that a write to one never invalidates a line that holds
//! another: false sharing turns every such write into a cache miss on the
//! other core.

/// 128 bytes covers adjacent-line prefetching on x86.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);
