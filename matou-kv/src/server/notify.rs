//! Keyspace notifications: Redis's `notify-keyspace-events` classes, and
//! the hook [`Notifier::notify`] that commands call after a change, which
//! publishes `__keyspace@<db>__:<key>` (payload: the event) and
//! `__keyevent@<db>__:<event>` (payload: the key) on the pub/sub
//! [`Registry`].
//!
//! Invariant: the flags are one atomic word, so [`Notifier::set`] (CONFIG
//! SET, from any worker) and [`Notifier::notify`] (the storage task) never
//! lock each other; with the flags off (the default) a notify costs one
//! atomic load.

use super::pubsub::{Registry, Space};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// An event class: one bit per letter of `notify-keyspace-events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class(u32);

impl Class {
    /// Its bit among the flags ([`parse_flags`]).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// `K`: publish on `__keyspace@<db>__:<key>`.
    pub const KEYSPACE: Class = Class(1 << 0);
    /// `E`: publish on `__keyevent@<db>__:<event>`.
    pub const KEYEVENT: Class = Class(1 << 1);
    /// `g`: generic commands (DEL, EXPIRE, RENAME...).
    pub const GENERIC: Class = Class(1 << 2);
    /// `$`: string commands.
    pub const STRING: Class = Class(1 << 3);
    /// `l`: list commands.
    pub const LIST: Class = Class(1 << 4);
    /// `s`: set commands.
    pub const SET: Class = Class(1 << 5);
    /// `h`: hash commands.
    pub const HASH: Class = Class(1 << 6);
    /// `z`: sorted set commands.
    pub const ZSET: Class = Class(1 << 7);
    /// `x`: expired events.
    pub const EXPIRED: Class = Class(1 << 8);
    /// `e`: evicted events.
    pub const EVICTED: Class = Class(1 << 9);
    /// `t`: stream commands.
    pub const STREAM: Class = Class(1 << 10);
    /// `m`: key-miss events (not part of `A`).
    pub const KEY_MISS: Class = Class(1 << 11);
    /// `d`: module key type events.
    pub const MODULE: Class = Class(1 << 12);
    /// `n`: new key events (not part of `A`).
    pub const NEW: Class = Class(1 << 13);
    /// `A`: alias for `g$lshzxetd`.
    const ALL: u32 = Self::GENERIC.0
        | Self::STRING.0
        | Self::LIST.0
        | Self::SET.0
        | Self::HASH.0
        | Self::ZSET.0
        | Self::EXPIRED.0
        | Self::EVICTED.0
        | Self::STREAM.0
        | Self::MODULE.0;
}

/// The letters, in the order Redis prints them back.
const LETTERS: &[(u8, Class)] = &[
    (b'g', Class::GENERIC),
    (b'$', Class::STRING),
    (b'l', Class::LIST),
    (b's', Class::SET),
    (b'h', Class::HASH),
    (b'z', Class::ZSET),
    (b'x', Class::EXPIRED),
    (b'e', Class::EVICTED),
    (b't', Class::STREAM),
    (b'm', Class::KEY_MISS),
    (b'd', Class::MODULE),
    (b'n', Class::NEW),
];

/// Parses a `notify-keyspace-events` value (Redis's
/// `keyspaceEventsStringToFlags`).
///
/// # Errors
/// An unknown letter: the value is refused whole and nothing changes.
pub fn parse_flags(s: &str) -> Result<u32, String> {
    let mut flags = 0;
    for c in s.bytes() {
        flags |= match c {
            b'A' => Class::ALL,
            b'K' => Class::KEYSPACE.0,
            b'E' => Class::KEYEVENT.0,
            _ => match LETTERS.iter().find(|(l, _)| *l == c) {
                Some((_, class)) => class.0,
                // Redis's text; CONFIG SET wraps it in its own error.
                None => return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
            },
        };
    }
    Ok(flags)
}

/// The canonical text of `flags` (what CONFIG GET answers): `A` when every
/// class of it is on, then the other letters, then `K` and `E`.
pub fn flags_text(flags: u32) -> String {
    let mut out = String::new();
    let all = flags & Class::ALL == Class::ALL;
    if all {
        out.push('A');
    }
    for (letter, class) in LETTERS {
        if flags & class.0 != 0 && !(all && Class::ALL & class.0 != 0) {
            out.push(*letter as char);
        }
    }
    if flags & Class::KEYSPACE.0 != 0 {
        out.push('K');
    }
    if flags & Class::KEYEVENT.0 != 0 {
        out.push('E');
    }
    out
}

