//! The Lua side of the engine: the sandboxed globals, the `redis` table,
//! `bit` and `cjson`, and the run of one script or function with its
//! `redis.call` bound to the caller's [`Host`] (an mlua scope, so the host
//! is borrowed for the run only and no script can keep it).
//!
//! The pieces written in Lua (error handler, read-only proxies,
//! `register_function`) are in `prelude.lua`, loaded once per state.

use super::convert::{self, to_lua, to_reply};
use super::{Host, Watch};
use crate::command::lookup;
use crate::resp::Reply;
use mlua::{Function, Lua, MultiValue, Table, Value, Variadic};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The pieces of the prelude the engine calls, and the environments.
pub struct Api {
    run: Function,
    set_impl: Function,
    begin_load: Function,
    end_load: Function,
    /// What EVAL scripts' proxy shows (KEYS and ARGV are set here).
    base: Table,
    /// EVAL scripts' globals (a read-only proxy of `base`).
    script_env: Table,
    /// Function libraries' globals: as `base`, with `redis` the load-time
    /// table while FUNCTION LOAD runs the library.
    function_env: Table,
    /// Whether a library is being loaded (which `redis` functions see).
    loading: Arc<AtomicBool>,
}

/// A function registered by a library being loaded.
pub struct Registered {
    pub name: String,
    pub callback: Function,
    pub flags: Vec<String>,
    pub description: Option<String>,
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// FUNCTION LOAD's first line, `#!lua name=<library>`: the library's name
/// and the code to compile (the shebang made a comment, so that line
/// numbers stay those of the code).
///
/// # Errors
/// Redis's errors for a missing or bad shebang.
pub fn shebang(code: &[u8]) -> Result<(String, Vec<u8>), Reply> {
    let Some(rest) = code.strip_prefix(b"#!") else {
        return Err(Reply::err("ERR Missing library metadata"));
    };
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = String::from_utf8_lossy(&rest[..line_end]);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or_default();
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(Reply::err(format!("ERR Engine '{engine}' not found")));
    }
    let mut name = None;
    for p in parts {
        match p.strip_prefix("name=") {
            Some(n) => name = Some(n.to_string()),
            None => return Err(Reply::err(format!("ERR Invalid metadata value given: {p}"))),
        }
    }
    let Some(name) = name else {
        return Err(Reply::err("ERR Library name was not given"));
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Reply::err(
            "ERR Library names can only contain letters, numbers, or underscores(_) and must be \
             at least one character long",
        ));
    }
    let mut body = b"--".to_vec();
    body.extend_from_slice(code);
    Ok((name, body))
}

/// The `#!lua flags=...` line of an EVAL script: whether it says
/// `no-writes`.
pub fn script_no_writes(body: &[u8]) -> bool {
    let Some(rest) = body.strip_prefix(b"#!") else {
        return false;
    };
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..line_end])
        .split(' ')
        .filter_map(|p| p.strip_prefix("flags="))
        .any(|f| f.split(',').any(|f| f == "no-writes"))
}

