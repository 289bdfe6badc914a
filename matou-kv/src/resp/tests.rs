//! The decoder against Redis's wording and limits, the inline splitter,
//! `string2ll`, and the reply encoder.

use super::*;

fn lim() -> Limits {
    Limits::default()
}

fn args(v: &[&str]) -> Args {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn one(input: &[u8]) -> Decoded {
    parse_request(input, &lim())
}

fn err(input: &[u8]) -> String {
    one(input).unwrap_err().0
}

#[test]
fn multibulk_complete_and_consumed_length() {
    let input = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nextra";
    assert_eq!(one(input), Ok(Some((args(&["GET", "k"]), 20))));
}

#[test]
fn multibulk_binary_safe_arguments() {
    let input = b"*2\r\n$3\r\nSET\r\n$4\r\na\r\n\0\r\n";
    let (a, used) = one(input).unwrap().unwrap();
    assert_eq!(a[1], b"a\r\n\0");
    assert_eq!(used, input.len());
}

#[test]
fn every_strict_prefix_of_a_request_needs_more() {
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
    for n in 0..input.len() {
        assert_eq!(one(&input[..n]), Ok(None), "prefix of {n} bytes");
    }
    assert!(one(input).unwrap().is_some());
}

#[test]
fn resumable_decoder_agrees_with_stateless_byte_by_byte() {
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
    let mut d = Decoder::new(lim());
    for n in 0..input.len() {
        assert_eq!(d.decode(&input[..n]), Ok(None));
    }
    assert!(d.in_progress());
    assert_eq!(
        d.decode(input),
        Ok(Some((args(&["SET", "k", "hello"]), input.len())))
    );
    assert!(!d.in_progress());
}

#[test]
fn pipelined_requests_decode_one_after_the_other() {
    let input = b"*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
    let mut d = Decoder::new(lim());
    let mut at = 0;
    let mut seen = Vec::new();
    while let Some((a, used)) = d.decode(&input[at..]).unwrap() {
        seen.push(a);
        at += used;
    }
    assert_eq!(at, input.len());
    assert_eq!(seen, vec![args(&["PING"]); 3]);
}

#[test]
fn zero_and_negative_multibulk_counts_are_empty_requests() {
    assert_eq!(one(b"*0\r\n"), Ok(Some((vec![], 4))));
    assert_eq!(one(b"*-1\r\n"), Ok(Some((vec![], 5))));
}

#[test]
fn protocol_errors_use_redis_wording() {
    assert_eq!(
        err(b"*x\r\n"),
        "ERR Protocol error: invalid multibulk length"
    );
    assert_eq!(
        err(b"*01\r\n"),
        "ERR Protocol error: invalid multibulk length"
    );
    assert_eq!(
        err(b"*3000000000\r\n"),
        "ERR Protocol error: invalid multibulk length"
    );
    assert_eq!(
        err(b"*1\r\n$x\r\n"),
        "ERR Protocol error: invalid bulk length"
    );
    assert_eq!(
        err(b"*1\r\n$-1\r\n"),
        "ERR Protocol error: invalid bulk length"
    );
    assert_eq!(
        err(b"*1\r\nfoo\r\n"),
        "ERR Protocol error: expected '$', got 'f'"
    );
    assert_eq!(
        err(b"set \"a b\"c\r\n"),
        "ERR Protocol error: unbalanced quotes in request"
    );
    assert_eq!(
        err(b"*1\r\n$1\r\nab\r\n"),
        "ERR Protocol error: expected CRLF after bulk data"
    );
    assert_eq!(
        err(b"*1\rx"),
        "ERR Protocol error: invalid multibulk length"
    );
}

#[test]
fn header_lines_without_crlf_are_bounded() {
    let long = [b'1'; MAX_HEADER_LINE];
    let mut input = b"*".to_vec();
    input.extend_from_slice(&long);
    assert_eq!(
        err(&input),
        "ERR Protocol error: too big mbulk count string"
    );
    let mut input = b"*1\r\n$".to_vec();
    input.extend_from_slice(&long);
    assert_eq!(err(&input), "ERR Protocol error: too big bulk count string");
}

#[test]
fn limits_are_checked_on_the_announced_length_before_waiting() {
    let l = Limits {
        max_bulk: 10,
        max_args: 2,
        max_inline: 8,
    };
    // Only the header arrived: the error comes without the body.
    assert_eq!(
        parse_request(b"*1\r\n$11\r\n", &l).unwrap_err().0,
        "ERR Protocol error: invalid bulk length (more than 10 bytes)"
    );
    assert_eq!(parse_request(b"*1\r\n$10\r\n", &l), Ok(None));
    assert_eq!(
        parse_request(b"*3\r\n", &l).unwrap_err().0,
        "ERR Protocol error: invalid multibulk length (more than 2 arguments)"
    );
    assert_eq!(
        parse_request(b"a b c\r\n", &l).unwrap_err().0,
        "ERR Protocol error: invalid multibulk length (more than 2 arguments)"
    );
    assert_eq!(parse_request(b"12345678\r\n", &l).unwrap().unwrap().1, 10);
    assert_eq!(
        parse_request(b"123456789\r\n", &l).unwrap_err().0,
        "ERR Protocol error: too big inline request"
    );
    assert_eq!(parse_request(b"12345678", &l), Ok(None));
    assert_eq!(
        parse_request(b"123456789", &l).unwrap_err().0,
        "ERR Protocol error: too big inline request"
    );
}

#[test]
fn unauthenticated_connections_get_redis_7_caps() {
    let mut d = Decoder::new(lim());
    d.set_authenticated(false);
    assert_eq!(
        d.decode(b"*11\r\n").unwrap_err().0,
        "ERR Protocol error: unauthenticated multibulk length"
    );
    assert_eq!(
        d.decode(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n").unwrap_err().0,
        "ERR Protocol error: unauthenticated bulk length"
    );
    let auth = b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n";
    assert_eq!(
        d.decode(auth),
        Ok(Some((args(&["AUTH", "pw"]), auth.len())))
    );
    d.set_authenticated(true);
    assert_eq!(d.decode(b"*11\r\n"), Ok(None));
}

#[test]
fn huge_announced_count_preallocates_little() {
    let (a, _) = parse_request(b"*1000000\r\n", &lim())
        .map(|r| (r, ()))
        .unwrap();
    assert_eq!(a, None);
    let mut d = Decoder::new(lim());
    assert_eq!(d.decode(b"*1000000\r\n$1\r\na\r\n"), Ok(None));
    let p = d.partial.as_ref().unwrap();
    assert_eq!(p.remaining, 999_999);
}

#[test]
fn an_incomplete_multibulk_holds_offsets_then_yields_every_argument() {
    // What a partial request keeps is its offsets: no copy of the
    // arguments received so far (the buffer has them).
    let mut d = Decoder::new(lim());
    let mut buf = b"*3000\r\n".to_vec();
    for i in 0..1500 {
        buf.extend_from_slice(format!("${}\r\n{i}\r\n", i.to_string().len()).as_bytes());
    }
    assert_eq!(d.decode(&buf), Ok(None));
    let p = d.partial.as_ref().unwrap();
    assert_eq!((p.count, p.remaining, p.next), (3000, 1500, buf.len()));
    for i in 1500..3000 {
        buf.extend_from_slice(format!("${}\r\n{i}\r\n", i.to_string().len()).as_bytes());
        if i == 2000 {
            assert_eq!(d.decode(&buf), Ok(None));
        }
    }
    let (got, used) = d.decode(&buf).unwrap().unwrap();
    assert_eq!(used, buf.len());
    assert_eq!(got.len(), 3000);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, a)| a == i.to_string().as_bytes()));
    assert!(!d.in_progress());
    const { assert!(MAX_PREALLOC_ARGS < 3000) };
}

