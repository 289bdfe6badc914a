//! Scripting: EVAL and FUNCTION on an embedded Lua 5.1 (mlua, vendored).
//!
//! The [`Engine`] owns one Lua state, the script cache (EVAL's bodies by
//! SHA1) and the function libraries (FUNCTION LOAD). It knows nothing of
//! the store: a script's `redis.call` goes to the [`Host`] the caller
//! passes for the run, which the storage task implements
//! (`server/storage/script.rs`) by running the command as it would run a
//! request of an EXEC. So a script is one piece like an EXEC: nothing else
//! runs while it runs, and its writes are logged as one record.
//!
//! Invariants:
//! - **Sandbox.** Scripts see a read-only proxy of their globals: a new
//!   global is refused (`Attempt to modify a readonly table`), an unknown
//!   one is an error (`Script attempted to access nonexistent global
//!   variable`); there is no `os`, `io`, `debug`, `loadfile`, `dofile` or
//!   `print`. `redis`, `cjson` and `bit` are read-only proxies too.
//! - **Errors are tables.** Every error leaving a script is turned by the
//!   handler (`prelude.lua`) into Redis's `{err=..., source=..., line=...}`,
//!   so the reply is Redis 7.0's `ERR user_script:1: ... script: ..., on
//!   @user_script:1.`
//! - **The hook.** Every [`HOOK_EVERY`] Lua instructions the hook looks at
//!   the [`Watch`]: the run's state machine, shared with the storage task.
//!
//! # The state machine of a run ([`Watch`])
//!
//! ```text
//!  Idle --run--> Running --(threshold passed)--> Busy --SCRIPT KILL,--> Killed
//!   ^              |                              |     nothing written   |
//!   |              | returns                      | returns               | next hook:
//!   +--------------+------------------------------+-----------------------+ error, reply
//!                                                                           "killed by user"
//! ```
//! - *Running*: under `busy-reply-threshold`; requests queue as usual and
//!   run after the script.
//! - *Busy*: past the threshold, each hook calls the host's `poll`, which
//!   takes the jobs queued meanwhile and answers them at once: `-BUSY` for
//!   every request, except SCRIPT KILL / FUNCTION KILL. Those answer
//!   `UNKILLABLE` if the script ran a write command ([`Watch::wrote`]),
//!   `NOTBUSY` if they name the other kind (SCRIPT KILL of a function...),
//!   else `OK`, and move to *Killed*.
//! - *Killed*: the hook raises an error at every call from then on (a
//!   `pcall` in the script cannot outlive it for long), and the caller's
//!   reply is `ERR Script killed by user with SCRIPT KILL...`.
//!
//! The storage task runs a batch that holds a script on a thread of its
//! own and awaits it (`server/storage/script.rs`): a busy script blocks
//! that thread, not the storage task's worker, so the connections served
//! there still read and send their requests for the hook to answer.
//!
//! SHUTDOWN is answered by the connection, never by the storage task; it
//! cannot stop a busy script (the server is then killed from outside).

mod api;
mod convert;

use crate::resp::Reply;
use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Lua instructions between two looks of the hook at the [`Watch`]
/// (Redis's figure): a few hundred microseconds of a busy loop.
pub const HOOK_EVERY: u32 = 100_000;

/// `busy-reply-threshold` (alias `lua-time-limit`) in milliseconds,
/// published by CONFIG SET.
static BUSY_THRESHOLD_MS: AtomicU64 = AtomicU64::new(5000);

/// Sets `busy-reply-threshold`.
pub fn set_busy_threshold_ms(ms: u64) {
    BUSY_THRESHOLD_MS.store(ms, Ordering::Relaxed);
}

/// The reply to a request that arrives while a script is busy.
pub fn busy_reply(function: bool) -> Reply {
    Reply::err(match function {
        false => "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        true => "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.",
    })
}

/// `NOTBUSY`: a KILL with no script (of its kind) running.
pub fn not_busy() -> Reply {
    Reply::err("NOTBUSY No scripts in execution right now.")
}