impl Api {
    /// Loads the prelude and builds the globals (see the module docs).
    pub fn new(lua: &Lua, watch: Arc<Watch>) -> mlua::Result<Api> {
        let p: Table = lua
            .load(include_str!("prelude.lua"))
            .set_name("=matou")
            .eval()?;
        let g = lua.globals();
        for unsafe_name in ["loadfile", "dofile", "print", "module", "require"] {
            g.raw_set(unsafe_name, Value::Nil)?;
        }
        let readonly: Function = p.get("readonly")?;
        let env: Function = p.get("env")?;

        let base = lua.create_table()?;
        for name in [
            "assert",
            "error",
            "ipairs",
            "next",
            "pairs",
            "pcall",
            "rawequal",
            "rawget",
            "select",
            "setmetatable",
            "getmetatable",
            "tonumber",
            "tostring",
            "type",
            "unpack",
            "xpcall",
            "loadstring",
            "gcinfo",
            "collectgarbage",
            "_VERSION",
        ] {
            base.raw_set(name, g.raw_get::<Value>(name)?)?;
        }
        base.raw_set("rawset", p.get::<Value>("rawset")?)?;
        for lib in ["string", "table", "math", "coroutine"] {
            let t: Value = g.raw_get(lib)?;
            if let Value::Table(t) = t {
                base.raw_set(lib, readonly.call::<Value>(t)?)?;
            }
        }
        base.raw_set("bit", readonly.call::<Value>(bit(lua)?)?)?;
        base.raw_set("cjson", readonly.call::<Value>(cjson(lua)?)?)?;

        let redis = redis_table(lua, &p, &watch)?;
        base.raw_set("redis", readonly.call::<Value>(redis.clone())?)?;
        let script_env: Table = env.call((base.clone(), Value::Nil))?;
        base.raw_set("_G", script_env.clone())?;

        // FUNCTION LOAD's `redis`: registering and logging only.
        let load_redis = lua.create_table()?;
        load_redis.raw_set("register_function", p.get::<Value>("register_function")?)?;
        for name in [
            "log",
            "LOG_DEBUG",
            "LOG_VERBOSE",
            "LOG_NOTICE",
            "LOG_WARNING",
            "setresp",
            "REDIS_VERSION",
            "REDIS_VERSION_NUM",
        ] {
            load_redis.raw_set(name, redis.raw_get::<Value>(name)?)?;
        }
        let load_redis = readonly.call::<Value>(load_redis)?;
        let run_redis: Value = base.raw_get("redis")?;
        let loading = Arc::new(AtomicBool::new(false));
        let phase = loading.clone();
        let dynamic = lua.create_function(move |_, k: Value| {
            Ok(match &k {
                Value::String(s) if s.as_bytes().as_ref() == b"redis" => {
                    match phase.load(Ordering::Relaxed) {
                        true => load_redis.clone(),
                        false => run_redis.clone(),
                    }
                }
                Value::String(s)
                    if s.as_bytes().as_ref() == b"KEYS" || s.as_bytes().as_ref() == b"ARGV" =>
                {
                    Value::Nil
                }
                _ => Value::Nil,
            })
        })?;
        let function_base = lua.create_table()?;
        for pair in base.pairs::<Value, Value>() {
            let (k, v) = pair?;
            if !matches!(&k, Value::String(s) if s.as_bytes().as_ref() == b"KEYS" || s.as_bytes().as_ref() == b"ARGV" || s.as_bytes().as_ref() == b"redis")
            {
                function_base.raw_set(k, v)?;
            }
        }
        let function_env: Table = env.call((function_base.clone(), dynamic))?;
        function_base.raw_set("_G", function_env.clone())?;

        Ok(Api {
            run: p.get("run")?,
            set_impl: p.get("set_impl")?,
            begin_load: p.get("begin_load")?,
            end_load: p.get("end_load")?,
            base,
            script_env,
            function_env,
            loading,
        })
    }

    /// EVAL scripts' globals.
    pub fn script_env(&self) -> Table {
        self.script_env.clone()
    }

    /// Runs a library's code with the load-time `redis`: the functions it
    /// registered.
    ///
    /// # Errors
    /// Redis's FUNCTION LOAD errors (compile, run).
    pub fn load_library(&self, lua: &Lua, body: Vec<u8>) -> Result<Vec<Registered>, Reply> {
        let f = lua
            .load(body)
            .set_name("@user_function")
            .set_environment(self.function_env.clone())
            .into_function()
            .map_err(|e| {
                Reply::err(format!(
                    "ERR Error compiling function: {}",
                    convert::lua_error_text(&e)
                ))
            })?;
        let internal = |e: mlua::Error| Reply::err(format!("ERR {}", convert::lua_error_text(&e)));
        self.begin_load.call::<()>(()).map_err(internal)?;
        self.loading.store(true, Ordering::Relaxed);
        let result = self.run.call::<(bool, Value)>((f, Value::Nil, Value::Nil));
        self.loading.store(false, Ordering::Relaxed);
        let registered: Value = self.end_load.call(()).map_err(internal)?;
        let (ok, err) = result.map_err(internal)?;
        if !ok {
            let msg = match &err {
                Value::Table(t) => t.raw_get::<String>("err").unwrap_or_default(),
                _ => String::new(),
            };
            let msg = msg.strip_prefix("ERR ").unwrap_or(&msg).to_string();
            return Err(Reply::err(format!(
                "ERR Error registering functions: {msg}"
            )));
        }
        let Value::Table(list) = registered else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for r in list.sequence_values::<Table>() {
            let r = r.map_err(internal)?;
            let flags: Table = r.get("flags").map_err(internal)?;
            out.push(Registered {
                name: r.get("name").map_err(internal)?,
                callback: r.get("callback").map_err(internal)?,
                flags: flags
                    .sequence_values::<String>()
                    .filter_map(Result::ok)
                    .collect(),
                description: r.get("description").map_err(internal)?,
            });
        }
        Ok(out)
    }

