//! COMMAND GETKEYS: the key arguments of a command line, as Redis 7.0
//! extracts them: from the command table's (first, last, step) for most
//! commands, and by reading the arguments for the `movablekeys` ones whose
//! keys depend on them (a `numkeys` count, SORT's STORE).
//!
//! Invariant: it reads the command line only; nothing is run or looked up
//! in the store.

use super::{find, Spec};
use crate::resp::{parse_i64, Reply};

/// The keys of the command line `args` (`args[0]` its name), or Redis's
/// error for an unknown command, a wrong number of arguments, a command
/// without keys, or arguments it cannot find keys in.
pub(super) fn getkeys(args: &[Vec<u8>]) -> Reply {
    let Ok(spec) = find(args) else {
        return Reply::err("ERR Invalid command specified");
    };
    if !spec.arity_ok(args.len()) {
        return Reply::err("ERR Invalid number of arguments specified for command");
    }
    let keys = match movable(spec.name, args) {
        Some(keys) => keys,
        None if spec.keys.0 == 0 => return Reply::err("ERR The command has no key arguments"),
        None => by_table(spec, args),
    };
    if keys.is_empty() {
        return Reply::err("ERR Invalid arguments specified for command");
    }
    Reply::Array(keys.into_iter().map(|k| Reply::Bulk(k.clone())).collect())
}

/// The keys (first, last, step) of the table name.
fn by_table<'a>(spec: &Spec, args: &'a [Vec<u8>]) -> Vec<&'a Vec<u8>> {
    let (first, last, step) = spec.keys;
    let argc = args.len() as i64;
    let last = if last < 0 {
        argc + i64::from(last)
    } else {
        i64::from(last)
    };
    let step = usize::try_from(step.max(1)).unwrap_or(1);
    let (first, last) = (first as usize, usize::try_from(last).unwrap_or(0));
    (first..=last.min(args.len().saturating_sub(1)))
        .step_by(step)
        .map(|i| &args[i])
        .collect()
}

/// The keys of a command whose key positions depend on its arguments;
/// `None` for the others. A bad `numkeys` gives no key (the caller's
/// error).
fn movable<'a>(name: &str, args: &'a [Vec<u8>]) -> Option<Vec<&'a Vec<u8>>> {
    let counted = |at: usize, before: &[usize]| -> Vec<&'a Vec<u8>> {
        let n = args.get(at).and_then(|b| parse_i64(b)).unwrap_or(0);
        let n = usize::try_from(n).unwrap_or(0);
        match args.get(at + 1..at + 1 + n) {
            Some(ks) if n > 0 => before.iter().map(|&i| &args[i]).chain(ks).collect(),
            _ => Vec::new(),
        }
    };
    Some(match name {
        "sort" | "sort_ro" => {
            let mut keys = vec![&args[1]];
            let mut store = None;
            let mut i = 2;
            while i < args.len() {
                let a = &args[i];
                let is = |w: &str| a.eq_ignore_ascii_case(w.as_bytes());
                if is("limit") {
                    i += 2;
                } else if is("get") || is("by") {
                    i += 1;
                } else if is("store") && name == "sort" {
                    store = args.get(i + 1);
                    i += 1;
                }
                i += 1;
            }
            keys.extend(store);
            keys
        }
        "lmpop" | "zmpop" | "sintercard" | "zintercard" | "zunion" | "zinter" | "zdiff" => {
            counted(1, &[])
        }
        "blmpop" | "bzmpop" => counted(2, &[]),
        // `EVAL script numkeys key...`, `FCALL function numkeys key...`.
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => counted(2, &[]),
        "zunionstore" | "zinterstore" | "zdiffstore" => counted(2, &[1]),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(line: &[&str]) -> Reply {
        let args: Vec<Vec<u8>> = line.iter().map(|a| a.as_bytes().to_vec()).collect();
        getkeys(&args)
    }

    fn bulks(ks: &[&str]) -> Reply {
        Reply::Array(
            ks.iter()
                .map(|k| Reply::Bulk(k.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn keys_come_from_the_table_or_from_numkeys() {
        assert_eq!(keys(&["mset", "a", "1", "b", "2"]), bulks(&["a", "b"]));
        assert_eq!(
            keys(&["eval", "return 1", "2", "k1", "k2", "arg"]),
            bulks(&["k1", "k2"])
        );
        assert_eq!(keys(&["fcall", "f", "1", "k", "a"]), bulks(&["k"]));
        assert_eq!(
            keys(&["zunionstore", "d", "2", "a", "b"]),
            bulks(&["d", "a", "b"])
        );
        assert!(matches!(keys(&["eval", "return 1", "0"]), Reply::Error(_)));
        assert!(matches!(keys(&["ping"]), Reply::Error(_)));
    }
}
