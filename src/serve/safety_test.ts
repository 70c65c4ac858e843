import assert from "node:assert/strict";
import { createHandler } from "./handler.ts";
import { serveLoopback, spyGenerator, toyGenerator } from "./_toy_test_utils.ts";

const KEY = "safety-key";
const AUTH = { authorization: `Bearer ${KEY}` };
const JSON_AUTH = { ...AUTH, "content-type": "application/json" };

interface BadCase {
  name: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array<ArrayBuffer>;
  status: number;
  message: RegExp;
  param?: string | null;
}

const post = (body: unknown) => JSON.stringify(body);

const CASES: BadCase[] = [
  { name: "malformed JSON", body: "{ prompt: ", status: 400, message: /not valid JSON/ },
  { name: "a JSON array body", body: "[1,2]", status: 400, message: /must be a JSON object/ },
  {
    name: "invalid UTF-8",
    body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    status: 400,
    message: /not valid JSON/,
  },
  {
    name: "missing prompt",
    body: post({ max_tokens: 4 }),
    status: 400,
    message: /'prompt' must be/,
    param: "prompt",
  },
  {
    name: "numeric prompt",
    body: post({ prompt: 5 }),
    status: 400,
    message: /'prompt' must be/,
    param: "prompt",
  },
  {
    name: "two prompts",
    body: post({ prompt: ["a", "b"] }),
    status: 400,
    message: /one prompt/,
    param: "prompt",
  },
  {
    name: "negative token id",
    body: post({ prompt: [1, -2] }),
    status: 400,
    message: /'prompt' must be/,
    param: "prompt",
  },
  {
    name: "token id outside the vocabulary",
    body: post({ prompt: [99] }),
    status: 400,
    message: /outside the vocabulary/,
  },
  {
    name: "prompt over the token limit",
    body: post({ prompt: "a".repeat(65) }),
    status: 400,
    message: /65 tokens, more than .* 64/,
    param: "prompt",
  },
  {
    name: "string max_tokens",
    body: post({ prompt: "a", max_tokens: "8" }),
    status: 400,
    message: /'max_tokens' must be an integer/,
    param: "max_tokens",
  },
  {
    name: "zero max_tokens",
    body: post({ prompt: "a", max_tokens: 0 }),
    status: 400,
    message: /'max_tokens' must be between 1 and 2048/,
    param: "max_tokens",
  },
  {
    name: "huge max_tokens",
    body: post({ prompt: "a", max_tokens: 1e9 }),
    status: 400,
    message: /'max_tokens' must be between/,
    param: "max_tokens",
  },
  {
    name: "fractional max_tokens",
    body: post({ prompt: "a", max_tokens: 1.5 }),
    status: 400,
    message: /'max_tokens' must be an integer/,
    param: "max_tokens",
  },
  {
    name: "negative temperature",
    body: post({ prompt: "a", temperature: -1 }),
    status: 400,
    message: /'temperature' must be between 0 and 2/,
    param: "temperature",
  },
  {
    name: "temperature above 2",
    body: post({ prompt: "a", temperature: 2.5 }),
    status: 400,
    message: /'temperature' must be between/,
    param: "temperature",
  },
  {
    name: "string temperature",
    body: post({ prompt: "a", temperature: "hot" }),
    status: 400,
    message: /'temperature' must be a number/,
    param: "temperature",
  },
  {
    name: "top_p 0",
    body: post({ prompt: "a", top_p: 0 }),
    status: 400,
    message: /'top_p' must be greater than 0/,
    param: "top_p",
  },
  {
    name: "top_p above 1",
    body: post({ prompt: "a", top_p: 1.5 }),
    status: 400,
    message: /'top_p' must be between 0 and 1/,
    param: "top_p",
  },
  {
    name: "top_k below -1",
    body: post({ prompt: "a", top_k: -2 }),
    status: 400,
    message: /'top_k' must be between -1 and/,
    param: "top_k",
  },
  {
    name: "fractional top_k",
    body: post({ prompt: "a", top_k: 2.5 }),
    status: 400,
    message: /'top_k' must be an integer/,
    param: "top_k",
  },
  {
    name: "string top_k",
    body: post({ prompt: "a", top_k: "40" }),
    status: 400,
    message: /'top_k' must be an integer/,
    param: "top_k",
  },
  {
    name: "string seed",
    body: post({ prompt: "a", seed: "x" }),
    status: 400,
    message: /'seed' must be an integer/,
    param: "seed",
  },
  {
    name: "five stop strings",
    body: post({ prompt: "a", stop: ["a", "b", "c", "d", "e"] }),
    status: 400,
    message: /at most 4 strings, got 5/,
    param: "stop",
  },
  {
    name: "numeric stop",
    body: post({ prompt: "a", stop: 3 }),
    status: 400,
    message: /'stop' must be a string or an array/,
    param: "stop",
  },
  {
    name: "empty stop string",
    body: post({ prompt: "a", stop: [""] }),
    status: 400,
    message: /1 to 256 characters/,
    param: "stop",
  },
  {
    name: "string stream",
    body: post({ prompt: "a", stream: "yes" }),
    status: 400,
    message: /'stream' must be a boolean/,
    param: "stream",
  },
  {
    name: "n of 2",
    body: post({ prompt: "a", n: 2 }),
    status: 400,
    message: /'n' greater than 1 is not supported/,
    param: "n",
  },
  {
    name: "logprobs",
    body: post({ prompt: "a", logprobs: 5 }),
    status: 400,
    message: /'logprobs' is not supported/,
    param: "logprobs",
  },
  {
    name: "unknown spectr.method",
    body: post({ prompt: "a", spectr: { method: "beam" } }),
    status: 400,
    message: /'spectr.method' must be one of .*"beam"/,
    param: "spectr.method",
  },
  {
    name: "spectr.k = 0",
    body: post({ prompt: "a", spectr: { k: 0 } }),
    status: 400,
    message: /'spectr.k' must be between 1 and 16, got 0/,
    param: "spectr.k",
  },
  {
    name: "spectr.draft_length = 17",
    body: post({ prompt: "a", spectr: { draft_length: 17 } }),
    status: 400,
    message: /'spectr.draft_length' must be between 1 and 16/,
    param: "spectr.draft_length",
  },
  {
    name: "spectr not an object",
    body: post({ prompt: "a", spectr: "fast" }),
    status: 400,
    message: /'spectr' must be an object/,
    param: "spectr",
  },
  {
    name: "unknown model",
    body: post({ prompt: "a", model: "gpt-9" }),
    status: 404,
    message: /model 'gpt-9' does not exist/,
    param: "model",
  },
  {
    name: "chat without a chat template",
    path: "/v1/chat/completions",
    body: post({ messages: [{ role: "user", content: "a" }] }),
    status: 400,
    message: /has no chat template/,
  },
  {
    name: "a body over the limit",
    body: post({ prompt: "a".repeat(70_000) }),
    status: 413,
    message: /exceeds 65536 bytes/,
  },
  {
    name: "text/plain content type",
    headers: { ...AUTH, "content-type": "text/plain" },
    body: post({ prompt: "a" }),
    status: 415,
    message: /must be application\/json, got 'text\/plain'/,
  },
  {
    name: "no content type",
    headers: AUTH,
    body: new Uint8Array([0x7b, 0x7d]),
    status: 415,
    message: /must be application\/json/,
  },
  {
    name: "unknown route",
    path: "/v1/embeddings",
    body: post({ input: "a" }),
    status: 404,
    message: /Unknown route: POST \/v1\/embeddings/,
  },
  {
    name: "GET on completions",
    method: "GET",
    status: 405,
    message: /Method GET is not allowed on \/v1\/completions; use POST/,
  },
  {
    name: "POST on models",
    path: "/v1/models",
    body: post({}),
    status: 405,
    message: /Method POST is not allowed on \/v1\/models/,
  },
  {
    name: "missing bearer token",
    headers: { "content-type": "application/json" },
    body: post({ prompt: "a" }),
    status: 401,
    message: /Missing bearer token/,
  },
  {
    name: "wrong bearer token",
    headers: { "content-type": "application/json", authorization: "Bearer nope" },
    body: post({ prompt: "a" }),
    status: 401,
    message: /Incorrect API key/,
  },
  {
    name: "basic auth instead of bearer",
    headers: { "content-type": "application/json", authorization: "Basic eDp5" },
    body: post({ prompt: "a" }),
    status: 401,
    message: /Missing bearer token/,
  },
  {
    name: "metrics without a token",
    path: "/metrics",
    method: "GET",
    headers: {},
    status: 401,
    message: /Missing bearer token/,
  },
];