    /// Runs `f` (a script, or a function given KEYS and ARGV as its two
    /// arguments) with `redis.call` bound to `host`; `name` is what the
    /// error replies call it (`f_<sha>`, or the function's name).
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        lua: &Lua,
        f: &Function,
        function: bool,
        keys: &[Vec<u8>],
        argv: &[Vec<u8>],
        read_only: bool,
        host: &mut dyn Host,
        name: &str,
        watch: &Watch,
    ) -> Reply {
        let outcome = lua.scope(|scope| {
            let keys_t = lua.create_sequence_from(
                keys.iter()
                    .map(|k| lua.create_string(k))
                    .collect::<mlua::Result<Vec<_>>>()?,
            )?;
            let argv_t = lua.create_sequence_from(
                argv.iter()
                    .map(|k| lua.create_string(k))
                    .collect::<mlua::Result<Vec<_>>>()?,
            )?;
            if !function {
                self.base.raw_set("KEYS", keys_t.clone())?;
                self.base.raw_set("ARGV", argv_t.clone())?;
            }
            let call = scope.create_function_mut(|lua, (raise, args): (bool, MultiValue)| {
                redis_call(lua, raise, args, read_only, &mut *host, watch)
            })?;
            self.set_impl.call::<()>(call)?;
            let r = match function {
                true => self.run.call::<(bool, Value)>((f.clone(), keys_t, argv_t)),
                false => self
                    .run
                    .call::<(bool, Value)>((f.clone(), Value::Nil, Value::Nil)),
            };
            self.set_impl.call::<()>(Value::Nil)?;
            let (ok, v) = r?;
            let resp3 = watch.resp.load(Ordering::Relaxed) == 3;
            Ok(match ok {
                true => to_reply(&v, resp3),
                false => failure(&v, name),
            })
        });
        outcome.unwrap_or_else(|e| Reply::err(format!("ERR {}", convert::lua_error_text(&e))))
    }
}

/// A script's error (the handler's table) as Redis 7.0 replies it.
fn failure(v: &Value, name: &str) -> Reply {
    let Value::Table(t) = v else {
        return Reply::err(format!(
            "ERR Error running script {name}, execution failure"
        ));
    };
    let msg = match t.raw_get::<Value>("err") {
        Ok(v) => bytes(&v).map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(_) => None,
    }
    .unwrap_or_else(|| "ERR unknown error".into());
    let source = t.raw_get::<Option<String>>("source").ok().flatten();
    let line = t.raw_get::<Option<i64>>("line").ok().flatten();
    let text = match (source, line) {
        (Some(s), Some(l)) => format!("{msg} script: {name}, on {s}:{l}."),
        _ => msg,
    };
    convert::error_reply(&text)
}

fn err_table(lua: &Lua, text: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", text)?;
    Ok(Value::Table(t))
}

