/**
 * `deno task bench:serve`: HTTP serving speed of the bundled model pair (models/target, models/draft;
 * wasm backend): throughput and p50/p99 request latency at 1, 4 and 16 concurrent clients, for
 * `autoregressive` and `spectr` (k 4, L 4), in one run, printed as a table. Loopback only (127.0.0.1,
 * a free port); bounded request counts, so it ends by itself (about a minute on 2 cores).
 *
 * Options: `--tokens 32` (max_tokens per request), `--requests 8` (requests per client count unit).
 * Needs --allow-net=127.0.0.1 (the task grants it); without it, it prints a note and skips. On the
 * harness (bench/_harness.ts): its header line first; the last line is one JSON object `{"header",
 * "maxTokens", "rows": [{method, clients, requests, tokensPerSecond, requestsPerSecond, p50Ms,
 * p99Ms}…]}`.
 *
 * The generator runs one generation at a time, so more clients mostly add queueing: throughput
 * stays near the single-stream rate while latency grows with the queue.
 *
 * @module
 */

import { createHandler } from "../src/serve/handler.ts";
import {
  finishBench,
  formatHeader,
  formatTable,
  intFlag,
  loadPair,
  machineHeader,
  PAIRS,
  parseFlags,
  runMain,
} from "./_harness.ts";

/** One measured (method, clients) cell. */
interface ServeRow {
  method: string;
  clients: number;
  requests: number;
  tokensPerSecond: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

async function main(): Promise<void> {
  const flags = parseFlags("bench:serve", {
    options: { tokens: { type: "string", default: "32" }, requests: { type: "string", default: "8" } },
  });
  if (!flags) return;
  const maxTokens = intFlag("tokens", flags.values.tokens, 32);
  const unit = intFlag("requests", flags.values.requests, 8);
  const net = await Deno.permissions.query({ name: "net", host: "127.0.0.1" });
  if (net.state !== "granted") {
    console.log("bench:serve skipped: needs --allow-net=127.0.0.1 (deno task bench:serve grants it)");
    return;
  }
  const header = machineHeader("bench:serve");
  console.log(formatHeader(header));
  const generator = await loadPair(PAIRS.bundled, { backend: "wasm" });
  const handler = createHandler({ generator, apiKey: "", maxQueue: 64 });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, handler);
  const url = `http://127.0.0.1:${server.addr.port}/v1/completions`;
  let seed = 0;

  async function request(method: string): Promise<{ ms: number; tokens: number }> {
    const start = performance.now();
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        prompt: "Once upon a time",
        max_tokens: maxTokens,
        seed: ++seed,
        spectr: { method, k: 4, draft_length: 4 },
      }),
    });
    const body = await response.json();
    if (response.status !== 200) {
      throw new Error(`bench request failed: ${response.status} ${JSON.stringify(body)}`);
    }
    return { ms: performance.now() - start, tokens: body.usage.completion_tokens };
  }

  const rows: ServeRow[] = [];
  for (const method of ["autoregressive", "spectr"]) {
    for (let i = 0; i < 2; i++) await request(method); // warm-up
    for (const clients of [1, 4, 16]) {
      const total = clients === 1 ? unit : clients * Math.max(1, Math.round(unit / 4));
      let next = 0;
      const latencies: number[] = [];
      let tokens = 0;
      const start = performance.now();
      await Promise.all(Array.from({ length: clients }, async () => {
        while (next < total) {
          next++;
          const r = await request(method);
          latencies.push(r.ms);
          tokens += r.tokens;
        }
      }));
      const wallS = (performance.now() - start) / 1000;
      latencies.sort((a, b) => a - b);
      const pct = (p: number) =>
        latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)];
      rows.push({
        method,
        clients,
        requests: total,
        tokensPerSecond: tokens / wallS,
        requestsPerSecond: total / wallS,
        p50Ms: pct(0.5),
        p99Ms: pct(0.99),
      });
    }
  }
  await server.shutdown();
  await generator.dispose();

  console.log(`bundled models, wasm backend, ${maxTokens} tokens per request, loopback HTTP`);
  console.log(formatTable<ServeRow>([
    { header: "method", value: "method" },
    { header: "clients", value: "clients", digits: 0 },
    { header: "requests", value: "requests", digits: 0 },
    { header: "tokens/s", value: "tokensPerSecond", digits: 1 },
    { header: "requests/s", value: "requestsPerSecond", digits: 2 },
    { header: "p50 ms", value: "p50Ms", digits: 0 },
    { header: "p99 ms", value: "p99Ms", digits: 0 },
  ], rows));
  finishBench(header, { maxTokens, rows });
}

if (import.meta.main) await runMain(main);
