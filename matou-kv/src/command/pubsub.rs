//! The pub/sub commands (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, their
//! UNSUBSCRIBEs, PUBLISH, SPUBLISH, PUBSUB ...): their parse, their run on
//! a connection's [`Subscriber`] and the server's [`Registry`], and the
//! frames they and the delivered messages are sent as, byte for byte as
//! Redis 7.0 sends them.
//!
//! What it owns and the invariants it keeps:
//! - Every frame a subscription command or a delivered message produces is
//!   a [`Reply::Push`]: `>` in RESP3, `*` in RESP2, which is exactly what
//!   Redis sends in each protocol. One SUBSCRIBE naming n channels answers
//!   with n frames ([`run`] returns them in order).
//! - RESP2's subscribed mode ([`subscribed_refusal`]): while a RESP2
//!   connection holds a subscription, only (P|S)SUBSCRIBE,
//!   (P|S)UNSUBSCRIBE, PING, QUIT and RESET run; anything else gets
//!   Redis's error and changes nothing. RESP3 has no such mode.
//! - These commands never reach the storage task: PUBLISH hands the
//!   message to the registry from the publisher's own worker.

use super::{Command, Conn};
use crate::resp::{push_int, Reply};
use crate::server::pubsub::{Message, Registry, Space, Subscriber};

/// A parsed pub/sub command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PubSub {
    /// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE name...
    Subscribe(Space, Vec<Vec<u8>>),
    /// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE [name...] (none: all).
    Unsubscribe(Space, Vec<Vec<u8>>),
    /// PUBLISH / SPUBLISH channel message.
    Publish(Space, Vec<u8>, Vec<u8>),
    /// PUBSUB CHANNELS / SHARDCHANNELS [pattern].
    Channels(Space, Option<Vec<u8>>),
    /// PUBSUB NUMSUB / SHARDNUMSUB [channel...].
    NumSub(Space, Vec<Vec<u8>>),
    /// PUBSUB NUMPAT.
    NumPat,
}

impl PubSub {
    /// Whether it is a PUBLISH or SPUBLISH.
    pub fn is_publish(&self) -> bool {
        matches!(self, PubSub::Publish(..))
    }

    /// Whether its answers are push frames (the (un)subscribe
    /// confirmations), which CLIENT REPLY OFF does not mute.
    pub fn answers_with_pushes(&self) -> bool {
        matches!(self, PubSub::Subscribe(..) | PubSub::Unsubscribe(..))
    }
}

/// Whether `name` (a command table name) is one of this module's commands.
pub fn owns(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "psubscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "punsubscribe"
            | "sunsubscribe"
            | "publish"
            | "spublish"
            | "pubsub|channels"
            | "pubsub|shardchannels"
            | "pubsub|numsub"
            | "pubsub|shardnumsub"
            | "pubsub|numpat"
    )
}

/// Parses one of the commands [`owns`] names (arity already checked).
///
/// # Errors
/// PUBSUB CHANNELS with more than one pattern: Redis's subcommand error.
pub fn parse(name: &str, args: &[Vec<u8>]) -> Result<Command, Reply> {
    let rest = || args[1..].to_vec();
    let cmd = match name {
        "subscribe" => PubSub::Subscribe(Space::Channel, rest()),
        "psubscribe" => PubSub::Subscribe(Space::Pattern, rest()),
        "ssubscribe" => PubSub::Subscribe(Space::Shard, rest()),
        "unsubscribe" => PubSub::Unsubscribe(Space::Channel, rest()),
        "punsubscribe" => PubSub::Unsubscribe(Space::Pattern, rest()),
        "sunsubscribe" => PubSub::Unsubscribe(Space::Shard, rest()),
        "publish" => PubSub::Publish(Space::Channel, args[1].clone(), args[2].clone()),
        "spublish" => PubSub::Publish(Space::Shard, args[1].clone(), args[2].clone()),
        "pubsub|channels" | "pubsub|shardchannels" => {
            if args.len() > 3 {
                return Err(Reply::err(format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB \
                     HELP.",
                    String::from_utf8_lossy(&args[1])
                )));
            }
            let space = match name {
                "pubsub|channels" => Space::Channel,
                _ => Space::Shard,
            };
            PubSub::Channels(space, args.get(2).cloned())
        }
        "pubsub|numsub" => PubSub::NumSub(Space::Channel, args[2..].to_vec()),
        "pubsub|shardnumsub" => PubSub::NumSub(Space::Shard, args[2..].to_vec()),
        _ => PubSub::NumPat,
    };
    Ok(Command::Conn(Conn::PubSub(cmd)))
}

