//! The scripting commands' parse: EVAL / EVALSHA / FCALL (and their `_RO`
//! forms), SCRIPT and FUNCTION. They run in the storage task (which owns
//! the [`Engine`](crate::script::Engine)), routed there as
//! [`Conn::Script`](super::Conn::Script); see `server/storage/script.rs`.

use super::{shown, Command, Conn, NOT_INTEGER, SYNTAX};
use crate::resp::{parse_i64, Reply};

/// What a script is run from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// EVAL's body.
    Body(Vec<u8>),
    /// EVALSHA's SHA1.
    Sha(Vec<u8>),
    /// FCALL's function name.
    Function(Vec<u8>),
}

/// A scripting command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptCmd {
    /// EVAL, EVALSHA, FCALL and their `_RO` forms (`read_only`).
    Run {
        /// What to run.
        source: Source,
        /// KEYS.
        keys: Vec<Vec<u8>>,
        /// ARGV.
        argv: Vec<Vec<u8>>,
        /// The `_RO` form: write commands refused.
        read_only: bool,
    },
    /// SCRIPT LOAD body.
    Load(Vec<u8>),
    /// SCRIPT EXISTS sha...
    Exists(Vec<Vec<u8>>),
    /// SCRIPT FLUSH [ASYNC|SYNC].
    Flush,
    /// SCRIPT KILL (`function: false`) or FUNCTION KILL.
    Kill {
        /// FUNCTION KILL.
        function: bool,
    },
    /// FUNCTION LOAD [REPLACE] code.
    FunctionLoad {
        /// The library's code.
        code: Vec<u8>,
        /// REPLACE.
        replace: bool,
    },
    /// FUNCTION DELETE library.
    FunctionDelete(Vec<u8>),
    /// FUNCTION FLUSH [ASYNC|SYNC].
    FunctionFlush,
    /// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE].
    FunctionList {
        /// LIBRARYNAME's pattern.
        pattern: Option<Vec<u8>>,
        /// WITHCODE.
        with_code: bool,
    },
    /// FUNCTION STATS.
    FunctionStats,
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn conn(c: ScriptCmd) -> Result<Command, Reply> {
    Ok(Command::Conn(Conn::Script(c)))
}

/// `[ASYNC|SYNC]` of the flushes.
fn flush_mode(args: &[Vec<u8>]) -> Result<(), Reply> {
    match args {
        [] => Ok(()),
        [a] if is(a, "async") || is(a, "sync") => Ok(()),
        _ => Err(Reply::err(SYNTAX)),
    }
}

/// Parses a scripting command whose spec `name` the lookup found.
pub(super) fn parse(name: &str, args: &[Vec<u8>]) -> Result<Command, Reply> {
    match name {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => {
            let n = parse_i64(&args[2]).ok_or(Reply::err(match name.starts_with("fcall") {
                true => "ERR Bad number of keys provided",
                false => NOT_INTEGER,
            }))?;
            let rest = &args[3..];
            if n < 0 {
                return Err(Reply::err("ERR Number of keys can't be negative"));
            }
            if n as u64 > rest.len() as u64 {
                return Err(Reply::err(
                    "ERR Number of keys can't be greater than number of args",
                ));
            }
            let (keys, argv) = rest.split_at(n as usize);
            let target = args[1].clone();
            let source = match name {
                "eval" | "eval_ro" => Source::Body(target),
                "evalsha" | "evalsha_ro" => Source::Sha(target),
                _ => Source::Function(target),
            };
            conn(ScriptCmd::Run {
                source,
                keys: keys.to_vec(),
                argv: argv.to_vec(),
                read_only: name.ends_with("_ro"),
            })
        }
        "script|load" => conn(ScriptCmd::Load(args[2].clone())),
        "script|exists" => conn(ScriptCmd::Exists(args[2..].to_vec())),
        "script|flush" => flush_mode(&args[2..]).and_then(|()| conn(ScriptCmd::Flush)),
        "script|kill" => conn(ScriptCmd::Kill { function: false }),
        "function|kill" => conn(ScriptCmd::Kill { function: true }),
        "function|flush" => flush_mode(&args[2..]).and_then(|()| conn(ScriptCmd::FunctionFlush)),
        "function|delete" => conn(ScriptCmd::FunctionDelete(args[2].clone())),
        "function|stats" => conn(ScriptCmd::FunctionStats),
        "function|load" => match &args[2..] {
            [code] => conn(ScriptCmd::FunctionLoad {
                code: code.clone(),
                replace: false,
            }),
            [r, code] if is(r, "replace") => conn(ScriptCmd::FunctionLoad {
                code: code.clone(),
                replace: true,
            }),
            [options @ .., code] => match options.iter().find(|o| !is(o, "replace")) {
                Some(a) => Err(Reply::err(format!(
                    "ERR Unknown option given: {}",
                    shown(a, 128)
                ))),
                None => conn(ScriptCmd::FunctionLoad {
                    code: code.clone(),
                    replace: true,
                }),
            },
            [] => Err(super::wrong_arity("function|load")),
        },
        "function|list" => {
            let mut pattern = None;
            let mut with_code = false;
            let mut i = 2;
            while i < args.len() {
                if is(&args[i], "withcode") && !with_code {
                    with_code = true;
                } else if is(&args[i], "libraryname") && pattern.is_none() {
                    let Some(p) = args.get(i + 1) else {
                        return Err(Reply::err("ERR library name argument was not given"));
                    };
                    pattern = Some(p.clone());
                    i += 1;
                } else {
                    return Err(Reply::err(format!(
                        "ERR Unknown argument {}",
                        shown(&args[i], 128)
                    )));
                }
                i += 1;
            }
            conn(ScriptCmd::FunctionList { pattern, with_code })
        }
        _ => Err(Reply::err(SYNTAX)),
    }
}
