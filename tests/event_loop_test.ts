/**
 * The event loop stays live while a generation runs on the `wasm` backend (onnxruntime-web, whose
 * `run` computes synchronously on the calling thread): the bundled ONNX pair, real sessions, the
 * HTTP handler on loopback. Each check is a bound on a measured latency, derived from the forwards
 * measured in the same run, not a tuned constant:
 *
 * - a timer keeps ticking: the longest gap between ticks ≤ its period + 2 forwards + one slice
 *   (`YIELD_SLICE_MS`) + 5 ms for the verifier and bookkeeping between forwards. Power check:
 *   awaiting the same ORT forwards back to back, without the turns, breaks that bound;
 * - an SSE stream arrives spread over the generation, not all at once at its end: the first event
 *   well before the last, and no wait between two events longer than 2 forwards + one slice + 5 ms;
 * - `AbortSignal.timeout` aborts a generation in time; `/healthz` answers within 250 ms while a
 *   generation runs; a client disconnect aborts its generation and frees its slot; with a queue of
 *   2, concurrent clients get 429 with Retry-After.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SpeculativeGenerator } from "../src/generate/generator.ts";
import { YIELD_SLICE_MS } from "../src/event_loop.ts";
import { createHandler } from "../src/serve/handler.ts";
import type { CausalModel } from "../src/decode/model.ts";
import { loadOrt } from "../src/model/backend.ts";

const MODELS = new URL("../models/", import.meta.url);
const PERIOD_MS = 5;

/** Forward durations of the shared generator's target and draft, ms (tests reset them). */
const forwards = { target: [] as number[], draft: [] as number[] };
const longestForward = () => Math.max(...forwards.target, ...forwards.draft);
/** The bound on any stall of the event loop: 2 forwards, one slice, 5 ms between forwards. */
const stallBound = () => 2 * longestForward() + YIELD_SLICE_MS + 5;

let shared: Promise<SpeculativeGenerator> | undefined;
function generator(): Promise<SpeculativeGenerator> {
  shared ??= SpeculativeGenerator.fromPretrained({
    target: new URL("target/", MODELS),
    draft: new URL("draft/", MODELS),
    backend: "wasm",
    numThreads: 1,
  }).then((gen) => {
    forwards.target = timeForwards(gen.target);
    forwards.draft = timeForwards(gen.draft!);
    return gen;
  });
  return shared;
}

/** Times every `append` (one forward) of a model; returns the durations list. */
function timeForwards(model: CausalModel): number[] {
  const durations: number[] = [];
  const append = model.append.bind(model);
  model.append = async (rows, tokens) => {
    const start = performance.now();
    try {
      return await append(rows, tokens);
    } finally {
      durations.push(performance.now() - start);
    }
  };
  return durations;
}

/** Runs `work` with a `PERIOD_MS` interval ticking; returns the longest gap between ticks. */
async function longestTimerGap(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, PERIOD_MS);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(longest, performance.now() - last);
}

function serve(handler: ReturnType<typeof createHandler>) {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, handler);
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    async close() {
      handler.close();
      await server.shutdown();
    },
  };
}

const post = (origin: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${origin}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });

Deno.test("wasm: a timer keeps ticking during a generation (longest gap within 2 forwards); power check without turns", async () => {
  const gen = await generator();
  const { target, draft } = forwards;
  for (const method of ["autoregressive", "spectr"] as const) {
    target.length = draft.length = 0;
    const gap = await longestTimerGap(() =>
      gen.generate("Once upon a time", { method, k: 4, draftLength: 4, maxNewTokens: 96, seed: 3 })
    );
    const forward = longestForward();
    const bound = PERIOD_MS + stallBound();
    console.log(
      `${method}: ${target.length} target + ${draft.length} draft forwards, longest ${
        forward.toFixed(1)
      } ms; ` +
        `longest timer gap ${gap.toFixed(1)} ms (bound ${bound.toFixed(1)} ms)`,
    );
    assert.ok(gap <= bound, `${method}: the timer waited ${gap.toFixed(1)} ms, bound ${bound.toFixed(1)} ms`);
  }
  // Power check: onnxruntime-web forwards of the same target awaited back to back, without the
  // turns, starve the timer for all of them; the same bound catches it.
  const { ort } = await loadOrt("wasm");
  const bytes = await Deno.readFile(new URL("target/onnx/model.onnx", MODELS));
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  const tokens = 8;
  const ids = (f: (i: number) => number) =>
    new ort.Tensor("int64", BigInt64Array.from({ length: tokens }, (_, i) => BigInt(f(i))), [1, tokens]);
  const feeds: Record<string, unknown> = { input_ids: ids((i) => 10 + i), attention_mask: ids(() => 1) };
  if (session.inputNames.includes("position_ids")) feeds.position_ids = ids((i) => i);
  for (const name of session.inputNames.filter((n) => n.startsWith("past_key_values"))) {
    feeds[name] = new ort.Tensor("float32", new Float32Array(0), [1, 8, 0, 32]);
  }
  const raw: number[] = [];
  try {
    const gap = await longestTimerGap(async () => {
      for (let i = 0; i < 40; i++) {
        const start = performance.now();
        await session.run(feeds as Record<string, InstanceType<typeof ort.Tensor>>);
        raw.push(performance.now() - start);
      }
    });
    const bound = PERIOD_MS + 2 * Math.max(...raw) + YIELD_SLICE_MS + 5;
    console.log(
      `power check, 40 raw onnxruntime-web forwards (longest ${Math.max(...raw).toFixed(1)} ms): ` +
        `longest timer gap ${gap.toFixed(1)} ms (bound ${bound.toFixed(1)} ms)`,
    );
    assert.ok(gap > bound, `without turns the timer still ticked (gap ${gap.toFixed(1)} ms)`);
  } finally {
    await session.release();
  }
});

