import assert from "node:assert/strict";
import OpenAI from "openai";
import { createHandler } from "./handler.ts";
import { serveLoopback, spyGenerator, TOY_CHAT_TEMPLATE, toyGenerator } from "./_toy_test_utils.ts";
import { SpeculativeGenerator } from "../generate/generator.ts";

const KEY = "test-key-123";

function client(origin: string, apiKey = KEY): OpenAI {
  return new OpenAI({ baseURL: `${origin}/v1`, apiKey, maxRetries: 0, timeout: 20_000 });
}

Deno.test("the openai client gets completions whose streamed chunks join to the non-streamed text", async () => {
  const handler = createHandler({ generator: toyGenerator(), apiKey: KEY, modelName: "toy" });
  const server = serveLoopback(handler);
  try {
    const openai = client(server.origin);
    const request = {
      model: "toy",
      prompt: "ab",
      max_tokens: 40,
      seed: 7,
      temperature: 0.9,
      spectr: { method: "spectr", k: 3, draft_length: 3 },
    };
    const whole = await openai.completions.create(request as OpenAI.CompletionCreateParamsNonStreaming);
    assert.equal(whole.object, "text_completion");
    assert.equal(whole.model, "toy");
    assert.equal(whole.choices[0].finish_reason, "length");
    assert.equal(whole.choices[0].text.length, 40);
    assert.deepEqual(whole.usage, { prompt_tokens: 2, completion_tokens: 40, total_tokens: 42 });
    const ext = (whole as unknown as { spectr: Record<string, unknown> }).spectr;
    assert.equal(ext.method, "spectr");
    assert.equal(ext.k, 3);
    assert.equal(ext.draft_length, 3);
    assert.ok((ext.block_efficiency as number) > 1, "speculative blocks yield more than one token per call");
    assert.ok(
      Array.isArray(ext.acceptance_per_depth) && (ext.acceptance_per_depth as unknown[]).length === 3,
    );
    assert.ok((ext.target_calls as number) < 40 && (ext.tokens_per_second as number) > 0);

    const stream = await openai.completions.create(
      { ...request, stream: true } as OpenAI.CompletionCreateParamsStreaming,
    );
    const texts: string[] = [];
    let finish: string | null = null;
    let usage: unknown;
    for await (const chunk of stream) {
      texts.push(chunk.choices[0].text);
      finish = chunk.choices[0].finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.ok(texts.length > 2, "the text arrives in several chunks");
    assert.equal(texts.join(""), whole.choices[0].text);
    assert.equal(finish, "length");
    assert.deepEqual(usage, whole.usage);

    const models = await openai.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ["toy"]);
  } finally {
    await server.close();
  }
});

Deno.test("chat completions render the tokenizer's chat template, streaming and not", async () => {
  const generator = toyGenerator(TOY_CHAT_TEMPLATE);
  // A fixed method: the test compares runs with the same seed (auto's choices also depend on timings).
  const handler = createHandler({ generator, apiKey: KEY, defaults: { method: "spectr" } });
  const server = serveLoopback(handler);
  try {
    const openai = client(server.origin);
    const messages = [{ role: "system" as const, content: "ab" }, { role: "user" as const, content: "c" }];
    const chat = await openai.chat.completions.create({ model: "spectr", messages, max_tokens: 12, seed: 3 });
    assert.equal(chat.object, "chat.completion");
    assert.equal(chat.choices[0].message.role, "assistant");
    // The template renders "ab" + "c" + "h": the same as a completion of "abch".
    const direct = await generator.generate("abch", { maxNewTokens: 12, seed: 3, method: "spectr" });
    assert.equal(chat.choices[0].message.content, direct.text);
    assert.equal(chat.usage?.prompt_tokens, 4);
    let streamed = "";
    let role: string | undefined;
    for await (
      const chunk of await openai.chat.completions.create({
        messages,
        max_tokens: 12,
        seed: 3,
        stream: true,
        model: "spectr",
      })
    ) {
      streamed += chunk.choices[0]?.delta?.content ?? "";
      role ??= chunk.choices[0]?.delta?.role;
    }
    assert.equal(streamed, direct.text);
    assert.equal(role, "assistant");
    const bad = await fetch(`${server.origin}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ messages: [] }),
    });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.param, "messages");
  } finally {
    await server.close();
  }
});

Deno.test("the bundled models answer a completion end to end through the openai client", async () => {
  const root = new URL("../../models/", import.meta.url);
  const generator = await SpeculativeGenerator.fromPretrained({
    target: new URL("target/", root).pathname,
    draft: new URL("draft/", root).pathname,
    backend: "wasm",
  });
  const handler = createHandler({ generator, apiKey: KEY, modelName: "tiny" });
  const server = serveLoopback(handler);
  try {
    const openai = client(server.origin);
    const out = await openai.completions.create({
      model: "tiny",
      prompt: "Once upon a time",
      max_tokens: 24,
      seed: 1,
      temperature: 0,
    });
    const direct = await generator.generate("Once upon a time", {
      maxNewTokens: 24,
      seed: 1,
      temperature: 0,
    });
    assert.equal(out.choices[0].text, direct.text);
    assert.ok(out.choices[0].text.length > 10);
    assert.equal(out.usage?.completion_tokens, direct.tokens.length);
    const metrics =
      await (await fetch(`${server.origin}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
    assert.match(metrics, /spectr_requests_total\{route="\/v1\/completions",status="200"\} 1/);
    assert.match(metrics, /spectr_block_efficiency_count 1/);
  } finally {
    await server.close();
    await generator.dispose();
  }
});

Deno.test("an unexpected generator failure is a 500 that leaks no message or stack", async () => {
  const toy = toyGenerator();
  const handler = createHandler({
    apiKey: "",
    generator: {
      tokenizer: toy.tokenizer,
      // deno-lint-ignore require-yield
      async *stream() {
        throw new Error("secret detail at /srv/internal.ts:42");
      },
    },
  });
  const original = console.error;
  console.error = () => {};
  try {
    const response = await handler(
      new Request("http://localhost/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "a" }),
      }),
    );
    assert.equal(response.status, 500);
    const text = await response.text();
    assert.doesNotMatch(text, /secret|internal\.ts|at /);
    assert.deepEqual(JSON.parse(text).error.type, "server_error");
    assert.equal(handler.stats().queueDepth, 0);
  } finally {
    console.error = original;
  }
});

