/**
 * HTTP serving speed of the bundled model pair (models/target, models/draft; wasm backend):
 * throughput and p50/p99 request latency at 1, 4 and 16 concurrent clients, for `autoregressive`
 * and `spectr` (k 4, L 4), in one run, printed as a table. Loopback only (127.0.0.1, a free port);
 * bounded request counts, so it ends by itself (about a minute on 2 cores).
 *
 * Run: `deno run --allow-read --allow-env --allow-ffi --allow-sys --allow-net=127.0.0.1 bench/serve_bench.ts`
 * (options: `--tokens 32`, `--requests 8` per client count unit). A script, not `Deno.bench`: under
 * `deno bench` without net permission it prints a note and skips.
 *
 * The generator runs one generation at a time, so more clients mostly add queueing: throughput
 * stays near the single-stream rate while latency grows with the queue.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { SpeculativeGenerator } from "../src/generate/generator.ts";
import { createHandler } from "../src/serve/handler.ts";

const net = await Deno.permissions.query({ name: "net", host: "127.0.0.1" });
if (net.state !== "granted") {
  console.log("serve_bench: skipped (needs --allow-net=127.0.0.1); see the file's header for how to run it");
} else {
  await main();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { tokens: { type: "string", default: "32" }, requests: { type: "string", default: "8" } },
  });
  const maxTokens = Number(values.tokens);
  const unit = Number(values.requests);
  const root = new URL("../models/", import.meta.url);
  const generator = await SpeculativeGenerator.fromPretrained({
    target: new URL("target/", root).pathname,
    draft: new URL("draft/", root).pathname,
    backend: "wasm",
  });
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

  const rows: string[][] = [];
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
      rows.push([
        method,
        String(clients),
        String(total),
        (tokens / wallS).toFixed(1),
        (total / wallS).toFixed(2),
        pct(0.5).toFixed(0),
        pct(0.99).toFixed(0),
      ]);
    }
  }
  await server.shutdown();
  await generator.dispose();

  const head = ["method", "clients", "requests", "tokens/s", "requests/s", "p50 ms", "p99 ms"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => c.padStart(widths[i])).join(" | ") + " |";
  console.log(`serve_bench: bundled models, wasm backend, ${maxTokens} tokens per request, loopback HTTP`);
  console.log(line(head));
  console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const r of rows) console.log(line(r));
}
