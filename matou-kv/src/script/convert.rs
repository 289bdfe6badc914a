//! Conversions between Lua values and RESP replies, as Redis 7.0 makes
//! them (`script_lua.c`):
//! - Lua -> reply: a number is an integer (truncated), a string a bulk,
//!   `true` the integer 1 (RESP3: true), `false` and nil a null (RESP3:
//!   false / null), a table with `err` an error, with `ok` a status, with
//!   `double` / `map` / `set` / `big_number` / `verbatim_string` the RESP3
//!   types, any other table the array of its elements up to the first nil.
//! - Reply -> Lua, in the protocol `redis.setresp` chose: an integer a
//!   number, a bulk a string, a null `false` (RESP3: nil), a status
//!   `{ok=...}`, an error `{err=...}`, an array a table; RESP3's maps,
//!   sets, doubles, booleans and big numbers as Redis gives them to
//!   RESP3 scripts, or flattened / as strings in RESP2.
//!
//! Only raw table accesses are made: a metatable's `__index` never runs
//! (Redis's `lua_rawget` too), so converting a table cannot call back into
//! the script.

use super::array_part;
use crate::resp::Reply;
use mlua::{Lua, Table, Value};

/// How deep tables nest before the conversion gives up (a table can hold
/// itself).
const MAX_DEPTH: usize = 1000;

/// The text of a Lua error (a compile error's message, a runtime error's).
pub fn lua_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_error_text(cause),
        other => other.to_string(),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        _ => None,
    }
}

/// A script's result (or a value it passed to redis.error_reply's table)
/// as a reply.
pub fn to_reply(v: &Value, resp3: bool) -> Reply {
    to_reply_at(v, resp3, 0)
}

fn to_reply_at(v: &Value, resp3: bool, depth: usize) -> Reply {
    if depth > MAX_DEPTH {
        return Reply::err("ERR reached lua stack limit");
    }
    match v {
        Value::Nil => Reply::Nil,
        Value::Boolean(true) if resp3 => Reply::Bool(true),
        Value::Boolean(false) if resp3 => Reply::Bool(false),
        Value::Boolean(true) => Reply::Integer(1),
        Value::Boolean(false) => Reply::Nil,
        Value::Integer(i) => Reply::Integer(*i),
        Value::Number(n) => Reply::Integer(truncate(*n)),
        Value::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        Value::Table(t) => table_reply(t, resp3, depth),
        _ => Reply::Nil,
    }
}

/// Lua's number to an integer as Redis's `(long long)` cast does, without
/// undefined behaviour for NaN or out of range.
fn truncate(n: f64) -> i64 {
    n as i64
}

fn table_reply(t: &Table, resp3: bool, depth: usize) -> Reply {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Some(e) = text(&field("err")) {
        return error_reply(&e);
    }
    if let Some(s) = text(&field("ok")) {
        // A status line holds no CR/LF.
        return Reply::Simple(s.replace(['\r', '\n'], " ").into());
    }
    match field("double") {
        Value::Number(n) => return Reply::Double(double_text(n)),
        Value::Integer(i) => return Reply::Double(double_text(i as f64)),
        _ => {}
    }
    if let Some(s) = text(&field("big_number")) {
        return Reply::BigNumber(s);
    }
    if let Value::Table(v) = field("verbatim_string") {
        let format = text(&v.raw_get("format").unwrap_or(Value::Nil));
        let body = match v.raw_get::<Value>("string") {
            Ok(Value::String(s)) => s.as_bytes().to_vec(),
            _ => Vec::new(),
        };
        let format = match format.as_deref() {
            Some("mkd") => "mkd",
            _ => "txt",
        };
        return Reply::Verbatim(format, body);
    }
    if let Value::Table(m) = field("map") {
        let pairs = m
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| {
                (
                    to_reply_at(&k, resp3, depth + 1),
                    to_reply_at(&v, resp3, depth + 1),
                )
            })
            .collect();
        return Reply::Map(pairs);
    }
    if let Value::Table(s) = field("set") {
        let members = s
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| to_reply_at(&k, resp3, depth + 1))
            .collect();
        return Reply::Set(members);
    }
    Reply::Array(
        array_part(t)
            .map(|v| to_reply_at(&v, resp3, depth + 1))
            .collect(),
    )
}