Deno.test("bad requests get the right status, OpenAI's error shape and a message naming the problem", async () => {
  const { generator, spy } = spyGenerator(toyGenerator(), 0);
  const handler = createHandler({ generator, apiKey: KEY, maxPromptTokens: 64 });
  const server = serveLoopback(handler);
  try {
    assert.ok(CASES.length >= 25);
    for (const c of CASES) {
      const method = c.method ?? "POST";
      const response = await fetch(`${server.origin}${c.path ?? "/v1/completions"}`, {
        method,
        headers: c.headers ?? JSON_AUTH,
        body: method === "GET" ? undefined : c.body,
      });
      assert.equal(response.status, c.status, `${c.name}: status`);
      assert.match(response.headers.get("content-type") ?? "", /application\/json/, c.name);
      const body = await response.json();
      assert.deepEqual(Object.keys(body), ["error"], c.name);
      assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"], c.name);
      assert.match(body.error.message, c.message, c.name);
      if (c.param !== undefined) assert.equal(body.error.param, c.param, `${c.name}: param`);
      if (c.status === 400) assert.equal(body.error.type, "invalid_request_error", c.name);
      if (c.status === 401) assert.equal(response.headers.get("www-authenticate"), "Bearer", c.name);
      if (c.status === 405) assert.ok(response.headers.get("allow"), c.name);
    }
    // Only the vocabulary check reaches the generator; auth, size and validation failures do no work.
    assert.equal(spy.started, 1);
    const health = await fetch(`${server.origin}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok", queue_depth: 0 });
    const ok = await fetch(`${server.origin}/v1/completions`, {
      method: "POST",
      headers: JSON_AUTH,
      body: post({ prompt: "a", max_tokens: 3, unknown_field: { ignored: true } }),
    });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).usage.completion_tokens, 3);
  } finally {
    await server.close();
  }
});

Deno.test("16 concurrent clients against a queue of 2 get 200 or 429 and memory stays flat", async () => {
  // 1 ms per piece stands in for model time, so that requests overlap.
  const { generator } = spyGenerator(toyGenerator(), 1);
  const handler = createHandler({ generator, apiKey: "", maxQueue: 2 });
  const server = serveLoopback(handler);
  const CLIENTS = 16;
  const REQUESTS_PER_CLIENT = 25;
  const deadline = Date.now() + 20_000;
  const counts = new Map<number, number>();
  let retryAfterMissing = 0;
  let unexpected = 0;
  const one = async (i: number) => {
    const response = await fetch(`${server.origin}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "ab", max_tokens: 16, seed: i, stream: i % 3 === 0 }),
    });
    const text = await response.text();
    counts.set(response.status, (counts.get(response.status) ?? 0) + 1);
    if (response.status === 429 && response.headers.get("retry-after") !== "1") retryAfterMissing++;
    if (response.status === 200 && !(text.includes('"usage"'))) unexpected++;
  };
  const round = async (offset: number) => {
    await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
      for (let r = 0; r < REQUESTS_PER_CLIENT && Date.now() < deadline; r++) {
        try {
          await one(offset + c * REQUESTS_PER_CLIENT + r);
        } catch {
          unexpected++;
        }
      }
    }));
  };
  try {
    await round(0); // warm-up
    counts.clear();
    const before = Deno.memoryUsage();
    await round(10_000);
    await round(20_000);
    const after = Deno.memoryUsage();
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const rejected = counts.get(429) ?? 0;
    const rssGrowthMiB = (after.rss - before.rss) / 2 ** 20;
    const heapGrowthMiB = (after.heapUsed - before.heapUsed) / 2 ** 20;
    console.log(
      `load: ${total} requests, ${counts.get(200) ?? 0} × 200, ${rejected} × 429, ` +
        `rss ${(after.rss / 2 ** 20).toFixed(1)} MiB (${rssGrowthMiB.toFixed(1)} MiB growth), ` +
        `heap growth ${heapGrowthMiB.toFixed(1)} MiB`,
    );
    assert.equal(unexpected, 0);
    assert.equal(retryAfterMissing, 0);
    assert.deepEqual([...counts.keys()].filter((s) => s !== 200 && s !== 429), []);
    assert.ok(rejected > 0, "the bounded queue turned some requests away");
    assert.ok((counts.get(200) ?? 0) > 0);
    // Bound: two rounds of 400 requests may not grow RSS by 64 MiB or the heap by 32 MiB.
    assert.ok(rssGrowthMiB < 64, `rss grew ${rssGrowthMiB} MiB`);
    assert.ok(heapGrowthMiB < 32, `heap grew ${heapGrowthMiB} MiB`);
    assert.equal(handler.stats().queueDepth, 0);
    // The warm-up round counts in the metrics too.
    assert.ok(handler.metrics.requests("/v1/completions", 429) >= rejected);
  } finally {
    await server.close();
  }
});