Deno.test("wasm: AbortSignal.timeout aborts a generation in time", async () => {
  const gen = await generator();
  forwards.target.length = forwards.draft.length = 0;
  const start = performance.now();
  const error = await gen.generate("Once upon a time", {
    method: "spectr",
    maxNewTokens: 250,
    seed: 1,
    signal: AbortSignal.timeout(30),
  }).catch((e) => e);
  const elapsed = performance.now() - start;
  const bound = 30 + stallBound();
  console.log(`aborted after ${elapsed.toFixed(1)} ms (deadline 30 ms, bound ${bound.toFixed(1)} ms)`);
  assert.equal((error as Error)?.name, "TimeoutError", String(error));
  assert.ok(elapsed <= bound, `the 30 ms deadline fired after ${elapsed.toFixed(1)} ms`);
});

Deno.test("wasm server: SSE chunks arrive spread over the generation and /healthz answers within 250 ms meanwhile", async () => {
  const handler = createHandler({ generator: await generator(), apiKey: "" });
  const server = serve(handler);
  forwards.target.length = forwards.draft.length = 0;
  try {
    const start = performance.now();
    const response = await post(server.origin, {
      prompt: "Once upon a time",
      max_tokens: 128,
      seed: 5,
      stream: true,
      spectr: { method: "autoregressive" },
    });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const arrivals: number[] = [];
    let health: Promise<{ ms: number; body: { queue_depth: number } }> | undefined;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const events = new TextDecoder().decode(value).split("\n\n").filter((e) => e.startsWith("data: "));
      for (const _ of events) arrivals.push(performance.now() - start);
      if (arrivals.length >= 10 && health === undefined) {
        const asked = performance.now();
        health = fetch(`${server.origin}/healthz`).then(async (r) => ({
          ms: performance.now() - asked,
          body: await r.json(),
        }));
      }
    }
    const first = arrivals[0], last = arrivals[arrivals.length - 1];
    const longestWait = Math.max(...arrivals.map((t, i) => (i === 0 ? 0 : t - arrivals[i - 1])));
    const { ms, body } = await health!;
    console.log(
      `${arrivals.length} SSE events: first at ${first.toFixed(0)} ms, last at ${last.toFixed(0)} ms, ` +
        `longest wait between events ${longestWait.toFixed(1)} ms (bound ${stallBound().toFixed(1)} ms); ` +
        `/healthz during the generation: ${ms.toFixed(1)} ms, queue_depth ${body.queue_depth}`,
    );
    assert.ok(arrivals.length >= 100, `${arrivals.length} events`);
    assert.ok(first < 0.25 * last, `first event at ${first.toFixed(0)} ms, last at ${last.toFixed(0)} ms`);
    assert.ok(longestWait <= stallBound(), `the client waited ${longestWait.toFixed(1)} ms for one event`);
    assert.equal(body.queue_depth, 1, "the generation was still running when /healthz answered");
    assert.ok(ms < 250, `/healthz took ${ms.toFixed(1)} ms`);
  } finally {
    await server.close();
  }
});

Deno.test("wasm server: a client disconnect aborts its generation and frees its slot", async () => {
  const handler = createHandler({ generator: await generator(), apiKey: "", maxQueue: 1 });
  const server = serve(handler);
  try {
    const controller = new AbortController();
    const response = await post(server.origin, {
      prompt: "Once upon a time",
      max_tokens: 2000,
      stream: true,
      spectr: { method: "spectr" },
    }, controller.signal);
    const reader = response.body!.getReader();
    await reader.read();
    assert.equal(handler.stats().queueDepth, 1);
    const disconnected = performance.now();
    controller.abort();
    await reader.cancel().catch(() => {});
    while (handler.stats().queueDepth !== 0 && performance.now() - disconnected < 2000) {
      await new Promise((r) => setTimeout(r, 2));
    }
    const freed = performance.now() - disconnected;
    console.log(`slot freed ${freed.toFixed(1)} ms after the disconnect`);
    assert.equal(handler.stats().queueDepth, 0, "the slot is free");
    assert.equal(handler.stats().generationsAborted, 1);
    assert.match(handler.metrics.render(0), /spectr_generations_aborted_total 1/);
    const next = await post(server.origin, { prompt: "The cat", max_tokens: 4, seed: 1 });
    assert.equal(next.status, 200, "the next client is served");
    await next.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("wasm server: with a queue of 2, concurrent clients get 429 with Retry-After", async () => {
  const handler = createHandler({ generator: await generator(), apiKey: "", maxQueue: 2 });
  const server = serve(handler);
  try {
    const responses = await Promise.all(
      Array.from(
        { length: 8 },
        (_, i) =>
          post(server.origin, { prompt: "Once upon a time", max_tokens: 48, seed: i }).then(async (r) => ({
            status: r.status,
            retryAfter: r.headers.get("retry-after"),
            body: await r.json(),
          })),
      ),
    );
    const ok = responses.filter((r) => r.status === 200).length;
    const busy = responses.filter((r) => r.status === 429);
    console.log(`8 concurrent clients, queue 2: ${ok} × 200, ${busy.length} × 429`);
    assert.equal(ok + busy.length, 8);
    assert.ok(ok >= 2, `${ok} served`);
    assert.ok(busy.length >= 1, "nobody was turned away");
    for (const r of busy) {
      assert.equal(r.retryAfter, "1");
      assert.equal(r.body.error.code, "queue_full");
    }
  } finally {
    await server.close();
  }
});

Deno.test("wasm: dispose the shared generator", async () => {
  if (shared) await (await shared).dispose();
});
