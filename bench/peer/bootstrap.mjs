// A minimal Lambda custom runtime for the Node.js peer: the Runtime API loop
// (next, handle, response or error), as AWS's Node.js runtime runs it.
import { handler } from "./handler.mjs";

const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime`;
for (;;) {
  const next = await fetch(`${api}/invocation/next`);
  const id = next.headers.get("lambda-runtime-aws-request-id");
  process.env._X_AMZN_TRACE_ID = next.headers.get("lambda-runtime-trace-id") ?? "";
  const event = await next.json();
  try {
    const result = await handler(event);
    await fetch(`${api}/invocation/${id}/response`, { method: "POST", body: JSON.stringify(result) });
  } catch (e) {
    await fetch(`${api}/invocation/${id}/error`, {
      method: "POST",
      body: JSON.stringify({ errorType: e?.name ?? "Error", errorMessage: String(e?.message ?? e) }),
    });
  }
}
