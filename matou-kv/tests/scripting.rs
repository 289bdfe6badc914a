//! Scripting (EVAL, SCRIPT, FUNCTION) against the real server through the
//! `redis` crate: the Lua API and its conversions, Redis's errors, the
//! script cache and function libraries, atomicity, durability of a
//! script's writes across SIGKILL, BUSY and SCRIPT KILL, and redis-py's
//! `Lock` (which is built on EVALSHA).

mod common;

use common::{require_redis_py, run_client_program, temp_dir, Server};
use redis::{cmd, Connection, RedisResult, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn eval<T: redis::FromRedisValue>(
    c: &mut Connection,
    body: &str,
    keys: &[&str],
    argv: &[&str],
) -> RedisResult<T> {
    cmd("EVAL")
        .arg(body)
        .arg(keys.len())
        .arg(keys)
        .arg(argv)
        .query(c)
}

fn err_text(r: RedisResult<Value>) -> String {
    match r {
        Err(e) => format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[test]
fn lua_values_convert_as_redis_converts_them() {
    let dir = temp_dir("script-conv");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    assert_eq!(
        eval::<String>(&mut c, "return 'hello'", &[], &[]).unwrap(),
        "hello"
    );
    assert_eq!(eval::<i64>(&mut c, "return 100.5", &[], &[]).unwrap(), 100);
    assert_eq!(eval::<i64>(&mut c, "return true", &[], &[]).unwrap(), 1);
    assert_eq!(
        eval::<Value>(&mut c, "return false", &[], &[]).unwrap(),
        Value::Nil
    );
    assert_eq!(
        eval::<String>(&mut c, "return {ok='fine'}", &[], &[]).unwrap(),
        "fine"
    );
    assert_eq!(
        err_text(eval(
            &mut c,
            "return {err='MYERR this is an error'}",
            &[],
            &[]
        )),
        "MYERR this is an error"
    );
    assert_eq!(
        err_text(eval(
            &mut c,
            "return redis.error_reply('MY_CODE custom')",
            &[],
            &[]
        )),
        "MY_CODE custom"
    );
    assert_eq!(
        eval::<String>(&mut c, "return redis.status_reply('GOOD')", &[], &[]).unwrap(),
        "GOOD"
    );
    let v: Value = eval(&mut c, "return {1,2,3,'ciao',{1,2}}", &[], &[]).unwrap();
    assert_eq!(
        v,
        Value::Array(vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3),
            Value::BulkString(b"ciao".to_vec()),
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
        ])
    );
    // The array stops at the first nil.
    let v: Vec<i64> = eval(&mut c, "return {1,2,nil,4}", &[], &[]).unwrap();
    assert_eq!(v, vec![1, 2]);
    let v: Vec<String> = eval(
        &mut c,
        "return {KEYS[1],KEYS[2],ARGV[1],ARGV[2]}",
        &["a", "b"],
        &["c", "d"],
    )
    .unwrap();
    assert_eq!(v, ["a", "b", "c", "d"]);
    // Replies into Lua: integer, bulk, nil as false, status as {ok=}.
    cmd("SET").arg("x").arg("5").query::<()>(&mut c).unwrap();
    let v: Vec<String> = eval(
        &mut c,
        "local n = redis.call('incr', KEYS[1]) \
         local s = redis.call('set', 'y', 'z') \
         local missing = redis.call('get', 'nokey') \
         return {type(n), tostring(n), type(s), s.ok, tostring(missing)}",
        &["x"],
        &[],
    )
    .unwrap();
    assert_eq!(v, ["number", "6", "table", "OK", "false"]);
    // RESP3 types once the script asks for them.
    let v: Vec<String> = eval(
        &mut c,
        "redis.setresp(3) redis.call('hset', 'h', 'f', 'v') \
         local m = redis.call('hgetall', 'h') return {type(m.map), m.map.f}",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(v, ["table", "v"]);
    assert_eq!(
        eval::<String>(&mut c, "return redis.sha1hex('')", &[], &[]).unwrap(),
        "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
    assert_eq!(
        eval::<String>(&mut c, "return cjson.encode({1,2,{a=1}})", &[], &[]).unwrap(),
        r#"[1,2,{"a":1}]"#
    );
    assert_eq!(
        eval::<i64>(
            &mut c,
            r#"return cjson.decode('[1,{"a":5}]')[2].a"#,
            &[],
            &[]
        )
        .unwrap(),
        5
    );
    assert_eq!(
        eval::<i64>(&mut c, "return bit.band(7, 3, 2)", &[], &[]).unwrap(),
        2
    );
    assert_eq!(
        eval::<i64>(&mut c, "return bit.lshift(1, 4)", &[], &[]).unwrap(),
        16
    );
    assert_eq!(
        eval::<String>(&mut c, "return bit.tohex(255, 2)", &[], &[]).unwrap(),
        "ff"
    );
    let replicated: bool = eval(&mut c, "return redis.replicate_commands()", &[], &[]).unwrap();
    assert!(replicated);
}

#[test]
fn errors_are_worded_as_redis_words_them() {
    let dir = temp_dir("script-errors");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let e = err_text(cmd("EVAL").arg("return 1").arg(2).arg("a").query(&mut c));
    assert_eq!(e, "ERR Number of keys can't be greater than number of args");
    let e = err_text(cmd("EVAL").arg("return 1").arg(-1).query(&mut c));
    assert_eq!(e, "ERR Number of keys can't be negative");
    let e = err_text(eval(&mut c, "error('boom')", &[], &[]));
    assert!(e.starts_with("ERR user_script:1: boom script: f_"), "{e}");
    assert!(e.ends_with(", on @user_script:1."), "{e}");
    let e = err_text(eval(&mut c, "return a", &[], &[]));
    assert!(
        e.contains("Script attempted to access nonexistent global variable 'a'"),
        "{e}"
    );
    let e = err_text(eval(&mut c, "a = 10", &[], &[]));
    assert!(e.contains("Attempt to modify a readonly table"), "{e}");
    let e = err_text(eval(&mut c, "redis.call = function() end", &[], &[]));
    assert!(e.contains("Attempt to modify a readonly table"), "{e}");
    for sandboxed in ["os", "io", "loadfile", "dofile", "print", "debug"] {
        let e = err_text(eval(
            &mut c,
            &format!("return {sandboxed} ~= nil"),
            &[],
            &[],
        ));
        assert!(
            e.contains("nonexistent global variable"),
            "{sandboxed}: {e}"
        );
    }
    let e = err_text(eval(&mut c, "redis.call('nosuchcommand')", &[], &[]));
    assert!(
        e.starts_with("ERR Unknown Redis command called from script"),
        "{e}"
    );
    let e = err_text(eval(&mut c, "redis.call('get', 'a', 'b')", &[], &[]));
    assert!(
        e.starts_with("ERR Wrong number of args calling Redis command from script"),
        "{e}"
    );
    let e = err_text(eval(&mut c, "redis.call('subscribe', 'ch')", &[], &[]));
    assert!(
        e.starts_with("ERR This Redis command is not allowed from script"),
        "{e}"
    );
    let e = err_text(eval(&mut c, "redis.call('eval', 'return 1', 0)", &[], &[]));
    assert!(
        e.starts_with("ERR This Redis command is not allowed from script"),
        "{e}"
    );
    let e = err_text(eval(&mut c, "redis.call()", &[], &[]));
    assert!(e.contains("at least one argument"), "{e}");
    let e = err_text(eval(&mut c, "redis.call('get', {})", &[], &[]));
    assert!(e.contains("arguments must be strings or integers"), "{e}");
    let e = err_text(eval(&mut c, "return +", &[], &[]));
    assert!(e.starts_with("ERR Error compiling script"), "{e}");
    // redis.call raises the command's error; redis.pcall returns it.
    cmd("SET").arg("str").arg("v").query::<()>(&mut c).unwrap();
    let e = err_text(eval(
        &mut c,
        "redis.call('lpush', KEYS[1], 'x')",
        &["str"],
        &[],
    ));
    assert!(e.starts_with("WRONGTYPE"), "{e}");
    let e: String = eval(
        &mut c,
        "local r = redis.pcall('lpush', KEYS[1], 'x') return r.err",
        &["str"],
        &[],
    )
    .unwrap();
    assert!(e.starts_with("WRONGTYPE"), "{e}");
    // BLPOP is refused in scripts (Redis 7.0); BLMPOP runs non-blocking:
    // an empty list is a nil at once.
    let e = err_text(eval(
        &mut c,
        "return redis.call('blpop', 'empty', 0)",
        &[],
        &[],
    ));
    assert!(
        e.starts_with("ERR This Redis command is not allowed from script"),
        "{e}"
    );
    let v: Value = eval(
        &mut c,
        "return redis.call('blmpop', 0, 1, 'empty', 'LEFT')",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(v, Value::Nil);
    // SELECT in a script is the script's only.
    let v: Option<String> = eval(
        &mut c,
        "redis.call('select', 9) redis.call('set', 'in9', 'x') return redis.call('get', 'in9')",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(v.as_deref(), Some("x"));
    let v: Option<String> = cmd("GET").arg("in9").query(&mut c).unwrap();
    assert_eq!(v, None, "the caller's database changed");
    // Read-only forms refuse writes, and run reads.
    let e = err_text(
        cmd("EVAL_RO")
            .arg("return redis.call('set', 'k', 'v')")
            .arg(0)
            .query(&mut c),
    );
    assert!(
        e.starts_with("ERR Write commands are not allowed from read-only scripts"),
        "{e}"
    );
    let v: String = cmd("EVAL_RO")
        .arg("return redis.call('get', KEYS[1])")
        .arg(1)
        .arg("str")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "v");
    let e = err_text(cmd("SCRIPT").arg("KILL").query(&mut c));
    assert_eq!(e, "NOTBUSY No scripts in execution right now.");
}

#[test]
fn script_cache_load_exists_flush_and_evalsha() {
    let dir = temp_dir("script-cache");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let body = "return redis.call('get', KEYS[1])";
    let sha: String = cmd("SCRIPT").arg("LOAD").arg(body).query(&mut c).unwrap();
    assert_eq!(sha.len(), 40);
    cmd("SET").arg("k").arg("val").query::<()>(&mut c).unwrap();
    let v: String = cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("k")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "val");
    let v: String = cmd("EVALSHA")
        .arg(sha.to_uppercase())
        .arg(1)
        .arg("k")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "val");
    let v: String = cmd("EVALSHA_RO")
        .arg(&sha)
        .arg(1)
        .arg("k")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "val");
    let missing = "ffd632c7d33e571e9f24556ebed26c3479a87130";
    let flags: Vec<i64> = cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .arg(missing)
        .query(&mut c)
        .unwrap();
    assert_eq!(flags, [1, 0]);
    let e = err_text(cmd("EVALSHA").arg(missing).arg(0).query(&mut c));
    assert_eq!(e, "NOSCRIPT No matching script. Please use EVAL.");
    // EVAL caches its body under its SHA1 too.
    let other = "return 42";
    let _: i64 = eval(&mut c, other, &[], &[]).unwrap();
    let other_sha: String = cmd("SCRIPT").arg("LOAD").arg(other).query(&mut c).unwrap();
    let v: i64 = cmd("EVALSHA").arg(&other_sha).arg(0).query(&mut c).unwrap();
    assert_eq!(v, 42);
    let _: () = cmd("SCRIPT")
        .arg("FLUSH")
        .arg("ASYNC")
        .query(&mut c)
        .unwrap();
    let flags: Vec<i64> = cmd("SCRIPT").arg("EXISTS").arg(&sha).query(&mut c).unwrap();
    assert_eq!(flags, [0]);
    let e = err_text(cmd("EVALSHA").arg(&sha).arg(1).arg("k").query(&mut c));
    assert!(e.starts_with("NOSCRIPT"), "{e}");
    let info: String = cmd("INFO").arg("memory").query(&mut c).unwrap();
    assert!(info.contains("used_memory_lua:"), "{info}");
    assert!(info.contains("number_of_cached_scripts:0"), "{info}");
}

#[test]
fn function_libraries_load_call_list_delete_and_flush() {
    let dir = temp_dir("script-functions");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let lib = "#!lua name=mylib\n\
        redis.register_function('incr2', function(keys, args) \
            return redis.call('incrby', keys[1], args[1]) end)\n\
        redis.register_function{function_name='peek', callback=function(keys) \
            return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}";
    let name: String = cmd("FUNCTION").arg("LOAD").arg(lib).query(&mut c).unwrap();
    assert_eq!(name, "mylib");
    let e = err_text(cmd("FUNCTION").arg("LOAD").arg(lib).query(&mut c));
    assert_eq!(e, "ERR Library 'mylib' already exists");
    let name: String = cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    assert_eq!(name, "mylib");
    let n: i64 = cmd("FCALL")
        .arg("incr2")
        .arg(1)
        .arg("n")
        .arg(5)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 5);
    let v: String = cmd("FCALL_RO")
        .arg("peek")
        .arg(1)
        .arg("n")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "5");
    let e = err_text(
        cmd("FCALL_RO")
            .arg("incr2")
            .arg(1)
            .arg("n")
            .arg(1)
            .query(&mut c),
    );
    assert!(
        e.contains("Write commands are not allowed from read-only scripts"),
        "{e}"
    );
    let e = err_text(cmd("FCALL").arg("incr2").arg("x").query(&mut c));
    assert_eq!(e, "ERR Bad number of keys provided");
    let n: i64 = cmd("FCALL")
        .arg("INCR2")
        .arg(1)
        .arg("n")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 5, "function names are case-insensitive");
    let e = err_text(cmd("FCALL").arg("nosuch").arg(0).query(&mut c));
    assert_eq!(e, "ERR Function not found");
    let e = err_text(cmd("FUNCTION").arg("LOAD").arg("return 1").query(&mut c));
    assert_eq!(e, "ERR Missing library metadata");
    let e = err_text(
        cmd("FUNCTION")
            .arg("LOAD")
            .arg("#!lua name=empty\nlocal x = 1")
            .query(&mut c),
    );
    assert_eq!(e, "ERR No functions registered");
    let e = err_text(
        cmd("FUNCTION")
            .arg("LOAD")
            .arg("#!lua name=bad\nredis.register_function('f', function() return 1 end")
            .query(&mut c),
    );
    assert!(e.starts_with("ERR Error compiling function"), "{e}");
    let list: Value = cmd("FUNCTION")
        .arg("LIST")
        .arg("WITHCODE")
        .query(&mut c)
        .unwrap();
    let text = format!("{list:?}");
    for part in [
        "mylib",
        "incr2",
        "peek",
        "no-writes",
        "reads",
        "LUA",
        "register_function",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    let list: Value = cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("other*")
        .query(&mut c)
        .unwrap();
    assert_eq!(list, Value::Array(vec![]));
    let _: () = cmd("FUNCTION")
        .arg("DELETE")
        .arg("mylib")
        .query(&mut c)
        .unwrap();
    let e = err_text(
        cmd("FCALL")
            .arg("incr2")
            .arg(1)
            .arg("n")
            .arg(1)
            .query(&mut c),
    );
    assert_eq!(e, "ERR Function not found");
    let e = err_text(cmd("FUNCTION").arg("DELETE").arg("mylib").query(&mut c));
    assert_eq!(e, "ERR Library not found");
    let _: String = cmd("FUNCTION").arg("LOAD").arg(lib).query(&mut c).unwrap();
    let _: () = cmd("FUNCTION").arg("FLUSH").query(&mut c).unwrap();
    let list: Value = cmd("FUNCTION").arg("LIST").query(&mut c).unwrap();
    assert_eq!(list, Value::Array(vec![]));
}