#[test]
fn inline_commands_split_like_redis_cli() {
    let ok = |s: &[u8]| one(s).unwrap().unwrap().0;
    assert_eq!(ok(b"SET k v\r\n"), args(&["SET", "k", "v"]));
    assert_eq!(ok(b"  PING  \n"), args(&["PING"]));
    assert_eq!(ok(b"set \"a b\" 'c d'\r\n"), args(&["set", "a b", "c d"]));
    assert_eq!(
        ok(b"echo \"\\x41\\n\\t\\q\"\n"),
        vec![b"echo".to_vec(), b"A\n\tq".to_vec()]
    );
    assert_eq!(ok(b"echo 'it\\'s' \"\"\n"), args(&["echo", "it's", ""]));
    assert_eq!(ok(b"echo a\"b c\" d\n"), args(&["echo", "ab c", "d"]));
    assert!(
        one(b"echo a\"b c\"d\n").is_err(),
        "a closing quote must end the argument"
    );
    assert_eq!(ok(b"\r\n"), Args::new());
    assert_eq!(ok(b"a\0b c\n"), args(&["a"]));
    assert_eq!(one(b"PING"), Ok(None));
}

#[test]
fn split_inline_quote_rules() {
    assert_eq!(split_inline(b"a\"b c\" d"), Some(args(&["ab c", "d"])));
    assert_eq!(
        split_inline(b"\"a\"b"),
        None,
        "closing quote must end the arg"
    );
    assert_eq!(split_inline(b"'a"), None);
    assert_eq!(split_inline(b"\"a\\"), None);
    assert_eq!(split_inline(b"\"\\x4"), None);
    assert_eq!(split_inline(b"\"\\x4g\""), Some(args(&["x4g"])));
    assert_eq!(split_inline(b"'a\\nb'"), Some(args(&["a\\nb"])));
}

