import assert from "node:assert/strict";
import { generationMethods, SpeculativeGenerator } from "./generator.ts";
import { StopMatcher } from "./stop.ts";
import { ContextLimitError } from "../decode/errors.ts";
import { MarkovModel, nearMarkovTable, randomMarkovTable } from "../decode/markov.ts";
import { referenceKernel } from "../kernel/reference.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";

const LETTERS = "abcdefgh";
const tokenizer = Tokenizer.fromJSON({
  model: { type: "BPE", vocab: Object.fromEntries([...LETTERS].map((c, i) => [c, i])), merges: [] },
  decoder: { type: "ByteLevel" },
});
const V = LETTERS.length;
const table = randomMarkovTable(V, 1, 5, { scale: 1.2 });
const draftTable = nearMarkovTable(table, V, 6, { noise: 0.7 });

function makeGenerator(maxLength = 1024): SpeculativeGenerator {
  return new SpeculativeGenerator({
    target: new MarkovModel({ table, vocabSize: V, maxLength }),
    draft: new MarkovModel({ table: draftTable, vocabSize: V, maxLength }),
    tokenizer,
    kernel: referenceKernel,
  });
}

Deno.test("greedy spectr, sd and specinfer produce the target's greedy text", async () => {
  const generator = makeGenerator();
  const greedy = await generator.generate("a", {
    method: "autoregressive",
    temperature: 0,
    maxNewTokens: 40,
  });
  for (const method of ["spectr", "sd", "specinfer", "specinfer-wor"] as const) {
    const out = await generator.generate("a", {
      method,
      temperature: 0,
      maxNewTokens: 40,
      k: 3,
      draftLength: 3,
    });
    assert.equal(out.text, greedy.text, method);
    assert.ok(out.stats.targetCalls <= greedy.stats.targetCalls, `${method} needs no more target calls`);
  }
});

Deno.test("the streamed pieces join to the generated text for the same seed", async () => {
  const generator = makeGenerator();
  const options = { maxNewTokens: 50, seed: 3, k: 4, draftLength: 3, method: "spectr" as const };
  const whole = await generator.generate("ab", options);
  const pieces: string[] = [];
  const stream = generator.stream("ab", options);
  let step = await stream.next();
  while (!step.done) {
    pieces.push(step.value);
    step = await stream.next();
  }
  assert.equal(pieces.join(""), whole.text);
  assert.equal(step.value.text, whole.text);
  assert.ok(pieces.length > 1, "text is streamed in several pieces");
  assert.equal(whole.finishReason, "length");
  assert.equal(whole.tokens.length, 50);
  assert.equal(whole.stats.promptTokens, 2);
  assert.ok(whole.stats.tokensPerSecond > 0);
});

Deno.test("a stop string cuts the text before it and keeps the same sample up to there", async () => {
  const generator = makeGenerator();
  const options = { maxNewTokens: 200, seed: 11, k: 2, draftLength: 4, method: "spectr" as const };
  const free = await generator.generate("c", options);
  // Pick a two-letter stop string that occurs in the free text, after its start.
  const at = free.text.length > 30 ? 20 : 1;
  const stop = free.text.slice(at, at + 2);
  const first = free.text.indexOf(stop);
  const stopped = await generator.generate("c", { ...options, stop: [stop, "zz"] });
  assert.equal(stopped.finishReason, "stop");
  assert.equal(stopped.text, free.text.slice(0, first));
  assert.equal(tokenizer.decode(stopped.tokens, { stripPrefixSpace: false }), free.text.slice(0, first + 2));
  let streamed = "";
  for await (const piece of generator.stream("c", { ...options, stop })) streamed += piece;
  assert.equal(streamed, stopped.text);
});

Deno.test("token ids are accepted as the prompt", async () => {
  const generator = makeGenerator();
  const a = await generator.generate([0, 1], { maxNewTokens: 10, seed: 4, method: "spectr" });
  const b = await generator.generate("ab", { maxNewTokens: 10, seed: 4, method: "spectr" });
  assert.deepEqual(a.tokens, b.tokens);
});

Deno.test("concurrent generations queue and give the same results as sequential ones", async () => {
  const generator = makeGenerator();
  const options = (seed: number) => ({
    maxNewTokens: 30,
    seed,
    k: 3,
    draftLength: 2,
    method: "spectr" as const,
  });
  const [x, y] = await Promise.all([
    generator.generate("a", options(1)),
    generator.generate("b", options(2)),
  ]);
  assert.equal((await generator.generate("a", options(1))).text, x.text);
  assert.equal((await generator.generate("b", options(2))).text, y.text);
});