/// The command names a RESP2 connection in subscribed mode may still run.
const SUBSCRIBED_MODE: &[&str] = &[
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "ping",
    "quit",
    "reset",
];

/// The transaction commands, which [`super::multi`] answers (not in the
/// command table).
const TRANSACTION: &[&str] = &["multi", "exec", "discard", "watch", "unwatch"];

/// RESP2's subscribed mode: Redis 7's refusal for the request `args`
/// while the connection is subscribed, or `None` if it may run (an unknown
/// command or a wrong arity gets its own error, as in Redis).
pub fn subscribed_refusal(args: &[Vec<u8>]) -> Option<Reply> {
    let name = match super::lookup(args) {
        Ok(spec) => spec.name.to_string(),
        Err(_) => {
            let given = String::from_utf8_lossy(args.first()?).to_ascii_lowercase();
            TRANSACTION.iter().find(|t| **t == given)?.to_string()
        }
    };
    let top = name.split('|').next().unwrap_or(&name);
    if SUBSCRIBED_MODE.contains(&top) {
        return None;
    }
    Some(Reply::err(format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
         RESET are allowed in this context"
    )))
}

/// PING's reply in RESP2's subscribed mode: `["pong", message or ""]`.
pub fn subscribed_pong(message: Option<Vec<u8>>) -> Reply {
    Reply::Array(vec![
        Reply::bulk(&b"pong"[..]),
        Reply::Bulk(message.unwrap_or_default()),
    ])
}

fn verb(space: Space, subscribe: bool) -> &'static [u8] {
    match (space, subscribe) {
        (Space::Channel, true) => b"subscribe",
        (Space::Pattern, true) => b"psubscribe",
        (Space::Shard, true) => b"ssubscribe",
        (Space::Channel, false) => b"unsubscribe",
        (Space::Pattern, false) => b"punsubscribe",
        (Space::Shard, false) => b"sunsubscribe",
    }
}