/// The server's notification switch and hook.
pub struct Notifier {
    flags: AtomicU32,
    registry: Arc<Registry>,
}

impl Notifier {
    /// Notifications off (Redis's default `""`), publishing on `registry`.
    pub fn new(registry: Arc<Registry>) -> Notifier {
        Notifier {
            flags: AtomicU32::new(0),
            registry,
        }
    }

    /// Sets `notify-keyspace-events` (config file, CONFIG SET).
    ///
    /// # Errors
    /// As [`parse_flags`]; the flags are unchanged then.
    pub fn set(&self, value: &str) -> Result<(), String> {
        self.flags.store(parse_flags(value)?, Ordering::Relaxed);
        Ok(())
    }

    /// The classes the stores are to record ([`crate::store::Store::notify`]):
    /// none unless `K` or `E` names a channel to publish them on.
    pub fn store_mask(&self) -> u32 {
        let flags = self.flags.load(Ordering::Relaxed);
        match flags & (Class::KEYSPACE.0 | Class::KEYEVENT.0) {
            0 => 0,
            _ => flags,
        }
    }

    /// The current value, as CONFIG GET prints it.
    pub fn get(&self) -> String {
        flags_text(self.flags.load(Ordering::Relaxed))
    }

    /// Event `event` of class `class` happened to `key` in `db`: publishes
    /// it on the channels the flags ask for. Returns how many subscribers
    /// received it.
    pub fn notify(&self, db: usize, class: Class, event: &str, key: &[u8]) -> usize {
        let flags = self.flags.load(Ordering::Relaxed);
        if flags & class.0 == 0 {
            return 0;
        }
        let mut n = 0;
        if flags & Class::KEYSPACE.0 != 0 {
            let mut ch = format!("__keyspace@{db}__:").into_bytes();
            ch.extend_from_slice(key);
            n += self.registry.publish(Space::Channel, &ch, event.as_bytes());
        }
        if flags & Class::KEYEVENT.0 != 0 {
            let ch = format!("__keyevent@{db}__:{event}");
            n += self.registry.publish(Space::Channel, ch.as_bytes(), key);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::pubsub::Delivery;

    #[test]
    fn flags_parse_and_print_as_redis_does() {
        assert_eq!(flags_text(parse_flags("").unwrap()), "");
        assert_eq!(flags_text(parse_flags("KEA").unwrap()), "AKE");
        assert_eq!(flags_text(parse_flags("Ex$g").unwrap()), "g$xE");
        assert_eq!(flags_text(parse_flags("AKEm").unwrap()), "AmKE");
        assert!(parse_flags("KEq").is_err());
    }

    #[test]
    fn notify_publishes_on_the_channels_the_flags_name() {
        let reg = Registry::new();
        let note = Notifier::new(reg.clone());
        let mut sub = reg.subscriber(0);
        sub.subscribe(Space::Pattern, b"__key*__:*");
        // Off by default.
        assert_eq!(note.notify(0, Class::STRING, "set", b"k"), 0);
        note.set("K$").unwrap();
        assert_eq!(note.notify(3, Class::STRING, "set", b"k"), 1);
        assert_eq!(note.notify(3, Class::GENERIC, "del", b"k"), 0);
        let Delivery::Message(m) = sub.try_recv() else {
            panic!("no keyspace message")
        };
        assert_eq!(
            (&*m.channel, &*m.payload),
            (&b"__keyspace@3__:k"[..], &b"set"[..])
        );
        note.set("Eg").unwrap();
        assert_eq!(note.notify(0, Class::GENERIC, "expire", b"k2"), 1);
        let Delivery::Message(m) = sub.try_recv() else {
            panic!("no keyevent message")
        };
        assert_eq!(
            (&*m.channel, &*m.payload),
            (&b"__keyevent@0__:expire"[..], &b"k2"[..])
        );
        assert!(note.set("bad!").is_err());
        assert_eq!(note.get(), "gE");
    }
}
