"""redis-py's Lock against matou-kv: acquire, contention, extend,
reacquire, release, and the errors of a lock that is not owned. The lock
is built on redis-py's own Lua scripts (SCRIPT LOAD + EVALSHA, falling
back to EVAL on NOSCRIPT), so this drives the scripting commands the way
the most used client does. Usage: redis_py_lock.py PORT"""

import sys
import time

import redis
from redis.exceptions import LockError, LockNotOwnedError

port = int(sys.argv[1])
for protocol in (2, 3):
    a = redis.Redis(port=port, protocol=protocol)
    b = redis.Redis(port=port, protocol=protocol)
    a.flushall()
    # The scripts are loaded once per client: flushing the cache makes
    # redis-py take its NOSCRIPT path (EVAL) once.
    a.script_flush()

    lock = a.lock("resource", timeout=10)
    assert lock.acquire(blocking=False), "first acquire"
    assert lock.locked() and lock.owned()
    other = b.lock("resource", timeout=10)
    assert not other.acquire(blocking=False), "a held lock was acquired twice"
    assert not other.owned()
    assert not other.acquire(blocking=True, blocking_timeout=0.2)

    ttl = a.pttl("resource")
    assert 0 < ttl <= 10_000, ttl
    assert lock.extend(20)
    assert a.pttl("resource") > 10_000
    assert lock.extend(5, replace_ttl=True)
    assert a.pttl("resource") <= 5_000
    assert lock.reacquire()
    assert 9_000 < a.pttl("resource") <= 10_000

    try:
        other.release()
        raise AssertionError("releasing a lock not owned succeeded")
    except LockError:
        pass
    try:
        other.extend(5)
        raise AssertionError("extending a lock not owned succeeded")
    except LockError:
        pass

    lock.release()
    assert not lock.locked()
    try:
        lock.release()
        raise AssertionError("a second release succeeded")
    except LockError:
        pass

    # Now the other client gets it; an expired lock is no one's.
    assert other.acquire(blocking=False)
    short = b.lock("short", timeout=0.2)
    assert short.acquire(blocking=False)
    time.sleep(0.5)
    try:
        short.release()
        raise AssertionError("releasing an expired lock succeeded")
    except LockNotOwnedError:
        pass
    other.release()

    # The context manager.
    with a.lock("ctx", timeout=5, blocking_timeout=1):
        assert a.exists("ctx") == 1
    assert a.exists("ctx") == 0

print("ok")