Deno.test("a client that disconnects mid-stream aborts its generation and frees its slot at once", async () => {
  const { generator, spy } = spyGenerator(toyGenerator(), 3);
  const handler = createHandler({ generator, apiKey: "", maxQueue: 1 });
  const server = serveLoopback(handler);
  try {
    const controller = new AbortController();
    const response = await fetch(`${server.origin}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        prompt: "a",
        max_tokens: 2000,
        stream: true,
        spectr: { method: "autoregressive" },
      }),
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /^data: \{/);
    assert.equal(handler.stats().queueDepth, 1);
    controller.abort();
    await reader.cancel().catch(() => {});
    // The slot comes back as soon as the server notices the disconnect.
    const waitStart = Date.now();
    while (handler.stats().queueDepth !== 0 && Date.now() - waitStart < 2000) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(handler.stats().queueDepth, 0, "the slot is free");
    assert.ok(spy.signals[0].aborted, "the generation's signal was aborted");
    const next = await fetch(`${server.origin}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "b", max_tokens: 4, spectr: { method: "autoregressive" } }),
    });
    assert.equal(next.status, 200, "the next request is served, not turned away");
    await next.body?.cancel();
    // Let the aborted generation unwind, then check it stopped long before its 2000 tokens.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(spy.started, 2);
    assert.equal(spy.finished, 1, "only the next request's generation ran to its end");
    assert.ok(spy.pieces < 200, `the generation stopped early after ${spy.pieces} pieces`);
    assert.equal(handler.stats().generationsAborted, 1);
    assert.match(
      handler.metrics.render(0),
      /spectr_requests_total\{route="\/v1\/completions",status="499"\} 1/,
    );
  } finally {
    await server.close();
  }
});