/// An error reply from a script's text: Redis adds the `ERR` code only to
/// an empty message; a leading `-` is dropped.
pub fn error_reply(text: &str) -> Reply {
    let text = text.strip_prefix('-').unwrap_or(text);
    let text = text.replace(['\r', '\n'], " ");
    if text.is_empty() {
        return Reply::err("ERR");
    }
    Reply::err(text)
}

fn double_text(n: f64) -> String {
    String::from_utf8_lossy(&crate::store::zset::score_text(n)).into_owned()
}

/// A command's reply as the script sees it (`resp3`: after
/// `redis.setresp(3)`).
///
/// # Errors
/// Lua's (out of memory).
pub fn to_lua(lua: &Lua, r: Reply, resp3: bool) -> mlua::Result<Value> {
    let status = |field: &str, s: &str| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(field, s)?;
        Ok(Value::Table(t))
    };
    let array = |items: Vec<Reply>| -> mlua::Result<Value> {
        let t = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.into_iter().enumerate() {
            t.raw_set(i + 1, to_lua(lua, item, resp3)?)?;
        }
        Ok(Value::Table(t))
    };
    let flat =
        |pairs: Vec<(Reply, Reply)>| array(pairs.into_iter().flat_map(|(a, b)| [a, b]).collect());
    let wrapped = |field: &str, v: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(field, v)?;
        Ok(Value::Table(t))
    };
    Ok(match r {
        Reply::Simple(s) => status("ok", &s)?,
        Reply::Error(e) => status("err", &e)?,
        Reply::Integer(i) => Value::Number(i as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(&b)?),
        Reply::Nil | Reply::NilArray if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Array(items) | Reply::Push(items) => array(items)?,
        Reply::Set(items) if resp3 => {
            let t = lua.create_table()?;
            for item in items {
                t.raw_set(to_lua(lua, item, resp3)?, true)?;
            }
            wrapped("set", Value::Table(t))?
        }
        Reply::Set(items) => array(items)?,
        Reply::Map(pairs) if resp3 => {
            let t = lua.create_table()?;
            for (k, v) in pairs {
                t.raw_set(to_lua(lua, k, resp3)?, to_lua(lua, v, resp3)?)?;
            }
            wrapped("map", Value::Table(t))?
        }
        Reply::Map(pairs) => flat(pairs)?,
        Reply::Pairs(pairs) if resp3 => array(
            pairs
                .into_iter()
                .map(|(a, b)| Reply::Array(vec![a, b]))
                .collect(),
        )?,
        Reply::Pairs(pairs) => flat(pairs)?,
        Reply::Double(d) if resp3 => {
            let n = d.parse::<f64>().unwrap_or(match d.as_str() {
                "-inf" => f64::NEG_INFINITY,
                "inf" => f64::INFINITY,
                _ => f64::NAN,
            });
            wrapped("double", Value::Number(n))?
        }
        Reply::Double(d) => Value::String(lua.create_string(&d)?),
        Reply::Bool(b) if resp3 => Value::Boolean(b),
        Reply::Bool(b) => Value::Number(if b { 1.0 } else { 0.0 }),
        Reply::BigNumber(n) if resp3 => {
            wrapped("big_number", Value::String(lua.create_string(&n)?))?
        }
        Reply::BigNumber(n) => Value::String(lua.create_string(&n)?),
        Reply::Verbatim(format, body) if resp3 => {
            let t = lua.create_table()?;
            t.raw_set("format", format)?;
            t.raw_set("string", lua.create_string(&body)?)?;
            wrapped("verbatim_string", Value::Table(t))?
        }
        Reply::Verbatim(_, body) => Value::String(lua.create_string(&body)?),
        Reply::Attributed(_, inner) => to_lua(lua, *inner, resp3)?,
    })
}