fn count(n: usize) -> Reply {
    Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The frame of a delivered message as a reply: what
/// [`encode_message`] writes, for where it must go among a batch's
/// replies (a connection that publishes to itself gets the message before
/// PUBLISH's count, as from Redis).
pub fn message_reply(m: &Message) -> Reply {
    let mut items = Vec::with_capacity(4);
    match (m.space, &m.pattern) {
        (Space::Pattern, Some(p)) => {
            items.push(Reply::bulk(&b"pmessage"[..]));
            items.push(Reply::bulk(&p[..]));
        }
        (Space::Shard, _) => items.push(Reply::bulk(&b"smessage"[..])),
        _ => items.push(Reply::bulk(&b"message"[..])),
    }
    items.push(Reply::bulk(&m.channel[..]));
    items.push(Reply::bulk(&m.payload[..]));
    Reply::Push(items)
}

/// Appends the frame a delivered message is sent as, in protocol `proto`:
/// `message`, `pmessage` (with its pattern) or `smessage`, as a RESP3 push
/// or a RESP2 array. Encoded straight from the shared bytes: the hot path
/// of a fan-out copies each payload once per receiver, into its wire.
pub fn encode_message(m: &Message, proto: u8, out: &mut Vec<u8>) {
    let bulk = |out: &mut Vec<u8>, b: &[u8]| {
        out.push(b'$');
        push_int(out, b.len() as i64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    };
    let pattern = match (m.space, &m.pattern) {
        (Space::Pattern, Some(p)) => Some(p),
        _ => None,
    };
    out.extend_from_slice(match (proto >= 3, pattern.is_some()) {
        (true, true) => b">4\r\n",
        (true, false) => b">3\r\n",
        (false, true) => b"*4\r\n",
        (false, false) => b"*3\r\n",
    });
    match pattern {
        Some(p) => {
            bulk(out, b"pmessage");
            bulk(out, p);
        }
        None if m.space == Space::Shard => bulk(out, b"smessage"),
        None => bulk(out, b"message"),
    }
    bulk(out, &m.channel);
    bulk(out, &m.payload);
}

/// Runs `cmd` for a connection whose subscriptions are `subscriber`
/// (created with `new_subscriber` on its first subscription): the frames
/// to send, in order.
pub fn run(
    cmd: PubSub,
    subscriber: &mut Option<Subscriber>,
    registry: &Registry,
    new_subscriber: impl FnOnce() -> Subscriber,
) -> Vec<Reply> {
    match cmd {
        PubSub::Subscribe(space, names) => {
            let sub = subscriber.get_or_insert_with(new_subscriber);
            names
                .into_iter()
                .map(|name| {
                    let n = sub.subscribe(space, &name);
                    Reply::Push(vec![
                        Reply::bulk(verb(space, true)),
                        Reply::Bulk(name),
                        count(n),
                    ])
                })
                .collect()
        }
        PubSub::Unsubscribe(space, names) => {
            let names = match (&names[..], subscriber.as_ref()) {
                ([], Some(sub)) => sub.names(space),
                _ => names,
            };
            if names.is_empty() {
                // Nothing to leave: Redis still answers, with a null name.
                let n = subscriber.as_ref().map_or(0, |s| s.count(space));
                return vec![Reply::Push(vec![
                    Reply::bulk(verb(space, false)),
                    Reply::Nil,
                    count(n),
                ])];
            }
            names
                .into_iter()
                .map(|name| {
                    let n = match subscriber.as_mut() {
                        Some(sub) => sub.unsubscribe(space, &name).1,
                        None => 0,
                    };
                    Reply::Push(vec![
                        Reply::bulk(verb(space, false)),
                        Reply::Bulk(name),
                        count(n),
                    ])
                })
                .collect()
        }
        PubSub::Publish(space, channel, payload) => {
            vec![count(registry.publish(space, &channel, &payload))]
        }
        PubSub::Channels(space, pattern) => vec![Reply::Array(
            registry
                .channels(space, pattern.as_deref())
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        )],
        PubSub::NumSub(space, channels) => {
            let counts = registry.numsub(space, &channels);
            vec![Reply::Array(
                channels
                    .into_iter()
                    .zip(counts)
                    .flat_map(|(c, n)| [Reply::Bulk(c), count(n)])
                    .collect(),
            )]
        }
        PubSub::NumPat => vec![count(registry.numpat())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::lookup;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn wire(replies: &[Reply], proto: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for r in replies {
            r.encode_proto(proto, &mut out);
        }
        out
    }

    fn parsed(words: &[&str]) -> PubSub {
        let a = args(words);
        let spec = lookup(&a).expect("in the table");
        match parse(spec.name, &a) {
            Ok(Command::Conn(Conn::PubSub(p))) => p,
            other => panic!("{words:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn subscribe_frames_are_redis_bytes_in_both_protocols() {
        let reg = Registry::new();
        let mut sub = None;
        let frames = run(parsed(&["SUBSCRIBE", "a", "b"]), &mut sub, &reg, || {
            reg.subscriber(0)
        });
        assert_eq!(
            wire(&frames, 2),
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
        );
        let frames = run(
            parsed(&["psubscribe", "p*"]),
            &mut sub,
            &reg,
            || unreachable!(),
        );
        assert_eq!(
            wire(&frames, 3),
            b">3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n"
        );
        // UNSUBSCRIBE alone leaves every channel, patterns stay counted.
        let frames = run(parsed(&["unsubscribe"]), &mut sub, &reg, || unreachable!());
        assert_eq!(frames.len(), 2);
        assert_eq!(
            wire(&frames[1..], 2),
            b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n"
        );
        // Nothing left to leave: a null channel.
        let frames = run(parsed(&["unsubscribe"]), &mut sub, &reg, || unreachable!());
        assert_eq!(
            wire(&frames, 2),
            b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:1\r\n"
        );
        assert_eq!(wire(&frames, 3), b">3\r\n$11\r\nunsubscribe\r\n_\r\n:1\r\n");
    }

    #[test]
    fn publish_and_pubsub_introspection_answer_as_redis() {
        let reg = Registry::new();
        let mut sub = None;
        run(parsed(&["subscribe", "news", "x"]), &mut sub, &reg, || {
            reg.subscriber(0)
        });
        run(
            parsed(&["ssubscribe", "s"]),
            &mut sub,
            &reg,
            || unreachable!(),
        );
        let mut none = None;
        let mut pubs = |w: &[&str]| run(parsed(w), &mut none, &reg, || unreachable!());
        assert_eq!(pubs(&["publish", "news", "hi"]), vec![Reply::Integer(1)]);
        assert_eq!(pubs(&["spublish", "news", "hi"]), vec![Reply::Integer(0)]);
        assert_eq!(
            wire(&pubs(&["pubsub", "numsub", "news", "zz"]), 2),
            b"*4\r\n$4\r\nnews\r\n:1\r\n$2\r\nzz\r\n:0\r\n"
        );
        assert_eq!(
            wire(&pubs(&["pubsub", "channels", "n*"]), 2),
            b"*1\r\n$4\r\nnews\r\n"
        );
        assert_eq!(
            wire(&pubs(&["pubsub", "shardchannels"]), 2),
            b"*1\r\n$1\r\ns\r\n"
        );
        assert_eq!(pubs(&["pubsub", "numpat"]), vec![Reply::Integer(0)]);
        let Some(s) = &sub else { panic!() };
        let crate::server::pubsub::Delivery::Message(m) = s.try_recv() else {
            panic!("no message")
        };
        let frame = |m: &Message, proto| {
            let mut out = Vec::new();
            encode_message(m, proto, &mut out);
            // The reply form is the same bytes.
            assert_eq!(wire(&[message_reply(m)], proto), out);
            out
        };
        assert_eq!(
            frame(&m, 2),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            frame(&m, 3),
            b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        let pm = Message {
            space: Space::Pattern,
            pattern: Some(b"n*"[..].into()),
            ..m.clone()
        };
        assert_eq!(
            frame(&pm, 2),
            b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        let sm = Message {
            space: Space::Shard,
            ..m
        };
        assert_eq!(
            frame(&sm, 3),
            b">3\r\n$8\r\nsmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        let a = args(&["pubsub", "channels", "a", "b"]);
        assert_eq!(
            parse("pubsub|channels", &a),
            Err(Reply::err(
                "ERR unknown subcommand or wrong number of arguments for 'channels'. Try \
                 PUBSUB HELP."
            ))
        );
    }

    #[test]
    fn subscribed_mode_allows_only_the_subscription_commands() {
        let spec = |w: &[&str]| args(w);
        assert_eq!(
            subscribed_refusal(&spec(&["get", "k"])),
            Some(Reply::err(
                "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT \
                 / RESET are allowed in this context"
            ))
        );
        assert!(subscribed_refusal(&spec(&["pubsub", "numpat"])).is_some());
        assert!(subscribed_refusal(&spec(&["publish", "a", "b"])).is_some());
        assert!(subscribed_refusal(&spec(&["MULTI"])).is_some());
        for w in [
            &["ping"][..],
            &["quit"],
            &["psubscribe", "x"],
            &["sunsubscribe"],
            &["nosuch"],
            &["get"],
        ] {
            assert_eq!(subscribed_refusal(&spec(w)), None, "{w:?}");
        }
        assert_eq!(
            subscribed_pong(None).to_bytes(),
            b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        );
    }
}
