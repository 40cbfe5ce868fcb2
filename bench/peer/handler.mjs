// The Weverse talk's stack (Node.js 20, ioredis, the AWS SDK for JavaScript), its accept path as a fair peer: the same Lua gate
// (admit, then confirm) through ioredis with lazyConnect, and the same
// SendMessage through @aws-sdk/client-sqs, against the same endpoints.
import { readFileSync } from "node:fs";
import Redis from "ioredis";
import { SQSClient, SendMessageCommand } from "@aws-sdk/client-sqs";

const prefix = process.env.REDIS_KEY_PREFIX ?? "fanrush";
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { lazyConnect: true });
// The gate's function library as its adapter loads it (make bench writes it
// out), its functions called with the adapter's keys and arguments.
const library = readFileSync(process.env.GATE_LIBRARY, "utf8");
let loaded;
const ensureLibrary = () =>
  (loaded ??= redis.call("FUNCTION", "LOAD", library).catch((e) => {
    if (!/already exists/.test(e.message)) throw e;
  }));
const admit = async (...keysAndArgs) => {
  await ensureLibrary();
  return redis.call("FCALL", process.env.ADMIT_FUNCTION, 7, ...keysAndArgs);
};
const confirm = (...keysAndArgs) => redis.call("FCALL", process.env.CONFIRM_FUNCTION, 2, ...keysAndArgs);
// fauxqs names queues by a host that does not resolve; send to the endpoint instead.
const sqs = new SQSClient({ useQueueUrlAsEndpoint: false });
const queueUrl = process.env.SQS_QUEUE_URL;
let counter = 0;

const json = (statusCode, body) => ({ statusCode, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

export async function handler(event) {
  const parts = event.rawPath.split("/").filter(Boolean);
  const fan = event.headers["x-fan-id"];
  if (event.requestContext.http.method !== "POST" || parts.length !== 3 || !fan) {
    return json(404, { error: "route_not_found", message: "no such route" });
  }
  const eventId = parts[1];
  const meta = `${prefix}:ev:{${eventId}}`;
  const token = `${process.pid}-${counter++}`;
  const r = await admit(meta, `${meta}:fans`, `${meta}:notes`, `${meta}:pending`, `${meta}:door`,
    `${meta}:grants`, `${meta}:joined`, fan, Date.now(), token, "", "0", "direct", "0");
  if (r[0] === "existing") return json(200, { eventId, fanId: fan, position: Number(r[1]), status: "accepted" });
  if (r[0] === "sold_out") return json(409, { error: "sold_out", message: "no places are left" });
  if (r[0] !== "reserved") return json(404, { error: r[0], message: r[0] });
  const body = JSON.stringify({ v: 1, eventId, fanId: fan, position: Number(r[1]), acceptedAtMs: Number(r[2]) });
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
  await confirm(`${meta}:fans`, `${meta}:pending`, fan, r[1]);
  return json(202, { eventId, fanId: fan, position: Number(r[1]), status: "accepted" });
}