/// What the hook and the storage task share about the run in progress
/// (see the module docs).
///
/// Atomics: the storage runs a batch holding a script on a thread of its
/// own (see `server/storage/script.rs`), and the hook runs there too; the
/// fields are only ever touched by that one thread at a time, so relaxed
/// ordering is enough.
#[derive(Default)]
pub struct Watch {
    running: Flag,
    started: std::sync::Mutex<Option<Instant>>,
    busy: Flag,
    wrote: Flag,
    killed: Flag,
    function: Flag,
    /// The protocol `redis.setresp` chose (2 or 3).
    resp: std::sync::atomic::AtomicU8,
    /// Answers the requests queued while busy (the storage task's).
    poll: Option<Poll>,
}

/// What the hook calls while a script is busy (see the module docs).
pub type Poll = Box<dyn Fn(&Watch) + Send + Sync>;

/// A flag of the [`Watch`].
#[derive(Default)]
struct Flag(std::sync::atomic::AtomicBool);

impl Flag {
    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    fn set(&self, v: bool) {
        self.0.store(v, Ordering::Relaxed);
    }
}

impl Watch {
    /// Whether the script ran a write command (then it cannot be killed).
    pub fn wrote(&self) -> bool {
        self.wrote.get()
    }

    /// Whether the running script is a function (FCALL) rather than EVAL's.
    pub fn is_function(&self) -> bool {
        self.function.get()
    }

    /// SCRIPT KILL (`function: false`) or FUNCTION KILL from another
    /// client while busy: the reply for that client.
    pub fn kill(&self, function: bool) -> Reply {
        // Redis's order: a script that wrote is unkillable whatever asks.
        if self.wrote.get() {
            return Reply::err(
                "UNKILLABLE Sorry the script already executed write commands against the \
                 dataset. You can either wait the script termination or kill the server in a \
                 hard way using the SHUTDOWN NOSAVE command.",
            );
        }
        if function != self.function.get() {
            return busy_reply(self.function.get());
        }
        self.killed.set(true);
        Reply::ok()
    }
}