#[test]
fn parse_i64_is_redis_string2ll() {
    assert_eq!(parse_i64(b"0"), Some(0));
    assert_eq!(parse_i64(b"-5"), Some(-5));
    assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"-",
        b"-0",
        b"01",
        b"+1",
        b" 1",
        b"1 ",
        b"1a",
        b"9223372036854775808",
        b"-9223372036854775809",
    ] {
        assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn reply_encoding() {
    let r = Reply::Array(vec![
        Reply::ok(),
        Reply::err("ERR bad\r\nthing"),
        Reply::Integer(-42),
        Reply::bulk("hi"),
        Reply::Nil,
        Reply::NilArray,
        Reply::Array(vec![]),
        Reply::Integer(i64::MIN),
    ]);
    assert_eq!(
        r.to_bytes(),
        b"*8\r\n+OK\r\n-ERR bad  thing\r\n:-42\r\n$2\r\nhi\r\n$-1\r\n*-1\r\n*0\r\n\
          :-9223372036854775808\r\n"
            .to_vec()
    );
}

#[test]
fn resp3_types_and_their_resp2_forms() {
    let both = |r: Reply| {
        let mut three = Vec::new();
        r.encode_resp3(&mut three);
        (
            String::from_utf8(r.to_bytes()).unwrap(),
            String::from_utf8(three).unwrap(),
        )
    };
    let b = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
    let cases = [
        (Reply::Nil, "$-1\r\n", "_\r\n"),
        (Reply::NilArray, "*-1\r\n", "_\r\n"),
        (
            Reply::Map(vec![(b("a"), Reply::Integer(1))]),
            "*2\r\n$1\r\na\r\n:1\r\n",
            "%1\r\n$1\r\na\r\n:1\r\n",
        ),
        (
            Reply::Set(vec![b("x")]),
            "*1\r\n$1\r\nx\r\n",
            "~1\r\n$1\r\nx\r\n",
        ),
        (
            Reply::Push(vec![b("x")]),
            "*1\r\n$1\r\nx\r\n",
            ">1\r\n$1\r\nx\r\n",
        ),
        (Reply::Double("1.5".into()), "$3\r\n1.5\r\n", ",1.5\r\n"),
        (Reply::Bool(true), ":1\r\n", "#t\r\n"),
        (Reply::Bool(false), ":0\r\n", "#f\r\n"),
        (
            Reply::Verbatim("txt", b"hi".to_vec()),
            "$2\r\nhi\r\n",
            "=6\r\ntxt:hi\r\n",
        ),
        (
            Reply::BigNumber("123456789012345678901234567890".into()),
            "$30\r\n123456789012345678901234567890\r\n",
            "(123456789012345678901234567890\r\n",
        ),
        // Nested: the inner replies follow the protocol too.
        (
            Reply::Array(vec![Reply::Nil, Reply::Map(vec![])]),
            "*2\r\n$-1\r\n*0\r\n",
            "*2\r\n_\r\n%0\r\n",
        ),
    ];
    for (r, two, three) in cases {
        assert_eq!(
            both(r.clone()),
            (two.to_string(), three.to_string()),
            "{r:?}"
        );
    }
}

#[test]
fn attributes_precede_their_reply_in_resp3_and_vanish_in_resp2() {
    let r = Reply::Attributed(
        vec![(Reply::bulk("k"), Reply::Integer(1))],
        Box::new(Reply::bulk("v")),
    );
    let mut three = Vec::new();
    r.encode_resp3(&mut three);
    assert_eq!(three, b"|1\r\n$1\r\nk\r\n:1\r\n$1\r\nv\r\n");
    assert_eq!(r.to_bytes(), b"$1\r\nv\r\n");
    assert!(r.encoded_len_bound() >= three.len());
}
