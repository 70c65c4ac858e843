import assert from "node:assert/strict";
import { ContextLimitError } from "../decode/errors.ts";
import { generationError, HttpError } from "./errors.ts";
import { createHandler, type ServeGenerator } from "./handler.ts";
import { TOY_CHAT_TEMPLATE, toyGenerator } from "./_toy_test_utils.ts";

function post(path: string, body: unknown): Request {
  return new Request(`http://localhost${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("a prompt over the model's context is a 400 naming prompt or messages, code context_length_exceeded", async () => {
  const completions = createHandler({ generator: toyGenerator(undefined, 4), apiKey: "" });
  for (const stream of [false, true]) {
    const response = await completions(post("/v1/completions", { prompt: "abcdef", max_tokens: 2, stream }));
    assert.equal(response.status, 400, `stream: ${stream}`);
    const { error } = await response.json();
    assert.equal(error.param, "prompt");
    assert.equal(error.code, "context_length_exceeded");
    assert.equal(error.type, "invalid_request_error");
    assert.match(error.message, /prompt of 6 tokens exceeds the context limit of 4 tokens/);
  }
  assert.equal(completions.stats().queueDepth, 0);
  // A prompt that fits is served.
  const fits = await completions(post("/v1/completions", { prompt: "ab", max_tokens: 2 }));
  assert.equal(fits.status, 200);
  await fits.body?.cancel();

  const chat = createHandler({ generator: toyGenerator(TOY_CHAT_TEMPLATE, 4), apiKey: "" });
  const response = await chat(
    post("/v1/chat/completions", { messages: [{ role: "user", content: "abcdef" }], max_tokens: 2 }),
  );
  assert.equal(response.status, 400);
  const { error } = await response.json();
  assert.equal(error.param, "messages");
  assert.equal(error.code, "context_length_exceeded");
});

Deno.test("a RangeError that only mentions the context limit is a plain 400, not a prompt error", async () => {
  const toy = toyGenerator();
  const generator: ServeGenerator = {
    tokenizer: toy.tokenizer,
    // deno-lint-ignore require-yield
    async *stream() {
      throw new RangeError("Cannot generate: the prompt of 6 tokens exceeds the context limit of 4 tokens");
    },
  };
  const handler = createHandler({ generator, apiKey: "" });
  const response = await handler(post("/v1/completions", { prompt: "abcdef" }));
  assert.equal(response.status, 400);
  const { error } = await response.json();
  assert.match(error.message, /context limit/);
  assert.equal(error.param, null);
  assert.equal(error.code, null);
});

Deno.test("generationError maps by type: ContextLimitError, other bad input, aborts and the rest", () => {
  const live = new AbortController().signal;
  const chat = generationError(new ContextLimitError(9, 8), live, "chat");
  assert.deepEqual([chat.status, chat.param, chat.code], [400, "messages", "context_length_exceeded"]);
  const completion = generationError(new ContextLimitError(9, 8), live, "completion");
  assert.deepEqual([completion.param, completion.code], ["prompt", "context_length_exceeded"]);
  const bad = generationError(new TypeError("bad option"), live, "completion");
  assert.deepEqual([bad.status, bad.param, bad.code, bad.message], [400, null, null, "bad option"]);
  const own = new HttpError(429, "busy");
  assert.equal(generationError(own, live, "completion"), own);
  const timedOut = AbortSignal.abort(new DOMException("late", "TimeoutError"));
  assert.equal(generationError(new ContextLimitError(9, 8), timedOut, "completion").status, 504);
  assert.equal(generationError(new Error("x"), AbortSignal.abort(), "completion").status, 499);
  const original = console.error;
  console.error = () => {};
  try {
    const internal = generationError(new Error("secret"), live, "completion");
    assert.deepEqual([internal.status, internal.message], [500, "Internal server error"]);
  } finally {
    console.error = original;
  }
});
