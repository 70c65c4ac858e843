/**
 * Serves the bundled model pair (models/target, models/draft) over an OpenAI-compatible HTTP API
 * (see src/serve/handler.ts): `POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models`,
 * `GET /healthz`, `GET /metrics`.
 *
 * Run: `deno run --allow-read --allow-env --allow-ffi --allow-sys --allow-net tools/serve.ts`
 * Environment: `PORT` (default 8000), `HOST` (default 127.0.0.1), `SPECTR_API_KEY` (bearer token;
 * none: no auth), `SPECTR_BACKEND` (wasm | cpu | auto, default wasm), `SPECTR_MAX_QUEUE` (default 8),
 * `SPECTR_TIMEOUT_MS` (request deadline, default none).
 *
 * @module
 */

import { type BackendName, createHandler, SpeculativeGenerator } from "../mod.ts";

const root = new URL("../models/", import.meta.url);
const env = (name: string) => Deno.env.get(name);
const port = Number(env("PORT") ?? 8000);
const hostname = env("HOST") ?? "127.0.0.1";
const backend = (env("SPECTR_BACKEND") ?? "wasm") as BackendName;

const generator = await SpeculativeGenerator.fromPretrained({
  target: new URL("target/", root).pathname,
  draft: new URL("draft/", root).pathname,
  backend,
});
const handler = createHandler({
  generator,
  modelName: "spectr-tinystories",
  maxQueue: Number(env("SPECTR_MAX_QUEUE") ?? 8),
  requestTimeoutMs: env("SPECTR_TIMEOUT_MS") ? Number(env("SPECTR_TIMEOUT_MS")) : undefined,
});

const server = Deno.serve({
  port,
  hostname,
  onListen: ({ hostname, port }) =>
    console.log(`spectr serving on http://${hostname}:${port}/v1 (backend ${backend})`),
}, handler);

Deno.addSignalListener("SIGINT", () => {
  handler.close();
  server.shutdown().then(() => Deno.exit(0));
});
