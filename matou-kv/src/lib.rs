//! matou-kv's runtime-free core: everything a durable RESP2/RESP3 key-value server
//! needs except sockets and tasks.
//!
//! - [`resp`]: the request decoder (multibulk and inline, with limits) and
//!   the reply encoder.
//! - [`command`]: argument vectors to typed commands with Redis's errors,
//!   their execution on the [`store::Store`], and the connection commands.
//! - [`store`]: the keyspace with absolute-time expiry, KEYS and a stable
//!   SCAN; [`glob`]: Redis's pattern matching.
//! - [`record`]: the log record of one mutation, deterministic to replay.
//! - [`aof`]: the append-only log: a format header and framing with
//!   checksums, group commit, replay that cuts only a torn tail (other
//!   damage refuses the start; `--repair-log` and `check-log` resynchronise
//!   past it), the data directory's lock, and a rewrite whose heavy part can
//!   run on another thread.
//! - [`config`]: flags and config file.
//! - [`server`]: the wiring on the matou runtime (accept loops, client
//!   handlers, the storage task that owns the store and the log).
//!
//! None of these modules uses the matou runtime, or any clock except where
//! a `now` is passed in (the log's everysec timer aside): they are plain
//! synchronous code, tested on their own, that the server wiring drives from
//! its tasks. The wiring itself, [`server`], is the one module on matou.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aof;
pub mod command;
pub mod config;
pub mod databases;
pub mod glob;
pub mod record;
pub mod resp;
pub mod script;
pub mod server;
pub mod store;