Deno.test("bad options get typed errors and the generator stays usable", async () => {
  const generator = makeGenerator(16);
  const cases: [Parameters<SpeculativeGenerator["generate"]>, RegExp][] = [
    [["a", { method: "beam" as never }], /unknown method "beam"/],
    [["a", { stop: [""] }], /stop string is empty/],
    [["a", { temperature: -1 }], /temperature/],
    [["a", { topP: 2 }], /topP/],
    [["a", { k: 0 }], /k must be an integer/],
    [["a", { maxNewTokens: -1 }], /maxNewTokens/],
    [["a".repeat(40), {}], /exceeds the context limit of 16 tokens/], // a ContextLimitError
    [[[99], {}], /outside the vocabulary/],
    [["a", { seed: 1.5 }], /seed must be an integer in \[0, 2\^32 - 1\], got 1.5/],
    [["a", { seed: -1 }], /seed must be an integer in \[0, 2\^32 - 1\], got -1/],
    [["a", { seed: 2 ** 32 }], /seed must be an integer/],
    [["a", { k: 1000 }], /k must be an integer in \[1, 64\], got 1000/],
    [["a", { k: 2.5 }], /k must be an integer in \[1, 64\]/],
    [["a", { draftLength: 1000 }], /draftLength must be an integer in \[1, 64\], got 1000/],
    [["a", { draftLength: 0, method: "autoregressive" }], /draftLength must be an integer/],
    [["", {}], /the prompt is empty/],
    [[[], {}], /at least 1 token/],
  ];
  for (const [args, message] of cases) {
    const error = await generator.generate(...args).then(() => undefined, (e) => e);
    assert.ok(error instanceof RangeError && message.test(error.message), `${message}: got ${error}`);
  }
  const typeCases: [Parameters<SpeculativeGenerator["generate"]>, RegExp][] = [
    [["a", null as never], /options must be an object, got null/],
    [["a", 5 as never], /options must be an object, got number/],
    [["a", { signal: {} as never }], /signal must be an AbortSignal, got Object/],
    [["a", { signal: "x" as never }], /signal must be an AbortSignal, got string/],
  ];
  for (const [args, message] of typeCases) {
    await assert.rejects(() => generator.generate(...args), { name: "TypeError", message }, String(message));
  }
  const limit = await generator.generate("a".repeat(40)).catch((e) => e);
  assert.ok(limit instanceof ContextLimitError && limit instanceof RangeError);
  const noDraft = new SpeculativeGenerator({
    target: new MarkovModel({ table, vocabSize: V }),
    tokenizer,
    kernel: referenceKernel,
  });
  await assert.rejects(() => noDraft.generate("a", { method: "spectr" }), /needs a draft model/);
  assert.equal((await generator.generate("a", { maxNewTokens: 5, seed: 1 })).tokens.length, 5);
});

Deno.test("an abort mid-stream rejects with AbortError and the next generation works", async () => {
  const generator = makeGenerator();
  const controller = new AbortController();
  const stream = generator.stream("a", { maxNewTokens: 500, seed: 9, signal: controller.signal });
  await stream.next();
  controller.abort();
  await assert.rejects(async () => {
    for (;;) if ((await stream.next()).done) break;
  }, { name: "AbortError" });
  assert.equal((await generator.generate("a", { maxNewTokens: 7, seed: 1 })).tokens.length, 7);
});

Deno.test("a prompt exactly as long as the context gives one token with every method", async () => {
  const generator = makeGenerator(6);
  for (const method of generationMethods) {
    const out = await generator.generate("abcdef", {
      method,
      maxNewTokens: 10,
      seed: 3,
      k: 2,
      draftLength: 3,
    });
    assert.equal(out.tokens.length, 1, method);
    assert.equal(out.finishReason, "context", method);
  }
});

Deno.test("the context limit ends a generation with finish reason context", async () => {
  const generator = makeGenerator(12);
  const out = await generator.generate("abc", { maxNewTokens: 100, seed: 2 });
  assert.equal(out.finishReason, "context");
  assert.ok(out.tokens.length <= 12 - 3 + 1);
});

