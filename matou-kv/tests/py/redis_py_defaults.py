"""redis-py (latest, default settings: RESP3, transaction pipelines) against
a running matou-kv: `python3 redis_py_defaults.py PORT`. Exits non-zero
with the failed assertion on any difference from Redis's behaviour."""

import sys

import redis

port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port)
other = redis.Redis(host="127.0.0.1", port=port)

# The defaults speak RESP3 (redis-py 8 sends HELLO 3 first).
hello = r.execute_command("HELLO")
proto = hello.get(b"proto", hello.get("proto"))
assert proto == 3, f"redis-py did not switch to RESP3: {hello}"

assert r.set("a", "1") is True
assert r.get("a") == b"1"
assert r.get("missing") is None

# pipeline() is a MULTI/EXEC transaction by default.
p = r.pipeline()
p.set("x", 1)
p.incr("x")
p.get("x")
assert p.execute() == [True, 2, b"2"]

# A queue-time error aborts the whole transaction: nothing applied.
p = r.pipeline()
p.set("y", 1)
p.execute_command("NOSUCH", "arg")
p.set("z", 1)
try:
    p.execute()
    raise AssertionError("EXEC of a transaction with an unknown command succeeded")
except redis.ResponseError:
    pass
assert r.get("y") is None and r.get("z") is None, "EXECABORT applied writes"

# WATCH: another client's write aborts EXEC.
with r.pipeline() as p:
    p.watch("w")
    other.set("w", "theirs")
    p.multi()
    p.set("w", "mine")
    try:
        p.execute()
        raise AssertionError("EXEC ran although a watched key changed")
    except redis.WatchError:
        pass
assert r.get("w") == b"theirs"

# The transaction() helper retries until it runs unopposed.
def bump(pipe):
    n = int(pipe.get("counter") or 0)
    pipe.multi()
    pipe.set("counter", n + 1)

r.transaction(bump, "counter")
assert r.get("counter") == b"1"

# Replies in RESP3 shapes, parsed by the client.
assert r.config_get("databases") == {"databases": "16"}, r.config_get("databases")
info = r.info()
assert info["redis_version"], info
assert r.info("keyspace")["db0"]["keys"] >= 1

# Databases: FLUSHDB of db 1 leaves db 0 alone.
d1 = redis.Redis(host="127.0.0.1", port=port, db=1)
d1.set("a", "in1")
assert d1.get("a") == b"in1" and r.get("a") == b"1"
d1.flushdb()
assert r.get("a") == b"1", "FLUSHDB on db 1 emptied db 0"
assert d1.dbsize() == 0

print("redis-py", redis.__version__, "ok")