/// redis.call (`raise`) and redis.pcall: `(false, err)` to raise `err`.
fn redis_call(
    lua: &Lua,
    raise: bool,
    args: MultiValue,
    read_only: bool,
    host: &mut dyn Host,
    watch: &Watch,
) -> mlua::Result<(bool, Value)> {
    if args.is_empty() {
        return Ok((
            false,
            err_table(
                lua,
                "ERR Please specify at least one argument for this redis lib call",
            )?,
        ));
    }
    let mut argv = Vec::with_capacity(args.len());
    for a in args {
        let b = match &a {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Integer(_) | Value::Number(_) => {
                lua.coerce_string(a.clone())?.map(|s| s.as_bytes().to_vec())
            }
            _ => None,
        };
        match b {
            Some(b) => argv.push(b),
            None => {
                return Ok((
                    false,
                    err_table(
                        lua,
                        "ERR Lua redis lib command arguments must be strings or integers",
                    )?,
                ))
            }
        }
    }
    let fail = |text: &str| -> mlua::Result<(bool, Value)> { Ok((!raise, err_table(lua, text)?)) };
    let spec = match lookup(&argv) {
        Ok(spec) => spec,
        Err(Reply::Error(e)) if e.starts_with("ERR wrong number") => {
            return fail("ERR Wrong number of args calling Redis command from script")
        }
        Err(_) => return fail("ERR Unknown Redis command called from script"),
    };
    let flags = spec.flags;
    // BLPOP and the like are `noscript` in Redis 7.0 (BLMPOP is not: it
    // runs non-blocking, see the host).
    if flags.contains(&"noscript") {
        return fail("ERR This Redis command is not allowed from script");
    }
    if flags.contains(&"write") {
        if read_only {
            return fail("ERR Write commands are not allowed from read-only scripts.");
        }
        watch.wrote.set(true);
    }
    let reply = host.call(argv, spec);
    if let Reply::Error(e) = &reply {
        return fail(e);
    }
    Ok((
        true,
        to_lua(lua, reply, watch.resp.load(Ordering::Relaxed) == 3)?,
    ))
}

/// The `redis` table's functions written in Rust, and the prelude's.
fn redis_table(lua: &Lua, p: &Table, watch: &Arc<Watch>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("call", p.get::<Value>("call")?)?;
    t.raw_set("pcall", p.get::<Value>("pcall")?)?;
    t.raw_set(
        "sha1hex",
        lua.create_function(|lua, v: Value| {
            let s = lua.coerce_string(v)?;
            let b = s.map(|s| s.as_bytes().to_vec()).unwrap_or_default();
            Ok(super::sha1_hex(&b))
        })?,
    )?;
    t.raw_set(
        "error_reply",
        lua.create_function(|lua, msg: Value| match bytes(&msg) {
            Some(b) => {
                let t = lua.create_table()?;
                t.raw_set("err", lua.create_string(&b)?)?;
                Ok(Value::Table(t))
            }
            None => Err(mlua::Error::runtime("wrong number or type of arguments")),
        })?,
    )?;
    t.raw_set(
        "status_reply",
        lua.create_function(|lua, msg: Value| match bytes(&msg) {
            Some(b) => {
                let t = lua.create_table()?;
                t.raw_set("ok", lua.create_string(&b)?)?;
                Ok(Value::Table(t))
            }
            None => Err(mlua::Error::runtime("wrong number or type of arguments")),
        })?,
    )?;
    t.raw_set(
        "log",
        lua.create_function(|lua, args: Variadic<Value>| {
            let mut it = args.into_iter();
            let level = match it.next() {
                Some(Value::Integer(i)) => i,
                Some(Value::Number(n)) => n as i64,
                _ => {
                    return Err(mlua::Error::runtime(
                        "First argument must be a number (log level).",
                    ))
                }
            };
            if !(0..=3).contains(&level) {
                return Err(mlua::Error::runtime("Invalid debug level."));
            }
            let mut msg = String::new();
            for (i, v) in it.enumerate() {
                if i > 0 {
                    msg.push(' ');
                }
                if let Some(s) = lua.coerce_string(v)? {
                    msg.push_str(&s.to_string_lossy());
                }
            }
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "matou-kv: script: {msg}");
            Ok(())
        })?,
    )?;
    for (name, level) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
    ] {
        t.raw_set(name, level)?;
    }
    let w = watch.clone();
    t.raw_set(
        "setresp",
        lua.create_function(move |_, v: Value| {
            let n = match v {
                Value::Integer(i) => i,
                Value::Number(n) => n as i64,
                _ => -1,
            };
            if n != 2 && n != 3 {
                return Err(mlua::Error::runtime("RESP version must be 2 or 3."));
            }
            w.resp.store(n as u8, Ordering::Relaxed);
            Ok(())
        })?,
    )?;
    // No replicas: replication settings are accepted and change nothing.
    t.raw_set("set_repl", lua.create_function(|_, _: Value| Ok(()))?)?;
    t.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    t.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    t.raw_set(
        "debug",
        lua.create_function(|_, _: Variadic<Value>| Ok(()))?,
    )?;
    for (name, v) in [
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        t.raw_set(name, v)?;
    }
    t.raw_set("REDIS_VERSION", "7.0.15")?;
    t.raw_set("REDIS_VERSION_NUM", 0x07000f)?;
    Ok(t)
}

