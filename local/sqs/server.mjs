// Local SQS/SNS endpoint for fanrush: fauxqs through its buildApp API, bound to
// loopback only and without per-request logging (its CLI binds 0.0.0.0 and
// logs every call). Port from FAUXQS_PORT, default 9324.
import { buildApp } from "fauxqs";

const port = Number(process.env.FAUXQS_PORT ?? 9324);
const app = buildApp({ logger: false });
await app.listen({ port, host: "127.0.0.1" });
console.log(`fauxqs listening on http://127.0.0.1:${port}`);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await app.close();
    process.exit(0);
  });
}