/// The store's side of a run: runs one command of the script.
pub trait Host {
    /// Runs `args` (already checked against the command table and the
    /// script's flags); `write` tells whether the command is a write.
    fn call(&mut self, args: Vec<Vec<u8>>, spec: &'static crate::command::Spec) -> Reply;
}

/// What to run.
pub enum Target<'a> {
    /// EVAL: a body (cached by its SHA1).
    Body(&'a [u8]),
    /// EVALSHA.
    Sha(&'a [u8]),
    /// FCALL: a function's name.
    Function(&'a [u8]),
}

/// One library of FUNCTION LOAD.
struct Library {
    /// The name as loaded (the map's key is its lowercase form: names are
    /// case-insensitive, as in Redis).
    name: String,
    code: Vec<u8>,
    /// Its functions, in registration order.
    functions: Vec<String>,
}

/// A registered function.
struct Func {
    library: String,
    callback: Function,
    no_writes: bool,
    description: Option<String>,
    flags: Vec<String>,
}

/// The Lua state, the script cache and the function libraries.
pub struct Engine {
    lua: Lua,
    scripts: HashMap<String, (Function, Vec<u8>)>,
    libraries: BTreeMap<String, Library>,
    functions: BTreeMap<String, Func>,
    watch: Arc<Watch>,
    api: api::Api,
}

/// The SHA1 of `body` in lowercase hex, as Redis names a script.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

impl Engine {
    /// A fresh Lua state with the sandboxed API; `poll` answers the
    /// requests queued while a script is busy.
    ///
    /// # Errors
    /// If Lua cannot be set up (out of memory).
    pub fn new(poll: Poll) -> mlua::Result<Engine> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::new(),
        )?;
        let watch = Arc::new(Watch {
            resp: 2.into(),
            poll: Some(poll),
            ..Watch::default()
        });
        let api = api::Api::new(&lua, watch.clone())?;
        let hooked = watch.clone();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                let w = &*hooked;
                if !w.running.get() {
                    return Ok(VmState::Continue);
                }
                if !w.busy.get() {
                    let threshold = BUSY_THRESHOLD_MS.load(Ordering::Relaxed);
                    let started = *w.started.lock().unwrap_or_else(|e| e.into_inner());
                    let late =
                        started.is_some_and(|s| s.elapsed().as_millis() >= u128::from(threshold));
                    if !late {
                        return Ok(VmState::Continue);
                    }
                    w.busy.set(true);
                }
                if let Some(poll) = w.poll.as_ref() {
                    poll(w);
                }
                match w.killed.get() {
                    true => Err(mlua::Error::runtime("Script killed by user")),
                    false => Ok(VmState::Continue),
                }
            },
        );
        Ok(Engine {
            lua,
            scripts: HashMap::new(),
            libraries: BTreeMap::new(),
            functions: BTreeMap::new(),
            watch,
            api,
        })
    }

    /// Bytes the Lua state uses (INFO `used_memory_lua`).
    pub fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }

    /// Scripts in the cache (INFO `number_of_cached_scripts`).
    pub fn cached_scripts(&self) -> usize {
        self.scripts.len()
    }

    /// Whether a script runs now (the storage task is inside [`Self::run`]).
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    /// SCRIPT LOAD (and EVAL's first step): compiles and caches `body`.
    ///
    /// # Errors
    /// The compile error, as Redis words it.
    pub fn load(&mut self, body: &[u8]) -> Result<String, Reply> {
        let sha = sha1_hex(body);
        if !self.scripts.contains_key(&sha) {
            // A `#!lua flags=...` line is Redis 7's; made a comment for Lua
            // (line numbers stay the body's).
            let code = match body.starts_with(b"#!") {
                true => [b"--".as_slice(), body].concat(),
                false => body.to_vec(),
            };
            let f = self
                .lua
                .load(code)
                .set_name("@user_script")
                .set_environment(self.api.script_env())
                .into_function()
                .map_err(|e| {
                    Reply::err(format!(
                        "ERR Error compiling script (new function): {}",
                        convert::lua_error_text(&e)
                    ))
                })?;
            self.scripts.insert(sha.clone(), (f, body.to_vec()));
        }
        Ok(sha)
    }

    /// SCRIPT EXISTS: one flag per SHA1.
    pub fn exists(&self, sha: &[u8]) -> bool {
        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
        self.scripts.contains_key(&sha)
    }

    /// SCRIPT FLUSH.
    pub fn flush_scripts(&mut self) {
        self.scripts.clear();
        self.lua.gc_collect().ok();
    }

    /// Whether FCALL `name` names a function flagged `no-writes`
    /// (`None`: no such function).
    pub fn function_is_read_only(&self, name: &[u8]) -> Option<bool> {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        self.functions.get(&name).map(|f| f.no_writes)
    }

    /// Runs a script or a function with its KEYS and ARGV; `read_only`
    /// for EVAL_RO / FCALL_RO / a `no-writes` function or `#!lua
    /// flags=no-writes` script: write commands are refused in it.
    pub fn run(
        &mut self,
        target: Target<'_>,
        keys: &[Vec<u8>],
        argv: &[Vec<u8>],
        read_only: bool,
        host: &mut dyn Host,
    ) -> Reply {
        let sha = match target {
            Target::Body(body) => match self.load(body) {
                Ok(sha) => Some(sha),
                Err(e) => return e,
            },
            Target::Sha(sha) => Some(String::from_utf8_lossy(sha).to_ascii_lowercase()),
            Target::Function(_) => None,
        };
        let mut script_ro = false;
        let (f, name, function) = match target {
            Target::Body(_) | Target::Sha(_) => {
                let sha = sha.unwrap_or_default();
                match self.scripts.get(&sha) {
                    Some((f, body)) => {
                        script_ro = api::script_no_writes(body);
                        (f.clone(), format!("f_{sha}"), false)
                    }
                    None => return Reply::err("NOSCRIPT No matching script. Please use EVAL."),
                }
            }
            Target::Function(name) => {
                let name = String::from_utf8_lossy(name).into_owned();
                match self.functions.get(&name.to_ascii_lowercase()) {
                    Some(func) => (func.callback.clone(), name, true),
                    None => return Reply::err("ERR Function not found"),
                }
            }
        };
        let w = &*self.watch;
        w.running.set(true);
        *w.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        w.busy.set(false);
        w.wrote.set(false);
        w.killed.set(false);
        w.function.set(function);
        w.resp.store(2, Ordering::Relaxed);
        let reply = self.api.run(
            &self.lua,
            &f,
            function,
            keys,
            argv,
            read_only || script_ro,
            host,
            &name,
            &self.watch,
        );
        let w = &*self.watch;
        w.running.set(false);
        let killed = w.killed.get();
        let reply = match (killed, function) {
            (true, false) => Reply::err("ERR Script killed by user with SCRIPT KILL..."),
            (true, true) => Reply::err("ERR Script killed by user with FUNCTION KILL..."),
            _ => reply,
        };
        w.killed.set(false);
        w.busy.set(false);
        reply
    }

    /// FUNCTION LOAD [REPLACE] code: the library's name.
    ///
    /// # Errors
    /// Redis's errors for a bad shebang, a library that exists, a code
    /// that does not compile or registers nothing.
    pub fn function_load(&mut self, code: &[u8], replace: bool) -> Result<String, Reply> {
        let (name, body) = api::shebang(code)?;
        let key = name.to_ascii_lowercase();
        if self.libraries.contains_key(&key) && !replace {
            return Err(Reply::err(format!("ERR Library '{name}' already exists")));
        }
        let registered = self.api.load_library(&self.lua, body)?;
        if registered.is_empty() {
            return Err(Reply::err("ERR No functions registered"));
        }
        for r in &registered {
            if let Some(f) = self.functions.get(&r.name.to_ascii_lowercase()) {
                if f.library != key {
                    return Err(Reply::err(format!(
                        "ERR Function {} already exists",
                        r.name
                    )));
                }
            }
        }
        self.function_delete(&name);
        let mut names = Vec::new();
        for r in registered {
            names.push(r.name.clone());
            self.functions.insert(
                r.name.to_ascii_lowercase(),
                Func {
                    library: key.clone(),
                    callback: r.callback,
                    no_writes: r.flags.iter().any(|f| f == "no-writes"),
                    description: r.description,
                    flags: r.flags,
                },
            );
        }
        self.libraries.insert(
            key,
            Library {
                name: name.clone(),
                code: code.to_vec(),
                functions: names,
            },
        );
        Ok(name)
    }

    /// FUNCTION DELETE: whether the library existed.
    pub fn function_delete(&mut self, name: &str) -> bool {
        match self.libraries.remove(&name.to_ascii_lowercase()) {
            Some(lib) => {
                for f in lib.functions {
                    self.functions.remove(&f.to_ascii_lowercase());
                }
                true
            }
            None => false,
        }
    }

    /// FUNCTION FLUSH.
    pub fn function_flush(&mut self) {
        self.libraries.clear();
        self.functions.clear();
    }

    /// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE].
    pub fn function_list(&self, pattern: Option<&[u8]>, with_code: bool) -> Reply {
        let b = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
        let libs = self
            .libraries
            .values()
            .filter(|lib| pattern.is_none_or(|p| crate::glob::matches(p, lib.name.as_bytes())))
            .map(|lib| {
                let name = &lib.name;
                let functions = lib
                    .functions
                    .iter()
                    .filter_map(|f| {
                        self.functions
                            .get(&f.to_ascii_lowercase())
                            .map(|func| (f, func))
                    })
                    .map(|(f, func)| {
                        Reply::Map(vec![
                            (b("name"), b(f)),
                            (
                                b("description"),
                                func.description.as_deref().map_or(Reply::Nil, b),
                            ),
                            (
                                b("flags"),
                                Reply::Set(func.flags.iter().map(|s| b(s)).collect()),
                            ),
                        ])
                    })
                    .collect();
                let mut fields = vec![
                    (b("library_name"), b(name)),
                    (b("engine"), b("LUA")),
                    (b("functions"), Reply::Array(functions)),
                ];
                if with_code {
                    fields.push((b("library_code"), Reply::Bulk(lib.code.clone())));
                }
                Reply::Map(fields)
            })
            .collect();
        Reply::Array(libs)
    }

    /// FUNCTION STATS: the running script (none: this is only answered
    /// when none runs) and the engines.
    pub fn function_stats(&self) -> Reply {
        let b = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
        Reply::Map(vec![
            (b("running_script"), Reply::Nil),
            (
                b("engines"),
                Reply::Map(vec![(
                    b("LUA"),
                    Reply::Map(vec![
                        (
                            b("libraries_count"),
                            Reply::Integer(self.libraries.len() as i64),
                        ),
                        (
                            b("functions_count"),
                            Reply::Integer(self.functions.len() as i64),
                        ),
                    ]),
                )]),
            ),
        ])
    }
}

/// The table of a Lua value's array part, for conversions.
fn array_part(t: &Table) -> impl Iterator<Item = Value> + '_ {
    (1..).map_while(move |i| match t.raw_get::<Value>(i) {
        Ok(Value::Nil) | Err(_) => None,
        Ok(v) => Some(v),
    })
}