/// A number as LuaBitOp's 32-bit integer (modulo 2^32, signed).
fn to_bit(v: f64) -> i32 {
    (v as i64) as u32 as i32
}

/// The `bit` library (LuaBitOp's operations, on 32-bit integers).
fn bit(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let fold = |f: fn(i32, i32) -> i32| {
        move |_: &Lua, args: Variadic<f64>| {
            let mut it = args.into_iter().map(to_bit);
            let first = it.next().ok_or_else(|| {
                mlua::Error::runtime("bad argument #1 (number expected, got no value)")
            })?;
            Ok(it.fold(first, f))
        }
    };
    t.raw_set("band", lua.create_function(fold(|a, b| a & b))?)?;
    t.raw_set("bor", lua.create_function(fold(|a, b| a | b))?)?;
    t.raw_set("bxor", lua.create_function(fold(|a, b| a ^ b))?)?;
    t.raw_set("tobit", lua.create_function(|_, x: f64| Ok(to_bit(x)))?)?;
    t.raw_set("bnot", lua.create_function(|_, x: f64| Ok(!to_bit(x)))?)?;
    t.raw_set(
        "bswap",
        lua.create_function(|_, x: f64| Ok(to_bit(x).swap_bytes()))?,
    )?;
    let shift = |f: fn(i32, u32) -> i32| {
        move |_: &Lua, (x, n): (f64, f64)| Ok(f(to_bit(x), (to_bit(n) as u32) & 31))
    };
    t.raw_set(
        "lshift",
        lua.create_function(shift(|x, n| ((x as u32) << n) as i32))?,
    )?;
    t.raw_set(
        "rshift",
        lua.create_function(shift(|x, n| ((x as u32) >> n) as i32))?,
    )?;
    t.raw_set("arshift", lua.create_function(shift(|x, n| x >> n))?)?;
    t.raw_set(
        "rol",
        lua.create_function(shift(|x, n| (x as u32).rotate_left(n) as i32))?,
    )?;
    t.raw_set(
        "ror",
        lua.create_function(shift(|x, n| (x as u32).rotate_right(n) as i32))?,
    )?;
    t.raw_set(
        "tohex",
        lua.create_function(|_, (x, n): (f64, Option<f64>)| {
            let n = n.map_or(8, to_bit);
            let (upper, digits) = (n < 0, n.unsigned_abs().min(8) as usize);
            let v = to_bit(x) as u32;
            let s = match upper {
                true => format!("{v:08X}"),
                false => format!("{v:08x}"),
            };
            Ok(s[8 - digits..].to_string())
        })?,
    )?;
    Ok(t)
}

/// The `cjson` library: encode / decode through serde_json.
fn cjson(lua: &Lua) -> mlua::Result<Table> {
    use mlua::LuaSerdeExt;
    let t = lua.create_table()?;
    t.raw_set(
        "encode",
        lua.create_function(|_, v: Value| {
            serde_json::to_string(&v)
                .map_err(|e| mlua::Error::runtime(format!("Cannot serialise: {e}")))
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(|lua, s: mlua::String| {
            let j: serde_json::Value = serde_json::from_slice(&s.as_bytes()).map_err(|e| {
                mlua::Error::runtime(format!("Expected value but found invalid token: {e}"))
            })?;
            lua.to_value(&j)
        })?,
    )?;
    t.raw_set("null", Value::NULL)?;
    Ok(t)
}