Deno.test("a request past its deadline is aborted with 504 and frees its slot", async () => {
  const { generator, spy } = spyGenerator(toyGenerator(), 5);
  const handler = createHandler({ generator, apiKey: "", requestTimeoutMs: 60, maxQueue: 1 });
  const response = await handler(
    new Request("http://localhost/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a", max_tokens: 2000, spectr: { method: "autoregressive" } }),
    }),
  );
  assert.equal(response.status, 504);
  assert.equal((await response.json()).error.code, "timeout");
  assert.equal(spy.failed, 1);
  assert.ok(spy.pieces < 100, `stopped early after ${spy.pieces} pieces`);
  assert.equal(handler.stats().queueDepth, 0);
});

Deno.test("a body without content-length is cut off at the limit while reading", async () => {
  const handler = createHandler({ generator: toyGenerator(), apiKey: "", maxBodyBytes: 1024 });
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(c) {
      pulled++;
      c.enqueue(new Uint8Array(256).fill(32));
    },
  });
  const response = await handler(
    new Request("http://localhost/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: endless,
    }),
  );
  assert.equal(response.status, 413);
  assert.equal((await response.json()).error.code, "request_too_large");
  assert.ok(pulled <= 8, `read ${pulled} chunks of an endless body`);
});

Deno.test("createHandler rejects bad options with typed errors", () => {
  assert.throws(() => createHandler({ generator: toyGenerator(), maxQueue: 0 }), RangeError);
  assert.throws(() => createHandler({ generator: toyGenerator(), maxBodyBytes: -1 }), RangeError);
  assert.throws(() => createHandler({ generator: undefined as never }), TypeError);
});

Deno.test("top_k reaches the generator: top_k 1 at temperature 1 samples the greedy answer; -1 turns it off", async () => {
  const { generator, spy } = spyGenerator(toyGenerator(), 0);
  const handler = createHandler({ generator, apiKey: KEY, modelName: "toy" });
  const server = serveLoopback(handler);
  try {
    const openai = client(server.origin);
    const ask = async (extra: Record<string, unknown>) =>
      (await openai.completions.create(
        {
          model: "toy",
          prompt: "ab",
          max_tokens: 24,
          seed: 11,
          spectr: { method: "spectr", k: 2 },
          ...extra,
        } as OpenAI.CompletionCreateParamsNonStreaming,
      )).choices[0].text;
    const greedy = await ask({ temperature: 0 });
    const topOne = await ask({ temperature: 1, top_k: 1 });
    const off = await ask({ temperature: 1, top_k: -1 });
    const plain = await ask({ temperature: 1 });
    assert.equal(topOne, greedy, "top_k 1 keeps only the most likely token");
    // Power: without the filter the same seed samples away from greedy on the toy pair (24 tokens).
    assert.notEqual(plain, greedy);
    assert.equal(off, plain, "top_k -1 is no filter");
    assert.deepEqual(spy.options.map((o) => o.topK), [0, 1, 0, 0]);
  } finally {
    await server.close();
  }
});
