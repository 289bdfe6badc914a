// node-redis (latest, its defaults: RESP3 through HELLO 3) against a running
// matou-kv: `node node_redis_defaults.mjs PORT`. Exits non-zero with the
// failed assertion on any difference from Redis's behaviour.
import assert from "node:assert/strict";
import { createClient, WatchError } from "redis";

const port = Number(process.argv[2]);
const url = `redis://127.0.0.1:${port}`;
const r = createClient({ url, name: "node-main" });
r.on("error", (e) => {
  console.error("client error", e);
  process.exit(1);
});
await r.connect();

// The handshake was HELLO 3 with SETNAME: the connection is RESP3, named.
const hello = await r.hello();
assert.equal(hello.proto, 3, `not RESP3: ${JSON.stringify(hello)}`);
assert.equal(await r.clientGetName(), "node-main");

assert.equal(await r.set("a", "1"), "OK");
assert.equal(await r.get("a"), "1");
assert.equal(await r.get("missing"), null);
assert.equal(await r.incrBy("n", 5), 5);
assert.equal(await r.set("ttl", "v", { expiration: { type: "PX", value: 60000 } }), "OK");
assert.ok((await r.pTTL("ttl")) > 59000);

// MULTI/EXEC through the client's transaction API.
const replies = await r.multi().set("x", "1").incr("x").get("x").exec();
assert.deepEqual(replies, ["OK", 2, "2"]);

// WATCH: another client's write aborts EXEC with WatchError, nothing applied.
const other = r.duplicate({ name: "node-other" });
await other.connect();
await r.watch("w");
await other.set("w", "theirs");
await assert.rejects(r.multi().set("w", "mine").exec(), WatchError);
assert.equal(await r.get("w"), "theirs");

// RESP3 shapes: a map for HGETALL, a set for SMEMBERS, doubles for scores.
await r.hSet("h", { f1: "v1", f2: "v2" });
assert.deepEqual({ ...(await r.hGetAll("h")) }, { f1: "v1", f2: "v2" });
await r.sAdd("s", ["a", "b", "c"]);
assert.deepEqual([...(await r.sMembers("s"))].sort(), ["a", "b", "c"]);
await r.zAdd("z", [
  { score: 1.5, value: "one" },
  { score: 2, value: "two" },
]);
assert.deepEqual(await r.zRangeWithScores("z", 0, -1), [
  { value: "one", score: 1.5 },
  { value: "two", score: 2 },
]);
assert.equal(await r.zScore("z", "one"), 1.5);
await r.rPush("l", ["a", "b", "c"]);
assert.deepEqual(await r.lRange("l", 0, -1), ["a", "b", "c"]);
assert.equal(await r.lPop("l"), "a");

// A blocking pop served by another client's push.
const blocked = other.duplicate();
await blocked.connect();
const popped = blocked.blPop("q", 5);
await new Promise((res) => setTimeout(res, 100));
await r.rPush("q", "job");
assert.deepEqual(await popped, { key: "q", element: "job" });

// Pub/sub over RESP3: the subscriber's messages come as push frames on a
// connection that also answers ordinary commands.
const sub = r.duplicate();
await sub.connect();
const got = [];
await sub.subscribe("news", (message, channel) => got.push([channel, message]));
assert.equal(await sub.ping(), "PONG");
assert.equal(await r.publish("news", "hello"), 1);
for (let i = 0; i < 100 && got.length === 0; i++) {
  await new Promise((res) => setTimeout(res, 20));
}
assert.deepEqual(got, [["news", "hello"]]);
await sub.unsubscribe("news");

// Databases: a client on db 1 (SELECT in the handshake) is apart from db 0.
const d1 = createClient({ url, database: 1 });
await d1.connect();
await d1.set("a", "in1");
assert.equal(await d1.get("a"), "in1");
assert.equal(await r.get("a"), "1");
await d1.flushDb();
assert.equal(await r.get("a"), "1", "FLUSHDB on db 1 emptied db 0");
assert.equal(await d1.dbSize(), 0);

// INFO and CONFIG GET parse.
const info = await r.info("server");
assert.match(info, /redis_version:/);
assert.deepEqual({ ...(await r.configGet("databases")) }, { databases: "16" });

for (const c of [r, other, blocked, sub, d1]) {
  await c.quit();
}
console.log("node-redis ok");