#[test]
fn a_script_runs_in_one_piece_other_clients_never_see_half_of_it() {
    let dir = temp_dir("script-atomic");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let url = server.url();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut r = redis::Client::open(url).unwrap().get_connection().unwrap();
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, b): (Option<i64>, Option<i64>) =
                    cmd("MGET").arg("a").arg("b").query(&mut r).unwrap();
                assert_eq!(a, b, "a read saw half of a script");
                reads += 1;
            }
            reads
        })
    };
    for _ in 0..40 {
        let _: i64 = eval(
            &mut c,
            "for i = 1, 500 do redis.call('incr', 'a') redis.call('incr', 'b') end \
             return redis.call('get', 'a')",
            &[],
            &[],
        )
        .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    let (a, b): (i64, i64) = cmd("MGET").arg("a").arg("b").query(&mut c).unwrap();
    assert_eq!((a, b), (20_000, 20_000));
}

#[test]
fn a_scripts_writes_survive_sigkill_even_when_it_fails_after_them() {
    let dir = temp_dir("script-durable");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    let mut c = server.client();
    let _: () = eval(
        &mut c,
        "redis.call('set', KEYS[1], ARGV[1]) redis.call('rpush', KEYS[2], 'x', 'y')",
        &["s", "l"],
        &["v"],
    )
    .unwrap();
    // Two writes, then an error: the writes stay (no rollback, as Redis).
    let e = err_text(eval(
        &mut c,
        "redis.call('set', 'e1', '1') redis.call('incr', 'e2') error('halfway')",
        &[],
        &[],
    ));
    assert!(e.contains("halfway"), "{e}");
    let sha: String = cmd("SCRIPT")
        .arg("LOAD")
        .arg("return redis.call('incrby', KEYS[1], ARGV[1])")
        .query(&mut c)
        .unwrap();
    let n: i64 = cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("n")
        .arg(7)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 7);
    drop(c);
    server.kill();
    server.spawn();
    let mut c = server.client();
    let s: String = cmd("GET").arg("s").query(&mut c).unwrap();
    assert_eq!(s, "v");
    let l: Vec<String> = cmd("LRANGE").arg("l").arg(0).arg(-1).query(&mut c).unwrap();
    assert_eq!(l, ["x", "y"]);
    let (e1, e2, n): (String, i64, i64) = cmd("MGET")
        .arg("e1")
        .arg("e2")
        .arg("n")
        .query(&mut c)
        .unwrap();
    assert_eq!((e1.as_str(), e2, n), ("1", 1, 7));
    // The script cache is not kept across restarts (as in Redis).
    let e = err_text(
        cmd("EVALSHA")
            .arg(&sha)
            .arg(1)
            .arg("n")
            .arg(1)
            .query(&mut c),
    );
    assert!(e.starts_with("NOSCRIPT"), "{e}");
}