Deno.test("StopMatcher holds back a possible stop prefix and never splits a surrogate pair", () => {
  // A stop string that starts with the low half of 🙂's surrogate pair: the held-back tail would
  // split the pair, so the whole emoji is held back.
  const stops = new StopMatcher("\uDE42x");
  stops.push("ab🙂");
  const first = stops.take();
  assert.equal(first, "ab");
  const plain = new StopMatcher("xyz");
  plain.push("abx");
  assert.equal(plain.take(), "ab");
  stops.push("c");
  stops.end();
  assert.equal(first + stops.take(), "ab🙂c");
  assert.throws(() => new StopMatcher([3 as unknown as string]), TypeError);
});

Deno.test("addBosToken prepends the BOS id to text prompts", async () => {
  const withBos = Tokenizer.fromJSON(
    {
      model: { type: "BPE", vocab: Object.fromEntries([...LETTERS].map((c, i) => [c, i])), merges: [] },
      decoder: { type: "ByteLevel" },
    },
    { bos_token: "h" },
  );
  const generator = new SpeculativeGenerator({
    target: new MarkovModel({ table, vocabSize: V }),
    tokenizer: withBos,
    kernel: referenceKernel,
    addBosToken: true,
  });
  const out = await generator.generate("ab", { method: "autoregressive", maxNewTokens: 1, seed: 1 });
  assert.equal(out.stats.promptTokens, 3);
});

Deno.test("proposer lookup drafts from the text so far: greedy output equals autoregressive, no draft model needed", async () => {
  const targetOnly = new SpeculativeGenerator({
    target: new MarkovModel({ table, vocabSize: V }),
    tokenizer,
    kernel: referenceKernel,
  });
  const greedy = await targetOnly.generate("abcabc", {
    method: "autoregressive",
    temperature: 0,
    maxNewTokens: 60,
  });
  for (const method of ["block", "sd", "auto"] as const) {
    const out = await targetOnly.generate("abcabc", {
      method,
      proposer: "lookup",
      temperature: 0,
      maxNewTokens: 60,
      draftLength: 4,
    });
    assert.equal(out.text, greedy.text, method);
    // A greedy Markov chain falls into a cycle, which lookup then copies: fewer target calls.
    assert.ok(out.stats.targetCalls < greedy.stats.targetCalls, `${method}: ${out.stats.targetCalls} calls`);
    assert.ok(out.stats.draftCalls === 0);
  }
  await assert.rejects(() => targetOnly.generate("ab", { method: "spectr" }), /needs a draft model/);
  await assert.rejects(
    () => targetOnly.generate("ab", { proposer: "ngram" as "lookup" }),
    { name: "RangeError", message: /proposer must be one of "draft", "lookup", "eagle", got "ngram"/ },
  );
});

Deno.test("method auto is the default, gives valid text and reports the plans it ran", async () => {
  const generator = makeGenerator();
  const out = await generator.generate("ab", { maxNewTokens: 60, seed: 5 });
  assert.equal(out.stats.method, "auto");
  assert.equal(out.tokens.length, 60);
  const blocks = out.stats.plans.reduce((n, p) => n + p.blocks, 0);
  assert.equal(blocks, out.stats.blocks);
  for (const p of out.stats.plans) {
    assert.ok(["block", "kseq"].includes(p.method), p.method);
    assert.ok(p.k >= 1 && p.k <= 4 && p.draftLength >= 0 && p.draftLength <= 4);
    assert.ok(Number.isFinite(p.predictedTokensPerSecond) && p.predictedTokensPerSecond > 0);
  }
});

Deno.test("stats report the k and L a fixed method ran with: capped by the verifier and the proposer", async () => {
  const generator = makeGenerator();
  const run = async (options: Parameters<SpeculativeGenerator["generate"]>[1]) =>
    (await generator.generate("ab", { maxNewTokens: 6, seed: 3, ...options })).stats;
  const spectr = await run({ method: "spectr", k: 3, draftLength: 2 });
  assert.deepEqual([spectr.k, spectr.draftLength], [3, 2]);
  // sd and block verify one draft; the lookup proposer drafts one.
  const sd = await run({ method: "sd", k: 4, draftLength: 3 });
  assert.deepEqual([sd.k, sd.draftLength], [1, 3]);
  const lookup = await run({ method: "spectr", k: 4, draftLength: 2, proposer: "lookup" });
  assert.deepEqual([lookup.k, lookup.draftLength], [1, 2]);
  for (const method of ["autoregressive", "auto"] as const) {
    const s = await run({ method, k: 4, draftLength: 3 });
    assert.deepEqual([s.k, s.draftLength], [undefined, undefined], method);
  }
});
