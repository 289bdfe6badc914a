//! Synchronisation primitives that suspend tasks, not workers (placeholder: being written).