/// Sends GET until the server answers BUSY (a script is past the
/// threshold), for at most 20 s.
fn wait_busy(c: &mut Connection) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match cmd("GET").arg("probe").query::<Option<String>>(c) {
            Err(e) if e.code() == Some("BUSY") => {
                return format!("BUSY {}", e.detail().unwrap_or(""))
            }
            other => {
                assert!(Instant::now() < deadline, "never BUSY: {other:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn a_busy_script_answers_busy_and_script_kill_stops_it() {
    let dir = temp_dir("script-busy");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg(100)
        .query(&mut c)
        .unwrap();
    let v: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("lua-time-limit")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, ["lua-time-limit", "100"]);
    let url = server.url();
    let looping = std::thread::spawn(move || {
        let mut l = redis::Client::open(url).unwrap().get_connection().unwrap();
        err_text(eval(
            &mut l,
            "local i = 0 while true do i = i + 1 end",
            &[],
            &[],
        ))
    });
    let busy = wait_busy(&mut c);
    assert_eq!(
        busy,
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    );
    let e = err_text(cmd("FUNCTION").arg("KILL").query(&mut c));
    assert!(e.starts_with("BUSY"), "{e}");
    let _: () = cmd("SCRIPT").arg("KILL").query(&mut c).unwrap();
    let killed = looping.join().unwrap();
    assert!(
        killed.contains("Script killed by user with SCRIPT KILL"),
        "{killed}"
    );
    let _: () = cmd("SET").arg("after").arg("1").query(&mut c).unwrap();
    let v: String = cmd("GET").arg("after").query(&mut c).unwrap();
    assert_eq!(v, "1");
    // A function is killed by FUNCTION KILL.
    let lib = "#!lua name=spin\nredis.register_function('spin', function() while true do end end)";
    let _: String = cmd("FUNCTION").arg("LOAD").arg(lib).query(&mut c).unwrap();
    let url = server.url();
    let looping = std::thread::spawn(move || {
        let mut l = redis::Client::open(url).unwrap().get_connection().unwrap();
        err_text(cmd("FCALL").arg("spin").arg(0).query(&mut l))
    });
    let busy = wait_busy(&mut c);
    assert!(busy.contains("FUNCTION KILL"), "{busy}");
    let _: () = cmd("FUNCTION").arg("KILL").query(&mut c).unwrap();
    let killed = looping.join().unwrap();
    assert!(
        killed.contains("Script killed by user with FUNCTION KILL"),
        "{killed}"
    );
    let pong: String = cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn a_busy_script_that_wrote_is_unkillable() {
    let dir = temp_dir("script-unkillable");
    let mut server = Server::start(&dir, &[]);
    let mut c = server.client();
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("lua-time-limit")
        .arg(100)
        .query(&mut c)
        .unwrap();
    let url = server.url();
    let _looping = std::thread::spawn(move || {
        let mut l = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _ = eval::<Value>(
            &mut l,
            "redis.call('set', 'w', '1') while true do end",
            &[],
            &[],
        );
    });
    wait_busy(&mut c);
    let e = err_text(cmd("SCRIPT").arg("KILL").query(&mut c));
    assert!(
        e.starts_with("UNKILLABLE Sorry the script already executed write commands"),
        "{e}"
    );
    // Still busy: only killing the process ends it.
    wait_busy(&mut c);
    server.kill();
}

#[test]
fn redis_py_lock_works() {
    require_redis_py();
    let dir = temp_dir("script-redis-py-lock");
    let mut server = Server::start(&dir, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/redis_py_lock.py");
    run_client_program(&mut server, "python3", &script, "redis-py lock");
}
